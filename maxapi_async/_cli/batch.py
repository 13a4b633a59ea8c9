"""``maxapi-async batch``: many prompts, resumable by default, stoppable with Ctrl-C.

A batch keeps a journal unless told not to (``--no-journal``): ``--journal PATH``, else
``<prompts file name>.journal.jsonl`` in the ``--out`` folder (or the current folder), so
running the same command again resumes it.

Ctrl-C stops submitting and gives the submissions already sent :data:`INTERRUPT_GRACE`
seconds to be answered and recorded, then prints one summary (what was submitted and paid
for, what finished or failed, the credits, and the exact command that resumes) and exits
with 130. A second Ctrl-C exits at once: the journal already holds every task it recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .._batch.items import BatchItem, BatchProgress
from .._batch.progress import BatchStatus
from .._batch.runner import Batch, BatchSummary, Outcome
from .._protocol.options import ImageOptions
from .._protocol.pricing import NANO, PRICES, format_credits, nano_credits
from .input import (
    check_out_folder,
    check_references,
    image_options,
    make_client,
    parse_batch_file,
    read_lines,
)
from .output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    PROG,
    CommandError,
    Output,
    outcome_json,
    outcome_line,
)
from .plan import plan_batch

__all__ = ["INTERRUPT_GRACE", "cmd_batch", "default_journal"]

#: Seconds the submissions in flight at Ctrl-C get to be answered and recorded.
INTERRUPT_GRACE = 5.0


def default_journal(args: argparse.Namespace) -> Path | None:
    """The batch's journal: ``--journal``, none with ``--no-journal``, else one named after the
    prompts file in the ``--out`` folder (or the current one)."""
    if args.no_journal:
        return None
    if args.journal is not None:
        return Path(args.journal)
    stem = "stdin" if args.file == "-" else Path(args.file).stem
    return (args.out if args.out is not None else Path(".")) / f"{stem}.journal.jsonl"


def resume_command(args: argparse.Namespace) -> str:
    """The command line this batch was started with: run again, it resumes from the journal."""
    return shlex.join([PROG, *args.argv])


class _Interrupt:
    """Ctrl-C during a batch (installed for its duration, where the platform allows).

    The first stops submitting and lets the submissions in flight be answered and recorded
    (up to :data:`INTERRUPT_GRACE` seconds); the second exits at once, status 130.
    """

    def __init__(self, batch: Batch, status: BatchStatus, out: Output) -> None:
        self.batch, self.status, self.out = batch, status, out
        self.happened = False
        self.submitting = 0  # submissions in flight when it happened
        self._installed = False
        self._stopping: asyncio.Task[None] | None = None

    def __enter__(self) -> _Interrupt:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # Windows, a thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._signalled)
            self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    def _signalled(self) -> None:
        if self.happened:
            text = f"\n{PROG}: interrupted again: exiting now (the journal keeps every task it recorded)\n"
            os.write(2, text.encode())
            os._exit(EXIT_INTERRUPTED)
        self.happened = True
        self.submitting = self.batch.submitting
        n = self.submitting
        waiting = f"; up to {INTERRUPT_GRACE:g} s for {n} in flight to be recorded" if n else ""
        self.status.line(
            f"{PROG}: interrupted: submitting nothing more{waiting} (Ctrl-C again: exit now)", self.out.stderr
        )
        self._stopping = asyncio.ensure_future(self.batch.stop(INTERRUPT_GRACE))


async def cmd_batch(args: argparse.Namespace, out: Output) -> int:
    lines, base = read_lines(args.file)
    name = "stdin" if args.file == "-" else args.file
    items = parse_batch_file(lines, base=base, defaults=image_options(args), name=name)
    journal = default_journal(args)
    if args.dry_run:
        return await plan_batch(args, out, items, name, journal)
    # Every local check before anything is paid for (the batch locks its journal first too).
    check_references(items, name)
    if args.out is not None:
        check_out_folder(args.out)
    started = time.perf_counter()
    where = f"journal {journal}" if journal is not None else "no journal (--no-journal): a rerun starts over"
    out.note(f"{len(items)} item{'s' if len(items) != 1 else ''} from {name}; {where}")
    outcomes: list[Outcome] = []
    async with make_client(args) as client:
        status = BatchStatus(len(items), out.stderr, enabled=out.progress_bars)
        seen = [BatchProgress(len(items), 0, 0, 0, 0, 0, 0.0)]

        def progress(p: BatchProgress) -> None:
            seen[0] = p
            status.update(p)

        batch = Batch(
            client,
            items,
            concurrency=args.concurrency,
            budget=args.budget,
            journal=journal,
            fail_fast=args.fail_fast,
            progress=progress,
            download_to=args.out,
        )
        with _Interrupt(batch, status, out) as interrupt:
            status.start()
            try:
                async for outcome in batch:
                    outcomes.append(outcome)
                    if interrupt.happened and outcome.status in ("cancelled", "skipped"):
                        continue  # what Ctrl-C stopped: the summary says it
                    if not out.json_mode:
                        status.line(outcome_line(outcome), out.stdout)
            finally:
                status.close()
    summary = batch.summary
    assert summary is not None  # set when the iteration ends
    seconds = time.perf_counter() - started
    order = {item.key: i for i, item in enumerate(items)}
    outcomes.sort(key=lambda o: order.get(o.key, len(order)))
    if interrupt.happened:
        return _interrupted(args, out, items, outcomes, summary, seen[0], journal, interrupt.submitting)
    _report(args, out, summary, outcomes, seconds)
    if summary.remaining:
        why = ""
        if summary.stopped_by_budget:
            why = f"; the budget ({format_credits(args.budget or 0)} credits) stopped the batch"
        hint = f"; run the same command to finish them: {resume_command(args)}" if journal is not None else ""
        raise CommandError(
            f"{len(summary.remaining)} of {summary.total} items not finished{why}{hint}", EXIT_FAILED
        )
    return 0


def _summary_json(summary: BatchSummary, seconds: float) -> dict[str, Any]:
    return {
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
    }


def _report(
    args: argparse.Namespace, out: Output, summary: BatchSummary, outcomes: list[Outcome], seconds: float
) -> None:
    credits = f"{format_credits(summary.credits)} credits estimated"
    if summary.unpriced:
        plural = "s" if summary.unpriced != 1 else ""
        credits += f" (not counting {summary.unpriced} item{plural} of models without a price)"
    text = (
        f"{summary.done} done, {summary.restored} from the journal, {summary.failed} failed, "
        f"{summary.skipped} skipped; {credits}; {seconds:.1f} s"
    )
    if summary.stopped_by_budget:
        text += f"; stopped by the budget of {format_credits(args.budget or 0)} credits"
    out.note(text)
    out.document(
        {"summary": _summary_json(summary, seconds), "outcomes": [outcome_json(o) for o in outcomes]}
    )


def _estimate(item: BatchItem) -> int:
    """An item's estimated nano-credits, as the batch counts them (0 without a price)."""
    n = item.n if isinstance(item, ImageOptions) else 1
    price = PRICES.per_call(item.model, item.route_mode)
    return 0 if price is None else nano_credits(price) * n


