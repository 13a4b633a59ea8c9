"""A fault-injection soak, part of the normal suite: 1,000 queued generations at concurrency 100
against a fake that fails requests at random, and strict accounting of what came out.

Per request, on both origins (API and CDN): 10 % answer 500, 5 % answer 429 with ``Retry-After``,
3 % drop the connection, 2 % truncate the answer, 1 % are delayed (half past the read timeout).
Resets and truncations hit half *before* the fake's handler runs and half *after* it (for a
submission: after the task was created). Each call submits with ``wait=False``, awaits the handle
(polling) and downloads its image.

What must hold:

* every call ends in a result or one of the library's typed errors, within the time bound;
* no submission reaches the fake's handler twice (so no call creates two tasks, whatever the
  fake's own ``Idempotency-Key`` handling would have absorbed), the fake created exactly one task
  per submission it handled, and a submission is repeated only after a 429/500 answer;
* a submission whose outcome is unknown ends in an error that says it may have been charged and
  names its key; the key's last attempt was indeed a reset, a truncation or a delay;
* every result is the task its submission created, with the image the fake stored;
* nothing is left pending (no poll loop, no task), unclosed (no session) or warned about.

Scope note: FakeMaxAPI's ``Fault`` acts before the handler, and it has no random mode; both are
added here by overriding its private ``_take_fault`` (pre-handler faults, as ``Fault`` objects)
and ``_dispatch`` (to break an answer after the handler ran), which this test pins.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
import warnings
from collections import Counter, defaultdict
from contextvars import ContextVar
from typing import Any, Literal

import anyio
import attrs
import pytest
from aiohttp import web

import maxapi_async
from maxapi_async import AsyncMaxAPI, Hooks, MaxAPIError, PollPolicy, RetryEvent, RetryPolicy, Timeouts
from maxapi_async.testing import FakeMaxAPI, Fault

pytestmark = pytest.mark.anyio

CALLS = 1_000
CONCURRENCY = 100
SEED = int(os.environ.get("MAXAPI_SOAK_SEED", "42026"))
MAX_ATTEMPTS = 4
READ_TIMEOUT = 2.0
TIME_BOUND = 60.0  # seconds for the whole soak; it takes about 5 s on two cores
TRUNCATED = b'{"created": 1, "da'
#: Fault kinds and the share of requests each hits; the rest are answered normally.
RATES = {"500": 0.10, "429": 0.05, "reset": 0.03, "truncate": 0.02, "delay": 0.01}
RETRYABLE_ANSWERS = {"500", "429"}
#: What a submission met when its outcome is unknown to the client ("after": the task exists).
UNKNOWN_OUTCOMES = {"reset", "reset after", "truncate", "truncate after", "delay long"}
#: What a submission met when the client got its task.
ANSWERED = {"answered", "delay"}

_PRE_HANDLER: ContextVar[Fault | None] = ContextVar("_PRE_HANDLER", default=None)

Origin = Literal["api", "cdn"]


@attrs.frozen
class Draw:
    kind: str | None  # a key of RATES, or None: answer normally
    after: bool = False  # break the answer after the handler ran (resets and truncations)
    long: bool = False  # a delay past the client's read timeout

    @property
    def label(self) -> str:
        if self.kind is None:
            return "answered"
        return self.kind + (" after" if self.after else "") + (" long" if self.long else "")


class ChaosMaxAPI(FakeMaxAPI):
    """FakeMaxAPI drawing a random fault for every request, and keeping the books."""

    def __init__(self, *, seed: int, **options: Any) -> None:
        super().__init__(**options)
        self.rng = random.Random(seed)
        self.injected: Counter[tuple[Origin, str, str]] = Counter()
        self.attempts: defaultdict[str, list[str]] = defaultdict(list)  # key -> what each POST met
        self.handled: Counter[str] = Counter()  # key -> POSTs that reached the handler
        self.task_of: dict[str, str] = {}  # key -> the task its handler created

    def draw(self, origin: Origin) -> Draw:
        x = self.rng.random()
        for kind, rate in RATES.items():
            if x < rate:
                # A CDN truncation is a body cut mid-stream (after): cut bytes that still
                # start like a PNG would be a valid-looking image.
                after = (kind == "reset" and self.rng.random() < 0.5) or (
                    kind == "truncate" and (origin == "cdn" or self.rng.random() < 0.5)
                )
                return Draw(kind, after=after, long=kind == "delay" and self.rng.random() < 0.5)
            x -= rate
        return Draw(None)

    @staticmethod
    def pre_handler_fault(origin: Origin, draw: Draw) -> Fault:
        if draw.kind == "500":
            return Fault(status=500, origin=origin)
        if draw.kind == "429":
            return Fault(status=429, headers={"Retry-After": "1"}, origin=origin)
        if draw.kind == "reset":
            return Fault(reset=True, origin=origin)
        if draw.kind == "truncate":
            return Fault(status=200, body=TRUNCATED, origin=origin)
        return Fault(delay=READ_TIMEOUT + 1.0 if draw.long else 0.2, origin=origin)

    def _take_fault(self, origin: Origin, method: str, path: str) -> Fault | None:
        fault = _PRE_HANDLER.get()
        return fault if fault is not None else super()._take_fault(origin, method, path)

    async def _dispatch(
        self, origin: Origin, request: web.Request, handler: Any, request_id: str
    ) -> web.StreamResponse:
        draw = self.draw(origin)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is not None:
            self.attempts[key].append(draw.label)
        if draw.kind is not None:
            self.injected[(origin, request.method, draw.label)] += 1
        pre = None if draw.kind is None or draw.after else self.pre_handler_fault(origin, draw)
        token = _PRE_HANDLER.set(pre)
        try:
            response = await super()._dispatch(origin, request, self._watch(handler, key), request_id)
        finally:
            _PRE_HANDLER.reset(token)
        if not draw.after:
            return response
        if draw.kind == "reset":
            return await self.breaking(request, response, "reset")
        cut = origin == "api" and self.rng.random() < 0.5
        return await self.breaking(request, response, "cut" if cut else "abort_mid_body")

    def _watch(self, handler: Any, key: str | None) -> Any:
        if key is None:
            return handler

        async def run(request: web.Request) -> web.StreamResponse:
            response = await handler(request)
            self.handled[key] += 1
            assert isinstance(response, web.Response)
            assert isinstance(response.body, bytes)
            self.task_of[key] = json.loads(response.body)["id"]
            return response

        return run

    async def breaking(
        self, request: web.Request, response: web.StreamResponse, action: str
    ) -> web.StreamResponse:
        assert isinstance(response, web.Response)
        body = response.body
        assert isinstance(body, bytes)
        if action == "reset":
            await self._drop_connection(request)
        if action == "cut":
            cut = web.Response(status=response.status, body=body[: len(body) // 2])
            cut.content_type = response.content_type
            return cut
        stream = web.StreamResponse(status=response.status)
        stream.content_type = response.content_type
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()  # a FIN after half the body
        await asyncio.sleep(5)  # connection_lost cancels this handler first
        raise ConnectionResetError("answer cut mid-body")


@attrs.frozen
class Outcome:
    index: int
    stage: str  # "submit", "wait", "download" or "done"
    key: str | None
    task_id: str | None
    error: BaseException | None


async def run_one(client: AsyncMaxAPI, fake: ChaosMaxAPI, index: int) -> Outcome:
    stage, key, task_id = "submit", None, None
    try:
        handle = await client.images.generate(f"soak {index}", wait=False)
        key, task_id, stage = handle.ref.idempotency_key, handle.id, "wait"
        result = await handle
        stage = "download"
        data = await result.images[0].read()
        assert result.images[0].url is not None
        assert data == fake.assets[result.images[0].url.rpartition("/")[2].removesuffix(".png")].data
        return Outcome(index, "done", key, task_id, None)
    except MaxAPIError as exc:
        return Outcome(index, stage, key or getattr(exc, "idempotency_key", None), task_id, exc)


async def test_a_thousand_generations_under_random_faults_end_cleanly() -> None:
    loop = asyncio.get_running_loop()
    tasks_before = asyncio.all_tasks()  # the test runner's own
    loop_problems: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_problems.append(context))
    retries: list[RetryEvent] = []
    polls = Counter[str]()
    done = Counter[str | None]()
    outcomes: list[Outcome] = []
    unexpected: list[BaseException] = []
    started = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fake = ChaosMaxAPI(seed=SEED, complete_after_polls=2)
            async with fake:
                client = AsyncMaxAPI(
                    fake.api_key,
                    base_url=fake.base_url,
                    max_concurrency=CONCURRENCY,
                    timeout=Timeouts(total=60.0, connect=5.0, read=READ_TIMEOUT),
                    # The default decisions (Retry-After: 1 is honoured), every wait 1/20 as long.
                    retry_policy=RetryPolicy(
                        max_attempts=MAX_ATTEMPTS, initial=0.2, max_delay=1.0, wait_scale=0.05
                    ),
                    poll_policy=PollPolicy.instant(),
                    max_polls_per_second=5_000,
                    hooks=Hooks(
                        on_retry=retries.append,
                        on_poll=lambda e: polls.update([e.state]),
                        on_task_done=lambda e: done.update([e.error]),
                    ),
                )
                async with client:
                    queue = iter(range(CALLS))

                    async def worker() -> None:
                        for index in queue:
                            try:
                                outcomes.append(await run_one(client, fake, index))
                            except Exception as exc:  # anything untyped fails the soak below
                                unexpected.append(exc)

                    with anyio.fail_after(TIME_BOUND):
                        async with anyio.create_task_group() as tg:
                            for _ in range(CONCURRENCY):
                                tg.start_soon(worker)
                    pending_pollers = len(client._core._pollers)
                session_left = client._transport._session
            elapsed = time.monotonic() - started
            await asyncio.sleep(0)  # let cancelled server handlers finish
            leftover = asyncio.all_tasks() - tasks_before
            gc.collect()
    finally:
        loop.set_exception_handler(previous_handler)

    # -- the counts, for the log (pytest -s) --------------------------------------------------
    results = [o for o in outcomes if o.error is None]
    errors = [o for o in outcomes if o.error is not None]
    by_type = Counter(f"{o.stage}: {type(o.error).__name__}" for o in errors)
    post_retries = [e for e in retries if e.method == "POST"]
    print(
        f"\nsoak: {CALLS} calls at concurrency {CONCURRENCY} in {elapsed:.1f} s\n"
        f"  results: {len(results)}\n"
        f"  errors: {len(errors)} {dict(sorted(by_type.items()))}\n"
        f"  submissions (distinct keys at the fake): {len(fake.attempts)}; POSTs sent: "
        f"{sum(len(a) for a in fake.attempts.values())}; tasks created: {fake.created_tasks}\n"
        f"  retries: {len(retries)} (POST {len(post_retries)}, polls "
        f"{sum(1 for e in retries if e.method == 'GET' and e.path.startswith('/v1/'))}, downloads "
        f"{sum(1 for e in retries if e.path.startswith('/assets/'))})\n"
        f"  polls read: {sum(polls.values())} {dict(polls)}; tasks done: {dict(done)}\n"
        f"  requests: API {len(fake.requests)}, CDN {len(fake.cdn_requests)}\n"
        f"  faults injected: {dict(sorted(fake.injected.items()))}"
    )

    # -- every call ended, in a result or a typed error ---------------------------------------
    assert unexpected == []
    assert sorted(o.index for o in outcomes) == list(range(CALLS))
    assert elapsed < TIME_BOUND

    # -- no submission was carried out twice ----------------------------------------------------
    keys = [o.key for o in outcomes if o.key is not None]
    assert len(keys) == len(set(keys))
    assert len(fake.attempts) == CALLS  # each call sent one key, which reached the fake
    assert max(fake.handled.values()) == 1  # no key reached the handler twice
    assert fake.created_tasks == len(fake.handled)  # one task per handled submission
    for key, met in fake.attempts.items():
        assert len(met) <= MAX_ATTEMPTS
        assert set(met[:-1]) <= RETRYABLE_ANSWERS, (key, met)  # repeated only after 429/500
    assert len(post_retries) == sum(len(met) - 1 for met in fake.attempts.values())

    # -- results are the tasks their submissions created ----------------------------------------
    for o in results:
        assert o.key is not None
        assert fake.task_of[o.key] == o.task_id
    assert len({o.task_id for o in results}) == len(results)
    assert len(results) > CALLS * 0.8

    # -- unknown outcomes say so; other errors are what the faults explain -----------------------
    for o in errors:
        err = o.error
        if o.stage == "submit" and isinstance(
            err, (maxapi_async.APIConnectionError, maxapi_async.ResponseError)
        ):
            assert o.key is not None
            assert getattr(err, "idempotency_key", None) == o.key
            assert "may have been charged" in str(err)
            assert fake.attempts[o.key][-1] in UNKNOWN_OUTCOMES
            if isinstance(err, maxapi_async.APIConnectionError):
                assert err.sent
        elif o.stage == "submit":
            assert isinstance(err, (maxapi_async.ServerError, maxapi_async.RateLimitError))
        else:  # a poll or a download that met a fault on every attempt
            assert isinstance(
                err,
                (
                    maxapi_async.ServerError,
                    maxapi_async.RateLimitError,
                    maxapi_async.APIConnectionError,
                    maxapi_async.ResponseError,
                ),
            )
            assert not isinstance(err, maxapi_async.AssetTypeError)
    # The books balance: every submission's last attempt explains how its call went on.
    last = Counter(met[-1] for met in fake.attempts.values())
    exhausted = sum(n for label, n in last.items() if label in RETRYABLE_ANSWERS)
    assert sum(1 for o in errors if o.stage == "submit" and o.key is None) == exhausted
    maybe_charged = sum(1 for o in errors if o.stage == "submit" and o.key is not None)
    assert maybe_charged == sum(n for label, n in last.items() if label in UNKNOWN_OUTCOMES)
    assert sum(1 for o in outcomes if o.stage != "submit") == sum(last[label] for label in ANSWERED)
    # Both kinds of lost answers happened after tasks were created, and none was resubmitted.
    assert last["reset after"] > 0
    assert last["truncate after"] > 0

    # -- nothing pending, unclosed or warned about ----------------------------------------------
    assert pending_pollers == 0
    assert session_left is None
    assert leftover == set()
    assert [str(w.message) for w in caught] == []
    assert loop_problems == []
