"""A 10,000-item ``client.batch`` against a service whose tasks finish at once: throughput, CPU, memory.

What is measured
    ``--items`` queued generations (default 10,000) run through one ``Batch(client, ...)``
    against a fake service in another process (``benchmarks/_servers.py batch``). The service
    accepts every submission (``"async": true``) as task ``t<n>`` and answers every poll of it
    "succeeded" with the image ``https://cdn.example/t<n>.png``. Nothing waits on the service, so
    what is left is the client's own cost per item: a submission (POST), a poll (GET), the task
    handle, the batch runner's bookkeeping and, in one variant, the journal. The client is

        AsyncMaxAPI(api_key="bench", base_url=<server>, max_concurrency=100,
                    max_polls_per_second=1e6, poll_policy=<see below>)
        Batch(client, [GenerateRequest(f"p{i}", key=f"k{i}") for i in range(N)],
                     concurrency=100, max_pending=2000)

    and every outcome is checked: ``ok``, its task id, and the image URL the service gave that
    task. The poll policy suits tasks that finish at once:
    ``PollPolicy(earliest=0, latest=0, spacing=0, initial=0.005, multiplier=1, max_delay=0.005,
    jitter=0)``, a poll 5 ms after the submission is accepted and every 5 ms after that
    (``--poll-delay``; 0 gives ``PollPolicy.instant()``). The default schedule waits about 3.4 s
    before the first poll, which is right for Gemini tasks (1-10 s) and would measure sleeping.

    For each run the report gives the batch's wall time and items/s; the client's CPU time
    (``time.process_time()``, user + system of all its threads) per item, and the CPU-bound rate
    N / CPU seconds (what one core can do when the service is instant); the peak RSS of the
    client process (``ru_maxrss``; the process's lifetime peak, imports and warm-up included)
    and its RSS just before the batch; polls per item and the service's CPU per item (from its
    ``GET /_stats``). The clock runs from ``Batch(client, ...)`` (which checks the items) to the
    last outcome; building the list of ``GenerateRequest`` is the caller's and is left out.

Variants (each run is a fresh child process, with a fresh server)
    no journal                  ``journal=None``
    journal                     ``journal=<temp dir>/batch.jsonl``: three lines per item (submit,
                                task, done), each flushed to the OS (no fsync); the file is checked
    no journal + tracemalloc    only with ``--tracemalloc`` (or named in ``--only``): "no journal"
                                under ``tracemalloc`` (started before the items are built): the
                                peak of traced Python memory during the batch, and what is still
                                held once it ends (the batch keeps every outcome). tracemalloc makes
                                the run about 3x slower (20 s more), so its times count for nothing.

    Before the measured batch each child runs a warm-up batch (``--warmup`` items, default 200)
    on the same client, so connections are open and one-time costs (lazy imports, cattrs'
    generated code) are paid, then collects garbage.

One core
    The client is single-threaded asyncio. On a machine with two or more CPUs the client child is
    pinned to one CPU and the server to another (``sched_setaffinity``; ``--no-pin`` turns it
    off), so "items/s" is what the client does on one core.

Targets (``target ...`` lines; the exit code is 0 whether or not they are met)
    at least 1,000 items/s (wall) and under 200 MB peak RSS, for "no journal" and "journal".

Run
    python benchmarks/batch.py                         # 10,000 items, 2 variants, ~15 s on 2 cores
    python benchmarks/batch.py --items 200             # a quick look
    python benchmarks/batch.py --rounds 3 --tracemalloc --json /tmp/batch.json

Exit codes: 0 measured (targets met or not), 1 a run failed (wrong or failed outcomes, a crash or
a timeout) or the server could not be started, 2 bad arguments, 130 interrupted. The server and
every child are stopped on the way out.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from _harness import (
    API_KEY,
    MAXAPI,
    MB,
    Report,
    Row,
    Summary,
    add_child_options,
    add_round_options,
    cell,
    check_args,
    child_main,
    choose,
    describe,
    fetch_json,
    fmt,
    judged,
    machine,
    machine_line,
    peak_rss_mb,
    round_robin,
    run_child,
    running_server,
    script_main,
    summarize,
)

if TYPE_CHECKING:
    from maxapi_async import AsyncMaxAPI, Batch, PollPolicy

URL_TEMPLATE: Final = "https://cdn.example/{}.png"
MAX_CONCURRENCY: Final = 100
MAX_POLLS_PER_SECOND: Final = 1e6
TARGET_ITEMS_PER_S: Final = 1000.0
TARGET_PEAK_MB: Final = 200.0


@dataclass(frozen=True)
class Variant:
    name: str
    journal: bool
    traced: bool

    @property
    def judged(self) -> bool:
        """Whether the targets apply (the traced run is slowed and fattened by tracemalloc)."""
        return not self.traced


VARIANTS: Final = (
    Variant("no journal", journal=False, traced=False),
    Variant("journal", journal=True, traced=False),
    Variant("no journal + tracemalloc", journal=False, traced=True),  # opt-in: --tracemalloc
)
VARIANTS_BY_NAME: Final = {v.name: v for v in VARIANTS}


def poll_policy_text(delay: float) -> str:
    if delay == 0:
        return "PollPolicy.instant()"
    return (
        f"PollPolicy(earliest=0, latest=0, spacing=0, initial={delay:g}, multiplier=1, "
        f"max_delay={delay:g}, jitter=0)"
    )


# --------------------------------------------------------------------------------------------
# Child process: one variant, one measured batch.
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one child reports; ``status`` is ok or error."""

    status: str
    items: int = 0
    ok_items: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_before_mb: float = 0.0
    peak_rss_mb: float = 0.0
    traced_peak_mb: float | None = None
    traced_retained_mb: float | None = None
    submissions: int = 0
    polls: int = 0
    never_polled: int = 0
    polled_more_than_once: int = 0
    max_polls_per_task: int = 0
    server_errors: int = 0
    server_cpu_s: float = 0.0
    journal_lines: int | None = None
    journal_bytes: int | None = None
    cpus: list[int] = field(default_factory=list)
    message: str = ""

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s

    @property
    def cpu_us_per_item(self) -> float:
        return self.cpu_s / self.items * 1e6

    @property
    def cpu_bound_items_per_s(self) -> float:
        return self.items / self.cpu_s

    @property
    def polls_per_item(self) -> float:
        return self.polls / self.items

    @property
    def server_cpu_us_per_item(self) -> float:
        return self.server_cpu_s / self.items * 1e6


