"""RedisStore and RedisPollLimiter alone, against a real redis-server: claims, keys, budget, poll rate.

Several runs in one process stand for workers; the multi-process tests start real ones
(``_store_worker.py``). No MaxAPI here: the batch runner's use of the store is tested with
the batch (test_batch_store.py) and under Celery (test_celery_batch.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _redis_server import RedisServer, redis_server_or_skip

from maxapi_async import MaxAPIError, StoreError
from maxapi_async._batch.redis_client import RedisPollLimiter
from maxapi_async._batch.redis_store import RedisRun, RedisStore
from maxapi_async._batch.store import ClaimLost, Held, ItemState, derived_idempotency_key

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("_store_worker.py")
E = 40_000_000  # one image at the official route, in nano-credits


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(redis_server: RedisServer, name: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url(), name, lease=5)
    try:
        yield store
    finally:
        await store.clear()
        await store.aclose()


async def _run(store: RedisStore) -> RedisRun:
    return await store.open_run()


# -- claims --------------------------------------------------------------------------------------


async def test_an_item_is_claimed_by_one_run_at_a_time(store: RedisStore) -> None:
    first, second = await _run(store), await _run(store)
    assert await first.claim("a") == ItemState("new")
    held = await second.claim("a")
    assert isinstance(held, Held)
    assert 4 < held.retry_in <= 5
    assert await first.claim("a") == ItemState("new")  # the holder may claim again
    await first.release("a")
    assert await second.claim("a") == ItemState("new")
    await first.close()
    await second.close()


async def test_a_closed_run_lets_go_of_every_claim_at_once(store: RedisStore) -> None:
    first, second = await _run(store), await _run(store)
    for key in "abc":
        await first.claim(key)
    await first.close()
    assert [await second.claim(key) for key in "abc"] == [ItemState("new")] * 3
    await second.close()


async def test_a_living_run_renews_its_leases(redis_server: RedisServer, name: str) -> None:
    store = RedisStore(redis_server.url(), name, lease=0.3)
    first, second = await _run(store), await _run(store)
    await first.claim("a")
    await anyio.sleep(1.0)  # three leases long: renewed every 0.1 s meanwhile
    assert isinstance(await second.claim("a"), Held)
    await first.close()
    await second.close()
    await store.clear()
    await store.aclose()


async def test_finished_items_come_back_with_their_record_and_no_claim(store: RedisStore) -> None:
    run = await _run(store)
    await run.claim("a")
    await run.reserve("a", E, None)
    key = await run.submitting("a", dict)
    await run.submitted("a", key, {"id": "t1", "kind": "generation"})
    await run.done("a", {"task_id": "t1", "images": []}, E)
    other = await _run(store)
    assert await other.claim("a") == ItemState(
        "done", key, {"id": "t1", "kind": "generation"}, {"task_id": "t1", "images": []}
    )
    assert await run.claim("a") == await other.claim("a")  # no lease: anyone may read it
    assert (await store.progress()).done == 1
    await run.close()
    await other.close()


async def test_many_runs_claiming_the_same_items_at_once_each_get_a_share(store: RedisStore) -> None:
    runs = [await _run(store) for _ in range(8)]
    keys = [f"k{i}" for i in range(60)]
    got: dict[int, list[str]] = {i: [] for i in range(8)}

    async def claim_all(i: int) -> None:
        for key in keys:
            if isinstance(await runs[i].claim(key), ItemState):
                got[i].append(key)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(claim_all, i)
    claimed = [key for keys_of_run in got.values() for key in keys_of_run]
    assert sorted(claimed) == sorted(keys)  # each exactly once
    for run in runs:
        await run.close()


# -- idempotency keys ------------------------------------------------------------------------------


async def test_a_submission_repeated_by_another_worker_carries_the_same_key(store: RedisStore) -> None:
    first = await _run(store)
    await first.claim("a")
    assert await first.reserve("a", E, None)
    key = await first.submitting("a", dict)
    assert key == derived_idempotency_key(store.name, "a", 0)
    await first.release("a")  # its answer never recorded: as if the worker died here

    second = await _run(store)
    assert await second.claim("a") == ItemState("submitting", key)
    assert await second.reserve("a", E, 1)  # reserved by the first: never refused, never counted twice
    assert await second.submitting("a", dict) == key
    progress = await store.progress()
    assert (progress.submitted, progress.resubmitted, progress.resumed) == (1, 1, 1)
    assert progress.committed == 0.04
    await first.close()
    await second.close()


def test_derived_keys_differ_by_batch_item_and_attempt() -> None:
    keys = {
        derived_idempotency_key("batch", "a", 0),
        derived_idempotency_key("batch", "a", 1),
        derived_idempotency_key("batch", "b", 0),
        derived_idempotency_key("other", "a", 0),
    }
    assert len(keys) == 4
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)
    assert derived_idempotency_key("batch", "a", 0) == derived_idempotency_key("batch", "a", 0)


async def test_a_run_whose_claim_was_taken_sends_nothing(
    redis_server: RedisServer, store: RedisStore
) -> None:
    first, second = await _run(store), await _run(store)
    await first.claim("a")
    assert redis_server.command("DEL", store._lease("a")) == ":1"  # its lease expired...
    await second.claim("a")  # ...and another worker took the item
    with pytest.raises(ClaimLost):
        await first.reserve("a", E, None)
    with pytest.raises(ClaimLost):
        await first.submitting("a", dict)
    assert (await store.progress()).submitted == 0
    await first.close()
    await second.close()


async def test_retrying_failed_items_keeps_a_key_only_when_the_outcome_was_unknown(store: RedisStore) -> None:
    run = await _run(store)
    keys = {}
    for item in ("refused", "lost", "slow"):
        await run.claim(item)
        await run.reserve(item, E, None)
        keys[item] = await run.submitting(item, dict)
    await run.submitted("slow", keys["slow"], {"id": "t-slow", "kind": "generation"})
    await run.failed("refused", {"error": "TaskFailedError", "task_id": "t-x"}, keep_reservation=False)
    await run.failed("lost", {"error": "APIConnectionError", "task_id": None}, keep_reservation=False)
    await run.failed("slow", {"error": "TaskTimeoutError", "task_id": "t-slow"}, keep_reservation=True)
    assert (await store.progress()).failed == 3
    assert await run.claim("refused") == ItemState(
        "failed", keys["refused"], None, {"error": "TaskFailedError", "task_id": "t-x"}
    )

    assert await store.retry_failed() == 3
    again = await _run(store)
    assert await again.claim("refused") == ItemState("new")
    assert await again.reserve("refused", E, None)
    assert await again.submitting("refused", dict) == derived_idempotency_key(store.name, "refused", 1)
    assert await again.claim("lost") == ItemState("submitting", keys["lost"])
    assert await again.claim("slow") == ItemState(
        "submitted", keys["slow"], {"id": "t-slow", "kind": "generation"}
    )
    progress = await store.progress()
    assert progress.failed == 0
    assert progress.committed == pytest.approx(0.08)  # "slow" kept its estimate, "refused" has a new one
    await run.close()
    await again.close()


# -- the budget --------------------------------------------------------------------------------------


async def test_the_budget_is_one_reservation_for_every_run_under_contention(store: RedisStore) -> None:
    runs = [await _run(store) for _ in range(60)]
    budget = 25 * E

    async def one(i: int) -> bool:
        await runs[i].claim(f"k{i}")
        return await runs[i].reserve(f"k{i}", E, budget)

    results: list[bool] = []

    async def collect(i: int) -> None:
        results.append(await one(i))

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(collect, i)
    assert results.count(True) == 25
    progress = await store.progress()
    assert (progress.committed, progress.skipped) == (1.0, 35)
    for run in runs:
        await run.close()


async def test_the_first_refusal_stops_every_later_reservation(store: RedisStore) -> None:
    run = await _run(store)
    for key in "abc":
        await run.claim(key)
    assert await run.reserve("a", 3 * E, 4 * E)
    assert not await run.reserve("b", 2 * E, 4 * E)  # does not fit
    assert not await run.reserve("c", E, 4 * E)  # would fit, but the budget stopped at "b"
    assert await run.reserve("c", E, 10 * E)  # a larger budget (a later run) takes it
    assert (await store.progress()).skipped == 1
    await run.close()


async def test_done_settles_a_reservation_and_failed_releases_it(store: RedisStore) -> None:
    run = await _run(store)
    for key in ("done", "failed", "timed-out"):
        await run.claim(key)
        await run.reserve(key, E, None)
    assert (await store.progress()).committed == pytest.approx(0.12)
    await run.done("done", {}, 24_000_000)
    await run.failed("failed", {"error": "BadRequestError"}, keep_reservation=False)
    await run.failed("timed-out", {"error": "TaskTimeoutError"}, keep_reservation=True)
    progress = await store.progress()
    assert (progress.committed, progress.spent) == (pytest.approx(0.064), pytest.approx(0.024))
    await run.close()


# -- errors ---------------------------------------------------------------------------------------------


async def test_a_redis_that_cannot_be_reached_is_a_store_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there once closed
    store = RedisStore(f"redis://127.0.0.1:{port}/0", "nowhere")
    run = await store.open_run()
    with pytest.raises(StoreError, match="cannot claim item 'a': Redis failed") as caught:
        await run.claim("a")
    assert isinstance(caught.value, MaxAPIError)
    await run.close()
    await store.aclose()


def test_without_redis_py_the_store_says_which_extra_to_install() -> None:
    code = (
        "import sys, asyncio; sys.modules['redis'] = None\n"
        "from maxapi_async._batch.redis_store import RedisStore\n"
        "from maxapi_async import ConfigurationError\n"
        "store = RedisStore('redis://127.0.0.1:1/0', 'x')\n"
        "try:\n    asyncio.run(store.progress())\n"
        "except ConfigurationError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert "pip install 'maxapi-async[redis]'" in out.stdout, out.stderr


@pytest.mark.parametrize("bad", [{"name": ""}, {"lease": 0}, {"lease": True}, {"redis": 42}])
def test_bad_arguments_are_refused_naming_them(bad: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"redis": "redis://127.0.0.1/0", "name": "b", **bad}
    with pytest.raises(MaxAPIError, match=next(iter(bad))):
        RedisStore(**arguments)


async def test_clear_deletes_this_batch_and_nothing_else(redis_server: RedisServer, name: str) -> None:
    mine, other = RedisStore(redis_server.url(), name), RedisStore(redis_server.url(), name + "-other")
    for store in (mine, other):
        run = await store.open_run()
        await run.claim("a")
        await run.reserve("a", E, None)
        await run.close()
    await mine.clear()
    assert await mine.state("a") == ItemState("new")
    assert await other.state("a") == ItemState("reserved")
    await other.clear()
    await mine.aclose()
    await other.aclose()


# -- the shared poll budget ----------------------------------------------------------------------------


def _peak(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


async def test_limiters_sharing_a_name_share_one_rate(redis_server: RedisServer, name: str) -> None:
    rate = 40
    limiters = [RedisPollLimiter(redis_server.url(), name) for _ in range(3)]
    times: list[float] = []

    async def poller(limiter: RedisPollLimiter) -> None:
        for _ in range(10):
            await limiter.wait(rate)
            times.append(time.monotonic())

    async with anyio.create_task_group() as tg:
        for limiter in limiters:
            for _ in range(2):
                tg.start_soon(poller, limiter)
    assert _peak(times) <= rate
    assert max(times) - min(times) >= (len(times) - 1) / rate * 0.9  # 60 polls: spaced, not at once
    for limiter in limiters:
        await limiter.aclose()


# -- other processes ---------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


class _Worker:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )

    def read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"worker exited with {self.process.wait()}"
        return json.loads(line)

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0
        self.close()

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.fixture
def workers() -> Iterator[list[_Worker]]:
    started: list[_Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.close()


def _together(workers: list[_Worker]) -> list[Any]:
    """Start every worker's work at once (each is connected and waiting); their answers."""
    assert all(w.read() == "ready" for w in workers)
    for w in workers:
        w.say("go")
    return [w.read() for w in workers]


