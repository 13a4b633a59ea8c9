"""Peak memory while one answer carrying big inline images is read, as a multiple of its image bytes.

What is measured
    One answer of ``--images`` images (default 4) of ``--image-bytes`` bytes each (default
    1,500,000: the ``payload`` service's images, random bytes behind a real PNG header), base64
    in JSON: about 8 MB of body for 6 MB of images. In a fresh child, with ``tracemalloc``:

    * maxapi_async: the client's whole path from the moment the answer's bytes exist (the
      transport's ``send`` is replaced by a function that returns a fresh copy of the body, as
      ``library.py`` does) to the result in the caller's hands: JSON, structure, base64, assets.
      The body is counted, since it is made inside the traced window.
      ``images.generate(n=4, response_format="b64_json")`` for ``b64_json``,
      ``models.generate_content`` for ``inlineData``. One call first, untraced (imports, the
      worker thread), then one traced call.
    * the plain baseline: ``json.loads`` of the body, then ``base64.b64decode`` of each image,
      the body held by the caller throughout (what ``raw aiohttp`` in ``payload.py`` does).
    * end to end (no target): the same call through real aiohttp against the ``payload``
      service, from the request to the result: the transport's read of the body (its chunks,
      then the joined bytes) included.

    The figure is the traced peak divided by the image bytes: the floor is about 2.3x (the body
    once, plus the images); JSON parsing holds the body and its strings at once (about 2.7x).

Target (``target ...`` lines): maxapi_async's peak <= 2.75x the image bytes, per answer shape.

Run
    python benchmarks/memory.py                        # two shapes, one child each, ~2 s
    python benchmarks/memory.py --only b64_json --image-bytes 300000

``payload.py`` (and so ``run.py``'s payload scenario) runs this too and adds its rows.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from _harness import (
    API_KEY,
    BASELINE,
    MAXAPI,
    MODEL,
    PROMPT,
    Report,
    Row,
    add_child_options,
    cell,
    child_main,
    choose,
    fmt,
    judged,
    machine,
    machine_line,
    run_child,
    running_server,
    script_main,
)
from _servers import PayloadApp

B64: Final = "b64_json"
INLINE: Final = "inlineData"
SHAPES: Final = (B64, INLINE)
TARGET_RATIO: Final = 2.75
MB: Final = 1e6


@dataclass
class MemoryResult:
    status: str
    shape: str = ""
    image_bytes: int = 0
    body_bytes: int = 0
    peak_bytes: int = 0  # maxapi_async, from the body's bytes on
    plain_peak_bytes: int = 0  # json.loads + b64decode, the body held throughout
    end_to_end_peak_bytes: int = 0  # maxapi_async through aiohttp, from the request on
    message: str = ""

    @property
    def ratio(self) -> float:
        return self.peak_bytes / self.image_bytes

    @property
    def plain_ratio(self) -> float:
        return self.plain_peak_bytes / self.image_bytes

    @property
    def end_to_end_ratio(self) -> float:
        return self.end_to_end_peak_bytes / self.image_bytes


def _body(shape: str, images: int, image_bytes: int) -> bytes:
    app = PayloadApp(images, image_bytes, seed=1)
    return app.images_body if shape == B64 else app.gemini_body


def plain_images(body: bytes, shape: str) -> list[bytes]:
    """What a plain client does with the answer: ``json.loads``, then ``b64decode`` each image."""
    obj = json.loads(body)
    if shape == B64:
        texts = [item["b64_json"] for item in obj["data"]]
    else:
        texts = [
            p["inlineData"]["data"] for p in obj["candidates"][0]["content"]["parts"] if "inlineData" in p
        ]
    return [base64.b64decode(text) for text in texts]


async def _peak(run: Callable[[], Awaitable[Any]]) -> int:
    """The peak of memory allocated while ``await run()`` runs (its result is held meanwhile)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = await run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


def _call(client: Any, shape: str, images: int) -> Callable[[], Awaitable[list[int]]]:
    async def call() -> list[int]:
        if shape == B64:
            result = await client.images.generate(
                PROMPT, n=images, response_format="b64_json", aspect_ratio="1:1"
            )
        else:
            result = await client.models.generate_content(model=MODEL, contents=PROMPT)
        return [len(image.data or b"") for image in result.images]

    return call