VariantSummary = Summary[Variant, RunResult]


def _rss_mb() -> float:
    """The current resident set size, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


def server_stats(url: str, first_task: int = 1) -> dict[str, Any]:
    """The server's counters; per-task ones over tasks t<first_task> and later."""
    return fetch_json(f"{url}/_stats?from={first_task}", timeout=10)


def make_poll_policy(delay: float) -> PollPolicy:
    from maxapi_async import PollPolicy

    if delay == 0:
        return PollPolicy.instant()
    return PollPolicy(
        earliest=0.0, latest=0.0, spacing=0.0, initial=delay, multiplier=1.0, max_delay=delay, jitter=0.0
    )


async def _consume(batch: Batch, expected: int) -> tuple[int, str]:
    """Iterate the outcomes as they come; return (good ones, the first problem or '')."""
    good = 0
    problem = ""
    keys: set[str] = set()
    async for outcome in batch:
        keys.add(outcome.key)
        url = outcome.images[0].url if outcome.images else None
        if outcome.ok and outcome.task_id and url == URL_TEMPLATE.format(outcome.task_id):
            good += 1
        elif not problem:
            why = describe(outcome.error) if outcome.error else f"image url {url!r}"
            problem = f"item {outcome.key}: {outcome.status}, task {outcome.task_id}: {why}"
    if len(keys) != expected and not problem:
        problem = f"{len(keys)} distinct outcomes for {expected} items"
    summary = batch.summary
    if (summary is None or summary.done != expected) and not problem:
        problem = f"batch summary {summary!r} does not count {expected} done"
    return good, problem


def check_journal(path: Path, items: int) -> tuple[int, int, str]:
    """(lines, bytes, problem or ''): three well-formed events per item, in a sane order."""
    counts = {"submit": 0, "task": 0, "done": 0}
    lines = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            lines += 1
            event = json.loads(line).get("event")
            counts[event] = counts.get(event, 0) + 1
    problem = "" if counts == dict.fromkeys(("submit", "task", "done"), items) else f"journal events {counts}"
    return lines, path.stat().st_size, problem


