"""The batch journal: what makes a batch crash-safe and resumable.

Each line is a JSON record, flushed to the OS before the step it records is relied on:

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
import warnings
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from .._protocol.errors import JournalError, JournalLockedError, MaxAPIWarning
from .._protocol.models import ImageAsset, _AssetFetcher

if sys.platform != "win32":
    import fcntl

__all__ = ["Entry", "Journal", "asset_record", "restored_images", "retry_entry"]


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

    def open(self) -> dict[str, Entry]:
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

    def _load(self) -> dict[str, Entry]:
        if self._folder is not None:  # the other shards' files too: what they finished is done
            files = sorted(self._folder.glob("*.jsonl"))
        else:
            files = [self.path] if self.path.exists() else []
        entries: dict[str, Entry] = {}
        for file in files:
            with open(file, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # torn: another shard's line being written, or an old crash's
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


#: Failures whose submission may have reached the service: retry under the same key.
_UNKNOWN_OUTCOME_ERRORS = frozenset({"APIConnectionError", "APITimeoutError"})


def retry_entry(entry: Entry) -> Entry:
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
        return Entry(idempotency_key=entry.idempotency_key, task=entry.task)
    keep = failed.get("error") in _UNKNOWN_OUTCOME_ERRORS and failed.get("task_id") is None
    return Entry(idempotency_key=entry.idempotency_key if keep else None)
