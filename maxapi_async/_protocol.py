"""Everything the client knows about MaxAPI's wire format, as pure functions.

This module builds requests (:class:`RequestSpec`), checks arguments before
anything is sent, and turns answers into models or typed errors. It performs
no I/O and never sleeps, so every rule here is tested without a socket; the
transport (:mod:`maxapi_async._transport`) only moves bytes.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import email.utils
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from . import _bigjson, _catalog
from ._convert import slot_maker, structure
from ._errors import (
    APIError,
    AssetTypeError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    ServerError,
)
from ._images import IMAGE_TYPES, image_size, mime_type_from_url, sniff_mime_type
from ._models import ASSET_TTL, ImageAsset, ImageData, ImagesResponse, _AssetFetcher

__all__ = [
    "EDITS_PATH",
    "GENERATIONS_PATH",
    "IDEMPOTENCY_HEADER",
    "MAX_REFERENCE_BYTES_PER_REQUEST",
    "MAX_REFERENCE_IMAGE_BYTES",
    "FormPart",
    "ImageCall",
    "ReferenceImage",
    "RequestSpec",
    "check_asset_type",
    "check_json",
    "check_reference_size",
    "check_text",
    "check_timeout",
    "decode_answer",
    "decode_b64",
    "decode_json",
    "encode_json",
    "error_from_response",
    "expiry",
    "inline_asset",
    "make_asset",
    "parse_images_response",
    "parse_retry_after",
    "request_id_from",
    "url_answer_assets",
    "url_asset",
    "with_body",
]

GENERATIONS_PATH = "/v1/images/generations"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EDITS_PATH = "/v1/images/edits"

#: Response headers that may carry the id the service logged a call under.
REQUEST_ID_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "request-id",
    "x-maxapi-request-id",
    "x-trace-id",
)


@attrs.frozen
class FormPart:
    """One part of a multipart body: a text field, or a file with name and type."""

    name: str
    value: str | bytes
    filename: str | None = None
    content_type: str | None = None


@attrs.frozen
class ImageCall:
    """What the caller asked for, kept to interpret the answer (sizes, expiry, cost)."""

    kind: str  # "generation" or "edit"
    model: str
    aspect_ratio: str | None = None
    resolution: str | None = None
    route_mode: str | None = None
    n: int = 1
    # Read from the table once: every asset of every answer to this call asks for it.
    _size: tuple[int, int] | None = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_size", self._table_size())

    def expected_size(self) -> tuple[int, int] | None:
        """The output size from the model's table, or ``None`` when not predictable."""
        return self._size

    def _table_size(self) -> tuple[int, int] | None:
        spec = _catalog.lookup_model(self.model)
        if spec is None:
            return None
        if self.aspect_ratio is None and self.kind == "edit":
            # Without a ratio an edit follows its reference image's shape.
            return None
        return spec.size_for(self.aspect_ratio, self.resolution)


@attrs.define
class RequestSpec:
    """A request, fully described, not yet sent (never changed once made; not ``frozen``
    only because one is made per request, and a frozen ``__init__`` costs twice as much).

    Exactly one of ``json`` (sent as ``application/json``) and ``form`` (sent as
    ``multipart/form-data``) is set for a POST; neither for a GET. ``path`` is
    relative to the API's base URL. The transport adds the credentials.
    ``body`` is ``json`` already encoded (:func:`with_body`: done in a worker
    thread when the body is megabytes of inline images); otherwise the transport
    encodes ``json`` itself.
    """

    method: str
    path: str
    call: ImageCall
    json: dict[str, Any] | None = None
    form: tuple[FormPart, ...] | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes | None = attrs.field(
        default=None, repr=lambda b: "None" if b is None else f"<{len(b)} bytes>"
    )


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(obj: Any) -> bytes:
    """A JSON request body: compact UTF-8."""
    return _encoder.encode(obj).encode()


