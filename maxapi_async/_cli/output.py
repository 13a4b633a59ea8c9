"""The command line's output: one line per result on stdout, or one JSON document
(``--json``); notes and progress bars on stderr (``-q``: none); results saved and reported."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any, TextIO, TypeVar

import attrs

from .._batch.runner import Outcome
from .._client.handles import TaskHandle
from .._protocol.errors import TaskTimeoutError
from .._protocol.gemini import GenerateContentResponse
from .._protocol.images import image_size
from .._protocol.models import ImageAsset, ImageResult, _extension
from .._protocol.pricing import format_credits
from .._transport.files import read_file

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PAID_NOT_SAVED",
    "EXIT_USAGE",
    "CommandError",
    "Output",
    "Progress",
    "deliver",
    "outcome_json",
    "outcome_line",
    "slug",
    "submitted",
    "timed",
    "wait_with_progress",
]

PROG = "maxapi-async"
Result = ImageResult | GenerateContentResponse
T = TypeVar("T")


#: The exit codes (README, "Command line"): done; the service, a task or a batch item
#: failed; bad arguments or configuration (nothing was sent); paid for, but not saved
#: (the message names the URLs or task id to fetch it again); interrupted (Ctrl-C).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAID_NOT_SAVED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CommandError(Exception):
    """A user-facing failure: printed as one line, with an exit code.

    ``details`` go into the ``--json`` error document beside the message (what was paid
    for: URLs, a task id); ``cause`` is the library's error behind it, if any.
    """

    def __init__(
        self,
        message: str,
        code: int = EXIT_FAILED,
        *,
        details: dict[str, Any] | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}
        self.cause = cause


class Output:
    """Where a command writes: human lines or one JSON document on stdout, notes on stderr."""

    def __init__(self, *, json_mode: bool, quiet: bool) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.documented = False

    @property
    def stdout(self) -> TextIO:
        return sys.stdout

    @property
    def stderr(self) -> TextIO:
        return sys.stderr

    def line(self, text: str = "") -> None:
        """A line of the human-readable result (stdout; nothing in ``--json`` mode)."""
        if not self.json_mode:
            print(text, file=self.stdout, flush=True)

    def note(self, text: str) -> None:
        """A progress note for people (stderr; nothing with ``-q``)."""
        if not self.quiet:
            print(text, file=self.stderr, flush=True)

    def document(self, obj: object) -> None:
        """The one JSON document of ``--json`` mode."""
        if self.json_mode:
            print(json.dumps(obj, indent=2, default=str), file=self.stdout, flush=True)
            self.documented = True

    @property
    def progress_bars(self) -> bool:
        return not self.quiet and _isatty(self.stderr)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A tqdm bar on stderr when tqdm is installed and stderr is a terminal; else silent."""

    def __init__(
        self, out: Output, *, total: float | None, desc: str, unit: str = "it", bar_format: str | None = None
    ) -> None:
        self._out = out
        self._bar: Any = None
        if out.progress_bars:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped]
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total,
                    desc=desc,
                    unit=unit,
                    file=out.stderr,
                    leave=False,
                    dynamic_ncols=True,
                    bar_format=bar_format,
                )

    def update_to(self, n: float, **postfix: object) -> None:
        if self._bar is not None:
            self._bar.n = n
            if postfix:
                self._bar.set_postfix(refresh=False, **postfix)
            self._bar.refresh()

    def line(self, text: str) -> None:
        """A result line that does not tear the bar."""
        if self._out.json_mode:
            return
        if self._bar is not None:
            self._bar.write(text, file=self._out.stdout)
        else:
            self._out.line(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return slug or "image"


def _free_path(folder: Path, stem: str, ext: str, taken: set[Path]) -> Path:
    """``stem.ext``, or ``stem-2.ext``, ``stem-3.ext``...: never an existing file."""
    candidate = folder / f"{stem}{ext}"
    number = 1
    while candidate in taken or candidate.exists():
        number += 1
        candidate = folder / f"{stem}-{number}{ext}"
    taken.add(candidate)
    return candidate


async def _save_images(images: Sequence[ImageAsset], folder: Path, stem: str) -> list[Path]:
    taken: set[Path] = set()
    paths = [_free_path(folder, stem, _extension(a.mime_type), taken) for a in images]
    return list(await asyncio.gather(*(a.save(p) for a, p in zip(images, paths, strict=True))))


def _expiry(moment: _dt.datetime | None) -> str:
    if moment is None:
        return ""
    return "expires " + moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def asset_json(asset: ImageAsset, path: Path | None = None) -> dict[str, Any]:
    return {
        "url": asset.url,
        "path": str(path) if path is not None else None,
        "width": asset.width,
        "height": asset.height,
        "mime_type": asset.mime_type,
        "expires_at": asset.expires_at.isoformat() if asset.expires_at else None,
        "inline_bytes": len(asset.data) if asset.data is not None else None,
    }


def _result_json(
    images: Sequence[ImageAsset], result: Result, paths: Sequence[Path | None]
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "images": [asset_json(a, p) for a, p in zip(images, paths, strict=True)],
        "cost": result.cost,
        "request_id": result.request_id,
    }
    if isinstance(result, ImageResult):
        doc["model"] = result.model
        doc["created"] = result.created
    else:
        doc["model"] = result.model_version
        doc["text"] = result.text
        doc["finish_reason"] = result.finish_reason
    return doc


def size_text(asset: ImageAsset) -> str:
    return f"{asset.width}x{asset.height}" if asset.size else "?x?"


async def deliver(result: Result, args: argparse.Namespace, out: Output, stem: str) -> None:
    """Save (``--out``, or when the answer has no URL to print) and report a result."""
    images = list(result.images)
    folder: Path | None = args.out
    if folder is None and any(a.url is None for a in images):
        folder = Path(".")  # inline bytes only: they have to land somewhere
    paths: list[Path | None] = (
        list(await _save_images(images, folder, stem)) if folder else [None] * len(images)
    )
    for i, (asset, path) in enumerate(zip(images, paths, strict=True)):
        if asset.size is None and path is not None:
            # The size table could not tell (an edit follows its reference): read the file.
            size = image_size(await read_file(path))
            if size is not None:
                images[i] = asset = attrs.evolve(asset, width=size[0], height=size[1])
        where = str(path) if path is not None else f"{asset.url}  {_expiry(asset.expires_at)}"
        out.line(f"{size_text(asset):>9}  {where}".rstrip())
    if isinstance(result, GenerateContentResponse) and result.text:
        out.line(result.text)
    cost = f", {format_credits(result.cost)} credits estimated" if result.cost is not None else ""
    count = f"{len(images)} image" + ("" if len(images) == 1 else "s")
    out.note(f"{count}{cost}" + (f", request id {result.request_id}" if result.request_id else ""))
    out.document(_result_json(images, result, paths))


async def _showing(work: Awaitable[T], bar: Progress, update: Callable[[], None]) -> T:
    """Await ``work``, calling ``update`` (which moves ``bar``) five times a second meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait([task], timeout=0.2)
            update()
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
        bar.close()


async def timed(work: Awaitable[T], out: Output, desc: str) -> T:
    """A call that gives no progress: an elapsed-seconds counter on a terminal."""
    bar = Progress(out, total=None, desc=desc, bar_format="{desc}: {elapsed}")
    started = time.monotonic()
    return await _showing(work, bar, lambda: bar.update_to(round(time.monotonic() - started, 1)))


async def wait_with_progress(handle: TaskHandle[Any], out: Output, timeout: float | None) -> Any:
    """``await handle.wait()``, showing the task's state and progress meanwhile."""
    out.note(f"waiting for {handle.kind} task {handle.id}")
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
    bar = Progress(out, total=100, desc=f"{handle.kind} {handle.id}", bar_format=bar_format)

    def update() -> None:
        status = handle.status
        bar.update_to(status.progress or 0, state=status.state)

    started = time.monotonic()
    try:
        # Without --timeout, the client's task_timeout bounds the wait.
        return await _showing(handle.wait(timeout=timeout), bar, update)
    except TaskTimeoutError:
        raise CommandError(
            f"{handle.kind} task {handle.id} still {handle.status.word or 'unfinished'} after "
            f"{time.monotonic() - started:.1f} s; it runs on: collect it later with: {task_hint(handle)}",
            1,
        ) from None


def task_hint(handle: TaskHandle[Any]) -> str:
    return f"{PROG} task wait {handle.id} --kind {handle.kind}"


def submitted(handle: TaskHandle[Any], out: Output) -> int:
    out.line(f"{handle.id}  {handle.kind} task submitted; wait for it with: {task_hint(handle)}")
    out.document({"task": handle.to_dict(), "status": handle.status.state, "wait": task_hint(handle)})
    return 0


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    # Each image with the file it was saved to (the batch saves them in order, or none).
    images = outcome.images
    files: list[Path | None] = [*outcome.files, *[None] * len(images)][: len(images)]
    return {
        "key": outcome.key,
        "status": outcome.status,
        "task_id": outcome.task_id,
        "cost": outcome.cost,
        "error": str(outcome.error) if outcome.error is not None else None,
        "error_type": type(outcome.error).__name__ if outcome.error is not None else None,
        "reason": outcome.reason,
        "images": [asset_json(a, f) for a, f in zip(images, files, strict=True)],
    }


def outcome_line(outcome: Outcome) -> str:
    if outcome.ok:
        images = outcome.images
        sizes = ",".join(size_text(a) for a in images) or "-"
        where = " ".join(str(f) for f in outcome.files) or " ".join(a.url or "<inline>" for a in images)
        return f"{outcome.status:<8} {outcome.key}  {sizes}  {where}"
    detail = str(outcome.error) if outcome.error is not None else (outcome.reason or "")
    return f"{outcome.status:<8} {outcome.key}  {detail}"
