"""Resume anywhere: a handle's ``to_dict()`` rebuilt with ``client.tasks``, in this process and another."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import maxapi_async
from maxapi_async import (
    AsyncMaxAPI,
    GenerateContentResponse,
    ImageResult,
    PollPolicy,
    RetryPolicy,
    TaskHandle,
)
from maxapi_async.testing import FakeMaxAPI, make_png

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("_resume_worker.py")
GENERATIONS = "/v1/images/generations"
MODEL = "google/gemini-2.5-flash-image"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"


@contextlib.asynccontextmanager
async def make_client(fake: FakeMaxAPI, **options: Any) -> AsyncIterator[AsyncMaxAPI]:
    options.setdefault("poll_policy", PollPolicy.instant())
    options.setdefault("retry_policy", RetryPolicy.instant())
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, **options) as client:
        yield client


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with make_client(fake_maxapi) as c:
        yield c


async def submit_generation(client: AsyncMaxAPI) -> TaskHandle[ImageResult]:
    return await client.images.generate("a glass cube", aspect_ratio="16:9", wait=False)


# -- in this process -------------------------------------------------------------------------


async def test_to_dict_is_plain_json(client: AsyncMaxAPI) -> None:
    handle = await submit_generation(client)
    data = handle.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (data["id"], data["kind"], data["aspect_ratio"]) == (handle.id, "generation", "16:9")


async def test_from_dict_rebuilds_a_handle_on_a_new_client(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi) as first:
        saved = json.dumps((await submit_generation(first)).to_dict())
    async with make_client(fake_maxapi) as second:
        handle = second.tasks.from_dict(json.loads(saved))
        assert (handle.id, handle.kind) == (json.loads(saved)["id"], "generation")
        assert handle.status.state == "submitted"
        result = await handle
    assert isinstance(result, ImageResult)
    assert [i.size for i in result.images] == [(1344, 768)]  # the ref keeps the aspect ratio
    assert len(fake_maxapi.requests_to(GENERATIONS)) == 1 + 2  # one submission, two polls
    assert handle.to_dict() == json.loads(saved)


@pytest.mark.fake_maxapi(complete_after_polls=1)
async def test_a_rebuilt_handle_polls_at_once(fake_maxapi: FakeMaxAPI) -> None:
    # A schedule that would wait 30 s before a fresh task's first poll.
    slow = PollPolicy(earliest=30, latest=40, initial=5, max_delay=5, jitter=0)
    async with make_client(fake_maxapi, poll_policy=slow) as client:
        data = (await submit_generation(client)).to_dict()
        with anyio.fail_after(2):
            result = await client.tasks.from_dict(data)
    assert len(result.images) == 1


@pytest.mark.parametrize("kind", ["generation", "edit"])
async def test_tasks_get_rebuilds_a_handle_from_its_id_and_kind(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, kind: str
) -> None:
    if kind == "edit":
        submitted = await client.images.edit("beach", [make_png(8, 8)], aspect_ratio="3:2", wait=False)
    else:
        submitted = await client.images.generate("beach", aspect_ratio="3:2", wait=False)
    handle = client.tasks.get(submitted.id, kind=submitted.kind, aspect_ratio="3:2")
    assert (handle.id, handle.kind) == (submitted.id, kind)
    result = await handle
    assert [i.size for i in result.images] == [(1248, 832)]
    assert fake_maxapi.requests[-1].path == f"/v1/images/{kind}s/{submitted.id}"


async def test_tasks_get_rebuilds_an_operation(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    submitted = await client.models.generate_content(model=MODEL, contents="x", wait=False)
    handle = client.tasks.get(f"operations/{submitted.id}", kind="operation")
    response = await handle
    assert isinstance(response, GenerateContentResponse)
    assert len(response.images) == 1
    assert fake_maxapi.requests[-1].path == f"/v1beta/operations/{submitted.id}"


async def test_an_operation_handle_round_trips_through_json(client: AsyncMaxAPI) -> None:
    submitted = await client.models.generate_content(
        model=MODEL, contents="x", aspect_ratio="21:9", wait=False
    )
    data = json.loads(json.dumps(submitted.to_dict()))
    assert data["kind"] == "operation"
    response = await client.tasks.from_dict(data)
    assert isinstance(response, GenerateContentResponse)
    assert [i.size for i in response.images] == [(1536, 672)]


async def test_a_handle_stopped_by_close_resumes_on_a_new_client(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi) as first:
        handle = await submit_generation(first)
        await handle.refresh()
    async with make_client(fake_maxapi) as second:
        result = await second.tasks.from_dict(handle.to_dict())
    assert len(result.images) == 1


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"id": "", "kind": "generation"},
        {"id": "t", "kind": "video"},
        {"id": "t", "kind": "generation", "version": 99},
    ],
)
def test_from_dict_refuses_what_to_dict_never_gives(data: dict[str, Any]) -> None:
    client = AsyncMaxAPI("k")
    with pytest.raises(maxapi_async.InvalidRequestError):
        client.tasks.from_dict(data)


@pytest.mark.parametrize(("task_id", "kind"), [("", "generation"), ("  ", "edit"), ("t", "video")])
def test_tasks_get_refuses_a_bad_id_or_kind(task_id: str, kind: Any) -> None:
    client = AsyncMaxAPI("k")
    with pytest.raises(maxapi_async.InvalidRequestError):
        client.tasks.get(task_id, kind=kind)


# -- in another process ------------------------------------------------------------------------


async def run_worker(fake: FakeMaxAPI, *args: str, stdin: bytes | None = None) -> str:
    """Run tests/_resume_worker.py in a fresh interpreter configured only by the environment."""
    env = {**os.environ, "MAXAPI_BASE_URL": fake.base_url, "MAXAPI_KEY": fake.api_key}
    with anyio.fail_after(30):
        process = await anyio.run_process(
            [sys.executable, "-W", "error", str(WORKER), *args], input=stdin, env=env, check=False
        )
    assert process.returncode == 0, process.stderr.decode()
    return process.stdout.decode().strip()


@pytest.mark.parametrize(
    ("kind", "submit_path", "poll_path"),
    [("generation", GENERATIONS, f"{GENERATIONS}/"), ("operation", NATIVE, "/v1beta/operations/")],
    ids=["generation", "operation"],
)
async def test_submit_in_one_process_and_await_in_another(
    fake_maxapi: FakeMaxAPI, kind: str, submit_path: str, poll_path: str
) -> None:
    saved = await run_worker(fake_maxapi, "submit", kind)
    data = json.loads(saved)
    assert (data["kind"], data["aspect_ratio"]) == (kind, "16:9")
    assert [(r.method, r.path) for r in fake_maxapi.requests] == [("POST", submit_path)]
    submitted = len(fake_maxapi.requests)

    size = await run_worker(fake_maxapi, "wait", stdin=saved.encode())

    assert size == "1344x768"
    second = fake_maxapi.requests[submitted:]
    assert second
    assert all(r.method == "GET" and r.path == poll_path + data["id"] for r in second)
    assert len([r for r in fake_maxapi.requests if r.method == "POST"]) == 1
