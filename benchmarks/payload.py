"""Big answers: decoding four 1.5 MB images per call, and how long the event loop stalls meanwhile.

What is measured
    A local server (``_servers.py payload``, in its own process) answers every call with
    ``--images`` images (default 4) of ``--image-bytes`` bytes each (default 1,500,000: random
    bytes behind a real PNG header, so they do not compress), base64-encoded: about 2 MB of text
    per image, 8 MB per answer. ``POST /v1/images/generations`` carries them as ``b64_json``
    (OpenAI), ``POST ...:generateContent`` as ``inlineData`` parts (Gemini).

    A child makes ``--calls`` calls (default 20) one after another, each checked (4 images of the
    right size, in bytes), and reports

    * decode throughput: MB (10^6 bytes) of image bytes per second of wall time over the calls;
    * the longest event-loop stall meanwhile: a probe coroutine runs ``await asyncio.sleep(0.001)``
      in a loop next to the calls and records the largest overshoot;
    * the plain baseline, in the same child on the same answer body (fetched once): ``json.loads``
      and ``base64.b64decode`` of every image in a loop, ``--calls`` times, with no HTTP; its
      throughput, and its longest single decode (what a client decoding on the event loop
      would stall it for);
    * the client CPU time per call.

Variants (each run a fresh child; ``--rounds`` rounds, round robin; medians)
    maxapi_async b64_json        ``images.generate(prompt, n=4, response_format="b64_json")``,
                                 ``image.data`` of each image
    openai SDK b64_json          ``images.generate(..., n=4, response_format="b64_json")`` and
                                 ``base64.b64decode`` of each ``b64_json`` (the SDK leaves it text)
    maxapi_async inlineData      ``models.generate_content(model=..., contents=...)``
    google-genai inlineData      ``aio.models.generate_content(...)`` (its ``Blob.data`` is bytes)
    raw aiohttp b64_json,        ``session.post``, ``json.loads``, ``base64.b64decode`` of each
    raw aiohttp inlineData       image, all on the event loop: the least a client can do, with HTTP
                                 (``run.py`` leaves these two out: its table has no column for them)

Peak memory (``memory.py``, one child per answer shape of the maxapi_async variants run)
    tracemalloc's peak while one answer is read, as a multiple of its image bytes, and the
    plain loop's (``json.loads`` and ``b64decode`` with the body held) as baseline.

Targets (``target ...`` lines; the exit code is 0 whether or not they are met)
    for maxapi_async, per answer shape: longest stall < 20 ms; throughput >= 0.8x the plain loop;
    peak memory <= 2.75x the image bytes.

Run
    python benchmarks/payload.py                       # 20 calls x 4 variants x 3 rounds, ~15 s
    python benchmarks/payload.py --calls 5 --rounds 1 --only "maxapi_async b64_json"

Exit codes: 0 measured, 1 a run failed or the server could not be started, 2 bad arguments,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import memory
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
    add_child_options,
    add_round_options,
    cell,
    check_args,
    child_main,
    choose,
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

B64: Final = "b64_json"
INLINE: Final = "inlineData"
RAW: Final = "raw aiohttp"
PROBE_SLEEP_S: Final = 0.001
TARGET_STALL_MS: Final = 20.0
TARGET_THROUGHPUT_RATIO: Final = 0.8

# A call returns the decoded images' sizes in bytes.
Call = Callable[[], Awaitable[list[int]]]
Setup = Callable[[str, int, contextlib.AsyncExitStack], Awaitable[Call]]


class WrongAnswer(Exception):
    """A call returned, but not the answer the server sent."""


async def _setup_maxapi_b64(url: str, images: int, stack: contextlib.AsyncExitStack) -> Call:
    from maxapi_async import AsyncMaxAPI

    client = await stack.enter_async_context(AsyncMaxAPI(api_key=API_KEY, base_url=url))

    async def call() -> list[int]:
        result = await client.images.generate(
            PROMPT, n=images, response_format="b64_json", aspect_ratio="1:1"
        )
        return [len(image.data or b"") for image in result.images]

    return call


async def _setup_maxapi_inline(url: str, images: int, stack: contextlib.AsyncExitStack) -> Call:
    from maxapi_async import AsyncMaxAPI

    client = await stack.enter_async_context(AsyncMaxAPI(api_key=API_KEY, base_url=url))

    async def call() -> list[int]:
        result = await client.models.generate_content(model=MODEL, contents=PROMPT)
        return [len(image.data or b"") for image in result.images]

    return call


async def _setup_openai(url: str, images: int, stack: contextlib.AsyncExitStack) -> Call:
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)
    stack.push_async_callback(client.close)

    async def call() -> list[int]:
        result = await client.images.generate(
            model=MODEL, prompt=PROMPT, n=images, response_format="b64_json"
        )
        return [len(base64.b64decode(item.b64_json or "")) for item in result.data or []]

    return call


async def _setup_genai(url: str, images: int, stack: contextlib.AsyncExitStack) -> Call:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url, api_version="v1beta"))
    stack.push_async_callback(client.aio.aclose)

    async def call() -> list[int]:
        result = await client.aio.models.generate_content(model=MODEL, contents=PROMPT)
        content = result.candidates[0].content if result.candidates else None
        parts = (content.parts if content else None) or []
        return [len(p.inline_data.data or b"") for p in parts if p.inline_data is not None]

    return call


def _raw_aiohttp(shape: str) -> Setup:
    async def setup(url: str, images: int, stack: contextlib.AsyncExitStack) -> Call:
        import aiohttp

        session = await stack.enter_async_context(aiohttp.ClientSession())
        endpoint = url + _path(shape)
        payload = {"model": MODEL, "prompt": PROMPT, "n": images, "response_format": "b64_json"}
        if shape == INLINE:
            payload = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}

        async def call() -> list[int]:
            async with session.post(
                endpoint, json=payload, headers={"Authorization": "Bearer bench"}
            ) as resp:
                body = await resp.read()
            return [len(image) for image in memory.plain_images(body, shape)]

        return call

    return setup


@dataclass(frozen=True)
class Variant:
    name: str
    shape: str  # B64 or INLINE
    column: str  # its column in run.py's table (RAW: none)
    setup: Setup


VARIANTS: Final = (
    Variant("maxapi_async b64_json", B64, MAXAPI, _setup_maxapi_b64),
    Variant("openai SDK b64_json", B64, OPENAI, _setup_openai),
    Variant("maxapi_async inlineData", INLINE, MAXAPI, _setup_maxapi_inline),
    Variant("google-genai inlineData", INLINE, GENAI, _setup_genai),
    # Not in run.py's table: the least a client can do (json.loads, b64decode, on the event loop).
    Variant("raw aiohttp b64_json", B64, RAW, _raw_aiohttp(B64)),
    Variant("raw aiohttp inlineData", INLINE, RAW, _raw_aiohttp(INLINE)),
)
VARIANTS_BY_NAME: Final = {v.name: v for v in VARIANTS}
#: The variants run.py runs (its table has no column for raw aiohttp).
TABLE_VARIANTS: Final = [v.name for v in VARIANTS if v.column != RAW]


# --------------------------------------------------------------------------------------------
# Child process.
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    status: str
    calls: int = 0
    image_mb: float = 0.0  # image bytes per call, 10^6
    wall_s: float = 0.0
    cpu_s: float = 0.0
    max_stall_ms: float = 0.0
    probe_ticks: int = 0
    plain_s: float = 0.0
    plain_max_decode_ms: float = 0.0
    body_mb: float = 0.0
    message: str = ""

    @property
    def mb_per_s(self) -> float:
        return self.calls * self.image_mb / self.wall_s

    @property
    def plain_mb_per_s(self) -> float:
        return self.calls * self.image_mb / self.plain_s

    @property
    def ratio(self) -> float:
        return self.mb_per_s / self.plain_mb_per_s

    @property
    def cpu_ms_per_call(self) -> float:
        return self.cpu_s / self.calls * 1e3


VariantSummary = Summary[Variant, RunResult]


def _path(shape: str) -> str:
    return "/v1/images/generations" if shape == B64 else f"/v1beta/models/{MODEL}:generateContent"


async def _fetch_body(url: str, shape: str) -> bytes:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(url + _path(shape), json={}) as resp:
        return await resp.read()


async def _probe(stop: asyncio.Event, out: list[float]) -> None:
    """Sleep 1 ms at a time until ``stop``; ``out`` = [longest overshoot in s, ticks]."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(PROBE_SLEEP_S)
        out[0] = max(out[0], time.perf_counter() - started - PROBE_SLEEP_S)
        out[1] += 1


