"""Polling many queued tasks: polls per task, lag, poll rate, client CPU and memory per handle.

What is measured
    ``--tasks`` queued generations (default 5,000) on a fake service in another process
    (``benchmarks/_servers.py polling``) whose tasks finish ``uniform(--min, --max)`` seconds
    (default 1 to 10) after they arrive, drawn from a seeded generator (``--seed``). One
    ``AsyncMaxAPI(max_concurrency=100, max_polls_per_second=--cap)`` submits them all with
    ``images.generate(..., wait=False)`` (100 submissions at a time), then awaits every handle
    at once (``asyncio.gather``). The report gives

    * polls per task (server count),
    * the lag between a task finishing (server clock) and its handle resolving (the client's
      ``time.time()`` when ``await handle`` returns): mean, median, p99, max,
    * the highest number of polls the server saw in any 1-second window, against ``--cap``,
    * the client process's CPU time (``time.process_time()``) for submitting and waiting,
    * the memory per pending, awaited handle (tracemalloc, in a separate run: see below),
    * the peak RSS of each client process.

    In the same run, on the same seed, a baseline "fixed 1 s poller" (raw aiohttp: submit, then
    sleep 1 s and GET until the task succeeded, started right after each submission) gives the
    polls per task the targets compare with. That loop sleeps 1 s *after* each answer, so under
    load (5,000 polls due in the same second) its real period is 1 s plus the poll's latency and
    it polls less often than its name says; the report therefore adds the drift-free schedule
    (polls at submission + 1 s, 2 s, ...) computed from the server's own submission and finish
    times, and checks the polls-per-task target against both.

Memory per pending handle
    A third child, against a service whose tasks never finish during the run, submits 100 tasks
    to open the connections, then starts tracemalloc, submits ``--tasks`` tasks, awaits them all
    (``gather``), lets every poll loop start and reach its first sleep, and divides the traced
    memory still held by the number of handles. That covers the handle, its TaskRef, TaskMachine
    and last snapshot, the ``finish`` closure, the poll loop's task and coroutines, the timer of
    its sleep, and the awaiting coroutine and its ``gather`` task. The figure without awaiting
    is reported too.

Poll rate
    The server logs every poll's arrival (``time.time()`` when it reads the request); the
    report gives the most polls in any sliding 1-second window ``[t, t + 1)``. The client's own
    send times (an ``on_request`` hook: completion time minus the request's elapsed time) give
    the same figure on the client's side, which the server's scheduling cannot blur.

Targets (``target ...`` lines; the exit code is 0 whether or not they are met)
    mean lag <= 1 s; polls per task <= 0.5 x the fixed 1 s poller's (measured loop, and the
    computed schedule); highest 1-second poll count at the server <= cap; < 10 KB
    (10,240 bytes) per pending handle.

Run
    python benchmarks/polling.py                            # 5,000 tasks, ~30 s on 2 cores
    python benchmarks/polling.py --tasks 50 --min 0.1 --max 0.5 --cap 500
    python benchmarks/polling.py --cap 1000 --skip-baseline --json /tmp/polling.json

Exit codes: 0 measured (targets met or not), 1 a server could not be started or a run failed,
2 bad arguments, 130 interrupted. Every server and child process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import importlib
import json
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from _harness import (
    API_KEY,
    BASELINE,
    MAXAPI,
    MODEL,
    PROMPT,
    Report,
    Row,
    add_child_options,
    check_args,
    child_main,
    describe,
    fetch_json,
    fmt,
    judged,
    machine,
    machine_line,
    peak_rss_mb,
    run_child,
    running_server,
    script_main,
)

EXPECTED_URL: Final = "https://cdn.example/x.png"
SUBMIT_CONCURRENCY: Final = 100
FIXED_PERIOD_S: Final = 1.0
HOLD_S: Final = 3600.0  # the memory run's tasks finish long after it ends

TARGET_MEAN_LAG_S: Final = 1.0
TARGET_POLL_RATIO: Final = 0.5
TARGET_BYTES_PER_HANDLE: Final = 10 * 1024

FIXED: Final = "fixed 1 s poller"
IDEAL: Final = "fixed 1 s schedule (computed)"
MEMORY: Final = "memory"

T = TypeVar("T")


class WrongAnswer(Exception):
    """A call returned, but not what the service sent."""


# --------------------------------------------------------------------------------------------
# Child processes: one measurement each, reported as one JSON line on stdout.
# --------------------------------------------------------------------------------------------


@dataclass
class Submitted:
    """What a bounded batch of submissions produced."""

    values: list[Any] = field(default_factory=list)
    failures: int = 0
    first_failure: str = ""


async def _submit_all(make: Callable[[], Awaitable[T]], count: int, concurrency: int) -> Submitted:
    """Call ``make`` ``count`` times, at most ``concurrency`` at once; results in completion order."""
    out = Submitted()
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                out.values.append(await make())
            except Exception as exc:
                out.failures += 1
                if not out.first_failure:
                    out.first_failure = describe(exc)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return out


# An outcome is (task id, client time.time() when it resolved or None, error or None).
Outcome = tuple[str, float | None, str | None]


def _import_client() -> Any:
    # By name and as Any, like overhead.py: the benchmark runs (and type-checks) whatever state
    # the library's API is in.
    return importlib.import_module("maxapi_async").AsyncMaxAPI


def _seed_client_jitter(seed: int) -> None:
    # The poll policy draws its jitter from a module-level generator; seed it so that a run is
    # repeatable as far as scheduling allows. Best effort: the name is private.
    rng = getattr(importlib.import_module("maxapi_async._protocol.policy"), "_RNG", None)
    if rng is not None:
        rng.seed(seed)


async def _resolve(handle: Any) -> Outcome:
    try:
        result = await handle
        resolved = time.time()
        url = result.images[0].url
        if url != EXPECTED_URL:
            raise WrongAnswer(f"expected image url {EXPECTED_URL!r}, got {url!r}")
    except Exception as exc:
        return str(handle.id), None, describe(exc)
    return str(handle.id), resolved, None


def _report(submitted: Submitted, outcomes: Sequence[Outcome], **extra: Any) -> dict[str, Any]:
    failures = [error for _, _, error in outcomes if error is not None]
    first = submitted.first_failure or (failures[0] if failures else "")
    return {
        "status": "ok" if not submitted.failures and not failures else "error",
        "message": f"{submitted.failures} submission(s) and {len(failures)} wait(s) failed: {first}"
        if first
        else "",
        "resolved": {task_id: at for task_id, at, error in outcomes if error is None},
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }


async def _run_maxapi(url: str, tasks: int, cap: float, seed: int) -> dict[str, Any]:
    module = importlib.import_module("maxapi_async")
    _seed_client_jitter(seed)
    sent: list[float] = []

    def on_request(event: Any) -> None:
        # When the client let a poll go (after the poll budget, before the connection pool):
        # the client-side twin of the server's arrival times.
        if event.method == "GET":
            sent.append(time.time() - event.elapsed)

    async with module.AsyncMaxAPI(
        api_key=API_KEY,
        base_url=url,
        max_concurrency=SUBMIT_CONCURRENCY,
        max_polls_per_second=cap,
        hooks=module.Hooks(on_request=on_request),
    ) as client:
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        submitted = await _submit_all(
            lambda: client.images.generate(PROMPT, wait=False), tasks, SUBMIT_CONCURRENCY
        )
        submit_cpu, submit_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        outcomes = await asyncio.gather(*(_resolve(handle) for handle in submitted.values))
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    return _report(
        submitted,
        outcomes,
        cpu_s=cpu_s,
        wall_s=wall_s,
        submit_cpu_s=submit_cpu,
        submit_wall_s=submit_wall,
        poll_sent_times=sent,
    )


async def _run_fixed(url: str, tasks: int) -> dict[str, Any]:
    import aiohttp

    endpoint = f"{url}/v1/images/generations"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    body = json.dumps({"model": MODEL, "prompt": PROMPT, "async": True}).encode()
    pollers: list[asyncio.Future[Outcome]] = []
    connector = aiohttp.TCPConnector(limit=SUBMIT_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def poll_until_done(task_id: str) -> Outcome:
            poll_url = f"{endpoint}/{task_id}"
            try:
                while True:
                    await asyncio.sleep(FIXED_PERIOD_S)
                    async with session.get(poll_url, headers=headers) as resp:
                        answer = await resp.read()
                    if resp.status != 200:
                        raise WrongAnswer(f"HTTP {resp.status}: {answer[:200]!r}")
                    task = json.loads(answer)
                    if task["status"] == "succeeded":
                        resolved = time.time()
                        if task["data"][0]["url"] != EXPECTED_URL:
                            raise WrongAnswer(f"unexpected answer {task!r}")
                        return task_id, resolved, None
            except Exception as exc:
                return task_id, None, describe(exc)

        async def submit() -> str:
            async with session.post(endpoint, data=body, headers=headers) as resp:
                answer = await resp.read()
            if resp.status != 200:
                raise WrongAnswer(f"HTTP {resp.status}: {answer[:200]!r}")
            task_id = str(json.loads(answer)["id"])
            pollers.append(asyncio.ensure_future(poll_until_done(task_id)))
            return task_id

        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        submitted = await _submit_all(submit, tasks, SUBMIT_CONCURRENCY)
        submit_cpu, submit_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        outcomes = await asyncio.gather(*pollers)
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    return _report(
        submitted, outcomes, cpu_s=cpu_s, wall_s=wall_s, submit_cpu_s=submit_cpu, submit_wall_s=submit_wall
    )


async def _run_memory(url: str, tasks: int, cap: float) -> dict[str, Any]:
    async_max_api = _import_client()
    async with async_max_api(
        api_key=API_KEY, base_url=url, max_concurrency=SUBMIT_CONCURRENCY, max_polls_per_second=cap
    ) as client:

        async def submit() -> Any:
            return await client.images.generate(PROMPT, wait=False)

        # Open the pool's connections and warm every lazy cache before counting.
        warm = await _submit_all(submit, SUBMIT_CONCURRENCY, SUBMIT_CONCURRENCY)
        if warm.failures:
            return {"status": "error", "message": f"warm-up: {warm.first_failure}"}
        del warm
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            submitted = await _submit_all(submit, tasks, SUBMIT_CONCURRENCY)
            handles = submitted.values
            if submitted.failures:
                return {"status": "error", "message": f"submissions: {submitted.first_failure}"}
            gc.collect()
            created = tracemalloc.get_traced_memory()[0] - base

            waiting = 0
            all_waiting = asyncio.Event()

            async def wait_one(handle: Any) -> None:
                nonlocal waiting
                waiting += 1
                if waiting == len(handles):
                    all_waiting.set()
                await handle

            waiters = asyncio.ensure_future(asyncio.gather(*(wait_one(handle) for handle in handles)))
            await all_waiting.wait()
            for _ in range(3):  # the poll loops started by the waiters reach their first sleep
                await asyncio.sleep(0)
            gc.collect()
            awaited = tracemalloc.get_traced_memory()[0] - base
            snapshot = tracemalloc.take_snapshot()
            pending = sum(1 for handle in handles if not handle.done())
        finally:
            tracemalloc.stop()
        waiters.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiters
    top = [
        [str(stat.traceback[0].filename), stat.size / len(handles)]
        for stat in snapshot.statistics("filename")[:8]
    ]
    return {
        "status": "ok",
        "message": "",
        "handles": len(handles),
        "pending": pending,
        "created_bytes_per_handle": created / len(handles),
        "awaited_bytes_per_handle": awaited / len(handles),
        "top_files": top,
        "peak_rss_mb": peak_rss_mb(),
    }


def child(args: argparse.Namespace) -> int:
    if args.child == MAXAPI:
        return child_main(_run_maxapi(args.url, args.tasks, args.cap, args.seed))
    if args.child == FIXED:
        return child_main(_run_fixed(args.url, args.tasks))
    return child_main(_run_memory(args.url, args.tasks, args.cap))


# --------------------------------------------------------------------------------------------
# Parent process: a fresh server per run, the child, the server's stats, the report.
# --------------------------------------------------------------------------------------------


def measure(kind: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one child against a fresh server; return (child result, server stats)."""
    low, high = (HOLD_S, HOLD_S) if kind == MEMORY else (args.min, args.max)
    server_options = ["--seed", str(args.seed), "--min", repr(low), "--max", repr(high)]
    argv = ["--child", kind, "--tasks", str(args.tasks), "--cap", repr(args.cap), "--seed", str(args.seed)]
    with running_server("polling", *server_options) as url:
        result = run_child(Path(__file__), [*argv, "--url", url], timeout=args.child_timeout)
        stats = fetch_json(f"{url}/_stats")
    return result, stats


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + window)`` (``times`` sorted)."""
    best = 0
    start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class Figures:
    """One polling run's numbers (None where not measured)."""

    name: str
    status: str = "ok"
    message: str = ""
    tasks: int = 0
    resolved: int = 0
    polls: int = 0
    polls_per_task: float | None = None
    lag_mean_s: float | None = None
    lag_median_s: float | None = None
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    server_lag_mean_s: float | None = None
    max_polls_1s: int | None = None
    max_polls_1s_client: int | None = None
    cpu_s: float | None = None
    cpu_ms_per_task: float | None = None
    cpu_us_per_request: float | None = None
    submit_wall_s: float | None = None
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    polls_per_second: list[int] = field(default_factory=list)


