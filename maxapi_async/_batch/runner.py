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

The batch's state goes through one store (:mod:`.store`): by default the journal
(``journal="run.jsonl"`` or a folder, or memory without one; see :mod:`.journal`):
rerun the same batch with the same journal and it skips what finished, resumes what
was submitted, and submits only what was never sent. With ``store=RedisStore(...)``
(:mod:`.redis_store`) the same batch runs in many processes at once: each item runs
in the one that claims it, the others wait for it (taking it over if its worker dies)
and report it ``"restored"``. Items are in :mod:`.items`.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._client.client import AsyncMaxAPI, core_of
from .._client.handles import TaskHandle
from .._protocol.errors import (
    ClientClosedError,
    InvalidRequestError,
    MaxAPIError,
    StoreError,
    TaskTimeoutError,
)
from .._protocol.models import ImageAsset, _extension
from .._protocol.options import ImageOptions
from .._protocol.pricing import NANO, PriceTable, nano_credits
from .._transport.files import key_filename
from .._transport.http import cancel_requested
from .items import (
    BatchItem,
    BatchOptionsDict,
    BatchProgress,
    BatchSummary,
    ContentRequest,
    EditRequest,
    GenerateRequest,
    Outcome,
    Result,
    check_batch_arguments,
)
from .journal import JournalStore, asset_record, restored_images
from .pacing import SubmissionPause
from .progress import BatchStatus
from .store import ClaimLost, Held, ItemState, Store, StoreRun

if TYPE_CHECKING:
    from .redis_store import RedisStore

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


def _images_of(result: Result) -> list[ImageAsset]:
    return list(result.images)


# -- the batch ---------------------------------------------------------------------


