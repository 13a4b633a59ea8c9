"""The batch journal: what makes a batch crash-safe and resumable on one machine.

:class:`JournalStore` is the single-machine implementation of the store interface
(:mod:`.store`): the runner's default, a JSON-lines file, or nothing at all (a batch
without a journal keeps its state in memory). Each line is a JSON record, flushed to
the OS before the step it records is relied on:

* ``submit``: written before the submission is sent, with its ``Idempotency-Key``;
* ``task``: the task's resumable description, once the service accepted it;
* ``done`` / ``failed``: the outcome.

Running the same batch again with the same journal skips finished items,
resumes polling tasks already submitted (no second charge), repeats a
submission whose answer never arrived under the same ``Idempotency-Key`` (so a
service that honours the key returns the first task), and submits only items
never sent.

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

import contextlib
import errno
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from .._client.core import new_idempotency_key
from .._protocol.errors import JournalError, JournalLockedError, MaxAPIWarning
from .._protocol.models import ImageAsset, _AssetFetcher
from .._protocol.pricing import NANO, nano_credits
from .store import ItemState, Store, StoreProgress, StoreRun, retried

if sys.platform != "win32":
    import fcntl

__all__ = [
    "Entry",
    "Journal",
    "JournalRun",
    "JournalStore",
    "asset_record",
    "load_entries",
    "restored_images",
]


@attrs.define
class Entry:
    """What the journal holds of one item: its last submission's key, task and outcome."""

    idempotency_key: str | None = None
    task: dict[str, Any] | None = None
    done: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None


class Journal:
    """Append-only JSON lines; every line is flushed to the OS before it is relied on.

    A journal file has one writer. :meth:`open` takes an OS advisory lock on it
    (``flock`` on ``<file>.lock`` beside it, which holds the owner's pid), so a
    second batch on the same file, in this process or another, meets
    :class:`JournalLockedError` before it sends anything; :meth:`close` lets go.
    Windows has no ``flock``:
    there the file is not locked, and running two batches on it is the caller's
    mistake to avoid.

    A crash can cut the last line short. :meth:`open` sets such a line aside,
    with one warning: it moves to ``<file>.torn`` and the journal ends on a
    complete line again, so the next record is not glued to it and lost.
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        path = Path(location)
        self._folder: Path | None = None
        if path.is_dir() or os.fspath(location).endswith(os.sep):
            self._folder = path
            self.path = path / "journal.jsonl"
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

    def open(self) -> dict[str, Entry]:
        """Lock this batch's file, set aside a torn last line, and read it."""
        with self._os_errors("cannot lock it"):
            self._lock.acquire()
        try:
            with self._os_errors("cannot read it"):
                if self.path.exists() and not self.path.is_file():
                    raise IsADirectoryError(errno.EISDIR, "not a regular file")
                self._refuse_shard_files()
                _set_aside_torn_tail(self.path)
                return self._load()
        except BaseException:
            self._lock.release()
            raise

    def _refuse_shard_files(self) -> None:
        """A folder written with the removed ``shard=`` option holds its batch in several
        files: read as one journal now, the items finished there would be paid again."""
        if self._folder is None:
            return
        shards = sorted(p.name for p in self._folder.glob("journal-*of*.jsonl"))
        if shards:
            raise JournalError(
                os.fspath(self._folder),
                f"journal folder {self._folder} holds the files of a batch split with shard= "
                f"({', '.join(shards)}), which batches no longer read; join them into one journal "
                f"first (cat {self._folder / 'journal-*of*.jsonl'} >> {self.path}, then remove them), "
                "or to spread a batch over processes use a RedisStore",
            )

    def _load(self) -> dict[str, Entry]:
        return load_entries(self.path)

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


def load_entries(path: Path) -> dict[str, Entry]:
    """What the journal at ``path`` says of each item, read only: no lock, nothing set aside
    (``--dry-run`` reads a journal another batch may hold)."""
    entries: dict[str, Entry] = {}
    if not path.exists():
        return entries
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # an old crash's torn line
            if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                continue
            entry = entries.setdefault(record["key"], Entry())
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
        if sys.platform == "win32":  # no flock: not locked there (see Journal)
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


def asset_record(asset: ImageAsset) -> dict[str, Any]:
    return {
        "url": asset.url,
        "mime_type": asset.mime_type,
        "width": asset.width,
        "height": asset.height,
        "expires_at": asset.expires_at.isoformat() if asset.expires_at else None,
    }


def restored_images(record: Mapping[str, Any], fetcher: _AssetFetcher) -> list[ImageAsset]:
    """The images a ``done`` record lists (by URL: they download through ``fetcher``)."""
    return [
        ImageAsset(
            url=i.get("url"),
            mime_type=i.get("mime_type"),
            width=i.get("width"),
            height=i.get("height"),
            fetcher=fetcher,
        )
        for i in record.get("images") or ()
        if isinstance(i, dict)
    ]


