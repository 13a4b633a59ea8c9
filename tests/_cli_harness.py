"""What the command line's tests share: a fake MaxAPI the CLI is pointed at, and running it."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

import maxapi_async
from maxapi_async._cli import input as _cli_input
from maxapi_async._cli.commands import main
from maxapi_async.testing import FakeMaxAPI

FAST_POLLS = maxapi_async.PollPolicy(earliest=0.0, latest=0.05, spacing=0.01, initial=0.01, jitter=0.0)


def serve_fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMaxAPI]:
    """A FakeMaxAPI served from its own thread; the environment points the CLI at it, and
    the command runs in a folder of its own (a batch keeps its journal there by default).

    The body of each CLI test module's ``fake`` fixture (``yield from serve_fake(...)``).
    """
    monkeypatch.chdir(tmp_path)
    with start_blocking_portal() as portal:
        server = portal.call(lambda: FakeMaxAPI(complete_after_polls=1).start())
        monkeypatch.setenv("MAXAPI_KEY", server.api_key)
        monkeypatch.setenv("MAXAPI_BASE_URL", server.base_url)
        # The CLI keeps the default poll schedule (tuned for the real service); tests poll fast.
        monkeypatch.setattr(
            _cli_input, "AsyncMaxAPI", functools.partial(maxapi_async.AsyncMaxAPI, poll_policy=FAST_POLLS)
        )
        try:
            yield server
        finally:
            portal.call(server.close)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 0, err
    return json.loads(out)
