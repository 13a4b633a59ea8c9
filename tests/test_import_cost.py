"""``import maxapi_async`` stays cheap: heavy dependencies and optional layers load on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import maxapi_async

# aiohttp alone costs about 100 ms to import, anyio 20 ms; batches, the blocking facade,
# the command line, notebook display and the fake server are for some programs only; the
# Redis store (and redis-py, an optional extra) for batches spread over machines, and
# Celery never (only its example uses it).
DEFERRED = (
    "aiohttp",
    "anyio",
    "maxapi_async._batch.runner",
    "maxapi_async._batch.items",
    "maxapi_async._blocking",
    "maxapi_async._cli.commands",
    "maxapi_async._display",
    "maxapi_async.testing",
    "maxapi_async._batch.redis_store",
    "redis",
    "celery",
)


def _loaded_after(code: str) -> list[str]:
    """Which of DEFERRED a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def test_importing_the_package_loads_none_of_the_deferred_modules() -> None:
    assert _loaded_after("import maxapi_async") == []


def test_a_client_is_made_and_closed_without_importing_aiohttp() -> None:
    # aiohttp comes with the first session, on the first request (every client test takes that path).
    code = "import asyncio, maxapi_async\nasyncio.run(maxapi_async.AsyncMaxAPI('k').aclose())"
    assert _loaded_after(code) == []


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("MaxAPI", "maxapi_async._blocking"),
        ("Batch", "maxapi_async._batch.runner"),
        ("Outcome", "maxapi_async._batch.items"),
        ("RedisStore", "maxapi_async._batch.redis_store"),
    ],
)
def test_a_deferred_name_loads_its_module_on_first_use(name: str, module: str) -> None:
    code = f"from maxapi_async import {name}\nassert {name}.__module__ == {module!r}"
    assert module in _loaded_after(code)


def test_deferred_names_are_listed_and_unknown_names_still_fail() -> None:
    assert {"MaxAPI", "BlockingTaskHandle", "Batch", "GenerateRequest"} <= set(dir(maxapi_async))
    assert maxapi_async.MaxAPI is maxapi_async.MaxAPI  # cached after the first lookup
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = maxapi_async.NoSuchThing  # type: ignore[attr-defined]


def test_making_a_redis_store_does_not_import_redis() -> None:
    # redis-py comes with the store's first connection: a program that only builds one
    # (or never uses one) pays nothing for it.
    code = "import maxapi_async\nmaxapi_async.RedisStore('redis://localhost:6379/0', 'batch')"
    assert "redis" not in _loaded_after(code)
