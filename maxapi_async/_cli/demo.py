"""``maxapi-async demo``: every path of the client, against a fake MaxAPI on loopback.

Starts :class:`~maxapi_async.testing.FakeMaxAPI` (a real HTTP server on 127.0.0.1 that
speaks MaxAPI's wire format and serves real PNGs of the exact sizes), then drives the
real client through it: synchronous generations, an edit composing two reference
images, a queued generation, a Gemini-native call, a queued Gemini operation and a small
concurrent batch. The images land in ``./maxapi-demo/``; a summary line tells images,
API calls, estimated credits and time. No API key and no network are needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .._batch.runner import Batch, GenerateRequest
from .._client.client import AsyncMaxAPI
from .._protocol.models import ImageAsset
from .._protocol.policy import PollPolicy
from .._protocol.pricing import format_credits

__all__ = ["DEFAULT_OUT", "DemoImage", "DemoReport", "run_demo"]

DEFAULT_OUT = Path("maxapi-demo")

# The fake finishes a queued task on its first poll: poll on a short schedule, not
# the default one tuned for the real service's 1-10 s generations.
_DEMO_POLLING = PollPolicy(earliest=0.05, latest=0.5, spacing=0.1, initial=0.05, jitter=0.0)


@attrs.frozen
class DemoImage:
    """One saved image: which path made it, its size and where it is."""

    step: str
    aspect_ratio: str
    width: int | None
    height: int | None
    path: Path

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}" if self.width and self.height else "?"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "aspect_ratio": self.aspect_ratio,
            "width": self.width,
            "height": self.height,
            "path": str(self.path),
        }


@attrs.frozen
class DemoReport:
    """What the demo did: images saved, API calls made, estimated credits, seconds."""

    images: list[DemoImage]
    calls: int
    credits: float
    seconds: float
    out: Path
    base_url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "images": [i.to_json() for i in self.images],
            "calls": self.calls,
            "credits": round(self.credits, 6),
            "seconds": round(self.seconds, 3),
            "out": str(self.out),
            "base_url": self.base_url,
        }


def _ratio_name(ratio: str) -> str:
    return ratio.replace(":", "x")


async def run_demo(out: Path = DEFAULT_OUT, *, echo: Callable[[str], Any] = print) -> DemoReport:
    """Run the demo, saving images into ``out``; ``echo`` receives one line per step."""
    from ..testing import FakeMaxAPI

    started = time.perf_counter()
    saved: list[DemoImage] = []

    async def keep(step: str, ratio: str, asset: ImageAsset, name: str, note: str = "") -> None:
        path = await asset.save(out / name)
        image = DemoImage(step, ratio, asset.width, asset.height, path)
        saved.append(image)
        echo(f"{step:<10} {ratio:>5}  {image.size:>9}  -> {path}{note}")

    async with (
        FakeMaxAPI(complete_after_polls=1) as fake,
        AsyncMaxAPI(fake.api_key, base_url=fake.base_url, poll_policy=_DEMO_POLLING) as client,
    ):
        echo(f"fake MaxAPI on {fake.base_url} (CDN {fake.cdn_url}): no key, no network")

        # 1. Synchronous generations, three at once on one client.
        ratios = ["1:1", "16:9", "9:16"]
        results = await asyncio.gather(
            *(
                client.images.generate(f"a clean product photo of a glass cube, {r}", aspect_ratio=r)
                for r in ratios
            )
        )
        for ratio, result in zip(ratios, results, strict=True):
            await keep("generate", ratio, result.images[0], f"cube-{_ratio_name(ratio)}.png")

        # 2. An edit composing two reference images (earlier results), bytes inline.
        edited = await client.images.edit(
            "put both cubes on a beach at sunset",
            [results[0].images[0], results[1].images[0]],
            aspect_ratio="21:9",
            response_format="b64_json",
        )
        await keep("edit", "21:9", edited.images[0], "beach-21x9.png", "  (2 reference images)")

        # 3. A queued generation: a task handle at once, the result when it is done.
        handle = await client.images.generate("a glass cube at dusk", aspect_ratio="4:3", wait=False)
        queued = await handle
        note = f"  (task {handle.id}, {handle.status.polls} poll{'s' if handle.status.polls != 1 else ''})"
        await keep("queued", "4:3", queued.images[0], "queued-4x3.png", note)

        # 4. Gemini-native generateContent: text plus a reference image in, an image out.
        native = await client.models.generate_content(
            contents=["the same cube in a forest clearing", results[0].images[0]], aspect_ratio="3:2"
        )
        await keep("gemini", "3:2", native.images[0], "gemini-3x2.png")

        # 5. The same endpoint queued: an operation polled until it is done.
        operation = await client.models.generate_content(
            contents="a glass cube on a snowy mountain", aspect_ratio="5:4", wait=False
        )
        done = await operation
        await keep("operation", "5:4", done.images[0], "operation-5x4.png", f"  (operation {operation.id})")

        # 6. A small batch: bounded concurrency, outcomes as they complete, saved by key.
        items = [
            GenerateRequest(f"a glass cube, variation {i}", key=f"batch-{i}", aspect_ratio="1:1")
            for i in range(4)
        ]
        async for outcome in Batch(client, items, concurrency=4, download_to=out):
            if outcome.ok and outcome.files:
                asset = outcome.images[0]
                saved.append(DemoImage("batch", "1:1", asset.width, asset.height, outcome.files[0]))
                echo(f"{'batch':<10} {'1:1':>5}  {saved[-1].size:>9}  -> {outcome.files[0]}")
            else:
                echo(f"{'batch':<10} {outcome.key}: {outcome.status} {outcome.error or ''}")

        calls = len(fake.requests)
        credits = client.usage.credits
    report = DemoReport(saved, calls, credits, time.perf_counter() - started, out, fake.base_url)
    echo(
        f"{len(saved)} images, {calls} API calls, {format_credits(credits)} credits estimated "
        f"(at MaxAPI's prices; the fake charges nothing), {report.seconds:.2f} s; images in {out}/"
    )
    return report
