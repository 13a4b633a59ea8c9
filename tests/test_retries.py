"""Retries and timeouts end to end: what is repeated, what never is, and what the caller is told.

The rules (see ``RetryPolicy``): any request is repeated after 408, 429 and the transient 5xx, and
after a connection that failed before anything was sent; a GET (poll, download) is also repeated
after a reset or a read timeout. A submission (POST) whose outcome is unknown (the connection broke
after sending, no answer in time, a 2xx answer that cannot be read) is never repeated: its error
says the call may have been charged and carries the ``Idempotency-Key`` it was sent with.

``AfterHandlerFaults`` breaks an answer *after* the fake's handler ran, i.e. after the task was
created: FakeMaxAPI's own ``Fault`` acts before the handler. It overrides the fake's private
``_dispatch``; the scope note in ``tests/test_soak.py`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import re
import select
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from aiohttp import web

import maxapi_async
from maxapi_async import AsyncMaxAPI, Hooks, PollPolicy, RetryEvent, RetryPolicy, Timeouts
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

pytestmark = pytest.mark.anyio

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
MODEL = "google/gemini-2.5-flash-image"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"
TRUNCATED = b'{"created": 1, "da'
KEY_FORMAT = re.compile(r"[0-9a-f]{32}")

Action = Literal["reset", "cut", "abort_mid_body"]


class AfterHandlerFaults(FakeMaxAPI):
    """A FakeMaxAPI that can run a request's handler (creating the task) and then break its answer.

    * ``"reset"``: drop the connection instead of answering;
    * ``"cut"``: answer with the first half of the body (valid HTTP, unreadable JSON);
    * ``"abort_mid_body"``: announce the full ``Content-Length``, send half, close the connection.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._after: list[tuple[Action, str, str, str | None]] = []

    def break_next(
        self,
        action: Action,
        *,
        origin: Literal["api", "cdn"] = "api",
        path: str = "",
        method: str | None = None,
    ) -> None:
        self._after.append((action, origin, path, method))

    async def _dispatch(
        self, origin: Literal["api", "cdn"], request: web.Request, handler: Any, request_id: str
    ) -> web.StreamResponse:
        action = None
        for entry in self._after:
            _, where, path, method = entry
            if where == origin and request.path.startswith(path) and method in (None, request.method):
                self._after.remove(entry)
                action = entry[0]
                break
        response = await super()._dispatch(origin, request, handler, request_id)
        if action is None:
            return response
        return await break_answer(self, request, response, action)


async def break_answer(
    fake: FakeMaxAPI, request: web.Request, response: web.StreamResponse, action: Action
) -> web.StreamResponse:
    """Break ``response`` (already produced by the handler) as ``action`` says."""
    assert isinstance(response, web.Response)
    body = response.body
    assert isinstance(body, bytes)
    if action == "reset":
        await fake._drop_connection(request)
    if action == "cut":
        cut = web.Response(status=response.status, body=body[: len(body) // 2])
        cut.content_type = response.content_type
        return cut
    stream = web.StreamResponse(status=response.status)
    stream.content_type = response.content_type
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    assert request.transport is not None
    request.transport.close()  # a FIN after the partial body: the client sees it end early
    await asyncio.sleep(5)  # connection_lost cancels this handler first
    raise ConnectionResetError("answer cut mid-body")


class Recorder:
    """Hooks that keep every retry event."""

    def __init__(self) -> None:
        self.retries: list[RetryEvent] = []
        self.hooks = Hooks(on_retry=self.retries.append)


@contextlib.asynccontextmanager
async def make_client(fake: FakeMaxAPI, **options: Any) -> AsyncIterator[AsyncMaxAPI]:
    options.setdefault("retry_policy", RetryPolicy.instant())
    options.setdefault("poll_policy", PollPolicy.instant())
    options.setdefault("max_polls_per_second", 1000)
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, **options) as client:
        yield client


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI, recorder: Recorder) -> AsyncIterator[AsyncMaxAPI]:
    async with make_client(fake_maxapi, hooks=recorder.hooks) as c:
        yield c


