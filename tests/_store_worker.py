"""A worker process for tests/test_redis_store.py: one more process sharing a RedisStore.

python _store_worker.py claim URL NAME LEASE KEY...      ready, waits for "go", claims every key,
                                                        prints the keys it got, holds them until
                                                        stdin closes
python _store_worker.py reserve URL NAME BUDGET ESTIMATE KEY...   the same, reserving each key
                                                        claimed; prints the keys reserved
python _store_worker.py die URL NAME LEASE KEY           claims KEY, submits it (up to its task),
                                                        prints "ready" and waits to be killed
python _store_worker.py poll URL NAME RATE N              ready, waits for "go", then N polls through
                                                        a RedisPollLimiter; prints their times
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from maxapi_async._batch.redis_client import RedisPollLimiter
from maxapi_async._batch.redis_store import RedisStore
from maxapi_async._batch.store import ItemState


async def _line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _say(value: object) -> None:
    print(json.dumps(value), flush=True)


async def claim(
    url: str, name: str, lease: str, keys: list[str], budget: int | None = None, estimate: int = 0
) -> None:
    store = RedisStore(url, name, lease=float(lease))
    run = await store.open_run()
    await store.progress()  # connected before the start
    _say("ready")
    await _line()
    got = []
    for key in keys:
        state = await run.claim(key)
        if isinstance(state, ItemState) and (budget is None or await run.reserve(key, estimate, budget)):
            got.append(key)
        # A worker's own work between claims: the other processes' claims interleave with this
        # one's, however late the scheduler starts them (the tests check that they did).
        await asyncio.sleep(0.005)
    _say(got)
    await _line()  # holds its claims (renewing them) until stdin closes
    await run.close()
    await store.aclose()


async def die(url: str, name: str, lease: str, key: str) -> None:
    store = RedisStore(url, name, lease=float(lease))
    run = await store.open_run()
    await run.claim(key)
    await run.reserve(key, 40_000_000, None)
    sent = await run.submitting(key, dict)
    await run.submitted(key, sent, {"id": "task_1", "kind": "generation"})
    _say({"idempotency_key": sent})
    await asyncio.sleep(3600)  # killed here, its claim held


async def poll(url: str, name: str, rate: str, count: str) -> None:
    limiter = RedisPollLimiter(url, name)
    await limiter._redis.call(lambda: limiter._redis.client().ping())
    _say("ready")
    await _line()
    times = []
    for _ in range(int(count)):
        await limiter.wait(float(rate))
        times.append(time.time())
    _say(times)
    await limiter.aclose()


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "claim":
        asyncio.run(claim(args[0], args[1], args[2], args[3:]))
    elif command == "reserve":
        url, name, budget, estimate, *keys = args
        asyncio.run(claim(url, name, "30", keys, int(budget), int(estimate)))
    elif command == "die":
        asyncio.run(die(*args))
    elif command == "poll":
        asyncio.run(poll(*args))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