async def _measure(args: argparse.Namespace) -> MemoryResult:
    from multidict import CIMultiDict, CIMultiDictProxy

    import maxapi_async
    from maxapi_async._transport.bodies import RawResponse

    shape = args.child
    template = _body(shape, args.images, args.image_bytes)
    result = MemoryResult("ok", shape, args.images * args.image_bytes, len(template))
    expected = [args.image_bytes] * args.images

    # The plain baseline: a copy made inside the traced window, held while it is decoded.
    async def plain() -> list[bytes]:
        body = bytes(bytearray(template))
        return plain_images(body, shape)

    result.plain_peak_bytes = await _peak(plain)

    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", "x-request-id": "req-1"}))

    async def send(spec: Any, **_: Any) -> Any:  # timeout, limits, idempotency_key
        return RawResponse(200, headers, bytes(bytearray(template)))  # the transport's fresh bytes

    async with maxapi_async.AsyncMaxAPI(api_key=API_KEY, base_url="http://127.0.0.1:1") as client:
        client._transport.send = send  # the seam library.py measures through
        call = _call(client, shape, args.images)
        if (sizes := await call()) != expected:  # untraced: imports, the worker thread
            return MemoryResult("error", message=f"image sizes {sizes}, expected {expected}")
        result.peak_bytes = await _peak(call)

    if args.url:
        async with maxapi_async.AsyncMaxAPI(api_key=API_KEY, base_url=args.url) as client:
            call = _call(client, shape, args.images)
            await call()
            result.end_to_end_peak_bytes = await _peak(call)
    return result


def child(args: argparse.Namespace) -> int:
    return child_main(_measure(args))


def collect(args: argparse.Namespace, *, url: str | None = None, log: bool = True) -> list[MemoryResult]:
    """One child per shape of ``args.shapes``; the end-to-end figure from the ``payload`` service
    at ``url`` (one is started when ``None``)."""
    options = ["--images", str(args.images), "--image-bytes", str(args.image_bytes)]
    if url is None:
        with running_server("payload", *options) as started:
            return collect(args, url=started, log=log)
    out: list[MemoryResult] = []
    for shape in args.shapes:
        argv = ["--child", shape, "--url", url, *options]
        result = MemoryResult(
            **{"shape": shape, **run_child(Path(__file__), argv, timeout=args.child_timeout)}
        )
        if log:
            shown = f"{result.ratio:.2f}x the image bytes" if result.status == "ok" else result.message
            print(f"# memory {shape}: {shown}", file=sys.stderr, flush=True)
        out.append(result)
    return out


def rows(results: Sequence[MemoryResult]) -> list[Row]:
    """The payload scenario's memory rows: maxapi_async's peak, the plain loop's as baseline."""
    out: list[Row] = []
    for r in results:
        ok = r.status == "ok"
        values: dict[str, float | None] = {
            MAXAPI: r.ratio if ok else None,
            BASELINE: r.plain_ratio if ok else None,
        }
        out.append(
            judged(
                "payload",
                f"{r.shape}: peak memory / image bytes",
                values,
                spec=".2fx",
                target=f"<= {TARGET_RATIO:g}x",
                ok=lambda ratio: ratio <= TARGET_RATIO,
                detail=f"{r.ratio:.2f}x: {r.peak_bytes / MB:.1f} MB for {r.image_bytes / MB:.1f} MB"
                if ok
                else "",
                missing=r.message,
            )
        )
    return out


def render_table(results: Sequence[MemoryResult]) -> str:
    lines = [
        "| shape | image MB | body MB | maxapi_async peak MB | / images | plain loop peak MB | / images"
        " | end to end peak MB | / images |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.shape} | {cell(r.message)} |" + " n/a |" * 7)
            continue
        e2e = r.end_to_end_peak_bytes or None
        lines.append(
            f"| {r.shape} | {r.image_bytes / MB:.1f} | {r.body_bytes / MB:.1f} | {r.peak_bytes / MB:.1f}"
            f" | {r.ratio:.2f}x | {r.plain_peak_bytes / MB:.1f} | {r.plain_ratio:.2f}x"
            f" | {fmt(e2e and e2e / MB, '.1f')} | {fmt(e2e and r.end_to_end_ratio, '.2f')}x |"
        )
    return "\n".join(lines)


def report_data(results: Sequence[MemoryResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=4, help="images per answer (4)")
    parser.add_argument("--image-bytes", type=int, default=1_500_000, help="bytes per image (1500000)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Peak memory while an answer of big inline images is read.")
    add_options(parser)
    add_child_options(parser, SHAPES, timeout=120.0)
    parser.add_argument("--only", help=f"comma-separated shapes, e.g. {B64}")
    args = parser.parse_args(argv)
    if args.images < 1 or args.image_bytes < 100:
        parser.error("--images must be at least 1 and --image-bytes at least 100")
    args.shapes = choose(parser, args.only, SHAPES, default=SHAPES)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    header = (
        f"# memory: one answer of {args.images} images of {args.image_bytes:,} bytes\n"
        f"{machine_line('payload')}"
    )

    def measure() -> Report:
        results = collect(args)
        table = rows(results)
        data = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine(),
            "settings": {"images": args.images, "image_bytes": args.image_bytes},
            "targets": [row.as_json() for row in table if row.verdict],
            "shapes": report_data(results),
        }
        problems = [f"{r.shape}: {r.message}" for r in results if r.status != "ok"]
        return Report(render_table(results), table, data, problems)

    return script_main(header, measure, args.json)


if __name__ == "__main__":
    sys.exit(main())
