"""``--dry-run``: what ``generate``, ``edit`` and ``batch`` would send and what it would cost.

Nothing is sent and no API key is needed. The request is built by the same builders the
client uses (so every local check runs: options, prompt, reference files), and priced with
the same price table. For a batch, each item is checked and priced, items the journal says
are finished or already submitted are counted apart (they cost nothing more), and the
budget is applied the way the batch applies it: in order, stopping at the first item that
would pass it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._batch.items import BatchItem, EditRequest
from .._batch.journal import Entry, JournalRun, load_entries
from .._client.resources import load_references
from .._protocol.calls import RequestSpec
from .._protocol.catalog import DEFAULT_MODEL
from .._protocol.errors import InvalidRequestError, MaxAPIError
from .._protocol.openai_request import build_edit_request, build_generate_request, check_edit_arguments
from .._protocol.options import ImageOptions, check_content_options, check_image_options
from .._protocol.pricing import NANO, PRICES, format_credits, nano_credits
from .output import EXIT_USAGE, CommandError, Output

__all__ = ["plan_batch", "plan_call"]

DEFAULT_ROUTE = "the key's default order"


def _route(route_mode: str | None) -> str:
    return route_mode or DEFAULT_ROUTE


def _images(n: int) -> str:
    return f"{n} image" + ("" if n == 1 else "s")


def _spec_json(spec: RequestSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"method": spec.method, "path": spec.path}
    if spec.json is not None:
        doc["json"] = spec.json
    if spec.form is not None:
        doc["form"] = [
            {"name": p.name, "value": p.value}
            if isinstance(p.value, str)
            else {
                "name": p.name,
                "filename": p.filename,
                "content_type": p.content_type,
                "bytes": len(p.value),
            }
            for p in spec.form
        ]
    if spec.headers:
        doc["headers"] = sorted(spec.headers)  # names only: values may be secrets
    return doc


async def plan_call(
    args: argparse.Namespace, out: Output, options: dict[str, Any], images: Sequence[Path] | None
) -> int:
    """``generate --dry-run`` / ``edit --dry-run``: the request, built and checked, and its price."""
    opts = ImageOptions(**options)
    queued = bool(args.queued or args.no_wait)
    if images is None:
        spec = build_generate_request(args.prompt, opts, queued=queued)
    else:
        check_edit_arguments(args.prompt, images, opts)
        spec = build_edit_request(args.prompt, await load_references(images), opts, queued=queued)
    estimate = PRICES.estimate(opts.model, opts.route_mode, opts.n)
    doc = _spec_json(spec)
    out.line("dry run: nothing was sent")
    out.line(f"{spec.method} {spec.path}")
    for name, value in (doc.get("json") or {}).items():
        out.line(f"  {name}: {value!r}")
    for part in doc.get("form") or ():
        shown = (
            part["value"]
            if "value" in part
            else f"{part['filename']} ({part['content_type']}, {part['bytes']} bytes)"
        )
        out.line(f"  {part['name']}: {shown}")
    for name in doc.get("headers") or ():
        out.line(f"  header {name}")
    price = f"{format_credits(estimate)} credits" if estimate is not None else "no price known for this model"
    out.line(f"estimate: {_images(opts.n)} of {opts.model} on {_route(opts.route_mode)}: {price}")
    out.document({"dry_run": True, "request": doc, "credits": estimate})
    return 0


def _check_item(item: BatchItem) -> None:
    """What the client checks before sending ``item``, without reading any file."""
    if isinstance(item, ImageOptions):
        check_image_options(item)
    else:
        check_content_options(item)
    if isinstance(item, EditRequest):
        for i, image in enumerate(item.images):
            if isinstance(image, Path) and not image.is_file():
                raise InvalidRequestError(f"images[{i}]", f"{str(image)!r}: no such file")


def _entries(journal: Path | None) -> dict[str, Entry]:
    """The journal's entries, read as they are (a journal that does not exist: none)."""
    return load_entries(journal) if journal is not None and journal.is_file() else {}


