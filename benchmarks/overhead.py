"""Client-side CPU cost per request: maxapi_async against raw aiohttp and the vendor SDKs.

What is measured
    The CPU time (``time.process_time()``: user + system, all threads) that the *client process*
    spends per request, and the wall time, for ``--calls`` requests (default 2,000) issued by
    ``--concurrency`` worker coroutines (default 100) against a local server that answers
    instantly with a canned body. The server runs in its own process
    (``benchmarks/_minimal_server.py``), so its CPU never counts; what remains is the cost of
    building the request, the HTTP stack, parsing and validating the answer: the client's
    overhead, the part a client library can make cheaper.

How
    The parent starts the server, then for each round (``--rounds``, default 3) runs every variant
    once, round robin, each in a fresh child process (so imports, caches and garbage of one
    variant never weigh on another). A child builds its client, makes ``--warmup`` calls
    (default 100; a failing warm-up marks the variant as an error), collects garbage, then
    times the measured calls only. The table shows the median over rounds. A child that fails or
    exceeds ``--child-timeout`` (default 120 s) is reported in the table; the run goes on.

Variants
    raw aiohttp          one ClientSession, TCPConnector(limit=--concurrency), post bytes, read, json.loads
    maxapi_async         AsyncMaxAPI(...).images.generate(...)        (unavailable until it lands)
    openai SDK           AsyncOpenAI(...).images.generate(...), httpx2 pool sized to --concurrency
    google-genai         Client(...).aio.models.generate_content(...) (aiohttp transport)
    maxapi_async native  AsyncMaxAPI(...).models.generate_content(...) (left out until it exists)

Run
    python benchmarks/overhead.py                      # all variants, 2,000 calls x 3 rounds
    python benchmarks/overhead.py --only "raw aiohttp,maxapi_async" --rounds 5
    python benchmarks/overhead.py --calls 500 --json results.json

The exit code is 0 whether or not the target (maxapi_async <= 1.3x raw aiohttp CPU per request)
is met, and whatever a variant reports: this is a measurement, not a test. It is 2 for bad
command-line arguments, 1 if the server cannot be started, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = BENCH_DIR.parent
SERVER_SCRIPT: Final = BENCH_DIR / "_minimal_server.py"

MODEL: Final = "google/gemini-2.5-flash-image"
PROMPT: Final = "a glass cube"
API_KEY: Final = "bench"
EXPECTED_URL: Final = "https://cdn.maxapi.dev/a/img.png"
TARGET_VARIANT: Final = "maxapi_async"
BASELINE_VARIANT: Final = "raw aiohttp"
TARGET_RATIO: Final = 1.3
RESULT_MARKER: Final = "@@overhead-result@@ "
SERVER_START_TIMEOUT_S: Final = 15.0

Call = Callable[[], Awaitable[None]]
Setup = Callable[[str, int, contextlib.AsyncExitStack], Awaitable[Call]]


class VariantUnavailable(Exception):
    """The library a variant needs is missing (not installed, or not written yet)."""


class VariantSkipped(Exception):
    """An optional variant whose API does not exist yet: left out of the table silently."""


class WrongAnswer(Exception):
    """A call returned, but not the answer the server sent."""


def _check_url(url: object) -> None:
    if url != EXPECTED_URL:
        raise WrongAnswer(f"expected image url {EXPECTED_URL!r}, got {url!r}")


# --------------------------------------------------------------------------------------------
# Variants. Each setup builds one client (closed by the exit stack) and returns the call to
# time. Third-party imports live inside the setups, so a missing SDK marks only its variant.
# --------------------------------------------------------------------------------------------


async def _setup_raw_aiohttp(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    try:
        import aiohttp
    except ImportError as exc:
        raise VariantUnavailable(f"aiohttp is not installed ({exc})") from exc

    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    )
    endpoint = f"{url}/v1/images/generations"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

    async def call() -> None:
        payload = {"model": MODEL, "prompt": PROMPT, "aspect_ratio": "1:1"}
        async with session.post(endpoint, data=json.dumps(payload).encode(), headers=headers) as resp:
            body = await resp.read()
        if resp.status != 200:
            raise WrongAnswer(f"HTTP {resp.status}: {body[:200]!r}")
        _check_url(json.loads(body)["data"][0]["url"])

    return call


def _import_maxapi_client() -> Any:
    # Imported by name and used as Any on purpose: the client is written alongside this file,
    # and the benchmark must run (and type-check) whatever state its API is in. Any failure to
    # import (a half-written module raises more than ImportError) means "unavailable".
    try:
        module = importlib.import_module("maxapi_async")
        return module.AsyncMaxAPI
    except Exception as exc:
        raise VariantUnavailable(f"maxapi_async.AsyncMaxAPI is not importable ({_describe(exc)})") from exc


async def _setup_maxapi_async(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    async_max_api = _import_maxapi_client()
    client = await stack.enter_async_context(
        async_max_api(api_key=API_KEY, base_url=url, max_concurrency=concurrency)
    )

    async def call() -> None:
        result = await client.images.generate(PROMPT, aspect_ratio="1:1")
        _check_url(result.images[0].url)

    return call


async def _setup_maxapi_native(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    async_max_api = _import_maxapi_client()
    client = await stack.enter_async_context(
        async_max_api(api_key=API_KEY, base_url=url, max_concurrency=concurrency)
    )
    models = getattr(client, "models", None)
    if models is None or not callable(getattr(models, "generate_content", None)):
        raise VariantSkipped("AsyncMaxAPI has no models.generate_content yet")

    async def call() -> None:
        result = await models.generate_content(model=MODEL, contents=PROMPT)
        _check_url(result.images[0].url)

    return call


async def _setup_openai(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    try:
        import httpx2
        import openai
    except ImportError as exc:
        raise VariantUnavailable(f"openai SDK is not installed ({exc})") from exc

    # The SDK's default pool (1000 connections, 100 keep-alive) would do too; say it explicitly.
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key=API_KEY,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    )
    stack.push_async_callback(client.close)

    async def call() -> None:
        result = await client.images.generate(model=MODEL, prompt=PROMPT, extra_body={"aspect_ratio": "1:1"})
        _check_url(result.data[0].url if result.data else None)

    return call


async def _setup_google_genai(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    try:
        from google import genai
        from google.genai import types
    except ImportError as exc:
        raise VariantUnavailable(f"google-genai is not installed ({exc})") from exc

    # With aiohttp installed, google-genai's async path uses its own aiohttp session with
    # TCPConnector(limit=0), an unbounded pool, so 100 concurrent connections need no setting.
    # Its default api_version is "v1"; MaxAPI documents /v1beta, so ask for that.
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url, api_version="v1beta"))
    stack.push_async_callback(client.aio.aclose)

    async def call() -> None:
        result = await client.aio.models.generate_content(model=MODEL, contents=PROMPT)
        candidates = result.candidates or []
        content = candidates[0].content if candidates else None
        parts = (content.parts if content else None) or []
        file_data = parts[1].file_data if len(parts) > 1 else None
        _check_url(file_data.file_uri if file_data else None)

    return call


@dataclass(frozen=True)
class Variant:
    name: str
    setup: Setup


VARIANTS: Final = (
    Variant("raw aiohttp", _setup_raw_aiohttp),
    Variant("maxapi_async", _setup_maxapi_async),
    Variant("openai SDK", _setup_openai),
    Variant("google-genai", _setup_google_genai),
    # Left out of the table (VariantSkipped) until AsyncMaxAPI has models.generate_content.
    Variant("maxapi_async native", _setup_maxapi_native),
)
VARIANTS_BY_NAME: Final = {variant.name: variant for variant in VARIANTS}


# --------------------------------------------------------------------------------------------
# Child process: one variant, one measurement.
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one child reports: status is ok, error, unavailable or skipped."""

    status: str
    calls: int = 0
    failures: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    message: str = ""

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.calls * 1e6

    @property
    def requests_per_s(self) -> float:
        return self.calls / self.wall_s


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return text if len(text) <= 300 else text[:297] + "..."