@pytest.fixture
async def after_fake() -> AsyncIterator[AfterHandlerFaults]:
    fake = AfterHandlerFaults(complete_after_polls=1)
    async with fake:
        yield fake


Call = Literal["generate", "generate queued", "edit", "generate_content", "generate_content queued"]
CALLS: tuple[Call, ...] = (
    "generate",
    "generate queued",
    "edit",
    "generate_content",
    "generate_content queued",
)


async def submit(client: AsyncMaxAPI, call: Call, *, timeout: float | None = None) -> object:
    """One submission; queued calls return their handle (no poll yet)."""
    if call == "generate":
        return await client.images.generate("a cube", timeout=timeout)
    if call == "generate queued":
        return await client.images.generate("a cube", wait=False, timeout=timeout)
    if call == "edit":
        return await client.images.edit("a cube", [make_png(8, 8)], timeout=timeout)
    if call == "generate_content":
        return await client.models.generate_content(contents="a cube", timeout=timeout)
    return await client.models.generate_content(contents="a cube", wait=False, timeout=timeout)


async def listdir(folder: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(folder).iterdir()])


def posts(fake: FakeMaxAPI) -> list[str | None]:
    """The Idempotency-Key of every POST the fake received, in order."""
    return [r.header("Idempotency-Key") for r in fake.requests if r.method == "POST"]


def assert_maybe_charged(err: BaseException, fake: FakeMaxAPI) -> None:
    """The error says plainly that the call may have been charged and names its key."""
    keys = posts(fake)
    assert len(keys) == 1, "a submission with an unknown outcome was repeated"
    assert "may have been charged" in str(err)
    key = getattr(err, "idempotency_key", None)
    assert key is not None
    assert key == keys[0]
    assert key in str(err)


# -- submissions: repeated only when the service said they failed ----------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
@pytest.mark.parametrize("call", CALLS)
async def test_a_failed_submission_is_repeated_with_the_same_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, recorder: Recorder, status: int, call: Call
) -> None:
    fake_maxapi.add_fault(Fault(status=status, method="POST"))
    await submit(client, call)
    keys = posts(fake_maxapi)
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert keys[0] is not None
    assert KEY_FORMAT.fullmatch(keys[0])
    assert [(e.method, e.attempt) for e in recorder.retries] == [("POST", 1)]
    assert f"HTTP {status}" in recorder.retries[0].reason


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422, 501])
async def test_other_statuses_are_not_repeated(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, status: int
) -> None:
    fake_maxapi.add_fault(Fault(status=status))
    with pytest.raises(maxapi_async.APIError) as info:
        await client.images.generate("a cube")
    assert info.value.status == status
    assert len(fake_maxapi.requests) == 1