def with_body(spec: RequestSpec) -> RequestSpec:
    """``spec`` with its ``json`` encoded into ``body``: the same bytes as :func:`encode_json`.

    For a worker thread, when the body is megabytes of inline images. It encodes piece by
    piece (each string on its own), because one ``encode`` call of 8 MB holds the GIL for
    20 ms, stalling the event loop as if it ran there; between pieces the loop gets its turn.
    """
    if spec.json is None:
        return spec
    pieces: list[str] = []
    _encode_into(spec.json, pieces, depth=8)
    return attrs.evolve(spec, body="".join(pieces).encode())


def _encode_into(obj: Any, pieces: list[str], depth: int) -> None:
    """Append the compact JSON of ``obj`` to ``pieces``, containers a member at a time."""
    if depth and type(obj) is dict and all(type(key) is str for key in obj):
        pieces.append("{")
        for i, (key, value) in enumerate(obj.items()):
            pieces.append(f"{',' if i else ''}{_encoder.encode(key)}:")
            _encode_into(value, pieces, depth - 1)
        pieces.append("}")
    elif depth and type(obj) in (list, tuple):
        pieces.append("[")
        for i, item in enumerate(obj):
            if i:
                pieces.append(",")
            _encode_into(item, pieces, depth - 1)
        pieces.append("]")
    else:
        pieces.append(_encoder.encode(obj))


#: The largest reference image sent (7 MiB): Gemini's limit for one image given inline.
MAX_REFERENCE_IMAGE_BYTES = 7 * 1024 * 1024
#: The most reference-image bytes one request carries (14 MiB): as base64 (4/3 as long) they
#: stay within Gemini's 20 MB limit for a whole request, with room for the rest of it.
MAX_REFERENCE_BYTES_PER_REQUEST = 14 * 1024 * 1024


def check_reference_size(argument: str, size: int, *, total: int, name: str | None = None) -> None:
    """Refuse a reference image above :data:`MAX_REFERENCE_IMAGE_BYTES`, or one that takes
    the request's reference images (``total``, this one included) above
    :data:`MAX_REFERENCE_BYTES_PER_REQUEST`: :class:`InvalidRequestError` naming ``argument``
    (and the image's file ``name`` when it has one).
    """
    subject = f"{name!r} " if name else ""
    if size > MAX_REFERENCE_IMAGE_BYTES:
        raise InvalidRequestError(
            argument,
            f"{subject}is {size} bytes, above the limit of {MAX_REFERENCE_IMAGE_BYTES} bytes per "
            "reference image (maxapi_async.MAX_REFERENCE_IMAGE_BYTES); scale it down or compress it",
        )
    if total > MAX_REFERENCE_BYTES_PER_REQUEST:
        raise InvalidRequestError(
            argument,
            f"{subject}takes the request's reference images to {total} bytes, above the limit of "
            f"{MAX_REFERENCE_BYTES_PER_REQUEST} bytes per request "
            "(maxapi_async.MAX_REFERENCE_BYTES_PER_REQUEST); send fewer or smaller images",
        )


@attrs.frozen
class ReferenceImage:
    """A reference image for an edit: its bytes, a file name and the sniffed type."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    filename: str
    mime_type: str


# --------------------------------------------------------------------------
# Argument checks: each raises InvalidRequestError naming the argument.


def check_timeout(argument: str, value: object) -> float | None:
    """A per-call ``timeout`` in seconds: ``None`` (the client's), a positive number, or
    ``math.inf`` for no limit at all (also what a number too large for a float means).

    Anything else (``nan``, zero or less, a non-number) raises :class:`InvalidRequestError`.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(
            argument, f"must be a positive number of seconds (inf: no limit), got {type(value).__name__}"
        )
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float: longer than anyone waits
        seconds = math.inf if value > 0 else -math.inf
    if not seconds > 0:  # also nan
        raise InvalidRequestError(
            argument, f"must be a positive number of seconds (inf: no limit), got {value!r}"
        )
    return seconds


def check_text(argument: str, value: str) -> str:
    """``value`` when it can be sent (UTF-8 holds it); else :class:`InvalidRequestError`.

    A lone surrogate (``"\ud800"``, what ``surrogateescape`` leaves of undecodable bytes)
    has no UTF-8 form: it is refused here, naming the argument, not by the encoder later.
    ``isascii()`` answers at once for the usual text.
    """
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                argument,
                f"holds {value[exc.start]!r} at position {exc.start}, a lone surrogate "
                "that UTF-8 cannot carry; fix the text's decoding",
            ) from None
    return value


