"""Reading a ``generateContent`` answer: blocks, images, assets. No I/O.

One way for every answer, each step a pure function here::

    obj = decode_json(body, ...)                                  # maxapi_async._protocol.convert
    response = parse_generate_content(obj, request_id=rid)        # the converter
    check_blocked(response, response_modalities=asked, request_id=rid)
    decoded = decode_inline_images(response, request_id=rid)      # in a thread when big
    assets = make_native_assets(response, decoded, call=call, fetcher=..., received_at=now)

:func:`read_native_answer` runs them all from the answer's bytes (on the event loop, or in
a worker thread as a whole); :func:`native_assets` runs the steps after parsing, for a
queued operation's ``response`` (parsed with the task).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any, NoReturn

import attrs

from .assets import decode_b64, inline_asset, url_asset
from .calls import ImageCall
from .convert import Body, decode_json, structure
from .errors import BlockedError, ResponseError
from .gemini import Blob, FileData, GenerateContentResponse, Part
from .models import ASSET_TTL, ImageAsset, _AssetFetcher

__all__ = [
    "check_blocked",
    "decode_inline_images",
    "image_parts",
    "inline_payloads",
    "inline_text_size",
    "make_native_assets",
    "native_assets",
    "parse_generate_content",
    "read_native_answer",
    "with_images",
]

#: Finish reasons that mean "the model finished normally"; any other explains a missing image.
_NORMAL_FINISH = frozenset({"STOP", "FINISH_REASON_UNSPECIFIED"})

_REASONS = {
    "SAFETY": "flagged by the safety filters",
    "IMAGE_SAFETY": "the image was flagged by the safety filters",
    "PROHIBITED_CONTENT": "prohibited content",
    "IMAGE_PROHIBITED_CONTENT": "the image showed prohibited content",
    "RECITATION": "too close to existing material",
    "IMAGE_RECITATION": "the image was too close to existing material",
    "BLOCKLIST": "a blocked term",
    "SPII": "sensitive personal information",
    "NO_IMAGE": "the model produced no image",
    "IMAGE_OTHER": "the image was withheld for another reason",
    "OTHER": "stopped for another reason",
    "MAX_TOKENS": "the output token limit was reached",
}


def parse_generate_content(obj: Any, *, request_id: str | None = None) -> GenerateContentResponse:
    """Structure a ``generateContent`` answer; a malformed one raises :class:`ResponseError`.

    This only parses: an answer without images is valid here (see :func:`check_blocked`).
    A final image given by URL must have one (a draft may come without).
    """
    return _parse(obj, request_id)[0]


def _parse(obj: Any, request_id: str | None) -> tuple[GenerateContentResponse, list[Part]]:
    """:func:`parse_generate_content`, and the answer's final image parts (walked once)."""
    response = structure(obj, GenerateContentResponse, what="generateContent answer", request_id=request_id)
    parts = response.image_parts
    for i, part in enumerate(parts):
        if part.file_data is not None and part.inline_data is None and not part.file_data.file_uri:
            raise ResponseError(
                f"image part {i} of the generateContent answer has an empty fileUri",
                request_id=request_id,
                body=obj,
            )
    if request_id is not None:
        object.__setattr__(response, "request_id", request_id)  # new, and nobody else holds it yet
    return response, parts


# --------------------------------------------------------------------------
# Blocked answers.


def _upper_modalities(modalities: Sequence[str] | None) -> frozenset[str] | None:
    if modalities is None:
        return None
    return frozenset(str(m).upper() for m in modalities)


def check_blocked(
    response: GenerateContentResponse,
    *,
    response_modalities: Sequence[str] | None = None,
    request_id: str | None = None,
) -> None:
    """Raise :class:`BlockedError` when the answer lacks what was asked for and says why.

    ``response_modalities`` is what the request asked for (``None``: the model's default,
    text and image). The rules, in order:

    * No candidates: always blocked, with ``promptFeedback.blockReason`` as the reason, or
      ``"NO_CANDIDATES"`` when there is none (nothing came back, whatever was asked).
    * Images asked for and a final image present (drafts do not count): fine.
    * Text only asked for and text present: fine.
    * Otherwise the reason is ``promptFeedback.blockReason``, else the first candidate
      ``finishReason`` other than ``STOP`` (``IMAGE_SAFETY``, ``PROHIBITED_CONTENT``, ...,
      ``MAX_TOKENS``), even when the model added a sentence of text.
    * The model stopped normally without an image: fine when text was allowed and came back
      (the model chose to answer in words, as Google's API allows); otherwise ``"NO_IMAGE"``
      (or ``"NO_TEXT"`` for a text-only request that got nothing).
    """
    _check_blocked(response, response.image_parts, response_modalities, request_id)


