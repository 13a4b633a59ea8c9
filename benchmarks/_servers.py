"""The fake services the benchmarks run against: one HTTP/1.1 framing, four small route tables.

Each service runs in its **own process**, so its CPU never lands on the client being measured. It
is a raw :class:`asyncio.Protocol` (no framework, no access log): keep-alive, pipelined and split
requests, ``Content-Length`` or chunked bodies, ``Expect: 100-continue``, ``Connection: close``
and HTTP/1.0 are handled, so it keeps up with several thousand requests a second on a small
machine. Anything a route table does not know gets a 404 with an OpenAI-shaped error body.

Route tables (the first argument picks one):

``minimal`` (``overhead.py``; every answer carries ``x-request-id``)
    ``POST /v1/images/generations``: an OpenAI ImagesResponse with one image URL.
    ``POST /<version>/models/<model id, may hold "/">:generateContent``: a small Gemini answer
    whose image is a ``fileData`` URL (google-genai asks for
    ``/v1beta/models/google/gemini-2.5-flash-image:generateContent``).

``polling`` (``polling.py``)
    ``POST /v1/images/generations`` with ``"async": true``: task ``t<n>``, answered ``{"id",
    "status": "queued", "created"}``; it finishes ``uniform(--min, --max)`` seconds after it
    arrived, drawn from ``random.Random(--seed)`` in arrival order. Without ``"async": true``: 400.
    ``GET /v1/images/generations/<id>``: ``processing`` before the finish time, then ``succeeded``
    with ``data[0].url``. ``GET /_stats``: every task and every poll's arrival time (see
    :meth:`PollingApp.stats`). Times are ``time.time()`` taken once per chunk read from a socket,
    so they compare with the client's clock on the same machine.

``batch`` (``batch.py``)
    ``POST /v1/images/generations`` with ``"async": true``: task ``t<n>`` (from 1), queued.
    ``GET /v1/images/generations/t<n>``: ``succeeded`` with ``https://cdn.example/t<n>.png`` at
    once, however early. ``GET /_stats[?from=<n>]``: counters, the per-task ones over ``t<n>`` and
    later, and the server's own CPU time (see :meth:`BatchApp.stats`).

``payload`` (``payload.py``; every answer carries ``x-request-id``)
    ``POST /v1/images/generations``: an ImagesResponse with ``--images`` images (default 4) of
    ``--image-bytes`` bytes each (default 1,500,000) as ``b64_json``. ``POST ...:generateContent``:
    a Gemini answer with the same images as ``inlineData`` parts. Each image is a PNG signature,
    a 1024x1024 RGB ``IHDR``, an ``IDAT`` of random bytes from ``random.Random(--seed)`` (so it
    does not compress) and ``IEND``, CRCs included: the client sniffs the type and reads the size
    as from a real PNG. Both bodies are built once, at start.

Run: ``python benchmarks/_servers.py {minimal,polling,batch,payload} [--host 127.0.0.1] [--port 0]
[route table options]``. Once listening it prints ``PORT <n>`` on stdout. It stops on
SIGTERM/SIGINT, and when its stdin reaches end of file (unless stdin is a terminal), so it never
outlives a parent that started it with a pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import signal
import struct
import sys
import threading
import time
import zlib
from array import array
from collections.abc import Callable
from typing import Any, Final, Protocol

MAX_HEAD_BYTES: Final = 64 * 1024
GENERATIONS: Final = "/v1/images/generations"
TASK_PREFIX: Final = GENERATIONS + "/"
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

OK: Final = b"200 OK"
NOT_FOUND: Final = b"404 Not Found"
BAD_REQUEST: Final = b"400 Bad Request"
NOT_FOUND_BODY: Final = (
    b'{"error": {"message": "no such route or task", "type": "not_found", "param": null,'
    b' "code": "not_found"}}'
)
BAD_REQUEST_BODY: Final = (
    b'{"error": {"message": "malformed request", "type": "invalid_request_error",'
    b' "param": null, "code": "bad_request"}}'
)
NOT_ASYNC_BODY: Final = (
    b'{"error": {"message": "this benchmark service only queues: send \\"async\\": true",'
    b' "type": "invalid_request_error", "param": "async", "code": "bad_request"}}'
)
_HEAD_END: Final = b"\r\n\r\n"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

Answer = tuple[bytes, bytes]  # (status line text, body)


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can frame."""


# --------------------------------------------------------------------------------------------
# Framing.
# --------------------------------------------------------------------------------------------


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


class Request:
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


class App(Protocol):
    """A route table: answers one framed request."""

    #: Whether every answer carries ``x-request-id: req-<n>`` (as MaxAPI's do).
    request_ids: bool

    def route(self, method: str, path: str, query: str, body: bytes, now: float) -> Answer: ...


