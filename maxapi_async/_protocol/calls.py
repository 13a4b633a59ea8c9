"""Everything the client knows about MaxAPI's wire format, as pure functions.

This module builds requests (:class:`RequestSpec`), checks arguments before
anything is sent, and says what an answer's status and headers mean (typed
errors, request ids, ``Retry-After``); the answers' JSON is read by
:mod:`maxapi_async._protocol.openai_answer` and :mod:`maxapi_async._protocol.gemini_answer`. It
performs no I/O and never sleeps, so every rule here is tested without a socket;
the transport (:mod:`maxapi_async._transport.http`) only moves bytes.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import math
from collections.abc import Mapping
from typing import Any

import attrs
import msgspec

from . import catalog
from .convert import decode_json, excerpt
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
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
    "check_json",
    "check_reference_size",
    "check_text",
    "check_timeout",
    "encode_json",
    "error_from_json",
    "error_from_response",
    "maybe_charged",
    "parse_retry_after",
    "request_id_from",
    "unreadable_submission_answer",
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
    #: Whether the table may tell the size: false for a task known by its id alone, whose
    #: ratio nobody knows (its images' sizes then come from the images themselves).
    sized: bool = attrs.field(default=True, kw_only=True)
    # Read from the table once: every asset of every answer to this call asks for it.
    _size: tuple[int, int] | None = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_size", self._table_size())

    def expected_size(self) -> tuple[int, int] | None:
        """The output size from the model's table, or ``None`` when not predictable."""
        return self._size

    def _table_size(self) -> tuple[int, int] | None:
        spec = catalog.lookup_model(self.model)
        if spec is None or not self.sized:
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


# msgspec's encoder, the decoder's twin: compact UTF-8 JSON straight to bytes, 0.15 us for a
# usual body where json.dumps takes 1.8 (it makes a new C encoder per call). Its bytes are
# json.dumps' (compact, ensure_ascii=False) but for a float's exponent (1e16, not 1e+16).
_encode = msgspec.json.Encoder().encode


def encode_json(obj: Any) -> bytes:
    """A JSON request body: compact UTF-8 (:func:`check_json` has refused what JSON cannot carry)."""
    return _encode(obj)


def with_body(spec: RequestSpec) -> RequestSpec:
    """``spec`` with its ``json`` encoded into ``body``: the same bytes as :func:`encode_json`.

    For a worker thread, when the body is megabytes of inline images. It encodes piece by
    piece (each string on its own), so that no single call holds the GIL for the whole
    body, stalling the event loop as if it ran there; between pieces the loop gets its turn.
    """
    if spec.json is None:
        return spec
    pieces: list[bytes] = []
    _encode_into(spec.json, pieces, depth=8)
    return attrs.evolve(spec, body=b"".join(pieces))


def _encode_into(obj: Any, pieces: list[bytes], depth: int) -> None:
    """Append the compact JSON of ``obj`` to ``pieces``, containers a member at a time."""
    if depth and type(obj) is dict and all(type(key) is str for key in obj):
        pieces.append(b"{")
        for i, (key, value) in enumerate(obj.items()):
            if i:
                pieces.append(b",")
            pieces.append(_encode(key))
            pieces.append(b":")
            _encode_into(value, pieces, depth - 1)
        pieces.append(b"}")
    elif depth and type(obj) in (list, tuple):
        pieces.append(b"[")
        for i, item in enumerate(obj):
            if i:
                pieces.append(b",")
            _encode_into(item, pieces, depth - 1)
        pieces.append(b"]")
    else:
        pieces.append(_encode(obj))


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

    A lone surrogate (``"\\ud800"``, what ``surrogateescape`` leaves of undecodable bytes)
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
    The usual body passes a walk that names nothing; only a refused one is walked again
    to name the path of what JSON cannot carry.
    """
    if not _sendable(value, depth):
        _refuse_json(argument, value, depth)


def _sendable(value: object, depth: int) -> bool:
    """Whether :func:`_refuse_json` finds nothing to refuse: its rules, in its order."""
    # The exact types of the usual body first (the ABC check of ``Mapping`` is slow).
    if type(value) is str:
        return value.isascii() or _utf8_text(value)
    if type(value) is dict:
        return depth > 0 and _sendable_items(value, depth)
    if type(value) is list or type(value) is tuple:
        return depth > 0 and _sendable_list(value, depth)
    if isinstance(value, str):
        return _utf8_text(value)
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return depth > 0 and _sendable_items(value, depth)
    if isinstance(value, (list, tuple)):
        return depth > 0 and _sendable_list(value, depth)
    return False


def _sendable_list(items: list[Any] | tuple[Any, ...], depth: int) -> bool:
    for item in items:  # noqa: SIM110 (a loop: all() of a generator costs twice as much)
        if not _sendable(item, depth - 1):
            return False
    return True


def _sendable_items(mapping: Mapping[Any, Any], depth: int) -> bool:
    for key, item in mapping.items():
        if not isinstance(key, str) or not (key.isascii() or _utf8_text(key)):
            return False
        if not _sendable(item, depth - 1):
            return False
    return True


def _utf8_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_json(argument: str, value: object, depth: int) -> None:
    """:func:`check_json`'s walk, naming the path of the first value JSON cannot carry."""
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
            _refuse_json(f"{argument}.{key}", item, depth - 1)
    elif isinstance(value, (list, tuple)):
        if depth <= 0:
            raise InvalidRequestError(argument, "is nested too deep")
        for i, item in enumerate(value):
            _refuse_json(f"{argument}[{i}]", item, depth - 1)
    else:
        raise InvalidRequestError(argument, f"a {type(value).__name__} has no JSON form")


