"""The library's own CPU per call, without the network: what ``overhead.py`` cannot isolate.

Each call runs the whole client path (argument checks, the request spec, the retry wrapper's first
attempt, reading the answer, assets, cost) with the transport's ``send`` replaced by a function
that encodes the body, as the transport would, and returns a canned 200 answer at once. No
socket, no event-loop traffic: the figures move by a few percent between runs where the network
benchmarks move by ten, which makes this the script to check a change to the library's own work.

It reaches into the client (``client._transport``) on purpose: that is the seam it measures.

Answers: the usual ones of ``overhead.py`` (images by URL; a ``generateContent`` answer of text and
``fileData``), and the general paths beside them: a ``b64_json`` images answer and the wire
spec's ``generateContent`` answer (``inlineData`` plus its CDN copy), each carrying a 64x64 PNG.

Run: ``python benchmarks/library.py [--calls 5000] [--blocks 7]``: one markdown table, the median
and the fastest block's CPU µs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _harness import API_KEY, MODEL, PROMPT
from _servers import MinimalApp


def _bodies(png_b64: str) -> dict[str, bytes]:
    uri = MinimalApp.IMAGE_URL
    parts = [
        {"text": "ok"},
        {"inlineData": {"mimeType": "image/png", "data": png_b64}},
        {"fileData": {"mimeType": "image/png", "fileUri": uri}},
    ]
    inline_answer = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1290, "totalTokenCount": 1295},
        "modelVersion": "gemini-2.5-flash-image",
    }
    b64_answer = {"created": 1732400000, "data": [{"b64_json": png_b64, "revised_prompt": None}]}
    return {
        "images, URL answer": MinimalApp.IMAGES_BODY,
        "generate_content, URL answer": MinimalApp.GEMINI_BODY,
        "images, b64_json answer": json.dumps(b64_answer).encode(),
        "generate_content, inlineData + CDN copy": json.dumps(inline_answer).encode(),
    }


async def _measure(name: str, body: bytes, calls: int, blocks: int) -> list[float]:
    from multidict import CIMultiDict, CIMultiDictProxy

    import maxapi_async
    from maxapi_async._protocol import calls as _protocol
    from maxapi_async._transport.bodies import RawResponse

    length = str(len(body))
    headers = CIMultiDictProxy(
        CIMultiDict({"Content-Type": "application/json", "x-request-id": "req-1", "Content-Length": length})
    )
    client = maxapi_async.AsyncMaxAPI(api_key=API_KEY, base_url="http://127.0.0.1:1")

    async def send(spec: Any, **_: Any) -> RawResponse:  # timeout, limits, idempotency_key
        if spec.body is None and spec.json is not None:
            _protocol.encode_json(spec.json)  # what the transport does with a body not encoded yet
        return RawResponse(200, headers, body)

    client._transport.send = send  # type: ignore[method-assign]  # the seam this script measures
    call: Callable[[], Awaitable[Any]]
    if name.startswith("images"):
        call = lambda: client.images.generate(PROMPT, aspect_ratio="1:1")  # noqa: E731
    else:
        call = lambda: client.models.generate_content(model=MODEL, contents=PROMPT)  # noqa: E731
    result = await call()
    if not result.images:
        raise SystemExit(f"{name}: the answer gave no image")
    for _ in range(min(calls, 2000)):  # warm-up: memos filled, code specialised
        await call()
    per_call: list[float] = []
    for _ in range(blocks):
        gc.collect()
        started = time.process_time()
        for _ in range(calls):
            await call()
        per_call.append((time.process_time() - started) / calls * 1e6)
    await client.aclose()
    return per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=5000, help="calls per block (5000)")
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks; median and fastest (7)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.blocks < 1:
        parser.error("--calls and --blocks must be at least 1")

    from maxapi_async.testing import make_png

    bodies = _bodies(base64.b64encode(make_png(64, 64)).decode())
    print("| call, answer | CPU µs per call (median) | fastest block |")
    print("|---|---:|---:|")
    for name, body in bodies.items():
        runs = asyncio.run(_measure(name, body, args.calls, args.blocks))
        print(f"| {name} | {statistics.median(runs):.1f} | {min(runs):.1f} |")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
