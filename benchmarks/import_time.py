"""Import time of maxapi_async against the openai and google-genai SDKs, in fresh interpreters.

What is measured, per module (``maxapi_async``, ``openai``, ``google.genai``)
    * ``python -X importtime -c "import X"``: the sum of the cumulative times of the top-level
      imports that the interpreter's own start-up (``-X importtime -c pass``) does not make,
      i.e. everything ``import X`` pulled in; the median over ``--importtime-runs`` (3);
    * ``python -c "t = perf_counter(); import X; print(perf_counter() - t)"``: the median over
      ``--rounds`` (10) fresh interpreters. ``-X importtime`` adds its own bookkeeping, so this is
      the figure closer to what a user waits for.

    Every interpreter is new (``sys.executable``, the working tree's maxapi_async first on
    ``PYTHONPATH``), and the modules take turns (round robin), so a burst of load on the machine
    weighs on all of them alike. One unmeasured import of each module first compiles its
    bytecode and warms the file cache.

Target (``target ...`` lines; the exit code is 0 whether or not it is met)
    maxapi_async under 150 ms, and below both SDKs (each figure).

Run
    python benchmarks/import_time.py                   # 10 rounds, ~20 s on 2 cores
    python benchmarks/import_time.py --rounds 3 --only maxapi_async

Exit codes: 0 measured, 1 an import failed, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import operator
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from _harness import (
    GENAI,
    MAXAPI,
    OPENAI,
    REPO_ROOT,
    Report,
    Row,
    child_env,
    choose,
    fmt,
    judged,
    machine,
    script_main,
)

MODULES: Final = {"maxapi_async": MAXAPI, "openai": OPENAI, "google.genai": GENAI}  # module -> column
TARGET_MS: Final = 150.0
TIMER: Final = "import time as _t; _s = _t.perf_counter(); import {0}; print(_t.perf_counter() - _s)"


class ImportFailed(RuntimeError):
    """An interpreter importing a module exited with an error."""


def _python(*argv: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=child_env(), cwd=REPO_ROOT, timeout=60
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImportFailed(f"python {' '.join(argv)}: exit code {proc.returncode}: {tail}")
    return proc


def top_level_imports(stderr: str) -> dict[str, int]:
    """``-X importtime`` output -> {top-level module: cumulative µs}."""
    entries: list[tuple[int, str, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not cumulative.strip().isdigit():
            continue  # the header
        entries.append((len(name) - len(name.lstrip()), name.strip(), int(cumulative)))
    if not entries:
        return {}
    top = min(indent for indent, _, _ in entries)
    return {name: us for indent, name, us in entries if indent == top}


def importtime_ms(module: str, startup: set[str]) -> float:
    stderr = _python("-X", "importtime", "-c", f"import {module}").stderr
    return sum(us for name, us in top_level_imports(stderr).items() if name not in startup) / 1e3


def perf_counter_ms(module: str) -> float:
    return float(_python("-c", TIMER.format(module)).stdout.strip()) * 1e3


@dataclass
class Figures:
    module: str
    importtime_ms: list[float] = field(default_factory=list)
    perf_counter_ms: list[float] = field(default_factory=list)
    error: str = ""

    def median(self, name: str) -> float | None:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values and not self.error else None


def _warm_up(figures: Sequence[Figures]) -> None:
    """Import every module once, all at once, to compile its bytecode and warm the file cache."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", f"import {f.module}"],
            env=child_env(),
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in figures
    ]
    for fig, proc in zip(figures, procs, strict=True):
        _, stderr = proc.communicate(timeout=60)
        if proc.returncode != 0:
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            fig.error = f"import {fig.module}: exit code {proc.returncode}: {tail}"


def collect(args: argparse.Namespace, *, log: bool = True) -> list[Figures]:
    startup = set(top_level_imports(_python("-X", "importtime", "-c", "pass").stderr))
    out = [Figures(module) for module in args.modules]
    _warm_up(out)
    for round_no in range(args.rounds):
        for fig in out:
            if fig.error:
                continue
            try:
                if round_no < args.importtime_runs:
                    fig.importtime_ms.append(importtime_ms(fig.module, startup))
                fig.perf_counter_ms.append(perf_counter_ms(fig.module))
            except (ImportFailed, ValueError, subprocess.TimeoutExpired) as exc:
                fig.error = str(exc)
        if log:
            shown = ", ".join(f"{f.module} {f.perf_counter_ms[-1]:.0f} ms" for f in out if f.perf_counter_ms)
            print(f"# round {round_no + 1}: {shown}", file=sys.stderr, flush=True)
    return out


def rows(figures: Sequence[Figures]) -> list[Row]:
    """``run.py``'s rows (and this script's ``target`` lines)."""
    out: list[Row] = []
    for key, label in (
        ("perf_counter_ms", "import time, median of fresh interpreters (ms)"),
        ("importtime_ms", "import time, -X importtime total (ms)"),
    ):
        values = {MODULES[f.module]: f.median(key) for f in figures}
        peers = {column: v for column, v in values.items() if column != MAXAPI}
        measured = [v for v in peers.values() if v is not None]
        bound = min([TARGET_MS, *measured])
        ours = next((f for f in figures if MODULES[f.module] == MAXAPI), None)
        out.append(
            judged(
                "import",
                label,
                values,
                spec=".0f",
                target=f"< {TARGET_MS:g} and below both SDKs" if len(measured) == 2 else f"< {TARGET_MS:g}",
                ok=functools.partial(operator.gt, bound),  # ms < bound
                missing=ours.error if ours is not None and ours.error else "maxapi_async not measured",
            )
        )
    return out


def render_table(figures: Sequence[Figures]) -> str:
    lines = [
        "| module | -X importtime total ms (median) | perf_counter ms (median) | min | max | interpreters |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        if f.error:
            lines.append(f"| {f.module} | {f.error} | n/a | n/a | n/a | 0 |")
            continue
        times = f.perf_counter_ms
        medians = " | ".join(fmt(f.median(key), ".0f") for key in ("importtime_ms", "perf_counter_ms"))
        lines.append(f"| {f.module} | {medians} | {min(times):.0f} | {max(times):.0f} | {len(times)} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Import time of maxapi_async, openai and google.genai.")
    parser.add_argument("--rounds", type=int, default=10, help="fresh interpreters per module (10)")
    parser.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs per module (3)")
    parser.add_argument("--only", help="comma-separated modules, e.g. maxapi_async,openai")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.importtime_runs < 1:
        parser.error("--rounds and --importtime-runs must be at least 1")
    args.modules = choose(parser, args.only, list(MODULES), default=list(MODULES))
    return args


def report(args: argparse.Namespace, figures: Sequence[Figures]) -> Report:
    table = rows(figures)
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "settings": {"rounds": args.rounds, "importtime_runs": args.importtime_runs},
        "targets": [row.as_json() for row in table if row.verdict],
        "modules": [
            {
                "module": f.module,
                "importtime_ms": f.importtime_ms,
                "perf_counter_ms": f.perf_counter_ms,
                "error": f.error or None,
            }
            for f in figures
        ],
    }
    return Report(render_table(figures), table, data, [f"{f.module}: {f.error}" for f in figures if f.error])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    header = (
        f"# import time: {args.rounds} fresh interpreters per module, {args.importtime_runs} with"
        f" -X importtime; Python {sys.version.split()[0]}"
    )
    return script_main(header, lambda: report(args, collect(args)), args.json)


if __name__ == "__main__":
    sys.exit(main())
