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

Crash safety comes from the journal (``journal="run.jsonl"`` or a folder):
each line is flushed before the step it records is relied on.

* ``submit``: written before the submission is sent, with its ``Idempotency-Key``;
* ``task``: the task's resumable description, once the service accepted it;
* ``done`` / ``failed``: the outcome.

Running the same batch again with the same journal skips finished items,
resumes polling tasks already submitted (no second charge), repeats a
submission whose answer never arrived under the same ``Idempotency-Key`` (so a
service that honours the key returns the first task), and submits only items
never sent. ``shard=(i, n)`` runs the items whose key hashes to ``i`` of ``n``,
so processes or machines sharing one journal folder split a batch.

A journal file has one writer: the batch running with it holds an OS advisory
lock on it (POSIX ``flock``; not on Windows), and a second batch on the same
file, in any process, gets :class:`JournalLockedError` before any request.
A last line cut short by a crash is set aside into ``<file>.torn``, with a
warning, and the journal goes on from a clean line.

"Nothing is paid twice" rests on one thing outside this client: at a crash, at
most one submission per item may be in flight with its answer unrecorded, and
the rerun repeats it under the same ``Idempotency-Key``. Only a service that
honours that key returns the task it already made; one that ignores it makes
(and charges) a second task for that submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import errno
import io
import json
import os
import sys
import time
import warnings
import zlib
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypedDict

import anyio
import attrs

from ._client import AsyncMaxAPI, core_of
from ._core import Core, new_idempotency_key
from ._errors import (
    APIError,
    ClientClosedError,
    InvalidRequestError,
    JournalError,
    JournalLockedError,
    MaxAPIError,
    MaxAPIWarning,
    TaskTimeoutError,
)
from ._files import key_filename
from ._gemini import GenerateContentResponse
from ._handles import TaskHandle
from ._models import ImageAsset, ImageResult, _extension
from ._options import ContentOptions, ImageOptions, options_of
from ._pricing import NANO, PriceTable, nano_credits
from ._resources import edit_images, generate_content, generate_images
from ._transport import cancel_requested

if sys.platform != "win32":
    import fcntl

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


def _describe_image(image: object) -> object:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, ImageAsset):
        return {"url": image.url} if image.url else f"<inline {len(image.data or b'')} bytes>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} bytes>"
    return f"<{type(image).__name__}>"


@attrs.frozen(kw_only=True)
class GenerateRequest(ImageOptions):
    """One ``images.generate`` call in a batch: its prompt, its ``key`` and the call's options
    (those of :class:`~maxapi_async._options.ImageOptions`; they mean what they mean there)."""

    prompt: str = attrs.field(kw_only=False)
    key: str

    async def _submit(self, core: Core, idempotency_key: str) -> TaskHandle[Any]:
        options = options_of(ImageOptions, self)
        return _handle(
            await generate_images(
                core, self.prompt, options, wait=False, timeout=None, idempotency_key=idempotency_key
            )
        )

    def _describe(self) -> dict[str, Any]:
        return {"type": "generate", **attrs.asdict(self)}


@attrs.frozen(kw_only=True)
class EditRequest(ImageOptions):
    """One ``images.edit`` call in a batch (references: paths, bytes, files or ImageAssets)."""

    prompt: str = attrs.field(kw_only=False)
    images: Sequence[Any] = attrs.field(kw_only=False)
    key: str

    async def _submit(self, core: Core, idempotency_key: str) -> TaskHandle[Any]:
        options = options_of(ImageOptions, self)
        return _handle(
            await edit_images(
                core,
                self.prompt,
                self.images,
                options,
                wait=False,
                timeout=None,
                idempotency_key=idempotency_key,
            )
        )

    def _describe(self) -> dict[str, Any]:
        described = attrs.asdict(self, recurse=False)
        described["images"] = [_describe_image(i) for i in self.images]
        return {"type": "edit", **described}


@attrs.frozen(kw_only=True)
class ContentRequest(ContentOptions):
    """One ``models.generate_content`` call in a batch: its contents, its ``key`` and the
    call's options (those of :class:`~maxapi_async._options.ContentOptions`)."""

    contents: Any = attrs.field(kw_only=False)
    key: str

    async def _submit(self, core: Core, idempotency_key: str) -> TaskHandle[Any]:
        options = options_of(ContentOptions, self)
        return _handle(
            await generate_content(
                core, self.contents, options, wait=False, timeout=None, idempotency_key=idempotency_key
            )
        )

    def _describe(self) -> dict[str, Any]:
        described = attrs.asdict(self, recurse=False)
        described["contents"] = self.contents if isinstance(self.contents, str) else "<contents>"
        return {"type": "generate_content", **described}


