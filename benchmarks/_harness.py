"""What every benchmark script shares: starting a fake service, running a child, reporting.

The parent process starts the service (``_servers.py``) and one fresh child process per
measurement (the script itself, with ``--child``); the child prints its result as one JSON line
after :data:`RESULT_MARKER`. Servers and children get their own session, so Ctrl+C reaches only the
parent, which stops them on every path; a child also leaves on its own if the parent is killed.

Results end as :class:`Row`: one line of ``run.py``'s table (scenario | metric | maxapi_async |
peers | target | PASS/FAIL). Each script prints the rows that carry a target as ``target ...:``
lines, the same in every script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = BENCH_DIR.parent
SERVERS_SCRIPT: Final = BENCH_DIR / "_servers.py"
RESULT_MARKER: Final = "@@bench-result@@ "
PYCACHE: Final = Path(tempfile.gettempdir()) / "maxapi_async-bench-pycache"
SERVER_START_TIMEOUT_S: Final = 30.0
API_KEY: Final = "bench"
MODEL: Final = "google/gemini-2.5-flash-image"
PROMPT: Final = "a glass cube"
MB: Final = 1024 * 1024

#: The columns of ``run.py``'s table after the metric, in order.
MAXAPI: Final = "maxapi_async"
BASELINE: Final = "baseline"
OPENAI: Final = "openai SDK"
GENAI: Final = "google-genai"
COLUMNS: Final = (MAXAPI, BASELINE, OPENAI, GENAI)


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return text if len(text) <= 300 else text[:297] + "..."


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def cell(text: str) -> str:
    """Text that is safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def peak_rss_mb() -> float:
    """The process's lifetime peak resident set size (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_line(server: str) -> str:
    return (
        f"# Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU(s); server: _servers.py {server} in its own process"
    )


# --------------------------------------------------------------------------------------------
# Parent side: the service, the children.
# --------------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Benchmark the working tree's maxapi_async, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # Compiled bytecode, as an installed package has: kept outside the tree, written even where
    # PYTHONDONTWRITEBYTECODE is set (else every child would compile the working tree again).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    # Every client here trusts the environment; never let a proxy sit between client and server.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def pin_to(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps the new process (and its threads) on one CPU (the parent runs no
    threads)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def running_server(kind: str, *options: str, cpu: int | None = None) -> Iterator[str]:
    """Start ``_servers.py kind options...``; yield its base URL; always stop it."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVERS_SCRIPT), kind, "--host", "127.0.0.1", "--port", "0", *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin_to(cpu),
        start_new_session=True,  # Ctrl+C reaches the parent only, which stops the server
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(
                f"{kind} server did not report its port within {SERVER_START_TIMEOUT_S:.0f} s"
                f" (exit code {proc.poll()}, first line {line!r})"
            )
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.stdin.close()  # end of file on its stdin makes the server exit cleanly
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def fetch_json(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """GET ``url`` as JSON, never via a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def run_child(script: Path, argv: Sequence[str], *, timeout: float, cpu: int | None = None) -> dict[str, Any]:
    """Run ``script --child ...`` and return its result; a crash or timeout is an error result."""
    try:
        proc = subprocess.run(
            [sys.executable, str(script), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
            preexec_fn=pin_to(cpu),
            start_new_session=True,  # on Ctrl+C (KeyboardInterrupt), run() kills the child
        )
    except subprocess.TimeoutExpired:  # run() has killed the child already
        return {"status": "error", "message": f"child timed out after {timeout:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return result
    stderr_lines = proc.stderr.strip().splitlines()
    tail = stderr_lines[-1] if stderr_lines else "no output"
    return {"status": "error", "message": f"child exited with code {proc.returncode}: {tail}"}


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Run(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def message(self) -> str: ...


V = TypeVar("V", bound=_Named)
R = TypeVar("R", bound=_Run)


def round_robin(
    variants: Sequence[V], rounds: int, measure: Callable[[V], R], shown: Callable[[R], str], *, log: bool
) -> dict[str, list[R]]:
    """Measure every variant once per round, taking turns; log each run (``shown`` when ok)."""
    runs: dict[str, list[R]] = {v.name: [] for v in variants}
    for round_no in range(1, rounds + 1):
        for variant in variants:
            result = measure(variant)
            runs[variant.name].append(result)
            if log:
                text = shown(result) if result.status == "ok" else f"{result.status}: {result.message}"
                print(f"# round {round_no}: {variant.name}: {text}", file=sys.stderr, flush=True)
    return runs


@dataclass
class Summary(Generic[V, R]):
    """A variant's runs and the medians over its successful ones (see :func:`summarize`)."""

    variant: V
    runs: list[R]
    medians: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def ok_runs(self) -> list[R]:
        return [run for run in self.runs if run.status == "ok"]

    @property
    def problem(self) -> str:
        """The first failed run's status and message, or ''."""
        return next((f"{run.status}: {run.message}" for run in self.runs if run.status != "ok"), "")

    def get(self, name: str) -> float | None:
        return self.medians.get(name)


def summarize(variant: V, runs: list[R], figures: Sequence[str]) -> Summary[V, R]:
    """The median of each of ``figures`` (attributes of a run; None ones left out) over ok runs."""
    summary = Summary(variant, runs)
    for name in figures:
        numbers = [float(value) for run in summary.ok_runs if (value := getattr(run, name)) is not None]
        if numbers:
            summary.medians[name] = statistics.median(numbers)
    return summary


# --------------------------------------------------------------------------------------------
# Child side.
# --------------------------------------------------------------------------------------------


def exit_with_parent() -> None:
    """Leave at once if the parent dies (its SIGKILL runs no cleanup): never outlive it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class Unavailable(Exception):
    """What a child needs is missing (a library not installed, or not importable)."""


def child_main(measure: Coroutine[Any, Any, Any]) -> int:
    """A child process: run ``measure`` and hand its result (a dataclass or a dict) to the parent.

    An exception becomes ``{"status": "error" (or "unavailable"), "message": ...}``; the parent
    reads the result with :func:`run_child`.
    """
    exit_with_parent()
    try:
        result = asyncio.run(measure)
        data = result if isinstance(result, dict) else dataclasses.asdict(result)
    except Unavailable as exc:
        data = {"status": "unavailable", "message": str(exc)}
    except Exception as exc:
        data = {"status": "error", "message": describe(exc)}
    print(RESULT_MARKER + json.dumps(data), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of ``run.py``'s table; ``verdict`` is PASS, FAIL or N/A, or '' where no target."""

    scenario: str
    metric: str
    values: dict[str, float | None] = field(default_factory=dict)  # column -> number
    spec: str = ".0f"  # how the numbers are shown; "x" suffixes a ratio
    target: str = ""
    verdict: str = ""
    detail: str = ""  # the figures behind the verdict, or why it is N/A

    def shown(self, column: str) -> str:
        if column not in self.values:
            return ""
        value = self.values[column]
        if self.spec.endswith("x"):
            return fmt(value, self.spec[:-1]) + ("x" if value is not None else "")
        return fmt(value, self.spec)

    def target_line(self) -> str:
        return f"target [{self.scenario}] {self.metric} {self.target}: {self.verdict} ({self.detail})"

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "values": self.values,
            "target": self.target,
            "verdict": self.verdict,
            "detail": self.detail,
        }