async def _measure(variant: Variant, args: argparse.Namespace) -> RunResult:
    expected = [args.image_bytes] * args.images
    result = RunResult("ok", calls=args.calls, image_mb=args.images * args.image_bytes / 1e6)

    # The plain baseline, on the body the server sends for this shape.
    body = await _fetch_body(args.url, variant.shape)
    result.body_mb = len(body) / 1e6
    if [len(image) for image in memory.plain_images(body, variant.shape)] != expected:
        return RunResult("error", message="the plain decode did not give the expected image bytes")
    gc.collect()
    longest = 0.0
    started = time.perf_counter()
    for _ in range(args.calls):
        one = time.perf_counter()
        memory.plain_images(body, variant.shape)
        longest = max(longest, time.perf_counter() - one)
    result.plain_s = time.perf_counter() - started
    result.plain_max_decode_ms = longest * 1e3
    del body

    async with contextlib.AsyncExitStack() as stack:
        call = await variant.setup(args.url, args.images, stack)
        for _ in range(args.warmup):
            if (sizes := await call()) != expected:
                raise WrongAnswer(f"warm-up: image sizes {sizes}, expected {expected}")
        gc.collect()
        stop = asyncio.Event()
        probe_out = [0.0, 0.0]
        probe = asyncio.ensure_future(_probe(stop, probe_out))
        await asyncio.sleep(0.01)  # the probe is running
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(args.calls):
            if (sizes := await call()) != expected:
                raise WrongAnswer(f"image sizes {sizes}, expected {expected}")
        result.wall_s = time.perf_counter() - wall_start
        result.cpu_s = time.process_time() - cpu_start
        stop.set()
        await probe
    result.max_stall_ms = probe_out[0] * 1e3
    result.probe_ticks = int(probe_out[1])
    return result


