"""examples/celery_batch as it would run: redis-server, the fake MaxAPI in its own process, two
real ``celery worker`` processes (prefork, 2 processes each), and the example's enqueue command.

The tests run in order on the same workers: 300 prompts; a budget for 200 of 300; 300 prompts
with one worker SIGKILLed mid-run (last: it leaves one worker). Every test also holds the
shared poll cap at the fake: its polls in any one second never pass ``CAP``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _redis_server import RedisServer

from maxapi_async.testing import png_size

pytest.importorskip("celery")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SUBMIT = "/v1/images/generations"
CAP = 30  # polls per second, for both workers together
PRICE = 0.04  # the default route's price per image
FAST_POLLS = {"earliest": 0, "latest": 0, "spacing": 0, "initial": 0.02, "max_delay": 0.02, "jitter": 0}


class FakeProcess:
    """``maxapi-async fake-server`` in its own process, read through its control API."""

    def __init__(self) -> None:
        command = [
            sys.executable,
            "-m",
            "maxapi_async",
            "fake-server",
            "--json",
            "--complete-after-polls",
            "1",
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env({})
        )
        assert self.process.stdout is not None
        address = json.loads(self.process.stdout.readline())
        self.base_url, self.api_key = address["base_url"], address["api_key"]
        self.control_url = address["control_url"]

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.control_url + path, timeout=30) as answer:
            return json.load(answer)

    def state(self) -> dict[str, Any]:
        """The counters, and the submissions and polls as ``[received_at, key, prompt]`` and times."""
        state = self._get("/state")
        records = self._get("/requests?path=" + SUBMIT)["requests"]
        lowered = [{k.lower(): v for k, v in r["headers"].items()} for r in records]
        return {
            "created_tasks": state["created_tasks"],
            "repeated_submissions": state["repeated_submissions"],
            "submissions": [
                [r["received_at"], headers.get("idempotency-key"), (r["json"] or {}).get("prompt")]
                for r, headers in zip(records, lowered, strict=True)
                if r["method"] == "POST" and r["path"] == SUBMIT
            ],
            "polls": [r["received_at"] for r in records if r["method"] == "GET"],
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Worker:
    """A ``celery worker`` (its own session, so it and its pool processes can be killed together)."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "celery_batch.app", "worker", "--pool", "prefork",
            "--concurrency", "2", "--loglevel", "INFO", "--hostname", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.ready = threading.Event()
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if " ready." in line:
                self.ready.set()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def _env(extra: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProcess]:
    process = FakeProcess()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, fake: FakeProcess) -> dict[str, str]:
    return _env(
        {
            "MAXAPI_KEY": fake.api_key,
            "MAXAPI_BASE_URL": fake.base_url,
            "CELERY_BATCH_REDIS": redis_server.url(3),
            "CELERY_BATCH_POLLS_PER_SECOND": str(CAP),
            "CELERY_BATCH_LEASE": "2",
            "CELERY_BATCH_VISIBILITY": "4",
            "CELERY_BATCH_POLL_POLICY": json.dumps(FAST_POLLS),
        }
    )