def judged(
    scenario: str,
    metric: str,
    values: dict[str, float | None],
    *,
    spec: str,
    target: str,
    ok: Callable[[float], bool],
    detail: str = "",
    missing: str = "",
) -> Row:
    """A row with a target on ``values[MAXAPI]``; N/A (saying ``missing``) when it is None."""
    value = values.get(MAXAPI)
    row = Row(scenario, metric, values, spec, target)
    if value is None:
        row.verdict, row.detail = "N/A", missing or "not measured"
    else:
        row.verdict = "PASS" if ok(value) else "FAIL"
        row.detail = detail or row.shown(MAXAPI)
    return row


def target_lines(rows: Sequence[Row]) -> list[str]:
    return [row.target_line() for row in rows if row.verdict]


@dataclass
class Report:
    """What a script shows once it has measured: text, the rows (targets), its ``--json`` document."""

    text: str
    rows: list[Row]
    data: dict[str, Any]
    problems: list[str] = field(default_factory=list)  # runs that failed: the exit code is then 1


# --------------------------------------------------------------------------------------------
# The scripts' command lines.
# --------------------------------------------------------------------------------------------


def add_child_options(parser: argparse.ArgumentParser, children: Sequence[str], timeout: float) -> None:
    """``--json``, ``--child-timeout``, and the hidden ``--child``/``--url`` of a child process."""
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--child-timeout", type=float, default=timeout, help=f"per child process, s ({timeout:g})"
    )
    parser.add_argument("--child", choices=list(children), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)


def add_round_options(
    parser: argparse.ArgumentParser, *, rounds: int, warmup: int, warmup_help: str, example: str
) -> None:
    """``--rounds``, ``--warmup`` and ``--only`` of a script whose variants take turns."""
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds over all variants; medians ({rounds})"
    )
    parser.add_argument("--warmup", type=int, default=warmup, help=f"{warmup_help} ({warmup})")
    parser.add_argument("--only", help=f'comma-separated variants, e.g. "{example}"')


def check_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, at_least_one: Sequence[str]
) -> None:
    """Counts that must be positive, a warm-up that must not be negative, ``--child`` with ``--url``."""
    for name in at_least_one:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "warmup", 0) < 0:
        parser.error("--warmup must not be negative")
    if getattr(args, "child", None) and not args.url:
        parser.error("--child needs --url")


def choose(
    parser: argparse.ArgumentParser, only: str | None, names: Sequence[str], default: Sequence[str]
) -> list[str]:
    """The names ``--only`` lists (comma-separated), in ``names``' order; ``default`` without it."""
    if not only:
        return list(default)
    picked = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in picked if name not in names]
    if unknown or not picked:
        parser.error(f"--only: unknown name(s) {unknown}; choose from: {', '.join(names)}")
    return [name for name in names if name in picked]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl+C: the running child is killed, the server stopped."""
    signal.signal(signal.SIGTERM, _interrupt)


def script_main(header: str, measure: Callable[[], Report], json_path: Path | None) -> int:
    """A script's parent process: print ``header``, measure, print the report and its targets.

    Exit codes: 0 measured (targets met or not), 1 a run failed or a server would not start,
    130 interrupted (Ctrl+C or SIGTERM).
    """
    unwind_on_sigterm()
    print(header, flush=True)
    started = time.perf_counter()
    try:
        report = measure()
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print()
    print(report.text)
    print()
    print("\n".join(target_lines(report.rows)))
    print(f"\n# total time {time.perf_counter() - started:.1f} s")
    if json_path is not None:
        json_path.write_text(json.dumps(report.data, indent=2) + "\n", encoding="utf-8")
    return 1 if report.problems else 0
