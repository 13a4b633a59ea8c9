"""Queued image tasks end to end: ``wait=False``, TaskHandle, the poll loop, against FakeMaxAPI."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import attrs
import pytest

import maxapi_async
from maxapi_async import AsyncMaxAPI, ImageResult, PollPolicy, RetryPolicy, TaskHandle
from maxapi_async._client.handles import MAX_CONSECUTIVE_POLL_FAILURES
from maxapi_async.testing import FakeMaxAPI, Fault, RecordedRequest, make_png

pytestmark = pytest.mark.anyio

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"

#: Polls at a real but short period, for tests that watch polling stop.
SLOW_POLLS = PollPolicy(earliest=0, latest=0, initial=0.02, max_delay=0.02, jitter=0)


async def settled_request_count(fake: FakeMaxAPI) -> int:
    """The fake's request count once polls already on the wire have landed.

    A poll sent just before its loop stopped is recorded by the fake (on its own thread) a
    moment later; counting at once would see it arrive afterwards as a "new" poll.
    """
    await asyncio.sleep(0.05)
    return len(fake.requests)


@contextlib.asynccontextmanager
async def make_client(fake: FakeMaxAPI, **options: Any) -> AsyncIterator[AsyncMaxAPI]:
    """A client on ``fake`` that never sleeps unless told otherwise."""
    options.setdefault("poll_policy", PollPolicy.instant())
    options.setdefault("retry_policy", RetryPolicy.instant())
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, **options) as client:
        yield client


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with make_client(fake_maxapi) as c:
        yield c


@pytest.fixture
async def no_retry_client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    # Request retries off: a failed poll reaches the poll loop itself.
    async with make_client(fake_maxapi, retry_policy=RetryPolicy.none()) as c:
        yield c


def polls(fake: FakeMaxAPI, handle: TaskHandle[Any]) -> list[RecordedRequest]:
    """The GET requests the fake received for ``handle``'s task."""
    return [r for r in fake.requests if r.method == "GET" and r.path.endswith(f"/{handle.id}")]


