"""The command line's output: one line per result on stdout, or one JSON document
(``--json``); notes and status lines on stderr (``-q``: none); results saved and reported."""

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
from typing import Any, TextIO, TypeVar

import attrs

from .._batch.progress import StatusLine, clock, on_terminal
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
        """Whether status lines are drawn: stderr is a terminal and ``-q`` was not given."""
        return not self.quiet and on_terminal(self.stderr)

    def status(self, render: Callable[[float], str]) -> StatusLine:
        """A status line on stderr (drawn only when :attr:`progress_bars`)."""
        return StatusLine(render, self.stderr, enabled=self.progress_bars)


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


async def _showing(work: Awaitable[T], status: StatusLine) -> T:
    """Await ``work`` with ``status`` on screen (it redraws itself, so its clock moves)."""
    status.start()
    try:
        return await work
    finally:
        status.close()


async def timed(work: Awaitable[T], out: Output, desc: str) -> T:
    """A call that gives no progress: its name and a clock on a terminal."""
    return await _showing(work, out.status(lambda elapsed: f"{desc}  {clock(elapsed)}"))


async def wait_with_progress(handle: TaskHandle[Any], out: Output, timeout: float | None) -> Any:
    """``await handle.wait()``, showing the task's state, progress and a clock meanwhile."""
    out.note(f"waiting for {handle.kind} task {handle.id}")

    def render(elapsed: float) -> str:
        status = handle.status
        percent = f" {status.progress:.0f}%" if status.progress is not None else ""
        return f"{handle.kind} task {handle.id}  {status.word or status.state}{percent}  {clock(elapsed)}"

    started = time.monotonic()
    try:
        # Without --timeout, the client's task_timeout bounds the wait.
        return await _showing(handle.wait(timeout=timeout), out.status(render))
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