async def _measure(variant: Variant, args: argparse.Namespace) -> RunResult:
    from maxapi_async import AsyncMaxAPI, Batch, GenerateRequest

    def warmup_batch(client: AsyncMaxAPI) -> Batch:
        items = [GenerateRequest(f"p{i}", key=f"w{i}") for i in range(args.warmup)]
        return Batch(client, items, concurrency=args.concurrency, max_pending=args.max_pending)

    result = RunResult("ok", items=args.items, cpus=sorted(os.sched_getaffinity(0)))
    async with AsyncMaxAPI(
        api_key=API_KEY,
        base_url=args.url,
        max_concurrency=MAX_CONCURRENCY,
        max_polls_per_second=MAX_POLLS_PER_SECOND,
        poll_policy=make_poll_policy(args.poll_delay),
    ) as client:
        if args.warmup:
            _, problem = await _consume(warmup_batch(client), args.warmup)
            if problem:
                return RunResult("error", message=f"warm-up: {problem}")
        before = server_stats(args.url)
        with tempfile.TemporaryDirectory(prefix="maxapi-batch-") as tmp:
            journal = Path(tmp) / "batch.jsonl" if variant.journal else None
            gc.collect()
            result.rss_before_mb = _rss_mb()
            if variant.traced:
                tracemalloc.start()
            items = [GenerateRequest(f"p{i}", key=f"k{i}") for i in range(args.items)]
            cpu_start = time.process_time()
            wall_start = time.perf_counter()
            batch = Batch(
                client, items, concurrency=args.concurrency, max_pending=args.max_pending, journal=journal
            )
            good, problem = await _consume(batch, args.items)
            result.wall_s = time.perf_counter() - wall_start
            result.cpu_s = time.process_time() - cpu_start
            if variant.traced:
                retained, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                result.traced_peak_mb, result.traced_retained_mb = peak / MB, retained / MB
            result.peak_rss_mb = peak_rss_mb()
            result.ok_items = good
            if journal is not None:
                result.journal_lines, result.journal_bytes, journal_problem = check_journal(
                    journal, args.items
                )
                problem = problem or journal_problem
            del batch, items
    after = server_stats(args.url, first_task=before["submissions"] + 1)
    result.submissions = after["submissions"] - before["submissions"]
    result.polls = after["polls"] - before["polls"]
    result.never_polled = after["never_polled"]
    result.polled_more_than_once = after["polled_more_than_once"]
    result.max_polls_per_task = after["max_polls_per_task"]
    result.server_errors = sum(after[k] - before[k] for k in ("not_found", "rejected"))
    result.server_cpu_s = after["cpu_s"] - before["cpu_s"]
    if not problem and result.submissions != args.items:
        problem = f"the server saw {result.submissions} submissions for {args.items} items"
    if not problem and result.server_errors:
        problem = f"the server answered {result.server_errors} requests with an error"
    if problem:
        result.status = "error"
        result.message = f"{args.items - good}/{args.items} not ok; first: {problem}"
    return result


def child(args: argparse.Namespace) -> int:
    return child_main(_measure(VARIANTS_BY_NAME[args.child], args))


# --------------------------------------------------------------------------------------------
# Parent process: a server and a child per run, then the report.
# --------------------------------------------------------------------------------------------


