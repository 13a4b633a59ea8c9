"""Exercises the public API under `mypy --strict` (run by .ci/run); never executed."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import assert_type

import maxapi_async
from maxapi_async import AsyncMaxAPI, ImageAsset, ImageResult
from maxapi_async.testing import FakeMaxAPI, Fault, RecordedRequest, RequestMatch


async def generate_and_edit(fake: FakeMaxAPI) -> None:
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, route_mode="official") as client:
        result = await client.images.generate("cube", aspect_ratio="16:9", n=2, timeout=30)
        assert_type(result, ImageResult)
        asset = result.images[0]
        assert_type(asset, ImageAsset)
        assert_type(asset.size, "tuple[int, int] | None")
        assert_type(await asset.read(), bytes)
        assert_type(await asset.save("out.png"), Path)
        edited = await client.images.edit("compose", [Path("a.png"), b"\x89PNG...", asset])
        assert_type(edited.images, "list[ImageAsset]")


def handle(err: maxapi_async.MaxAPIError) -> str | None:
    if isinstance(err, maxapi_async.APIError):
        assert_type(err.status, int)
        return err.request_id
    if isinstance(err, maxapi_async.InvalidRequestError):
        return err.argument
    return None


async def keyword_options_are_typed(client: AsyncMaxAPI) -> None:
    handle = await client.images.generate("cube", wait=False, aspect_ratio="1:1", route_mode="mix")
    assert_type(handle, maxapi_async.TaskHandle[ImageResult])
    assert_type(await handle, ImageResult)
    native = await client.models.generate_content(contents="cube", response_modalities=["IMAGE"])
    assert_type(native, maxapi_async.GenerateContentResponse)
    queued = await client.models.generate_content(contents="cube", wait=False, image_size="2K")
    assert_type(queued, maxapi_async.TaskHandle[maxapi_async.GenerateContentResponse])
    await client.images.generate("cube", aspect_ratio=16)  # type: ignore[call-overload]
    await client.images.generate("cube", colour="red")  # type: ignore[call-overload]
    await client.images.edit("x", [b"..."], n="2")  # type: ignore[call-overload]
    await client.models.generate_content(contents="x", resolution="2K")  # type: ignore[call-overload]


def blocking_keyword_options_are_typed() -> None:
    with maxapi_async.MaxAPI(route_mode="mix", task_timeout=60) as client:
        assert_type(client.images.generate("cube", n=2), ImageResult)
        handle = client.images.edit("x", [Path("a.png")], wait=False, aspect_ratio="1:1")
        assert_type(handle, maxapi_async.BlockingTaskHandle[ImageResult])
        client.images.generate("cube", n="2")  # type: ignore[call-overload]
        maxapi_async.MaxAPI(timeout="soon")  # type: ignore[arg-type]
        outcomes = client.batch([maxapi_async.GenerateRequest("x", key="k", n=2)], concurrency=2)
        assert_type(outcomes, "list[maxapi_async.Outcome]")
        client.batch([], concurency=2)  # type: ignore[call-arg]


async def batches_are_made_from_the_client(client: AsyncMaxAPI) -> None:
    items = [maxapi_async.ContentRequest("x", key="k", response_modalities=["IMAGE"])]
    batch = maxapi_async.Batch(client, items, concurrency=4)
    assert_type(await batch, "list[maxapi_async.Outcome]")
    maxapi_async.GenerateRequest("x", key="k", aspect_ratio=3)  # type: ignore[arg-type]


async def batches_shared_through_redis() -> None:
    store = maxapi_async.RedisStore("redis://localhost:6379/0", "cubes", lease=10)
    limiter = maxapi_async.RedisPollLimiter("redis://localhost:6379/0", "my-key")
    poll_limiter: maxapi_async.PollLimiter = limiter
    async with AsyncMaxAPI(max_polls_per_second=20, poll_limiter=poll_limiter) as client:
        items = [maxapi_async.GenerateRequest("x", key="k")]
        assert_type(await maxapi_async.Batch(client, items, store=store), "list[maxapi_async.Outcome]")
        maxapi_async.Batch(client, items, store="redis://")  # type: ignore[arg-type]
    assert_type(await store.progress(), maxapi_async.StoreProgress)
    assert_type(await store.retry_failed(), int)
    with maxapi_async.MaxAPI(poll_limiter=limiter) as blocking:
        blocking.batch(items, store=store, budget=1.0)
    AsyncMaxAPI(poll_limiter=object())  # type: ignore[arg-type]
    await store.aclose()
    await limiter.aclose()


async def script_the_fake() -> None:
    def polls(request: RecordedRequest) -> int:
        return 1 if request.prompt else 3

    with FakeMaxAPI(complete_after_polls=polls, complete_after_seconds=[0.5, None], strict=True) as fake:
        assert_type(fake, FakeMaxAPI)
        fake.add_fault(Fault(status=500, match=RequestMatch(prompt_contains="cube"), skip=2))
        fake.fail_next(503, match=lambda r: r.header("Idempotency-Key") is not None)
        assert_type(fake.wait_for_requests_blocking(1), "list[RecordedRequest]")
        assert_type(await fake.wait_for_requests(1, path="/v1", origin="cdn"), "list[RecordedRequest]")
        assert_type(fake.requests[0].unknown_fields, "tuple[str, ...]")
    threaded = FakeMaxAPI(complete_after_polls=[0, 2]).start_in_thread()
    assert_type(threaded.control_url, str)
    await threaded.close()


async def sdk_habits_are_typed(client: AsyncMaxAPI) -> None:
    fast = client.with_options(timeout=maxapi_async.Timeouts(total=30, read=10), max_retries=0)
    assert_type(fast, AsyncMaxAPI)
    client.with_options(max_concurrency=2)  # type: ignore[call-arg]
    client.with_options(default_headers={"X-Tenant": 1})  # type: ignore[dict-item]
    await fast.images.generate("cube", extra_body={"seed": 7}, extra_headers={"X-Trace": "t"})
    await fast.images.generate("cube", timeout=maxapi_async.Timeouts(read=5))
    await client.models.generate_content(contents="x", extra_body={"toolConfig": {}})
    await client.images.generate("cube", extra_headers={"X-Trace": 1})  # type: ignore[dict-item]
    try:
        await fast.images.generate("cube")
    except maxapi_async.APIError as exc:
        assert_type(exc.status_code, int)
    with maxapi_async.MaxAPI(max_retries=2, default_headers={"X-Tenant": "a"}) as blocking:
        assert_type(blocking.with_options(route_mode="mix"), maxapi_async.MaxAPI)


async def notebooks_are_typed(client: AsyncMaxAPI) -> None:
    result = await client.images.generate("cube")
    await maxapi_async.show(result, result.images[0])
    await maxapi_async.show("a picture")  # type: ignore[arg-type]
