"""A separate process for tests/test_resume.py: submit a task in one process, await it in another.

    python _resume_worker.py submit generation|operation   -> prints json.dumps(handle.to_dict())
    python _resume_worker.py wait < handle.json             -> prints the image's pixel size, "WxH"

The API key and base URL come from MAXAPI_KEY and MAXAPI_BASE_URL, as a deployed worker's would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from maxapi_async import AsyncMaxAPI, PollPolicy, TaskHandle
from maxapi_async.testing import png_size


async def submit(kind: str) -> None:
    async with AsyncMaxAPI(poll_policy=PollPolicy.instant()) as client:
        handle: TaskHandle[Any]
        if kind == "operation":
            handle = await client.models.generate_content(
                contents="a glass cube", aspect_ratio="16:9", wait=False
            )
        else:
            handle = await client.images.generate("a glass cube", aspect_ratio="16:9", wait=False)
        print(json.dumps(handle.to_dict()))


async def wait() -> None:
    data = json.loads(sys.stdin.read())
    async with AsyncMaxAPI(poll_policy=PollPolicy.instant()) as client:
        handle = client.tasks.from_dict(data)
        result = await handle.wait(timeout=20)
        image = await result.images[0].read()
    size = png_size(image)
    assert size is not None, "not a PNG"
    print(f"{size[0]}x{size[1]}")


def main() -> None:
    command = sys.argv[1]
    if command == "submit":
        asyncio.run(submit(sys.argv[2]))
    elif command == "wait":
        asyncio.run(wait())
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
