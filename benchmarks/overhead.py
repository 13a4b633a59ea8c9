"""Client-side CPU cost per request: maxapi_async against raw aiohttp and the vendor SDKs.

What is measured
    The CPU time (``time.process_time()``: user + system, all threads) that the *client process*
    spends per request, and the wall time, for ``--calls`` requests (default 2,000) issued by
    ``--concurrency`` worker coroutines (default 100) against a local server that answers
    instantly with a canned body (``_servers.py minimal``, in its own process, so its CPU never
    counts). What remains is the cost of building the request, the HTTP stack, parsing and
    validating the answer: the client's overhead, the part a client library can make cheaper.

Two scenarios, one set of runs
    overhead   OpenAI-shaped ``POST /v1/images/generations``: raw aiohttp, maxapi_async
               ``images.generate``, the OpenAI SDK ``images.generate`` (and google-genai, whose
               call is Gemini-shaped, for the "faster SDK").
    native     Gemini-shaped ``POST /v1beta/models/...:generateContent``: raw aiohttp native
               (posting the same Gemini JSON), maxapi_async native ``models.generate_content``,
               google-genai ``aio.models.generate_content``.

How
    The parent starts the server, then for each round (``--rounds``, default 3) runs every variant
    once, round robin, each in a fresh child process (so imports, caches and garbage of one
    variant never weigh on another). A child builds its client, makes ``--warmup`` calls
    (default 100; a failing warm-up marks the variant as an error), collects garbage, then
    times the measured calls only. The table shows the median over rounds. A child that fails or
    exceeds ``--child-timeout`` (default 120 s) is reported in the table; the run goes on.

Targets (``target ...`` lines; the exit code is 0 whether or not they are met)
    maxapi_async <= 1.3x its raw aiohttp (same API), and >= 4x less CPU per call than the faster
    SDK (overhead: the faster of the OpenAI SDK and google-genai; native: google-genai).

Run
    python benchmarks/overhead.py                      # all variants, 2,000 calls x 3 rounds
    python benchmarks/overhead.py --only "raw aiohttp,maxapi_async" --rounds 5
    python benchmarks/overhead.py --calls 500 --json results.json

Exit codes: 0 measured, 1 a run failed (not: a library is missing) or the server could not be
started, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from _harness import (
    API_KEY,
    BASELINE,
    GENAI,
    MAXAPI,
    MODEL,
    OPENAI,
    PROMPT,
    Report,
    Row,
    Summary,
    Unavailable,
    add_child_options,
    add_round_options,
    cell,
    check_args,
    child_main,
    choose,
    describe,
    fmt,
    judged,
    machine,
    machine_line,
    round_robin,
    run_child,
    running_server,
    script_main,
    summarize,
)

EXPECTED_URL: Final = "https://cdn.maxapi.dev/a/img.png"
TARGET_RATIO: Final = 1.3
TARGET_SDK_FACTOR: Final = 4.0
IMAGES: Final = "images"
NATIVE: Final = "generateContent"

RAW: Final = "raw aiohttp"
RAW_NATIVE: Final = "raw aiohttp native"
MAXAPI_NATIVE: Final = "maxapi_async native"

Call = Callable[[], Awaitable[None]]
Setup = Callable[[str, int, contextlib.AsyncExitStack], Awaitable[Call]]


class WrongAnswer(Exception):
    """A call returned, but not the answer the server sent."""


def _check_url(url: object) -> None:
    if url != EXPECTED_URL:
        raise WrongAnswer(f"expected image url {EXPECTED_URL!r}, got {url!r}")


# --------------------------------------------------------------------------------------------
# Variants. Each setup builds one client (closed by the exit stack) and returns the call to
# time. Third-party imports live inside the setups, so a missing SDK marks only its variant.
# --------------------------------------------------------------------------------------------


async def _raw_session(concurrency: int, stack: contextlib.AsyncExitStack) -> Any:
    try:
        import aiohttp
    except ImportError as exc:
        raise Unavailable(f"aiohttp is not installed ({exc})") from exc
    return await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    )


async def _setup_raw_aiohttp(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    session = await _raw_session(concurrency, stack)
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


async def _setup_raw_aiohttp_native(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    session = await _raw_session(concurrency, stack)
    endpoint = f"{url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": API_KEY, "Content-Type": "application/json"}

    async def call() -> None:
        payload = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        async with session.post(endpoint, data=json.dumps(payload).encode(), headers=headers) as resp:
            body = await resp.read()
        if resp.status != 200:
            raise WrongAnswer(f"HTTP {resp.status}: {body[:200]!r}")
        parts = json.loads(body)["candidates"][0]["content"]["parts"]
        _check_url(next(p["fileData"]["fileUri"] for p in parts if "fileData" in p))

    return call


def _import_maxapi_client() -> Any:
    # Imported by name and used as Any on purpose: the client is written alongside this file,
    # and the benchmark must run (and type-check) whatever state its API is in. Any failure to
    # import (a half-written module raises more than ImportError) means "unavailable".
    try:
        return importlib.import_module("maxapi_async").AsyncMaxAPI
    except Exception as exc:
        raise Unavailable(f"maxapi_async.AsyncMaxAPI is not importable ({describe(exc)})") from exc


async def _maxapi_client(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Any:
    async_max_api = _import_maxapi_client()
    return await stack.enter_async_context(
        async_max_api(api_key=API_KEY, base_url=url, max_concurrency=concurrency)
    )


async def _setup_maxapi_async(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    client = await _maxapi_client(url, concurrency, stack)

    async def call() -> None:
        result = await client.images.generate(PROMPT, aspect_ratio="1:1")
        _check_url(result.images[0].url)

    return call


async def _setup_maxapi_native(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    client = await _maxapi_client(url, concurrency, stack)
    models = getattr(client, "models", None)
    if models is None or not callable(getattr(models, "generate_content", None)):
        raise Unavailable("AsyncMaxAPI has no models.generate_content")

    async def call() -> None:
        result = await models.generate_content(model=MODEL, contents=PROMPT)
        _check_url(result.images[0].url)

    return call


async def _setup_openai(url: str, concurrency: int, stack: contextlib.AsyncExitStack) -> Call:
    try:
        import httpx2
        import openai
    except ImportError as exc:
        raise Unavailable(f"openai SDK is not installed ({exc})") from exc

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
        raise Unavailable(f"google-genai is not installed ({exc})") from exc

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
    api: str  # IMAGES or NATIVE: which answer it asks for
    baseline: str  # the raw aiohttp variant on the same API


VARIANTS: Final = (
    Variant(RAW, _setup_raw_aiohttp, IMAGES, RAW),
    Variant(MAXAPI, _setup_maxapi_async, IMAGES, RAW),
    Variant(OPENAI, _setup_openai, IMAGES, RAW),
    Variant(GENAI, _setup_google_genai, NATIVE, RAW_NATIVE),
    Variant(RAW_NATIVE, _setup_raw_aiohttp_native, NATIVE, RAW_NATIVE),
    Variant(MAXAPI_NATIVE, _setup_maxapi_native, NATIVE, RAW_NATIVE),
)
VARIANTS_BY_NAME: Final = {variant.name: variant for variant in VARIANTS}
#: The variants each scenario reads (google-genai serves both).
SCENARIOS: Final = {
    "overhead": (RAW, MAXAPI, OPENAI, GENAI),
    "native": (RAW_NATIVE, MAXAPI_NATIVE, GENAI),
}


# --------------------------------------------------------------------------------------------
# Child process: one variant, one measurement.
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one child reports: status is ok, error or unavailable."""

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