async def test_every_submission_has_its_own_key(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    for call in CALLS:
        await submit(client, call)
    keys = posts(fake_maxapi)
    assert len(keys) == len(CALLS)
    assert len(set(keys)) == len(CALLS)


async def test_retries_stop_after_max_attempts(fake_maxapi: FakeMaxAPI, recorder: Recorder) -> None:
    fake_maxapi.add_fault(Fault(status=503, times=None))
    async with make_client(
        fake_maxapi, retry_policy=RetryPolicy.instant(max_attempts=3), hooks=recorder.hooks
    ) as c:
        with pytest.raises(maxapi_async.ServerError):
            await c.images.generate("a cube")
    assert len(fake_maxapi.requests) == 3
    assert [e.attempt for e in recorder.retries] == [1, 2]
    assert len(set(posts(fake_maxapi))) == 1


@pytest.mark.parametrize("call", CALLS)
async def test_a_submission_is_not_repeated_when_the_connection_breaks_after_sending(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, recorder: Recorder, call: Call
) -> None:
    fake_maxapi.add_fault(Fault(reset=True, method="POST"))
    with pytest.raises(maxapi_async.APIConnectionError) as info:
        await submit(client, call)
    err = info.value
    assert not isinstance(err, maxapi_async.APITimeoutError)
    assert err.sent
    assert_maybe_charged(err, fake_maxapi)
    assert recorder.retries == []


@pytest.mark.parametrize("call", CALLS)
async def test_a_submission_is_not_repeated_after_a_read_timeout(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, call: Call
) -> None:
    fake_maxapi.add_fault(Fault(delay=2.0, method="POST"))
    with pytest.raises(maxapi_async.APITimeoutError) as info:
        await submit(client, call, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert info.value.sent
    assert_maybe_charged(info.value, fake_maxapi)


@pytest.mark.parametrize("call", CALLS)
async def test_an_unreadable_2xx_answer_to_a_submission_may_have_been_charged(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, call: Call
) -> None:
    fake_maxapi.add_fault(Fault(status=200, body=TRUNCATED, method="POST"))
    with pytest.raises(maxapi_async.ResponseError) as info:
        await submit(client, call)
    assert info.value.status == 200
    assert info.value.request_id == fake_maxapi.requests[-1].request_id
    assert_maybe_charged(info.value, fake_maxapi)


async def test_an_unreadable_poll_answer_says_nothing_about_charges(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("a cube", wait=False)
    fake_maxapi.add_fault(Fault(status=200, body=TRUNCATED, method="GET", times=None))
    with pytest.raises(maxapi_async.ResponseError) as info:
        await handle.refresh()
    assert info.value.idempotency_key is None
    assert "charged" not in str(info.value)


@pytest.mark.parametrize("action", ["reset", "cut", "abort_mid_body"])
@pytest.mark.parametrize("call", ["generate queued", "generate_content queued", "generate"])
async def test_a_task_created_before_the_answer_was_lost_is_never_submitted_twice(
    after_fake: AfterHandlerFaults, action: Action, call: Call
) -> None:
    after_fake.break_next(action, method="POST")
    async with make_client(after_fake) as client:
        with pytest.raises((maxapi_async.APIConnectionError, maxapi_async.ResponseError)) as info:
            await submit(client, call)
    assert_maybe_charged(info.value, after_fake)
    if call.endswith("queued"):
        assert after_fake.created_tasks == 1


# -- connections that fail before anything is sent ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_not_sent_and_a_submission_is_retried(recorder: Recorder) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy.instant(max_attempts=3)
    async with AsyncMaxAPI("k", base_url=url, retry_policy=policy, hooks=recorder.hooks) as client:
        with pytest.raises(maxapi_async.APIConnectionError) as info:
            await client.images.generate("a cube")
    err = info.value
    assert not err.sent
    assert err.idempotency_key is None
    assert "charged" not in str(err)
    assert [e.attempt for e in recorder.retries] == [1, 2]
    assert all("before the request was sent" in e.reason for e in recorder.retries)


async def test_a_submission_refused_at_first_reaches_the_service_once(recorder: Recorder) -> None:
    received: list[str | None] = []

    async def generations(request: web.Request) -> web.Response:
        received.append(request.headers.get("Idempotency-Key"))
        return web.json_response({"created": 1, "data": [{"url": "http://127.0.0.1:9/a.png"}]})

    app = web.Application()
    app.router.add_post(GENERATIONS, generations)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    starting: list[asyncio.Task[None]] = []

    def open_the_port(event: RetryEvent) -> None:
        # The first refusal opens the port; the kernel queues the retry's connection
        # until the site accepts it.
        if not starting:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            starting.append(asyncio.ensure_future(web.SockSite(runner, sock).start()))
        recorder.retries.append(event)

    try:
        async with AsyncMaxAPI(
            "k",
            base_url=f"http://127.0.0.1:{port}",
            retry_policy=RetryPolicy.instant(),
            hooks=Hooks(on_retry=open_the_port),
        ) as client:
            result = await client.images.generate("a cube")
    finally:
        await asyncio.gather(*starting)
        await runner.cleanup()
    assert len(result.images) == 1
    assert len(received) == 1
    assert received[0] is not None
    assert len(recorder.retries) == 1
    assert "before the request was sent" in recorder.retries[0].reason


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose listen queue is full: a connect there hangs until it times out.

    Linux drops a SYN while the accept queue is full, so the connect neither succeeds nor is
    refused: a connect timeout without any address outside 127.0.0.1.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    opened = [server]
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            opened.append(filler)
        probe = socket.socket()
        probe.setblocking(False)
        opened.append(probe)
        probe.connect_ex(("127.0.0.1", port))
        _, writable, _ = select.select([], [probe], [], 0.2)
        if writable:
            pytest.skip("this kernel completes connections to a full listen queue")
        yield port
    finally:
        for sock in opened:
            sock.close()


async def test_a_connect_timeout_is_not_sent_and_a_submission_is_retried(recorder: Recorder) -> None:
    with unanswered_port() as port:
        timeouts = Timeouts(total=5.0, connect=0.2, read=5.0)
        policy = RetryPolicy.instant(max_attempts=2)
        async with AsyncMaxAPI(
            "k",
            base_url=f"http://127.0.0.1:{port}",
            timeout=timeouts,
            retry_policy=policy,
            hooks=recorder.hooks,
        ) as client:
            started = time.monotonic()
            with pytest.raises(maxapi_async.APITimeoutError) as info:
                await client.images.generate("a cube")
    assert time.monotonic() - started < 2.0
    err = info.value
    assert isinstance(err, TimeoutError)
    assert not err.sent
    assert "charged" not in str(err)
    assert len(recorder.retries) == 1
    assert "before the request was sent" in recorder.retries[0].reason


async def test_a_deadline_passed_waiting_for_a_connection_is_not_sent(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(delay=0.6))
    async with make_client(fake_maxapi, max_concurrency=1) as client:
        busy = asyncio.ensure_future(client.images.generate("holds the only connection"))
        await asyncio.sleep(0.1)  # the first call has the connection and waits for its answer
        with pytest.raises(maxapi_async.APITimeoutError) as info:
            await client.images.generate("waits for it", timeout=0.2)
        await busy
    assert not info.value.sent
    assert "charged" not in str(info.value)
    assert len(posts(fake_maxapi)) == 1


# -- polls are repeated after anything transient -------------------------------------------------


@pytest.mark.fake_maxapi(complete_after_polls=1)
@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=503, method="GET"),
        Fault(status=429, method="GET", headers={"Retry-After": "0"}),
        Fault(reset=True, method="GET", times=2),
    ],
    ids=["503", "429", "reset"],
)
async def test_a_poll_is_repeated_after_a_transient_failure(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, recorder: Recorder, fault: Fault
) -> None:
    handle = await client.images.generate("a cube", wait=False)
    fake_maxapi.add_fault(fault)
    await handle.refresh()
    assert handle.done()
    assert recorder.retries
    assert all(e.method == "GET" for e in recorder.retries)