def _interrupted(
    args: argparse.Namespace,
    out: Output,
    items: list[BatchItem],
    outcomes: list[Outcome],
    summary: BatchSummary,
    progress: BatchProgress,
    journal: Path | None,
    submitting: int,
) -> int:
    """The summary of an interrupted batch (always shown: it says what was paid for), exit 130."""
    by_key = {item.key: item for item in items}
    running = [o for o in outcomes if o.status == "cancelled" and o.task_id is not None]
    unanswered = [o for o in outcomes if o.status == "cancelled" and o.task_id is None]
    not_sent = [o for o in outcomes if o.status == "skipped"]
    pending = sum(_estimate(by_key[o.key]) for o in running if o.key in by_key) / NANO
    finished = summary.done + summary.restored
    earlier = f" ({summary.restored} in an earlier run)" if summary.restored else ""
    lines = [
        f"interrupted: {progress.submitted} submitted in this run (paid for), {finished} finished{earlier}, "
        f"{summary.failed} failed, {len(not_sent)} not submitted",
        f"  credits: {format_credits(summary.credits)} for the finished; up to {format_credits(pending)} "
        f"more for the {len(running)} task{'s' if len(running) != 1 else ''} still running at the service",
    ]
    if unanswered:
        lines.append(
            f"  {len(unanswered)} submission{'s' if len(unanswered) != 1 else ''} sent but not answered "
            f"within {INTERRUPT_GRACE:g} s: the rerun repeats {'them' if len(unanswered) != 1 else 'it'} "
            "under the same Idempotency-Key (never a second charge where the service honours it)"
        )
    if journal is not None:
        lines.append(f"  journal: {journal}")
        lines.append(f"  resume with: {resume_command(args)}")
    else:
        lines.append("  no journal was kept (--no-journal): the tasks above run on, but a rerun starts over")
    for line in lines:
        print(line, file=out.stderr, flush=True)
    out.document(
        {
            "interrupted": {
                "submitted": progress.submitted,
                "finished": finished,
                "failed": summary.failed,
                "not_submitted": len(not_sent),
                "running": [{"key": o.key, "task_id": o.task_id} for o in running],
                "unanswered": [o.key for o in unanswered],
                "credits": summary.credits,
                "credits_running": pending,
                "journal": str(journal) if journal is not None else None,
                "resume": resume_command(args) if journal is not None else None,
                "submitting_at_interrupt": submitting,
            },
            "outcomes": [outcome_json(o) for o in outcomes],
        }
    )
    raise CommandError("interrupted", EXIT_INTERRUPTED)