VariantSummary = Summary[Variant, RunResult]


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
                    first_failure = describe(exc)

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


def child(args: argparse.Namespace) -> int:
    variant = VARIANTS_BY_NAME[args.child]
    return child_main(_measure(variant, args.url, args.calls, args.concurrency, args.warmup))


# --------------------------------------------------------------------------------------------
# Parent process: server, rounds, report.
# --------------------------------------------------------------------------------------------


def measure_once(variant: Variant, url: str, args: argparse.Namespace) -> RunResult:
    argv = ["--child", variant.name, "--url", url, "--calls", str(args.calls)]
    argv += ["--concurrency", str(args.concurrency), "--warmup", str(args.warmup)]
    return RunResult(**run_child(Path(__file__), argv, timeout=args.child_timeout))


_MEDIAN_OF: Final = ("cpu_us_per_request", "wall_s", "requests_per_s")


def collect(args: argparse.Namespace, *, log: bool = True) -> list[VariantSummary]:
    """Start the server; run every variant once per round, round robin; summarize."""
    with running_server("minimal") as url:
        runs = round_robin(
            args.variants,
            args.rounds,
            lambda variant: measure_once(variant, url, args),
            lambda r: f"{r.cpu_us_per_request:.0f} µs/request CPU, {r.wall_s:.2f} s",
            log=log,
        )
    summaries = [summarize(v, runs[v.name], _MEDIAN_OF) for v in args.variants]
    by_name = {s.name: s for s in summaries}
    for s in summaries:
        mine, baseline = s.get("cpu_us_per_request"), by_name.get(s.variant.baseline)
        base = baseline.get("cpu_us_per_request") if baseline is not None else None
        if mine is not None and base:
            s.medians["ratio_to_raw"] = mine / base
    return summaries