# -- the store ---------------------------------------------------------------------


class JournalStore(Store):
    """A batch's state on one machine: a journal file (``location``), or memory (``None``).

    Its budget is the run's own: what a run commits starts from nothing, and resumed
    tasks count without being refused (they were paid for by an earlier run).
    """

    def __init__(self, location: str | os.PathLike[str] | None) -> None:
        self.journal = Journal(location) if location is not None else None

    async def open_run(self) -> JournalRun:
        """Lock the journal and read it (before any request: a second batch stops here)."""
        entries = self.journal.open() if self.journal is not None else {}
        return JournalRun(self.journal, entries)


class JournalRun(StoreRun):
    """One run on a :class:`JournalStore`: its entries in memory, each change a journal line."""

    def __init__(self, journal: Journal | None, entries: dict[str, Entry]) -> None:
        self._journal = journal
        self._entries = entries
        self._committed = 0  # estimated spend of finished and in-flight items, nano-credits
        self._reserved: dict[str, int] = {}
        self._stopped = False
        self._resumed = 0

    def _write(self, record: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(record)

    async def claim(self, key: str) -> ItemState:
        entry = self._entries.get(key)
        if entry is None:
            return ItemState()
        if entry.done is not None:
            return ItemState("done", entry.idempotency_key, entry.task, entry.done)
        if entry.failed is not None:  # an earlier run's failure: this run tries again
            state, _ = retried(ItemState("failed", entry.idempotency_key, entry.task, entry.failed))
            entry = self._entries[key] = Entry(idempotency_key=state.idempotency_key, task=state.task)
        if entry.task is not None:
            self._resumed += 1
            return ItemState("submitted", entry.idempotency_key, entry.task)
        if entry.idempotency_key is not None:
            self._resumed += 1
            return ItemState("submitting", entry.idempotency_key)
        return ItemState()

    async def reserve(self, key: str, estimate: int | None, budget: int | None) -> bool:
        entry = self._entries.get(key)
        resumed = entry is not None and entry.task is not None
        # (An unpriced item never gets here with a budget: the batch refused it.)
        refused = self._stopped or estimate is None or self._committed + estimate > (budget or 0)
        if budget is not None and not resumed and refused:
            self._stopped = True
            return False
        if estimate is not None:
            self._committed += estimate
            self._reserved[key] = estimate
        return True

    async def submitting(self, key: str, describe: Callable[[], dict[str, Any]]) -> str:
        entry = self._entries.setdefault(key, Entry())
        # The key of a submission whose answer never arrived is reused, so the service can
        # recognise the repeat and return the task it already created.
        idempotency_key = entry.idempotency_key or new_idempotency_key()
        if self._journal is not None:  # the record is built only when there is a journal to write
            self._journal.write({"event": "submit", "key": key, "idempotency_key": idempotency_key,
                                 "request": describe(), "t": time.time()})  # fmt: skip
        entry.idempotency_key, entry.task = idempotency_key, None
        return idempotency_key

    async def submitted(self, key: str, idempotency_key: str, task: dict[str, Any]) -> None:
        self._write({"event": "task", "key": key, "task": task})
        self._entries.setdefault(key, Entry(idempotency_key)).task = task

    async def done(self, key: str, record: dict[str, Any], cost: int | None) -> None:
        self._committed += (cost or 0) - self._reserved.pop(key, 0)
        line = {"event": "done", "key": key, **record}
        self._write(line)
        self._entries.setdefault(key, Entry()).done = line

    async def failed(self, key: str, record: dict[str, Any], *, keep_reservation: bool) -> None:
        if not keep_reservation:  # failed calls are not charged
            self._committed -= self._reserved.pop(key, 0)
        line = {"event": "failed", "key": key, **record}
        self._write(line)
        self._entries.setdefault(key, Entry()).failed = line

    async def release(self, key: str) -> None:
        """Nothing to let go of: a journal has one writer, and claims are not recorded."""

    async def progress(self) -> StoreProgress:
        entries = list(self._entries.values())
        return StoreProgress(
            submitted=sum(1 for e in entries if e.idempotency_key is not None),
            resumed=self._resumed,
            done=sum(1 for e in entries if e.done is not None),
            failed=sum(1 for e in entries if e.done is None and e.failed is not None),
            committed=self._committed / NANO,
            spent=sum(_nanos(e.done.get("cost")) for e in entries if e.done is not None) / NANO,
        )

    async def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


def _nanos(cost: object) -> int:
    return nano_credits(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0
