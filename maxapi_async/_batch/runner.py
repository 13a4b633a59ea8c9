"""Batches: many image calls, bounded, visible, resumable, within a budget.

``Batch(client, items, ...)`` runs requests (each with a caller-chosen ``key``)
as queued tasks. Submissions run at most ``concurrency`` at a time and at most
``max_pending`` tasks wait at once; one item's failure never stops the others
unless ``fail_fast=True``. When the service refuses a submission with a
``Retry-After``, submissions pause that long (tasks already submitted keep
polling); a pause longer than the client's ``task_timeout`` allows stops them,
and the items not submitted fail with that error, which says when to rerun.
Iterate ``async for outcome in batch`` to get outcomes as they complete, or
``await batch`` for all of them in input order.

``shard=(i, n)`` runs the items whose key hashes to ``i`` of ``n``, so processes or
machines sharing one journal folder split a batch.

Crash safety comes from the journal (``journal="run.jsonl"`` or a folder; see
:mod:`maxapi_async._batch.journal`): rerun the same batch with the same journal and it skips what
finished, resumes what was submitted, and submits only what was never sent.
Items are in :mod:`maxapi_async._batch.items`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs

from .._client.client import AsyncMaxAPI, core_of
from .._client.core import new_idempotency_key
from .._client.handles import TaskHandle
from .._protocol.errors import (
    ClientClosedError,
    InvalidRequestError,
    JournalError,
    MaxAPIError,
    TaskTimeoutError,
)
from .._protocol.gemini import GenerateContentResponse
from .._protocol.models import ImageAsset, ImageResult, _extension
from .._protocol.options import ImageOptions
from .._protocol.pricing import NANO, PriceTable, nano_credits
from .._transport.files import key_filename
from .._transport.http import cancel_requested
from .items import (
    BatchItem,
    BatchOptionsDict,
    BatchProgress,
    ContentRequest,
    EditRequest,
    GenerateRequest,
    check_batch_arguments,
)
from .journal import Entry, Journal, asset_record, restored_images, retry_entry
from .pacing import SubmissionPause

__all__ = [
    "Batch",
    "BatchItem",
    "BatchOptionsDict",
    "BatchProgress",
    "BatchSummary",
    "ContentRequest",
    "EditRequest",
    "GenerateRequest",
    "Outcome",
]

Result = ImageResult | GenerateContentResponse


@attrs.frozen
class Outcome:
    """How one item ended.

    ``status`` is ``"done"``, ``"failed"``, ``"skipped"`` (not submitted:
    ``reason`` says ``"budget"``, ``"fail_fast"`` or ``"cancelled"``),
    ``"cancelled"`` (stopped while running; a submitted task resumes from the
    journal) or ``"restored"`` (finished in an earlier run: ``images`` come
    from the journal, ``result`` is ``None``).
    ``cost`` is the estimated credits charged: 0 for an item failed or not
    submitted, ``None`` for one whose model has no price (the client's
    ``prices=`` can give it one). ``error`` is
    the exception for a failed item (``None`` otherwise): an item whose wait
    passed the client's ``task_timeout`` has :class:`TaskTimeoutError` (its
    task runs on; a rerun with the journal waits for it again), and items
    never submitted because the service asked for too long a pause have its
    :class:`RateLimitError`; ``task_id`` the
    service's task id when one was assigned; ``files`` the saved images.
    """

    key: str
    status: str
    result: Result | None = None
    error: BaseException | None = None
    cost: float | None = 0.0
    images: list[ImageAsset] = attrs.field(factory=list)
    task_id: str | None = None
    files: list[Path] = attrs.field(factory=list)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True for an item that produced its images, in this run or an earlier one."""
        return self.status in ("done", "restored")


@attrs.frozen
class BatchSummary:
    """What a finished (or stopped) batch did and what it left.

    ``remaining`` lists the keys not finished: skipped by the budget or
    ``fail_fast``, and failed ones (a rerun with the same journal retries only
    what did not finish). ``credits`` are this run's estimated credits, added
    exactly; ``unpriced`` counts the items done in this run whose model has no
    price, whose credits are therefore not in ``credits``.
    """

    total: int
    done: int
    restored: int
    failed: int
    skipped: int
    credits: float
    remaining: list[str]
    stopped_by_budget: bool
    unpriced: int = 0


def _images_of(result: Result) -> list[ImageAsset]:
    return list(result.images)