def figures(name: str, result: dict[str, Any], stats: dict[str, Any]) -> Figures:
    fig = Figures(name, status=str(result.get("status", "error")), message=str(result.get("message", "")))
    tasks: dict[str, list[Any]] = stats.get("tasks", {})
    resolved: dict[str, float] = result.get("resolved", {})
    fig.tasks = len(tasks)
    fig.resolved = len(resolved)
    poll_times = sorted(stats.get("poll_times", []))
    fig.polls = len(poll_times)
    if tasks:
        fig.polls_per_task = statistics.fmean(task[1] for task in tasks.values())
    lags = sorted(at - tasks[task_id][0] for task_id, at in resolved.items() if task_id in tasks)
    if lags:
        fig.lag_mean_s = statistics.fmean(lags)
        fig.lag_median_s = statistics.median(lags)
        fig.lag_p99_s = percentile(lags, 99)
        fig.lag_max_s = lags[-1]
    seen = [task[2] - task[0] for task in tasks.values() if task[2] is not None]
    if seen:
        fig.server_lag_mean_s = statistics.fmean(seen)
    if poll_times:
        fig.max_polls_1s = max_in_window(poll_times)
        first = poll_times[0]
        fig.polls_per_second = [0] * (int(poll_times[-1] - first) + 1)
        for at in poll_times:
            fig.polls_per_second[int(at - first)] += 1
    if result.get("poll_sent_times"):
        fig.max_polls_1s_client = max_in_window(sorted(result["poll_sent_times"]))
    if "cpu_s" in result:
        fig.cpu_s = float(result["cpu_s"])
        fig.wall_s = float(result["wall_s"])
        fig.submit_wall_s = float(result["submit_wall_s"])
        if fig.tasks:
            fig.cpu_ms_per_task = fig.cpu_s / fig.tasks * 1e3
            fig.cpu_us_per_request = fig.cpu_s / (fig.tasks + fig.polls) * 1e6
    if "peak_rss_mb" in result:
        fig.peak_rss_mb = float(result["peak_rss_mb"])
    return fig