@pytest.fixture(scope="module")
def workers(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    folder = tmp_path_factory.mktemp("workers")
    started = [Worker(f"w{i}", env, folder) for i in range(2)]
    try:
        for worker in started:
            assert worker.ready.wait(60), "".join(worker.log)
        yield started
    finally:
        for worker in started:
            worker.kill()
            if worker.process.stderr is not None:
                worker.process.stderr.close()


class Run:
    """One batch of ``count`` prompts, enqueued with the example's command."""

    def __init__(self, tmp_path: Path, env: dict[str, str], count: int, *options: str) -> None:
        self.name = f"cubes-{uuid.uuid4().hex[:8]}"
        self.prompts = [f"{self.name} glass cube {i}" for i in range(count)]
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("".join(p + "\n" for p in self.prompts))
        self.out = tmp_path / "images"
        command = [sys.executable, "-m", "celery_batch", "enqueue", str(prompts), "--batch", self.name,
                   "--out", str(self.out), "--every", "0.2", "--timeout", "80", *options]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def lines_until(self, done: int) -> None:
        """Read the command's progress lines until ``done`` items are done."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())
            match = re.match(r"(\d+)/\d+ done", line)
            if match and int(match.group(1)) >= done:
                return
        raise AssertionError(f"the command ended first: {self.lines}")

    def finish(self) -> int:
        assert self.process.stdout is not None
        self.lines.extend(line.strip() for line in self.process.stdout)
        self.process.stdout.close()
        return self.process.wait(timeout=90)

    def images(self) -> list[Path]:
        files = sorted(self.out.glob("*.png"))
        assert all(png_size(f.read_bytes()) == (1024, 1024) for f in files)
        return files


def _submissions_by_prompt(before: dict[str, Any], after: dict[str, Any], run: Run) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for _, key, prompt in after["submissions"][len(before["submissions"]) :]:
        assert prompt in run.prompts
        keys.setdefault(prompt, set()).add(key)
    return keys


def _peak(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


def _polls(before: dict[str, Any], after: dict[str, Any]) -> list[float]:
    polls: list[float] = after["polls"][len(before["polls"]) :]
    return polls


def test_300_prompts_give_300_images_each_task_created_once(
    workers: list[Worker], fake: FakeProcess, env: dict[str, str], tmp_path: Path
) -> None:
    before = fake.state()
    run = Run(tmp_path, env, 300)
    assert run.finish() == 0, run.lines
    after = fake.state()

    assert len(run.images()) == 300
    assert run.lines[-1].startswith("300/300 done, 0 failed, 0 skipped by budget (300 submitted, 0 taken")
    assert after["created_tasks"] - before["created_tasks"] == 300
    keys = _submissions_by_prompt(before, after, run)
    assert len(keys) == 300
    assert all(len(k) == 1 for k in keys.values())  # one submission, one key, per item
    assert after["repeated_submissions"] == before["repeated_submissions"]
    polls = _polls(before, after)
    assert len(polls) == 300  # a task finishes on its first poll
    assert _peak(polls) <= CAP
    # ...and the cap is what held them back: four processes polling as soon as they may, each
    # with a gate of its own, would pass it.
    assert _peak(polls) >= CAP * 0.8


def test_a_budget_for_200_items_submits_exactly_200_across_both_workers(
    workers: list[Worker], fake: FakeProcess, env: dict[str, str], tmp_path: Path
) -> None:
    before = fake.state()
    run = Run(tmp_path, env, 300, "--budget", f"{200 * PRICE:.2f}")
    assert run.finish() == 1, run.lines  # not every item done
    after = fake.state()

    assert len(run.images()) == 200
    assert run.lines[-1].startswith("200/300 done, 0 failed, 100 skipped by budget (200 submitted, 0 taken")
    assert run.lines[-1].endswith(f"{200 * PRICE:.3f} credits)")
    assert after["created_tasks"] - before["created_tasks"] == 200
    assert len(after["submissions"]) - len(before["submissions"]) == 200
    assert _peak(_polls(before, after)) <= CAP


def _pool(worker: Worker) -> set[int]:
    """The pids of a worker's pool processes (Linux)."""
    pid = worker.process.pid
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _held_by(redis_url: str, batch: str, pids: set[int]) -> list[str]:
    """The store's status of each item whose claim (lease) processes ``pids`` hold."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        statuses = []
        for lease in client.scan_iter(match=f"maxapi:{{{batch}}}:lease:*"):
            owner = client.get(lease)  # "host:pid:token"
            if owner is not None and int(owner.split(":")[1]) in pids:
                statuses.append(client.hget(lease.replace(":lease:", ":item:", 1), "status") or "new")
        return statuses
    finally:
        client.close()


def test_a_worker_killed_mid_run_loses_no_item_and_pays_none_twice(
    workers: list[Worker], fake: FakeProcess, env: dict[str, str], tmp_path: Path
) -> None:
    before = fake.state()
    run = Run(tmp_path, env, 300)
    run.lines_until(done=100)
    pool, redis_url = _pool(workers[0]), env["CELERY_BATCH_REDIS"]
    deadline = time.monotonic() + 10
    # Another process's state in Redis: polling is the only way to see it hold a submitted item.
    while "submitted" not in _held_by(redis_url, run.name, pool):
        assert time.monotonic() < deadline, "worker 0 held no submitted item for 10 s"
        time.sleep(0.002)
    workers[0].kill()  # the worker and its pool processes, SIGKILL: nothing of theirs runs on
    held = _held_by(redis_url, run.name, pool)  # its claims outlive it by up to their lease (2 s)
    assert run.finish() == 0, run.lines
    after = fake.state()

    assert len(run.images()) == 300
    assert run.lines[-1].startswith("300/300 done, 0 failed, 0 skipped by budget (300 submitted")
    assert after["created_tasks"] - before["created_tasks"] == 300  # no item with two tasks
    keys = _submissions_by_prompt(before, after, run)
    assert len(keys) == 300
    assert all(len(k) == 1 for k in keys.values())  # a repeat carries the first key
    posts = Counter(prompt for _, _, prompt in after["submissions"][len(before["submissions"]) :])
    repeated = after["repeated_submissions"] - before["repeated_submissions"]
    assert repeated == sum(n - 1 for n in posts.values())
    counts = re.search(r"(\d+) taken over from a stopped worker, (\d+) sent again", run.lines[-1])
    assert counts is not None, run.lines[-1]
    taken_over, resent = int(counts.group(1)), int(counts.group(2))
    # What the killed worker held was taken up where it stopped: a task recorded was polled
    # again, a submission whose answer it never recorded was sent again under its key (the
    # fake saw a repeat if the first one reached it), nothing else was sent twice.
    assert taken_over == sum(s in ("reserved", "submitting", "submitted") for s in held) >= 1, held
    assert resent == held.count("submitting")
    assert repeated <= resent <= 2
    assert _peak(_polls(before, after)) <= CAP