def _check_blocked(
    response: GenerateContentResponse,
    parts: Sequence[Part],
    response_modalities: Sequence[str] | None,
    request_id: str | None,
) -> None:
    """:func:`check_blocked`, given the answer's image parts."""
    asked = _upper_modalities(response_modalities)
    wants_image = asked is None or "IMAGE" in asked
    wants_text = asked is None or "TEXT" in asked
    block = response.block_reason
    if not response.candidates:
        _raise_blocked(
            response, block or "NO_CANDIDATES", "prompt" if block else None, wants_image, request_id
        )
    if wants_image and parts:
        return  # the usual answer: its text is not needed
    text = response.text
    has_text = bool(text and text.strip())
    if not wants_image and has_text:
        return
    if block:
        _raise_blocked(response, block, "prompt", wants_image, request_id)
    for candidate in response.candidates:
        reason = candidate.finish_reason
        if reason and reason not in _NORMAL_FINISH:
            _raise_blocked(response, reason, "candidate", wants_image, request_id, candidate.finish_message)
    if wants_text and has_text:
        return
    _raise_blocked(response, "NO_IMAGE" if wants_image else "NO_TEXT", None, wants_image, request_id)


def _raise_blocked(
    response: GenerateContentResponse,
    reason: str,
    source: str | None,
    wants_image: bool,
    request_id: str | None,
    detail: str | None = None,
) -> NoReturn:
    wanted = "an image" if wants_image else "text"
    explained = f"{reason}: {_REASONS[reason]}" if reason in _REASONS else reason
    if source == "prompt":
        message = f"the prompt was blocked (blockReason {explained})"
        feedback = response.prompt_feedback
        detail = feedback.block_reason_message if feedback is not None else None
    elif source == "candidate":
        message = f"the model returned no {wanted.removeprefix('an ')} (finishReason {explained})"
    elif reason == "NO_CANDIDATES":
        message = "the answer holds no candidates and no block reason"
    else:
        message = f"the model finished without {wanted}"
    if detail:
        message += f": {detail}"
    said = (response.text or "").strip()
    if said:
        message += f"; the model said: {' '.join(said.split())[:200]!r}"
    raise BlockedError(reason, message, request_id=request_id or response.request_id, response=response)


# --------------------------------------------------------------------------
# Images out of an answer.


def image_parts(response: GenerateContentResponse) -> list[Part]:
    """The final image parts (inline or by URL) of every candidate; drafts left out."""
    return response.image_parts


def inline_payloads(response: GenerateContentResponse) -> list[str | None]:
    """The base64 text of each of :func:`image_parts` (``None`` for a part given by URL)."""
    return _payloads(response.image_parts)


def _payloads(parts: Sequence[Part]) -> list[str | None]:
    return [p.inline_data.data if p.inline_data is not None else None for p in parts]


def inline_text_size(response: GenerateContentResponse) -> int:
    """The base64 characters of the final images given inline (what decoding them costs)."""
    return sum(len(text) for text in inline_payloads(response) if text is not None)


def decode_inline_images(
    response: GenerateContentResponse, *, request_id: str | None = None
) -> list[bytes | None]:
    """Decode :func:`inline_payloads` (CPU-bound: run it in a thread for big answers)."""
    return _decode(response.image_parts, request_id)


def _decode(parts: Sequence[Part], request_id: str | None) -> list[bytes | None]:
    return [
        decode_b64(text, request_id=request_id) if text is not None else None for text in _payloads(parts)
    ]


def _same_image_type(inline: Blob, file: FileData) -> bool:
    return inline.mime_type is None or file.mime_type is None or inline.mime_type == file.mime_type