def child(args: argparse.Namespace) -> int:
    return child_main(_measure(VARIANTS_BY_NAME[args.child], args))


# --------------------------------------------------------------------------------------------
# Parent process.
# --------------------------------------------------------------------------------------------


_MEDIAN_OF: Final = (
    "mb_per_s",
    "plain_mb_per_s",
    "ratio",
    "max_stall_ms",
    "plain_max_decode_ms",
    "cpu_ms_per_call",
)


@dataclass
class Collected:
    """The variants' runs, and the peak memory of maxapi_async's answer shapes."""

    summaries: list[VariantSummary]
    memory: list[memory.MemoryResult]


def collect(args: argparse.Namespace, *, log: bool = True) -> Collected:
    server_options = ["--images", str(args.images), "--image-bytes", str(args.image_bytes)]
    with running_server("payload", *server_options) as url:

        def measure(variant: Variant) -> RunResult:
            argv = ["--child", variant.name, "--url", url, "--calls", str(args.calls)]
            argv += ["--warmup", str(args.warmup), *server_options]
            return RunResult(**run_child(Path(__file__), argv, timeout=args.child_timeout))

        runs = round_robin(
            args.variants,
            args.rounds,
            measure,
            lambda r: f"{r.mb_per_s:.0f} MB/s ({r.ratio:.2f}x plain), longest stall {r.max_stall_ms:.1f} ms",
            log=log,
        )
        args.shapes = [
            shape
            for shape in (B64, INLINE)
            if any(v.shape == shape and v.column == MAXAPI for v in args.variants)
        ]
        peaks = memory.collect(args, url=url, log=log)
    return Collected([summarize(v, runs[v.name], _MEDIAN_OF) for v in args.variants], peaks)


_COLUMNS: Final = (
    ("MB/s", "mb_per_s", ".0f"),
    ("plain loop MB/s", "plain_mb_per_s", ".0f"),
    ("ratio to plain", "ratio", ".2f"),
    ("longest stall ms", "max_stall_ms", ".1f"),
    ("plain: longest decode ms", "plain_max_decode_ms", ".1f"),
    ("CPU ms/call", "cpu_ms_per_call", ".1f"),
)