def _handle(submitted: object) -> TaskHandle[Any]:
    assert isinstance(submitted, TaskHandle)  # wait=False
    return submitted


BatchItem = GenerateRequest | EditRequest | ContentRequest


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
class BatchProgress:
    """Counts passed to the ``progress`` callback after every change."""

    total: int
    submitted: int
    running: int
    done: int
    failed: int
    skipped: int
    credits: float


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


# -- the journal ------------------------------------------------------------------


@attrs.define
class _Entry:
    idempotency_key: str | None = None
    task: dict[str, Any] | None = None
    done: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None


class _Journal:
    """Append-only JSON lines; every line is flushed to the OS before it is relied on.

    A journal file has one writer. :meth:`open` takes an OS advisory lock on it
    (``flock`` on ``<file>.lock`` beside it, which holds the owner's pid), so a
    second batch on the same file, in this process or another, meets
    :class:`JournalLockedError` before it sends anything; :meth:`close` lets go.
    Shards each lock their own file of the folder. Windows has no ``flock``:
    there the file is not locked, and running two batches on it is the caller's
    mistake to avoid.

    A crash can cut the last line short. :meth:`open` sets such a line aside,
    with one warning: it moves to ``<file>.torn`` and the journal ends on a
    complete line again, so the next record is not glued to it and lost.
    """

    def __init__(self, location: str | os.PathLike[str], shard: tuple[int, int] | None) -> None:
        path = Path(location)
        self._folder: Path | None = None
        if path.is_dir() or os.fspath(location).endswith(os.sep):
            name = f"journal-{shard[0]}of{shard[1]}.jsonl" if shard else "journal.jsonl"
            self._folder = path
            self.path = path / name
        else:
            self.path = path
        self._fh: io.RawIOBase | None = None
        self._lock = _JournalLock(self.path)
        with self._os_errors("cannot create its folder"):
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _os_errors(self, doing: str) -> Generator[None, None, None]:
        """An OS error on the journal's files becomes a :class:`JournalError` naming the file."""
        try:
            yield
        except OSError as exc:
            raise JournalError(
                os.fspath(self.path), f"journal {self.path}: {doing}: {exc.strerror or exc}"
            ) from exc

    def open(self) -> dict[str, _Entry]:
        """Lock this batch's file, set aside a torn last line, and read every file."""
        with self._os_errors("cannot lock it"):
            self._lock.acquire()
        try:
            with self._os_errors("cannot read it"):
                if self.path.exists() and not self.path.is_file():
                    raise IsADirectoryError(errno.EISDIR, "not a regular file")
                _set_aside_torn_tail(self.path)
                return self._load()
        except BaseException:
            self._lock.release()
            raise

    def _load(self) -> dict[str, _Entry]:
        if self._folder is not None:  # the other shards' files too: what they finished is done
            files = sorted(self._folder.glob("*.jsonl"))
        else:
            files = [self.path] if self.path.exists() else []
        entries: dict[str, _Entry] = {}
        for file in files:
            with open(file, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # torn: another shard's line being written, or an old crash's
                    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                        continue
                    entry = entries.setdefault(record["key"], _Entry())
                    event = record.get("event")
                    if event == "submit":  # a new attempt: what an earlier one left is history
                        entry.idempotency_key = record.get("idempotency_key")
                        entry.task = entry.failed = None
                    elif event == "task" and isinstance(record.get("task"), dict):
                        entry.task = record["task"]
                    elif event == "done":
                        entry.done = record
                    elif event == "failed":
                        entry.failed = record
        return entries

    def write(self, record: dict[str, Any]) -> None:
        task = record.get("task_id") or (record.get("task") or {}).get("id")
        what = f"cannot record {record.get('event')} of item {record.get('key')!r}" + (
            f" (its task {task} runs on at the service: resume it with client.tasks.get({task!r}))"
            if task
            else ""
        )
        line = memoryview((json.dumps(record, separators=(",", ":"), default=str) + "\n").encode())
        with self._os_errors(what):
            if self._fh is None:  # unbuffered: each line goes straight to the OS, nothing waits in memory
                self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
            while line:  # in the OS's hands when this returns: survives the process being killed
                line = line[self._fh.write(line) or 0 :]

    def close(self) -> None:
        """Close the file and let go of the lock (idempotent)."""
        try:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
        finally:
            self._lock.release()


class _JournalLock:
    """An exclusive OS advisory lock on ``<journal>.lock``, a file holding the owner's pid.

    The lock file is removed on release, while still locked; so a process that
    locked the removed file in the meantime sees that the path names another
    file now, and starts again on that one.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = journal.with_name(journal.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        if sys.platform == "win32":  # no flock: not locked there (see _Journal)
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise JournalLockedError(os.fspath(self.journal), pid) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # released and removed by its holder while we waited: not ours to keep
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    """The pid a lock file holds; ``None`` when its holder has not written it yet."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _set_aside_torn_tail(path: Path) -> None:
    """End a journal on a complete line: a last line cut short moves to ``<path>.torn``.

    Only the lock's holder may call this: a file another process is appending to
    may end mid-line because its next line is being written at this moment.
    """
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - closed by the with block below
    except FileNotFoundError:
        return
    with fh:
        end = fh.seek(0, os.SEEK_END)
        start = _last_line_start(fh, end)
        if start == end:  # empty, or ending on a newline
            return
        fh.seek(start)
        tail = fh.read()
        if _is_record(tail):  # a whole record that lost only its newline
            fh.write(b"\n")
            return
        torn = path.with_name(path.name + ".torn")
        with open(torn, "ab") as side:
            side.write(tail + b"\n")
            side.flush()
            os.fsync(side.fileno())  # kept safe before it leaves the journal
        fh.truncate(start)
    warnings.warn(
        f"journal {path}: its last line was cut short ({len(tail)} bytes, a crash while writing it); "
        f"it is kept in {torn} and the journal goes on from the line before it",
        MaxAPIWarning,
        stacklevel=2,
    )


def _last_line_start(fh: IO[bytes], end: int) -> int:
    """Where the last line of a file of ``end`` bytes starts (``end``: it ends with a newline)."""
    position = end
    while position > 0:
        begin = max(0, position - 65536)
        fh.seek(begin)
        newline = fh.read(position - begin).rfind(b"\n")
        if newline >= 0:
            return begin + newline + 1
        position = begin
    return 0


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # also a UnicodeDecodeError
        return False


def _asset_record(asset: ImageAsset) -> dict[str, Any]:
    return {
        "url": asset.url,
        "mime_type": asset.mime_type,
        "width": asset.width,
        "height": asset.height,
        "expires_at": asset.expires_at.isoformat() if asset.expires_at else None,
    }


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


class BatchOptionsDict(TypedDict, total=False):
    """:class:`Batch`'s options as keyword arguments (``MaxAPI.batch`` passes them on)."""

    concurrency: int
    max_pending: int
    budget: float | None
    journal: str | os.PathLike[str] | None
    fail_fast: bool
    progress: Callable[[BatchProgress], Any] | bool | None
    download_to: str | os.PathLike[str] | None
    shard: tuple[int, int] | None
    prices: PriceTable | None


class Batch:
    """A batch run: ``async for outcome in Batch(client, items)`` (outcomes as completed) or
    ``await Batch(client, items)`` (all of them, in the order of the items).

    It starts on first iteration or await. Its options:

    * ``concurrency`` (16): submissions in flight at once (all paused while the
      service's ``Retry-After`` lasts, up to ``task_timeout`` in all; a longer
      one stops submitting, and each item not submitted fails saying when to rerun);
    * ``max_pending`` (1000): tasks submitted and not yet finished at once
      (each polls within the client's ``max_polls_per_second``);
    * ``budget``: estimated credits never to pass: an item whose estimate
      would cross it is not submitted, and the batch stops there (every
      item's model needs a price, see ``prices``: else ``InvalidRequestError``);
    * ``journal``: a ``.jsonl`` file or a folder, for crash-safe resumption;
      one batch at a time writes it (else ``JournalLockedError``);
    * ``fail_fast``: the first failure stops the batch (default: never);
    * ``progress``: a callback taking :class:`BatchProgress`, or ``True``
      for a tqdm bar on a terminal (``pip install 'maxapi-async[progress]'``);
    * ``download_to``: save every image into this folder, named after the
      item's key, skipping files already there;
    * ``shard``: ``(index, count)``, to split one batch across processes;
    * ``prices``: the :class:`PriceTable` of the estimates (default: the client's).

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
        _check_batch_arguments(self.items, concurrency, max_pending, budget, shard)
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
        self._journal = _Journal(journal, shard) if journal is not None else None
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
        # The service's "come back later" (Retry-After on a failed submission): submissions wait
        # until _resume_at, for at most the client's task_timeout in all; a longer one stops them.
        self._resume_at = 0.0
        self._paused = 0.0
        self._submissions_stopped: APIError | None = None
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
                        entry = _retry_entry(entry)
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
        entry: _Entry | None,
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
                    handle = await self._submit_paced(item, entry)
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
                                     "images": [_asset_record(a) for a in result.images],
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

    async def _submit_paced(self, item: BatchItem, entry: _Entry | None) -> TaskHandle[Any]:
        """:meth:`_submit`, never before the service said it would take submissions again.

        A submission refused with a ``Retry-After`` (a 429, or a 5xx that says when to come
        back; neither was carried out, so neither is charged) pauses every submission for
        that long, and this item is submitted again after the pause. Tasks already
        submitted keep polling meanwhile. A pause that does not fit in what is left of the
        batch's pausing allowance (the client's ``task_timeout``) stops submissions: this
        item and every item not yet submitted fail with that error, which says when to
        rerun.
        """
        while True:
            while True:
                if self._submissions_stopped is not None:
                    raise self._submissions_stopped.with_traceback(None)
                wait = self._resume_at - time.monotonic()
                if wait <= 0:
                    break
                await anyio.sleep(wait)
            try:
                return await self._submit(item, entry)
            except APIError as exc:
                if not self._pause_for(exc):
                    raise

    def _pause_for(self, exc: APIError) -> bool:
        """Whether ``exc`` paused submissions (then the item is submitted again); ``False``
        when it is an ordinary failure. A pause too long stops submissions and raises."""
        hint = exc.retry_after
        if hint is None or exc.status not in self._client.retry_policy.retry_statuses:
            return False
        now = time.monotonic()
        added = max(0.0, now + hint - max(self._resume_at, now))
        allowance = self._client.task_timeout
        if allowance is None or self._paused + added <= allowance:
            self._paused += added
            self._resume_at = max(self._resume_at, now + hint)
            return True
        if self._submissions_stopped is None:
            left = max(0.0, allowance - self._paused)
            rerun = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=hint)
            stopped = type(exc)(
                f"submissions stopped: the service asked for a pause of {hint:g} s (Retry-After), "
                f"more than the {left:g} s this batch may still pause (the client's task_timeout); "
                f"nothing more was submitted. Rerun after {rerun.isoformat(timespec='seconds')} "
                "(with the same journal, finished items are skipped)",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
                body=exc.body,
                retry_after=hint,
            )
            stopped.__cause__ = exc
            self._submissions_stopped = stopped
        raise self._submissions_stopped.with_traceback(None)

    async def _submit(self, item: BatchItem, entry: _Entry | None) -> TaskHandle[Any]:
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
        images = [
            ImageAsset(
                url=i.get("url"),
                mime_type=i.get("mime_type"),
                width=i.get("width"),
                height=i.get("height"),
                fetcher=self._client,
            )
            for i in record.get("images") or ()
            if isinstance(i, dict)
        ]
        cost = record.get("cost")
        files = [Path(f) for f in record.get("files") or () if isinstance(f, str)]
        return Outcome(
            item.key,
            "restored",
            cost=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            images=images,
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


#: Failures whose submission may have reached the service: retry under the same key.
_UNKNOWN_OUTCOME_ERRORS = frozenset({"APIConnectionError", "APITimeoutError"})


def _retry_entry(entry: _Entry) -> _Entry:
    """What a rerun does with an item that failed before: submit it again.

    Failed calls are not charged, so a fresh submission is safe. Only when the
    failure left the outcome unknown is the old ``Idempotency-Key`` reused, so
    a service that created the task after all returns it instead of a second one.
    An item whose wait passed the client's ``task_timeout`` is not submitted
    again: its task is waited for once more.
    """
    failed = entry.failed or {}
    if failed.get("error") == "TaskTimeoutError" and entry.task is not None:
        # Nobody waited long enough, but the task runs on at the service: wait for it again.
        return _Entry(idempotency_key=entry.idempotency_key, task=entry.task)
    keep = failed.get("error") in _UNKNOWN_OUTCOME_ERRORS and failed.get("task_id") is None
    return _Entry(idempotency_key=entry.idempotency_key if keep else None)


def _check_batch_arguments(
    items: list[BatchItem],
    concurrency: int,
    max_pending: int,
    budget: float | None,
    shard: tuple[int, int] | None,
) -> None:
    kinds = (GenerateRequest, EditRequest, ContentRequest)
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, kinds):
            raise InvalidRequestError(
                f"items[{i}]", "must be a GenerateRequest, EditRequest or ContentRequest"
            )
        if not isinstance(item.key, str) or not item.key:
            raise InvalidRequestError(f"items[{i}].key", "must be a non-empty string")
        if item.key in seen:
            raise InvalidRequestError(f"items[{i}].key", f"duplicate key {item.key!r}: keys must be unique")
        seen.add(item.key)
    for name, value in (("concurrency", concurrency), ("max_pending", max_pending)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(name, f"must be a positive integer, got {value!r}")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0
    ):
        raise InvalidRequestError("budget", f"must be a non-negative number of credits, got {budget!r}")
    if shard is not None and (
        not isinstance(shard, tuple)
        or len(shard) != 2
        or not all(isinstance(v, int) for v in shard)
        or not 0 <= shard[0] < shard[1]
    ):
        raise InvalidRequestError("shard", f"must be (index, count) with 0 <= index < count, got {shard!r}")
