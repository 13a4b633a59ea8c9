"""``maxapi-async fake-server``: a :class:`FakeMaxAPI` served until Ctrl-C or SIGTERM.

For test suites outside Python and for docker-compose files: the command binds where it is
told (``--host``, ``--port``, ``--cdn-port``, ``--public-host``), accepts the key it is given,
prints its addresses and one ``export`` line per SDK (:func:`environment`), and is driven
over HTTP by its control API (:mod:`._control`). The command line's parser lives with the
other commands; :func:`run_fake_server` takes its parsed arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from typing import Any, TextIO

from ._server import FakeMaxAPI

__all__ = ["environment", "export_lines", "options_from_args", "run_fake_server"]

#: Command-line argument name -> :class:`FakeMaxAPI` option, for the options passed through.
_PASSED: dict[str, str] = {
    "host": "host",
    "port": "port",
    "cdn_port": "cdn_port",
    "public_host": "public_host",
    "api_key": "api_key",
    "complete_after_polls": "complete_after_polls",
    "complete_after_seconds": "complete_after_seconds",
    "poll_retry_after": "poll_retry_after",
    "task_style": "task_style",
    "strict": "strict",
}


def environment(fake: FakeMaxAPI) -> dict[str, dict[str, str]]:
    """The environment variables that point each SDK at ``fake``, per SDK.

    Only variables the SDK reads: this package (``MAXAPI_BASE_URL``, ``MAXAPI_KEY``), the
    ``openai`` SDK (``OPENAI_BASE_URL``, with ``/v1``; ``OPENAI_API_KEY``) and
    ``google-genai`` (``GOOGLE_GEMINI_BASE_URL``; ``GOOGLE_GENAI_API_VERSION=v1beta``,
    since MaxAPI serves its Gemini routes under ``/v1beta`` and the SDK defaults to ``v1``;
    ``GOOGLE_API_KEY``, which the SDK prefers to ``GEMINI_API_KEY``).
    """
    return {
        "maxapi-async": {"MAXAPI_BASE_URL": fake.base_url, "MAXAPI_KEY": fake.api_key},
        "openai": {"OPENAI_BASE_URL": fake.base_url + "/v1", "OPENAI_API_KEY": fake.api_key},
        "google-genai": {
            "GOOGLE_GEMINI_BASE_URL": fake.base_url,
            "GOOGLE_GENAI_API_VERSION": "v1beta",
            "GOOGLE_API_KEY": fake.api_key,
        },
    }


def export_lines(fake: FakeMaxAPI) -> list[str]:
    """One shell ``export`` line per SDK (see :func:`environment`)."""
    return [
        "export " + " ".join(f"{name}={value}" for name, value in variables.items()) + f"  # {sdk}"
        for sdk, variables in environment(fake).items()
    ]


def options_from_args(args: Any) -> dict[str, Any]:
    """The :class:`FakeMaxAPI` options a parsed command line gives (unset ones left out)."""
    options: dict[str, Any] = {}
    for arg, option in _PASSED.items():
        value = getattr(args, arg, None)
        if value is not None and value is not False:
            options[option] = value
    if getattr(args, "no_idempotency", False):
        options["honour_idempotency"] = False
    return options


async def run_fake_server(
    args: Any,
    *,
    echo: Callable[[str], None],
    note: Callable[[str], None],
    json_stdout: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Serve a fake made from the command line ``args`` until SIGINT/SIGTERM (or ``stop``).

    Prints the addresses and the export lines with ``echo``; with ``json_stdout``, one JSON
    line ``{"base_url", "api_key", "cdn_url", "control_url", "env"}`` there as soon as the
    fake listens. Returns the exit code (0).
    """
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with FakeMaxAPI(**options_from_args(args)) as fake:
            echo(f"FakeMaxAPI on {fake.host}:{fake.port} (Ctrl-C stops it)")
            echo(f"  base_url: {fake.base_url}\n  api_key:  {fake.api_key}\n  cdn:      {fake.cdn_url}")
            echo(f"  control:  {fake.control_url}/  (state, requests, faults, reset: see the README)")
            for line in export_lines(fake):
                echo(line)
            if json_stdout is not None:
                doc = {
                    "base_url": fake.base_url,
                    "api_key": fake.api_key,
                    "cdn_url": fake.cdn_url,
                    "control_url": fake.control_url,
                    "env": {k: v for variables in environment(fake).values() for k, v in variables.items()},
                }
                print(json.dumps(doc), file=json_stdout, flush=True)  # one line: readable before we stop
            await stop.wait()
            note(f"stopping; {len(fake.requests)} API requests served")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 0
