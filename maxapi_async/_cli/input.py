"""The command line's input: argument types, the options' flags (made from the options
classes), batch files (one prompt or JSON request per line), the client the command uses,
and the local checks that run before anything is sent (and paid for)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .._batch.items import BatchItem, ContentRequest, EditRequest, GenerateRequest
from .._client.client import AsyncMaxAPI
from .._protocol.options import ContentOptions, ImageOptions
from .output import EXIT_USAGE, CommandError

__all__ = [
    "add_globals",
    "add_image_options",
    "check_out_folder",
    "check_references",
    "image_options",
    "make_client",
    "non_negative_float",
    "parse_batch_file",
    "positive_float",
    "positive_int",
    "read_lines",
]

# What a batch file's JSON line may set: the options of its call.
_GENERATE_FIELDS = {a.name for a in attrs.fields(ImageOptions)}
_CONTENT_FIELDS = {a.name for a in attrs.fields(ContentOptions)}


def make_client(args: argparse.Namespace) -> AsyncMaxAPI:
    """The client of a command: its key, base URL and limits from the global options."""
    key = args.api_key or os.environ.get("MAXAPI_KEY")
    if not key or not key.strip():
        raise CommandError(
            "no API key: pass --api-key KEY or set the MAXAPI_KEY environment variable", EXIT_USAGE
        )
    options: dict[str, Any] = {}
    if getattr(args, "task_timeout", None) is not None:
        options["task_timeout"] = args.task_timeout
    return AsyncMaxAPI(key, base_url=args.base_url, timeout=args.timeout, **options)


def check_out_folder(folder: Path, what: str = "--out") -> Path:
    """``folder`` exists (made if need be) and takes a new file: checked before anything is
    paid for, so a paid image never has nowhere to go."""
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{what} {folder}: is a file, not a folder; nothing was sent", EXIT_USAGE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".maxapi-async-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CommandError(
            f"{what} {folder}: cannot write a file there ({reason}); nothing was sent", 2
        ) from None
    return folder


def check_references(items: Sequence[BatchItem], name: str) -> None:
    """Every reference file of a batch's edits is a readable file, before anything is sent."""
    for item in items:
        if not isinstance(item, EditRequest):
            continue
        for i, image in enumerate(item.images):
            path = Path(image) if isinstance(image, (str, os.PathLike)) else None
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                why = "not a readable file" if path.exists() else "no such file"
                raise CommandError(
                    f"{name}, item {item.key!r}: images[{i}] {path}: {why}; nothing was sent", EXIT_USAGE
                )


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
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
        "--timeout", metavar="SECONDS", type=positive_float, help="deadline per call (default 180)", **keep
    )
    group.add_argument(
        "--task-timeout",
        metavar="SECONDS",
        type=positive_float,
        help="longest wait for a queued task (default 1800)",
        **keep,
    )
    group.add_argument("--json", action="store_true", help="print one JSON document on stdout", **keep)
    group.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr", **keep)
    group.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr", **keep)


def add_image_options(parser: argparse.ArgumentParser, *, single: bool) -> None:
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


def image_options(args: argparse.Namespace) -> dict[str, Any]:
    """The image options given on the command line (an option not given: its default)."""
    return {name: value for name in _GENERATE_FIELDS if (value := getattr(args, name, None)) is not None}


def read_lines(source: str) -> tuple[list[str], Path]:
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
