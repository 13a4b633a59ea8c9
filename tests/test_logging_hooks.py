"""Observability: the ``maxapi_async`` logger records each request without bodies or secrets, and
hooks count requests, retries, polls and finished tasks, faults included."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

import maxapi_async
from maxapi_async import (
    AsyncMaxAPI,
    Hooks,
    PollEvent,
    PollPolicy,
    RequestEvent,
    RetryEvent,
    RetryPolicy,
    TaskDoneEvent,
)
from maxapi_async.testing import FakeMaxAPI, Fault

pytestmark = pytest.mark.anyio

GENERATIONS = "/v1/images/generations"
PROMPT = "a prompt-marker-5e1d that must never be logged"
LINE = re.compile(
    r"^(?P<method>GET|POST) (?P<path>/\S*) -> (?P<status>\d{3}|\w+) in (?P<elapsed>\d+\.\d{3}) s "
    r"\(attempt (?P<attempt>\d+), request id (?P<request_id>\S+)\)$"
)


class Counts:
    """Hooks that count (and keep) every event, as a metrics exporter would."""

    def __init__(self) -> None:
        self.requests: list[RequestEvent] = []
        self.retries: list[RetryEvent] = []
        self.polls: list[PollEvent] = []
        self.done: list[TaskDoneEvent] = []
        self.hooks = Hooks(
            on_request=self.requests.append,
            on_retry=self.retries.append,
            on_poll=self.polls.append,
            on_task_done=self.done.append,
        )


@pytest.fixture
def counts() -> Counts:
    return Counts()


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI, counts: Counts) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
        max_polls_per_second=1000,
        hooks=counts.hooks,
    ) as c:
        yield c


def request_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = [
        r.getMessage() for r in caplog.records if r.name == "maxapi_async" and r.levelno == logging.DEBUG
    ]
    matches = [LINE.match(line) for line in lines]
    return [m for m in matches if m is not None]


# -- the logger ----------------------------------------------------------------------------------


async def test_each_request_is_logged_with_method_path_status_elapsed_attempt_and_request_id(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxapi_async")
    fake_maxapi.fail_next(500)
    await client.images.generate(PROMPT, response_format="b64_json")
    lines = request_lines(caplog)
    assert [(m["method"], m["path"], m["status"], m["attempt"]) for m in lines] == [
        ("POST", GENERATIONS, "500", "1"),
        ("POST", GENERATIONS, "200", "2"),
    ]
    assert [m["request_id"] for m in lines] == [r.request_id for r in fake_maxapi.requests]
    assert all(float(m["elapsed"]) >= 0 for m in lines)
    retry_lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("HTTP 500" in line and "retry 1 of 3" in line for line in retry_lines)


async def test_a_failed_exchange_is_logged_with_the_errors_type(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxapi_async")
    fake_maxapi.add_fault(Fault(reset=True))
    with pytest.raises(maxapi_async.APIConnectionError):
        await client.images.generate(PROMPT)
    [line] = request_lines(caplog)
    assert (line["status"], line["request_id"]) == ("APIConnectionError", "None")


async def test_downloads_are_logged_by_path_without_their_query(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxapi_async")
    url = (await client.images.generate(PROMPT)).images[0].url
    signed = f"{url}?signature=sig-marker-91aa"
    fake_maxapi.add_fault(Fault(status=200, body={"created": 1, "data": [{"url": signed}]}))
    asset = (await client.images.generate(PROMPT)).images[0]
    fake_maxapi.add_fault(Fault(status=503, origin="cdn"))
    await asset.read()
    downloads = [m for m in request_lines(caplog) if m["path"].startswith("/assets/")]
    assert [(m["status"], m["attempt"]) for m in downloads] == [("503", "1"), ("200", "2")]
    assert "sig-marker-91aa" not in caplog.text


async def test_no_body_reaches_the_log(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await client.images.generate(PROMPT, response_format="b64_json")
    handle = await client.images.generate(PROMPT, wait=False)
    await handle
    fake_maxapi.fail_next(400, {"error": {"message": "echo: " + PROMPT}})
    with pytest.raises(maxapi_async.BadRequestError):
        await client.models.generate_content(contents=PROMPT)
    assert request_lines(caplog)
    data = result.images[0].data
    assert data is not None
    text = caplog.text
    assert "prompt-marker-5e1d" not in text
    assert '"model"' not in text
    assert "b64_json" not in text


async def test_nothing_is_formatted_when_debug_is_off(
    client: AsyncMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="maxapi_async")
    await client.images.generate(PROMPT)
    assert request_lines(caplog) == []


# -- hooks ---------------------------------------------------------------------------------------


@pytest.mark.fake_maxapi(complete_after_polls=2)
async def test_hooks_count_requests_retries_polls_and_finished_tasks_under_faults(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, counts: Counts
) -> None:
    fake_maxapi.add_fault(Fault(status=500, method="POST"))  # one failed submission
    fake_maxapi.add_fault(Fault(status=503, method="GET"))  # one failed poll
    fake_maxapi.add_fault(Fault(status=429, method="GET", headers={"Retry-After": "0"}))  # and another
    fake_maxapi.add_fault(Fault(status=502, origin="cdn"))  # one failed download
    handles = [await client.images.generate(f"{PROMPT} {i}", wait=False) for i in range(3)]
    results = await asyncio.gather(*handles)
    for result in results:
        await result.images[0].read()
    fake_maxapi.fail_tasks("CONTENT_MODERATION")
    failing = await client.images.generate(PROMPT, wait=False)
    with pytest.raises(maxapi_async.TaskFailedError):
        await failing

    # Every exchange with the API, retries included, is one on_request event.
    assert len(counts.requests) == len(fake_maxapi.requests)
    assert [e.request_id for e in counts.requests] == [r.request_id for r in fake_maxapi.requests]
    assert Counter(e.status for e in counts.requests) == Counter({200: 4 + 4 * 2, 500: 1, 503: 1, 429: 1})
    # One retry per injected fault: the submission, two polls and the download.
    assert Counter((e.method, e.path.split("/")[1]) for e in counts.retries) == Counter(
        {("POST", "v1"): 1, ("GET", "v1"): 2, ("GET", "assets"): 1}
    )
    # Each task was polled twice (complete_after_polls=2): failed polls are not poll answers.
    assert len(counts.polls) == 4 * 2
    assert Counter(e.state for e in counts.polls) == Counter({"running": 4, "succeeded": 3, "failed": 1})
    assert sorted((e.task_id, e.error) for e in counts.done) == sorted(
        [(h.id, None) for h in handles] + [(failing.id, "TaskFailedError")]
    )


async def test_a_hook_that_raises_never_breaks_a_call(
    fake_maxapi: FakeMaxAPI, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("metrics backend down")

    hooks = Hooks(on_request=broken, on_retry=broken, on_poll=broken, on_task_done=broken)
    fake_maxapi.fail_next(503)
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
        hooks=hooks,
    ) as client:
        assert await client.images.generate(PROMPT)
        assert await (await client.images.generate(PROMPT, wait=False))
    assert "a maxapi_async hook raised" in caplog.text


async def test_an_answer_refused_as_too_large_is_still_logged_and_counted(
    fake_maxapi: FakeMaxAPI, counts: Counts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxapi_async")
    fake_maxapi.add_fault(Fault(status=200, body=b"{" + b" " * 2_000 + b"}"))
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, max_response_bytes=100, hooks=counts.hooks
    ) as client:
        with pytest.raises(maxapi_async.ResponseTooLargeError):
            await client.images.generate(PROMPT)
    [line] = request_lines(caplog)
    assert (line["status"], line["request_id"]) == ("200", fake_maxapi.requests[-1].request_id)
    assert [(e.status, e.error) for e in counts.requests] == [(200, None)]
