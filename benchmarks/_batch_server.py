"""A fake queued-task service for ``benchmarks/batch.py``: every task is finished when first polled.

It runs in its own process (its CPU never lands on the client being measured) and is a raw
:class:`asyncio.Protocol` on the request framing of ``_minimal_server.py`` (keep-alive, pipelined
and split requests, ``Content-Length`` or chunked bodies), so it keeps up with several thousand
requests a second on a small machine. Routes:

- ``POST /v1/images/generations`` with ``"async": true`` in the JSON body: a new task ``t<n>``
  (``n`` counts from 1), answered ``{"id": "t<n>", "status": "queued", "created": <unix>}``.
  Without ``"async": true`` the answer is a 400: this service only queues.
- ``GET /v1/images/generations/t<n>``: ``{"id": "t<n>", "status": "succeeded", "data": [{"url":
  "https://cdn.example/t<n>.png"}]}`` at once, however early; 404 for unknown ids.
- ``GET /_stats[?from=<n>]``: counters as JSON (see :meth:`Service.stats`), the per-task ones
  over tasks ``t<n>`` and later; not counted as a poll or a request.

Run: ``python benchmarks/_batch_server.py [--host 127.0.0.1] [--port 0]``. Once listening it
prints ``PORT <n>`` on stdout. It stops on SIGTERM/SIGINT, and when its stdin reaches end of file
(unless stdin is a terminal), so it never outlives a parent that started it with a pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from array import array
from typing import Any, Final

from _minimal_server import MAX_HEAD_BYTES, BadRequest, _Request, parse_chunked

GENERATIONS: Final = "/v1/images/generations"
TASK_PREFIX: Final = GENERATIONS + "/t"
URL_TEMPLATE: Final = "https://cdn.example/t%d.png"
NOT_FOUND_BODY: Final = (
    b'{"error": {"message": "no such route or task", "type": "not_found", "param": null,'
    b' "code": "not_found"}}'
)
NOT_ASYNC_BODY: Final = (
    b'{"error": {"message": "this benchmark service only queues: send \\"async\\": true",'
    b' "type": "invalid_request_error", "param": "async", "code": "bad_request"}}'
)
BAD_REQUEST_BODY: Final = (
    b'{"error": {"message": "malformed request", "type": "invalid_request_error",'
    b' "param": null, "code": "bad_request"}}'
)
_HEAD_END: Final = b"\r\n\r\n"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_OK: Final = b"200 OK"
_NOT_FOUND: Final = b"404 Not Found"
_BAD_REQUEST: Final = b"400 Bad Request"
# What the client's compact JSON encoder writes; anything else goes through json.loads.
_ASYNC_TRUE: Final = b'"async":true'


def dechunk(buf: bytearray, start: int) -> bytes:
    """The payload of a complete chunked body starting at ``start`` (checked by parse_chunked)."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        if size == 0:
            return bytes(out)
        out += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def _is_async(body: bytes) -> bool:
    if _ASYNC_TRUE in body:
        return True
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("async") is True


class Service:
    """The task table (polls per task) and the counters; every answer is built here."""

    def __init__(self) -> None:
        self.polls_per_task = array("l")  # index n - 1 for task t<n>
        self.polls = 0
        self.not_found = 0
        self.rejected = 0
        self.requests = 0

    def submit(self, body: bytes, now: float) -> tuple[bytes, bytes]:
        if not _is_async(body):
            self.rejected += 1
            return _BAD_REQUEST, NOT_ASYNC_BODY
        self.polls_per_task.append(0)
        n = len(self.polls_per_task)
        return _OK, b'{"id": "t%d", "status": "queued", "created": %d}' % (n, int(now))

    def poll(self, number: str) -> tuple[bytes, bytes]:
        n = int(number) if number.isdigit() else 0
        if not 1 <= n <= len(self.polls_per_task):
            self.not_found += 1
            return _NOT_FOUND, NOT_FOUND_BODY
        self.polls += 1
        self.polls_per_task[n - 1] += 1
        return _OK, b'{"id": "t%d", "status": "succeeded", "data": [{"url": "%s"}]}' % (
            n,
            (URL_TEMPLATE % n).encode(),
        )

    def stats(self, first: int = 1) -> dict[str, Any]:
        """Counters since start; the per-task ones over tasks ``t<first>`` on only.

        ``cpu_s`` is this server process's CPU time so far.
        """
        counts = self.polls_per_task[max(first, 1) - 1 :]
        return {
            "submissions": len(self.polls_per_task),
            "polls": self.polls,
            "never_polled": counts.count(0),
            "polled_more_than_once": sum(1 for c in counts if c > 1),
            "max_polls_per_task": max(counts, default=0),
            "not_found": self.not_found,
            "rejected": self.rejected,
            "requests": self.requests,
            "cpu_s": time.process_time(),
        }

    def route(self, method: str, target: str, body: bytes) -> tuple[bytes, bytes]:
        self.requests += 1
        path, _, query = target.partition("?")
        if method == "GET" and path.startswith(TASK_PREFIX):
            return self.poll(path[len(TASK_PREFIX) :])
        if method == "POST" and path == GENERATIONS:
            return self.submit(body, time.time())
        if method == "GET" and path == "/_stats":
            self.requests -= 1
            first = query[len("from=") :] if query.startswith("from=") else "1"
            return _OK, json.dumps(self.stats(int(first) if first.isdigit() else 1)).encode()
        return _NOT_FOUND, NOT_FOUND_BODY


class BatchProtocol(asyncio.Protocol):
    """One connection: frame requests (body included) and answer each in order."""

    def __init__(self, service: Service) -> None:
        self._service = service
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
            self._reply(_BAD_REQUEST, BAD_REQUEST_BODY, keep_alive=False)

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
                body = dechunk(self._buf, request.body_start) if body_end is not None else b""
            else:
                body_end = request.body_start + request.content_length
                if len(self._buf) < body_end:
                    body_end = None
                body = bytes(self._buf[request.body_start : body_end]) if body_end is not None else b""
            if body_end is None:
                if request.expect_continue and not request.continue_sent:
                    request.continue_sent = True
                    self._transport.write(_CONTINUE)
                return
            del self._buf[:body_end]
            self._pending = None
            status, answer = self._service.route(request.method, request.target, body)
            self._reply(status, answer, keep_alive=request.keep_alive)

    def _reply(self, status: bytes, body: bytes, *, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        connection = b"" if keep_alive else b"Connection: close\r\n"
        transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, len(body), connection, body)
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
    service = Service()
    server = await loop.create_server(
        lambda: BatchProtocol(service), host, port, backlog=1024, reuse_address=True
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
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
