"""The habits users bring from the OpenAI SDK and google-genai: ``status_code``, ``with_options``,
``max_retries``, ``default_headers``, ``extra_body``/``extra_headers``, ``MAXAPI_LOG`` and a
per-call ``Timeouts``; against FakeMaxAPI over real loopback HTTP."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import maxapi_async
from maxapi_async import AsyncMaxAPI, Timeouts
from maxapi_async.testing import FakeMaxAPI, Fault, make_png, openai_error

pytestmark = pytest.mark.anyio

GENERATIONS = "/v1/images/generations"
FAST_POLLS = maxapi_async.PollPolicy(earliest=0, latest=0, initial=0.01, max_delay=0.02, jitter=0)


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        retry_policy=maxapi_async.RetryPolicy.instant(),
        poll_policy=FAST_POLLS,
    ) as c:
        yield c


# -- errors ---------------------------------------------------------------------------------------


async def test_api_errors_carry_status_code_beside_status(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.fail_next(402, openai_error(402, "top up", code="insufficient_credits"))
    with pytest.raises(maxapi_async.InsufficientCreditsError) as caught:
        await client.images.generate("a cube")
    assert caught.value.status_code == caught.value.status == 402
    assert caught.value.code == "insufficient_credits"

    fake_maxapi.fail_next(200, b"not json")
    with pytest.raises(maxapi_async.ResponseError) as unreadable:
        await client.images.generate("a cube")
    assert unreadable.value.status_code == unreadable.value.status == 200


# -- max_retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (2, 3)])
async def test_max_retries_bounds_the_attempts(
    fake_maxapi: FakeMaxAPI, max_retries: int, attempts: int
) -> None:
    fake_maxapi.fail_next(503, times=None)
    instant = maxapi_async.RetryPolicy.instant(max_attempts=10)
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, retry_policy=instant, max_retries=max_retries
    ) as client:
        assert client.retry_policy.max_attempts == attempts
        assert client.retry_policy.wait_scale == 0  # the given policy, with its attempts changed
        with pytest.raises(maxapi_async.ServerError):
            await client.images.generate("a cube")
    assert len(fake_maxapi.requests_to(GENERATIONS)) == attempts


async def test_max_retries_zero_raises_the_first_rate_limit(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.fail_next(429, openai_error(429, "slow down"), {"Retry-After": "1"})
    async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, max_retries=0) as client:
        with pytest.raises(maxapi_async.RateLimitError) as caught:
            await client.images.generate("a cube")
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_max_retries_must_be_a_whole_number(bad: object) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="max_retries"):
        AsyncMaxAPI("sk-test-key-123", max_retries=bad)  # type: ignore[arg-type]


# -- default_headers --------------------------------------------------------------------------------


async def test_default_headers_go_with_every_api_request_and_never_to_the_cdn(
    fake_maxapi: FakeMaxAPI,
) -> None:
    headers = {"X-Tenant": "acme", "OpenAI-Organization": "org-1"}
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, default_headers=headers, poll_policy=FAST_POLLS
    ) as client:
        result = await client.images.generate("a cube")
        await result.images[0].read()
        await client.images.generate("a cube", wait=False)
    api = fake_maxapi.requests_to("/v1/")
    assert len(api) == 2
    assert all(r.header("X-Tenant") == "acme" and r.header("OpenAI-Organization") == "org-1" for r in api)
    assert all(r.header("Authorization") == f"Bearer {fake_maxapi.api_key}" for r in api)
    assert fake_maxapi.cdn_requests
    assert all(r.header("X-Tenant") is None for r in fake_maxapi.cdn_requests)


@pytest.mark.parametrize(
    "name", ["Authorization", "authorization", "X-Goog-Api-Key", "Idempotency-Key", "Content-Type", "Host"]
)
def test_default_headers_never_replace_the_clients_own(name: str) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match=f"default_headers: '{name}'") as caught:
        AsyncMaxAPI("sk-test-key-123", default_headers={name: "Bearer sk-someone-elses-key"})
    assert "sk-someone-elses-key" not in str(caught.value)


@pytest.mark.parametrize("headers", [{"X-Bad": "line\r\nbreak"}, {"bad name": "x"}, {"X-Num": 1}, ["X"]])
def test_default_headers_must_be_sendable(headers: object) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="default_headers"):
        AsyncMaxAPI("sk-test-key-123", default_headers=headers)  # type: ignore[arg-type]


# -- extra_body and extra_headers --------------------------------------------------------------------


async def test_extra_body_and_headers_reach_the_wire_on_every_call(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    extra = {"seed": 7, "style": {"tone": "warm"}, "watermark": False}
    headers = {"X-Trace": "t-1"}
    await client.images.generate("a cube", extra_body=extra, extra_headers=headers)
    await client.images.edit("night", [make_png(8, 8)], extra_body=extra, extra_headers=headers)
    await client.models.generate_content(
        contents="a cube", extra_body={"toolConfig": {"mode": "x"}}, extra_headers=headers
    )
    generation, edit, native = fake_maxapi.requests
    assert generation.json["seed"] == 7
    assert generation.json["style"] == {"tone": "warm"}
    assert generation.json["watermark"] is False
    assert (edit.form["seed"], edit.form["style"], edit.form["watermark"]) == (
        "7",
        '{"tone":"warm"}',
        "false",
    )
    assert native.json["toolConfig"] == {"mode": "x"}
    assert [r.header("X-Trace") for r in fake_maxapi.requests] == ["t-1"] * 3
    assert all(r.header("Authorization") == f"Bearer {fake_maxapi.api_key}" for r in fake_maxapi.requests)


async def test_extra_options_ride_along_on_queued_submissions_and_batches(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    handle = await client.images.generate("a cube", wait=False, extra_body={"seed": 1})
    await handle
    items = [
        maxapi_async.GenerateRequest("a cube", key="k", extra_body={"seed": 2}, extra_headers={"X-T": "s"})
    ]
    (outcome,) = await maxapi_async.Batch(client, items, journal=tmp_path / "j.jsonl")
    assert outcome.ok
    first, second = [r for r in fake_maxapi.requests_to(GENERATIONS) if r.method == "POST"]
    assert (first.json["seed"], first.json["async"]) == (1, True)
    assert (second.json["seed"], second.header("X-T")) == (2, "s")
    journal = (tmp_path / "j.jsonl").read_text()
    assert '"X-T":"[not recorded]"' in journal  # header values may be secrets: names only
    assert '"s"' not in journal


@pytest.mark.parametrize(
    ("call", "argument", "message"),
    [
        (lambda c: c.images.generate("x", extra_body={"prompt": "y"}), "extra_body", "'prompt' is a field"),
        (lambda c: c.images.generate("x", extra_body={"async": True}), "extra_body", "'async' is a field"),
        (lambda c: c.images.generate("x", extra_body={"v": float("nan")}), "extra_body.v", "no JSON form"),
        (lambda c: c.images.generate("x", extra_body=[1]), "extra_body", "must be a dict"),
        (
            lambda c: c.images.edit("x", [b"\x89PNG"], extra_headers={"Authorization": "Bearer k"}),
            "extra_headers",
            "the client's own header",
        ),
        (
            lambda c: c.models.generate_content(contents="x", extra_headers={"X-MaxAPI-Async": "true"}),
            "extra_headers",
            "use wait=False",
        ),
        (
            lambda c: c.models.generate_content(contents="x", extra_body={"generationConfig": {}}),
            "extra_body",
            "'generationConfig' is a field",
        ),
    ],
)
async def test_extra_options_are_checked_before_anything_is_sent(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, call: object, argument: str, message: str
) -> None:
    with pytest.raises(maxapi_async.InvalidRequestError, match=message) as caught:
        await call(client)  # type: ignore[operator]
    assert caught.value.argument == argument
    assert fake_maxapi.requests == []


# -- with_options ------------------------------------------------------------------------------------


async def test_with_options_shares_the_pool_and_changes_only_what_it_names(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    cheap = client.with_options(route_mode="official-cheap", default_headers={"X-Tenant": "a"})
    assert cheap is not client
    await client.images.generate("a cube")
    await cheap.images.generate("a cube")
    assert cheap._transport._get_session() is client._transport._get_session()  # one connection pool
    plain, tenant = fake_maxapi.requests_to(GENERATIONS)
    assert "route_mode" not in plain.json
    assert plain.header("X-Tenant") is None
    assert tenant.json["route_mode"] == "official-cheap"
    assert tenant.header("X-Tenant") == "a"
    assert cheap.retry_policy == client.retry_policy
    assert cheap.poll_policy == client.poll_policy
    assert cheap.usage is client.usage  # one account, one ledger
    assert client.usage.calls == 2
    assert client.with_options(max_retries=0).retry_policy.max_attempts == 1


async def test_closing_a_derived_client_leaves_the_parent_and_its_pool_open(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    derived = client.with_options(timeout=30)
    await derived.images.generate("a cube")
    session = client._transport._get_session()
    await derived.aclose()
    assert derived.closed
    assert not client.closed
    assert not session.closed
    with pytest.raises(maxapi_async.ClientClosedError):
        await derived.images.generate("a cube")
    assert (await client.images.generate("a cube")).images


async def test_closing_the_parent_closes_what_was_made_from_it(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    derived = client.with_options(wait_by_polling=True)
    fake_maxapi.complete_after_polls = 10**6
    handle = await derived.images.generate("a cube", wait=False)
    waiting = anyio.Event()

    async def wait() -> BaseException | None:
        waiting.set()
        try:
            await handle
        except BaseException as exc:
            return exc
        return None

    async with anyio.create_task_group() as tg:
        errors: list[BaseException | None] = []

        async def run() -> None:
            errors.append(await wait())

        tg.start_soon(run)
        await waiting.wait()
        await client.aclose()
    assert derived.closed
    assert isinstance(errors[0], maxapi_async.ClientClosedError)
    with pytest.raises(maxapi_async.ClientClosedError, match="closed"):
        await derived.images.generate("a cube")


async def test_with_options_may_use_another_key_on_the_same_pool(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    other = client.with_options(api_key="sk-another-tenant-key")
    with pytest.raises(maxapi_async.AuthenticationError):
        await other.images.generate("a cube")
    assert fake_maxapi.requests[-1].header("Authorization") == "Bearer sk-another-tenant-key"
    assert "sk-another-tenant-key" not in repr(other) + repr(vars(other))
    await client.images.generate("a cube")
    assert fake_maxapi.requests[-1].header("Authorization") == f"Bearer {fake_maxapi.api_key}"


def test_with_options_refuses_what_it_does_not_know() -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match=r"unknown options \['tiemout'\]"):
        AsyncMaxAPI("sk-test-key-123").with_options(tiemout=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "option", ["max_concurrency", "http_session", "max_polls_per_second", "poll_limiter"]
)
def test_with_options_cannot_change_the_pool(option: str) -> None:
    client = AsyncMaxAPI("sk-test-key-123")
    with pytest.raises(maxapi_async.ConfigurationError, match=f"cannot change {option}"):
        client.with_options(**{option: 2})  # type: ignore[misc]


# -- a per-call Timeouts -----------------------------------------------------------------------------


async def test_a_per_call_timeouts_sets_that_calls_read_limit(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.add_fault(Fault(delay=2.0))
    started = time.monotonic()
    with pytest.raises(maxapi_async.APITimeoutError):
        await client.images.generate("a cube", timeout=Timeouts(total=60, connect=5, read=0.2))
    assert time.monotonic() - started < 1.5
    # A Timeouts without a whole-call limit is no limit, and the call goes through.
    assert (await client.images.generate("a cube", timeout=Timeouts(total=None))).images


# -- MAXAPI_LOG ---------------------------------------------------------------------------------------

SCRIPT = """
import asyncio, maxapi_async

