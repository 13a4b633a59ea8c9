"""Progress as a person sees it: the command line on a real pseudo-terminal (``pty``), its
screen read back through a small terminal model (``tests/_terminal.py``)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _terminal import Terminal
from anyio.from_thread import start_blocking_portal

from maxapi_async.testing import FakeMaxAPI

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

FAST_POLLS_CLI = Path(__file__).parent / "scripts" / "fast_polls_cli.py"
STATUS = re.compile(
    r"^batch \[[#.]{20}\] (\d+)/(\d+)  submitted (\d+)  running (\d+)  done (\d+)  failed (\d+)  "
    r"skipped (\d+)  credits (\d+\.\d{3})  (\d+:\d\d)$",
    re.MULTILINE,
)


@pytest.fixture
def fake() -> Iterator[FakeMaxAPI]:
    """A FakeMaxAPI served from its own thread, for a command line in another process."""
    with start_blocking_portal() as portal:
        server = portal.call(lambda: FakeMaxAPI().start())
        try:
            yield server
        finally:
            portal.call(server.close)


def terminal(fake: FakeMaxAPI, tmp_path: Path, *args: str) -> Terminal:
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url}
    env.pop("MAXAPI_LOG", None)
    return Terminal([sys.executable, str(FAST_POLLS_CLI), *args], env=env, cwd=tmp_path)


def polls(fake: FakeMaxAPI) -> int:
    return sum(r.method == "GET" for r in fake.requests_to("/v1/images/generations/"))


def test_the_batch_status_line_moves_while_tasks_poll(fake: FakeMaxAPI, tmp_path: Path) -> None:
    fake.complete_after_polls = 10**6  # the tasks run (and are polled) until the test lets them end
    (tmp_path / "prompts.txt").write_text("a glass cube\na glass sphere\na glass cone\n")
    term = terminal(fake, tmp_path, "batch", "prompts.txt", "--route-mode", "official-cheap")
    try:
        first = term.wait_for(lambda screen: "running 3" in screen)
        clock = STATUS.search(first)
        assert clock is not None, first
        polled = polls(fake)

        # Nothing finishes, yet the line is redrawn: its clock moves, the counts hold.
        moved = term.wait_for(
            lambda screen: (m := STATUS.search(screen)) is not None and m.group(9) != clock.group(9), 3
        )
        status = STATUS.search(moved)
        assert status is not None
        assert status.groups()[:8] == ("0", "3", "3", "3", "0", "0", "0", "0.000")
        assert polls(fake) > polled  # the tasks were being polled meanwhile
        print("\n--- mid-batch ---\n" + moved)

        fake.complete_after_polls = 0  # every task ends at its next poll
        code = term.wait()
        final = term.text()
    finally:
        term.close()
    print("--- at the end ---\n" + final)
    assert code == 0, final
    assert "batch [" not in final  # the status line is cleared: the summary says the rest
    lines = final.splitlines()
    assert sorted(line.split()[1] for line in lines if line.startswith("done ")) == ["0001", "0002", "0003"]
    assert any(
        line.startswith("3 done, 0 from the journal, 0 failed, 0 skipped; 0.072 credits") for line in lines
    )


LIBRARY_BATCH = """
import asyncio, maxapi_async

async def main():
    polls = maxapi_async.PollPolicy(earliest=0, latest=0.05, spacing=0.02, initial=0.02, jitter=0)
    async with maxapi_async.AsyncMaxAPI(poll_policy=polls) as client:
        items = [maxapi_async.GenerateRequest(f"cube {i}", key=f"k{i}") for i in range(2)]
        await maxapi_async.Batch(client, items, progress=True)
    print("finished")

asyncio.run(main())
"""


def test_batch_progress_true_draws_the_same_line_and_leaves_its_last_state(
    fake: FakeMaxAPI, tmp_path: Path
) -> None:
    fake.complete_after_polls = 10**6
    (tmp_path / "script.py").write_text(LIBRARY_BATCH)
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url}
    term = Terminal([sys.executable, "script.py"], env=env, cwd=tmp_path)
    try:
        running = term.wait_for(lambda screen: "running 2" in screen)
        assert STATUS.search(running) is not None, running
        fake.complete_after_polls = 0
        code = term.wait()
        final = term.text()
    finally:
        term.close()
    assert code == 0, final
    print("\n--- Batch(progress=True), at the end ---\n" + final)
    status, finished = final.splitlines()
    assert status.startswith("batch [####################] 2/2  submitted 2  running 0  done 2  failed 0")
    assert finished == "finished"


def test_the_task_wait_line_shows_state_progress_and_a_moving_clock(fake: FakeMaxAPI, tmp_path: Path) -> None:
    fake.complete_after_polls = 10**6
    term = terminal(fake, tmp_path, "generate", "a glass cube", "--queued", "-a", "16:9")
    wait_line = re.compile(r"^generation task (task_\S+)  processing (\d+)%  (\d+:\d\d)$", re.MULTILINE)
    try:
        first = term.wait_for(lambda screen: wait_line.search(screen) is not None)
        clock = wait_line.search(first)
        assert clock is not None
        moved = term.wait_for(
            lambda screen: (m := wait_line.search(screen)) is not None and m.group(3) != clock.group(3), 3
        )
        print("\n--- waiting ---\n" + moved)
        fake.complete_after_polls = 0
        code = term.wait()
        final = term.text()
    finally:
        term.close()
    assert code == 0, final
    assert "generation task task_" not in final.split("waiting for generation task")[1]
    assert "1344x768" in final


def test_the_clock_reads_like_one() -> None:
    from maxapi_async._batch.progress import clock

    assert [clock(s) for s in (0, 7.9, 63, 3723)] == ["0:00", "0:07", "1:03", "1:02:03"]


def test_a_status_line_off_a_terminal_writes_nothing(tmp_path: Path) -> None:
    from maxapi_async._batch.items import BatchProgress
    from maxapi_async._batch.progress import BatchStatus

    with open(tmp_path / "log.txt", "w") as log:  # a file, as in a CI log
        status = BatchStatus(3, log)
        status.update(BatchProgress(3, 1, 1, 0, 0, 0, 0.0))
        status.draw()
        status.line("done 0001", log)
        status.close(keep=True)
    assert not status.enabled
    assert (tmp_path / "log.txt").read_text() == "done 0001\n"
