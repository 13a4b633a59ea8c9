"""A batch's state in Redis, shared by any number of workers on any number of machines.

:class:`RedisStore` implements the store interface (:mod:`.store`) on redis-py's asyncio
client (the optional extra ``maxapi-async[redis]``; redis is imported only when a store
first connects). Each state change is one Lua script (:mod:`.redis_scripts`), so it is
atomic across workers, and costs one round trip:

* ``claim``: the item's lease (``lease`` seconds, renewed by the run every third of it)
  is taken unless another live worker holds it; a worker that dies stops renewing, its
  lease expires, and the next claim takes the item over from its recorded state;
* ``reserve``: the budget is one counter for every worker: an estimate is added only if
  the sum stays within the budget, and the first refusal stops later ones;
* ``submitting``: the submission's ``Idempotency-Key`` is :func:`derived_idempotency_key`
  of the batch's name, the item's key and its attempt, recorded before it is sent;
* ``submitted``, ``done``, ``failed``: the task, then the outcome, settling the
  reservation. A finished item stays finished: :meth:`RedisStore.retry_failed` puts the
  failed ones back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._protocol.errors import InvalidRequestError, StoreError
from .._protocol.pricing import NANO
from . import redis_scripts as lua
from .redis_client import RedisConnection, text
from .store import (
    ClaimLost,
    Held,
    ItemState,
    Status,
    Store,
    StoreProgress,
    StoreRun,
    derived_idempotency_key,
    retried,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisRun", "RedisStore"]

T = TypeVar("T")

_STATUSES: frozenset[str] = frozenset(
    ("new", "reserved", "submitting", "submitted", "skipped", "done", "failed")
)


def _json(value: object) -> dict[str, Any] | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise StoreError(f"the store holds a record that is not JSON: {raw[:80]!r}") from exc
    return doc if isinstance(doc, dict) else None


def _encode(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


class RedisStore(Store):
    """A batch's state in Redis, for batches that run in many processes or on many machines.

    ``redis`` is a URL (``"redis://host:6379/0"``; the store makes its client on first
    use and closes it in :meth:`aclose`) or a ``redis.asyncio.Redis`` client (used as
    given, left open). ``name`` names the batch: every worker of one batch gives the
    same name, and a new batch gets a new one (a name's state, done items included,
    lasts until :meth:`clear`). ``lease`` is how long, in seconds, an item stays claimed
    by a worker that stopped renewing it (it died): then another takes it over, resuming
    its task rather than submitting it again (default 30).

    Use it with ``Batch(client, items, store=RedisStore(...))`` in each worker (each item
    runs in one of them; every batch returns every item's outcome, those finished
    elsewhere as ``"restored"``), or a batch of one item per task of a task queue (see
    ``examples/celery_batch``). Keys live under ``maxapi:{<name>}:``, one hash tag, so
    a Redis Cluster serves them too. Redis errors raise :class:`StoreError`.
    """

    def __init__(self, redis: Redis | str, name: str, *, lease: float = 30.0) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("name", f"must be a non-empty string, got {name!r}")
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0.1 <= lease <= 86400:
            raise InvalidRequestError("lease", f"must be seconds between 0.1 and 86400, got {lease!r}")
        self.name = name
        self.lease = float(lease)
        self._redis = RedisConnection(redis)
        self._prefix = f"maxapi:{{{name}}}:"

    def __repr__(self) -> str:
        return f"RedisStore(name={self.name!r}, lease={self.lease:g})"

    # -- keys --------------------------------------------------------------------------

    def _item(self, key: str) -> str:
        return f"{self._prefix}item:{key}"

    def _lease(self, key: str) -> str:
        return f"{self._prefix}lease:{key}"

    @property
    def _meta(self) -> str:
        return f"{self._prefix}meta"

    @property
    def _failed(self) -> str:
        return f"{self._prefix}failed"

    # -- the store ---------------------------------------------------------------------

    async def open_run(self) -> RedisRun:
        """A run of this batch, holding its claims under its own owner token."""
        return RedisRun(self)

    async def progress(self) -> StoreProgress:
        """The batch's counts, over every worker."""
        meta = await self._redis.call(lambda: self._redis.client().hgetall(self._meta))
        counts = {text(k): text(v) for k, v in meta.items()}

        def number(name: str) -> int:
            return int(counts.get(name) or 0)

        return StoreProgress(
            submitted=number("submitted"),
            resubmitted=number("resubmitted"),
            resumed=number("resumed"),
            done=number("done"),
            failed=number("failed"),
            skipped=number("skipped"),
            committed=number("committed") / NANO,
            spent=number("spent") / NANO,
        )

    async def state(self, key: str) -> ItemState:
        """What the store holds for the item ``key`` (``status="new"`` when nothing)."""
        fields = await self._redis.call(
            lambda: self._redis.client().hmget(self._item(key), "status", "idem", "task", "record")
        )
        return _state(*fields)

    async def retry_failed(self) -> int:
        """Put every failed item back, to be run again; returns how many.

        A failure that made no task starts a new attempt (a new ``Idempotency-Key``);
        one whose submission's answer was lost keeps its key, and one whose wait timed out
        keeps its task, to be waited for again. Run it between runs of the batch, not
        while workers run it.
        """
        count = 0
        client = self._redis.client()
        members = await self._redis.call(lambda: client.smembers(self._failed))
        for member in members:
            key = cast(str, text(member))
            state, new_attempt = retried(await self.state(key))
            args = [state.status, state.idempotency_key or "", "1" if new_attempt else "0", key]
            keys = [self._item(key), self._meta, self._failed]
            count += int(await self._redis.run(lua.RETRY, keys, args))
        return count

    async def clear(self) -> None:
        """Delete everything this batch's name holds in Redis."""
        client = self._redis.client()

        async def delete() -> None:
            async for chunk in _chunks(client.scan_iter(match=_glob_escape(self._prefix) + "*", count=500)):
                await client.unlink(*chunk)

        await self._redis.call(delete)

    async def aclose(self) -> None:
        """Close the Redis client the store made from a URL (a client given is left open)."""
        await self._redis.aclose()