def pick_cpus(pin: bool) -> tuple[int | None, int | None]:
    """(client CPU, server CPU), or (None, None) when not pinning or with a single CPU."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(available) < 2:
        return None, None
    return available[0], available[1]


def run_once(variant: Variant, args: argparse.Namespace) -> RunResult:
    """One child, pinned to one CPU, against a fresh server pinned to another."""
    client_cpu, server_cpu = pick_cpus(args.pin)
    argv = ["--child", variant.name, "--items", str(args.items), "--warmup", str(args.warmup)]
    argv += ["--concurrency", str(args.concurrency), "--max-pending", str(args.max_pending)]
    argv += ["--poll-delay", repr(args.poll_delay)]
    with running_server("batch", cpu=server_cpu) as url:
        result = run_child(Path(__file__), [*argv, "--url", url], timeout=args.child_timeout, cpu=client_cpu)
    return RunResult(**result)


_MEDIAN_OF: Final = (
    "wall_s",
    "items_per_s",
    "cpu_us_per_item",
    "cpu_bound_items_per_s",
    "rss_before_mb",
    "peak_rss_mb",
    "traced_peak_mb",
    "traced_retained_mb",
    "polls_per_item",
    "server_cpu_us_per_item",
)


_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("wall s", "wall_s", ".2f"),
    ("items/s", "items_per_s", ".0f"),
    ("CPU µs/item", "cpu_us_per_item", ".0f"),
    ("CPU-bound items/s", "cpu_bound_items_per_s", ".0f"),
    ("RSS before MB", "rss_before_mb", ".1f"),
    ("peak RSS MB", "peak_rss_mb", ".1f"),
    ("tracemalloc peak MB", "traced_peak_mb", ".1f"),
    ("polls/item", "polls_per_item", ".2f"),
    ("server CPU µs/item", "server_cpu_us_per_item", ".0f"),
)


def render_table(summaries: Sequence[VariantSummary], items: int) -> str:
    traced = any(s.variant.traced for s in summaries)
    columns = [c for c in _COLUMNS if traced or c[1] != "traced_peak_mb"]
    head = "| variant | items | " + " | ".join(title for title, _, _ in columns) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(columns)]
    for s in summaries:
        if not s.ok_runs:
            cells = [cell(s.problem)] + ["n/a"] * (len(columns) - 1)
        else:
            cells = [fmt(s.get(key), spec) for _, key, spec in columns]
            if s.variant.traced:  # tracemalloc's slowdown: shown, not to be read as throughput
                cells[:4] = [f"({c})" for c in cells[:4]]
        lines.append(f"| {s.variant.name} | {items} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rows(summaries: Sequence[VariantSummary]) -> list[Row]:
    """``run.py``'s rows (and this script's ``target`` lines): the targets per judged variant."""
    out: list[Row] = []
    for s in summaries:
        if not s.variant.judged:
            continue
        rate, cpu_bound, peak = s.get("items_per_s"), s.get("cpu_bound_items_per_s"), s.get("peak_rss_mb")
        out.append(
            judged(
                "batch",
                f"items/s on one core [{s.variant.name}]",
                {MAXAPI: rate},
                spec=".0f",
                target=f">= {TARGET_ITEMS_PER_S:,.0f}",
                ok=lambda r: r >= TARGET_ITEMS_PER_S,
                detail=f"{rate:.0f} items/s wall, {cpu_bound:.0f} CPU-bound" if rate and cpu_bound else "",
                missing=s.problem,
            )
        )
        out.append(
            judged(
                "batch",
                f"peak RSS MB [{s.variant.name}]",
                {MAXAPI: peak},
                spec=".1f",
                target=f"< {TARGET_PEAK_MB:.0f}",
                ok=lambda p: p < TARGET_PEAK_MB,
                missing=s.problem,
            )
        )
        out.append(
            Row("batch", f"client CPU µs per item [{s.variant.name}]", {MAXAPI: s.get("cpu_us_per_item")})
        )
    return out


def collect(args: argparse.Namespace, *, log: bool = True) -> list[VariantSummary]:
    """Every variant once per round, round robin, each with a fresh server; summarize."""
    runs = round_robin(
        args.variants,
        args.rounds,
        lambda variant: run_once(variant, args),
        lambda r: f"{r.items_per_s:.0f} items/s, {r.cpu_us_per_item:.0f} µs CPU/item, {r.peak_rss_mb:.1f} MB",
        log=log,
    )
    return [summarize(v, runs[v.name], _MEDIAN_OF) for v in args.variants]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="client.batch throughput, CPU and memory against an instant queued-task service.",
        epilog="variants: " + ", ".join(v.name for v in VARIANTS),
    )
    parser.add_argument("--items", type=int, default=10_000, help="items in the measured batch (10000)")
    add_round_options(
        parser,
        rounds=1,
        warmup=200,
        warmup_help="items in the warm-up batch first",
        example="no journal,journal",
    )
    parser.add_argument("--concurrency", type=int, default=100, help="batch(concurrency=...) (100)")
    parser.add_argument("--max-pending", type=int, default=2000, help="batch(max_pending=...) (2000)")
    parser.add_argument(
        "--poll-delay", type=float, default=0.005, help="seconds before each poll; 0: instant (0.005)"
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help='add the "no journal + tracemalloc" run (~20 s more)'
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin client and server to one CPU each"
    )
    add_child_options(parser, list(VARIANTS_BY_NAME), timeout=300.0)
    args = parser.parse_args(argv)
    check_args(parser, args, ("items", "rounds", "concurrency", "max_pending"))
    if not 0 <= args.poll_delay < 60:
        parser.error("--poll-delay must be in [0, 60) seconds")
    default = [v.name for v in VARIANTS if not v.traced or args.tracemalloc]
    args.variants = [
        VARIANTS_BY_NAME[name] for name in choose(parser, args.only, list(VARIANTS_BY_NAME), default)
    ]
    return args


def json_report(
    args: argparse.Namespace, summaries: Sequence[VariantSummary], table: Sequence[Row]
) -> dict[str, Any]:
    client_cpu, server_cpu = pick_cpus(args.pin)
    derived = [name for name in _MEDIAN_OF if not any(f.name == name for f in fields(RunResult))]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {**machine(), "client_cpu": client_cpu, "server_cpu": server_cpu},
        "settings": {
            "items": args.items,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "max_pending": args.max_pending,
            "max_concurrency": MAX_CONCURRENCY,
            "max_polls_per_second": MAX_POLLS_PER_SECOND,
            "poll_policy": poll_policy_text(args.poll_delay),
        },
        "targets": [row.as_json() for row in table if row.verdict],
        "variants": [
            {
                "name": s.variant.name,
                "medians": s.medians,
                "problem": s.problem or None,
                "runs": [{**asdict(run), **{k: _derived(run, k) for k in derived}} for run in s.runs],
            }
            for s in summaries
        ],
    }


def _derived(run: RunResult, name: str) -> float | None:
    if run.status != "ok":
        return None
    value: float = getattr(run, name)
    return value


def report(args: argparse.Namespace, summaries: Sequence[VariantSummary]) -> Report:
    notes = []
    for s in summaries:
        for round_no, run in enumerate(s.runs, 1):
            name = f"{s.variant.name}, round {round_no}" if len(s.runs) > 1 else s.variant.name
            if run.status != "ok":
                notes.append(f"- {name}: {run.status}: {run.message}")
                continue
            extra = (
                f", journal {run.journal_lines} lines / {run.journal_bytes / MB:.1f} MB"
                if run.journal_bytes is not None
                else ""
            )
            traced = (
                f", tracemalloc peak {run.traced_peak_mb:.1f} MB, {run.traced_retained_mb:.1f} MB "
                f"held after the batch ({run.traced_retained_mb * MB / run.items:,.0f} B/item)"
                if run.traced_peak_mb is not None and run.traced_retained_mb is not None
                else ""
            )
            notes.append(
                f"- {name}: {run.ok_items}/{run.items} ok, {run.submissions} submissions, "
                f"{run.polls} polls (max {run.max_polls_per_task}/task, {run.never_polled} never polled), "
                f"client CPU {run.cpu_s:.2f} s{extra}{traced}"
            )
    table = rows(summaries)
    problems = [f"{s.variant.name}: {s.problem}" for s in summaries if s.problem]
    text = render_table(summaries, args.items) + "\n\n" + "\n".join(notes)
    return Report(text, table, json_report(args, summaries, table), problems)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    client_cpu, server_cpu = pick_cpus(args.pin)
    pinning = (
        f"client pinned to CPU {client_cpu}, server to CPU {server_cpu}"
        if client_cpu is not None
        else "not pinned"
    )
    header = (
        f"# client.batch: {args.items} items, concurrency {args.concurrency}, max_pending "
        f"{args.max_pending}, warm-up {args.warmup}, {args.rounds} round(s)\n"
        f"# AsyncMaxAPI(max_concurrency={MAX_CONCURRENCY}, max_polls_per_second={MAX_POLLS_PER_SECOND:g}, "
        f"poll_policy={poll_policy_text(args.poll_delay)})\n"
        f"{machine_line('batch')}; {pinning}"
    )
    return script_main(header, lambda: report(args, collect(args)), args.json)


if __name__ == "__main__":
    sys.exit(main())