class HTTPProtocol(asyncio.Protocol):
    """One connection: frame requests (body included) out of the byte stream, answer each in order."""

    def __init__(self, app: App, counter: list[int]) -> None:
        self._app = app
        self._counter = counter
        self._buf = bytearray()
        self._pending: Request | None = None
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
            self._reply(BAD_REQUEST, BAD_REQUEST_BODY, keep_alive=False)

    def _process(self, now: float) -> None:
        while self._transport is not None:
            request = self._pending
            if request is None:
                head_end = self._buf.find(_HEAD_END)
                if head_end < 0:
                    if len(self._buf) > MAX_HEAD_BYTES:
                        raise BadRequest("request head too large")
                    return
                request = Request(bytes(self._buf[:head_end]), head_end + len(_HEAD_END))
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
            path, _, query = request.target.partition("?")
            status, answer = self._app.route(request.method, path, query, body, now)
            self._reply(status, answer, keep_alive=request.keep_alive)

    def _reply(self, status: bytes, body: bytes, *, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        self._counter[0] += 1
        request_id = b"x-request-id: req-%d\r\n" % self._counter[0] if self._app.request_ids else b""
        connection = b"" if keep_alive else b"Connection: close\r\n"
        head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n" % (
            status,
            len(body),
            request_id,
            connection,
        )
        if len(body) > 65536:
            transport.writelines((head, body))  # no copy of a large body into the head
        else:
            transport.write(head + body)
        if not keep_alive:
            transport.close()
            self._transport = None


# --------------------------------------------------------------------------------------------
# Route tables.
# --------------------------------------------------------------------------------------------


def is_generate_content(path: str) -> bool:
    # /v1beta/models/google/gemini-2.5-flash-image:generateContent (the id holds a slash).
    return path.startswith("/v1") and "/models/" in path and path.endswith(":generateContent")


def is_async(body: bytes) -> bool:
    if b'"async":true' in body:  # what the client's compact JSON encoder writes
        return True
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("async") is True


class MinimalApp:
    """Canned answers for ``overhead.py``: one image URL, OpenAI-shaped or Gemini-shaped."""

    request_ids = True
    IMAGE_URL: Final = "https://cdn.maxapi.dev/a/img.png"
    IMAGES_BODY: Final = (
        b'{"created": 1732400000, "data": [{"url": "https://cdn.maxapi.dev/a/img.png",'
        b' "revised_prompt": null}]}'
    )
    GEMINI_BODY: Final = (
        b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}, {"fileData":'
        b' {"mimeType": "image/png", "fileUri": "https://cdn.maxapi.dev/a/img.png"}}]},'
        b' "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 5,'
        b' "candidatesTokenCount": 1290, "totalTokenCount": 1295},'
        b' "modelVersion": "gemini-2.5-flash-image"}'
    )

    def route(self, method: str, path: str, query: str, body: bytes, now: float) -> Answer:
        if method == "POST":
            if path == GENERATIONS:
                return OK, self.IMAGES_BODY
            if is_generate_content(path):
                return OK, self.GEMINI_BODY
        return NOT_FOUND, NOT_FOUND_BODY


class Task:
    __slots__ = ("done_seen_at", "finish_at", "polls", "submitted_at")

    def __init__(self, submitted_at: float, finish_at: float) -> None:
        self.submitted_at = submitted_at
        self.finish_at = finish_at
        self.polls = 0
        self.done_seen_at: float | None = None  # arrival of the first poll answered "succeeded"