async def main():
    async with maxapi_async.AsyncMaxAPI(retry_policy=maxapi_async.RetryPolicy.instant()) as client:
        await client.images.generate("a cube")
        async with maxapi_async.AsyncMaxAPI("sk-wrong-key-1234") as wrong:
            try:
                await wrong.images.generate("x")
            except maxapi_async.MaxAPIError:
                pass

asyncio.run(main())
"""


async def run_script(fake: FakeMaxAPI, tmp_path: Path, level: str) -> tuple[int, str]:
    script = tmp_path / "logs.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url, "MAXAPI_LOG": level}
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, str(script)], env=env, check=False)
    return done.returncode, done.stderr.decode()


async def test_maxapi_log_debug_logs_every_request_to_stderr_without_the_key(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    fake_maxapi.fail_next(503)
    code, err = await run_script(fake_maxapi, tmp_path, "debug")
    assert code == 0, err
    lines = err.splitlines()
    assert any(
        line.startswith("maxapi_async: DEBUG: POST /v1/images/generations -> 200 in ") for line in lines
    )
    assert any("POST /v1/images/generations -> 503" in line for line in lines)
    assert any(line.startswith("maxapi_async: INFO: POST /v1/images/generations: ") for line in lines)
    assert fake_maxapi.api_key not in err
    assert "sk-wrong-key-1234" not in err


async def test_maxapi_log_info_logs_retries_only(fake_maxapi: FakeMaxAPI, tmp_path: Path) -> None:
    fake_maxapi.fail_next(503)
    code, err = await run_script(fake_maxapi, tmp_path, "INFO")
    assert code == 0, err
    assert [line.split(": ", 2)[1] for line in err.splitlines()] == ["INFO"]


async def test_an_unknown_maxapi_log_is_a_configuration_error(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    code, err = await run_script(fake_maxapi, tmp_path, "loud")
    assert code == 1
    assert "ConfigurationError: MAXAPI_LOG must be one of 'debug', 'info' (or unset), got 'loud'" in err