def test_processes_claiming_the_same_items_each_get_a_share(
    redis_server: RedisServer, name: str, workers: list[_Worker]
) -> None:
    keys = [f"k{i:03}" for i in range(200)]
    workers.extend(_Worker("claim", redis_server.url(), name, "30", *keys) for _ in range(4))
    got = _together(workers)
    for w in workers:
        w.finish()
    claimed = [key for share in got for key in share]
    assert sorted(claimed) == keys  # each item claimed once, by one process
    assert sum(1 for share in got if share) >= 2  # they did overlap
    asyncio.run(_clear(redis_server, name))


def test_processes_never_reserve_past_the_budget(
    redis_server: RedisServer, name: str, workers: list[_Worker]
) -> None:
    keys = [f"k{i:03}" for i in range(200)]
    workers.extend(_Worker("reserve", redis_server.url(), name, str(73 * E), str(E), *keys) for _ in range(4))
    got = _together(workers)
    for w in workers:
        w.finish()
    reserved = [key for share in got for key in share]
    assert len(reserved) == len(set(reserved)) == 73
    progress = asyncio.run(_progress(redis_server, name))
    assert progress.committed == pytest.approx(73 * 0.04)
    asyncio.run(_clear(redis_server, name))


def test_a_dead_workers_item_is_taken_over_from_its_recorded_task(
    redis_server: RedisServer, name: str, workers: list[_Worker]
) -> None:
    dying = _Worker("die", redis_server.url(), name, "0.5", "a")
    workers.append(dying)
    sent = dying.read()["idempotency_key"]
    os.kill(dying.process.pid, signal.SIGKILL)
    dying.process.wait()

    async def take_over() -> tuple[ItemState | Held, ItemState | Held]:
        store = RedisStore(redis_server.url(), name, lease=5)
        run = await store.open_run()
        first = await run.claim("a")
        assert isinstance(first, Held)
        assert first.retry_in <= 0.5
        await asyncio.sleep(first.retry_in + 0.05)  # the dead worker's lease runs out
        second = await run.claim("a")
        assert await run.reserve("a", E, E)  # its reservation stands: never counted twice
        progress = await store.progress()
        assert (progress.submitted, progress.resumed, progress.committed) == (1, 1, 0.04)
        await run.close()
        await store.clear()
        await store.aclose()
        return first, second

    _, state = asyncio.run(take_over())
    assert state == ItemState("submitted", sent, {"id": "task_1", "kind": "generation"})


def test_processes_sharing_a_limiter_never_pass_the_rate(
    redis_server: RedisServer, name: str, workers: list[_Worker]
) -> None:
    rate = 40
    workers.extend(_Worker("poll", redis_server.url(), name, str(rate), "20") for _ in range(3))
    times = [t for share in _together(workers) for t in share]
    for w in workers:
        w.finish()
    assert len(times) == 60
    assert _peak(times) <= rate
    assert max(times) - min(times) >= 59 / rate * 0.9


async def _progress(redis_server: RedisServer, name: str) -> Any:
    store = RedisStore(redis_server.url(), name)
    try:
        return await store.progress()
    finally:
        await store.aclose()


async def _clear(redis_server: RedisServer, name: str) -> None:
    store = RedisStore(redis_server.url(), name)
    await store.clear()
    await store.aclose()


def test_a_missing_redis_server_skips_the_test_but_fails_it_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        redis_server_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
        redis_server_or_skip()