def make_native_assets(
    response: GenerateContentResponse,
    decoded: Sequence[bytes | None],
    *,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
    received_at: _dt.datetime | None = None,
    request_id: str | None = None,
) -> list[ImageAsset]:
    """One :class:`ImageAsset` per final image, from :func:`decode_inline_images`' output.

    Inline images carry their bytes, checked to be the image they claim (see
    :func:`~maxapi_async._protocol.assets.inline_asset`; :class:`AssetTypeError` otherwise), their
    type and size read from them; images by URL carry
    the URL, the type from ``mimeType`` and the size from the model's table, and expire
    :data:`ASSET_TTL` after ``received_at``. A ``fileData`` part right after an inline
    image of the same type is that image's CDN copy (MaxAPI sends both): the two make one
    asset with bytes and URL.
    """
    return _assets(response.image_parts, decoded, call, fetcher, received_at, request_id)


def _assets(
    parts: Sequence[Part],
    decoded: Sequence[bytes | None],
    call: ImageCall,
    fetcher: _AssetFetcher | None,
    received_at: _dt.datetime | None,
    request_id: str | None,
) -> list[ImageAsset]:
    if len(decoded) != len(parts):
        raise ValueError(f"{len(decoded)} decoded payloads for {len(parts)} image parts")
    expires = received_at + ASSET_TTL if received_at is not None else None
    assets: list[ImageAsset] = []
    i = 0
    while i < len(parts):
        part, data = parts[i], decoded[i]
        i += 1
        if part.inline_data is not None:
            if data is None:
                raise ValueError(f"image part {i - 1} is inline but was not decoded")
            url = None
            following = parts[i] if i < len(parts) else None
            if (
                following is not None
                and following.inline_data is None
                and following.file_data is not None
                and _same_image_type(part.inline_data, following.file_data)
            ):
                url = following.file_data.file_uri or None
                i += 1
            assets.append(
                inline_asset(
                    data,
                    claimed=part.inline_data.mime_type,
                    what=f"inline image {len(assets)} of the generateContent answer",
                    url=url,
                    expected_size=call.expected_size(),
                    expires_at=expires if url else None,
                    fetcher=fetcher,
                    request_id=request_id,
                )
            )
        elif part.file_data is not None:
            file = part.file_data
            assets.append(
                url_asset(file.file_uri, file.mime_type, None, call.expected_size(), expires, fetcher)
            )
    return assets


def with_images(response: GenerateContentResponse, images: list[ImageAsset]) -> GenerateContentResponse:
    """``response`` with its :attr:`~GenerateContentResponse.images` filled in."""
    return attrs.evolve(response, images=images)


def native_assets(
    response: GenerateContentResponse,
    *,
    response_modalities: Sequence[str] | None,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
    received_at: _dt.datetime | None = None,
    request_id: str | None = None,
) -> list[ImageAsset]:
    """A parsed answer's final images as assets, once :func:`check_blocked` has had its say.

    CPU-bound when images come inline: run it in a thread when :func:`inline_text_size`
    is large. ``received_at`` (for the expiry of images by URL) defaults to now.
    """
    parts = response.image_parts  # walked once for the three steps
    return _native_assets(response, parts, response_modalities, call, fetcher, received_at, request_id)


def _native_assets(
    response: GenerateContentResponse,
    parts: Sequence[Part],
    response_modalities: Sequence[str] | None,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
    received_at: _dt.datetime | None,
    request_id: str | None,
) -> list[ImageAsset]:
    _check_blocked(response, parts, response_modalities, request_id)
    decoded = _decode(parts, request_id)
    received_at = received_at or _dt.datetime.now(_dt.timezone.utc)
    return _assets(parts, decoded, call, fetcher, received_at, request_id)


def read_native_answer(
    body: bytes | Body,
    status: int,
    request_id: str | None,
    *,
    response_modalities: Sequence[str] | None,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
) -> tuple[GenerateContentResponse, list[ImageAsset]]:
    """A ``generateContent`` answer and its final images, from its bytes: JSON, structure,
    block check, base64 and assets in one go (on the event loop, or in a thread as a whole).
    """
    obj = decode_json(body, status=status, request_id=request_id, what="generateContent")
    response, parts = _parse(obj, request_id)
    return response, _native_assets(response, parts, response_modalities, call, fetcher, None, request_id)
