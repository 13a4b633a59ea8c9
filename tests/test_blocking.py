"""``MaxAPI``, the blocking facade, against FakeMaxAPI (served from its own thread)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

import maxapi_async
from maxapi_async import MaxAPI
from maxapi_async.testing import FakeMaxAPI, make_png, openai_error

FAST_POLLS = maxapi_async.PollPolicy(earliest=0.0, latest=0.05, spacing=0.01, initial=0.01, jitter=0.0)


def portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "maxapi-async-portal"]


@pytest.fixture
def fake() -> Iterator[FakeMaxAPI]:
    with start_blocking_portal() as portal:
        server = portal.call(lambda: FakeMaxAPI(complete_after_polls=1).start())
        try:
            yield server
        finally:
            portal.call(server.close)


@pytest.fixture
def client(fake: FakeMaxAPI) -> Iterator[MaxAPI]:
    with MaxAPI(fake.api_key, base_url=fake.base_url, poll_policy=FAST_POLLS) as c:
        yield c


def test_generate_returns_the_async_clients_result(client: MaxAPI, tmp_path: Path) -> None:
    result = client.images.generate("a glass cube", aspect_ratio="16:9")
    assert isinstance(result, maxapi_async.ImageResult)
    asset = result.images[0]
    assert asset.size == (1344, 768)
    data = client.read(asset)
    assert data.startswith(b"\x89PNG")
    path = client.save(asset, tmp_path / "cube.png")
    assert path.read_bytes() == data


def test_edit_takes_earlier_assets_and_files(client: MaxAPI, fake: FakeMaxAPI, tmp_path: Path) -> None:
    first = client.images.generate("a glass cube")
    reference = tmp_path / "ref.png"
    reference.write_bytes(make_png(40, 30))
    edited = client.images.edit("put them on a beach", [first.images[0], reference], aspect_ratio="21:9")
    assert edited.images[0].size == (1536, 672)
    (request,) = fake.requests_to("/v1/images/edits")
    assert len(request.files) == 2


def test_generate_content_and_save_all(client: MaxAPI, tmp_path: Path) -> None:
    response = client.models.generate_content(contents="a glass cube", aspect_ratio="3:2")
    assert isinstance(response, maxapi_async.GenerateContentResponse)
    paths = client.save_all(response, tmp_path / "native", stem="cube")
    assert [p.name for p in paths] == ["cube-0.png"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")


def test_queued_handles_block(client: MaxAPI) -> None:
    handle = client.images.generate("a glass cube", aspect_ratio="4:3", wait=False)
    assert isinstance(handle, maxapi_async.BlockingTaskHandle)
    assert handle.kind == "generation"
    assert not handle.done()
    status = handle.refresh()
    assert isinstance(status, maxapi_async.TaskStatus)
    result = handle.wait()
    assert handle.done()
    assert result.images[0].size == (1184, 864)
    assert repr(handle).startswith("<BlockingTaskHandle generation task_")

    again = client.tasks.from_dict(handle.to_dict())
    assert again.wait().images[0].url == result.images[0].url
    by_id = client.tasks.get(handle.id, aspect_ratio="4:3")
    assert by_id.wait().images[0].size == (1184, 864)


def test_batch_runs_to_its_end(client: MaxAPI, tmp_path: Path) -> None:
    items = [
        maxapi_async.GenerateRequest(f"cube {i}", key=f"cube-{i}", aspect_ratio="16:9") for i in range(3)
    ]
    seen: list[maxapi_async.BatchProgress] = []
    outcomes = client.batch(items, concurrency=2, download_to=tmp_path, progress=seen.append)
    assert [o.key for o in outcomes] == ["cube-0", "cube-1", "cube-2"]
    assert all(o.ok for o in outcomes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube-0.png", "cube-1.png", "cube-2.png"]
    assert seen[-1].done == 3


def test_queued_operation(client: MaxAPI) -> None:
    handle = client.models.generate_content(contents="a cube", aspect_ratio="9:16", wait=False)
    assert handle.kind == "operation"
    assert handle.wait().images[0].size == (768, 1344)


def test_a_timed_out_wait_can_be_resumed(fake: FakeMaxAPI) -> None:
    slow = maxapi_async.PollPolicy(earliest=0.3, latest=0.3, spacing=0.0, initial=0.05, jitter=0.0)
    with MaxAPI(fake.api_key, base_url=fake.base_url, poll_policy=slow) as client:
        handle = client.images.generate("a glass cube", wait=False)
        with pytest.raises(maxapi_async.TaskTimeoutError):
            handle.wait(timeout=0.01)
        assert handle.wait().images


def test_the_task_timeout_bounds_a_blocking_wait(fake: FakeMaxAPI) -> None:
    fake.complete_after_polls = 10**9  # the task stays processing
    with MaxAPI(fake.api_key, base_url=fake.base_url, poll_policy=FAST_POLLS, task_timeout=0.2) as client:
        handle = client.images.generate("a glass cube", wait=False)
        with pytest.raises(maxapi_async.TaskTimeoutError, match="task_timeout") as caught:
            handle.wait()
        assert caught.value.task_id == handle.id


def test_service_errors_are_the_typed_errors(client: MaxAPI, fake: FakeMaxAPI) -> None:
    fake.fail_next(401, openai_error(401, "bad key", code="invalid_api_key"))
    with pytest.raises(maxapi_async.AuthenticationError, match="bad key"):
        client.images.generate("a glass cube")
    with pytest.raises(maxapi_async.InvalidRequestError):
        client.images.generate("a glass cube", n=0)


def test_threads_share_one_client(client: MaxAPI) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: client.images.generate(f"cube {i}"), range(8)))
    assert len({r.images[0].url for r in results}) == 8


def test_close_is_idempotent_and_final(fake: FakeMaxAPI) -> None:
    before = len(portal_threads())
    client = MaxAPI(fake.api_key, base_url=fake.base_url)
    assert len(portal_threads()) == before + 1
    assert "open" in repr(client)
    client.close()
    client.close()
    assert client.closed
    assert len(portal_threads()) == before
    with pytest.raises(maxapi_async.ClientClosedError):
        client.images.generate("a glass cube")


def test_a_configuration_error_leaves_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAXAPI_KEY", raising=False)
    before = len(portal_threads())
    with pytest.raises(maxapi_async.ConfigurationError, match="MAXAPI_KEY"):
        MaxAPI()
    assert len(portal_threads()) == before


def test_a_dropped_client_is_closed(fake: FakeMaxAPI) -> None:
    before = len(portal_threads())
    client = MaxAPI(fake.api_key, base_url=fake.base_url)
    client.images.generate("a glass cube")
    del client
    gc.collect()
    assert len(portal_threads()) == before


def test_handles_keep_their_client_alive(fake: FakeMaxAPI) -> None:
    handle = MaxAPI(fake.api_key, base_url=fake.base_url, poll_policy=FAST_POLLS).images.generate(
        "a glass cube", wait=False
    )
    gc.collect()
    assert handle.wait().images


def test_inside_a_running_loop_it_refuses_and_names_asyncmaxapi(client: MaxAPI, fake: FakeMaxAPI) -> None:
    async def inside() -> None:
        with pytest.raises(maxapi_async.RunningLoopError, match="AsyncMaxAPI"):
            client.images.generate("a glass cube")
        with pytest.raises(maxapi_async.RunningLoopError):
            MaxAPI(fake.api_key, base_url=fake.base_url)

    asyncio.run(inside())
    assert issubclass(maxapi_async.RunningLoopError, RuntimeError)
    assert client.images.generate("still works outside").images


def test_with_options_shares_the_loop_thread_and_the_pool(fake: FakeMaxAPI) -> None:
    with MaxAPI(fake.api_key, base_url=fake.base_url) as client:
        threads = len(portal_threads())
        cheap = client.with_options(route_mode="official-cheap")
        assert cheap.images.generate("a cube").images
        assert len(portal_threads()) == threads  # no thread of its own
        cheap.close()
        assert cheap.closed
        assert not client.closed
        assert client.images.generate("a cube").images
        other = client.with_options(timeout=20)
    assert other.closed  # closing the parent closed it
    with pytest.raises(maxapi_async.ClientClosedError):
        other.images.generate("a cube")
    routes = [r.json.get("route_mode") for r in fake.requests_to("/v1/images/generations")]
    assert routes == ["official-cheap", None]


def test_a_derived_client_keeps_its_parent_alive(fake: FakeMaxAPI) -> None:
    derived = MaxAPI(fake.api_key, base_url=fake.base_url).with_options(timeout=20)
    gc.collect()
    assert derived.images.generate("a cube").images
    derived.close()
