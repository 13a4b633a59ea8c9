"""redis-py for the package: one connection helper, and the client's poll budget shared in Redis.

redis-py (the optional extra ``maxapi-async[redis]``) is imported when a Redis user first
connects, never by ``import maxapi_async``. :class:`RedisConnection` runs the Lua scripts of
:mod:`.redis_scripts` and turns every Redis error into a :class:`StoreError`; the batch's
store (:mod:`.redis_store`) and :class:`RedisPollLimiter` use it.

:class:`RedisPollLimiter` is the client's poll gate moved into Redis: every client that
uses it (``AsyncMaxAPI(poll_limiter=...)``), in any process on any machine, shares one
``max_polls_per_second``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._protocol.errors import ConfigurationError, InvalidRequestError, StoreError
from . import redis_scripts as lua

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisConnection", "RedisPollLimiter", "text"]

T = TypeVar("T")


def _import_redis() -> Any:
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ConfigurationError(
            "RedisStore and RedisPollLimiter need redis-py: pip install 'maxapi-async[redis]'"
        ) from exc
    return redis.asyncio


def text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisConnection:
    """One redis-py asyncio client (made from a URL on first use, or the caller's) and the
    store's scripts on it. Every Redis error becomes a :class:`StoreError`."""

    def __init__(self, redis: Redis | str) -> None:
        if not isinstance(redis, str) and not hasattr(redis, "register_script"):
            raise InvalidRequestError(
                "redis", f"must be a Redis URL or a redis.asyncio.Redis client, got {type(redis).__name__}"
            )
        self._url = redis if isinstance(redis, str) else None
        self._client: Any = None if isinstance(redis, str) else redis
        self._owned = isinstance(redis, str)
        self._scripts: dict[str, Any] = {}

    def client(self) -> Any:
        if self._client is None:
            self._client = _import_redis().from_url(self._url)
        return self._client

    async def run(self, script: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Run one of :mod:`.redis_scripts` (by ``EVALSHA``, loading it when Redis lacks it)."""
        compiled = self._scripts.get(script)
        if compiled is None:
            compiled = self._scripts[script] = self.client().register_script(script)
        return await self.call(lambda: compiled(keys=list(keys), args=list(args)))

    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        redis = _import_redis()
        try:
            return await command()
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owned:
            await self.call(client.aclose)


class RedisPollLimiter:
    """The client's poll budget, shared through Redis by every client that uses it.

    ``AsyncMaxAPI(max_polls_per_second=20, poll_limiter=RedisPollLimiter(redis, "my-key"))``
    in each worker: together they poll at most 20 times in any second. ``redis`` is a URL
    or a ``redis.asyncio.Redis`` client; ``name`` names what is shared (one per API key).
    Give every worker the same ``max_polls_per_second``.

    Two rules, timed on Redis's clock (one clock for every machine): slots are booked
    ``1.05 / floor(0.99 rate)`` seconds apart (a token bucket with a burst of one), and a
    poll whose slot came waits while the past 1.05 s already holds ``floor(0.99 rate)``
    departures (sleepers wake late and together on a busy machine). So the service never
    sees more than the rate in any second, counting on its own clock, even when the
    workers' delays to it differ by up to 50 ms; the price is about 6 % of the rate.
    Each poll costs two round trips.
    """

    def __init__(self, redis: Redis | str, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("name", f"must be a non-empty string, got {name!r}")
        self.name = name
        self._redis = RedisConnection(redis)
        self._tat = f"maxapi:{{polls:{name}}}:next"
        self._log = f"maxapi:{{polls:{name}}}:sent"
        self._sequence = 0
        self._token = uuid.uuid4().hex[:12]

    def __repr__(self) -> str:
        return f"RedisPollLimiter(name={self.name!r})"

    async def wait(self, rate: float) -> None:
        """Return when one more poll fits in ``rate`` polls per second, counted over every user."""
        delay = float(await self._redis.run(lua.POLL_RESERVE, [self._tat], [repr(float(rate))]))
        if delay > 0:
            await asyncio.sleep(delay)
        self._sequence += 1
        member = f"{self._token}:{self._sequence}"
        while True:
            ahead = float(await self._redis.run(lua.POLL_DEPART, [self._log], [repr(float(rate)), member]))
            if ahead <= 0:
                return
            await asyncio.sleep(ahead)

    async def aclose(self) -> None:
        """Close the Redis client made from a URL (a client given is left open)."""
        await self._redis.aclose()
