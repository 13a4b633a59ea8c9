"""Google's ``generateContent`` requests: the contents a caller may pass, and the request. No I/O.

The request half of :mod:`maxapi_async._protocol.gemini` (which holds the answer's models and reading
it). The client builds a request in this order::

    loads = pending_loads(contents)                   # checks everything else, no I/O yet
    data = [<read path / file / asset URL> for _, item in loads]     # the client's I/O
    wire = normalize_contents(contents, loaded=data)  # base64: in a thread when big
    spec = build_generate_content_request(wire, ContentOptions(aspect_ratio=..., ...))
"""

from __future__ import annotations

import binascii
import functools
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from .calls import RequestSpec, check_json, check_reference_size, check_text
from .errors import InvalidRequestError
from .gemini import ASYNC_HEADER, ROUTE_MODE_HEADER, Blob, Content, FileData, Part
from .images import IMAGE_TYPES, sniff_mime_type
from .models import ImageAsset
from .options import ContentOptions, camel_keys, check_content_options, warn_caller

__all__ = [
    "build_generate_content_request",
    "generate_content_path",
    "inline_data_size",
    "needs_loading",
    "normalize_contents",
    "pending_loads",
    "requested_modalities",
    "scan_contents",
]

# --------------------------------------------------------------------------
# Contents: everything a caller may pass, as Google's JSON.


def needs_loading(item: object) -> bool:
    """Whether ``item`` must be read (I/O) before :func:`normalize_contents` can use it.

    True for ``os.PathLike`` paths, binary file objects and :class:`ImageAsset` objects
    without inline bytes. A ``str`` is always text, never a path: pass ``pathlib.Path``.
    """
    if isinstance(item, ImageAsset):
        return item.data is None
    if isinstance(item, os.PathLike):
        return True
    if isinstance(item, (str, bytes, bytearray, memoryview, Mapping, Part, Content, Blob, FileData)):
        return False
    return callable(getattr(item, "read", None))


def _b64(data: bytes | bytearray | memoryview) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _sniff_b64(text: str) -> str | None:
    try:
        return sniff_mime_type(binascii.a2b_base64(text[:24]))
    except (binascii.Error, ValueError):
        return None


def _part_to_wire(part: Part) -> dict[str, Any]:
    out = camel_keys(part.extra, "contents")
    if part.text is not None:
        out["text"] = part.text
    if part.inline_data is not None:
        out["inlineData"] = _blob_to_wire(part.inline_data)
    if part.file_data is not None:
        out["fileData"] = _file_to_wire(part.file_data)
    if part.thought:
        out["thought"] = True
    return out


def _blob_to_wire(blob: Blob) -> dict[str, Any]:
    out = camel_keys(blob.extra, "contents")
    if blob.mime_type is not None:
        out["mimeType"] = blob.mime_type
    out["data"] = blob.data
    return out


def _file_to_wire(file: FileData) -> dict[str, Any]:
    out = camel_keys(file.extra, "contents")
    if file.mime_type is not None:
        out["mimeType"] = file.mime_type
    out["fileUri"] = file.file_uri
    return out


def _checked(argument: str, part: dict[str, Any]) -> dict[str, Any]:
    check_json(argument, part)  # named from the caller's contents, not the body's
    return part


def _is_content(item: object) -> TypeGuard[Content | Mapping[Any, Any]]:
    return isinstance(item, Content) or (isinstance(item, Mapping) and "parts" in item)


