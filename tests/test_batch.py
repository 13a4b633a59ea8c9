"""client.batch: bounded, visible, resumable, within budget; against FakeMaxAPI on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _redis_server import RedisServer

import maxapi_async
from maxapi_async import AsyncMaxAPI, Batch, BatchProgress, ContentRequest, EditRequest, GenerateRequest
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).parent / "scripts" / "batch_worker.py"
FAST = maxapi_async.PollPolicy(earliest=0, latest=0, initial=0.01, max_delay=0.02, jitter=0)


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        poll_policy=FAST,
        max_polls_per_second=10_000,
        retry_policy=maxapi_async.RetryPolicy.instant(),
    ) as c:
        yield c


def generations(count: int, **options: object) -> list[GenerateRequest]:
    return [GenerateRequest(f"cube {i}", key=f"k{i:02}", **options) for i in range(count)]  # type: ignore[arg-type]


def hold_the_next_submission(fake: FakeMaxAPI) -> Callable[[], Awaitable[object]]:
    """The fake leaves the next submission unanswered (a slow service); await the function's
    result to know it arrived. (The fake answers from its own thread: the source must not set a
    loop-bound event there, and the wait is the fake's own, woken across threads.)"""
    held = threading.Event()
    before = posts(fake)

    def source(origin: str, method: str, path: str) -> Fault | None:
        if method != "POST" or held.is_set():
            return None
        held.set()
        return Fault(delay=60)  # cancelled with its connection when the client goes away

    fake.fault_source = source
    return functools.partial(
        fake.wait_for_requests, before + 1, match=lambda r: r.method == "POST", timeout=30
    )


def posts(fake: FakeMaxAPI) -> int:
    return sum(r.method == "POST" for r in fake.requests)


def submissions_by_prompt(fake: FakeMaxAPI) -> dict[str, set[str | None]]:
    """The Idempotency-Keys each prompt was submitted under: one key is one submission."""
    keys: dict[str, set[str | None]] = {}
    for request in fake.requests:
        if request.method == "POST" and isinstance(request.json, dict):
            keys.setdefault(request.json["prompt"], set()).add(request.header("Idempotency-Key"))
    return keys


def journal_events(path: Path) -> list[dict[str, object]]:
    events = []
    for file in sorted(path.glob("*.jsonl")) if path.is_dir() else [path]:
        events += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return events


async def test_outcomes_arrive_as_completed_and_gather_keeps_input_order(client: AsyncMaxAPI) -> None:
    items: list[maxapi_async.BatchItem] = [
        *generations(5, aspect_ratio="16:9"),
        EditRequest("edit", [make_png(32, 32)], key="edit"),
        ContentRequest("a cube", key="native", aspect_ratio="9:16"),
    ]
    streamed = [o.key async for o in Batch(client, items)]
    assert sorted(streamed) == sorted(i.key for i in items)
    outcomes = await Batch(client, items)
    assert [o.key for o in outcomes] == [i.key for i in items]
    assert all(o.ok and o.status == "done" for o in outcomes)
    assert outcomes[0].images[0].size == (1344, 768)
    assert outcomes[-1].images[0].size == (768, 1344)
    assert isinstance(outcomes[-1].result, maxapi_async.GenerateContentResponse)


async def test_one_failure_does_not_stop_the_others(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.fail_tasks("CONTENT_MODERATION", times=1)
    outcomes = await Batch(client, generations(6), concurrency=1)
    failed = [o for o in outcomes if o.status == "failed"]
    assert len(failed) == 1
    assert isinstance(failed[0].error, maxapi_async.TaskFailedError)
    assert failed[0].error.reason == "CONTENT_MODERATION"
    assert failed[0].cost == 0.0
    assert sum(o.ok for o in outcomes) == 5
    assert client.usage.failed_calls == 1


async def test_fail_fast_stops_at_the_first_failure_and_reports_every_item(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.fail_tasks("INVALID_PARAMETERS", times=1)
    batch = Batch(client, generations(10), concurrency=1, max_pending=1, fail_fast=True)
    outcomes = await batch
    assert [o.status for o in outcomes][:1] == ["failed"]
    assert {o.status for o in outcomes[1:]} == {"skipped"}
    assert all(o.reason == "fail_fast" for o in outcomes[1:])
    assert batch.summary is not None
    assert batch.summary.failed == 1
    assert len(batch.summary.remaining) == 10
    assert len(fake_maxapi.requests_to("/v1/images/generations")) >= 1
    assert fake_maxapi.created_tasks == 1


async def test_progress_callback_sees_every_count(client: AsyncMaxAPI) -> None:
    seen: list[BatchProgress] = []
    await Batch(client, generations(4, route_mode="official"), progress=seen.append)
    last = seen[-1]
    assert (last.total, last.submitted, last.running, last.done, last.failed) == (4, 4, 0, 4, 0)
    assert last.credits == pytest.approx(4 * 0.04)
    assert max(p.running for p in seen) >= 1


async def test_progress_bar_is_quiet_when_not_a_terminal(
    client: AsyncMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    await Batch(client, generations(2), progress=True)
    assert capsys.readouterr().err == ""


async def test_budget_never_lets_estimated_spend_pass(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    items = generations(10, route_mode="official-cheap")  # 0.024 credits each
    batch = Batch(client, items, budget=0.1, concurrency=1)
    outcomes = await batch
    done = [o for o in outcomes if o.ok]
    assert len(done) == 4  # 4 x 0.024 = 0.096; a fifth would make 0.12
    assert all(o.status == "skipped" and o.reason == "budget" for o in outcomes[4:])
    assert batch.summary is not None
    assert batch.summary.stopped_by_budget
    assert batch.summary.credits == pytest.approx(0.096)
    assert batch.summary.remaining == [i.key for i in items[4:]]
    assert fake_maxapi.created_tasks == 4


async def test_unknown_route_is_budgeted_at_the_dearest_price(client: AsyncMaxAPI) -> None:
    outcomes = await Batch(client, generations(3), budget=0.08)  # 0.04 each without a route
    assert [o.status for o in outcomes] == ["done", "done", "skipped"]


async def test_every_result_carries_its_cost_and_the_ledger_adds_up(client: AsyncMaxAPI) -> None:
    await Batch(
        client,
        [*generations(3, route_mode="official-cheap"), GenerateRequest("x", key="o", route_mode="official")],
    )
    usage = client.usage
    assert (usage.calls, usage.images) == (4, 4)
    assert usage.credits == pytest.approx(3 * 0.024 + 0.04)
    assert usage.by_route["official-cheap"].calls == 3
    assert usage.by_route["official"].credits == pytest.approx(0.04)
    result = await client.images.generate("x", route_mode="official-cheap")
    assert result.cost == pytest.approx(0.024)


UNPRICED = "google/gemini-3-pro-image-preview"  # in the catalogue, without a published price


@pytest.mark.parametrize("model", [UNPRICED, "acme/unknown-image-model"])
async def test_a_budget_refuses_an_item_without_a_price_before_any_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, model: str
) -> None:
    items = [*generations(2), *generations(200, model=model)[2:]]  # 198 of a model without a price
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        Batch(client, items, budget=0.10)
    assert info.value.argument == "items[2].model"
    assert model in str(info.value)
    assert "prices=" in str(info.value)
    assert fake_maxapi.requests == []


async def test_an_unpriced_item_costs_none_never_zero(client: AsyncMaxAPI, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    items = [*generations(2, model=UNPRICED), GenerateRequest("y", key="priced", route_mode="official")]
    batch = Batch(client, items, journal=journal)
    outcomes = await batch
    assert [o.status for o in outcomes] == ["done"] * 3
    assert [o.cost for o in outcomes] == [None, None, 0.04]
    assert outcomes[0].result is not None
    assert outcomes[0].result.cost is None
    assert batch.summary is not None
    assert (batch.summary.credits, batch.summary.unpriced) == (0.04, 2)
    usage = client.usage
    assert (usage.calls, usage.unpriced_calls, usage.credits) == (3, 2, 0.04)
    assert usage.by_route["default"].unpriced_calls == 2
    restored = await Batch(client, items, journal=journal)
    assert [o.cost for o in restored] == [None, None, 0.04]


async def test_credits_are_added_exactly(client: AsyncMaxAPI) -> None:
    seen: list[BatchProgress] = []
    batch = Batch(client, generations(20, route_mode="official-cheap"), progress=seen.append, budget=0.48)
    await batch
    assert batch.summary is not None
    assert batch.summary.done == 20  # 20 x 0.024 is the budget, not a hair above it
    assert repr(batch.summary.credits) == repr(seen[-1].credits) == "0.48"
    assert repr(client.usage.credits) == repr(client.usage.by_route["official-cheap"].credits) == "0.48"
    result = await client.images.generate("x", route_mode="official-cheap", n=3)
    assert repr(result.cost) == "0.072"
    assert repr(client.usage.credits) == "0.552"


async def test_journal_rerun_skips_finished_items(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    first = await Batch(client, generations(5), journal=journal)
    assert all(o.status == "done" for o in first)
    second = await Batch(client, generations(7), journal=journal)
    assert [o.status for o in second] == ["restored"] * 5 + ["done"] * 2
    assert second[0].images[0].url == first[0].images[0].url
    assert fake_maxapi.created_tasks == 7
    events = [e["event"] for e in journal_events(journal)]
    assert events.count("submit") == events.count("task") == events.count("done") == 7


async def test_journal_resumes_a_submitted_task_without_resubmitting(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    handle = await client.images.generate("cube 0", wait=False)
    journal.write_text(
        json.dumps({"event": "submit", "key": "k00", "idempotency_key": handle.ref.idempotency_key})
        + "\n"
        + json.dumps({"event": "task", "key": "k00", "task": handle.to_dict()})
        + "\n"
    )
    outcomes = await Batch(client, generations(2), journal=journal)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert outcomes[0].task_id == handle.id
    assert fake_maxapi.created_tasks == 2  # the resumed task plus k01


async def test_unanswered_submission_is_repeated_under_the_same_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    # The service created the task, but the process died before the answer was journaled.
    handle = await client.images.generate("cube 0", wait=False)
    journal = tmp_path / "run.jsonl"
    journal.write_text(
        json.dumps({"event": "submit", "key": "k00", "idempotency_key": handle.ref.idempotency_key}) + "\n"
    )
    outcomes = await Batch(client, generations(1), journal=journal)
    assert outcomes[0].status == "done"
    assert outcomes[0].task_id == handle.id
    assert fake_maxapi.created_tasks == 1


async def test_failed_items_are_tried_again_on_rerun(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    fake_maxapi.fail_tasks("TIMEOUT", times=1)
    first = await Batch(client, generations(1), journal=journal)
    assert first[0].status == "failed"
    second = await Batch(client, generations(1), journal=journal)
    assert second[0].status == "done"
    assert fake_maxapi.created_tasks == 2


TORN = b'{"event":"submit","key":"k02","idempotency_key":"3f9a'  # a crash cut this line


async def test_a_torn_last_line_is_set_aside_and_the_journal_goes_on_clean(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    await Batch(client, generations(2), journal=journal)
    with journal.open("ab") as fh:
        fh.write(TORN)
    with pytest.warns(maxapi_async.MaxAPIWarning, match="cut short") as warned:
        outcomes = await Batch(client, generations(3), journal=journal)
    assert len(warned) == 1
    assert str(journal) + ".torn" in str(warned[0].message)
    assert [o.status for o in outcomes] == ["restored", "restored", "done"]
    assert (tmp_path / "run.jsonl.torn").read_bytes() == TORN + b"\n"
    events = journal_events(journal)  # every line whole: the new records were not glued on
    assert [e["event"] for e in events if e["key"] == "k02"] == ["submit", "task", "done"]
    again = await Batch(client, generations(3), journal=journal)  # set aside once: no warning now
    assert [o.status for o in again] == ["restored"] * 3
    assert fake_maxapi.created_tasks == 3


async def test_a_whole_last_record_that_lost_its_newline_is_kept(client: AsyncMaxAPI, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    await Batch(client, generations(1), journal=journal)
    journal.write_bytes(journal.read_bytes().rstrip(b"\n"))  # cut just before the newline
    outcomes = await Batch(client, generations(2), journal=journal)
    assert [o.status for o in outcomes] == ["restored", "done"]
    assert len(journal_events(journal)) == 6
    assert not (tmp_path / "run.jsonl.torn").exists()


async def test_a_journal_in_use_refuses_a_second_batch_at_once(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    arrived = hold_the_next_submission(fake_maxapi)
    first = Batch(client, generations(3), journal=journal, concurrency=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.gather)
        with anyio.fail_after(5):
            await arrived()
        with pytest.raises(maxapi_async.JournalLockedError) as info:
            await Batch(client, generations(3), journal=journal)
        assert (info.value.path, info.value.pid) == (str(journal), os.getpid())
        assert str(journal) in str(info.value)
        assert "in this process" in str(info.value)
        assert posts(fake_maxapi) == 1  # the first batch's only
        tg.cancel_scope.cancel()
    await first.aclose()
    # Let go when the batch stopped: the next batch runs, and resumes the held submission.
    fake_maxapi.fault_source = None
    assert not (tmp_path / "run.jsonl.lock").exists()
    outcomes = await Batch(client, generations(3), journal=journal)
    assert all(o.ok for o in outcomes)
    assert {p: len(k) for p, k in submissions_by_prompt(fake_maxapi).items()} == {
        "cube 0": 1, "cube 1": 1, "cube 2": 1
    }  # fmt: skip


async def test_a_batch_that_crashes_lets_go_of_its_journal(client: AsyncMaxAPI, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"

    def broken_progress(progress: BatchProgress) -> None:
        raise RuntimeError("the caller's callback broke")

    with anyio.fail_after(5), pytest.raises(RuntimeError, match="callback broke"):
        await Batch(client, generations(2), journal=journal, progress=broken_progress)
    assert not (tmp_path / "run.jsonl.lock").exists()
    outcomes = await Batch(client, generations(2), journal=journal)
    assert all(o.ok for o in outcomes)


async def test_a_journal_folder_split_by_the_removed_shard_option_is_refused_unread(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    for name in ("journal-0of2.jsonl", "journal-1of2.jsonl"):  # what shard=(i, 2) wrote
        (folder / name).write_text('{"event":"done","key":"k00","task_id":"t","images":[]}\n')
    with pytest.raises(maxapi_async.JournalError, match=r"journal-0of2\.jsonl, journal-1of2\.jsonl") as info:
        await Batch(client, generations(2), journal=folder)
    assert "join them into one journal" in str(info.value)
    assert fake_maxapi.requests == []  # items finished there are not paid again
    assert not (folder / "journal.jsonl.lock").exists()


async def test_a_journal_folder_holds_one_journal_file(client: AsyncMaxAPI, tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    assert all(o.status == "done" for o in await Batch(client, generations(2), journal=folder))
    assert sorted(p.name for p in folder.iterdir()) == ["journal.jsonl"]
    assert all(o.status == "restored" for o in await Batch(client, generations(2), journal=folder))


async def test_downloads_are_named_after_keys_and_skipped_when_present(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    out = tmp_path / "images"
    items = [*generations(3), GenerateRequest("two", key="pair/../x", n=2)]
    outcomes = await Batch(client, items, download_to=out, journal=tmp_path / "j.jsonl")
    names = sorted(p.name for p in out.iterdir())
    assert names[:3] == ["k00.png", "k01.png", "k02.png"]
    assert len(names) == 5
    assert all(n.startswith("pair_.._x-") and n.endswith(("-0.png", "-1.png")) for n in names[3:])
    assert outcomes[0].files == [out / "k00.png"]
    downloads = len(fake_maxapi.cdn_requests)
    await Batch(client, items, download_to=out, journal=tmp_path / "j.jsonl")
    assert len(fake_maxapi.cdn_requests) == downloads  # all files complete: nothing fetched again


async def test_bad_batch_arguments_fail_before_any_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    with pytest.raises(maxapi_async.InvalidRequestError, match="duplicate key"):
        Batch(client, [GenerateRequest("a", key="x"), GenerateRequest("b", key="x")])
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        Batch(client, generations(1), concurrency=0)
    assert info.value.argument == "concurrency"
    with pytest.raises(maxapi_async.InvalidRequestError, match="RedisStore") as info:
        Batch(client, generations(1), store="redis://localhost")  # type: ignore[arg-type]
    assert info.value.argument == "store"
    store = maxapi_async.RedisStore("redis://localhost", "b")
    with pytest.raises(maxapi_async.InvalidRequestError, match="not both"):
        Batch(client, generations(1), store=store, journal="run.jsonl")
    with pytest.raises(maxapi_async.InvalidRequestError, match="items"):
        Batch(client, ["a prompt"])  # type: ignore[list-item]
    assert fake_maxapi.requests == []


async def test_invalid_item_fails_that_item_only(client: AsyncMaxAPI) -> None:
    outcomes = await Batch(client, [GenerateRequest("", key="empty"), GenerateRequest("ok", key="fine")])
    assert outcomes[0].status == "failed"
    assert isinstance(outcomes[0].error, maxapi_async.InvalidRequestError)
    assert outcomes[1].status == "done"


async def test_a_task_that_never_ends_times_out_its_item_and_a_rerun_waits_for_it_again(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    stuck: list[str] = []

    def first_task_never_ends(origin: str, method: str, path: str) -> Fault | None:
        if method == "GET" and path.startswith("/v1/images/generations/"):
            task_id = path.rsplit("/", 1)[1]
            stuck[:] = stuck or [task_id]
            if task_id == stuck[0]:
                return Fault(status=200, body={"id": task_id, "status": "processing"})
        return None

    fake_maxapi.fault_source = first_task_never_ends
    journal = tmp_path / "run.jsonl"
    options: dict[str, Any] = {"poll_policy": FAST, "max_polls_per_second": 10_000}
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, task_timeout=0.3, **options
    ) as c:
        with anyio.fail_after(5):
            outcomes = await Batch(c, generations(4), journal=journal)
    [timed_out] = [o for o in outcomes if not o.ok]
    assert timed_out.status == "failed"
    assert isinstance(timed_out.error, maxapi_async.TaskTimeoutError)
    assert timed_out.task_id == stuck[0]
    assert sum(o.ok for o in outcomes) == 3  # the rest went on
    submissions = len([r for r in fake_maxapi.requests if r.method == "POST"])
    assert submissions == 4

    fake_maxapi.fault_source = None  # the task finishes after all
    async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, **options) as c:
        with anyio.fail_after(5):
            again = {o.key: o for o in await Batch(c, generations(4), journal=journal)}
    assert again[timed_out.key].status == "done"
    assert again[timed_out.key].task_id == stuck[0]  # waited for again, not submitted again
    assert len([r for r in fake_maxapi.requests if r.method == "POST"]) == submissions


# -- a service that asks for a pause ------------------------------------------------------------


def submissions(fake: FakeMaxAPI) -> list[float]:
    """When each submission reached the fake (monotonic seconds)."""
    return [r.received_at for r in fake.requests if r.method == "POST"]


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_a_long_retry_after_stops_submissions_at_once_and_says_when_to_rerun(
    fake_maxapi: FakeMaxAPI, concurrency: int
) -> None:
    fake_maxapi.add_fault(Fault(status=429, headers={"Retry-After": "3600"}, method="POST", times=None))
    items = generations(40)
    async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, poll_policy=FAST) as client:
        started = time.time()
        with anyio.fail_after(5):
            outcomes = await Batch(client, items, concurrency=concurrency)
    # Only what was in flight when the first answer came: never a second round, never 40.
    assert len(submissions(fake_maxapi)) == (1 if concurrency == 1 else concurrency)
    assert [o.status for o in outcomes] == ["failed"] * len(items)
    errors = [o.error for o in outcomes]
    assert all(isinstance(e, maxapi_async.RateLimitError) and e.retry_after == 3600 for e in errors)
    stopped = errors[-1]
    assert isinstance(stopped, maxapi_async.RateLimitError)
    assert "Rerun after " in str(stopped)
    rerun = dt.datetime.fromisoformat(str(stopped).split("Rerun after ")[1].split(" ")[0])
    assert abs(rerun.timestamp() - (started + 3600)) < 60
    assert not any(o.task_id for o in outcomes)


@pytest.mark.fake_maxapi(complete_after_seconds=0.4)
async def test_a_short_retry_after_pauses_submissions_while_submitted_tasks_keep_polling(
    fake_maxapi: FakeMaxAPI,
) -> None:
    def second_submission_is_refused(origin: str, method: str, path: str) -> Fault | None:
        if method == "POST" and len(submissions(fake_maxapi)) == 2:
            return Fault(status=429, headers={"Retry-After": "0.5"})
        return None

    fake_maxapi.fault_source = second_submission_is_refused
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        poll_policy=FAST,
        max_polls_per_second=10_000,
        retry_policy=maxapi_async.RetryPolicy.none(),  # the 429 reaches the batch at once
    ) as client:
        with anyio.fail_after(5):
            outcomes = await Batch(client, generations(4), concurrency=1)
    assert [o.status for o in outcomes] == ["done"] * 4  # the refused item went again after the pause
    _, refused, after, *rest = submissions(fake_maxapi)
    assert len(rest) == 2
    assert after - refused >= 0.5
    polls_meanwhile = [
        r for r in fake_maxapi.requests if r.method == "GET" and refused < r.received_at < after
    ]
    assert polls_meanwhile  # the first task was polled during the pause


@pytest.mark.fake_maxapi(complete_after_polls=10**9)
async def test_closing_the_client_under_a_running_batch_raises_client_closed(fake_maxapi: FakeMaxAPI) -> None:
    client = AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, poll_policy=FAST)
    batch = Batch(client, generations(6), concurrency=2)
    consumer = asyncio.create_task(batch.gather())
    with anyio.fail_after(5):
        while len([r for r in fake_maxapi.requests if r.method == "GET"]) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    await client.aclose()
    with anyio.fail_after(5), pytest.raises(maxapi_async.ClientClosedError):
        await consumer
    assert batch.summary is not None


async def test_closing_a_batch_early_reports_the_rest_as_cancelled(fake_maxapi: FakeMaxAPI) -> None:
    slow = maxapi_async.PollPolicy(earliest=0, latest=0, initial=5, max_delay=5, jitter=0)
    async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, poll_policy=slow) as client:
        batch = Batch(client, generations(3))
        stream = batch.__aiter__()
        with anyio.move_on_after(0.3):
            await stream.__anext__()
        await batch.aclose()
        assert batch.summary is not None
        assert batch.summary.skipped == 3


async def test_stop_records_the_submissions_in_flight_and_sends_nothing_more(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    fake_maxapi.complete_after_polls = 10**6
    seen: list[str] = []  # (the source runs on the fake's thread: no loop-bound event here)

    def slow_second_submission(origin: str, method: str, path: str) -> Fault | None:
        if method != "POST":
            return None
        seen.append(path)
        return Fault(delay=0.3) if len(seen) == 2 else None  # answered within the grace period

    fake_maxapi.fault_source = slow_second_submission
    journal = tmp_path / "run.jsonl"
    batch = Batch(client, generations(6), concurrency=1, journal=journal)
    outcomes: list[maxapi_async.Outcome] = []

    async def consume() -> None:
        outcomes.extend([o async for o in batch])

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await fake_maxapi.wait_for_requests(2, match=lambda r: r.method == "POST", timeout=30)
        assert batch.submitting == 1
        await batch.stop(grace=5)
    # The iteration ended normally, with every item's outcome.
    statuses = {o.key: (o.status, o.task_id is not None, o.reason) for o in outcomes}
    assert statuses == {
        "k00": ("cancelled", True, None),
        "k01": ("cancelled", True, None),  # in flight at stop(): answered, and its task recorded
        **{f"k0{i}": ("skipped", False, "cancelled") for i in range(2, 6)},
    }
    assert posts(fake_maxapi) == 2
    tasks = [r["key"] for r in map(json.loads, journal.read_text().splitlines()) if r["event"] == "task"]
    assert tasks == ["k00", "k01"]
    assert batch.summary is not None
    assert batch.summary.remaining == [f"k0{i}" for i in range(6)]


async def test_a_submission_not_answered_within_the_grace_is_cancelled_and_keeps_its_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    arrived = hold_the_next_submission(fake_maxapi)
    journal = tmp_path / "run.jsonl"
    batch = Batch(client, generations(2), concurrency=1, journal=journal)
    outcomes: list[maxapi_async.Outcome] = []

    async def consume() -> None:
        outcomes.extend([o async for o in batch])

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await arrived()
        await batch.stop(grace=0.05)
    assert sorted((o.key, o.status, o.task_id) for o in outcomes) == [
        ("k00", "cancelled", None),
        ("k01", "skipped", None),
    ]
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(r["event"], r["key"]) for r in records] == [
        ("submit", "k00")
    ]  # a rerun repeats it under this key


# -- across processes -------------------------------------------------------------


def _env(fake: FakeMaxAPI) -> dict[str, str]:
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url}
    env.pop("PYTHONWARNINGS", None)
    return env


async def _run_worker(fake: FakeMaxAPI, *args: str) -> str:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-W", "error", str(WORKER), *args], env=_env(fake), check=False
        )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    return output


@pytest.mark.fake_maxapi(complete_after_seconds=0.6)
async def test_sigkill_midway_then_rerun_submits_each_item_exactly_once(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    count = 24
    process = await anyio.open_process(
        [sys.executable, str(WORKER), str(journal), str(count)], env=_env(fake_maxapi)
    )
    try:
        with anyio.fail_after(30):
            # Watching a file another process writes: polling is the only way to know.
            while sum(e["event"] == "done" for e in _events_or_empty(journal)) < 4:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        await process.wait()
        await process.aclose()
    events = _events_or_empty(journal)
    assert 4 <= sum(e["event"] == "done" for e in events) < count  # killed midway
    output = await _run_worker(fake_maxapi, str(journal), str(count))
    summary = json.loads(output.split("SUMMARY ", 1)[1])
    assert summary["done"] + summary["restored"] == count
    assert summary["restored"] >= 4
    assert fake_maxapi.created_tasks == count  # nobody paid twice
    keys = [r.header("Idempotency-Key") for r in fake_maxapi.requests if r.method == "POST"]
    assert len(set(keys)) == count


def _events_or_empty(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # the line a kill cut short
            events.append(json.loads(line))
    return events


async def test_two_processes_split_a_batch_through_one_redis_store(
    fake_maxapi: FakeMaxAPI, redis_server: RedisServer
) -> None:
    name = f"split-{uuid.uuid4().hex[:8]}"
    outputs: list[str] = []

    async def worker() -> None:
        outputs.append(await _run_worker(fake_maxapi, redis_server.url(), "20", name))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
    lines = [line.split() for out in outputs for line in out.splitlines() if line.startswith("item-")]
    done = sorted(key for key, status in lines if status == "done")
    assert done == [f"item-{i:03}" for i in range(20)]  # each item ran in one of them
    assert sorted(key for key, _ in lines) == sorted(2 * done)  # and both report every item
    assert {status for _, status in lines} <= {"done", "restored"}
    assert fake_maxapi.created_tasks == 20
    assert len(submissions_by_prompt(fake_maxapi)) == 20
    # A rerun finds everything finished, done by either process.
    again = await _run_worker(fake_maxapi, redis_server.url(), "20", name)
    assert {line.split()[1] for line in again.splitlines() if line.startswith("item-")} == {"restored"}
    assert fake_maxapi.created_tasks == 20


async def test_a_torn_journal_then_sigkill_then_rerun_submits_each_item_once(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    await _run_worker(fake_maxapi, str(journal), "2")
    with journal.open("ab") as fh:  # the crash that ended a run cut its last line short
        fh.write(b'{"event":"submit","key":"item-002","idempotency_key":"9c1d')
    # The next run submits item-002 and dies before the answer arrives.
    arrived = hold_the_next_submission(fake_maxapi)
    process = await anyio.open_process(
        [sys.executable, str(WORKER), str(journal), "3"], env=_env(fake_maxapi), stderr=None
    )
    try:
        with anyio.fail_after(30):
            await arrived()
        process.send_signal(signal.SIGKILL)
    finally:
        await process.wait()
        await process.aclose()
    fake_maxapi.fault_source = None
    output = await _run_worker(fake_maxapi, str(journal), "3")
    summary = json.loads(output.split("SUMMARY ", 1)[1])
    assert (summary["done"], summary["restored"]) == (1, 2)
    # item-002 was sent twice, under one Idempotency-Key: one submission, one task.
    assert {p: len(k) for p, k in submissions_by_prompt(fake_maxapi).items()} == {
        "cube 0": 1, "cube 1": 1, "cube 2": 1
    }  # fmt: skip
    assert fake_maxapi.created_tasks == 3


async def test_a_journal_in_use_by_another_process_is_refused_at_once(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    arrived = hold_the_next_submission(fake_maxapi)
    holder = await anyio.open_process([sys.executable, str(WORKER), str(journal), "1"], env=_env(fake_maxapi))
    try:
        with anyio.fail_after(30):
            await arrived()
        with anyio.fail_after(30):
            second = await anyio.run_process(
                [sys.executable, str(WORKER), str(journal), "3"], env=_env(fake_maxapi), check=False
            )
        assert second.returncode == 1
        error = second.stderr.decode().strip().splitlines()[-1]
        assert error.startswith("maxapi_async._protocol.errors.JournalLockedError: journal ")
        assert f"in process {holder.pid}" in error
        async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
            with pytest.raises(maxapi_async.JournalLockedError) as info:
                await Batch(client, generations(3), journal=journal)
        assert info.value.pid == holder.pid
        assert posts(fake_maxapi) == 1  # the holder's, held: nothing from the others
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        await holder.aclose()
    # A killed holder's lock is gone with it (its lock file stays, and locks nothing).
    fake_maxapi.fault_source = None
    assert (tmp_path / "run.jsonl.lock").read_text() == f"{holder.pid}\n"
    output = await _run_worker(fake_maxapi, str(journal), "3")
    assert "SUMMARY" in output
    assert not (tmp_path / "run.jsonl.lock").exists()


# -- a journal the OS will not let us use ------------------------------------------------------


async def test_a_journal_that_cannot_be_made_is_a_typed_error_before_any_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(maxapi_async.JournalError, match="cannot create its folder") as caught:
        Batch(client, generations(2), journal=tmp_path / "a-file" / "run.jsonl")
    assert caught.value.path == str(tmp_path / "a-file" / "run.jsonl")
    assert isinstance(caught.value.__cause__, OSError)
    assert posts(fake_maxapi) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
async def test_a_journal_that_is_not_a_regular_file_is_refused_before_any_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    fifo = tmp_path / "run.jsonl"
    os.mkfifo(fifo)  # reading it would block forever
    with anyio.fail_after(5), pytest.raises(maxapi_async.JournalError, match="not a regular file"):
        await Batch(client, generations(2), journal=fifo)
    assert posts(fake_maxapi) == 0
    assert not (tmp_path / "run.jsonl.lock").exists()


# The file size limit makes every write past 16 bytes fail with EFBIG (SIGXFSZ ignored): the
# lock file's pid fits, no journal record does. The batch must stop before it submits.
_FULL_DISK_BATCH = """
import asyncio, resource, signal, sys
import maxapi_async

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))

async def main():
    async with maxapi_async.AsyncMaxAPI() as client:
        try:
            items = [maxapi_async.GenerateRequest("cube", key="k0")]
            await maxapi_async.Batch(client, items, journal=sys.argv[1])
        except maxapi_async.JournalError as exc:
            print(type(exc).__name__, exc, type(exc.__cause__).__name__)

asyncio.run(main())
"""

# A submission went out and its task record cannot be written: the error names the task.
_FULL_DISK_AFTER_SUBMIT = """
import os, resource, signal, sys
from maxapi_async import JournalError
from maxapi_async._batch.journal import Journal

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
journal = Journal(sys.argv[1])
journal.open()
journal.write({"event": "submit", "key": "k0", "idempotency_key": "abc"})
size = os.path.getsize(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
try:
    journal.write({"event": "task", "key": "k0", "task": {"id": "task_123", "kind": "generation"}})
except JournalError as exc:
    print(exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_a_journal_write_that_fails_stops_the_batch_before_it_pays(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-c", _FULL_DISK_BATCH, str(journal)], env=_env(fake_maxapi), check=False
        )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert output.startswith("JournalError journal "), output
    assert "cannot record submit of item 'k0'" in output
    assert output.rstrip().endswith("OSError"), output
    assert posts(fake_maxapi) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_a_task_record_that_cannot_be_written_names_the_task(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-c", _FULL_DISK_AFTER_SUBMIT, str(journal)], check=False
        )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "cannot record task of item 'k0'" in output
    assert "client.tasks.get('task_123')" in output
