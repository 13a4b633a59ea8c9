"""The Redis store alone: round trips per item, and how many items per second one Redis serves.

What is measured
    ``--items`` items (default 20,000) go through the store exactly as the batch runner takes
    one through it, with no MaxAPI behind: ``claim`` -> ``reserve`` (against a budget that
    covers them all) -> ``submitting`` -> ``submitted`` (a small task description) ->
    ``done`` (a record with one image, as the runner writes it). ``--processes`` worker
    processes (default 2) each run ``--concurrency`` coroutines (default 64) over their share
    of the items, each process with one ``RedisStore`` (one connection pool), as Celery
    workers would. A second variant adds the shared poll limiter: one ``RedisPollLimiter.wait``
    per item (a task that finishes on its first poll), at a rate high enough never to wait.

    Reported, per variant:

    * round trips per item: the commands the workers' redis-py clients sent (counted in the
      client), renewals of leases included;
    * Redis commands per item, counted by Redis itself (``INFO commandstats``: the scripts'
      own commands too), the work each round trip does;
    * Redis CPU per item (``INFO cpu``, user + system of the server, main thread and all), and
      what it gives: items per second one Redis core serves (``1 / CPU per item``) when the
      clients are elsewhere;
    * wall time and items/s on this machine, where the client processes share its cores with
      Redis (so this figure is the clients' limit here, not Redis's);
    * the clients' CPU per item.

    The budget is checked too: the store's ``committed`` credits must equal the items' cost.

Run
    python benchmarks/store.py                          # 20,000 items, 2 x 64, ~20 s on 2 cores
    python benchmarks/store.py --items 2000 --processes 1 --concurrency 8
    python benchmarks/store.py --redis redis://10.0.0.5:6379/3   # a Redis of yours (its db is used, then
                                                                 # the batch's keys are deleted)

A redis-server is started on a free loopback port (no persistence) unless ``--redis`` is given.
Exit codes: 0 measured, 1 a run failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
E = 40_000_000  # one official-route image, in nano-credits
RECORD = {
    "event": "done",
    "task_id": "task_000000000001",
    "cost": 0.04,
    "images": [
        {
            "url": "https://cdn.maxapi.dev/a/0123456789abcdef.png",
            "mime_type": "image/png",
            "width": 1024,
            "height": 1024,
            "expires_at": "2026-12-01T00:00:00+00:00",
        }
    ],
    "files": ["out/cube-0001.png"],
}


# -- the child: one worker process ---------------------------------------------------------------


async def _child(url: str, name: str, keys: list[str], concurrency: int, poll: bool) -> dict[str, Any]:
    import redis.asyncio

    from maxapi_async._batch.redis_client import RedisPollLimiter
    from maxapi_async._batch.redis_store import RedisStore
    from maxapi_async._batch.store import ItemState

    class Counting(redis.asyncio.Redis):  # type: ignore[type-arg]
        """A redis-py client that counts the commands it sends: each is one round trip."""

        sent = 0

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            Counting.sent += 1
            return await super().execute_command(*args, **options)

    client = Counting.from_url(url)
    store = RedisStore(client, name, lease=30)
    limiter = RedisPollLimiter(client, name) if poll else None
    run = await store.open_run()
    pending = iter(keys)
    budget = E * 10**9

    async def worker() -> None:
        for key in pending:
            state = await run.claim(key)
            assert isinstance(state, ItemState), state
            assert state.status == "new", state
            assert await run.reserve(key, E, budget)
            sent = await run.submitting(key, dict)
            await run.submitted(
                key, sent, {"id": f"task_{key}", "kind": "generation", "idempotency_key": sent}
            )
            if limiter is not None:
                await limiter.wait(1_000_000)
            await run.done(key, RECORD, E)

    await client.ping()
    sent_before = Counting.sent
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    await run.close()
    result["round_trips"] = Counting.sent - sent_before
    await client.aclose()
    return result


# -- the parent ----------------------------------------------------------------------------------


def _counters(url: str) -> tuple[int, float]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
    finally:
        client.close()
    calls = sum(int(v["calls"]) for v in stats.values())
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server), or give --redis URL")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                probe.sendall(b"*1\r\n$4\r\nPING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return process, url
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("redis-server did not start")
        time.sleep(0.02)


def _variant(url: str, args: argparse.Namespace, poll: bool) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    keys = [f"{i:07}" for i in range(args.items)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    calls_before, cpu_before = _counters(url)
    started = time.perf_counter()
    command = [sys.executable, __file__, "--child", url, name, str(args.concurrency), "1" if poll else "0"]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(args.processes)
    ]
    outputs = [
        child.communicate(json.dumps(keys[i :: args.processes]), timeout=600)[0]
        for i, child in enumerate(children)
    ]
    wall = time.perf_counter() - started
    if any(child.returncode for child in children):
        raise SystemExit(f"a worker failed: exit codes {[c.returncode for c in children]}")
    calls_after, cpu_after = _counters(url)
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]

    from maxapi_async._batch.redis_store import RedisStore

    async def check() -> Any:
        store = RedisStore(url, name)
        progress = await store.progress()
        await store.clear()
        await store.aclose()
        return progress

    progress = asyncio.run(check())
    if progress.done != args.items or abs(progress.committed - args.items * E / 1e9) > 1e-6:
        raise SystemExit(f"the store's counts are wrong: {progress}")
    redis_cpu = cpu_after - cpu_before
    return {
        "variant": "item + one poll through the limiter" if poll else "item",
        "items": args.items,
        "round_trips_per_item": sum(r["round_trips"] for r in results) / args.items,
        "redis_commands_per_item": (calls_after - calls_before) / args.items,
        "redis_cpu_us_per_item": redis_cpu / args.items * 1e6,
        "items_per_s_one_redis_core": args.items / redis_cpu if redis_cpu else None,
        "wall_s": wall,
        "items_per_s_here": args.items / wall,
        "client_cpu_us_per_item": sum(r["cpu"] for r in results) / args.items * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        url, name, concurrency, poll = argv[1:5]
        keys = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(_child(url, name, keys, int(concurrency), poll == "1"))), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis", help="a Redis URL to measure instead of a redis-server started here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # this tree's maxapi_async, as in the workers
    if args.items < 1 or args.processes < 1 or args.concurrency < 1:
        parser.error("--items, --processes and --concurrency must be positive")
    with tempfile.TemporaryDirectory() as folder:
        process, url = (None, args.redis) if args.redis else _start_redis(Path(folder))
        try:
            rows = [_variant(url, args, poll=False), _variant(url, args, poll=True)]
            version = _counters_version(url)
        finally:
            if process is not None:
                process.terminate()
                process.wait()
    setup = f"{args.processes} processes x {args.concurrency} coroutines"
    print(f"redis {version}, {setup}, {os.cpu_count()} CPUs\n")
    print(
        "| variant | items | round trips per item | Redis commands per item (in scripts too) "
        "| Redis CPU µs per item | items/s per Redis core | wall s | items/s here | client CPU µs per item |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [
            r["variant"],
            str(r["items"]),
            f"{r['round_trips_per_item']:.2f}",
            f"{r['redis_commands_per_item']:.1f}",
            f"{r['redis_cpu_us_per_item']:.0f}",
            f"{r['items_per_s_one_redis_core']:,.0f}",
            f"{r['wall_s']:.1f}",
            f"{r['items_per_s_here']:,.0f}",
            f"{r['client_cpu_us_per_item']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"redis": version, "args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2
            )
        )
    return 0


def _counters_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
