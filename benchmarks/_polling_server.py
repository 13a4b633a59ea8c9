"""A fake queued-task service for ``benchmarks/polling.py``: tasks that finish after a random time.

It runs in its own process (its CPU never lands on the client being measured) and is a raw
:class:`asyncio.Protocol` on the request framing of ``_minimal_server.py`` (keep-alive, pipelined
and split requests, ``Content-Length`` or chunked bodies), so it keeps up with several thousand
requests a second on a small machine. Routes:

- ``POST /v1/images/generations`` with ``"async": true`` in the JSON body: a new task ``t<n>``,
  answered ``{"id": "t<n>", "status": "queued", "created": <unix>}``. Its finish time is the
  arrival time plus ``uniform(--min, --max)`` seconds, drawn from ``random.Random(--seed)`` in
  arrival order. Without ``"async": true`` the answer is a 400: this service only queues.
- ``GET /v1/images/generations/<id>``: ``{"id", "status": "processing"}`` before the finish time,
  ``{"id", "status": "succeeded", "data": [{"url": ...}]}`` from then on; 404 for unknown ids.
- ``GET /_stats``: what was seen, as JSON (see :meth:`Service.stats`). Not counted as a poll.

Every time is ``time.time()``, taken once per chunk of bytes read from a socket (the arrival
time), so finish times can be compared with the client's clock on the same machine.

Run: ``python benchmarks/_polling_server.py [--port 0] [--seed 1] [--min 1] [--max 10]``. Once
listening it prints ``PORT <n>`` on stdout. It stops on SIGTERM/SIGINT, and when its stdin reaches
end of file (unless stdin is a terminal), so it never outlives a parent that started it with a
pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import threading
import time
from typing import Any, Final

from _minimal_server import MAX_HEAD_BYTES, BadRequest, _Request, parse_chunked

GENERATIONS: Final = "/v1/images/generations"
TASK_PREFIX: Final = GENERATIONS + "/"
IMAGE_URL: Final = "https://cdn.example/x.png"
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


class Task:
    __slots__ = ("done_seen_at", "finish_at", "polls", "submitted_at")

    def __init__(self, submitted_at: float, finish_at: float) -> None:
        self.submitted_at = submitted_at
        self.finish_at = finish_at
        self.polls = 0
        self.done_seen_at: float | None = None  # arrival of the first poll answered "succeeded"


class Service:
    """The task table and the poll log; every answer is built here."""

    def __init__(self, seed: int, low: float, high: float) -> None:
        self._rng = random.Random(seed)
        self._low = low
        self._high = high
        self.tasks: dict[str, Task] = {}
        self.poll_times: list[float] = []
        self.not_found = 0
        self.rejected = 0

    def submit(self, body: bytes, now: float) -> tuple[bytes, bytes]:
        try:
            payload = json.loads(body)
        except ValueError:
            self.rejected += 1
            return b"400 Bad Request", BAD_REQUEST_BODY
        if not isinstance(payload, dict) or payload.get("async") is not True:
            self.rejected += 1
            return b"400 Bad Request", NOT_ASYNC_BODY
        task_id = f"t{len(self.tasks) + 1}"
        self.tasks[task_id] = Task(now, now + self._rng.uniform(self._low, self._high))
        return _OK, b'{"id": "%s", "status": "queued", "created": %d}' % (task_id.encode(), int(now))

    def poll(self, task_id: str, now: float) -> tuple[bytes, bytes]:
        task = self.tasks.get(task_id)
        if task is None:
            self.not_found += 1
            return b"404 Not Found", NOT_FOUND_BODY
        task.polls += 1
        self.poll_times.append(now)
        if now < task.finish_at:
            return _OK, b'{"id": "%s", "status": "processing"}' % task_id.encode()
        if task.done_seen_at is None:
            task.done_seen_at = now
        return _OK, b'{"id": "%s", "status": "succeeded", "data": [{"url": "%s"}]}' % (
            task_id.encode(),
            IMAGE_URL.encode(),
        )

    def stats(self) -> dict[str, Any]:
        """``tasks``: id -> [finish, polls, first "succeeded" poll's arrival or null, submission]."""
        return {
            "tasks": {
                task_id: [task.finish_at, task.polls, task.done_seen_at, task.submitted_at]
                for task_id, task in self.tasks.items()
            },
            "poll_times": self.poll_times,
            "not_found": self.not_found,
            "rejected": self.rejected,
        }

    def route(self, method: str, target: str, body: bytes, now: float) -> tuple[bytes, bytes]:
        path = target.split("?", 1)[0]
        if method == "GET" and path.startswith(TASK_PREFIX):
            return self.poll(path[len(TASK_PREFIX) :], now)
        if method == "POST" and path == GENERATIONS:
            return self.submit(body, now)
        if method == "GET" and path == "/_stats":
            return _OK, json.dumps(self.stats(), separators=(",", ":")).encode()
        return b"404 Not Found", NOT_FOUND_BODY


class PollingProtocol(asyncio.Protocol):
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
            self._process(time.time())
        except BadRequest:
            self._reply(b"400 Bad Request", BAD_REQUEST_BODY, keep_alive=False)

    def _process(self, now: float) -> None:
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
            status, answer = self._service.route(request.method, request.target, body, now)
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


async def serve(host: str, port: int, service: Service) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if sys.stdin is not None and not sys.stdin.isatty():
        threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    server = await loop.create_server(
        lambda: PollingProtocol(service), host, port, backlog=1024, reuse_address=True
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the finish times (1)")
    parser.add_argument("--min", type=float, default=1.0, help="shortest task, seconds (1)")
    parser.add_argument("--max", type=float, default=10.0, help="longest task, seconds (10)")
    args = parser.parse_args(argv)
    if not 0 <= args.min <= args.max:
        parser.error("need 0 <= --min <= --max")
    asyncio.run(serve(args.host, args.port, Service(args.seed, args.min, args.max)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
