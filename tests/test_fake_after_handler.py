"""Proposed tests for Fault(after_handler=...), fault_source and repeated_submissions."""

from __future__ import annotations

import aiohttp
import pytest

from maxapi_async.testing import FakeMaxAPI, Fault

pytestmark = pytest.mark.anyio

GENERATIONS = "/v1/images/generations"


async def _post(fake: FakeMaxAPI, http: aiohttp.ClientSession, key: str) -> tuple[int, bytes]:
    async with http.post(
        fake.base_url + GENERATIONS,
        json={"model": "google/gemini-2.5-flash-image", "prompt": "x", "async": True},
        headers={"Authorization": f"Bearer {fake.api_key}", "Idempotency-Key": key},
    ) as resp:
        return resp.status, await resp.read()


async def test_after_handler_faults_break_the_answer_of_a_created_task() -> None:
    async with FakeMaxAPI() as fake, aiohttp.ClientSession() as http:
        fake.add_fault(Fault(after_handler="reset", method="POST"))
        with pytest.raises(aiohttp.ClientError):
            await _post(fake, http, "k1")
        fake.add_fault(Fault(after_handler="abort_mid_body", method="POST"))
        with pytest.raises(aiohttp.ClientPayloadError):
            await _post(fake, http, "k2")
        fake.add_fault(Fault(after_handler="truncate", method="POST"))
        status, body = await _post(fake, http, "k3")
        assert status == 200
        assert body.startswith(b"{")
        assert not body.endswith(b"}")
        assert fake.created_tasks == 3
        assert fake.repeated_submissions == 0
        await _post(fake, http, "k3")
        assert (fake.created_tasks, fake.repeated_submissions) == (3, 1)


async def test_a_fault_source_is_asked_when_no_scripted_fault_matches() -> None:
    asked: list[tuple[str, str, str]] = []

    def source(origin: str, method: str, path: str) -> Fault | None:
        asked.append((origin, method, path))
        return Fault(status=503) if len(asked) == 1 else None

    async with FakeMaxAPI(fault_source=source) as fake, aiohttp.ClientSession() as http:
        fake.add_fault(Fault(status=429))
        assert (await _post(fake, http, "a"))[0] == 429  # scripted first: the source is not asked
        assert (await _post(fake, http, "b"))[0] == 503
        assert (await _post(fake, http, "c"))[0] == 200
    assert asked == [("api", "POST", GENERATIONS)] * 2
