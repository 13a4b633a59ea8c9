"""Where a batch keeps its state: the one interface the batch runner goes through.

A batch's state is, per item: whether it is claimed (and by whom), whether it is done or
failed, the ``Idempotency-Key`` of its submission and its task's resumable description;
and, for the whole batch, the credits reserved and spent against its budget. The runner
asks a :class:`Store` for a :class:`StoreRun` (one per run of a batch) and goes through
its methods only, so two implementations serve it:

* the JSON-lines journal (:mod:`.journal`): one machine, one writer under an OS lock, the
  default; its budget is this run's;
* :class:`~maxapi_async.RedisStore` (:mod:`.redis_store`): any number of processes on any
  number of machines share one batch through one Redis. An item is claimed by one worker
  at a time under a lease that expires when its worker dies; the ``Idempotency-Key`` is
  derived from the batch's name and the item's key (:func:`derived_idempotency_key`), so
  whichever worker repeats a submission repeats it under the same key; the budget is one
  atomic reservation for all of them.

An item's life, as the runner drives it::

    claim ──> reserve ──> submitting ──> submitted ──> done
      │          │            │              │    └──> failed
      │          └─ budget: skipped (released)
      └─ held by another worker: try again later (shared stores only)

``reserve`` counts the item's estimate against the budget (refusing it when it does not
fit), ``submitting`` records the submission *before* it is sent and gives its key,
``submitted`` records the task once the service accepted it, ``done`` settles the
reservation to the actual cost and ``failed`` releases it (a task that may still be
charged, one whose wait timed out, keeps it). ``release`` lets go of a claim without an
outcome (skipped, cancelled). Nothing here does I/O; the implementations do.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from typing import Any, Literal

import attrs

__all__ = [
    "UNKNOWN_OUTCOME_ERRORS",
    "ClaimLost",
    "Held",
    "ItemState",
    "Status",
    "Store",
    "StoreProgress",
    "StoreRun",
    "derived_idempotency_key",
    "retried",
]

#: Where an item stands. ``new``: never reserved; ``reserved``: its estimate is counted,
#: nothing sent; ``submitting``: a submission was (or is being) sent and its answer is not
#: recorded; ``submitted``: its task is recorded; ``skipped``: refused by the budget (a
#: later run with more budget may take it); ``done`` and ``failed``: finished.
Status = Literal["new", "reserved", "submitting", "submitted", "skipped", "done", "failed"]

#: Failures whose submission may have reached the service: a retry repeats it under the
#: same ``Idempotency-Key``, so a service that created the task returns it.
UNKNOWN_OUTCOME_ERRORS = frozenset({"APIConnectionError", "APITimeoutError"})


class ClaimLost(Exception):
    """The run's claim on an item expired and another worker took it (shared stores only).

    Internal: the runner catches it and leaves the item to that worker. Nothing was sent
    for the step that raised it.
    """


@attrs.frozen
class ItemState:
    """What a store knows about one item when it is claimed.

    ``idempotency_key`` is the key of a submission whose answer was never recorded
    (``status == "submitting"``): it is sent again under that key. ``task`` is the task's
    resumable description (:meth:`TaskHandle.to_dict`) once submitted; ``record`` the
    ``done`` or ``failed`` record.
    """

    status: Status = "new"
    idempotency_key: str | None = None
    task: dict[str, Any] | None = None
    record: dict[str, Any] | None = None


@attrs.frozen
class Held:
    """Another worker holds the item; its lease ends within ``retry_in`` seconds unless renewed."""

    retry_in: float


@attrs.frozen
class StoreProgress:
    """A store's counts for the whole batch, over every worker and run that shared it.

    ``submitted`` counts items submitted (once each per attempt), ``resubmitted`` the
    submissions sent again under a key already used (a worker died or a connection broke
    before the answer was recorded, or the service said to come back later); ``resumed``
    the items a worker took up where another left them unfinished (it died, or stopped);
    ``skipped`` items refused by the budget and not taken since.
    ``committed`` is the credits counted against the budget (spent, plus estimates of
    what is in flight), ``spent`` the credits of the items done (those with a price).
    """

    submitted: int = 0
    resubmitted: int = 0
    resumed: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    committed: float = 0.0
    spent: float = 0.0


def derived_idempotency_key(batch: str, key: str, attempt: int) -> str:
    """The ``Idempotency-Key`` of an item's submission in a shared store.

    The same for every worker, so a submission repeated by another worker (its first
    sender died before recording the answer) carries the same key and a service that
    honours it returns the task already made. ``attempt`` counts fresh submissions: it
    grows when a failed item is retried after a failure that certainly made no task
    (:func:`retried`), so the retry is not taken for the failed attempt. 32 hex digits,
    the shape of the client's random keys.
    """
    material = "\0".join(("maxapi-async", batch, key, str(attempt))).encode("utf-8")
    return hashlib.sha256(material).hexdigest()[:32]


def retried(state: ItemState) -> tuple[ItemState, bool]:
    """What retrying a failed item starts from, and whether it is a new attempt.

    Failed calls are not charged, so a fresh submission (a new attempt, a new key) is safe.
    Only when the failure left the outcome unknown (the answer to a submission was lost)
    is the old ``Idempotency-Key`` kept, so a service that created the task after all
    returns it instead of a second one. An item whose wait passed the client's
    ``task_timeout`` is not submitted again: its task is waited for once more.
    """
    failed = state.record or {}
    if failed.get("error") == "TaskTimeoutError" and state.task is not None:
        return ItemState("submitted", state.idempotency_key, state.task), False
    unknown = failed.get("error") in UNKNOWN_OUTCOME_ERRORS and failed.get("task_id") is None
    if unknown and state.idempotency_key is not None:
        return ItemState("submitting", state.idempotency_key), False
    return ItemState("new"), True


class StoreRun(abc.ABC):
    """One run of a batch on a store: the runner's only way to its state.

    Item methods take the item's key. A claim is held from :meth:`claim` until
    :meth:`done`, :meth:`failed` or :meth:`release`; in a shared store it is a lease the
    run renews while it lives, so a worker that dies lets go of its items.
    """

    #: Whether other workers may hold items (then :meth:`claim` may answer :class:`Held`).
    shared: bool = False

    @abc.abstractmethod
    async def claim(self, key: str) -> ItemState | Held:
        """Take the item (finished items are returned without a claim) or learn who has it."""

    @abc.abstractmethod
    async def reserve(self, key: str, estimate: int | None, budget: int | None) -> bool:
        """Count the item's estimate (nano-credits) against ``budget``; ``False``: it does not fit.

        An item already counted (resumed, or reserved by a worker that died) is never
        refused. The first refusal stops every later reservation against the same budget.
        Raises :class:`ClaimLost` when another worker took the item.
        """

    @abc.abstractmethod
    async def submitting(self, key: str, describe: Callable[[], dict[str, Any]]) -> str:
        """Record that the item's submission is about to be sent; returns its ``Idempotency-Key``.

        ``describe()`` gives the request as JSON, for a store that records it (the journal
        does). A submission whose answer was never recorded gets its old key back. Raises
        :class:`ClaimLost` when another worker took the item (nothing may be sent then).
        """

    @abc.abstractmethod
    async def submitted(self, key: str, idempotency_key: str, task: dict[str, Any]) -> None:
        """Record the task the service made for the submission sent under ``idempotency_key``."""

    @abc.abstractmethod
    async def done(self, key: str, record: dict[str, Any], cost: int | None) -> None:
        """Record the item's result; its reservation settles to ``cost`` (``None``: no price)."""

    @abc.abstractmethod
    async def failed(self, key: str, record: dict[str, Any], *, keep_reservation: bool) -> None:
        """Record the item's failure; its reservation is released unless ``keep_reservation``
        (a task that runs on and may still be charged)."""

    @abc.abstractmethod
    async def release(self, key: str) -> None:
        """Let go of the item's claim without an outcome."""

    @abc.abstractmethod
    async def progress(self) -> StoreProgress:
        """The counts of the whole batch."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End the run: let go of every claim still held and of the store's resources."""


class Store(abc.ABC):
    """Where batches keep their state (see the module's documentation)."""

    @abc.abstractmethod
    async def open_run(self) -> StoreRun:
        """Start one run of a batch; the runner closes it at the end."""