@pytest.mark.fake_maxapi(complete_after_polls=1)
async def test_a_poll_is_repeated_after_a_read_timeout(fake_maxapi: FakeMaxAPI, recorder: Recorder) -> None:
    timeouts = Timeouts(total=10.0, connect=5.0, read=0.2)
    async with make_client(fake_maxapi, timeout=timeouts, hooks=recorder.hooks) as client:
        handle = await client.images.generate("a cube", wait=False)
        fake_maxapi.add_fault(Fault(delay=1.0, method="GET"))
        await handle.refresh()
    assert handle.done()
    assert len(recorder.retries) == 1
    assert "idempotent" in recorder.retries[0].reason


# -- downloads are GETs: repeated too ------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=503, origin="cdn"),
        Fault(status=429, origin="cdn", headers={"Retry-After": "0"}),
        Fault(reset=True, origin="cdn", times=3),
    ],
    ids=["503", "429", "reset"],
)
@pytest.mark.parametrize("how", ["read", "save"])
async def test_a_download_is_repeated_after_a_transient_failure(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, recorder: Recorder, tmp_path: Path, fault: Fault, how: str
) -> None:
    result = await client.images.generate("a cube")
    asset = result.images[0]
    fake_maxapi.add_fault(fault)
    if how == "read":
        data = await asset.read()
    else:
        data = (await asset.save(tmp_path / "cube.png")).read_bytes()
        assert await listdir(tmp_path) == ["cube.png"]
    assert data == fake_maxapi.assets[Path(asset.url or "").stem].data
    assert recorder.retries
    assert all(e.path.startswith("/assets/") for e in recorder.retries)