async def plan_batch(
    args: argparse.Namespace, out: Output, items: Sequence[BatchItem], name: str, journal: Path | None
) -> int:
    """``batch --dry-run``: per route, what would be submitted, its credits, and the budget.

    The journal is read without its lock, and each item goes through a run of the batch's
    own store in memory: its claim says what is finished or submitted already, and its
    reservation keeps the budget exactly as the batch would (in order; the first item past
    it stops the later ones; submitted tasks count without being refused).
    """
    run = JournalRun(None, _entries(journal))
    budget = nano_credits(args.budget) if args.budget is not None else None
    if budget is not None:
        unpriced = sorted({i.model for i in items if PRICES.per_call(i.model, i.route_mode) is None})
        if unpriced:
            raise CommandError(
                f"no price is known for {', '.join(unpriced)}, so --budget cannot be kept; the batch "
                "would refuse to start (run it without --budget, or with a model that has a price)",
                EXIT_USAGE,
            )
    done = resumed = skipped = 0
    invalid: list[dict[str, str]] = []
    to_submit: list[tuple[BatchItem, int | None]] = []
    for item in items:
        state = await run.claim(item.key)
        if state.status == "done":
            done += 1
            continue
        n = item.n if isinstance(item, ImageOptions) else 1
        price = PRICES.per_call(item.model, item.route_mode)
        estimate = None if price is None else nano_credits(price) * n
        if state.status == "submitted":  # paid for in an earlier run: waited for, not sent
            resumed += 1
            await run.reserve(item.key, estimate, budget)
            continue
        try:
            _check_item(item)
        except MaxAPIError as exc:
            invalid.append({"key": item.key, "error": str(exc)})
            continue
        if not await run.reserve(item.key, estimate, budget):
            skipped += 1
            continue
        to_submit.append((item, estimate))
    fits = len(to_submit)
    committed = sum(estimate or 0 for _, estimate in to_submit)
    rows: dict[tuple[str, str], list[int]] = {}
    for item, estimate in to_submit:
        row = rows.setdefault((_route(item.route_mode), item.model), [0, 0, 0, 0])
        row[0] += 1
        row[1] += item.n if isinstance(item, ImageOptions) else 1
        row[2] += estimate or 0
        row[3] += estimate is None
    _print_plan(
        out,
        name,
        len(items),
        journal,
        (done, resumed),
        invalid,
        rows,
        (fits, skipped, committed),
        args.budget,
    )
    out.document(
        {
            "dry_run": True,
            "items": len(items),
            "journal": str(journal) if journal is not None else None,
            "done_in_journal": done,
            "resumed_from_journal": resumed,
            "invalid": invalid,
            "routes": [
                {
                    "route_mode": route,
                    "model": model,
                    "items": r[0],
                    "images": r[1],
                    "credits": r[2] / NANO,
                    "unpriced": r[3],
                }
                for (route, model), r in rows.items()
            ],
            "submitted": fits,
            "credits": committed / NANO,
            "budget": args.budget,
            "skipped_by_budget": skipped,
        }
    )
    return 0


def _print_plan(
    out: Output,
    name: str,
    total: int,
    journal: Path | None,
    journaled: tuple[int, int],
    invalid: list[dict[str, str]],
    rows: dict[tuple[str, str], list[int]],
    submitted: tuple[int, int, int],
    budget: float | None,
) -> None:
    (done, resumed), (fits, skipped, committed) = journaled, submitted
    out.line(f"dry run: nothing was sent; {total} item{'s' if total != 1 else ''} from {name}")
    if journal is not None:
        out.line(f"journal {journal}: {done} finished, {resumed} submitted earlier (resumed, not paid again)")
    for bad in invalid:
        out.line(f"invalid, would fail unsent: {bad['key']}: {bad['error']}")
    out.line(f"  {'route':<28} {'items':>6} {'images':>7} {'credits':>10}")
    for (route, model), (count, images, nanos, unpriced) in rows.items():
        label = route if model == DEFAULT_MODEL else f"{route} ({model})"
        credits = format_credits(nanos / NANO) + ("+" if unpriced else "")
        out.line(f"  {label:<28} {count:>6} {images:>7} {credits:>10}")
    images = sum(r[1] for r in rows.values())
    out.line(f"  {'to submit':<28} {fits:>6} {images:>7} {format_credits(committed / NANO):>10}")
    if any(r[3] for r in rows.values()):
        out.line("  (+: items of models without a price are not counted)")
    if budget is None:
        out.line("budget: none given")
    elif skipped:
        out.line(
            f"budget {format_credits(budget)}: the first {fits} fit; the batch would stop there and "
            f"skip {skipped}"
        )
    else:
        out.line(f"budget {format_credits(budget)}: everything fits")
