"""``maxapi-async``: the command line (also ``python -m maxapi_async``).

::

    maxapi-async demo                                   # a fake MaxAPI on loopback, every path
    maxapi-async generate "a glass cube" --aspect-ratio 16:9 --out images/
    maxapi-async edit "make it night" -i cube.png beach.png --out images/
    maxapi-async batch prompts.txt --concurrency 8 --budget 2.5 --journal run.jsonl --out images/
    maxapi-async generate "a glass cube" --no-wait --json > task.json
    maxapi-async task wait TASK_ID --kind generation --out images/
    maxapi-async sizes | prices | fake-server

Global options (before or after the command): ``--api-key`` (else ``MAXAPI_KEY``),
``--base-url`` (else ``MAXAPI_BASE_URL``), ``--timeout``, ``--task-timeout``, ``--json``
(one JSON document on stdout), ``-q`` (no progress or notes on stderr), ``-v`` (log requests).

Exit codes: 0 success; 1 the service or a task failed (or a batch left items
unfinished); 2 bad arguments or configuration; 130 interrupted. Errors are one line
on stderr, ``maxapi-async: error: <message>``, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import inspect
import json
import logging
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TextIO, TypeVar

import attrs

from . import _catalog
from ._batch import Batch, BatchItem, ContentRequest, EditRequest, GenerateRequest, Outcome
from ._client import AsyncMaxAPI
from ._errors import (
    APIError,
    ConfigurationError,
    InvalidRequestError,
    MaxAPIError,
    MaxAPIWarning,
    ResponseError,
    TaskTimeoutError,
)
from ._files import read_file
from ._gemini import GenerateContentResponse
from ._handles import TaskHandle
from ._images import image_size
from ._models import ImageAsset, ImageResult, _extension
from ._options import ContentOptions, ImageOptions
from ._pricing import PRICES
from ._version import __version__

__all__ = ["main"]

PROG = "maxapi-async"
# What a batch file's JSON line may set: the options of its call.
_GENERATE_FIELDS = {a.name for a in attrs.fields(ImageOptions)}
_CONTENT_FIELDS = {a.name for a in attrs.fields(ContentOptions)}
TASK_KINDS = ("generation", "edit", "operation")
Result = ImageResult | GenerateContentResponse
T = TypeVar("T")


class CommandError(Exception):
    """A user-facing failure: printed as one line, with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- output ---------------------------------------------------------------------------


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


# -- shared pieces ----------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _make_client(args: argparse.Namespace) -> AsyncMaxAPI:
    key = args.api_key or os.environ.get("MAXAPI_KEY")
    if not key or not key.strip():
        raise CommandError("no API key: pass --api-key KEY or set the MAXAPI_KEY environment variable", 2)
    options: dict[str, Any] = {}
    if getattr(args, "task_timeout", None) is not None:
        options["task_timeout"] = args.task_timeout
    return AsyncMaxAPI(key, base_url=args.base_url, timeout=args.timeout, **options)


def _slug(text: str, limit: int = 48) -> str:
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


def _asset_json(asset: ImageAsset, path: Path | None = None) -> dict[str, Any]:
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
        "images": [_asset_json(a, p) for a, p in zip(images, paths, strict=True)],
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


def _size(asset: ImageAsset) -> str:
    return f"{asset.width}x{asset.height}" if asset.size else "?x?"


async def _deliver(result: Result, args: argparse.Namespace, out: Output, stem: str) -> None:
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
        out.line(f"{_size(asset):>9}  {where}".rstrip())
    if isinstance(result, GenerateContentResponse) and result.text:
        out.line(result.text)
    cost = f", {result.cost:.3f} credits estimated" if result.cost is not None else ""
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


async def _timed(work: Awaitable[T], out: Output, desc: str) -> T:
    """A call that gives no progress: an elapsed-seconds counter on a terminal."""
    bar = Progress(out, total=None, desc=desc, bar_format="{desc}: {elapsed}")
    started = time.monotonic()
    return await _showing(work, bar, lambda: bar.update_to(round(time.monotonic() - started, 1)))