async def test_a_download_cut_mid_body_is_repeated(
    after_fake: AfterHandlerFaults, recorder: Recorder, tmp_path: Path
) -> None:
    async with make_client(after_fake, hooks=recorder.hooks) as client:
        asset = (await client.images.generate("a cube")).images[0]
        after_fake.break_next("abort_mid_body", origin="cdn")
        data = await asset.read()
        after_fake.break_next("abort_mid_body", origin="cdn")
        saved = await asset.save(tmp_path / "cube.png")
    assert data == saved.read_bytes()
    assert len(after_fake.cdn_requests) == 4
    assert len(recorder.retries) == 2
    assert await listdir(tmp_path) == ["cube.png"]


async def test_a_download_is_repeated_after_a_read_timeout(
    fake_maxapi: FakeMaxAPI, recorder: Recorder
) -> None:
    timeouts = Timeouts(total=10.0, connect=5.0, read=0.2)
    async with make_client(fake_maxapi, timeout=timeouts, hooks=recorder.hooks) as client:
        asset = (await client.images.generate("a cube")).images[0]
        fake_maxapi.add_fault(Fault(delay=1.0, origin="cdn"))
        assert await asset.read()
    assert len(fake_maxapi.cdn_requests) == 2
    assert len(recorder.retries) == 1


async def test_a_download_that_keeps_failing_leaves_no_file(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    asset = (await client.images.generate("a cube")).images[0]
    fake_maxapi.add_fault(Fault(status=503, origin="cdn", times=None))
    with pytest.raises(maxapi_async.ServerError):
        await asset.save(tmp_path / "cube.png")
    assert len(fake_maxapi.cdn_requests) == 4
    assert await listdir(tmp_path) == []


async def test_an_expired_asset_is_not_repeated(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    asset = (await client.images.generate("a cube")).images[0]
    fake_maxapi.add_fault(Fault(status=404, origin="cdn", times=None))
    with pytest.raises(maxapi_async.NotFoundError):
        await asset.read()
    assert len(fake_maxapi.cdn_requests) == 1


# -- Retry-After and backoff ---------------------------------------------------------------------


def http_date(offset: float) -> str:
    return email.utils.format_datetime(
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset), usegmt=True
    )


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("0.25", 0.25), (http_date(-60), 0.0)],
    ids=["seconds", "http date passed"],
)
async def test_retry_after_is_the_wait_within_the_cap(
    fake_maxapi: FakeMaxAPI, recorder: Recorder, retry_after: str, expected: float
) -> None:
    policy = RetryPolicy(initial=5.0, max_delay=5.0, max_retry_after=0.4)  # backoff alone would wait seconds
    fake_maxapi.fail_next(429, headers={"Retry-After": retry_after})
    async with make_client(fake_maxapi, retry_policy=policy, hooks=recorder.hooks) as client:
        started = time.monotonic()
        await client.images.generate("a cube")
        waited = time.monotonic() - started
    [event] = recorder.retries
    assert event.delay == pytest.approx(expected)
    assert "Retry-After" in event.reason
    assert expected <= waited < expected + 1.0


@pytest.mark.parametrize("retry_after", ["3600", http_date(3600)], ids=["seconds", "http date"])
@pytest.mark.parametrize("wait", [True, False], ids=["call", "submission"])
async def test_a_retry_after_beyond_the_cap_fails_at_once_with_the_hint(
    fake_maxapi: FakeMaxAPI, recorder: Recorder, retry_after: str, wait: bool
) -> None:
    # Before: the client waited the 60 s cap, asked again inside the hour, and failed after minutes.
    fake_maxapi.add_fault(Fault(status=429, headers={"Retry-After": retry_after}, times=None))
    async with make_client(fake_maxapi, retry_policy=RetryPolicy(), hooks=recorder.hooks) as client:
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(maxapi_async.RateLimitError) as caught:
            await client.images.generate("a cube", wait=wait)
        assert time.monotonic() - started < 0.5
    assert caught.value.retry_after is not None
    assert 3000 < caught.value.retry_after <= 3600  # an HTTP date counts down from collection time
    assert len(fake_maxapi.requests) == 1
    assert not recorder.retries


