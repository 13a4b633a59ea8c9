"""Ctrl-C in ``maxapi-async batch``: a real SIGINT to a real ``python -m maxapi_async batch`` on a
pseudo-terminal, against FakeMaxAPI; the summary on screen, the journal, the resume command
(run, it resumes without paying twice), exit 130, and a second Ctrl-C that exits at once."""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _terminal import Terminal
from anyio.from_thread import start_blocking_portal

import maxapi_async
from maxapi_async._cli import batch as _cli_batch
from maxapi_async._cli import input as _cli_input
from maxapi_async._cli import main
from maxapi_async.testing import FakeMaxAPI, Fault

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT and pseudo-terminals are POSIX")

FAST_POLLS_CLI = Path(__file__).parent / "scripts" / "fast_polls_cli.py"
GENERATIONS = "/v1/images/generations"


@pytest.fixture
def fake() -> Iterator[FakeMaxAPI]:
    with start_blocking_portal() as portal:
        server = portal.call(lambda: FakeMaxAPI().start())
        try:
            yield server
        finally:
            portal.call(server.close)


def env_for(fake: FakeMaxAPI) -> dict[str, str]:
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url}
    env.pop("MAXAPI_LOG", None)
    return env


def hold_submissions(fake: FakeMaxAPI, held: dict[int, float], arrived_at: int) -> threading.Event:
    """Submission number ``n`` (from 1) is answered after ``held[n]`` seconds; the event is
    set when submission ``arrived_at`` reaches the fake."""
    arrived = threading.Event()
    count = 0
    lock = threading.Lock()

    def source(origin: str, method: str, path: str) -> Fault | None:
        nonlocal count
        if origin != "api" or method != "POST":
            return None
        with lock:
            count += 1
            number = count
        if number == arrived_at:
            arrived.set()
        return Fault(delay=held[number]) if number in held else None

    fake.fault_source = source
    return arrived


def posts(fake: FakeMaxAPI) -> int:
    return sum(r.method == "POST" for r in fake.requests_to(GENERATIONS))


def journal_events(path: Path) -> list[tuple[str, str]]:
    return [(r["event"], r["key"]) for r in map(json.loads, path.read_text().splitlines())]


