"""The command line's output: one line per result on stdout, or one JSON document
(``--json``); notes and status lines on stderr (``-q``: none); results saved and reported."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import attrs

from .._batch.progress import StatusLine, clock, on_terminal
from .._batch.runner import Outcome
from .._client.handles import TaskHandle
from .._protocol.catalog import DEFAULT_MODEL
from .._protocol.errors import MaxAPIError, TaskTimeoutError
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


async def with_real_size(asset: ImageAsset, path: Path | None) -> ImageAsset:
    """``asset`` with its size read from the image itself when nothing else could tell it (an
    edit without a ratio follows its reference; a task known by its id alone): from the saved
    file, else from a download. A download that fails leaves the size unknown."""
    if asset.size is not None:
        return asset
    try:
        data = await read_file(path) if path is not None else await asset.read()
    except (OSError, MaxAPIError):
        return asset
    size = image_size(data)
    return asset if size is None else attrs.evolve(asset, width=size[0], height=size[1])


async def deliver(
    result: Result,
    args: argparse.Namespace,
    out: Output,
    stem: str,
    *,
    task: TaskHandle[Any] | None = None,
) -> None:
    """Save (``--out``, or when the answer has no URL to print) and report a result.

    The result was paid for: when it cannot be saved, the error names what fetches it
    again (its URLs, the task) and the exit code says so (:data:`EXIT_PAID_NOT_SAVED`).
    """
    images = list(result.images)
    folder: Path | None = args.out
    if folder is None and any(a.url is None for a in images):
        folder = Path(".")  # inline bytes only: they have to land somewhere
    try:
        paths: list[Path | None] = (
            list(await _save_images(images, folder, stem)) if folder else [None] * len(images)
        )
    except (OSError, MaxAPIError) as exc:
        raise not_saved(result, exc, task, args) from exc
    images = [await with_real_size(a, p) for a, p in zip(images, paths, strict=True)]
    for asset, path in zip(images, paths, strict=True):
        where = str(path) if path is not None else f"{asset.url}  {_expiry(asset.expires_at)}"
        out.line(f"{size_text(asset):>9}  {where}".rstrip())
    if isinstance(result, GenerateContentResponse) and result.text:
        out.line(result.text)
    cost = f", {format_credits(result.cost)} credits estimated" if result.cost is not None else ""
    count = f"{len(images)} image" + ("" if len(images) == 1 else "s")
    out.note(f"{count}{cost}" + (f", request id {result.request_id}" if result.request_id else ""))
    out.document(_result_json(images, result, paths))


def not_saved(
    result: Result, error: BaseException, task: TaskHandle[Any] | None, args: argparse.Namespace
) -> CommandError:
    """The error for a paid result that could not be saved: what it costs, and where it is."""
    reason = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) and error.strerror else error
    urls = [a.url for a in result.images if a.url]
    where: list[str] = []
    if urls:
        expiry = _expiry(result.images[0].expires_at)
        where.append(f"download {'it' if len(urls) == 1 else 'them'} from {' '.join(urls)}" + (
            f" ({expiry})" if expiry else ""))  # fmt: skip
    if task is not None:
        where.append(
            f"fetch {'it' if len(result.images) == 1 else 'them'} again with: {task_hint(task, args)}"
        )
    if not where and result.request_id:
        where.append(f"the request id is {result.request_id}")
    made = "the image was" if len(result.images) == 1 else f"the {len(result.images)} images were"
    details: dict[str, Any] = {
        "urls": urls,
        "task_id": task.id if task else None,
        "request_id": result.request_id,
    }
    return CommandError(
        f"{made} made (and paid for) but not saved: {reason}; " + "; or ".join(where or ["nothing kept it"]),
        EXIT_PAID_NOT_SAVED,
        details=details,
        cause=error,
    )


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


async def wait_with_progress(
    handle: TaskHandle[Any], out: Output, timeout: float | None, args: argparse.Namespace | None = None
) -> Any:
    """``await handle.wait()``, showing the task's state, progress and a clock meanwhile.

    The task was paid for: when the wait ends without its result (a timeout, Ctrl-C), the
    message says how to collect it later.
    """
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
            f"{time.monotonic() - started:.1f} s; it runs on: collect it later with: "
            f"{task_hint(handle, args)}",
            1,
        ) from None
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C: the task runs on, paid for
        print(
            f"{PROG}: {handle.kind} task {handle.id} runs on at the service; collect it later with: "
            f"{task_hint(handle, args)}",
            file=out.stderr,
            flush=True,
        )
        raise


def task_hint(handle: TaskHandle[Any], args: argparse.Namespace | None = None) -> str:
    """The command that collects ``handle``'s task later: with its kind, and every option the
    result is read against (ratio, model, tier) or saved with (``--out``, ``--base-url``)."""
    ref = handle.ref
    words = [PROG, "task", "wait", ref.id, "--kind", ref.kind]
    if ref.aspect_ratio:
        words += ["-a", ref.aspect_ratio]
    if ref.model and ref.model != DEFAULT_MODEL:
        words += ["--model", ref.model]
    if ref.resolution:
        words += ["--resolution", ref.resolution]
    if args is not None and getattr(args, "out", None) is not None:
        words += ["-o", str(args.out)]
    if args is not None and getattr(args, "base_url", None):
        words += ["--base-url", args.base_url]
    return shlex.join(words)


def submitted(handle: TaskHandle[Any], out: Output, args: argparse.Namespace) -> int:
    hint = task_hint(handle, args)
    out.line(f"{handle.id}  {handle.kind} task submitted; wait for it with: {hint}")
    out.document({"task": handle.to_dict(), "status": handle.status.state, "wait": hint})
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