async def _run_calls(call: Call, calls: int, concurrency: int) -> tuple[int, str]:
    """Make ``calls`` calls from ``concurrency`` workers; return (failures, first failure)."""
    remaining = calls
    failures = 0
    first_failure = ""

    async def worker() -> None:
        nonlocal remaining, failures, first_failure
        while remaining > 0:
            remaining -= 1
            try:
                await call()
            except Exception as exc:
                failures += 1
                if not first_failure:
                    first_failure = _describe(exc)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    return failures, first_failure


async def _measure(variant: Variant, url: str, calls: int, concurrency: int, warmup: int) -> RunResult:
    async with contextlib.AsyncExitStack() as stack:
        call = await variant.setup(url, concurrency, stack)
        failures, first_failure = await _run_calls(call, warmup, concurrency)
        if failures:
            return RunResult("error", message=f"warm-up: {failures}/{warmup} failed: {first_failure}")
        gc.collect()
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        failures, first_failure = await _run_calls(call, calls, concurrency)
        wall_s = time.perf_counter() - wall_start
        cpu_s = time.process_time() - cpu_start
    result = RunResult("ok", calls=calls, failures=failures, cpu_s=cpu_s, wall_s=wall_s)
    if failures:
        result.status = "error"
        result.message = f"{failures}/{calls} failed: {first_failure}"
    return result