def poller_tasks() -> list[asyncio.Task[Any]]:
    """Live asyncio tasks running a handle's poll loop."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "TaskHandle._run"
    ]


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (polling the predicate) until ``predicate()`` holds; fail after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - the fake's request log has no event to wait on
            await asyncio.sleep(0.005)


# -- submitting -------------------------------------------------------------------


async def test_generate_wait_false_sends_async_true_and_returns_a_handle(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("a glass cube", wait=False)
    assert isinstance(handle, TaskHandle)
    assert handle.kind == "generation"
    (submit,) = fake_maxapi.requests  # returned on the submit answer: no poll yet
    assert submit.method == "POST"
    assert submit.path == GENERATIONS
    assert submit.json["async"] is True
    assert handle.id.startswith("task_")
    assert not handle.done()


async def test_edit_wait_false_sends_async_true_as_a_form_field(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.edit("put it on a beach", [make_png(64, 64)], wait=False)
    assert handle.kind == "edit"
    (submit,) = fake_maxapi.requests
    assert submit.path == EDITS
    assert submit.form["async"] == "true"


async def test_edit_handle_polls_the_edits_endpoint(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    handle = await client.images.edit("put it on a beach", [make_png(64, 64)], aspect_ratio="1:1", wait=False)
    result = await handle
    assert result.images[0].size == (1024, 1024)
    assert {r.path for r in polls(fake_maxapi, handle)} == {f"{EDITS}/{handle.id}"}


async def test_awaited_handle_gives_the_same_result_as_the_synchronous_call(client: AsyncMaxAPI) -> None:
    kwargs: dict[str, Any] = {"aspect_ratio": "16:9", "response_format": "b64_json", "n": 2}
    direct = await client.images.generate("a glass cube", **kwargs)
    queued = await (await client.images.generate("a glass cube", wait=False, **kwargs))
    assert type(queued) is type(direct) is ImageResult
    assert queued.model == direct.model
    assert [i.size for i in queued.images] == [i.size for i in direct.images] == [(1344, 768)] * 2
    assert [i.data for i in queued.images] == [i.data for i in direct.images]
    assert [i.mime_type for i in queued.images] == ["image/png"] * 2


async def test_url_result_of_a_queued_task_downloads_without_the_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    result = await (await client.images.generate("a glass cube", aspect_ratio="3:2", wait=False))
    data = await result.images[0].read()
    assert result.images[0].size == (1248, 832)
    assert data.startswith(b"\x89PNG")
    assert fake_maxapi.cdn_requests
    assert all(r.header("Authorization") is None for r in fake_maxapi.cdn_requests)


# -- the handle -----------------------------------------------------------------------


async def test_status_is_the_last_state_seen_with_progress(client: AsyncMaxAPI) -> None:
    handle = await client.images.generate("x", wait=False)
    assert (handle.status.state, handle.status.word, handle.status.progress) == ("pending", "queued", 0)
    await handle.refresh()
    assert (handle.status.state, handle.status.word, handle.status.progress) == ("running", "processing", 50)
    await handle.refresh()
    assert (handle.status.state, handle.status.word, handle.status.progress) == (
        "succeeded",
        "succeeded",
        100,
    )
    assert handle.done()


async def test_refresh_sends_exactly_one_poll_and_returns_the_new_status(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("x", wait=False)
    before = len(fake_maxapi.requests)
    status = await handle.refresh()
    assert len(fake_maxapi.requests) == before + 1
    assert fake_maxapi.requests[-1].path == f"{GENERATIONS}/{handle.id}"
    assert status == handle.status
    assert status.state == "running"


async def test_refresh_of_a_finished_handle_sends_nothing(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("x", wait=False)
    await handle
    before = len(fake_maxapi.requests)
    assert (await handle.refresh()).state == "succeeded"
    assert len(fake_maxapi.requests) == before


async def test_awaiting_a_finished_handle_again_sends_no_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("x", wait=False)
    first = await handle
    before = len(fake_maxapi.requests)
    assert await handle is first
    assert await handle.wait(timeout=1) is first
    assert len(fake_maxapi.requests) == before


@pytest.mark.fake_maxapi(complete_after_polls=3)
async def test_concurrent_awaits_share_one_poll_loop(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    alone = await client.images.generate("x", wait=False)
    await alone
    shared = await client.images.generate("x", wait=False)
    results = await asyncio.gather(*(shared.wait() for _ in range(10)), shared, shared.wait(timeout=5))
    assert all(r is results[0] for r in results)
    assert len(polls(fake_maxapi, shared)) == len(polls(fake_maxapi, alone)) == 3


async def test_wait_with_a_timeout_returns_the_result_when_it_is_in_time(client: AsyncMaxAPI) -> None:
    handle = await client.images.generate("x", wait=False)
    result = await handle.wait(timeout=5)
    assert isinstance(result, ImageResult)
    assert handle.done()


async def test_repr_shows_kind_id_state_and_progress(client: AsyncMaxAPI) -> None:
    handle = await client.images.generate("x", wait=False)
    assert repr(handle) == f"<TaskHandle generation {handle.id} pending 0%>"
    await handle.refresh()
    assert repr(handle) == f"<TaskHandle generation {handle.id} running 50%>"


async def test_handle_keeps_the_submit_request_facts_on_its_ref(client: AsyncMaxAPI) -> None:
    handle = await client.images.generate("x", aspect_ratio="4:3", wait=False)
    ref = handle.ref
    assert (ref.id, ref.kind, ref.aspect_ratio) == (handle.id, "generation", "4:3")
    assert ref.model == maxapi_async.DEFAULT_MODEL
    assert ref.submitted_at is not None
    assert abs(ref.submitted_at - time.time()) < 60


# -- wait_by_polling -----------------------------------------------------------------------


async def test_wait_by_polling_submits_queued_and_polls_for_the_same_result(fake_maxapi: FakeMaxAPI) -> None:
    kwargs: dict[str, Any] = {"aspect_ratio": "9:16", "response_format": "b64_json"}
    async with make_client(fake_maxapi) as plain:
        held = await plain.images.generate("a glass cube", **kwargs)
    assert fake_maxapi.requests[-1].json.get("async") is None
    fake_maxapi.clear()
    async with make_client(fake_maxapi, wait_by_polling=True) as polling:
        polled = await polling.images.generate("a glass cube", **kwargs)
    submit, *rest = fake_maxapi.requests
    assert submit.json["async"] is True
    assert rest
    assert all(r.method == "GET" for r in rest)
    assert type(polled) is type(held) is ImageResult
    assert polled.model == held.model
    assert [i.size for i in polled.images] == [i.size for i in held.images] == [(768, 1344)]
    assert [i.data for i in polled.images] == [i.data for i in held.images]


async def test_wait_by_polling_applies_to_edits_too(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, wait_by_polling=True) as client:
        result = await client.images.edit("on a beach", [make_png(64, 64)], aspect_ratio="1:1")
    assert isinstance(result, ImageResult)
    assert fake_maxapi.requests[0].form["async"] == "true"
    assert fake_maxapi.requests[-1].path.startswith(f"{EDITS}/")


@pytest.mark.fake_maxapi(complete_after_seconds=1.0)
async def test_wait_by_polling_keeps_the_call_timeout_over_submission_and_polling(
    fake_maxapi: FakeMaxAPI,
) -> None:
    async with make_client(fake_maxapi, wait_by_polling=True, poll_policy=SLOW_POLLS) as client:
        started = time.monotonic()
        with pytest.raises(maxapi_async.TaskTimeoutError) as caught:
            await client.images.generate("x", timeout=0.15)
        assert time.monotonic() - started < 0.5
        assert not poller_tasks()
    assert caught.value.handle.kind == "generation"


# -- task object variants ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "style",
    [
        pytest.param(style, marks=pytest.mark.fake_maxapi(task_style=style))
        for style in ("plain", "envelope", "camel", "result_data")
    ],
)
async def test_every_task_style_parses_over_http(client: AsyncMaxAPI, style: str) -> None:
    handle = await client.images.generate("x", aspect_ratio="2:3", wait=False)
    assert handle.status.state == "pending"
    result = await handle
    assert handle.status.state == "succeeded"
    assert [i.size for i in result.images] == [(832, 1248)]
    assert result.images[0].url is not None


@pytest.mark.parametrize(
    "words",
    [
        pytest.param(w, marks=pytest.mark.fake_maxapi(status_words=w))
        for w in (
            {"pending": "QUEUED", "running": "Processing", "succeeded": "SUCCESS"},
            {"pending": "Submitted", "running": "IN_PROGRESS", "succeeded": "Completed"},
            {"pending": "not_started", "running": "Generating", "succeeded": "DONE"},
            {"pending": "Waiting", "running": "started", "succeeded": "Finished"},
        )
    ],
)
async def test_status_words_in_any_case_parse_over_http(client: AsyncMaxAPI, words: dict[str, str]) -> None:
    handle = await client.images.generate("x", wait=False)
    assert (handle.status.state, handle.status.word) == ("pending", words["pending"])
    await handle.refresh()
    assert (handle.status.state, handle.status.word) == ("running", words["running"])
    result = await handle
    assert (handle.status.state, handle.status.word) == ("succeeded", words["succeeded"])
    assert len(result.images) == 1


@pytest.mark.fake_maxapi(status_words={"running": "thinking_hard"})
async def test_an_unknown_status_word_is_running_not_success(
    client: AsyncMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await client.images.generate("x", wait=False)
    await handle.refresh()
    assert (handle.status.state, handle.status.word) == ("running", "thinking_hard")
    assert not handle.done()
    assert "thinking_hard" in caplog.text
    assert len((await handle).images) == 1


@pytest.mark.parametrize(
    "style",
    [
        pytest.param(style, marks=pytest.mark.fake_maxapi(task_style="envelope", poll_url_style=style))
        for style in ("relative", "absolute", "none")
    ],
)
async def test_polls_go_to_the_task_path_on_the_api_origin(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, style: str
) -> None:
    handle = await client.images.generate("x", wait=False)
    await handle
    assert [r.path for r in polls(fake_maxapi, handle)] == [f"{GENERATIONS}/{handle.id}"] * 2
    assert all(r.header("Authorization") == f"Bearer {fake_maxapi.api_key}" for r in fake_maxapi.requests)


@pytest.mark.parametrize("absolute", [False, True])
async def test_a_same_origin_poll_url_is_followed(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, absolute: bool
) -> None:
    handle = await client.images.generate("x", wait=False)
    # The fake's own poll_url is the default path; a marked one proves it is the one used.
    path = f"{GENERATIONS}/{handle.id}?via=poll_url"
    resumed = client.tasks.from_dict(
        {**handle.to_dict(), "poll_url": fake_maxapi.base_url + path if absolute else path}
    )
    await resumed.refresh()
    assert fake_maxapi.requests[-1].path == f"{GENERATIONS}/{handle.id}"
    assert fake_maxapi.requests[-1].query == {"via": "poll_url"}


@pytest.mark.fake_maxapi(poll_url_style="foreign")
async def test_a_foreign_poll_url_is_not_followed(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    handle = await client.images.generate("x", wait=False)
    assert handle.ref.poll_url is not None
    assert handle.ref.poll_url.startswith(fake_maxapi.cdn_url)
    await handle
    assert [r.path for r in polls(fake_maxapi, handle)] == [f"{GENERATIONS}/{handle.id}"] * 2
    assert fake_maxapi.cdn_requests == []  # nothing at all went to the other origin


# -- poll failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_poll_is_retried_without_failing_the_task(
    no_retry_client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, status: int
) -> None:
    handle = await no_retry_client.images.generate("x", wait=False)
    fake_maxapi.add_fault(Fault(status=status, path=f"{GENERATIONS}/", method="GET", times=3))
    result = await handle
    assert len(result.images) == 1
    assert len(polls(fake_maxapi, handle)) == 3 + 2


async def test_a_429_poll_waits_for_retry_after_and_carries_on(fake_maxapi: FakeMaxAPI) -> None:
    policy = attrs.evolve(PollPolicy.instant(), max_retry_after=0.15)
    async with make_client(fake_maxapi, poll_policy=policy, retry_policy=RetryPolicy.none()) as client:
        handle = await client.images.generate("x", wait=False)
        fake_maxapi.add_fault(
            Fault(status=429, headers={"Retry-After": "1"}, path=f"{GENERATIONS}/", method="GET")
        )
        result = await handle
    assert len(result.images) == 1
    limited, after, *_ = polls(fake_maxapi, handle)
    assert after.received_at - limited.received_at >= 0.14  # the hint, capped by the policy


@pytest.mark.fake_maxapi(poll_retry_after=0.1)
async def test_retry_after_on_task_answers_spaces_the_polls(fake_maxapi: FakeMaxAPI) -> None:
    policy = attrs.evolve(PollPolicy.instant(), max_retry_after=1.0)
    async with make_client(fake_maxapi, poll_policy=policy) as client:
        handle = await client.images.generate("x", wait=False)
        await handle
    submit, *polled = fake_maxapi.requests
    times = [submit.received_at] + [r.received_at for r in polled]
    assert len(polled) == 2
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(times))


async def test_a_dropped_poll_connection_is_retried_without_failing_the_task(
    no_retry_client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await no_retry_client.images.generate("x", wait=False)
    # aiohttp itself repeats an idempotent GET once after a disconnect: drop both tries.
    fake_maxapi.add_fault(Fault(reset=True, path=f"{GENERATIONS}/", method="GET", times=2))
    result = await handle
    assert len(result.images) == 1
    assert handle.done()


async def test_a_poll_that_keeps_failing_raises_in_the_end(
    no_retry_client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await no_retry_client.images.generate("x", wait=False)
    fake_maxapi.add_fault(Fault(status=503, path=f"{GENERATIONS}/", method="GET", times=None))
    with pytest.raises(maxapi_async.ServerError):
        await handle
    assert len(polls(fake_maxapi, handle)) == MAX_CONSECUTIVE_POLL_FAILURES


@pytest.mark.parametrize("kind", ["generation", "edit", "operation"])
async def test_an_unknown_task_id_is_not_found(client: AsyncMaxAPI, kind: Any) -> None:
    handle = client.tasks.get("nope", kind=kind)
    with pytest.raises(maxapi_async.NotFoundError) as caught:
        await handle
    assert caught.value.status == 404


async def test_an_unknown_task_id_is_not_found_on_refresh_too(client: AsyncMaxAPI) -> None:
    with pytest.raises(maxapi_async.NotFoundError):
        await client.tasks.get("nope").refresh()


@pytest.mark.parametrize("reason", ["CONTENT_MODERATION", "INVALID_PARAMETERS", "INSUFFICIENT_POINTS"])
async def test_a_failed_task_raises_task_failed_with_its_reason(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, reason: str
) -> None:
    fake_maxapi.fail_tasks(reason)
    handle = await client.images.generate("x", wait=False)
    with pytest.raises(maxapi_async.TaskFailedError) as caught:
        await handle
    error = caught.value
    assert (error.reason, error.task_id, error.kind) == (reason, handle.id, "generation")
    assert not error.retryable
    assert handle.done()
    assert handle.status.state == "failed"


@pytest.mark.parametrize(
    "style", [pytest.param(s, marks=pytest.mark.fake_maxapi(task_style=s)) for s in ("envelope", "camel")]
)
async def test_failure_reasons_are_read_from_failure_reason_too(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, style: str
) -> None:
    fake_maxapi.fail_tasks("CONTENT_MODERATION")
    handle = await client.images.edit("x", [make_png(8, 8)], wait=False)
    with pytest.raises(maxapi_async.TaskFailedError) as caught:
        await handle
    assert caught.value.reason == "CONTENT_MODERATION"
    assert caught.value.kind == "edit"


@pytest.mark.fake_maxapi(status_words={"failed": "timed_out"})
async def test_a_timeout_status_fails_the_task_with_reason_timeout(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.fail_tasks("UPSTREAM", "generation took too long")
    handle = await client.images.generate("x", wait=False)
    with pytest.raises(maxapi_async.TaskFailedError) as caught:
        await handle
    assert (caught.value.reason, caught.value.status) == ("TIMEOUT", "timed_out")
    assert caught.value.retryable


async def test_a_failed_handle_raises_the_same_error_again_without_a_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.fail_tasks("INVALID_PARAMETERS")
    handle = await client.images.generate("x", wait=False)
    with pytest.raises(maxapi_async.TaskFailedError) as first:
        await handle
    before = len(fake_maxapi.requests)
    with pytest.raises(maxapi_async.TaskFailedError) as second:
        await handle
    assert second.value is first.value
    assert len(fake_maxapi.requests) == before


# -- deadlines --------------------------------------------------------------------------------------


@pytest.mark.fake_maxapi(complete_after_seconds=1.0)
async def test_waiting_past_the_deadline_raises_task_timeout_carrying_the_handle(
    fake_maxapi: FakeMaxAPI,
) -> None:
    policy = PollPolicy(earliest=0, latest=0, initial=0.05, max_delay=0.05, jitter=0)
    async with make_client(fake_maxapi, poll_policy=policy) as client:
        handle = await client.images.generate("x", wait=False)
        started = time.monotonic()
        with pytest.raises(maxapi_async.TaskTimeoutError) as caught:
            await handle.wait(timeout=0.2)
        assert time.monotonic() - started < 0.5
        error = caught.value
        assert isinstance(error, TimeoutError)
        assert error.handle is handle
        assert error.task_id == handle.id
        assert handle.status.state == "expired"
        assert not poller_tasks()  # nobody waits: polling stopped
        result = await error.handle
        assert len(result.images) == 1
        assert handle.status.state == "succeeded"


@pytest.mark.fake_maxapi(complete_after_polls=1000)
async def test_polling_stops_while_nobody_waits_after_a_timeout(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS) as client:
        handle = await client.images.generate("x", wait=False)
        with pytest.raises(maxapi_async.TaskTimeoutError):
            await handle.wait(timeout=0.1)
        count = await settled_request_count(fake_maxapi)
        await asyncio.sleep(0.1)  # five poll intervals: a loop still polling would show here
        assert len(fake_maxapi.requests) == count


# -- the client's task_timeout: nothing waits forever ------------------------------------------------

#: Tasks that never end: ``processing`` forever, or a status word nobody knows, forever.
NEVER_ENDS = [
    pytest.param("processing", marks=pytest.mark.fake_maxapi(complete_after_polls=10**9), id="processing"),
    pytest.param(
        "unknown word",
        marks=pytest.mark.fake_maxapi(complete_after_polls=10**9, status_words={"running": "hatching"}),
        id="unknown-word",
    ),
]


@pytest.mark.parametrize("forever", NEVER_ENDS)
async def test_awaiting_a_task_that_never_ends_raises_task_timeout_within_the_task_timeout(
    fake_maxapi: FakeMaxAPI, forever: str
) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS, task_timeout=0.3) as client:
        handle = await client.images.generate("x", wait=False)
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(maxapi_async.TaskTimeoutError) as caught:
            await handle
        assert 0.3 <= time.monotonic() - started < 1.0
        assert len(polls(fake_maxapi, handle)) >= 3  # it did poll meanwhile
        assert not poller_tasks()
    error = caught.value
    assert error.handle is handle
    assert error.task_id == handle.id
    assert "task_timeout" in str(error)
    assert handle.status.state == "expired"
    if forever == "unknown word":
        assert handle.status.word == "hatching"
    # Resumable anywhere from its plain description: the task id is not lost.
    assert maxapi_async.TaskRef.from_dict(error.handle.to_dict()).id == handle.id


@pytest.mark.fake_maxapi(complete_after_polls=10**9)
async def test_task_timeout_bounds_rebuilt_handles_and_wait_without_a_timeout(
    fake_maxapi: FakeMaxAPI,
) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS, task_timeout=0.2) as client:
        submitted = await client.images.generate("x", wait=False)
        for handle in (
            client.tasks.from_dict(submitted.to_dict()),
            client.tasks.get(submitted.id),
            submitted,
        ):
            with anyio.fail_after(5), pytest.raises(maxapi_async.TaskTimeoutError) as caught:
                await handle.wait()
            assert caught.value.handle is handle


@pytest.mark.fake_maxapi(complete_after_polls=10**9)
async def test_a_wait_timeout_replaces_the_task_timeout_for_that_wait(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS, task_timeout=30.0) as client:
        handle = await client.images.generate("x", wait=False)
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(maxapi_async.TaskTimeoutError) as caught:
            await handle.wait(timeout=0.1)
        assert time.monotonic() - started < 0.5
    assert "task_timeout" not in str(caught.value)


@pytest.mark.fake_maxapi(complete_after_seconds=0.3)
async def test_task_timeout_none_waits_without_limit(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS, task_timeout=None) as client:
        assert client.task_timeout is None
        handle = await client.images.generate("x", wait=False)
        assert isinstance(await handle, ImageResult)


def test_task_timeout_defaults_to_thirty_minutes() -> None:
    client = AsyncMaxAPI("sk-test")
    assert client.task_timeout == maxapi_async.DEFAULT_TASK_TIMEOUT == 1800.0


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), True, "60"])
def test_a_bad_task_timeout_is_a_configuration_error(value: Any) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="task_timeout"):
        AsyncMaxAPI("sk-test", task_timeout=value)


# -- the shared poll budget --------------------------------------------------------------------------


async def test_the_polls_per_second_limit_is_shared_by_all_handles(fake_maxapi: FakeMaxAPI) -> None:
    rate = 20
    async with make_client(fake_maxapi, max_polls_per_second=rate) as client:
        handles = [await client.images.generate(f"cube {i}", wait=False) for i in range(20)]
        await asyncio.gather(*handles)
    times = sorted(r.received_at for r in fake_maxapi.requests if r.method == "GET")
    assert len(times) == 40  # two polls per task
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_window <= rate + 1  # +1: the server stamps arrival, not departure
    # Unthrottled, 40 instant polls take milliseconds; the budget spaces them 1/rate apart.
    assert times[-1] - times[0] >= (len(times) - 1) / rate * 0.9


# -- cancellation and closing -------------------------------------------------------------------------


@pytest.mark.fake_maxapi(complete_after_polls=1000)
async def test_cancelling_the_awaiting_coroutine_stops_polling_at_once(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS) as client:
        handle = await client.images.generate("x", wait=False)
        waiter = asyncio.create_task(handle.wait())
        await eventually(lambda: len(polls(fake_maxapi, handle)) >= 3)
        assert len(poller_tasks()) == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        count = await settled_request_count(fake_maxapi)
        assert not poller_tasks()
        assert not client._core._pollers
        await asyncio.sleep(0.1)
        assert len(fake_maxapi.requests) == count
        assert not handle.done()


@pytest.mark.fake_maxapi(complete_after_polls=5)
async def test_cancelling_one_waiter_keeps_polling_for_the_others(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, poll_policy=SLOW_POLLS) as client:
        handle = await client.images.generate("x", wait=False)
        leaving = asyncio.create_task(handle.wait())
        staying = asyncio.create_task(handle.wait())
        await eventually(lambda: len(polls(fake_maxapi, handle)) >= 1)
        leaving.cancel()
        result = await staying
        assert leaving.cancelled()
        assert len(result.images) == 1
        assert len(polls(fake_maxapi, handle)) == 5


async def test_a_waiter_arriving_as_the_last_one_leaves_gets_the_result(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("x", wait=False)
    fake_maxapi.add_fault(Fault(delay=0.2, path=f"{GENERATIONS}/", method="GET"))  # a poll in flight
    leaving = asyncio.create_task(handle.wait())
    await eventually(lambda: len(fake_maxapi.requests) == 2)
    leaving.cancel()
    arriving = asyncio.create_task(handle.wait())  # runs while the leaver stops the poll loop
    result = await arriving
    assert leaving.cancelled()
    assert len(result.images) == 1


@pytest.mark.fake_maxapi(complete_after_polls=1000)
async def test_closing_the_client_stops_all_polling(fake_maxapi: FakeMaxAPI) -> None:
    client = AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, poll_policy=SLOW_POLLS)
    handles = [await client.images.generate(f"x{i}", wait=False) for i in range(3)]
    waiters = [asyncio.create_task(h.wait()) for h in handles]
    await eventually(lambda: all(len(polls(fake_maxapi, h)) >= 2 for h in handles))
    assert len(poller_tasks()) == 3
    await client.aclose()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    # The waiters were not cancelled: they learn why they stopped.
    assert all(isinstance(o, maxapi_async.ClientClosedError) for o in outcomes)
    assert not any(w.cancelled() for w in waiters)
    assert not poller_tasks()
    count = await settled_request_count(fake_maxapi)
    await asyncio.sleep(0.1)
    assert len(fake_maxapi.requests) == count
    assert client.closed


@pytest.mark.fake_maxapi(complete_after_polls=10**9)
async def test_every_call_and_wait_cut_by_aclose_raises_client_closed(fake_maxapi: FakeMaxAPI) -> None:
    # One connection: the calls queue for it inside aiohttp, whose session close cancels those waits.
    client = AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        max_concurrency=1,
        poll_policy=SLOW_POLLS,
        retry_policy=RetryPolicy.instant(),
    )
    assets = (await client.images.generate("an asset to download", n=3)).images
    handles = [await client.images.generate(f"queued {i}", wait=False) for i in range(5)]
    fake_maxapi.add_fault(Fault(delay=5.0, method="POST", times=None))  # holds the one connection
    posts = len(fake_maxapi.requests_to(GENERATIONS))
    work: list[asyncio.Task[Any]] = [asyncio.create_task(client.images.generate(f"x{i}")) for i in range(20)]
    work += [asyncio.create_task(client.models.generate_content(contents=f"y{i}")) for i in range(10)]
    work += [asyncio.create_task(client.images.generate("z", wait=False)) for _ in range(5)]
    work += [asyncio.create_task(asset.read()) for asset in assets]
    work += [asyncio.create_task(h.wait()) for h in handles]
    work += [asyncio.create_task(h.wait(timeout=30)) for h in handles]
    work += [asyncio.create_task(handles[0].refresh())]
    await eventually(lambda: len(fake_maxapi.requests_to(GENERATIONS)) > posts)  # one POST in flight
    await client.aclose()
    with anyio.fail_after(5):
        outcomes = await asyncio.gather(*work, return_exceptions=True)
    assert not any(task.cancelled() for task in work)
    assert [type(o).__name__ for o in outcomes] == ["ClientClosedError"] * len(work)
    charged = [o for o in outcomes if "may have been charged" in str(o)]
    assert len(charged) == 1  # the POST in flight names its Idempotency-Key
    in_flight = fake_maxapi.requests_to(GENERATIONS)[posts]
    assert f"Idempotency-Key is {in_flight.header('Idempotency-Key')}" in str(charged[0])
    assert not poller_tasks()


async def test_a_callers_own_cancellation_is_still_cancelled_error(fake_maxapi: FakeMaxAPI) -> None:
    client = AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, max_concurrency=1)
    fake_maxapi.add_fault(Fault(delay=5.0, method="POST", times=None))
    holder = asyncio.create_task(client.images.generate("holds the connection"))
    await eventually(lambda: len(fake_maxapi.requests) == 1)
    waiting = asyncio.create_task(client.images.generate("waits for the connection"))
    await asyncio.sleep(0)  # it runs to its wait for the connection
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    both = asyncio.create_task(client.images.generate("cancelled as the client closes"))
    await asyncio.sleep(0)
    both.cancel()  # and, in the same step, the client closes
    await client.aclose()
    if sys.version_info >= (3, 11):  # only 3.11+ tells a task's own cancellation apart
        with pytest.raises(asyncio.CancelledError):
            await both
    else:
        with pytest.raises((asyncio.CancelledError, maxapi_async.ClientClosedError)):
            await both
    with pytest.raises(maxapi_async.ClientClosedError):
        await holder


async def test_awaiting_a_handle_of_a_closed_client_raises_client_closed(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("x", wait=False)
    await client.aclose()
    count = len(fake_maxapi.requests)
    with pytest.raises(maxapi_async.ClientClosedError):
        await handle
    with pytest.raises(maxapi_async.ClientClosedError):
        await client.tasks.get("abc")
    assert len(fake_maxapi.requests) == count


# -- hooks -----------------------------------------------------------------------------------------------


async def test_hooks_receive_request_poll_and_task_done_events(fake_maxapi: FakeMaxAPI) -> None:
    requests: list[maxapi_async.RequestEvent] = []
    polled: list[maxapi_async.PollEvent] = []
    done: list[maxapi_async.TaskDoneEvent] = []
    hooks = maxapi_async.Hooks(on_request=requests.append, on_poll=polled.append, on_task_done=done.append)
    async with make_client(fake_maxapi, hooks=hooks) as client:
        handle = await client.images.generate("x", wait=False)
        await handle
    assert [(e.method, e.path, e.status) for e in requests] == [
        ("POST", GENERATIONS, 200),
        ("GET", f"{GENERATIONS}/{handle.id}", 200),
        ("GET", f"{GENERATIONS}/{handle.id}", 200),
    ]
    assert [(e.task_id, e.kind, e.state, e.progress) for e in polled] == [
        (handle.id, "generation", "running", 50),
        (handle.id, "generation", "succeeded", 100),
    ]
    assert done == [maxapi_async.TaskDoneEvent(handle.id, "generation", None)]


async def test_task_done_hook_names_the_error_of_a_failed_task(fake_maxapi: FakeMaxAPI) -> None:
    done: list[maxapi_async.TaskDoneEvent] = []
    async with make_client(fake_maxapi, hooks=maxapi_async.Hooks(on_task_done=done.append)) as client:
        fake_maxapi.fail_tasks("CONTENT_MODERATION")
        handle = await client.images.generate("x", wait=False)
        with pytest.raises(maxapi_async.TaskFailedError):
            await handle
    assert done == [maxapi_async.TaskDoneEvent(handle.id, "generation", "TaskFailedError")]


async def test_refresh_reports_its_poll_to_the_hooks(fake_maxapi: FakeMaxAPI) -> None:
    polled: list[maxapi_async.PollEvent] = []
    async with make_client(fake_maxapi, hooks=maxapi_async.Hooks(on_poll=polled.append)) as client:
        handle = await client.images.generate("x", wait=False)
        await handle.refresh()
    assert [e.state for e in polled] == ["running"]


async def test_a_task_known_by_its_id_alone_has_no_guessed_size(client: AsyncMaxAPI) -> None:
    submitted = await client.images.generate("a cube", aspect_ratio="16:9", wait=False)
    assert (await submitted).images[0].size == (1344, 768)  # the client asked: the table knows
    by_id = await client.tasks.get(submitted.id)
    assert by_id.images[0].size is None  # nobody said which ratio: not the default's 1024x1024
    with_ratio = await client.tasks.get(submitted.id, aspect_ratio="16:9")
    assert with_ratio.images[0].size == (1344, 768)
    resumed = await client.tasks.from_dict(submitted.to_dict())
    assert resumed.images[0].size == (1344, 768)