# --------------------------------------------------------------------------
# What an answer's status and headers mean (its JSON is read by _openai_answer and
# _gemini_answer), and what a submission whose answer is lost or unreadable means.


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


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> APIError:
    """The typed error for a non-2xx answer, from any of the three body shapes.

    OpenAI ``{"error": {"message", "type", "code"}}``, Google ``{"error":
    {"code", "message", "status"}}`` and the task platform's ``{"code", "msg"}``
    are read (see :func:`error_from_json`); any other body (HTML from a proxy, plain
    text) still gives a typed error with an excerpt of the text as its message.
    """
    request_id = request_id_from(headers)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    try:
        parsed = decode_json(body, status=status, request_id=request_id, what="error") if body else None
    except ResponseError:
        parsed = None
    if isinstance(parsed, dict):
        return error_from_json(status, parsed, request_id=request_id, retry_after=retry_after)
    return _error_class(status)(
        (excerpt(body) if body else "") or f"HTTP {status} with no error message",
        status=status,
        request_id=request_id,
        body=excerpt(body, 2000) if body else None,
        retry_after=retry_after,
    )


def error_from_json(
    status: int, obj: dict[str, Any], *, request_id: str | None = None, retry_after: float | None = None
) -> APIError:
    """The typed error an error object stands for: a non-2xx answer's JSON, or a task
    envelope whose ``code`` is an HTTP status (see :func:`error_from_response`)."""
    message: str | None = None
    err = obj.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        message = msg if isinstance(msg, str) else None
        code = _pick_code(err)
    elif isinstance(err, str):
        message = err
        code = _pick_code(obj)
    else:
        for key in ("msg", "message", "detail"):
            msg = obj.get(key)
            if isinstance(msg, str):
                message = msg
                break
        code = _pick_code(obj)
    return _error_class(status)(
        message or f"HTTP {status} with no error message",
        status=status,
        code=code,
        request_id=request_id,
        body=obj,
        retry_after=retry_after,
    )


def maybe_charged(error: APIConnectionError, method: str, path: str, key: str | None) -> APIConnectionError:
    """The error for a submission whose answer was lost after it was sent: never repeated."""
    lost = "no answer came in time" if isinstance(error, APITimeoutError) else "the connection broke"
    message = (
        f"{method} {path}: the request was sent but {lost}, so the service may have carried it "
        f"out: the call may have been charged. It was not repeated; its Idempotency-Key is {key}. "
        f"Cause: {error}"
    )
    cls = APITimeoutError if isinstance(error, APITimeoutError) else APIConnectionError
    new = cls(message, sent=True, idempotency_key=key)
    new.__cause__ = error
    return new


def unreadable_submission_answer(exc: ResponseError, spec: RequestSpec, key: str) -> None:
    """A submission's 2xx answer that cannot be read: the call went through, maybe charged.

    ``exc`` (re-raised by the caller: it keeps its type) gains the submission's
    ``idempotency_key`` (``key``) and a message that says so. (A ``try`` in each caller, not a
    context manager: it runs on every call, and a ``try`` costs nothing until it catches.)
    """
    if exc.status is not None and not 200 <= exc.status < 300:
        return
    exc.idempotency_key = key
    exc.message = (
        f"{spec.method} {spec.path}: the service accepted the call but its answer could not be "
        f"read, so the call may have been charged. It was not repeated; its Idempotency-Key is "
        f"{key}. Cause: {exc.message}"
    )
    exc.args = (exc.message,)