class _Normalizer:
    """One walk over ``contents``. With ``loaded=None`` it only checks and collects loads."""

    def __init__(self, loaded: Sequence[bytes] | None) -> None:
        self.dry = loaded is None
        self.inline_bytes = 0  # image bytes given inline, to be base64-encoded
        self.image_bytes = 0  # image bytes of the request, base64 given as text included
        self.loaded = iter(loaded or ())
        self.found: list[tuple[str, object]] = []

    def contents(self, contents: object) -> list[dict[str, Any]]:
        if _is_content(contents):
            return [self.content(contents, "contents")]
        if isinstance(contents, (list, tuple)):
            if not contents:
                raise InvalidRequestError("contents", "must not be empty")
            whole = [_is_content(item) for item in contents]
            if all(whole):
                return [self.content(item, f"contents[{i}]") for i, item in enumerate(contents)]
            if any(whole):
                raise InvalidRequestError(
                    "contents", "mixes whole contents ({'role', 'parts'}) with loose parts"
                )
            return [
                {"role": "user", "parts": [self.part(p, f"contents[{i}]") for i, p in enumerate(contents)]}
            ]
        return [{"role": "user", "parts": [self.part(contents, "contents")]}]

    def content(self, item: Content | Mapping[Any, Any], argument: str) -> dict[str, Any]:
        if isinstance(item, Content):
            out = camel_keys(item.extra, argument)
            if item.role is not None:
                out["role"] = item.role
            parts: object = item.parts
        else:
            out = camel_keys(item, argument)
            parts = out.pop("parts")
            role = out.get("role")
            if role is None:
                out.pop("role", None)
            elif not isinstance(role, str):
                raise InvalidRequestError(f"{argument}.role", f"must be a string, got {role!r}")
        if not isinstance(parts, (list, tuple)) or not parts:
            raise InvalidRequestError(f"{argument}.parts", "must be a non-empty list of parts")
        check_json(argument, out)  # its role and other keys, before its parts
        out["parts"] = [self.part(p, f"{argument}.parts[{j}]") for j, p in enumerate(parts)]
        return out

    def part(self, item: object, argument: str) -> dict[str, Any]:
        if isinstance(item, str):
            return {"text": check_text(argument, item)}
        if isinstance(item, (bytes, bytearray, memoryview)):
            return self.image(item, argument)
        if isinstance(item, Part):
            if item.inline_data is not None:
                self.count(item.inline_data.data, argument)
            return _checked(argument, _part_to_wire(item))
        if isinstance(item, Blob):
            self.count(item.data, argument)
            return _checked(argument, {"inlineData": _blob_to_wire(item)})
        if isinstance(item, FileData):
            return _checked(argument, {"fileData": _file_to_wire(item)})
        if isinstance(item, Mapping):
            return self.part_dict(item, argument)
        if isinstance(item, ImageAsset) and item.data is not None:
            return self.image(item.data, argument)
        if needs_loading(item):
            if self.dry:
                self.found.append((argument, item))
                return {}
            data = next(self.loaded, None)
            if data is None:
                raise ValueError(f"{argument} needs loading, but no loaded bytes are left for it")
            return self.image(data, argument)
        raise InvalidRequestError(
            argument,
            f"cannot send a {type(item).__name__}; use text, image bytes, a pathlib.Path, "
            "an ImageAsset or a Gemini part dict ({'text'}, {'inlineData'}, {'fileData'})",
        )

    def count(self, data: str | bytes | bytearray | memoryview, argument: str) -> None:
        """Hold one image (bytes, or base64 text) to the caps of one request."""
        if isinstance(data, str):
            size = len(data) * 3 // 4
        else:
            size = data.nbytes if isinstance(data, memoryview) else len(data)
        self.image_bytes += size
        check_reference_size(argument, size, total=self.image_bytes)

    def image(self, data: bytes | bytearray | memoryview, argument: str) -> dict[str, Any]:
        self.count(data, argument)
        mime = sniff_mime_type(data)
        if mime is None:
            raise InvalidRequestError(
                argument, f"is not an image ({len(data)} bytes, unknown format)", allowed=IMAGE_TYPES
            )
        self.inline_bytes += len(data)
        return {"inlineData": {"mimeType": mime, "data": "" if self.dry else _b64(data)}}

    def part_dict(self, item: Mapping[Any, Any], argument: str) -> dict[str, Any]:
        out = camel_keys(item, argument)
        if not out:
            raise InvalidRequestError(argument, "is an empty part")
        if "parts" in out:
            raise InvalidRequestError(argument, "is a whole content inside a content's parts")
        if "text" in out and not isinstance(out["text"], str):
            raise InvalidRequestError(f"{argument}.text", f"must be a string, got {out['text']!r}")
        if "inlineData" in out:
            out["inlineData"] = self.inline_dict(out["inlineData"], f"{argument}.inlineData")
        if "fileData" in out:
            file = out["fileData"]
            if not isinstance(file, Mapping):
                raise InvalidRequestError(f"{argument}.fileData", "must be an object with 'fileUri'")
            file = camel_keys(file, argument)
            if not isinstance(file.get("fileUri"), str) or not file["fileUri"]:
                raise InvalidRequestError(f"{argument}.fileData", "needs a 'fileUri' string")
            out["fileData"] = file
        check_json(argument, out)  # named from the caller's contents, not the body's
        return out

    def inline_dict(self, value: object, argument: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidRequestError(argument, "must be an object with 'mimeType' and 'data'")
        out = camel_keys(value, argument)
        data = out.get("data")
        mime = out.get("mimeType")
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.count(data, argument)
            mime = mime or sniff_mime_type(data)
            self.inline_bytes += len(data)
            out["data"] = "" if self.dry else _b64(data)
        elif isinstance(data, str) and data:
            self.count(data, argument)
            mime = mime or _sniff_b64(data)
        else:
            raise InvalidRequestError(f"{argument}.data", "must be base64 text or bytes")
        if not isinstance(mime, str) or not mime:
            raise InvalidRequestError(
                f"{argument}.mimeType",
                "is missing and the data is not a known image type",
                allowed=IMAGE_TYPES,
            )
        out["mimeType"] = mime
        return out


def pending_loads(contents: object) -> list[tuple[str, object]]:
    """The items of ``contents`` that need I/O, with the argument name for error messages.

    Also checks everything else in ``contents`` (so bad input fails before any file is
    read). The client reads each item (a path, a binary file object, or an ImageAsset's
    URL) and passes the bytes, in this order, to :func:`normalize_contents`.
    """
    return scan_contents(contents)[0]


def scan_contents(contents: object) -> tuple[list[tuple[str, object]], int]:
    """:func:`pending_loads`, and the number of image bytes ``contents`` holds inline.

    The client moves :func:`normalize_contents` (base64) to a worker thread when those
    and the loaded bytes are many.
    """
    walker = _Normalizer(None)
    walker.contents(contents)
    return walker.found, walker.inline_bytes


def inline_data_size(contents: Sequence[dict[str, Any]]) -> int:
    """The base64 characters of the ``inlineData`` parts of wire ``contents`` (a request body's bulk)."""
    return sum(
        len(part["inlineData"].get("data") or "")
        for content in contents
        for part in content.get("parts") or ()
        if isinstance(part, dict) and isinstance(part.get("inlineData"), dict)
    )


def normalize_contents(contents: object, *, loaded: Sequence[bytes] = ()) -> list[dict[str, Any]]:
    """``contents`` as Google's JSON: a list of ``{"role", "parts"}`` dicts, camelCase.

    Accepted: a string; image bytes; a part dict (``{"text"}``, ``{"inlineData"}``,
    ``{"fileData"}``, snake_case keys too); a :class:`Part`, :class:`Blob` or
    :class:`FileData`; a content dict ``{"role", "parts"}`` or :class:`Content` (so a
    previous answer's content can be sent back); or a list of either whole contents or
    loose parts (loose parts make one ``"user"`` content). Image bytes are sniffed and
    base64-encoded; non-image bytes raise :class:`InvalidRequestError` naming the item.

    Items that need I/O (see :func:`pending_loads`) are taken, in order, from ``loaded``.
    Base64-encoding is CPU work: the client runs this in a thread when payloads are big.
    """
    walker = _Normalizer(loaded)
    out = walker.contents(contents)
    if next(walker.loaded, None) is not None:
        raise ValueError("more loaded items than contents needs")
    return out


# --------------------------------------------------------------------------
# The request.


@functools.lru_cache(maxsize=64)
def generate_content_path(model: str) -> str:
    """``/v1beta/models/{model}:generateContent``, the model's slash kept."""
    return f"/v1beta/models/{urllib.parse.quote(model, safe='/')}:generateContent"


def _check_contents(contents: object) -> list[dict[str, Any]]:
    if not isinstance(contents, (list, tuple)) or not contents:
        raise InvalidRequestError("contents", "must be a non-empty list (see normalize_contents)")
    for i, content in enumerate(contents):
        if (
            not isinstance(content, dict)
            or not isinstance(content.get("parts"), list)
            or not content["parts"]
        ):
            raise InvalidRequestError(f"contents[{i}]", "must be a {'role', 'parts'} dict with parts")
    return list(contents)


def _system_instruction(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        return {"parts": [{"text": value}]}
    if not _is_content(value):
        raise InvalidRequestError("system_instruction", "must be a string or a {'parts': [...]} content")
    return _Normalizer(()).content(value, "system_instruction")


def _safety_settings(value: object) -> list[dict[str, Any]]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise InvalidRequestError("safety_settings", "must be a list of {'category', 'threshold'} dicts")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidRequestError(f"safety_settings[{i}]", "must be a {'category', 'threshold'} dict")
        out.append(camel_keys(item, f"safety_settings[{i}]"))
    return out


def _has_image_input(contents: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(part, dict) and ("inlineData" in part or "fileData" in part)
        for content in contents
        for part in content["parts"]
    )


def build_generate_content_request(
    contents: Sequence[dict[str, Any]], options: ContentOptions, *, queued: bool = False
) -> RequestSpec:
    """The ``POST /v1beta/models/{model}:generateContent`` request, checked.

    ``contents`` comes from :func:`normalize_contents`, which has refused what JSON cannot
    carry, naming it from the caller's contents (here only its shape is checked again). The
    model keeps its slash
    (``google/gemini-2.5-flash-image``); a ``models/`` prefix is dropped. The body is
    camelCase and carries only what the caller set: no ``generationConfig`` at all by
    default, so the model answers with its default modalities (text and image). The
    options' ``generation_config`` is a base that the other options override;
    ``route_mode`` goes in ``X-MaxAPI-Route-Mode``; ``queued`` sets ``X-MaxAPI-Async: true``.

    Aspect ratio and image size are checked against the model's table (unknown models pass
    through); an ``image_size`` for a model without a size selector warns and is sent.
    """
    checked = check_content_options(options)
    warn_caller(checked.warning)
    wire_contents = _check_contents(contents)
    body: dict[str, Any] = {"contents": wire_contents}
    if options.system_instruction is not None:
        body["systemInstruction"] = _system_instruction(options.system_instruction)
    if checked.config:
        body["generationConfig"] = checked.config
    if options.safety_settings is not None:
        body["safetySettings"] = _safety_settings(options.safety_settings)
    for field, argument in _BODY_ARGUMENTS:
        if field in body:
            check_json(argument, body[field])  # what JSON cannot carry, named before sending
    body.update(checked.extra_body)  # checked: JSON, and no field set above
    headers = dict(checked.headers)
    if options.route_mode is not None:
        headers[ROUTE_MODE_HEADER] = options.route_mode
    if queued:
        headers[ASYNC_HEADER] = "true"
    call = checked.edit if _has_image_input(wire_contents) else checked.generation
    return RequestSpec("POST", generate_content_path(checked.model), call, json=body, headers=headers)


# The body's keys made from options, and the options they come from.
_BODY_ARGUMENTS = (
    ("systemInstruction", "system_instruction"),
    ("generationConfig", "generation_config"),
    ("safetySettings", "safety_settings"),
)


def requested_modalities(spec: RequestSpec) -> list[str] | None:
    """The ``responseModalities`` a built request asks for (``None``: the model's default)."""
    config = (spec.json or {}).get("generationConfig") or {}
    modalities = config.get("responseModalities")
    return list(modalities) if modalities is not None else None