async def _wait_with_progress(handle: TaskHandle[Any], out: Output, timeout: float | None) -> Any:
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
            f"{time.monotonic() - started:.1f} s; it runs on: collect it later with: {_task_hint(handle)}",
            1,
        ) from None


def _task_hint(handle: TaskHandle[Any]) -> str:
    return f"{PROG} task wait {handle.id} --kind {handle.kind}"


def _submitted(handle: TaskHandle[Any], out: Output) -> int:
    out.line(f"{handle.id}  {handle.kind} task submitted; wait for it with: {_task_hint(handle)}")
    out.document({"task": handle.to_dict(), "status": handle.status.state, "wait": _task_hint(handle)})
    return 0


# -- commands ---------------------------------------------------------------------------


def _image_options(args: argparse.Namespace) -> dict[str, Any]:
    """The image options given on the command line (an option not given: its default)."""
    return {name: value for name in _GENERATE_FIELDS if (value := getattr(args, name, None)) is not None}


async def cmd_generate(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        options = _image_options(args)
        if not (args.queued or args.no_wait):
            result = await _timed(client.images.generate(args.prompt, **options), out, "generating")
        else:
            handle = await client.images.generate(args.prompt, wait=False, **options)
            if args.no_wait:
                return _submitted(handle, out)
            result = await _wait_with_progress(handle, out, args.timeout)
        await _deliver(result, args, out, _slug(args.prompt))
    return 0


async def cmd_edit(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        options = _image_options(args)
        images = [Path(p) for p in args.images]
        if not (args.queued or args.no_wait):
            result = await _timed(client.images.edit(args.prompt, images, **options), out, "editing")
        else:
            handle = await client.images.edit(args.prompt, images, wait=False, **options)
            if args.no_wait:
                return _submitted(handle, out)
            result = await _wait_with_progress(handle, out, args.timeout)
        await _deliver(result, args, out, _slug(args.prompt))
    return 0


async def cmd_task_wait(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        handle = client.tasks.get(args.task_id, kind=args.kind, aspect_ratio=args.aspect_ratio)
        result = await _wait_with_progress(handle, out, args.timeout)
        await _deliver(result, args, out, _slug(args.task_id))
    return 0


async def cmd_task_status(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        handle = client.tasks.get(args.task_id, kind=args.kind)
        status = await handle.refresh()
    progress = f" {status.progress:g}%" if status.progress is not None else ""
    out.line(f"{handle.id}  {handle.kind}  {status.state}{progress}")
    out.document(
        {
            "id": handle.id,
            "kind": handle.kind,
            "state": status.state,
            "word": status.word,
            "progress": status.progress,
        }
    )
    return 0


# -- batch --------------------------------------------------------------------------------


def _read_lines(source: str) -> tuple[list[str], Path]:
    if source == "-":
        return sys.stdin.read().splitlines(), Path.cwd()
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror or exc}", 2) from exc
    except UnicodeDecodeError as exc:
        raise CommandError(f"{source} is not UTF-8 text: {exc.reason}", 2) from exc
    return text.splitlines(), path.parent


def parse_batch_file(
    lines: Sequence[str], *, base: Path, defaults: dict[str, Any], name: str
) -> list[BatchItem]:
    """One item per line: a prompt, or a JSON object (``prompt``, ``images`` or ``contents``, options).

    Blank lines and lines starting with ``#`` are skipped. An item's ``key`` defaults to
    its line number (``0007``), so a rerun with the same journal matches it up; relative
    image paths are taken from the file's folder. ``defaults`` (the command's options)
    fill what a line does not say.
    """
    items: list[BatchItem] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{name}, line {number}"
        default_key = f"{number:04d}"
        if not text.startswith("{"):
            items.append(GenerateRequest(text, key=default_key, **_fill(defaults, _GENERATE_FIELDS, {})))
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{where}: not valid JSON ({exc})", 2) from None
        if not isinstance(obj, dict):  # pragma: no cover - a line starting with "{" is an object or invalid
            raise CommandError(f"{where}: a JSON line must be an object", 2)
        items.append(_json_item(obj, where, default_key, base, defaults))
    if not items:
        raise CommandError(f"{name}: no prompts (one prompt or JSON object per line)", 2)
    return items


def _fill(defaults: dict[str, Any], fields: set[str], given: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in defaults.items() if k in fields and v is not None}
    merged.update(given)
    return merged


def _json_item(
    obj: dict[str, Any], where: str, default_key: str, base: Path, defaults: dict[str, Any]
) -> BatchItem:
    data = dict(obj)
    key = data.pop("key", default_key)
    if not isinstance(key, str) or not key:
        raise CommandError(f"{where}: key must be a non-empty string", 2)
    if "contents" in data:
        contents = data.pop("contents")
        fields = _CONTENT_FIELDS
        unknown = set(data) - fields
        if unknown:
            raise CommandError(f"{where}: unknown fields {sorted(unknown)} (allowed: {sorted(fields)})", 2)
        return ContentRequest(contents, key=key, **_fill(defaults, fields, data))
    prompt = data.pop("prompt", None)
    if not isinstance(prompt, str):
        raise CommandError(f'{where}: needs a "prompt" string (or "contents")', 2)
    images = data.pop("images", None)
    unknown = set(data) - _GENERATE_FIELDS
    if unknown:
        raise CommandError(
            f"{where}: unknown fields {sorted(unknown)} (allowed: {sorted(_GENERATE_FIELDS)})", 2
        )
    options = _fill(defaults, _GENERATE_FIELDS, data)
    if images is None:
        return GenerateRequest(prompt, key=key, **options)
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        raise CommandError(f'{where}: "images" must be a path or a list of paths', 2)
    return EditRequest(prompt, [base / i for i in images], key=key, **options)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    files = [str(f) for f in outcome.files]
    return {
        "key": outcome.key,
        "status": outcome.status,
        "task_id": outcome.task_id,
        "cost": outcome.cost,
        "error": str(outcome.error) if outcome.error is not None else None,
        "error_type": type(outcome.error).__name__ if outcome.error is not None else None,
        "reason": outcome.reason,
        "files": files,
        "images": [_asset_json(a) for a in outcome.images],
    }


async def cmd_batch(args: argparse.Namespace, out: Output) -> int:
    lines, base = _read_lines(args.file)
    defaults = _image_options(args)
    name = "stdin" if args.file == "-" else args.file
    items = parse_batch_file(lines, base=base, defaults=defaults, name=name)
    started = time.perf_counter()
    out.note(f"{len(items)} item{'s' if len(items) != 1 else ''} from {name}")
    async with _make_client(args) as client:
        bar = Progress(out, total=len(items), desc="batch", unit="item")

        def progress(p: Any) -> None:
            bar.update_to(
                p.done + p.failed + p.skipped, running=p.running, failed=p.failed, credits=f"{p.credits:.3f}"
            )

        batch = Batch(
            client,
            items,
            concurrency=args.concurrency,
            budget=args.budget,
            journal=args.journal,
            fail_fast=args.fail_fast,
            progress=progress,
            download_to=args.out,
        )
        outcomes: list[Outcome] = []
        try:
            async for outcome in batch:
                outcomes.append(outcome)
                bar.line(_outcome_line(outcome))
        finally:
            bar.close()
    summary = batch.summary
    assert summary is not None  # set when the iteration ends
    seconds = time.perf_counter() - started
    order = {item.key: i for i, item in enumerate(items)}
    outcomes.sort(key=lambda o: order.get(o.key, len(order)))
    credits = f"{summary.credits:.3f} credits estimated"
    if summary.unpriced:
        plural = "s" if summary.unpriced != 1 else ""
        credits += f" (not counting {summary.unpriced} item{plural} of models without a price)"
    text = (
        f"{summary.done} done, {summary.restored} from the journal, {summary.failed} failed, "
        f"{summary.skipped} skipped; {credits}; {seconds:.1f} s"
    )
    if summary.stopped_by_budget:
        text += f"; stopped by the budget of {args.budget:g} credits"
    out.note(text)
    out.document(
        {
            "summary": {
                "total": summary.total,
                "done": summary.done,
                "restored": summary.restored,
                "failed": summary.failed,
                "skipped": summary.skipped,
                "credits": summary.credits,
                "remaining": summary.remaining,
                "stopped_by_budget": summary.stopped_by_budget,
                "unpriced": summary.unpriced,
                "seconds": round(seconds, 3),
            },
            "outcomes": [_outcome_json(o) for o in outcomes],
        }
    )
    if summary.remaining:
        why = f"; the budget ({args.budget:g} credits) stopped the batch" if summary.stopped_by_budget else ""
        hint = "; rerun with the same --journal to finish them" if args.journal else ""
        raise CommandError(f"{len(summary.remaining)} of {summary.total} items not finished{why}{hint}", 1)
    return 0


def _outcome_line(outcome: Outcome) -> str:
    if outcome.ok:
        images = outcome.images
        sizes = ",".join(_size(a) for a in images) or "-"
        where = " ".join(str(f) for f in outcome.files) or " ".join(a.url or "<inline>" for a in images)
        return f"{outcome.status:<8} {outcome.key}  {sizes}  {where}"
    detail = str(outcome.error) if outcome.error is not None else (outcome.reason or "")
    return f"{outcome.status:<8} {outcome.key}  {detail}"


# -- tables ----------------------------------------------------------------------------


def cmd_sizes(args: argparse.Namespace, out: Output) -> int:
    models = list(_catalog.MODELS.values())
    if args.model is not None:
        spec = _catalog.lookup_model(args.model)
        if spec is None:
            raise CommandError(f"unknown model {args.model!r} (known: {', '.join(_catalog.MODELS)})", 2)
        models = [spec]
    doc: dict[str, list[dict[str, Any]]] = {}
    for spec in models:
        rows = doc.setdefault(spec.id, [])
        out.line(spec.id)
        tiers = spec.resolutions or (None,)
        out.line("  ratio  " + "  ".join(f"{t or 'size'}".rjust(9) for t in tiers))
        for ratio in spec.aspect_ratios:
            sizes = [(res, spec.sizes[(ratio, res)]) for res in tiers]
            cells = "  ".join(f"{w}x{h}".rjust(9) for _, (w, h) in sizes)
            out.line(f"  {ratio:>5}  {cells}")
            rows.extend(
                {"aspect_ratio": ratio, "resolution": res, "width": w, "height": h} for res, (w, h) in sizes
            )
    out.document({"models": doc})
    return 0


def cmd_prices(args: argparse.Namespace, out: Output) -> int:
    rows = sorted(PRICES.prices.items())
    out.line(f"{'model':<32} {'route':<16} credits per image")
    for (model, route), price in rows:
        out.line(f"{model:<32} {route:<16} {price:g}")
    out.line("mix and the key's default order are estimated at the model's dearest route; 1 credit = 1 USD")
    doc: dict[str, Any] = {"prices": [{"model": m, "route_mode": r, "credits": p} for (m, r), p in rows]}
    if args.n is not None:
        estimate = PRICES.estimate(args.model, args.route_mode, args.n)
        if estimate is None:
            raise CommandError(f"no prices for model {args.model!r}", 2)
        route = args.route_mode or "the key's default order"
        images = f"{args.n} image{'s' if args.n != 1 else ''}"
        out.line(f"estimate: {images} of {args.model} on {route}: {estimate:g} credits")
        doc["estimate"] = {
            "model": args.model,
            "route_mode": args.route_mode,
            "n": args.n,
            "credits": estimate,
        }
    out.document(doc)
    return 0


# -- fake server and demo --------------------------------------------------------------


async def cmd_fake_server(args: argparse.Namespace, out: Output) -> int:
    from .testing import FakeMaxAPI

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        options: dict[str, Any] = {"complete_after_polls": args.complete_after_polls}
        if args.api_key:
            options["api_key"] = args.api_key
        async with FakeMaxAPI(**options) as fake:
            out.line(f"FakeMaxAPI on 127.0.0.1 (Ctrl-C stops it)\n  base_url: {fake.base_url}")
            out.line(f"  api_key:  {fake.api_key}\n  cdn:      {fake.cdn_url}")
            out.line(f"export MAXAPI_BASE_URL={fake.base_url} MAXAPI_KEY={fake.api_key}")
            if out.json_mode:
                doc = {"base_url": fake.base_url, "api_key": fake.api_key, "cdn_url": fake.cdn_url}
                print(json.dumps(doc), file=out.stdout, flush=True)  # one line: readable before we stop
            await stop.wait()
            out.note(f"stopping; {len(fake.requests)} API requests served")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 0


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from ._demo import run_demo

    echo = out.note if out.json_mode else out.line
    report = await run_demo(args.out if args.out is not None else Path("maxapi-demo"), echo=echo)
    out.document(report.to_json())
    return 0


# -- the parser ---------------------------------------------------------------------------


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options; repeated on every command so they may follow it too."""
    keep: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("global options")
    group.add_argument("--api-key", metavar="KEY", help="the MaxAPI key (default: $MAXAPI_KEY)", **keep)
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="the API origin (default: $MAXAPI_BASE_URL or https://api.maxapi.dev)",
        **keep,
    )
    group.add_argument(
        "--timeout", metavar="SECONDS", type=_positive_float, help="deadline per call (default 180)", **keep
    )
    group.add_argument(
        "--task-timeout",
        metavar="SECONDS",
        type=_positive_float,
        help="longest wait for a queued task (default 1800)",
        **keep,
    )
    group.add_argument("--json", action="store_true", help="print one JSON document on stdout", **keep)
    group.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr", **keep)
    group.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr", **keep)


def _add_image_options(parser: argparse.ArgumentParser, *, single: bool) -> None:
    """A flag per image option (its help and choices from :class:`ImageOptions`); ``single``:
    the flags of one call (how to wait, where to save)."""
    for field in attrs.fields(ImageOptions):
        flag = dict(field.metadata["cli"])
        shorts = flag.pop("flags", ())
        if field.default is not None:
            flag["help"] += f" (default: {field.default})"
        parser.add_argument(*shorts, "--" + field.name.replace("_", "-"), dest=field.name, **flag)
    if single:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--queued", action="store_true", help="submit as a queued task and poll it")
        mode.add_argument(
            "--no-wait",
            action="store_true",
            help="submit a queued task, print its id and exit (see: task wait)",
        )
        parser.add_argument(
            "-o", "--out", type=Path, metavar="DIR", help="save the images here (named after the prompt)"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command line for MaxAPI's Gemini 2.5 Flash Image API (maxapi-async).",
        epilog="Start with: maxapi-async demo  (a fake MaxAPI on loopback; no key, no network)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Callable[..., Any] | None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_globals(sub, top=False)
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    gen = command("generate", "generate images from a prompt", cmd_generate)
    gen.add_argument("prompt")
    _add_image_options(gen, single=True)

    edit = command("edit", "edit or compose from reference images", cmd_edit)
    edit.add_argument("prompt")
    edit.add_argument(
        "-i", "--image", dest="images", action="extend", nargs="+", required=True, metavar="IMAGE",
        help="a reference image file (PNG, JPEG, WebP or GIF); repeat or list several",
    )  # fmt: skip
    _add_image_options(edit, single=True)

    batch = command("batch", "run many prompts: one prompt or JSON request per line", cmd_batch)
    batch.add_argument("file", metavar="FILE", help="the prompts file, or - for stdin")
    _add_image_options(batch, single=False)
    batch.add_argument(
        "--concurrency", type=_positive_int, default=16, help="submissions at once (default 16)"
    )
    batch.add_argument(
        "--budget", type=_non_negative_float, metavar="CREDITS", help="estimated credits not to pass"
    )
    batch.add_argument("--journal", metavar="PATH", help="a .jsonl file or folder: reruns resume from it")
    batch.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    batch.add_argument("-o", "--out", type=Path, metavar="DIR", help="save the images here, named by key")

    task = command("task", "follow a queued task", None)
    task_commands = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    for name, help_text, handler in (
        ("wait", "wait for a task and fetch its images", cmd_task_wait),
        ("status", "poll a task once", cmd_task_status),
    ):
        sub = task_commands.add_parser(name, help=help_text, description=help_text)
        _add_globals(sub, top=False)
        sub.set_defaults(handler=handler)
        sub.add_argument("task_id", metavar="ID")
        sub.add_argument("--kind", choices=TASK_KINDS, default="generation", help="default: generation")
        if name == "wait":
            sub.add_argument(
                "-a", "--aspect-ratio", metavar="W:H", help="the task's ratio, for sizes of URL images"
            )
            sub.add_argument("-o", "--out", type=Path, metavar="DIR", help="save the images here")

    command("sizes", "the output sizes of each model and aspect ratio", cmd_sizes).add_argument(
        "--model", help="one model only"
    )
    prices = command("prices", "the price table; -n N estimates a job", cmd_prices)
    prices.add_argument(
        "--model", default=_catalog.DEFAULT_MODEL, help="for the estimate (default: %(default)s)"
    )
    prices.add_argument("--route-mode", choices=_catalog.ROUTE_MODES, help="for the estimate")
    prices.add_argument("-n", type=_positive_int, help="estimate the credits of N images")

    fake = command(
        "fake-server",
        "run a fake MaxAPI on 127.0.0.1 for local development (Ctrl-C stops it)",
        cmd_fake_server,
    )
    fake.add_argument(
        "--complete-after-polls", type=int, default=2, metavar="N", help="polls before a queued task is done"
    )

    demo = command("demo", "see every path work against a fake MaxAPI (no key, no network)", cmd_demo)
    demo.add_argument(
        "-o", "--out", type=Path, metavar="DIR", help="where to save the images (./maxapi-demo)"
    )
    return parser


# -- running ---------------------------------------------------------------------------------


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _cli_warnings() -> Iterator[None]:
    """MaxAPIWarning as one line on stderr, for the duration of the command."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", MaxAPIWarning)
        warnings.showwarning = _show_warning
        yield


def _fail(out: Output | None, message: str, code: int, error: BaseException | None = None) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    if out is not None and out.json_mode and not out.documented:  # one document, even on failure
        doc: dict[str, Any] = {"error": {"message": message, "exit_code": code}}
        if error is not None:
            doc["error"]["type"] = type(error).__name__
            for name in ("status", "code", "request_id"):
                value = getattr(error, name, None)
                if value is not None:
                    doc["error"][name] = value
        print(json.dumps(doc, indent=2, default=str), file=sys.stdout, flush=True)
    return code


def _run(handler: Callable[[argparse.Namespace, Output], Any], args: argparse.Namespace, out: Output) -> int:
    outcome = handler(args, out)
    if inspect.iscoroutine(outcome):
        return int(asyncio.run(outcome))
    return int(outcome)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (``sys.exit(main())``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    out = Output(json_mode=args.json, quiet=args.quiet)
    if args.verbose:
        logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
        logging.getLogger("maxapi_async").setLevel(logging.DEBUG)
    try:
        with _cli_warnings():
            return _run(args.handler, args, out)
    except KeyboardInterrupt:
        return _fail(None, "interrupted", 130)
    except CommandError as exc:
        return _fail(out, str(exc), exc.code, exc)
    except (InvalidRequestError, ConfigurationError) as exc:
        return _fail(out, str(exc), 2, exc)
    except (APIError, ResponseError, MaxAPIError) as exc:
        return _fail(out, str(exc), 1, exc)
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter closes it at exit
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(out, f"{where}{exc.strerror or exc}", 1, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