def check_json(argument: str, value: object, *, depth: int = 32) -> None:
    """Refuse what a JSON body cannot carry, at its path under ``argument``.

    Strings (keys too) must be UTF-8-encodable (:func:`check_text`), numbers finite, and
    containers plain dicts with string keys, lists or tuples, nested at most ``depth`` deep.
    """
    if isinstance(value, str):
        check_text(argument, value)
    elif value is None or isinstance(value, (bool, int)):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(argument, f"{value!r} has no JSON form")
    elif isinstance(value, Mapping):
        if depth <= 0:
            raise InvalidRequestError(argument, "is nested too deep")
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequestError(argument, f"keys must be strings, got {key!r}")
            check_text(argument, key)
            check_json(f"{argument}.{key}", item, depth=depth - 1)
    elif isinstance(value, (list, tuple)):
        if depth <= 0:
            raise InvalidRequestError(argument, "is nested too deep")
        for i, item in enumerate(value):
            check_json(f"{argument}[{i}]", item, depth=depth - 1)
    else:
        raise InvalidRequestError(argument, f"a {type(value).__name__} has no JSON form")


# --------------------------------------------------------------------------
# Answers.

# Enough leading bytes to recognise PNG, JPEG, WebP and GIF.
_SNIFF_BYTES = 16


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """The request id the service sent back, from the first header that carries one."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def parse_retry_after(value: str | None, *, now: _dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        current = now or _dt.datetime.now(_dt.timezone.utc)
        return max(0.0, (when - current).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ConflictError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def _error_class(status: int) -> type[APIError]:
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, APIError)


def _pick_code(error: Mapping[str, Any]) -> str | int | None:
    # OpenAI puts a word in "code" (or only "type"); Google puts the HTTP number in
    # "code" and the word in "status": prefer words, fall back to the number.
    for key in ("code", "status", "type"):
        value = error.get(key)
        if isinstance(value, str) and value:
            return value
    value = error.get("code")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[: limit * 4].decode("utf-8", "replace").strip()
    return " ".join(text.split())[:limit]


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> APIError:
    """The typed error for a non-2xx answer, from any of the three body shapes.

    OpenAI ``{"error": {"message", "type", "code"}}``, Google ``{"error":
    {"code", "message", "status"}}`` and the task platform's ``{"code", "msg"}``
    are read; any other body (HTML from a proxy, plain text) still gives a
    typed error with an excerpt of the text as its message.
    """
    request_id = request_id_from(headers)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    parsed: Any
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        parsed = None
    message: str | None = None
    code: str | int | None = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict):
            msg = err.get("message")
            message = msg if isinstance(msg, str) else None
            code = _pick_code(err)
        elif isinstance(err, str):
            message = err
            code = _pick_code(parsed)
        else:
            for key in ("msg", "message", "detail"):
                msg = parsed.get(key)
                if isinstance(msg, str):
                    message = msg
                    break
            code = _pick_code(parsed)
    body_out: dict[str, Any] | str | None = (
        parsed if isinstance(parsed, dict) else (_excerpt(body, 2000) if body else None)
    )
    if not message:
        excerpt = _excerpt(body) if body and not isinstance(parsed, dict) else ""
        message = excerpt or f"HTTP {status} with no error message"
    return _error_class(status)(
        message,
        status=status,
        code=code,
        request_id=request_id,
        body=body_out,
        retry_after=retry_after,
    )


_decoder = json.JSONDecoder()
_decode_text = _decoder.decode
# The C scanner decode() runs after skipping whitespace (an attribute typeshed leaves out).
_scan_value: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def decode_json(body: bytes, *, status: int, request_id: str | None, what: str) -> Any:
    """Parse a 2xx body as JSON, or raise :class:`ResponseError` describing it."""
    try:
        if body[:1] == b"{" and body[1:2] != b"\x00":
            # What json.loads concludes for such a body (UTF-8), without its encoding sniff,
            # and for the usual body (one object, no whitespace around it), without the
            # decoder's two whitespace regexes: the scanner alone reads it whole.
            text = body.decode("utf-8", "surrogatepass")
            try:
                obj, end = _scan_value(text, 0)
            except StopIteration:  # not a value: the decoder says what is wrong
                return _decode_text(text)
            return obj if end == len(text) else _decode_text(text)
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise _not_json(body, status, request_id, what) from None


def decode_answer(
    body: bytes, *, status: int, request_id: str | None, what: str
) -> tuple[Any, dict[int, bytes]]:
    """:func:`decode_json` for an answer that may carry images inline, and their bytes.

    The long base64 strings of a big answer are decoded on the way, once (see
    :mod:`maxapi_async._bigjson`); the mapping holds their bytes by ``id()`` of the
    string in the returned value (empty for anything else), for :func:`decode_b64`'s
    callers to look up first.
    """
    if len(body) < _bigjson.BIG_BODY:  # nothing worth cutting out
        return decode_json(body, status=status, request_id=request_id, what=what), {}
    try:
        return _bigjson.loads_with_base64(body)
    except (ValueError, RecursionError):
        raise _not_json(body, status, request_id, what) from None


def _not_json(body: bytes, status: int, request_id: str | None, what: str) -> ResponseError:
    return ResponseError(
        f"the {what} answer is not JSON: {_excerpt(body) or '(empty body)'!r}",
        status=status,
        request_id=request_id,
        body=_excerpt(body, 2000),
    )


_ANSWER_KEYS = frozenset({"created", "data", "usage"})
_ITEM_KEYS = frozenset({"url", "b64_json", "revised_prompt"})
# Exact types, as the converter's strict hooks check them (a bool is not an int).
_INT_OR_NONE = (int, type(None))
_DICT_OR_NONE = (dict, type(None))
_TEXT_OR_NONE = (str, type(None))


def _common_images_response(obj: Any) -> ImagesResponse | None:
    """The usual answer (known keys only, every value of its type), built by hand; else ``None``.

    Every call reads one of these on the event loop, so the common shape skips the
    converter's generic machinery: the instance is the one the converter would build.
    Anything else (an unknown key kept in ``extra``, a wrong type to explain) is left
    to the converter.
    """
    if type(obj) is not dict or not _ANSWER_KEYS.issuperset(obj):
        return None
    data, created, usage = obj.get("data"), obj.get("created"), obj.get("usage")
    if type(data) is not list or type(created) not in _INT_OR_NONE or type(usage) not in _DICT_OR_NONE:
        return None
    items: list[ImageData] = []
    for item in data:
        if type(item) is not dict or not _ITEM_KEYS.issuperset(item):
            return None
        url, b64_json, revised_prompt = item.get("url"), item.get("b64_json"), item.get("revised_prompt")
        text = _TEXT_OR_NONE
        if type(url) not in text or type(b64_json) not in text or type(revised_prompt) not in text:
            return None
        items.append(ImageData(url, b64_json, revised_prompt))
    return ImagesResponse(items, created, usage)


def parse_images_response(obj: Any, *, request_id: str | None = None) -> ImagesResponse:
    """Structure an OpenAI-style images answer; success without any image is an error."""
    response = _common_images_response(obj)
    if response is None:
        response = structure(obj, ImagesResponse, what="images answer", request_id=request_id)
    if not response.data:
        raise ResponseError("the images answer holds no images", request_id=request_id, body=obj)
    for i, item in enumerate(response.data):
        if not item.url and not item.b64_json:
            raise ResponseError(
                f"images answer item {i} has neither 'url' nor 'b64_json'",
                request_id=request_id,
                body=obj,
            )
    return response


def decode_b64(text: str, *, request_id: str | None = None) -> bytes:
    """Decode base64 image data, refusing anything that is not base64.

    Standard base64 as sent; also tolerated: a ``data:`` URL prefix, line breaks, missing
    padding and the URL-safe alphabet (proto JSON allows both). Any other character raises
    :class:`ResponseError`: a decoder that skipped it would turn ``"@@@@"`` into an empty
    "image".
    """
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return _strict_b64decode(text)
    except (binascii.Error, ValueError):
        pass
    try:
        return _strict_b64decode(_regular_b64(text))
    except (binascii.Error, ValueError) as exc:
        raise ResponseError(f"image data is not valid base64: {exc}", request_id=request_id) from None


_B64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/", " \t\r\n")


def _strict_b64decode(text: str) -> bytes:
    """The bytes of standard, padded base64 ``text``; ``binascii.Error`` for anything else."""
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(text, strict_mode=True)
    if not _B64_TEXT.fullmatch(text):  # a2b_base64 alone skips characters outside the alphabet
        raise binascii.Error("only base64 characters are allowed")
    return binascii.a2b_base64(text)


def _regular_b64(text: str) -> str:
    """``text`` without whitespace, in the standard alphabet, padded."""
    text = text.translate(_URLSAFE_TO_STANDARD)
    return text + "=" * (-len(text) % 4)


def inline_asset(
    data: bytes,
    *,
    claimed: str | None,
    what: str,
    url: str | None = None,
    expected_size: tuple[int, int] | None = None,
    expires_at: _dt.datetime | None = None,
    revised_prompt: str | None = None,
    fetcher: _AssetFetcher | None = None,
    request_id: str | None = None,
) -> ImageAsset:
    """An image that came inside an answer (``b64_json``, ``inlineData``), checked like a download.

    The one constructor of inline assets, for both APIs, synchronous answers and task
    results alike. The bytes must be an image (see :func:`check_asset_type`; ``claimed``
    is the type the answer named, if any), else :class:`AssetTypeError` naming ``what``.
    The type and the size come from the image's header; the size falls back to
    ``expected_size`` (the model's table) for a type whose header this client cannot read.
    """
    sniffed = check_asset_type(
        data[:_SNIFF_BYTES], claimed=claimed, content_type=None, request_id=request_id, what=what
    )
    size = image_size(data) or expected_size
    return ImageAsset(
        url=url,
        data=data,
        mime_type=sniffed or _image_claim(claimed),
        width=size[0] if size else None,
        height=size[1] if size else None,
        expires_at=expires_at,
        revised_prompt=revised_prompt,
        fetcher=fetcher,
    )


def make_asset(
    item: ImageData,
    data: bytes | None,
    *,
    call: ImageCall,
    created: int | None,
    fetcher: _AssetFetcher | None,
    index: int = 0,
    request_id: str | None = None,
) -> ImageAsset:
    """An :class:`ImageAsset` from one answer item (the ``index``-th) and its decoded bytes (if inline)."""
    if data is None:
        return url_asset(item.url, None, item.revised_prompt, call.expected_size(), expiry(created), fetcher)
    return inline_asset(
        data,
        claimed=None,
        what=f"inline image {index} of the answer (b64_json)",
        url=item.url,
        expected_size=call.expected_size(),
        revised_prompt=item.revised_prompt,
        fetcher=fetcher,
        request_id=request_id,
    )


# ``ImageAsset(url, None, mime_type, width, height, expires_at, revised_prompt, fetcher)``, for
# the assets every answer by URL makes (see :func:`~maxapi_async._convert.slot_maker`).
_make_url_asset = slot_maker(
    ImageAsset, "url", "mime_type", "width", "height", "expires_at", "revised_prompt", "fetcher"
)


def url_asset(
    url: str | None,
    mime_type: str | None,
    revised_prompt: str | None,
    size: tuple[int, int] | None,
    expires: _dt.datetime | None,
    fetcher: _AssetFetcher | None,
) -> ImageAsset:
    """An image on the CDN, of both APIs: its type is ``mime_type``, else its URL's extension."""
    width, height = size if size else (None, None)
    mime_type = mime_type or mime_type_from_url(url or "")
    return _make_url_asset(url, mime_type, width, height, expires, revised_prompt, fetcher)


_last_expiry: tuple[int | None, _dt.datetime | None] = (None, None)


def expiry(created: int | None) -> _dt.datetime | None:
    """When the assets of an answer ``created`` at this Unix time leave the CDN.

    ``None`` when unknown: no ``created``, or one no date can hold (year 0, year 10000).
    """
    global _last_expiry
    last_created, last = _last_expiry
    if created == last_created and created is not None:  # answers of the same second, the usual case
        return last
    try:
        expires = (
            _dt.datetime.fromtimestamp(created, tz=_dt.timezone.utc) + ASSET_TTL
            if created is not None
            else None
        )
    except (OverflowError, ValueError, OSError):
        expires = None
    _last_expiry = (created, expires)
    return expires


def url_answer_assets(obj: Any, call: ImageCall, fetcher: _AssetFetcher | None) -> list[ImageAsset] | None:
    """The assets of the usual answer by URL, built straight from its JSON; else ``None``.

    The usual answer: known keys only, every value of its type, at least one item, every
    item a non-empty ``url`` and nothing inline. The assets are those
    :func:`parse_images_response` and :func:`make_asset` would give; anything else (inline
    images, unknown keys, a malformed answer to explain) is left to them.
    """
    if type(obj) is not dict or not _ANSWER_KEYS.issuperset(obj):
        return None
    data, created = obj.get("data"), obj.get("created")
    if type(data) is not list or not data or type(created) not in _INT_OR_NONE:
        return None
    if type(obj.get("usage")) not in _DICT_OR_NONE:
        return None
    size, expires = call.expected_size(), expiry(created)
    assets: list[ImageAsset] = []
    for item in data:
        if type(item) is not dict or not _ITEM_KEYS.issuperset(item):
            return None
        url, revised_prompt = item.get("url"), item.get("revised_prompt")
        if type(url) is not str or not url or item.get("b64_json") is not None:
            return None
        if type(revised_prompt) not in _TEXT_OR_NONE:
            return None
        assets.append(url_asset(url, None, revised_prompt, size, expires, fetcher))
    return assets


# Spellings of the same type that servers send in Content-Type.
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


def _image_claim(content_type: str | None) -> str | None:
    """The image type a ``Content-Type`` names; ``None`` for a generic or missing one."""
    if not content_type:
        return None
    mime = content_type.partition(";")[0].strip().lower()
    mime = _MIME_ALIASES.get(mime, mime)
    return mime if mime.startswith("image/") else None


def check_asset_type(
    head: bytes,
    *,
    claimed: str | None,
    content_type: str | None,
    status: int | None = None,
    request_id: str | None = None,
    what: str = "the downloaded asset",
) -> str | None:
    """Check a download's first bytes against the image type it claims; returns the sniffed type.

    ``claimed`` is the asset's own type (from its URL or the answer), ``content_type``
    the download's header. The bytes must be an image: a PNG, JPEG, WebP or GIF
    whose type matches every image type claimed (a generic ``Content-Type`` such as
    ``application/octet-stream`` claims nothing), or, for a type this client cannot
    sniff (``image/avif``...), bytes that are claimed to be exactly that. Anything
    else (an HTML error page served with 200, a JPEG behind a ``.png`` URL, an empty
    body) raises :class:`AssetTypeError`, ``what`` naming the bytes in its message.
    """
    actual = sniff_mime_type(head)
    claims = {c for c in (_image_claim(claimed), _image_claim(content_type)) if c is not None}
    if actual is not None and claims <= {actual}:
        return actual
    if actual is None and len(claims) == 1 and not claims & set(IMAGE_TYPES):
        return None  # an image type we cannot sniff, named consistently: trust it
    said = " and ".join(sorted(claims)) or "an image"
    found = actual or f"not an image ({_describe_head(head)})"
    raise AssetTypeError(
        f"{what} should be {said} but is {found}",
        claimed=_image_claim(claimed) or _image_claim(content_type),
        actual=actual,
        status=status,
        request_id=request_id,
    )


def _describe_head(head: bytes) -> str:
    if not head:
        return "an empty body"
    return f"starts with {head[:16]!r}"
