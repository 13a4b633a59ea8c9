"""Every benchmark in one go: one markdown table, targets judged, results saved as JSON.

Scenarios (in this order; each runs maxapi_async and its peers side by side, in the same run)
    overhead   client CPU per call, OpenAI-shaped images.generate (overhead.py)
    native     client CPU per call, Gemini-shaped generateContent (overhead.py, same runs)
    polling    5,000 queued tasks: lag, polls per task, poll rate, memory per handle (polling.py)
    payload    answers with 4 x 1.5 MB images: decode throughput, event-loop stall (payload.py)
    batch      a 10,000-item client.batch: items/s on one core, peak memory (batch.py)
    import     import time in fresh interpreters (import_time.py)

Each scenario starts its own fake service (``_servers.py``) and measures every client in a fresh
child process. The table (stdout) has one row per figure: scenario | metric | maxapi_async |
baseline | openai SDK | google-genai | target | result, where "baseline" is the scenario's plain
reference (see the legend under the table). The JSON (``benchmarks/results/<timestamp>.json``
and ``latest.json``; the folder is git-ignored) holds the rows and each scenario's full report.

Run
    python benchmarks/run.py                           # everything, about 2 minutes on 2 cores
    python benchmarks/run.py --quick                   # small sizes, ~15 s: does it all work?
    python benchmarks/run.py --only overhead,native --rounds 5

Options: ``--quick``; ``--only scenario[,scenario]``; ``--rounds N`` (the rounds of overhead,
native, payload, batch and import, whose defaults are 3, 3, 3, 1 and 10 interpreters; polling runs
once); ``--results-dir DIR`` (default ``benchmarks/results``).

Exit codes: 0 every scenario measured (targets met or not), 1 a scenario failed to run, 2 bad
arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import batch
import import_time
import overhead
import payload
import polling
from _harness import (
    BENCH_DIR,
    COLUMNS,
    Report,
    Row,
    cell,
    choose,
    describe,
    machine,
    unwind_on_sigterm,
)

SCENARIOS: Final = ("overhead", "native", "polling", "payload", "batch", "import")
LEGEND: Final = {
    "overhead": "raw aiohttp posting the OpenAI JSON",
    "native": "raw aiohttp posting the Gemini JSON",
    "polling": "a fixed 1 s poller on raw aiohttp",
    "payload": "json.loads + base64.b64decode in a plain loop (stall: its longest single decode)",
}


def _argv(quick: bool, rounds: int | None, small: list[str]) -> list[str]:
    argv = small if quick else []
    return [*argv, "--rounds", str(rounds)] if rounds is not None else argv


def run_overhead(scenarios: Sequence[str], quick: bool, rounds: int | None) -> Report:
    names = {name for scenario in scenarios for name in overhead.SCENARIOS[scenario]}
    only = ",".join(v.name for v in overhead.VARIANTS if v.name in names)
    small = ["--calls", "100", "--concurrency", "20", "--warmup", "10", "--rounds", "1"]
    args = overhead.parse_args([*_argv(quick, rounds, small), "--only", only])
    return overhead.report(args, overhead.collect(args))


def run_polling(quick: bool, rounds: int | None) -> Report:
    args = polling.parse_args(
        ["--tasks", "50", "--min", "0.1", "--max", "0.5", "--cap", "500"] if quick else []
    )
    return polling.report(args, polling.collect(args, parallel=quick))  # a smoke run need not wait 3 x 2 s


def run_payload(quick: bool, rounds: int | None) -> Report:
    small = ["--calls", "3", "--warmup", "1", "--rounds", "1", "--image-bytes", "300000"]
    args = payload.parse_args([*_argv(quick, rounds, small), "--only", ",".join(payload.TABLE_VARIANTS)])
    return payload.report(args, payload.collect(args))


def run_batch(quick: bool, rounds: int | None) -> Report:
    args = batch.parse_args(_argv(quick, rounds, ["--items", "200", "--warmup", "50"]))
    return batch.report(args, batch.collect(args))


def run_import(quick: bool, rounds: int | None) -> Report:
    args = import_time.parse_args(_argv(quick, rounds, ["--rounds", "1", "--importtime-runs", "1"]))
    return import_time.report(args, import_time.collect(args))


def render(rows: Sequence[Row], scenarios: Sequence[str]) -> str:
    head = ["scenario", "metric", *COLUMNS, "target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(COLUMNS) + "---|---|"]
    for row in rows:
        cells = [row.scenario, row.metric, *(row.shown(c) for c in COLUMNS), row.target, row.verdict]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    legend = [f"{name}: {text}" for name, text in LEGEND.items() if name in scenarios]
    if legend:
        lines += ["", "baseline: " + "; ".join(legend) + "."]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, ~15 s")
    parser.add_argument("--only", help=f"comma-separated scenarios from: {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="rounds of overhead, native, payload, batch and import")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=BENCH_DIR / "results",
        help="where the JSON goes (benchmarks/results)",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.scenarios = choose(parser, args.only, SCENARIOS, default=SCENARIOS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    unwind_on_sigterm()
    started = time.perf_counter()
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    load = os.getloadavg()
    print(
        f"# benchmarks/run.py{' --quick' if args.quick else ''}: {', '.join(args.scenarios)}"
        f" ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average"
        f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
        flush=True,
    )
    parts: list[tuple[str, Callable[[], Report]]] = []
    wanted = [name for name in ("overhead", "native") if name in args.scenarios]
    if wanted:
        parts.append(("+".join(wanted), lambda: run_overhead(wanted, args.quick, args.rounds)))
    for name, runner in (
        ("polling", run_polling),
        ("payload", run_payload),
        ("batch", run_batch),
        ("import", run_import),
    ):
        if name in args.scenarios:
            parts.append((name, functools.partial(runner, args.quick, args.rounds)))

    rows: list[Row] = []
    reports: dict[str, Any] = {}
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name, run in parts:
        print(f"# {name} ...", file=sys.stderr, flush=True)
        part_started = time.perf_counter()
        try:
            report = run()
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # a server that would not start, an unexpected crash: go on
            row = Row(name, f"did not run: {describe(exc)}", verdict="N/A")
            report = Report("", [row], {}, [describe(exc)])
        timings[name] = time.perf_counter() - part_started
        rows += report.rows
        reports[name] = report.data
        if report.problems:
            failures[name] = "; ".join(report.problems)
        print(f"# {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)

    verdicts = [row.verdict for row in rows if row.verdict]
    print()
    print(render(rows, args.scenarios))
    print()
    print(
        f"{len(verdicts)} targets: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL,"
        f" {verdicts.count('N/A')} N/A"
    )
    for name, why in failures.items():
        print(f"- {name} did not fully run: {why}")

    elapsed = time.perf_counter() - started
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {**machine(), "load_average_at_start": list(load)},
        "settings": {"quick": args.quick, "rounds": args.rounds, "scenarios": args.scenarios},
        "elapsed_s": elapsed,
        "timings_s": timings,
        "rows": [row.as_json() for row in rows],
        "failures": failures,
        "reports": reports,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(path, args.results_dir / "latest.json")
    end = os.getloadavg()
    print(
        f"\n# results: {path} (and latest.json); total time {elapsed:.1f} s;"
        f" load average at the end {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
