"""See maxapi_async work with no key and no network: a fake MaxAPI on loopback, the real client.

    python examples/demo.py

Starts :class:`maxapi_async.testing.FakeMaxAPI` (a real HTTP server on 127.0.0.1 that speaks
MaxAPI's wire format and serves real PNGs), then drives the client through it: a generation
for each of three aspect ratios, concurrently, and an edit that composes two of them. The
images land in ``./maxapi-demo/``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import maxapi_async
from maxapi_async.testing import FakeMaxAPI

OUT = Path("maxapi-demo")


async def main() -> None:
    started = time.perf_counter()
    async with FakeMaxAPI() as fake, maxapi_async.AsyncMaxAPI(fake.api_key, base_url=fake.base_url) as client:
        ratios = ["1:1", "16:9", "9:16"]
        results = await asyncio.gather(
            *(client.images.generate(f"a glass cube, {r}", aspect_ratio=r) for r in ratios)
        )
        for ratio, result in zip(ratios, results, strict=True):
            asset = result.images[0]
            path = await asset.save(OUT / f"cube-{ratio.replace(':', 'x')}.png")
            print(f"generate {ratio:>5}: {asset.width}x{asset.height}  -> {path}")

        edited = await client.images.edit(
            "put both cubes on a beach",
            [results[0].images[0], results[1].images[0]],
            aspect_ratio="21:9",
            response_format="b64_json",
        )
        path = await edited.images[0].save(OUT / "beach-21x9.png")
        print(f"edit     21:9: {edited.images[0].width}x{edited.images[0].height} -> {path}")
        calls = len(fake.requests)
    print(f"{calls} API calls in {time.perf_counter() - started:.2f} s; images in ./{OUT}/")


if __name__ == "__main__":
    asyncio.run(main())
