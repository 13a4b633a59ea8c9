"""File I/O that never blocks the event loop for long, and safe file names.

Small payloads are written inline (a thread hop costs more than the I/O);
larger ones, and every read of a file of unknown size, go to a worker thread.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import stat
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

__all__ = [
    "INLINE_IO_LIMIT",
    "FileTooLarge",
    "NotARegularFile",
    "in_thread",
    "key_filename",
    "partial_path",
    "read_file",
    "read_regular_file",
    "safe_filename",
    "write_bytes_atomic",
]

T = TypeVar("T")

#: Payloads up to this many bytes are handled on the event loop; larger ones in a thread.
INLINE_IO_LIMIT = 256 * 1024

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(url: str | None, *, default: str) -> str:
    """A file name derived from the last segment of ``url`` that cannot leave its folder.

    Only letters, digits, ``.``, ``_`` and ``-`` survive; leading dots are
    dropped (no hidden files, no ``..``); an empty result gives ``default``.
    """
    if not url:
        return default
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", segment).lstrip("._")[:128]
    return name or default


def key_filename(key: str, *, default: str = "item") -> str:
    """A file name stem for a caller's key: readable, unable to leave its folder, unique.

    Unsafe characters become ``_``; when that changed anything, a short hash of
    the original key is appended, so ``"a/b"`` and ``"a_b"`` never share a file.
    """
    stem = _UNSAFE.sub("_", key).lstrip("._")[:100] or default
    if stem != key:
        stem += f"-{zlib.crc32(key.encode('utf-8')):08x}"
    return stem


async def in_thread(func: Callable[..., T], *args: object, abandon_on_cancel: bool = False) -> T:
    """``func(*args)`` in anyio's worker threads (imported here, on first use: ~20 ms).

    ``abandon_on_cancel``: a cancelled caller (a deadline) stops waiting at once, and the
    thread finishes on its own; for reads that may block (a pipe, a stalled disk).
    """
    from anyio import to_thread

    if not abandon_on_cancel:
        return await to_thread.run_sync(func, *args)
    options: Any = _abandon_option()
    return await to_thread.run_sync(func, *args, **options)


@functools.lru_cache(maxsize=1)
def _abandon_option() -> dict[str, bool]:
    import inspect

    from anyio import to_thread

    # anyio 4.1 renamed ``cancellable`` (which now warns) to ``abandon_on_cancel``.
    if "abandon_on_cancel" in inspect.signature(to_thread.run_sync).parameters:
        return {"abandon_on_cancel": True}
    return {"cancellable": True}  # pragma: no cover - anyio 4.0


class FileTooLarge(ValueError):
    """A file holds more than the reader accepts; ``size`` is what was seen (at least)."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"{size} bytes")


class NotARegularFile(ValueError):
    """The path names a FIFO, a device, a socket or a directory: nothing to read whole."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"is {kind}, not a regular file")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


# Opening a FIFO without O_NONBLOCK waits for a writer, however long that takes.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_regular_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; blocking (run it in a thread).

    Anything but a regular file raises :class:`NotARegularFile` before a byte is read
    (looked at before opening, and again on the opened file, which may have been
    swapped meanwhile); a file above ``limit`` raises :class:`FileTooLarge`, from its
    size when it says so, else after reading ``limit + 1`` bytes (a file that grows, or
    one that reports no size), so no more than that is ever held in memory.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFile(_kind(mode))
    fd = os.open(path, _OPEN_FLAGS)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(_kind(info.st_mode))
        if limit is None:
            return fh.read()
        if info.st_size > limit:
            raise FileTooLarge(info.st_size)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(len(data))
    return data


async def read_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """:func:`read_regular_file` in a worker thread (its size is unknown until we look).

    A caller's deadline cancels the wait at once (the thread is abandoned).
    """
    return await in_thread(read_regular_file, path, limit, abandon_on_cancel=True)


def partial_path(target: Path) -> Path:
    """A fresh hidden name beside ``target`` for a file being written.

    Opened with mode ``"xb"`` it honours the umask (unlike ``mkstemp``'s 0600),
    so a saved image gets the permissions any other new file would.
    """
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")


def _write_atomic_sync(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(target)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and an atomic rename."""
    if len(data) <= INLINE_IO_LIMIT:
        _write_atomic_sync(target, data)
    else:
        await in_thread(_write_atomic_sync, target, data)