class Batch:
    """A batch run: ``async for outcome in Batch(client, items)`` (outcomes as completed) or
    ``await Batch(client, items)`` (all of them, in the order of the items).

    It starts on first iteration or await. Its options are documented on
    :class:`~maxapi_async._batch.items.BatchOptionsDict`.

    ``summary`` is set when it ends; ``await batch.aclose()`` (or :meth:`stop`) ends it early
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
        store: RedisStore | None = None,
        fail_fast: bool = False,
        progress: Callable[[BatchProgress], Any] | bool | None = None,
        download_to: str | os.PathLike[str] | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._client = client
        self._core = core_of(client)
        self.items: list[BatchItem] = list(items)
        check_batch_arguments(self.items, concurrency, max_pending, budget)
        if store is not None and not isinstance(store, Store):
            raise InvalidRequestError("store", f"must be a RedisStore, got {type(store).__name__}")
        if store is not None and journal is not None:
            raise InvalidRequestError(
                "store", "give journal= (one machine) or store= (shared by many workers), not both"
            )
        self.prices = prices if prices is not None else client.prices
        # Credits are counted in whole nano-credits, exactly; BatchSummary shows them as floats.
        self._estimates: dict[tuple[str, str | None, int], int | None] = {}
        self.budget = budget
        self._budget = nano_credits(budget) if budget is not None else None
        if budget is not None:
            self._check_priced()
        self.concurrency = concurrency
        self.max_pending = max_pending
        self.fail_fast = fail_fast
        self.download_to = Path(download_to) if download_to is not None else None
        self._store: Store = store if store is not None else JournalStore(journal)
        self._progress = progress
        # Only each item's status is kept: holding every Outcome (its result, raw answer and
        # images) would grow with the batch even when the caller streams the outcomes away.
        self._statuses: dict[str, str] = {}
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._counts = {"submitted": 0, "running": 0, "done": 0, "failed": 0, "skipped": 0}
        self._credits = 0
        self._unpriced = 0  # items done whose model has no price: not in _credits
        self._stopped_by_budget = False
        self._failed_fast = False
        self._store_failed: StoreError | None = None  # the batch stops and raises it
        # The service's "come back later" (Retry-After on a failed submission) pauses submissions.
        self._pause = SubmissionPause(client.retry_policy.retry_statuses, client.task_timeout)
        self._report: Callable[[BatchProgress], Any] | None = None
        self._close_report: Callable[[], None] | None = None
        self.summary: BatchSummary | None = None
        self._stopping = False  # stop() or aclose(): nothing more is submitted
        self._sending: set[str] = set()  # the keys whose submission is sent and not answered yet
        self._sent: set[str] = set()  # the keys submitted in this run (answered or not)
        self._none_in_flight = asyncio.Event()
        self._none_in_flight.set()

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
        if runner.cancelled() and self._stopping:
            return  # aclose() or stop() ended it, and every item's outcome said so
        await runner  # re-raises a crash of the runner itself

    def __await__(self) -> Generator[Any, None, list[Outcome]]:
        return self.gather().__await__()

    async def gather(self) -> list[Outcome]:
        """Run to the end; the outcomes in the order of the items."""
        by_key = {outcome.key: outcome async for outcome in self}
        return [by_key[item.key] for item in self.items if item.key in by_key]

    async def aclose(self) -> None:
        """Stop the batch: cancel what is running (submitted tasks resume from the journal);
        a consumer still iterating gets the stopped items' outcomes, then the iteration ends."""
        self._stopping = True
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            await asyncio.wait([self._runner])

    @property
    def submitting(self) -> int:
        """Submissions sent whose answer has not arrived yet."""
        return len(self._sending)

    async def stop(self, grace: float = 0.0) -> None:
        """Submit nothing more (those items are skipped), give the submissions in flight up to
        ``grace`` seconds to be answered and recorded, then :meth:`aclose`."""
        self._stopping = True
        with anyio.move_on_after(grace):
            await self._none_in_flight.wait()
        await self.aclose()

    # -- running --------------------------------------------------------------------

    def _start(self) -> asyncio.Task[None]:
        if self._runner is None:
            self._runner = self._core.start_poller(self._run())
        return self._runner

    async def _run(self) -> None:
        try:  # before any request: a second batch on a locked journal stops here
            run = await self._store.open_run()
        except BaseException:
            self._queue.put_nowait(None)  # the iteration ends and re-raises this
            raise
        try:
            self._setup_progress()
            async with anyio.create_task_group() as tg:
                slots = (anyio.CapacityLimiter(self.concurrency), anyio.Semaphore(self.max_pending), tg)
                for item in self.items:
                    if self._store_failed is not None:
                        break
                    await self._schedule(run, item, *slots)
            if self._store_failed is not None:
                raise self._store_failed
        finally:
            try:
                reason = "fail_fast" if self._failed_fast else "cancelled"
                for item in self.items:
                    if item.key not in self._statuses:
                        self._finish(Outcome(item.key, "skipped", reason=reason))
                self.summary = self._summarize()
                if self._close_report is not None:
                    self._close_report()
            finally:  # even when a progress callback raised: let go of the store, end the iteration
                try:
                    with anyio.move_on_after(10, shield=True):  # its claims, its lock
                        await run.close()
                finally:
                    self._queue.put_nowait(None)

    async def _schedule(
        self,
        run: StoreRun,
        item: BatchItem,
        submit_slots: anyio.CapacityLimiter,
        pending_slots: anyio.Semaphore,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        """Claim ``item`` and start it, or settle it at once (finished, refused): in item order,
        so the first item the budget refuses stops the later ones."""
        state: ItemState | None = None  # None: another worker runs it, wait beside the others
        try:
            claimed = await run.claim(item.key)
            if isinstance(claimed, ItemState):
                if self._settled(item, claimed):
                    return
                if self._failed_fast:
                    await run.release(item.key)
                    self._finish(Outcome(item.key, "skipped", reason="fail_fast"))
                    return
                if not await self._reserve(run, item):
                    return
                state = claimed
        except ClaimLost:
            state = None  # taken over meanwhile: wait for it like a held one
        except StoreError as exc:
            self._stop(item, exc, None, tg)
            return
        await pending_slots.acquire()
        tg.start_soon(self._one, run, item, state, submit_slots, pending_slots, tg)

    def _settled(self, item: BatchItem, state: ItemState) -> bool:
        """Whether the item finished earlier (or elsewhere); then its outcome is out."""
        if state.status == "done":
            self._finish(self._restored(item, state.record or {}))
            return True
        if state.status == "failed":  # recorded by another worker of a shared store
            record = state.record or {}
            reason = f"{record.get('error')}: {record.get('message')}"
            self._finish(Outcome(item.key, "failed", task_id=record.get("task_id"), reason=reason))
            return True
        return False

    async def _reserve(self, run: StoreRun, item: BatchItem) -> bool:
        """Count the item's estimate against the budget; refused, it is skipped."""
        if await run.reserve(item.key, self._estimate(item), self._budget):
            return True
        self._stopped_by_budget = True
        await run.release(item.key)
        self._finish(Outcome(item.key, "skipped", reason="budget"))
        return False

    async def _claim_when_free(self, run: StoreRun, item: BatchItem) -> ItemState:
        """Wait while another worker holds ``item``: until it finishes it, or dies (its lease
        runs out, and this run takes the item over from what the store recorded)."""
        while True:
            state = await run.claim(item.key)
            if not isinstance(state, Held):
                return state
            await anyio.sleep(min(max(state.retry_in, 0.01), 1.0))

    def _stop(self, item: BatchItem, error: StoreError, task_id: str | None, tg: anyio.abc.TaskGroup) -> None:
        """Without its store the batch could not resume without paying twice: it stops, and
        raises ``error`` (which names the item's task when there is one)."""
        self._store_failed = self._store_failed or error
        self._finish(Outcome(item.key, "failed", error=error, task_id=task_id))
        tg.cancel_scope.cancel()

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

    async def _one(
        self,
        run: StoreRun,
        item: BatchItem,
        state: ItemState | None,
        submit_slots: anyio.CapacityLimiter,
        pending_slots: anyio.Semaphore,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        """Run one item from what the store holds (``None``: another worker holds it)."""
        try:
            while True:
                try:
                    if state is None:
                        state = await self._claim_when_free(run, item)
                        if self._settled(item, state) or not await self._reserve(run, item):
                            return
                    await self._process(run, item, state, submit_slots, tg)
                    return
                except ClaimLost:
                    state = None  # taken over before anything was sent: its new holder has it
        except StoreError as exc:
            self._stop(item, exc, None, tg)
        finally:
            pending_slots.release()

    async def _process(
        self,
        run: StoreRun,
        item: BatchItem,
        state: ItemState,
        submit_slots: anyio.CapacityLimiter,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        handle: TaskHandle[Any] | None = None
        try:
            if state.task is not None:
                handle = self._client.tasks.from_dict(state.task)
            else:
                async with submit_slots:
                    submitted = await self._pause.run(lambda: self._submit(run, item))
                if submitted is None:  # stop() came first: not sent
                    await run.release(item.key)
                    self._finish(Outcome(item.key, "skipped", reason="cancelled"))
                    return
                handle = submitted
            self._count(running=+1)
            try:
                result: Result = await handle
            finally:
                self._count(running=-1)
            files = await self._save(item.key, _images_of(result))
            cost = result.cost if result.cost is not None else _as_float(self._estimate(item))
            if cost is None:
                self._unpriced += 1
            else:
                self._credits += nano_credits(cost)
            record = {"task_id": handle.id, "cost": cost, "images": [asset_record(a) for a in result.images],
                      "files": [str(f) for f in files]}  # fmt: skip
            await run.done(item.key, record, None if cost is None else nano_credits(cost))
            self._finish(Outcome(item.key, "done", result, None, cost, _images_of(result), handle.id, files))
        except anyio.get_cancelled_exc_class():
            # fail_fast or aclose(): a task runs on at the service, resumed from the store.
            if handle is None and item.key not in self._sent:
                self._finish(Outcome(item.key, "skipped", reason="cancelled"))
            else:
                self._finish(Outcome(item.key, "cancelled", task_id=handle.id if handle else None))
            raise
        except MaxAPIError as exc:
            task_id = handle.id if handle else None
            try:
                if isinstance(exc, StoreError):
                    raise
                # Failed calls are not charged; a timed-out task runs on, and may yet be: it
                # keeps its reservation.
                await run.failed(item.key, {"error": type(exc).__name__, "message": str(exc),
                                            "task_id": task_id},
                                 keep_reservation=isinstance(exc, TaskTimeoutError))  # fmt: skip
            except StoreError as store_error:
                self._stop(item, store_error, task_id, tg)
                return
            self._finish(Outcome(item.key, "failed", error=exc, task_id=task_id))
            if self.fail_fast:
                self._failed_fast = True
                tg.cancel_scope.cancel()

    async def _submit(self, run: StoreRun, item: BatchItem) -> TaskHandle[Any] | None:
        """Submit ``item`` (``None``: not sent, the batch was told to stop first).

        Recorded before it is sent, under the key the store gives: a submission whose
        answer never arrived gets its old key, so the service can return its task.
        """
        if self._stopping:
            return None
        self._sending.add(item.key)
        self._sent.add(item.key)
        self._none_in_flight.clear()
        try:
            key = await run.submitting(item.key, item._describe)
            handle = await item._submit(self._core, key)
            await run.submitted(item.key, key, handle.to_dict())
        finally:
            self._sending.discard(item.key)
            if not self._sending:
                self._none_in_flight.set()
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
        elif self._progress:  # a status line on stderr, when it is a terminal
            status = BatchStatus(len(self.items))
            if status.enabled:
                self._report = status.update
                self._close_report = functools.partial(status.close, keep=True)  # the final counts stay
                status.start()

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