def _shard_of(key: str, count: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % count


# -- progress ---------------------------------------------------------------------


def _tqdm_progress(total: int) -> tuple[Callable[[BatchProgress], None], Callable[[], None]] | None:
    """A tqdm bar on stderr, when tqdm is installed and stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    bar = tqdm(total=total, unit="img", file=sys.stderr)

    def update(p: BatchProgress) -> None:
        bar.n = p.done + p.failed + p.skipped
        bar.set_postfix(running=p.running, failed=p.failed, credits=f"{p.credits:.3f}", refresh=False)
        bar.refresh()

    return update, bar.close


# -- the batch ---------------------------------------------------------------------


class Batch:
    """A batch run: ``async for outcome in Batch(client, items)`` (outcomes as completed) or
    ``await Batch(client, items)`` (all of them, in the order of the items).

    It starts on first iteration or await. Its options are documented on
    :class:`~maxapi_async._batch.items.BatchOptionsDict`.

    ``summary`` is set when it ends; ``await batch.aclose()`` stops it early
    (tasks already submitted run on at the service and resume from the journal).
    """

    def __init__(
        self,
        client: AsyncMaxAPI,
        items: Iterable[BatchItem],
        *,
        concurrency: int = 16,
        max_pending: int = 1000,
        budget: float | None = None,
        journal: str | os.PathLike[str] | None = None,
        fail_fast: bool = False,
        progress: Callable[[BatchProgress], Any] | bool | None = None,
        download_to: str | os.PathLike[str] | None = None,
        shard: tuple[int, int] | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._client = client
        self._core = core_of(client)
        self.items: list[BatchItem] = list(items)
        check_batch_arguments(self.items, concurrency, max_pending, budget, shard)
        self.prices = prices if prices is not None else client.prices
        # Credits are counted in whole nano-credits, exactly; BatchSummary shows them as floats.
        self._estimates: dict[tuple[str, str | None, int], int | None] = {}
        self.budget = budget
        self._budget = nano_credits(budget) if budget is not None else None
        if budget is not None:
            self._check_priced()
        if shard is not None:
            self.items = [i for i in self.items if _shard_of(i.key, shard[1]) == shard[0]]
        self.concurrency = concurrency
        self.max_pending = max_pending
        self.fail_fast = fail_fast
        self.download_to = Path(download_to) if download_to is not None else None
        self._journal = Journal(journal, shard) if journal is not None else None
        self._progress = progress
        # Only each item's status is kept: holding every Outcome (its result, raw answer and
        # images) would grow with the batch even when the caller streams the outcomes away.
        self._statuses: dict[str, str] = {}
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._counts = {"submitted": 0, "running": 0, "done": 0, "failed": 0, "skipped": 0}
        self._credits = 0
        self._unpriced = 0  # items done whose model has no price: not in _credits
        self._committed = 0  # estimated spend of finished and in-flight items
        self._stopped_by_budget = False
        self._failed_fast = False
        self._journal_failed: JournalError | None = None  # the batch stops and raises it
        # The service's "come back later" (Retry-After on a failed submission) pauses submissions.
        self._pause = SubmissionPause(client.retry_policy.retry_statuses, client.task_timeout)
        self._report: Callable[[BatchProgress], Any] | None = None
        self._close_report: Callable[[], None] | None = None
        self.summary: BatchSummary | None = None

    # -- consuming ------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Outcome]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Outcome]:
        runner = self._start()
        while True:
            outcome = await self._queue.get()
            if outcome is None:
                break
            yield outcome
        if runner.cancelled() and self._core.closing and not cancel_requested():
            # client.aclose() stopped the runner under a consumer that nobody cancelled.
            raise ClientClosedError(
                "the client was closed while the batch ran; its submitted tasks run on at the "
                "service (a rerun with the same journal resumes them)"
            )
        await runner  # re-raises a crash of the runner itself

    def __await__(self) -> Generator[Any, None, list[Outcome]]:
        return self.gather().__await__()

    async def gather(self) -> list[Outcome]:
        """Run to the end; the outcomes in the order of the items."""
        by_key = {outcome.key: outcome async for outcome in self}
        return [by_key[item.key] for item in self.items if item.key in by_key]

    async def aclose(self) -> None:
        """Stop the batch: cancel what is running (submitted tasks resume from the journal)."""
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            await asyncio.wait([self._runner])

    # -- running --------------------------------------------------------------------

    def _start(self) -> asyncio.Task[None]:
        if self._runner is None:
            self._runner = self._core.start_poller(self._run())
        return self._runner

    async def _run(self) -> None:
        try:  # locked, before any request: a second batch on this journal stops here
            entries = self._journal.open() if self._journal is not None else {}
        except BaseException:
            self._queue.put_nowait(None)  # the iteration ends and re-raises this
            raise
        self._setup_progress()
        try:
            async with anyio.create_task_group() as tg:
                submit_slots = anyio.CapacityLimiter(self.concurrency)
                pending_slots = anyio.Semaphore(self.max_pending)
                for item in self.items:
                    entry = entries.get(item.key)
                    if entry is not None and entry.done is not None:
                        self._finish(self._restored(item, entry.done))
                        continue
                    if entry is not None and entry.failed is not None:
                        entry = retry_entry(entry)
                    resumable = entry is not None and entry.task is not None
                    estimate = self._estimate(item)
                    if self._failed_fast:
                        self._finish(Outcome(item.key, "skipped", reason="fail_fast"))
                        continue
                    if not resumable and not self._within_budget(estimate):
                        self._finish(Outcome(item.key, "skipped", reason="budget"))
                        continue
                    await pending_slots.acquire()
                    if estimate is not None:
                        self._committed += estimate
                    tg.start_soon(self._one, item, entry, estimate, submit_slots, pending_slots, tg)
            if self._journal_failed is not None:
                raise self._journal_failed
        finally:
            try:
                reason = "fail_fast" if self._failed_fast else "cancelled"
                for item in self.items:
                    if item.key not in self._statuses:
                        self._finish(Outcome(item.key, "skipped", reason=reason))
                self.summary = self._summarize()
                if self._close_report is not None:
                    self._close_report()
            finally:  # even when a progress callback raised: let go of the journal, end the iteration
                try:
                    if self._journal is not None:
                        self._journal.close()
                finally:
                    self._queue.put_nowait(None)

    def _estimate(self, item: BatchItem) -> int | None:
        """The item's estimated nano-credits; ``None`` when its model has no price."""
        route = item.route_mode if item.route_mode is not None else self._client.route_mode
        n = item.n if isinstance(item, ImageOptions) else 1
        key = (item.model, route, n)
        try:  # one price lookup per (model, route, n), not one per item
            return self._estimates[key]
        except KeyError:
            price = self.prices.per_call(item.model, route)
            cost = self._estimates[key] = None if price is None else nano_credits(price) * max(1, n)
            return cost

    def _check_priced(self) -> None:
        """A budget needs every item's price: an item without one is refused, never counted as free."""
        for i, item in enumerate(self.items):
            if self._estimate(item) is None:
                raise InvalidRequestError(
                    f"items[{i}].model",
                    f"no price is known for {item.model!r}, so budget= cannot be kept; give the client "
                    f"its price per call: AsyncMaxAPI(prices=maxapi_async.PRICES.with_prices("
                    f"{{({item.model!r}, ROUTE_MODE): CREDITS}})), or prices=PriceTable({{...}})",
                )

    def _within_budget(self, estimate: int | None) -> bool:
        """Whether a new submission fits; the first one that does not stops all later ones.

        (Resumed tasks were paid for already and never count against the budget.)
        """
        if self._budget is None:
            return True
        # (An unpriced item never gets here with a budget: _check_priced refused the batch.)
        if self._stopped_by_budget or estimate is None or self._committed + estimate > self._budget:
            self._stopped_by_budget = True
            return False
        return True

    async def _one(
        self,
        item: BatchItem,
        entry: Entry | None,
        estimate: int | None,
        submit_slots: anyio.CapacityLimiter,
        pending_slots: anyio.Semaphore,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        handle: TaskHandle[Any] | None = None
        try:
            if entry is not None and entry.task is not None:
                handle = self._client.tasks.from_dict(entry.task)
            else:
                async with submit_slots:
                    handle = await self._pause.run(lambda: self._submit(item, entry))
            self._count(running=+1)
            try:
                result: Result = await handle
            finally:
                self._count(running=-1)
            files = await self._save(item.key, _images_of(result))
            cost = result.cost if result.cost is not None else _as_float(estimate)
            if cost is None:
                self._unpriced += 1
            else:
                self._credits += nano_credits(cost)
                self._committed += nano_credits(cost)
            if estimate is not None:
                self._committed -= estimate
            if self._journal is not None:
                self._journal.write({"event": "done", "key": item.key, "task_id": handle.id, "cost": cost,
                                     "images": [asset_record(a) for a in result.images],
                                     "files": [str(f) for f in files]})  # fmt: skip
            self._finish(Outcome(item.key, "done", result, None, cost, _images_of(result), handle.id, files))
        except anyio.get_cancelled_exc_class():
            # fail_fast or aclose(): the task (if any) runs on at the service and
            # resumes from the journal; the caller still hears about this item.
            self._finish(Outcome(item.key, "cancelled", task_id=handle.id if handle else None))
            raise
        except MaxAPIError as exc:
            task_id = handle.id if handle else None
            try:
                if isinstance(exc, JournalError):
                    raise
                # (A timed-out task runs on, and may yet be charged: its estimate stays committed.)
                if estimate is not None and not isinstance(exc, TaskTimeoutError):
                    self._committed -= estimate  # failed calls are not charged
                self._record({"event": "failed", "key": item.key, "error": type(exc).__name__,
                              "message": str(exc), "task_id": task_id})  # fmt: skip
            except JournalError as journal_error:
                # Without its journal the batch could not resume without paying twice: it
                # stops, and raises this (which names the item's task when there is one).
                self._journal_failed = self._journal_failed or journal_error
                self._finish(Outcome(item.key, "failed", error=journal_error, task_id=task_id))
                tg.cancel_scope.cancel()
                return
            self._finish(Outcome(item.key, "failed", error=exc, task_id=task_id))
            if self.fail_fast:
                self._failed_fast = True
                tg.cancel_scope.cancel()
        finally:
            pending_slots.release()

    async def _submit(self, item: BatchItem, entry: Entry | None) -> TaskHandle[Any]:
        # Reuse the key of a submission whose answer never arrived: the service can
        # recognise the repeat and return the task it already created.
        key = entry.idempotency_key if entry is not None and entry.idempotency_key else None
        key = key or new_idempotency_key()
        journal = self._journal  # records are built only when there is a journal to write them to
        if journal is not None:
            journal.write({"event": "submit", "key": item.key, "idempotency_key": key,
                           "request": item._describe(), "t": time.time()})  # fmt: skip
        handle = await item._submit(self._core, key)
        if journal is not None:
            journal.write({"event": "task", "key": item.key, "task": handle.to_dict()})
        self._count(submitted=+1)
        return handle

    async def _save(self, key: str, images: list[ImageAsset]) -> list[Path]:
        if self.download_to is None or not images:
            return []
        stem = key_filename(key)
        targets = [
            self.download_to
            / (
                f"{stem}{_extension(a.mime_type)}"
                if len(images) == 1
                else f"{stem}-{i}{_extension(a.mime_type)}"
            )
            for i, a in enumerate(images)
        ]
        async with anyio.create_task_group() as tg:
            for asset, target in zip(images, targets, strict=True):
                tg.start_soon(_save_one, asset, target)
        return targets

    def _restored(self, item: BatchItem, record: Mapping[str, Any]) -> Outcome:
        cost = record.get("cost")
        files = [Path(f) for f in record.get("files") or () if isinstance(f, str)]
        return Outcome(
            item.key,
            "restored",
            cost=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            images=restored_images(record, self._client),
            task_id=record.get("task_id"),
            files=files,
        )

    # -- bookkeeping ----------------------------------------------------------------

    def _record(self, record: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(record)

    def _finish(self, outcome: Outcome) -> None:
        self._statuses[outcome.key] = outcome.status
        bucket = _BUCKETS.get(outcome.status, "skipped")
        if outcome.status == "cancelled":
            bucket = "skipped"
        self._count(**{bucket: +1})
        self._queue.put_nowait(outcome)

    def _count(self, **delta: int) -> None:
        for name, change in delta.items():
            self._counts[name] += change
        if self._report is not None:
            c = self._counts
            self._report(
                BatchProgress(
                    len(self.items), c["submitted"], c["running"], c["done"], c["failed"], c["skipped"],
                    self._credits / NANO,
                )
            )  # fmt: skip

    def _setup_progress(self) -> None:
        if callable(self._progress):
            self._report = self._progress
        elif self._progress:
            bar = _tqdm_progress(len(self.items))
            if bar is not None:
                self._report, self._close_report = bar

    def _summarize(self) -> BatchSummary:
        done = ("done", "restored")  # Outcome.ok
        remaining = [i.key for i in self.items if self._statuses.get(i.key) not in done]
        statuses = list(self._statuses.values())
        return BatchSummary(
            total=len(self.items),
            done=statuses.count("done"),
            restored=statuses.count("restored"),
            failed=statuses.count("failed"),
            skipped=statuses.count("skipped") + statuses.count("cancelled"),
            credits=self._credits / NANO,
            remaining=remaining,
            stopped_by_budget=self._stopped_by_budget,
            unpriced=self._unpriced,
        )


_BUCKETS = {"done": "done", "restored": "done", "failed": "failed"}


def _as_float(nanos: int | None) -> float | None:
    return None if nanos is None else nanos / NANO


async def _save_one(asset: ImageAsset, target: Path) -> None:
    # A file under its final name is complete: saves go through a renamed temp file.
    if await anyio.Path(target).exists():
        return
    await asset.save(target)
