"""A deliberately cheap keep-alive HTTP/1.1 server for ``benchmarks/overhead.py``.

It runs in its own process so that its CPU time never lands on the client being measured, and it
is a raw :class:`asyncio.Protocol` (no framework, no access log) so that it answers fast enough
not to be the bottleneck on a small machine. It knows two canned answers:

- ``POST /v1/images/generations``: an OpenAI ImagesResponse with one image URL;
- ``POST /<version>/models/<model id, may contain "/">:generateContent`` (google-genai asks for
  ``/v1beta/models/google/gemini-2.5-flash-image:generateContent``): a small Gemini answer.

Anything else gets a 404 with an OpenAI-shaped error body. Every answer carries an
``x-request-id`` header.

Request bodies are read in full (``Content-Length`` or chunked) and thrown away; pipelined and
split requests are handled, ``Connection: close`` and HTTP/1.0 are honoured.

Run: ``python benchmarks/_minimal_server.py [--host 127.0.0.1] [--port 0]``. Once listening it
prints ``PORT <n>`` on stdout. It stops on SIGTERM/SIGINT, and when its stdin reaches end of file
(unless stdin is a terminal), so it never outlives a parent that started it with a pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from typing import Final

IMAGES_BODY: Final = (
    b'{"created": 1732400000, "data": [{"url": "https://cdn.maxapi.dev/a/img.png", "revised_prompt": null}]}'
)
GEMINI_BODY: Final = (
    b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}, {"fileData":'
    b' {"mimeType": "image/png", "fileUri": "https://cdn.maxapi.dev/a/img.png"}}]},'
    b' "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 5,'
    b' "candidatesTokenCount": 1290, "totalTokenCount": 1295},'
    b' "modelVersion": "gemini-2.5-flash-image"}'
)
NOT_FOUND_BODY: Final = (
    b'{"error": {"message": "no such route on the benchmark server", "type": "not_found",'
    b' "param": null, "code": "not_found"}}'
)
BAD_REQUEST_BODY: Final = (
    b'{"error": {"message": "malformed request", "type": "invalid_request_error",'
    b' "param": null, "code": "bad_request"}}'
)

MAX_HEAD_BYTES: Final = 64 * 1024
_HEAD_END: Final = b"\r\n\r\n"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can frame."""


def route(method: str, target: str) -> tuple[bytes, bytes]:
    """Return ``(status line text, body)`` for a request line."""
    path = target.split("?", 1)[0]
    if method == "POST":
        if path == "/v1/images/generations":
            return b"200 OK", IMAGES_BODY
        # /v1beta/models/google/gemini-2.5-flash-image:generateContent (the id holds a slash).
        if path.startswith("/v1") and "/models/" in path and path.endswith(":generateContent"):
            return b"200 OK", GEMINI_BODY
    return b"404 Not Found", NOT_FOUND_BODY


def parse_chunked(buf: bytearray, start: int) -> int | None:
    """Return the offset just past a complete chunked body starting at ``start``, or None."""
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(f"bad chunk size {size_text!r}") from None
        pos = eol + 2
        if size == 0:
            break
        if len(buf) < pos + size + 2:
            return None
        pos += size + 2
    # Trailer section: header lines up to an empty line.
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        if eol == pos:
            return eol + 2
        pos = eol + 2


class _Request:
    """A parsed request head, kept while its body is still arriving."""

    __slots__ = (
        "body_start",
        "chunked",
        "content_length",
        "continue_sent",
        "expect_continue",
        "keep_alive",
        "method",
        "target",
    )

    def __init__(self, head: bytes, body_start: int) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise BadRequest(f"bad request line {lines[0]!r}")
        self.method = parts[0].decode("latin-1")
        self.target = parts[1].decode("latin-1")
        self.keep_alive = parts[2] == b"HTTP/1.1"
        self.content_length = 0
        self.chunked = False
        self.expect_continue = False
        self.continue_sent = False
        self.body_start = body_start
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise BadRequest(f"bad header line {line!r}")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    raise BadRequest(f"bad content-length {value!r}") from None
            elif name == b"transfer-encoding":
                self.chunked = value.endswith(b"chunked")
            elif name == b"connection":
                tokens = {token.strip() for token in value.split(b",")}
                if b"close" in tokens:
                    self.keep_alive = False
                elif b"keep-alive" in tokens:
                    self.keep_alive = True
            elif name == b"expect":
                self.expect_continue = value == b"100-continue"


class BenchHTTPProtocol(asyncio.Protocol):
    """One connection: frame requests out of the byte stream and answer each in order."""

    def __init__(self, counter: list[int]) -> None:
        self._counter = counter
        self._buf = bytearray()
        self._pending: _Request | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            self._process()
        except BadRequest:
            self._reply(b"400 Bad Request", BAD_REQUEST_BODY, keep_alive=False)

    def _process(self) -> None:
        while self._transport is not None:
            request = self._pending
            if request is None:
                head_end = self._buf.find(_HEAD_END)
                if head_end < 0:
                    if len(self._buf) > MAX_HEAD_BYTES:
                        raise BadRequest("request head too large")
                    return
                request = _Request(bytes(self._buf[:head_end]), head_end + len(_HEAD_END))
                self._pending = request
            if request.chunked:
                body_end = parse_chunked(self._buf, request.body_start)
            else:
                body_end = request.body_start + request.content_length
                if len(self._buf) < body_end:
                    body_end = None
            if body_end is None:
                if request.expect_continue and not request.continue_sent:
                    request.continue_sent = True
                    self._transport.write(_CONTINUE)
                return
            del self._buf[:body_end]
            self._pending = None
            status, body = route(request.method, request.target)
            self._reply(status, body, keep_alive=request.keep_alive)

    def _reply(self, status: bytes, body: bytes, *, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        self._counter[0] += 1
        connection = b"" if keep_alive else b"Connection: close\r\n"
        transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"x-request-id: req-%d\r\n%s\r\n%s" % (status, len(body), self._counter[0], connection, body)
        )
        if not keep_alive:
            transport.close()
            self._transport = None


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Block on stdin in a thread; end of file (the parent went away) stops the server."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if sys.stdin is not None and not sys.stdin.isatty():
        threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    counter = [0]
    server = await loop.create_server(
        lambda: BenchHTTPProtocol(counter), host, port, backlog=1024, reuse_address=True
    )
    bound_port = server.sockets[0].getsockname()[1]
    print(f"PORT {bound_port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