def ideal_fixed(stats: dict[str, Any], period: float = FIXED_PERIOD_S) -> Figures:
    """A drift-free poller (polls at submission + k * period), computed from the server's tasks.

    The measured loop sleeps ``period`` *after* each answer, so under load its real period
    is ``period`` plus the poll's latency; this is the schedule its name promises.
    """
    fig = Figures(IDEAL)
    durations = [task[0] - task[3] for task in stats.get("tasks", {}).values()]
    if not durations:
        return fig
    polls = [max(1, math.ceil(d / period)) for d in durations]
    lags = sorted(n * period - d for n, d in zip(polls, durations, strict=True))
    fig.tasks = fig.resolved = len(durations)
    fig.polls = sum(polls)
    fig.polls_per_task = statistics.fmean(polls)
    fig.lag_mean_s = fig.server_lag_mean_s = statistics.fmean(lags)
    fig.lag_median_s = statistics.median(lags)
    fig.lag_p99_s = percentile(lags, 99)
    fig.lag_max_s = lags[-1]
    return fig


def render_table(runs: Sequence[Figures], memory: dict[str, Any] | None, cap: float) -> str:
    rows: list[tuple[str, Callable[[Figures], str]]] = [
        ("tasks resolved / submitted", lambda f: f"{f.resolved} / {f.tasks}"),
        ("polls per task (mean)", lambda f: fmt(f.polls_per_task, ".2f")),
        ("lag mean, s", lambda f: fmt(f.lag_mean_s, ".3f")),
        ("lag median, s", lambda f: fmt(f.lag_median_s, ".3f")),
        ("lag p99, s", lambda f: fmt(f.lag_p99_s, ".3f")),
        ("lag max, s", lambda f: fmt(f.lag_max_s, ".3f")),
        ("server-side lag mean (first poll seeing it), s", lambda f: fmt(f.server_lag_mean_s, ".3f")),
        (f"highest polls in any 1 s window at the server (cap {cap:g})", lambda f: fmt(f.max_polls_1s, "d")),
        ("highest polls in any 1 s window, client send times", lambda f: fmt(f.max_polls_1s_client, "d")),
        ("client CPU, s (submit + wait)", lambda f: fmt(f.cpu_s, ".2f")),
        ("client CPU per task, ms", lambda f: fmt(f.cpu_ms_per_task, ".3f")),
        ("client CPU per request, µs", lambda f: fmt(f.cpu_us_per_request, ".0f")),
        ("submission wall time, s", lambda f: fmt(f.submit_wall_s, ".2f")),
        ("wall time, s", lambda f: fmt(f.wall_s, ".2f")),
        ("client peak RSS, MB", lambda f: fmt(f.peak_rss_mb, ".1f")),
    ]
    names = [f.name + (" (uncapped)" if f.name == FIXED else "") for f in runs]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(runs)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(f) for f in runs) + " |")
    if memory is not None:
        for label, key in (
            ("memory per pending handle, awaited, bytes", "awaited_bytes_per_handle"),
            ("memory per handle, created only, bytes", "created_bytes_per_handle"),
        ):
            cells = [
                fmt(memory.get(key), ",.0f") if f.name == MAXAPI and memory.get("status") == "ok" else "n/a"
                for f in runs
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class PollingResult:
    """A polling run: the fixed poller, the computed schedule and maxapi_async; the memory run."""

    runs: dict[str, Figures]
    memory: dict[str, Any] | None

    @property
    def ordered(self) -> list[Figures]:
        return [self.runs[kind] for kind in (FIXED, IDEAL, MAXAPI) if kind in self.runs]


def collect(args: argparse.Namespace, *, log: bool = True, parallel: bool = False) -> PollingResult:
    """maxapi_async, then the fixed 1 s poller (unless --skip-baseline), then the memory run.

    ``parallel`` runs the three at once (each has its own server): only for a smoke run, as
    they then share the CPUs.
    """
    kinds = [MAXAPI, *([] if args.skip_baseline else [FIXED]), MEMORY]

    def one(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if log:
            print(f"# running {kind} ...", file=sys.stderr, flush=True)
        return measure(kind, args)

    if parallel:
        with concurrent.futures.ThreadPoolExecutor(len(kinds)) as pool:
            measured = list(pool.map(one, kinds))
    else:
        measured = [one(kind) for kind in kinds]
    out = PollingResult({}, None)
    for kind, (result, stats) in zip(kinds, measured, strict=True):
        if kind == MEMORY:
            out.memory = {**result, "polls_seen": len(stats.get("poll_times", []))}
            shown = (
                f"{result['awaited_bytes_per_handle']:,.0f} bytes per awaited handle"
                if result.get("status") == "ok"
                else f"{result.get('status')}: {result.get('message')}"
            )
        else:
            out.runs[kind] = fig = figures(kind, result, stats)
            shown = f"{fig.status} {fig.message}".strip()
            if kind == MAXAPI:
                out.runs[IDEAL] = ideal_fixed(stats)
        if log:
            print(f"# {kind}: {shown}", file=sys.stderr, flush=True)
    return out


def rows(result: PollingResult, cap: float) -> list[Row]:
    """``run.py``'s rows (and this script's ``target`` lines); baseline: the fixed 1 s poller."""
    ours = result.runs.get(MAXAPI)
    usable = ours if ours is not None and ours.status == "ok" else None
    fixed = result.runs.get(FIXED)
    missing = "maxapi_async run failed" + (f": {ours.message}" if ours is not None else "")

    def pair(get: Callable[[Figures], float | None]) -> dict[str, float | None]:
        return {
            MAXAPI: get(usable) if usable else None,
            BASELINE: get(fixed) if fixed is not None and fixed.status == "ok" else None,
        }

    out = [
        judged(
            "polling",
            "mean lag (s)",
            pair(lambda f: f.lag_mean_s),
            spec=".3f",
            target=f"<= {TARGET_MEAN_LAG_S:g}",
            ok=lambda lag: lag <= TARGET_MEAN_LAG_S,
            missing=missing,
        ),
        Row("polling", "polls per task", pair(lambda f: f.polls_per_task), ".2f"),
    ]
    for baseline in (fixed, result.runs.get(IDEAL)):
        if baseline is None or not baseline.tasks:
            continue
        name = f"polls per task / {baseline.name}"
        ratio, detail = None, ""
        if usable and usable.polls_per_task is not None and baseline.polls_per_task:
            ratio = usable.polls_per_task / baseline.polls_per_task
            detail = f"{usable.polls_per_task:.2f} vs {baseline.polls_per_task:.2f} = {ratio:.2f}x"
        baseline_failed = baseline.status != "ok" or not baseline.polls_per_task
        out.append(
            judged(
                "polling",
                name,
                {MAXAPI: None if baseline_failed else ratio},
                spec=".2fx",
                target=f"<= {TARGET_POLL_RATIO:g}x",
                ok=lambda r: r <= TARGET_POLL_RATIO,
                detail=detail,
                missing=f"baseline failed: {baseline.message}" if baseline_failed else missing,
            )
        )
    out.append(
        judged(
            "polling",
            "most polls in any 1 s window, at the server",
            pair(lambda f: f.max_polls_1s),
            spec="d",
            target=f"<= {cap:g} (the cap)",
            ok=lambda n: n <= cap,
            missing=missing,
        )
    )
    memory = result.memory or {}
    per_handle = float(memory["awaited_bytes_per_handle"]) if memory.get("status") == "ok" else None
    out.append(
        judged(
            "polling",
            "memory per pending handle (bytes)",
            {MAXAPI: per_handle},
            spec=",.0f",
            target=f"< {TARGET_BYTES_PER_HANDLE:,}",
            ok=lambda b: b < TARGET_BYTES_PER_HANDLE,
            missing=f"memory run failed: {memory.get('message', '')}",
        )
    )
    out.append(Row("polling", "client CPU per task (ms)", pair(lambda f: f.cpu_ms_per_task), ".3f"))
    return out


def report(args: argparse.Namespace, result: PollingResult) -> Report:
    ordered, memory = result.ordered, result.memory
    problems = [f"{fig.name}: {fig.status}: {fig.message}" for fig in ordered if fig.status != "ok"]
    notes = [f"- {problem}" for problem in problems]
    if memory is not None and memory.get("status") == "ok":
        top = ", ".join(f"{Path(name).name} {size:,.0f}" for name, size in memory["top_files"][:6])
        notes.append(
            f"- memory run: {memory['pending']} of {memory['handles']} handles pending, "
            f"{memory['polls_seen']} polls before it stopped; bytes per handle by file: {top}"
        )
    else:
        problems.append(f"memory: {(memory or {}).get('message', 'not run')}")
    table = rows(result, args.cap)
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "settings": {
            "tasks": args.tasks,
            "cap": args.cap,
            "seed": args.seed,
            "min": args.min,
            "max": args.max,
            "submit_concurrency": SUBMIT_CONCURRENCY,
        },
        "runs": [asdict(f) for f in ordered],
        "memory": memory,
        "targets": [row.as_json() for row in table if row.verdict],
    }
    text = render_table(ordered, memory, args.cap) + "\n\n" + "\n".join(notes)
    return Report(text, table, data, problems)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Polling many queued tasks: maxapi_async against a fixed 1 s poller."
    )
    parser.add_argument("--tasks", type=int, default=5000, help="queued tasks (5000)")
    parser.add_argument("--cap", type=float, default=3000.0, help="max_polls_per_second (3000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of finish times and jitter (1)")
    parser.add_argument("--min", type=float, default=1.0, help="shortest task, s (1)")
    parser.add_argument("--max", type=float, default=10.0, help="longest task, s (10)")
    parser.add_argument("--skip-baseline", action="store_true", help="no fixed 1 s poller run")
    add_child_options(parser, [FIXED, MAXAPI, MEMORY], timeout=180.0)
    args = parser.parse_args(argv)
    check_args(parser, args, ("tasks",))
    if not (args.cap > 0 and math.isfinite(args.cap)):
        parser.error("--cap must be a positive number")
    if not 0 <= args.min <= args.max or not math.isfinite(args.max):
        parser.error("need 0 <= --min <= --max")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    header = (
        f"# polling: {args.tasks} queued tasks finishing uniformly in {args.min:g}-{args.max:g} s"
        f" (seed {args.seed}), max_polls_per_second {args.cap:g}, {SUBMIT_CONCURRENCY} submissions"
        f" at a time\n{machine_line('polling')}"
    )
    if (args.min, args.max) != (1.0, 10.0):
        header += (
            "\n# note: the client keeps its default PollPolicy (tuned for tasks of 1-10 s), so with"
            " other finish times the lag and polls-per-task targets say little"
        )
    return script_main(header, lambda: report(args, collect(args)), args.json)


if __name__ == "__main__":
    sys.exit(main())
