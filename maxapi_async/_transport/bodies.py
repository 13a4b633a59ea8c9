"""Bodies in and out of the transport, within the client's size caps.

An answer's ``Content-Length`` is checked before anything is read, and a body without one
(or compressed) is counted as it arrives: nothing past a cap is held in memory. An error
answer is read only as far as its message. A large request body is sent as it is, without
aiohttp's size warning (see :func:`large_body`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._protocol.calls import request_id_from
from .._protocol.errors import ResponseTooLargeError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "LARGE_BODY",
    "RawResponse",
    "large_body",
    "read_capped",
    "read_counting",
    "read_error_body",
    "too_large",
    "whole_body_fits",
]

#: The largest API answer read (64 MiB): four 1.5 MB images as base64 JSON fit many times over.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


#: The largest asset download (64 MiB); a 4K PNG is a few MB.
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


# Counted reads take at most this much past the cap before refusing.
_READ_CHUNK = 64 * 1024


# An error answer is read this far at most: its message is in the first bytes, and a
# 5xx with a huge body (a proxy's HTML page) stays a typed, retryable error.
_ERROR_BODY_BYTES = 64 * 1024


@attrs.define
class RawResponse:
    """An answer as bytes, before the protocol layer reads it (``body`` is empty for a
    download streamed to disk).

    Not ``frozen``: one is made per request, and a frozen class's ``__init__`` costs
    twice as much. The client takes ``body`` out to hand it to the reader of the answer
    (see :class:`~maxapi_async._protocol.convert.Body`); nothing else changes it.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes


# aiohttp's BytesPayload warns (ResourceWarning, "might lock the event loop") above 1 MiB of
# bytes; large_body sends such bodies without the warning.
LARGE_BODY = 1024 * 1024


@functools.lru_cache(maxsize=1)
def __large_body_class() -> type[aiohttp.payload.Payload]:
    """A payload of bytes already in memory, written as they are (made once aiohttp is loaded)."""
    from aiohttp import payload

    class LargeBody(payload.Payload):
        """aiohttp's ``BytesPayload`` without its size warning.

        The warning is for a body written to a compressing writer on the loop; the client
        never compresses a request, and writing bytes to the socket is one buffered call
        (the encoding and base64 work, the slow part, already ran in a worker thread).
        """

        _value: bytes
        _autoclose = True

        def __init__(self, value: bytes, content_type: str) -> None:
            super().__init__(value, content_type=content_type)
            self._size = len(value)

        def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
            return self._value.decode(encoding, errors)

        async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            return self._value

        async def write(self, writer: Any) -> None:
            await writer.write(self._value)

        async def write_with_length(self, writer: Any, content_length: int | None) -> None:
            await writer.write(self._value if content_length is None else self._value[:content_length])

    return LargeBody


def large_body(data: bytes, content_type: str) -> aiohttp.payload.Payload:
    """``data`` (above :data:`LARGE_BODY` bytes) as a payload aiohttp sends without a warning."""
    body: Any = __large_body_class()
    payload: aiohttp.payload.Payload = body(data, content_type)
    return payload


def too_large(
    resp: aiohttp.ClientResponse, what: str, limit: int, size: int, *, declared: bool
) -> ResponseTooLargeError:
    resp.close()  # drop the connection rather than read the rest
    amount = f"declares {size} bytes" if declared else f"passed {limit} bytes"
    return ResponseTooLargeError(
        f"{what} {amount}, above the client's limit of {limit} bytes; it was not read",
        limit=limit,
        size=size,
        status=resp.status,
        request_id=request_id_from(resp.headers),
    )


def whole_body_fits(resp: aiohttp.ClientResponse, limit: int, what: str) -> bool:
    """Whether ``resp.read()`` may read the body at once: its declared, uncompressed length
    is within ``limit``. A declared length above it raises :class:`ResponseTooLargeError`
    (``what`` names the body) before anything is read.
    """
    declared = resp.content_length
    if declared is None:
        return False
    if declared > limit:
        raise too_large(resp, what, limit, declared, declared=True)
    # HTTP framing stops at Content-Length; a compressed body's decoded size is unknown.
    return resp.headers.get("Content-Encoding", "identity").lower() == "identity"


async def read_capped(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, refusing (before reading it) anything above ``limit`` bytes."""
    if whole_body_fits(resp, limit, what):
        return await resp.read()
    return await read_counting(resp, limit, what)


async def read_counting(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """A body without a length, or compressed (its decoded size unknown): counted as it comes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(resp, what, limit, size, declared=False)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_error_body(resp: aiohttp.ClientResponse) -> bytes:
    """The first ``_ERROR_BODY_BYTES`` of a non-2xx answer (the rest is dropped with the connection)."""
    chunks: list[bytes] = []
    size = 0
    while size < _ERROR_BODY_BYTES:
        chunk = await resp.content.read(_ERROR_BODY_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
