"""The fake outside Python: its JSON control API and the ``maxapi-async fake-server`` command."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import maxapi_async
from maxapi_async.testing import FakeMaxAPI, make_png
from maxapi_async.testing._serve import environment, run_fake_server

pytestmark = pytest.mark.anyio

MODEL = "google/gemini-2.5-flash-image"
GEN = "/v1/images/generations"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    async with http.request(method, url, json=body, **kw) as resp:
        assert "x-request-id" in resp.headers
        return resp.status, await resp.json()


async def generate(http: aiohttp.ClientSession, base_url: str, key: str, prompt: str, **extra: Any) -> int:
    headers = {"Authorization": f"Bearer {key}", **extra.pop("headers", {})}
    body = {"model": MODEL, "prompt": prompt, "response_format": "b64_json", **extra}
    async with http.post(base_url + GEN, json=body, headers=headers) as resp:
        return resp.status


# -- the control API -------------------------------------------------------------------------------


async def test_control_scripts_faults_and_reads_requests(
    fake: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    control = fake.control_url
    fault = {"status": 503, "skip": 1, "match": {"prompt_contains": "cube"}, "headers": {"Retry-After": "0"}}
    status, answer = await call(http, "POST", control + "/faults", fault)
    assert status == 201
    assert answer["fault"]["match"] == {"prompt_contains": "cube", "body_contains": None, "headers": {}}
    statuses = [await generate(http, fake.base_url, fake.api_key, p) for p in ("a cube", "a ball", "a cube")]
    assert statuses == [200, 200, 503]
    status, answer = await call(http, "GET", control + "/requests?path=/v1/images&min=3&timeout=5")
    assert status == 200
    records = answer["requests"]
    assert [r["json"]["prompt"] for r in records] == ["a cube", "a ball", "a cube"]
    assert records[0]["method"] == "POST"
    assert records[0]["path"] == GEN
    assert records[0]["request_id"].startswith("req_")
    assert records[0]["unknown_fields"] == []
    assert json.loads(base64.b64decode(records[0]["body_base64"])) == records[0]["json"]
    # waiting for more than arrives: a 408 in time, not a hang
    status, answer = await call(http, "GET", control + "/requests?min=4&timeout=0.05")
    assert status == 408
    assert "3 of the 4" in answer["error"]["message"]
    # control requests are not recorded, need no key, and are never faulted
    await call(http, "POST", control + "/faults", {"status": 500, "times": None})
    status, state = await call(http, "GET", control + "/state")
    assert status == 200
    assert state["requests"] == 3
    assert state["base_url"] == fake.base_url
    assert [f["status"] for f in state["pending_faults"]] == [500]
    status, _ = await call(http, "DELETE", control + "/faults")
    assert status == 200
    assert fake.pending_faults() == []
    status, _ = await call(http, "POST", control + "/reset")
    assert (status, fake.requests) == (200, [])


async def test_control_records_files_and_cdn_requests(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model", MODEL)
    form.add_field("prompt", "x")
    form.add_field("size", "1024x1024")
    form.add_field("image[]", make_png(6, 4), filename="a.png", content_type="image/png")
    async with http.post(
        fake.base_url + "/v1/images/edits", data=form, headers={"Authorization": f"Bearer {fake.api_key}"}
    ) as resp:
        url = (await resp.json())["data"][0]["url"]
    async with http.get(url) as resp:
        assert resp.status == 200
    _, answer = await call(http, "GET", fake.control_url + "/requests")
    [edit] = answer["requests"]
    assert edit["form"] == {"model": MODEL, "prompt": "x", "size": "1024x1024"}
    assert edit["unknown_fields"] == ["size"]
    [upload] = edit["files"]
    assert (upload["field"], upload["filename"], upload["size"]) == ("image[]", "a.png", len(make_png(6, 4)))
    assert base64.b64decode(upload["data_base64"]) == make_png(6, 4)
    _, answer = await call(http, "GET", fake.control_url + "/requests?origin=cdn&min=1")
    assert [r["origin"] for r in answer["requests"]] == ["cdn"]


async def test_control_scripts_task_failures_blocks_and_options(
    fake: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    control = fake.control_url
    status, _ = await call(
        http, "POST", control + "/task-failures", {"reason": "INSUFFICIENT_POINTS", "times": 1}
    )
    assert status == 201
    status, _ = await call(http, "POST", control + "/blocks", {"reason": "SAFETY", "prompt_feedback": True})
    assert status == 201
    status, state = await call(
        http,
        "PATCH",
        control + "/options",
        {"complete_after_polls": 0, "honour_idempotency": False, "strict": True},
    )
    assert status == 200
    assert state["options"]["complete_after_polls"] == 0
    assert (fake.complete_after_polls, fake.honour_idempotency, fake.strict) == (0, False, True)
    async with maxapi_async.AsyncMaxAPI(
        fake.api_key, base_url=fake.base_url, poll_policy=maxapi_async.PollPolicy.instant()
    ) as client:
        with pytest.raises(maxapi_async.BlockedError, match="SAFETY"):
            await client.models.generate_content(model=MODEL, contents="x")
        handle = await client.images.generate("x", wait=False)
        with pytest.raises(maxapi_async.TaskFailedError):
            await handle.wait()
    assert await generate(http, fake.base_url, fake.api_key, "x", quality="hd") == 400  # strict now


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/faults", {"status": 503, "colour": "red"}, 400),
        ("POST", "/faults", {"status": "503"}, 400),
        ("POST", "/faults", {"times": 0}, 400),
        ("POST", "/faults", {"match": {"prompt_starts": "x"}}, 400),
        ("POST", "/faults", ["not", "an", "object"], 400),
        ("POST", "/blocks", {"times": -1}, 400),
        ("POST", "/task-failures", {"reason": ""}, 400),
        ("PATCH", "/options", {"api_key": "sk-other"}, 400),
        ("PATCH", "/options", {"complete_after_polls": -1}, 400),
        ("PATCH", "/options", {"task_style": "weird"}, 400),
        ("GET", "/requests?origin=elsewhere", None, 400),
        ("GET", "/requests?min=many", None, 400),
        ("GET", "/nothing", None, 404),
        ("PUT", "/state", None, 404),
    ],
)
async def test_control_refuses_bad_requests_with_json_errors(
    fake: FakeMaxAPI, http: aiohttp.ClientSession, method: str, path: str, body: Any, status: int
) -> None:
    got, answer = await call(http, method, fake.control_url + path, body)
    assert got == status
    assert answer["error"]["message"]
    assert fake.api_key == "sk-fake-maxapi-test-key"
    assert fake.pending_faults() == []


# -- the command's output: each SDK's own environment variables ----------------------------------------


def _args(**options: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "cdn_port": 0, "complete_after_polls": 2}
    return argparse.Namespace(**{**defaults, **options})


# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates (its async client only)
@pytest.mark.filterwarnings(
    r"ignore:Inheritance class \w+ from ClientSession is discouraged:DeprecationWarning"
)
async def test_the_printed_exports_point_every_sdk_at_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    notes: list[str] = []
    stop, printed = asyncio.Event(), asyncio.Event()

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("export GOOGLE"):  # the last line, printed once the fake listens
            printed.set()

    serving = asyncio.ensure_future(
        run_fake_server(_args(api_key="sk-from-the-command"), echo=echo, note=notes.append, stop=stop)
    )
    await printed.wait()
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_API_VERSION", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    exported: dict[str, str] = {}
    for line in lines:
        if line.startswith("export "):
            for pair in line.removeprefix("export ").split("  #")[0].split():
                name, _, value = pair.partition("=")
                exported[name] = value
                monkeypatch.setenv(name, value)
    assert set(exported) == {
        "MAXAPI_BASE_URL",
        "MAXAPI_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_API_KEY",
    }
    assert exported["MAXAPI_KEY"] == "sk-from-the-command"
    try:
        import openai
        from google import genai

        async with maxapi_async.AsyncMaxAPI() as client:  # from MAXAPI_*
            assert len((await client.images.generate("x")).images) == 1
        async with openai.AsyncOpenAI(max_retries=0) as sdk:  # from OPENAI_*
            assert len((await sdk.images.generate(model=MODEL, prompt="x")).data or []) == 1
        gsdk = genai.Client()  # from GOOGLE_*
        try:
            response = await gsdk.aio.models.generate_content(model=MODEL, contents="x")
        finally:
            await gsdk.aio.aclose()
            gsdk.close()
        assert response.candidates
    finally:
        stop.set()
        assert await serving == 0
    assert notes == ["stopping; 3 API requests served"]
    assert lines[0].startswith("FakeMaxAPI on 127.0.0.1:")


def test_a_public_host_names_the_fake_in_every_url_it_hands_out() -> None:
    # e.g. the service's name in a docker-compose file, while it listens on every address
    with FakeMaxAPI(api_key="k", host="0.0.0.0", public_host="fake-maxapi") as fake:
        assert fake.base_url == f"http://fake-maxapi:{fake.port}"
        assert fake.asset_url("img_1") == f"http://fake-maxapi:{fake.cdn_port}/assets/img_1.png"
        assert fake.mirror_url == fake.cdn_url
        openai_env = environment(fake)["openai"]
    assert openai_env == {"OPENAI_BASE_URL": f"http://fake-maxapi:{fake.port}/v1", "OPENAI_API_KEY": "k"}
    with FakeMaxAPI(host="0.0.0.0") as fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"  # reachable here


# -- the real command in a subprocess ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _drive(base: str) -> None:
    """What a test suite in another language would do: plain HTTP to the API and the control API."""
    async with aiohttp.ClientSession() as http:
        key = {"Idempotency-Key": "same"}
        assert await generate(http, base, "sk-compose", "x", headers=key, **{"async": True}) == 200
        assert await generate(http, base, "sk-compose", "x", headers=key, **{"async": True}) == 200
        assert await generate(http, base, "sk-compose", "x", size="1024x1024") == 400  # --strict
        assert await generate(http, base, "sk-wrong", "x") == 401
        _, state = await call(http, "GET", base + "/_fake/state")
        assert (state["created_tasks"], state["repeated_submissions"]) == (2, 1)  # --no-idempotency
        assert state["options"]["complete_after_polls"] == 1
        assert state["options"]["poll_retry_after"] == 0
        await call(http, "POST", base + "/_fake/faults", {"status": 429, "path": GEN})
        assert await generate(http, base, "sk-compose", "x") == 429
        _, answer = await call(http, "GET", base + "/_fake/requests?min=5")
        assert len(answer["requests"]) == 5


def test_fake_server_command_on_fixed_ports_driven_over_http(tmp_path: Path) -> None:
    port, cdn_port = _free_port(), _free_port()
    command = [
        sys.executable, "-m", "maxapi_async", "fake-server", "--json",
        "--host", "127.0.0.1", "--port", str(port), "--cdn-port", str(cdn_port),
        "--api-key", "sk-compose", "--complete-after-polls", "1", "--poll-retry-after", "0",
        "--no-idempotency", "--strict",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        assert (info["base_url"], info["cdn_url"]) == (base, f"http://127.0.0.1:{cdn_port}")
        assert info["api_key"] == "sk-compose"
        assert info["control_url"] == base + "/_fake"
        assert info["env"]["OPENAI_BASE_URL"] == base + "/v1"
        asyncio.run(_drive(base))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopping; 5 API requests served" in err