async def test_backoff_without_a_hint_is_full_jitter_under_a_cap(
    fake_maxapi: FakeMaxAPI, recorder: Recorder
) -> None:
    policy = RetryPolicy(max_attempts=5, initial=0.02, multiplier=2.0, max_delay=0.05)
    fake_maxapi.fail_next(503, times=4)
    async with make_client(fake_maxapi, retry_policy=policy, hooks=recorder.hooks) as client:
        await client.images.generate("a cube")
    ceilings = [0.02, 0.04, 0.05, 0.05]
    assert [e.attempt for e in recorder.retries] == [1, 2, 3, 4]
    for event, ceiling in zip(recorder.retries, ceilings, strict=True):
        assert 0.0 <= event.delay <= ceiling


async def test_no_retry_would_pass_the_calls_deadline(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.fail_next(503, headers={"Retry-After": "30"}, times=None)
    async with make_client(fake_maxapi, retry_policy=RetryPolicy()) as client:
        started = time.monotonic()
        with pytest.raises(maxapi_async.ServerError):
            await client.images.generate("a cube", timeout=2.0)
    assert time.monotonic() - started < 1.0
    assert len(fake_maxapi.requests) == 1


# -- timeouts ------------------------------------------------------------------------------------


def test_timeout_defaults_allow_for_a_slow_synchronous_generation() -> None:
    assert Timeouts() == Timeouts(total=180.0, connect=10.0, read=150.0)
    read = Timeouts().read
    assert read is not None
    assert read >= 60  # a synchronous generation can take a minute before its first byte
    client = AsyncMaxAPI("k")
    assert client.timeouts == Timeouts()


def test_a_client_timeout_is_a_number_or_timeouts() -> None:
    assert AsyncMaxAPI("k", timeout=30).timeouts == Timeouts(total=30.0, connect=10.0, read=150.0)
    custom = Timeouts(total=None, connect=1.0, read=2.0)
    assert AsyncMaxAPI("k", timeout=custom).timeouts is custom


@pytest.mark.parametrize("options", [{"read": -1.0}, {"connect": 0}, {"total": float("nan")}, {"read": "5"}])
def test_bad_timeouts_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(maxapi_async.ConfigurationError):
        Timeouts(**options)


async def test_the_client_read_timeout_raises_the_librarys_timeout_error(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(delay=1.0))
    async with make_client(fake_maxapi, timeout=Timeouts(total=10.0, connect=5.0, read=0.2)) as client:
        started = time.monotonic()
        with pytest.raises(maxapi_async.APITimeoutError) as info:
            await client.images.generate("a cube")
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < 0.9


async def test_a_per_call_timeout_overrides_the_clients(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(delay=0.5))
    async with make_client(fake_maxapi, timeout=0.2) as client:
        result = await client.images.generate("a cube", timeout=5.0)
        assert len(result.images) == 1
        fake_maxapi.add_fault(Fault(delay=0.5))
        with pytest.raises(TimeoutError):
            await client.images.generate("a cube")


async def test_the_whole_call_deadline_bounds_a_polled_wait(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.complete_after_polls = 1_000_000
    steady = PollPolicy(earliest=0.0, latest=0.0, initial=0.02, max_delay=0.02, jitter=0.0)
    async with make_client(fake_maxapi, wait_by_polling=True, poll_policy=steady) as client:
        started = time.monotonic()
        with pytest.raises(maxapi_async.APITimeoutError) as info:
            await client.images.generate("a cube", timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert 0.3 <= time.monotonic() - started < 1.5
