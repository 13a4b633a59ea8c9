"""Runs a batch of N generations against MAXAPI_BASE_URL; used by tests/test_batch.py.

    python batch_worker.py JOURNAL COUNT              the batch's state in a journal file
    python batch_worker.py REDIS_URL COUNT NAME [LEASE]   in the RedisStore NAME, shared with other
                                                          workers (a claim lasts LEASE seconds, 5)

Prints one line per outcome (``key status``) and a final ``SUMMARY <json>`` line.
"""

from __future__ import annotations

import asyncio
import json
import sys

import attrs

import maxapi_async


async def main() -> None:
    location, count = sys.argv[1], int(sys.argv[2])
    lease = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    store = maxapi_async.RedisStore(location, sys.argv[3], lease=lease) if len(sys.argv) > 3 else None
    journal = location if store is None else None
    items = [maxapi_async.GenerateRequest(f"cube {i}", key=f"item-{i:03}") for i in range(count)]
    policy = maxapi_async.PollPolicy(earliest=0, latest=0, initial=0.05, max_delay=0.1, jitter=0)
    async with maxapi_async.AsyncMaxAPI(poll_policy=policy, max_polls_per_second=1000) as client:
        batch = maxapi_async.Batch(client, items, journal=journal, store=store, concurrency=4, max_pending=4)
        async for outcome in batch:
            print(outcome.key, outcome.status, flush=True)
        print("SUMMARY", json.dumps(attrs.asdict(batch.summary)), flush=True)
    if store is not None:
        await store.aclose()


asyncio.run(main())