class RedisRun(StoreRun):
    """One run of a batch on a :class:`RedisStore`: its claims, renewed while it lives."""

    shared = True

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._redis = store._redis
        self._lease_ms = max(1, round(store.lease * 1000))
        #: Unique to this run: two batches in one process never share a claim.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._held: dict[str, int] = {}  # item key -> its attempt, as claimed
        self._renewer: asyncio.Task[None] | None = None

    async def claim(self, key: str) -> ItemState | Held:
        store = self._store
        reply = await self._script(
            key,
            "claim",
            None,
            lua.CLAIM,
            [store._item(key), store._lease(key), store._meta],
            [self.owner, self._lease_ms],
        )
        kind = text(reply[0])
        if kind == "held":
            return Held(max(0.0, int(reply[1]) / 1000))
        status, attempt, idem, task, record = reply[1:6]
        state = _state(status, idem, task, record)
        if kind == "claimed":
            self._held[key] = int(text(attempt) or 0)
            self._start_renewing()
        return state

    async def reserve(self, key: str, estimate: int | None, budget: int | None) -> bool:
        store = self._store
        keys = [store._item(key), store._lease(key), store._meta]
        args = [self.owner, self._lease_ms, _optional(estimate), _optional(budget)]
        reply = text(await self._script(key, "reserve credits for", None, lua.RESERVE, keys, args))
        if reply == "ok":
            return True
        if reply == "budget":
            return False
        raise self._lost(key)

    async def submitting(self, key: str, describe: Callable[[], dict[str, Any]]) -> str:
        store = self._store
        fresh = derived_idempotency_key(store.name, key, self._held.get(key, 0))
        keys = [store._item(key), store._lease(key), store._meta]
        reply = await self._script(
            key, "record the submission of", None, lua.SUBMITTING, keys, [self.owner, self._lease_ms, fresh]
        )
        if text(reply[0]) == "send":
            return cast(str, text(reply[1]))
        raise self._lost(key)

    async def submitted(self, key: str, idempotency_key: str, task: dict[str, Any]) -> None:
        keys = [self._store._item(key)]
        await self._script(
            key, "record the task of", task.get("id"), lua.SUBMITTED, keys, [idempotency_key, _encode(task)]
        )

    async def done(self, key: str, record: dict[str, Any], cost: int | None) -> None:
        store = self._store
        self._held.pop(key, None)
        keys = [store._item(key), store._lease(key), store._meta]
        args = [self.owner, _encode(record), _optional(cost)]
        await self._script(key, "record the result of", record.get("task_id"), lua.DONE, keys, args)

    async def failed(self, key: str, record: dict[str, Any], *, keep_reservation: bool) -> None:
        store = self._store
        self._held.pop(key, None)
        keys = [store._item(key), store._lease(key), store._meta, store._failed]
        args = [self.owner, _encode(record), "1" if keep_reservation else "0", key]
        await self._script(key, "record the failure of", record.get("task_id"), lua.FAILED, keys, args)

    async def release(self, key: str) -> None:
        self._held.pop(key, None)
        await self._script(key, "release", None, lua.RELEASE, [self._store._lease(key)], [self.owner])

    async def progress(self) -> StoreProgress:
        return await self._store.progress()

    async def close(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        held, self._held = list(self._held), {}
        for key in held:  # what this run did not finish is free for the next worker at once
            with contextlib.suppress(StoreError):
                await self._redis.run(lua.RELEASE, [self._store._lease(key)], [self.owner])

    async def _script(
        self, key: str, doing: str, task: object, script: str, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """One of the item's scripts; a Redis failure names the item, and its task when it has one."""
        try:
            return await self._redis.run(script, keys, args)
        except StoreError as exc:
            runs_on = (
                f" (its task {task} runs on at the service: resume it with client.tasks.get({task!r}))"
                if task
                else ""
            )
            raise StoreError(f"cannot {doing} item {key!r}{runs_on}: {exc}") from exc.__cause__

    # -- leases ------------------------------------------------------------------------

    def _lost(self, key: str) -> ClaimLost:
        self._held.pop(key, None)
        return ClaimLost(key)

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        """Every third of the lease, extend the leases this run holds (one script for all)."""
        while self._held:
            await asyncio.sleep(self._store.lease / 3)
            held = list(self._held)
            if not held:
                break
            try:
                lost = await self._redis.run(
                    lua.RENEW, [self._store._lease(k) for k in held], [self.owner, self._lease_ms]
                )
            except StoreError:
                continue  # Redis is away for a moment: the next round tries again, the lease may hold
            for index in lost:  # expired and taken: the item's next step finds out and stops
                self._held.pop(held[int(index) - 1], None)


def _state(status: object, idem: object, task: object, record: object) -> ItemState:
    word = text(status) or "new"
    if word not in _STATUSES:
        raise StoreError(f"the store holds an unknown item status {word!r}")
    return ItemState(cast(Status, word), text(idem), _json(task), _json(record))


def _optional(number: int | None) -> int | str:
    return "" if number is None else number


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def _chunks(keys: AsyncIterator[Any], size: int = 500) -> AsyncIterator[list[Any]]:
    chunk: list[Any] = []
    async for key in keys:
        chunk.append(key)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
