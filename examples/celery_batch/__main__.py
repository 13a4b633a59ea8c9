"""Enqueue a prompts file as a batch, and print its progress from the store.

    python -m celery_batch enqueue prompts.txt --batch cubes --out images/ [--budget 8.00]
    python -m celery_batch progress --batch cubes --total 300

``prompts.txt`` holds one prompt per line (blank lines and ``#`` comments skipped); an
item's key is its line number, ``0007``, and names its image. ``enqueue`` sends one task
per prompt, then prints the batch's counts as they change, until every item is done,
failed or skipped by the budget (``--no-wait``: just enqueue). Enqueueing a batch again
is safe: what is done is not redone, what runs is not sent twice. The exit code is 0
when every item is done, 1 when some failed or were skipped, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from maxapi_async import RedisStore, StoreProgress

from .app import SETTINGS


def read_prompts(path: Path) -> list[dict[str, str]]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        prompt = line.strip()
        if prompt and not prompt.startswith("#"):
            items.append({"prompt": prompt, "key": f"{number:04}"})
    return items


def describe(p: StoreProgress, total: int) -> str:
    return (
        f"{p.done}/{total} done, {p.failed} failed, {p.skipped} skipped by budget "
        f"({p.submitted} submitted, {p.resumed} taken over from a stopped worker, "
        f"{p.resubmitted} sent again under their key, {p.spent:.3f} credits)"
    )


async def watch(batch: str, total: int, every: float, timeout: float | None) -> StoreProgress:
    """Print the batch's counts whenever they change, until every item has an outcome."""
    store = RedisStore(SETTINGS.redis, batch)
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    try:
        while True:
            progress = await store.progress()
            line = describe(progress, total)
            if line != last:
                print(line, flush=True)
                last = line
            if progress.done + progress.failed + progress.skipped >= total:
                return progress
            if deadline is not None and time.monotonic() > deadline:
                print(f"stopped watching after {timeout:g} s; the workers go on", flush=True)
                return progress
            await asyncio.sleep(every)
    finally:
        await store.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celery_batch", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    enqueue = commands.add_parser("enqueue", help="send one task per prompt, then watch")
    enqueue.add_argument("prompts", type=Path)
    enqueue.add_argument("--out", type=Path, required=True, help="where the workers save the images")
    enqueue.add_argument("--budget", type=float, help="credits for the whole batch, over every worker")
    enqueue.add_argument("--no-wait", action="store_true", help="enqueue and exit")
    progress = commands.add_parser("progress", help="watch a batch already enqueued")
    progress.add_argument("--total", type=int, required=True, help="how many items the batch has")
    for command in (enqueue, progress):
        command.add_argument("--batch", required=True, help="the batch's name (its state in Redis)")
        command.add_argument("--every", type=float, default=0.5, help="seconds between looks (0.5)")
        command.add_argument("--timeout", type=float, help="stop watching after this many seconds")
    args = parser.parse_args(argv)

    if args.command == "enqueue":
        from .tasks import generate_one

        items = read_prompts(args.prompts)
        out = str(args.out.resolve())
        for item in items:
            generate_one.delay(args.batch, item, args.budget, out)
        print(f"enqueued {len(items)} items of batch {args.batch!r}", flush=True)
        if args.no_wait:
            return 0
        total = len(items)
    else:
        total = args.total
    final = asyncio.run(watch(args.batch, total, args.every, args.timeout))
    return 0 if final.done >= total else 1


if __name__ == "__main__":
    sys.exit(main())