def test_ctrl_c_stops_submitting_records_what_was_sent_and_says_how_to_resume(
    fake: FakeMaxAPI, tmp_path: Path
) -> None:
    fake.complete_after_polls = 10**6  # the tasks run on while the batch is interrupted
    (tmp_path / "prompts.txt").write_text("".join(f"cube {i}\n" for i in range(1, 7)))
    # Submissions 3 and 4 are still in flight when Ctrl-C comes: answered after a second.
    arrived = hold_submissions(fake, {3: 1.0, 4: 1.0}, arrived_at=4)
    argv = ["batch", "prompts.txt", "--concurrency", "2"]
    term = Terminal(
        [sys.executable, "-m", "maxapi_async", *argv], env=env_for(fake), cwd=tmp_path, columns=160
    )
    try:
        assert arrived.wait(20)
        term.interrupt()  # Ctrl-C: a real SIGINT
        code = term.wait()
        screen = term.text()
    finally:
        term.close()
    print("\n--- the screen after Ctrl-C ---\n" + screen)
    assert code == 130, screen
    lines = screen.splitlines()
    assert lines[0] == "6 items from prompts.txt; journal prompts.journal.jsonl"
    assert lines[1] == (
        "maxapi-async: interrupted: submitting nothing more; up to 5 s for 2 in flight to be recorded "
        "(Ctrl-C again: exit now)"
    )
    assert lines[2:] == [
        "interrupted: 4 submitted in this run (paid for), 0 finished, 0 failed, 2 not submitted",
        "  credits: 0.000 for the finished; up to 0.160 more for the 4 tasks still running at the service",
        "  journal: prompts.journal.jsonl",
        "  resume with: maxapi-async batch prompts.txt --concurrency 2",
        "maxapi-async: error: interrupted",
    ]
    # The two submissions in flight were answered within the grace period and recorded.
    assert posts(fake) == 4
    events = journal_events(tmp_path / "prompts.journal.jsonl")
    assert sorted(key for event, key in events if event == "task") == ["0001", "0002", "0003", "0004"]

    # The printed command resumes: the four tasks are waited for, only the other two are sent.
    fake.complete_after_polls = 0
    fake.fault_source = None
    command = shlex.split(lines[-2].split("resume with: ", 1)[1])
    assert command[0] == "maxapi-async"
    done = subprocess.run(
        [sys.executable, str(FAST_POLLS_CLI), *command[1:]],
        env=env_for(fake),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len([line for line in done.stdout.splitlines() if line.startswith("done ")]) == 6
    assert posts(fake) == 6
    assert fake.created_tasks == 6  # nothing paid twice


def test_a_second_ctrl_c_exits_at_once(fake: FakeMaxAPI, tmp_path: Path) -> None:
    fake.complete_after_polls = 10**6
    (tmp_path / "prompts.txt").write_text("a cube\na sphere\n")
    arrived = hold_submissions(fake, {1: 60.0}, arrived_at=1)  # never answered in the grace period
    term = Terminal(
        [sys.executable, "-m", "maxapi_async", "batch", "prompts.txt", "--concurrency", "1"],
        env=env_for(fake),
        cwd=tmp_path,
    )
    try:
        assert arrived.wait(20)
        term.interrupt()
        term.wait_for(lambda screen: "up to 5 s for 1 in flight to be recorded" in screen)
        started = time.monotonic()
        term.interrupt()  # the second Ctrl-C
        code = term.wait()
        elapsed = time.monotonic() - started
        screen = term.text()
    finally:
        term.close()
    print("\n--- the screen after two Ctrl-C ---\n" + screen)
    assert code == 130
    assert elapsed < _cli_batch.INTERRUPT_GRACE / 2  # at once, not after the grace period
    assert screen.splitlines()[-1] == (
        "maxapi-async: interrupted again: exiting now (the journal keeps every task it recorded)"
    )
    events = journal_events(tmp_path / "prompts.journal.jsonl")
    assert events == [("submit", "0001")]  # its Idempotency-Key is kept for the rerun


def test_a_submission_unanswered_within_the_grace_period_is_named_in_the_summary(
    fake: FakeMaxAPI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAXAPI_KEY", fake.api_key)
    monkeypatch.setenv("MAXAPI_BASE_URL", fake.base_url)
    monkeypatch.setattr(_cli_batch, "INTERRUPT_GRACE", 0.2)
    fast = maxapi_async.PollPolicy(earliest=0.0, latest=0.05, spacing=0.01, initial=0.01, jitter=0.0)
    monkeypatch.setattr(
        _cli_input, "AsyncMaxAPI", functools.partial(maxapi_async.AsyncMaxAPI, poll_policy=fast)
    )
    fake.complete_after_polls = 10**6
    (tmp_path / "p.txt").write_text("one\ntwo\nthree\n")
    arrived = hold_submissions(fake, {2: 60.0}, arrived_at=2)
    threading.Thread(
        target=lambda: arrived.wait(20) and os.kill(os.getpid(), signal.SIGINT), daemon=True
    ).start()
    code = main(["--json", "batch", "p.txt", "--concurrency", "1"])
    captured = capsys.readouterr()
    assert code == 130, captured.err
    assert (
        "  1 submission sent but not answered within 0.2 s: the rerun repeats it under the same "
        "Idempotency-Key (never a second charge where the service honours it)"
    ) in captured.err.splitlines()
    doc = json.loads(captured.out)["interrupted"]
    assert (doc["submitted"], doc["unanswered"], doc["not_submitted"]) == (1, ["0002"], 1)
    events = journal_events(tmp_path / "p.journal.jsonl")
    assert ("submit", "0002") in events
    assert ("task", "0002") not in events  # the rerun repeats it under the journal's key
    assert [r["key"] for r in doc["running"]] == ["0001"]
    assert doc["resume"] == "maxapi-async --json batch p.txt --concurrency 1"