class PollingApp:
    """Queued tasks that finish ``uniform(low, high)`` seconds after they arrive; logs every poll."""

    request_ids = False
    IMAGE_URL: Final = "https://cdn.example/x.png"

    def __init__(self, seed: int, low: float, high: float) -> None:
        self._rng = random.Random(seed)
        self._low = low
        self._high = high
        self.tasks: dict[str, Task] = {}
        self.poll_times: list[float] = []
        self.not_found = 0
        self.rejected = 0

    def submit(self, body: bytes, now: float) -> Answer:
        if not is_async(body):
            self.rejected += 1
            return BAD_REQUEST, NOT_ASYNC_BODY
        task_id = f"t{len(self.tasks) + 1}"
        self.tasks[task_id] = Task(now, now + self._rng.uniform(self._low, self._high))
        return OK, b'{"id": "%s", "status": "queued", "created": %d}' % (task_id.encode(), int(now))

    def poll(self, task_id: str, now: float) -> Answer:
        task = self.tasks.get(task_id)
        if task is None:
            self.not_found += 1
            return NOT_FOUND, NOT_FOUND_BODY
        task.polls += 1
        self.poll_times.append(now)
        if now < task.finish_at:
            return OK, b'{"id": "%s", "status": "processing"}' % task_id.encode()
        if task.done_seen_at is None:
            task.done_seen_at = now
        return OK, b'{"id": "%s", "status": "succeeded", "data": [{"url": "%s"}]}' % (
            task_id.encode(),
            self.IMAGE_URL.encode(),
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

    def route(self, method: str, path: str, query: str, body: bytes, now: float) -> Answer:
        if method == "GET" and path.startswith(TASK_PREFIX):
            return self.poll(path[len(TASK_PREFIX) :], now)
        if method == "POST" and path == GENERATIONS:
            return self.submit(body, now)
        if method == "GET" and path == "/_stats":
            return OK, json.dumps(self.stats(), separators=(",", ":")).encode()
        return NOT_FOUND, NOT_FOUND_BODY


class BatchApp:
    """Queued tasks that are finished when first polled; counts polls per task."""

    request_ids = False
    URL_TEMPLATE: Final = "https://cdn.example/t%d.png"

    def __init__(self) -> None:
        self.polls_per_task = array("l")  # index n - 1 for task t<n>
        self.polls = 0
        self.not_found = 0
        self.rejected = 0
        self.requests = 0

    def submit(self, body: bytes, now: float) -> Answer:
        if not is_async(body):
            self.rejected += 1
            return BAD_REQUEST, NOT_ASYNC_BODY
        self.polls_per_task.append(0)
        n = len(self.polls_per_task)
        return OK, b'{"id": "t%d", "status": "queued", "created": %d}' % (n, int(now))

    def poll(self, task_id: str) -> Answer:
        number = task_id[1:] if task_id.startswith("t") else ""
        n = int(number) if number.isdigit() else 0
        if not 1 <= n <= len(self.polls_per_task):
            self.not_found += 1
            return NOT_FOUND, NOT_FOUND_BODY
        self.polls += 1
        self.polls_per_task[n - 1] += 1
        return OK, b'{"id": "t%d", "status": "succeeded", "data": [{"url": "%s"}]}' % (
            n,
            (self.URL_TEMPLATE % n).encode(),
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

    def route(self, method: str, path: str, query: str, body: bytes, now: float) -> Answer:
        if method == "GET" and path == "/_stats":  # not counted as a request
            first = query[len("from=") :] if query.startswith("from=") else "1"
            return OK, json.dumps(self.stats(int(first) if first.isdigit() else 1)).encode()
        self.requests += 1
        if method == "GET" and path.startswith(TASK_PREFIX):
            return self.poll(path[len(TASK_PREFIX) :])
        if method == "POST" and path == GENERATIONS:
            return self.submit(body, time.time())
        return NOT_FOUND, NOT_FOUND_BODY


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def random_png(size: int, rng: random.Random, width: int = 1024, height: int = 1024) -> bytes:
    """``size`` bytes that read as a ``width`` x ``height`` RGB PNG: real header, random ``IDAT``."""
    head = PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    tail = _png_chunk(b"IEND", b"")
    filler = size - len(head) - len(tail) - 12
    if filler < 0:
        raise ValueError(f"an image of {size} bytes is too small for its PNG header")
    return head + _png_chunk(b"IDAT", rng.randbytes(filler)) + tail


class PayloadApp:
    """Answers carrying big inline images: ``b64_json`` (OpenAI) and ``inlineData`` (Gemini)."""

    request_ids = True

    def __init__(self, images: int, image_bytes: int, seed: int) -> None:
        rng = random.Random(seed)
        encoded = [base64.b64encode(random_png(image_bytes, rng)).decode("ascii") for _ in range(images)]
        self.images_body = json.dumps(
            {"created": 1732400000, "data": [{"b64_json": b, "revised_prompt": None} for b in encoded]}
        ).encode()
        parts: list[dict[str, Any]] = [{"text": "ok"}]
        parts += [{"inlineData": {"mimeType": "image/png", "data": b}} for b in encoded]
        self.gemini_body = json.dumps(
            {
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1290 * images},
                "modelVersion": "gemini-2.5-flash-image",
            }
        ).encode()

    def route(self, method: str, path: str, query: str, body: bytes, now: float) -> Answer:
        if method == "POST":
            if path == GENERATIONS:
                return OK, self.images_body
            if is_generate_content(path):
                return OK, self.gemini_body
        return NOT_FOUND, NOT_FOUND_BODY


# --------------------------------------------------------------------------------------------
# Serving.
# --------------------------------------------------------------------------------------------


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Block on stdin in a thread; end of file (the parent went away) stops the server."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(app: App, host: str = "127.0.0.1", port: int = 0) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if sys.stdin is not None and not sys.stdin.isatty():
        threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    counter = [0]
    server = await loop.create_server(
        lambda: HTTPProtocol(app, counter), host, port, backlog=1024, reuse_address=True
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def _build_app(args: argparse.Namespace) -> App:
    factories: dict[str, Callable[[], App]] = {
        "minimal": MinimalApp,
        "polling": lambda: PollingApp(args.seed, args.min, args.max),
        "batch": BatchApp,
        "payload": lambda: PayloadApp(args.images, args.image_bytes, args.seed),
    }
    return factories[args.kind]()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=["minimal", "polling", "batch", "payload"], help="route table")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=int, default=1, help="polling, payload: random seed (1)")
    parser.add_argument("--min", type=float, default=1.0, help="polling: shortest task, s (1)")
    parser.add_argument("--max", type=float, default=10.0, help="polling: longest task, s (10)")
    parser.add_argument("--images", type=int, default=4, help="payload: images per answer (4)")
    parser.add_argument(
        "--image-bytes", type=int, default=1_500_000, help="payload: bytes per image (1500000)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.min <= args.max:
        parser.error("need 0 <= --min <= --max")
    if args.images < 1 or args.image_bytes < 100:
        parser.error("need --images >= 1 and --image-bytes >= 100")
    asyncio.run(serve(_build_app(args), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
