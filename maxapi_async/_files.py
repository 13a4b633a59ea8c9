"""File I/O that never blocks the event loop for long, and safe file names.

Small payloads are written inline (a thread hop costs more than the I/O);
larger ones, and every read of a file of unknown size, go to a worker thread.
"""

from __future__ import annotations

import os
import re
import secrets
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

__all__ = [
    "INLINE_IO_LIMIT",
    "in_thread",
    "key_filename",
    "partial_path",
    "read_file",
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


async def in_thread(func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` in anyio's worker threads (imported here, on first use: ~20 ms)."""
    from anyio import to_thread

    return await to_thread.run_sync(func, *args)


async def read_file(path: str | os.PathLike[str]) -> bytes:
    """Read a whole file in a worker thread (its size is unknown until we look)."""
    return await in_thread(Path(path).read_bytes)


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