def render_table(summaries: Sequence[VariantSummary]) -> str:
    lines = [
        "| variant | API | CPU µs/request (median) | wall s | requests/s | ratio to raw aiohttp, same API |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in summaries:
        api = s.variant.api
        if not s.medians:
            lines.append(f"| {s.name} | {api} | {cell(s.problem)} | n/a | n/a | n/a |")
            continue
        ratio = fmt(s.get("ratio_to_raw"), ".2f") + ("x" if "ratio_to_raw" in s.medians else "")
        lines.append(
            f"| {s.name} | {api} | {fmt(s.get('cpu_us_per_request'), '.0f')} | {fmt(s.get('wall_s'), '.2f')}"
            f" | {fmt(s.get('requests_per_s'), '.0f')} | {ratio} |"
        )
    return "\n".join(lines)


def rows(summaries: Sequence[VariantSummary]) -> list[Row]:
    """``run.py``'s rows for the scenarios these summaries cover (overhead, native)."""
    by_name = {s.name: s for s in summaries}

    def cpu(name: str) -> float | None:
        s = by_name.get(name)
        return None if s is None else s.get("cpu_us_per_request")

    def why(*names: str) -> str:
        for name in names:
            s = by_name.get(name)
            if s is None:
                return f"{name} not run"
            if not s.medians:
                return f"{name} {s.problem}"
        return ""

    out: list[Row] = []
    for scenario, (raw, ours, sdks) in {
        "overhead": (RAW, MAXAPI, (OPENAI, GENAI)),
        "native": (RAW_NATIVE, MAXAPI_NATIVE, (GENAI,)),
    }.items():
        if not any(name in by_name for name in (raw, ours)):
            continue
        mine, base = cpu(ours), cpu(raw)
        values = {MAXAPI: mine, BASELINE: base, GENAI: cpu(GENAI)}
        if OPENAI in sdks:
            values[OPENAI] = cpu(OPENAI)
        out.append(Row(scenario, "client CPU per call (µs)", values))
        ratio = mine / base if mine is not None and base else None
        out.append(
            judged(
                scenario,
                f"CPU per call, {ours} / {raw}",
                {MAXAPI: ratio},
                spec=".2fx",
                target=f"<= {TARGET_RATIO}x",
                ok=lambda r: r <= TARGET_RATIO,
                detail=f"{ratio:.2f}x: {mine:.0f} vs {base:.0f} µs" if ratio else "",
                missing=why(ours, raw),
            )
        )
        measured = [(value, name) for name in sdks if (value := cpu(name)) is not None]
        fastest_cpu, fastest = min(measured) if measured else (None, "")
        factor = fastest_cpu / mine if fastest_cpu is not None and mine else None
        out.append(
            judged(
                scenario,
                f"CPU per call, faster SDK / {ours}",
                {MAXAPI: factor},
                spec=".1fx",
                target=f">= {TARGET_SDK_FACTOR:g}x",
                ok=lambda f: f >= TARGET_SDK_FACTOR,
                detail=f"{factor:.1f}x: {fastest} {fastest_cpu:.0f} vs {mine:.0f} µs" if factor else "",
                missing=why(ours, *sdks),
            )
        )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Client-side CPU cost per request, maxapi_async vs raw aiohttp and SDKs.",
        epilog="variants: " + ", ".join(v.name for v in VARIANTS),
    )
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per run (2000)")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent calls (100)")
    add_round_options(
        parser, rounds=3, warmup=100, warmup_help="unmeasured calls first", example="raw aiohttp,maxapi_async"
    )
    add_child_options(parser, list(VARIANTS_BY_NAME), timeout=120.0)
    args = parser.parse_args(argv)
    check_args(parser, args, ("calls", "concurrency", "rounds"))
    names = choose(parser, args.only, list(VARIANTS_BY_NAME), default=list(VARIANTS_BY_NAME))
    args.variants = [VARIANTS_BY_NAME[name] for name in names]
    return args


def report(args: argparse.Namespace, summaries: Sequence[VariantSummary]) -> Report:
    per_round = []
    for s in summaries:
        cpu = ", ".join(
            f"{run.cpu_us_per_request:.0f}" if run.status == "ok" else run.status for run in s.runs
        )
        per_round.append(f"- {s.name}: CPU µs/request per round: {cpu}")
        if s.ok_runs and s.problem:
            per_round.append(f"  (some rounds failed: {s.problem})")
    table = rows(summaries)
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "settings": {
            "calls": args.calls,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "warmup": args.warmup,
        },
        "targets": [row.as_json() for row in table if row.verdict],
        "variants": [
            {
                "name": s.name,
                "api": s.variant.api,
                "medians": s.medians,
                "runs": [asdict(run) for run in s.runs],
            }
            for s in summaries
        ],
    }
    problems = [f"{s.name}: {s.problem}" for s in summaries if any(run.status == "error" for run in s.runs)]
    return Report(render_table(summaries) + "\n\n" + "\n".join(per_round), table, data, problems)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    header = (
        f"# client overhead: {args.calls} calls x concurrency {args.concurrency}, "
        f"{args.rounds} round(s), warm-up {args.warmup}\n{machine_line('minimal')}"
    )
    return script_main(header, lambda: report(args, collect(args)), args.json)


if __name__ == "__main__":
    sys.exit(main())
