"""AsyncMaxAPI(poll_limiter=...): every poll waits on the limiter; RedisPollLimiter shares the budget."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
from _redis_server import RedisServer

import maxapi_async
from maxapi_async import AsyncMaxAPI, PollPolicy, RedisPollLimiter, RetryPolicy
from maxapi_async.testing import FakeMaxAPI

pytestmark = pytest.mark.anyio

INSTANT = PollPolicy.instant()


def _client(fake: FakeMaxAPI, **options: Any) -> AsyncMaxAPI:
    return AsyncMaxAPI(
        fake.api_key,
        base_url=fake.base_url,
        poll_policy=INSTANT,
        retry_policy=RetryPolicy.instant(),
        **options,
    )


def _polls(fake: FakeMaxAPI) -> list[float]:
    return sorted(r.received_at for r in fake.requests if r.method == "GET")


def _peak(times: list[float]) -> int:
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


class Turnstile:
    """A limiter that lets one poll through per ``admit()``; ``arrival()`` waits for the next poll
    to reach it and gives the rate that poll asked for."""

    def __init__(self) -> None:
        self._arrived_in, self._arrived = anyio.create_memory_object_stream[float](100)
        self._admit, self._admitted = anyio.create_memory_object_stream[None](100)

    async def wait(self, rate: float) -> None:
        self._arrived_in.send_nowait(rate)
        await self._admitted.receive()

    async def arrival(self) -> float:
        with anyio.fail_after(5):
            return await self._arrived.receive()

    def admit(self) -> None:
        self._admit.send_nowait(None)

    def close(self) -> None:
        for stream in (self._arrived_in, self._arrived, self._admit, self._admitted):
            stream.close()


@pytest.mark.fake_maxapi(complete_after_polls=2)
async def test_every_poll_waits_on_the_limiter_with_the_clients_rate(fake_maxapi: FakeMaxAPI) -> None:
    turnstile = Turnstile()
    async with _client(fake_maxapi, poll_limiter=turnstile, max_polls_per_second=7) as client:
        handle = await client.images.generate("a glass cube", wait=False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(handle.wait)
            for polls_before in (0, 1):
                assert await turnstile.arrival() == 7.0  # the poll waits at the turnstile...
                assert len(_polls(fake_maxapi)) == polls_before  # ...and has not gone out
                turnstile.admit()
        assert handle.done()
        assert len(_polls(fake_maxapi)) == 2
    turnstile.close()


async def test_a_poll_limiter_without_wait_is_a_configuration_error() -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="poll_limiter"):
        AsyncMaxAPI("sk-test", poll_limiter=object())  # type: ignore[arg-type]


@pytest.mark.fake_maxapi(complete_after_polls=2)
async def test_clients_sharing_a_redis_poll_limiter_share_one_rate(
    fake_maxapi: FakeMaxAPI, redis_server: RedisServer
) -> None:
    rate, name = 30, f"polls-{uuid.uuid4().hex[:8]}"
    limiters = [RedisPollLimiter(redis_server.url(), name) for _ in range(2)]
    clients = [_client(fake_maxapi, poll_limiter=limiter, max_polls_per_second=rate) for limiter in limiters]

    async def work(client: AsyncMaxAPI) -> None:
        handles = [await client.images.generate(f"cube {i}", wait=False) for i in range(12)]
        for handle in handles:
            await handle

    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(work, client)
    polls = _polls(fake_maxapi)
    assert len(polls) == 48
    assert _peak(polls) <= rate  # together; each client's own gate alone would allow 2 x 30
    assert polls[-1] - polls[0] >= 47 / rate * 0.9
    for client, limiter in zip(clients, limiters, strict=True):
        await client.aclose()
        await limiter.aclose()
