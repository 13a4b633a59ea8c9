"""Batch(client, items, store=RedisStore(...)): one batch run by many workers, against FakeMaxAPI.

Batches in this process stand for workers; a killed worker is a real process
(``scripts/batch_worker.py``). The Celery example runs the same store under real Celery
workers (test_celery_batch.py).
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from _redis_server import RedisServer, running_redis

import maxapi_async
from maxapi_async import AsyncMaxAPI, Batch, GenerateRequest, Outcome, RedisStore
from maxapi_async.testing import FakeMaxAPI

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).parent / "scripts" / "batch_worker.py"
FAST = maxapi_async.PollPolicy(earliest=0, latest=0, initial=0.01, max_delay=0.02, jitter=0)
PRICE = 0.04  # the default route's price per image


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


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url(), f"batch-{uuid.uuid4().hex[:8]}", lease=5)
    try:
        yield store
    finally:
        await store.clear()
        await store.aclose()


def generations(count: int) -> list[GenerateRequest]:
    return [GenerateRequest(f"cube {i}", key=f"k{i:02}") for i in range(count)]


def keys_by_prompt(fake: FakeMaxAPI) -> dict[str, set[str | None]]:
    keys: dict[str, set[str | None]] = {}
    for request in fake.requests:
        if request.method == "POST" and isinstance(request.json, dict):
            keys.setdefault(request.json["prompt"], set()).add(request.header("Idempotency-Key"))
    return keys


async def _together(*batches: Batch) -> list[list[Outcome]]:
    results: list[list[Outcome]] = [[] for _ in batches]

    async def run(i: int) -> None:
        results[i] = await batches[i]

    async with anyio.create_task_group() as tg:
        for i in range(len(batches)):
            tg.start_soon(run, i)
    return results


async def test_two_workers_on_one_store_run_each_item_once_and_both_report_it(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, store: RedisStore, tmp_path: Path
) -> None:
    items = generations(16)
    first, second = await _together(
        Batch(client, items, store=store, download_to=tmp_path, concurrency=4),
        Batch(client, items, store=store, download_to=tmp_path, concurrency=4),
    )
    assert fake_maxapi.created_tasks == 16
    assert all(len(keys) == 1 for keys in keys_by_prompt(fake_maxapi).values())
    for a, b in zip(first, second, strict=True):  # one ran it, the other saw it done
        assert sorted((a.status, b.status)) == ["done", "restored"]
        assert a.task_id == b.task_id
    assert sum(o.status == "done" for o in first + second) == 16
    assert len([p async for p in anyio.Path(tmp_path).glob("*.png")]) == 16
    assert (await store.progress()).done == 16


async def test_the_budget_is_one_for_every_worker_on_the_store(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, store: RedisStore
) -> None:
    items = generations(20)
    results = await _together(*(Batch(client, items, store=store, budget=7 * PRICE) for _ in range(3)))
    assert fake_maxapi.created_tasks == 7
    done = {o.key for outcomes in results for o in outcomes if o.status == "done"}
    assert len(done) == 7
    for outcomes in results:
        assert {o.key for o in outcomes if o.status == "skipped"} == {i.key for i in items} - done
        assert all(o.reason == "budget" for o in outcomes if o.status == "skipped")
    progress = await store.progress()
    assert (progress.submitted, progress.done, progress.skipped) == (7, 7, 13)
    assert progress.spent == pytest.approx(7 * PRICE)


async def test_a_rerun_with_a_larger_budget_takes_the_skipped_items(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, store: RedisStore
) -> None:
    items = generations(6)
    first = await Batch(client, items, store=store, budget=2 * PRICE)
    assert [o.status for o in first] == ["done"] * 2 + ["skipped"] * 4
    again = await Batch(client, items, store=store, budget=6 * PRICE)
    assert [o.status for o in again] == ["restored"] * 2 + ["done"] * 4
    assert fake_maxapi.created_tasks == 6


async def test_a_failure_recorded_by_one_worker_is_not_retried_by_another(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, store: RedisStore
) -> None:
    fake_maxapi.fail_tasks("CONTENT_MODERATION")
    [first] = await Batch(client, generations(1), store=store)
    assert first.status == "failed"
    assert isinstance(first.error, maxapi_async.TaskFailedError)
    [again] = await Batch(client, generations(1), store=store)
    assert (again.status, again.error, again.task_id) == ("failed", None, first.task_id)
    assert again.reason is not None
    assert again.reason.startswith("TaskFailedError: ")
    assert fake_maxapi.created_tasks == 1
    assert await store.retry_failed() == 1  # then a new attempt, under a new key
    [retried] = await Batch(client, generations(1), store=store)
    assert retried.status == "done"
    assert fake_maxapi.created_tasks == 2
    assert len(keys_by_prompt(fake_maxapi)["cube 0"]) == 2


async def test_an_unreachable_redis_stops_the_batch_with_a_store_error(client: AsyncMaxAPI) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", "nowhere")
    with anyio.fail_after(10), pytest.raises(maxapi_async.StoreError, match="cannot claim item 'k00'"):
        await Batch(client, generations(3), store=store)
    await store.aclose()


@pytest.mark.fake_maxapi(complete_after_seconds=0.5)
async def test_a_redis_lost_after_a_submission_stops_the_batch_naming_the_task(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    with running_redis(tmp_path) as server:
        store = RedisStore(server.url(), "lost")
        batch = Batch(client, generations(1), store=store)
        with anyio.fail_after(10):
            outcomes = batch.__aiter__()
            async with anyio.create_task_group() as tg:

                async def stop_redis_once_submitted() -> None:
                    # Redis is ours alone here: polling its state is the only way to know.
                    while (await store.state("k00")).status != "submitted":  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    server.process.kill()

                tg.start_soon(stop_redis_once_submitted)
                with pytest.raises(maxapi_async.StoreError) as info:
                    async for _ in outcomes:
                        pass
    message = str(info.value)
    assert message.startswith("cannot record the result of item 'k00' (its task task_")
    assert "resume it with client.tasks.get(" in message
    assert fake_maxapi.created_tasks == 1
    await store.aclose()


# -- a worker that dies ------------------------------------------------------------------------


def _env(fake: FakeMaxAPI) -> dict[str, str]:
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url}
    env.pop("PYTHONWARNINGS", None)
    return env


@pytest.mark.fake_maxapi(complete_after_seconds=1.0)
async def test_a_dead_workers_item_is_taken_over_from_its_task_not_paid_again(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, store: RedisStore, redis_server: RedisServer
) -> None:
    process = await anyio.open_process(
        [sys.executable, str(WORKER), redis_server.url(), "1", store.name, "0.5"], env=_env(fake_maxapi)
    )
    try:
        with anyio.fail_after(20):
            # Watching another process's state in Redis: polling is the only way to know.
            while (await store.state("item-000")).status != "submitted":  # noqa: ASYNC110
                await anyio.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)  # its task runs on at the service, its claim held
    finally:
        await process.wait()
        await process.aclose()
    with anyio.fail_after(10):
        [outcome] = await Batch(client, [GenerateRequest("cube 0", key="item-000")], store=store)
    assert outcome.status == "done"
    assert fake_maxapi.created_tasks == 1
    assert (
        len(fake_maxapi.requests_to("/v1/images/generations"))
        - len([r for r in fake_maxapi.requests if r.method == "GET"])
        == 1
    )  # one submission: the rest are polls of its task
    progress = await store.progress()
    assert (progress.submitted, progress.resubmitted, progress.resumed, progress.done) == (1, 0, 1, 1)


async def test_the_journal_store_counts_what_its_file_holds(client: AsyncMaxAPI, tmp_path: Path) -> None:
    from maxapi_async._batch.journal import JournalStore

    await Batch(client, generations(3), journal=tmp_path / "run.jsonl", budget=2 * PRICE)
    run = await JournalStore(tmp_path / "run.jsonl").open_run()
    try:
        progress = await run.progress()
        assert (progress.submitted, progress.done, progress.failed) == (2, 2, 0)
        assert progress.spent == pytest.approx(2 * PRICE)
    finally:
        await run.close()
