"""Fine-grained control of the fake: predicate faults, per-task timing, idempotency, waits, threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import maxapi_async
from maxapi_async.testing import FakeMaxAPI, Fault, RecordedRequest, RequestMatch, make_png, pytest_plugin

pytestmark = pytest.mark.anyio

fake_maxapi = pytest_plugin.fake_maxapi

MODEL = "google/gemini-2.5-flash-image"
GEN = "/v1/images/generations"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def generate(
    http: aiohttp.ClientSession,
    fake: FakeMaxAPI,
    prompt: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[int, Any]:
    body = {"model": MODEL, "prompt": prompt, "response_format": "b64_json", **extra}
    all_headers = {"Authorization": f"Bearer {fake.api_key}", **(headers or {})}
    async with http.post(fake.base_url + GEN, json=body, headers=all_headers) as resp:
        return resp.status, await resp.json()


async def poll_until_done(http: aiohttp.ClientSession, fake: FakeMaxAPI, task_id: str) -> int:
    """How many polls the task took to finish."""
    for polls in range(1, 20):
        async with http.get(
            f"{fake.base_url}{GEN}/{task_id}", headers={"Authorization": f"Bearer {fake.api_key}"}
        ) as resp:
            if (await resp.json())["status"] == "succeeded":
                return polls
    raise AssertionError("the task never finished")


# -- faults over the whole request -------------------------------------------------------------


async def test_the_third_request_whose_prompt_mentions_a_cube_fails(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI() as fake:
        fake.add_fault(Fault(status=500, match=lambda r: "cube" in (r.prompt or ""), skip=2))
        prompts = ["a cube", "a sphere", "cube two", "a sphere", "the third cube", "cube four"]
        statuses = [(await generate(http, fake, p))[0] for p in prompts]
    assert statuses == [200, 200, 200, 200, 500, 200]
    assert fake.pending_faults() == []


async def test_faults_match_headers_and_bodies_of_every_route_family(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI() as fake:
        fake.add_fault(Fault(status=409, match=lambda r: r.header("idempotency-key") == "k2", times=None))
        fake.add_fault(Fault(status=503, match=RequestMatch(prompt_contains="night"), path="/v1beta/"))
        fake.fail_next(429, headers={"Retry-After": "0"}, match=lambda r: r.json.get("n") == 2)
        assert (await generate(http, fake, "x", {"Idempotency-Key": "k1"}))[0] == 200
        assert (await generate(http, fake, "x", {"Idempotency-Key": "k2"}))[0] == 409
        assert (await generate(http, fake, "x", {"Idempotency-Key": "k2"}))[0] == 409
        assert (await generate(http, fake, "night", n=2))[0] == 429  # night, but not on /v1beta
        body = {"contents": [{"parts": [{"text": "make it night"}]}]}
        headers = {"x-goog-api-key": fake.api_key}
        async with http.post(fake.base_url + NATIVE, json=body, headers=headers) as resp:
            assert resp.status == 503
            assert (await resp.json())["error"]["status"] == "UNAVAILABLE"
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in (("model", MODEL), ("prompt", "a night scene")):
            form.add_field(name, value)
        form.add_field("image[]", make_png(4, 4), filename="a.png", content_type="image/png")
        fake.add_fault(Fault(status=400, match=RequestMatch(body_contains="night scene")))
        async with http.post(
            fake.base_url + "/v1/images/edits", data=form, headers={"Authorization": f"Bearer {fake.api_key}"}
        ) as resp:
            assert resp.status == 400
    assert RequestMatch(headers={"X-A": "1"})(fake.requests[0]) is False


def test_fault_options_are_checked() -> None:
    fake = FakeMaxAPI()
    with pytest.raises(ValueError, match="skip"):
        fake.add_fault(Fault(status=500, skip=-1))
    with pytest.raises(ValueError, match="times"):
        fake.add_fault(Fault(status=500, times=0))


# -- per-task timing ---------------------------------------------------------------------------------


async def test_task_durations_follow_a_schedule(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(complete_after_polls=[1, 3, 2]) as fake:
        ids = [(await generate(http, fake, f"task {i}", **{"async": True}))[1]["id"] for i in range(4)]
        assert [await poll_until_done(http, fake, task_id) for task_id in ids] == [1, 3, 2, 2]


async def test_task_durations_as_a_function_of_the_request(http: aiohttp.ClientSession) -> None:
    def polls(request: RecordedRequest) -> int:
        return 1 if "quick" in (request.prompt or "") else 4

    async with FakeMaxAPI(complete_after_polls=polls, complete_after_seconds=lambda r: None) as fake:
        slow = (await generate(http, fake, "slow", **{"async": True}))[1]["id"]
        quick = (await generate(http, fake, "quick", **{"async": True}))[1]["id"]
        assert await poll_until_done(http, fake, quick) == 1
        assert await poll_until_done(http, fake, slow) == 4


async def test_task_durations_in_seconds_per_task(http: aiohttp.ClientSession) -> None:
    # the first task is done at once, the second never within the test
    async with FakeMaxAPI(complete_after_seconds=[0.0, 3600.0], complete_after_polls=10**6) as fake:
        first = (await generate(http, fake, "a", **{"async": True}))[1]["id"]
        second = (await generate(http, fake, "b", **{"async": True}))[1]["id"]
        assert await poll_until_done(http, fake, first) == 1
        headers = {"Authorization": f"Bearer {fake.api_key}"}
        async with http.get(f"{fake.base_url}{GEN}/{second}", headers=headers) as resp:
            assert (await resp.json())["status"] == "processing"


@pytest.mark.parametrize(
    "options",
    [
        {"complete_after_polls": []},
        {"complete_after_polls": 1.5},
        {"complete_after_polls": -1},
        {"complete_after_seconds": -1.0},
        {"complete_after_seconds": [1.0, "2"]},
        {"extra_models": "acme/model"},
    ],
)
def test_bad_timing_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        FakeMaxAPI(**options)


# -- idempotency --------------------------------------------------------------------------------------


@pytest.mark.parametrize("honour", [True, False])
async def test_idempotency_can_be_turned_off(http: aiohttp.ClientSession, honour: bool) -> None:
    async with FakeMaxAPI(honour_idempotency=honour) as fake:
        headers = {"Idempotency-Key": "same"}
        first = (await generate(http, fake, "x", headers, **{"async": True}))[1]["id"]
        again = (await generate(http, fake, "x", headers, **{"async": True}))[1]["id"]
    assert fake.repeated_submissions == 1  # counted either way
    assert fake.created_tasks == (1 if honour else 2)
    assert (first == again) is honour


# -- waiting for requests ------------------------------------------------------------------------------


async def test_wait_for_requests_on_the_fakes_own_loop(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI() as fake:

        async def later() -> None:
            await asyncio.sleep(0)
            await generate(http, fake, "a")
            await generate(http, fake, "a cube")

        task = asyncio.ensure_future(later())
        found = await fake.wait_for_requests(1, match=lambda r: "cube" in (r.prompt or ""), timeout=5)
        await task
        assert [r.prompt for r in found] == ["a cube"]
        assert len(await fake.wait_for_requests(2, path=GEN)) == 2
        with pytest.raises(TimeoutError, match="2 of the 3 api requests to /v1/images awaited"):
            await fake.wait_for_requests(3, path="/v1/images", timeout=0.05)
        with pytest.raises(RuntimeError, match="own event loop"):
            fake.wait_for_requests_blocking(1)
        assert await fake.wait_for_requests(0, origin="cdn") == []


async def test_wait_for_requests_on_the_tests_loop_while_the_fake_has_its_own(
    fake_maxapi: FakeMaxAPI,
) -> None:
    async with maxapi_async.AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
        call = asyncio.ensure_future(client.images.generate("a cube"))
        [request] = await fake_maxapi.wait_for_requests(1, path=GEN)
        assert request.json["prompt"] == "a cube"
        result = await call
        await result.images[0].read()
        [download] = await fake_maxapi.wait_for_requests(1, origin="cdn")
        assert download.header("Authorization") is None


def test_wait_for_requests_blocking_in_a_plain_test(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(delay=0.1))  # the request is still being answered when the wait ends
    outcome: list[maxapi_async.ImageResult] = []

    def call() -> None:
        with maxapi_async.MaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
            outcome.append(client.images.generate("a cube", response_format="b64_json"))

    worker = threading.Thread(target=call)
    worker.start()
    [request] = fake_maxapi.wait_for_requests_blocking(1, path=GEN)
    assert request.prompt == "a cube"
    worker.join(10)
    assert outcome[0].images[0].size == (1024, 1024)
    with pytest.raises(TimeoutError):
        fake_maxapi.wait_for_requests_blocking(2, timeout=0.05)


# -- the fake on a loop of its own -------------------------------------------------------------------


def fake_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("FakeMaxAPI-")]


def test_a_fake_in_a_thread_serves_blocking_code_and_stops_its_thread() -> None:
    with FakeMaxAPI(complete_after_polls=0) as fake:
        assert len(fake_threads()) == 1
        fake.fail_next(503)  # scripted from this thread, used on the fake's
        with maxapi_async.MaxAPI(
            fake.api_key, base_url=fake.base_url, retry_policy=maxapi_async.RetryPolicy.none()
        ) as client:
            with pytest.raises(maxapi_async.ServerError):
                client.images.generate("x")
            result = client.images.generate("x", aspect_ratio="16:9")
            assert client.read(result.images[0])[:4] == b"\x89PNG"
        with pytest.raises(RuntimeError, match="only once"):
            fake.start_in_thread()
    assert fake_threads() == []
    assert len(fake.requests) == 2  # still readable after stopping
    fake.stop_thread()  # idempotent


async def test_closing_a_threaded_fake_from_a_coroutine_stops_its_thread() -> None:
    fake = FakeMaxAPI().start_in_thread()
    assert len(fake_threads()) == 1
    async with aiohttp.ClientSession() as http:
        assert (await generate(http, fake, "x"))[0] == 200
    await fake.close()
    assert fake_threads() == []
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await generate(http, fake, "x")
