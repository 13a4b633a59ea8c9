"""The task: one item submitted, awaited and downloaded, through the batch's Redis store.

Each item is a batch of one on the worker process's blocking client: ``client.batch([item],
store=RedisStore(..., batch), budget=..., download_to=...)``. The store makes the task
safe to run twice (Celery redelivers the task of a worker that died): an item already
done comes back ``"restored"``, one claimed by a living worker is waited for, and one
whose worker died is taken over, resuming its task, or repeating its submission under
the same ``Idempotency-Key`` when its answer never came. The budget is one reservation
in the store for every worker; an item that does not fit is ``"skipped"`` (reason
``"budget"``).

Celery calls tasks as plain functions (it has no asyncio support of its own), so each
worker process uses the blocking :class:`maxapi_async.MaxAPI`: an ``AsyncMaxAPI`` on an
event loop in a thread of its own, made on the process's first task (after the fork: a
loop and its connections do not survive one) and kept for the next tasks, with its
connection pool, its Redis connections and its poll limiter.
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_process_shutdown

import maxapi_async
from maxapi_async import GenerateRequest, MaxAPI, PollPolicy, RedisPollLimiter, RedisStore, StoreError

from .app import SETTINGS, app

#: The poll budget's name in Redis: one per API key.
POLL_BUDGET = "default"

_client: tuple[int, MaxAPI] | None = None
_stores: dict[str, RedisStore] = {}


def client() -> MaxAPI:
    """This process's client (made on first use, in the process that uses it)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _stores.clear()
        options: dict[str, Any] = {
            "max_polls_per_second": SETTINGS.polls_per_second,
            "poll_limiter": RedisPollLimiter(SETTINGS.redis, POLL_BUDGET),
        }
        if SETTINGS.poll_policy is not None:
            options["poll_policy"] = PollPolicy(**SETTINGS.poll_policy)
        _client = (os.getpid(), MaxAPI(**options))  # key and base URL from MAXAPI_KEY, MAXAPI_BASE_URL
    return _client[1]


def store(batch: str) -> RedisStore:
    """The store of the batch ``batch`` (its Redis connection opens on the client's loop)."""
    if batch not in _stores:
        _stores[batch] = RedisStore(SETTINGS.redis, batch, lease=SETTINGS.lease)
    return _stores[batch]


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _client is not None and _client[0] == os.getpid():
        _client[1].close()


@app.task(
    name="celery_batch.generate_one",
    autoretry_for=(StoreError,),  # Redis away for a moment: try again, the store resumes the item
    retry_backoff=True,
    max_retries=5,
)
def generate_one(batch: str, item: dict[str, Any], budget: float | None, out: str) -> dict[str, Any]:
    """Generate one item of ``batch`` (``{"prompt", "key", ...GenerateRequest options}``) into ``out``."""
    request = GenerateRequest(**item)
    [outcome] = client().batch([request], store=store(batch), budget=budget, download_to=out)
    error = outcome.error
    return {
        "key": outcome.key,
        "status": outcome.status,
        "reason": outcome.reason,
        "task_id": outcome.task_id,
        "files": [str(f) for f in outcome.files],
        "error": f"{type(error).__name__}: {error}" if isinstance(error, maxapi_async.MaxAPIError) else None,
    }