def child_main(args: argparse.Namespace) -> int:
    variant = VARIANTS_BY_NAME[args.child]
    try:
        result = asyncio.run(_measure(variant, args.url, args.calls, args.concurrency, args.warmup))
    except VariantUnavailable as exc:
        result = RunResult("unavailable", message=str(exc))
    except VariantSkipped as exc:
        result = RunResult("skipped", message=str(exc))
    except Exception as exc:
        result = RunResult("error", message=_describe(exc))
    print(RESULT_MARKER + json.dumps(asdict(result)), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent process: server, rounds, report.
# --------------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Benchmark the working tree's maxapi_async, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # Every SDK here trusts the environment; never let a proxy sit between client and server.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Start ``_minimal_server.py`` in a subprocess; yield its base URL; always stop it."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--host", "127.0.0.1", "--port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(
                f"benchmark server did not report its port within {SERVER_START_TIMEOUT_S:.0f} s"
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


def run_child(variant: Variant, url: str, args: argparse.Namespace) -> RunResult:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant.name,
        "--url",
        url,
        "--calls",
        str(args.calls),
        "--concurrency",
        str(args.concurrency),
        "--warmup",
        str(args.warmup),
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.child_timeout, env=_child_env()
        )
    except subprocess.TimeoutExpired:
        return RunResult("error", message=f"child timed out after {args.child_timeout:g} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return RunResult(**json.loads(line[len(RESULT_MARKER) :]))
    stderr_lines = proc.stderr.strip().splitlines()
    tail = stderr_lines[-1] if stderr_lines else "no output"
    return RunResult("error", message=f"child exited with code {proc.returncode}: {tail}")


@dataclass
class Summary:
    """One table row: the medians over a variant's successful rounds."""

    name: str
    runs: list[RunResult]
    cpu_us_per_request: float | None = None
    wall_s: float | None = None
    requests_per_s: float | None = None
    ratio_to_raw: float | None = None

    @property
    def ok_runs(self) -> list[RunResult]:
        return [run for run in self.runs if run.status == "ok"]

    @property
    def problem(self) -> str:
        """The first non-ok run's status and message, or ''."""
        for run in self.runs:
            if run.status != "ok":
                return f"{run.status}: {run.message}"
        return ""


def summarize(name: str, runs: list[RunResult]) -> Summary:
    summary = Summary(name, runs)
    ok = summary.ok_runs
    if ok:
        summary.cpu_us_per_request = statistics.median(run.cpu_us_per_request for run in ok)
        summary.wall_s = statistics.median(run.wall_s for run in ok)
        summary.requests_per_s = statistics.median(run.requests_per_s for run in ok)
    return summary


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(summaries: Sequence[Summary]) -> str:
    lines = [
        "| variant | CPU µs/request (median) | wall s | requests/s | ratio to raw aiohttp |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in summaries:
        if s.cpu_us_per_request is None:
            lines.append(f"| {s.name} | {_cell(s.problem)} | n/a | n/a | n/a |")
            continue
        ratio = "n/a" if s.ratio_to_raw is None else f"{s.ratio_to_raw:.2f}x"
        lines.append(
            f"| {s.name} | {s.cpu_us_per_request:.0f} | {_fmt(s.wall_s, '.2f')}"
            f" | {_fmt(s.requests_per_s, '.0f')} | {ratio} |"
        )
    return "\n".join(lines)


def target_line(summaries: Sequence[Summary]) -> tuple[str, str]:
    """Return (verdict, line): verdict is PASS, FAIL or N/A."""
    by_name = {s.name: s for s in summaries}
    head = f"{TARGET_VARIANT} target: <= {TARGET_RATIO}x {BASELINE_VARIANT}"
    target, baseline = by_name.get(TARGET_VARIANT), by_name.get(BASELINE_VARIANT)
    if target is None or baseline is None:
        return "N/A", f"{head}: N/A (not both measured; see --only)"
    for s in (target, baseline):
        if s.cpu_us_per_request is None:
            return "N/A", f"{head}: N/A ({s.name} {s.problem})"
    assert target.ratio_to_raw is not None
    verdict = "PASS" if target.ratio_to_raw <= TARGET_RATIO else "FAIL"
    return verdict, f"{head}: {verdict} ({target.ratio_to_raw:.2f}x)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Client-side CPU cost per request, maxapi_async vs raw aiohttp and SDKs.",
        epilog="variants: " + ", ".join(v.name for v in VARIANTS),
    )
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per run (2000)")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent calls (100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all variants (3)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls first (100)")
    parser.add_argument("--only", help='comma-separated variants, e.g. "raw aiohttp,maxapi_async"')
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--child-timeout", type=float, default=120.0, help="per child, s (120)")
    parser.add_argument("--child", choices=list(VARIANTS_BY_NAME), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for option in ("calls", "concurrency", "rounds"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if args.child and not args.url:
        parser.error("--child needs --url")
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in VARIANTS_BY_NAME]
        if unknown or not names:
            parser.error(f"unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS_BY_NAME)}")
        args.variants = [v for v in VARIANTS if v.name in names]
    else:
        args.variants = list(VARIANTS)
    return args


def collect_runs(
    args: argparse.Namespace, variants: Sequence[Variant], url: str
) -> dict[str, list[RunResult]]:
    """Run every variant once per round, round robin; skipped variants leave the result."""
    runs: dict[str, list[RunResult]] = {v.name: [] for v in variants}
    for round_no in range(1, args.rounds + 1):
        for variant in variants:
            if variant.name not in runs:
                continue
            result = run_child(variant, url, args)
            if result.status == "skipped":
                del runs[variant.name]
            else:
                runs[variant.name].append(result)
            shown = (
                f"{result.cpu_us_per_request:.0f} µs/request CPU, {result.wall_s:.2f} s"
                if result.status == "ok"
                else f"{result.status}: {result.message}"
            )
            print(f"# round {round_no}: {variant.name}: {shown}", file=sys.stderr, flush=True)
    return runs


def summarize_all(runs: dict[str, list[RunResult]]) -> list[Summary]:
    summaries = [summarize(name, variant_runs) for name, variant_runs in runs.items()]
    baseline = next((s for s in summaries if s.name == BASELINE_VARIANT), None)
    if baseline is not None and baseline.cpu_us_per_request:
        for s in summaries:
            if s.cpu_us_per_request is not None:
                s.ratio_to_raw = s.cpu_us_per_request / baseline.cpu_us_per_request
    return summaries


def json_report(
    args: argparse.Namespace, summaries: Sequence[Summary], verdict: str, line: str
) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "calls": args.calls,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "warmup": args.warmup,
        },
        "target": {"ratio": TARGET_RATIO, "verdict": verdict, "line": line},
        "variants": [
            {
                "name": s.name,
                "cpu_us_per_request_median": s.cpu_us_per_request,
                "wall_s_median": s.wall_s,
                "requests_per_s_median": s.requests_per_s,
                "ratio_to_raw": s.ratio_to_raw,
                "runs": [asdict(run) for run in s.runs],
            }
            for s in summaries
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)

    print(
        f"# client overhead: {args.calls} calls x concurrency {args.concurrency}, "
        f"{args.rounds} round(s), warm-up {args.warmup}\n"
        f"# Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU(s); server: {SERVER_SCRIPT.name} in its own process",
        flush=True,
    )
    started = time.perf_counter()
    try:
        with running_server() as url:
            runs = collect_runs(args, args.variants, url)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

    summaries = summarize_all(runs)
    print()
    print(render_table(summaries))
    print()
    for s in summaries:
        per_round = ", ".join(
            f"{run.cpu_us_per_request:.0f}" if run.status == "ok" else run.status for run in s.runs
        )
        print(f"- {s.name}: CPU µs/request per round: {per_round}")
        if s.ok_runs and s.problem:
            print(f"  (some rounds failed: {s.problem})")
    verdict, line = target_line(summaries)
    print()
    print(line)
    print(f"\n# total time {time.perf_counter() - started:.1f} s")
    if args.json:
        report = json_report(args, summaries, verdict, line)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