def render_table(summaries: Sequence[VariantSummary]) -> str:
    lines = [
        "| variant | " + " | ".join(title for title, _, _ in _COLUMNS) + " |",
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    for s in summaries:
        if not s.medians:
            cells = [cell(s.problem)] + ["n/a"] * (len(_COLUMNS) - 1)
        else:
            cells = [fmt(s.get(key), spec) for _, key, spec in _COLUMNS]
        lines.append(f"| {s.variant.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cells(
    group: Sequence[VariantSummary],
    key: str,
    ours: VariantSummary,
    baseline_key: str | None,
) -> dict[str, float | None]:
    """One number per variant of ``group`` by its column; the baseline's from maxapi_async's child."""
    cells = {s.variant.column: s.get(key) for s in group}
    if baseline_key is not None:
        cells[BASELINE] = ours.get(baseline_key)
    return cells


def rows(summaries: Sequence[VariantSummary]) -> list[Row]:
    """``run.py``'s rows (and this script's ``target`` lines); baseline: the plain loop."""
    out: list[Row] = []
    for shape in (B64, INLINE):
        group = [s for s in summaries if s.variant.shape == shape]
        ours = next((s for s in group if s.variant.column == MAXAPI), None)
        if ours is None:
            continue

        out.append(
            Row(
                "payload",
                f"{shape}: decode throughput (MB/s)",
                _cells(group, "mb_per_s", ours, "plain_mb_per_s"),
            )
        )
        out.append(
            judged(
                "payload",
                f"{shape}: throughput / plain loop",
                _cells(group, "ratio", ours, None),
                spec=".2fx",
                target=f">= {TARGET_THROUGHPUT_RATIO:g}x",
                ok=lambda r: r >= TARGET_THROUGHPUT_RATIO,
                missing=ours.problem,
            )
        )
        out.append(
            judged(
                "payload",
                f"{shape}: longest event-loop stall (ms)",
                _cells(group, "max_stall_ms", ours, "plain_max_decode_ms"),
                spec=".1f",
                target=f"< {TARGET_STALL_MS:g}",
                ok=lambda ms: ms < TARGET_STALL_MS,
                missing=ours.problem,
            )
        )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Decode throughput and event-loop stalls on answers carrying big inline images.",
        epilog="variants: " + ", ".join(v.name for v in VARIANTS),
    )
    parser.add_argument("--calls", type=int, default=20, help="measured calls per run, one at a time (20)")
    add_round_options(
        parser, rounds=3, warmup=2, warmup_help="unmeasured calls first", example="maxapi_async b64_json"
    )
    parser.add_argument("--images", type=int, default=4, help="images per answer (4)")
    parser.add_argument("--image-bytes", type=int, default=1_500_000, help="bytes per image (1500000)")
    add_child_options(parser, list(VARIANTS_BY_NAME), timeout=120.0)
    args = parser.parse_args(argv)
    check_args(parser, args, ("calls", "rounds", "images"))
    if args.image_bytes < 100:
        parser.error("--image-bytes must be at least 100")
    names = choose(parser, args.only, list(VARIANTS_BY_NAME), default=list(VARIANTS_BY_NAME))
    args.variants = [VARIANTS_BY_NAME[name] for name in names]
    return args


def report(args: argparse.Namespace, collected: Collected) -> Report:
    summaries, peaks = collected.summaries, collected.memory
    table = rows(summaries) + memory.rows(peaks)
    problems = [f"{s.variant.name}: {s.problem}" for s in summaries if s.problem]
    problems += [f"memory {r.shape}: {r.message}" for r in peaks if r.status != "ok"]
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "settings": {
            "calls": args.calls,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "images": args.images,
            "image_bytes": args.image_bytes,
        },
        "targets": [row.as_json() for row in table if row.verdict],
        "variants": [
            {"name": s.variant.name, "medians": s.medians, "runs": [asdict(run) for run in s.runs]}
            for s in summaries
        ],
        "memory": memory.report_data(peaks),
    }
    tables = [render_table(summaries), "", memory.render_table(peaks)] if peaks else [render_table(summaries)]
    text = "\n".join([*tables, "", *(f"- {problem}" for problem in problems)])
    return Report(text.rstrip(), table, data, problems)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    header = (
        f"# payload: {args.images} images of {args.image_bytes:,} bytes per answer, {args.calls} calls"
        f" one at a time, {args.rounds} round(s), warm-up {args.warmup}\n{machine_line('payload')}"
    )
    return script_main(header, lambda: report(args, collect(args)), args.json)


if __name__ == "__main__":
    sys.exit(main())
