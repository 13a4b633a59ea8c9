"""Test helpers for code that uses MaxAPI: a fake MaxAPI server you run in your own tests.

:class:`FakeMaxAPI` is a real HTTP server (aiohttp) on 127.0.0.1 that speaks MaxAPI's image
API: the OpenAI-compatible ``/v1/images/generations`` and ``/v1/images/edits`` (sync and
queued, with task polling), the Gemini-native ``/v1beta/models/<model>:generateContent`` and
``/v1beta/operations/<id>``. It checks the API key and the request fields like the service,
returns real PNGs of the exact size of Google's table from a separate CDN origin, records
every request, and lets a test script errors, delays, dropped connections, failed tasks and
blocked answers. Point any client (this package's, the ``openai`` SDK, ``google-genai``) at
:attr:`FakeMaxAPI.base_url` with :attr:`FakeMaxAPI.api_key`::

    from maxapi_async.testing import FakeMaxAPI, openai_error

    async def test_retries_on_429() -> None:
        async with FakeMaxAPI() as fake:
            fake.fail_next(429, openai_error(429, "slow down"), {"Retry-After": "0"})
            ...  # call your code with base_url=fake.base_url, api_key=fake.api_key
            assert len(fake.requests_to("/v1/images/generations")) == 2

With pytest and anyio's plugin, the ``fake_maxapi`` fixture from
:mod:`maxapi_async.testing.pytest_plugin` hands you a started server.

The server needs an asyncio event loop (aiohttp); it does not run under trio.
"""

from __future__ import annotations

from ._assets import StoredAsset
from ._control import RequestMatch
from ._errors import google_error, openai_error, platform_error
from ._faults import AfterHandler, Fault, FaultSource
from ._openai_routes import PollUrlStyle, TaskStyle
from ._png import make_png, png_size, sniff_image_type
from ._recording import Origin, RecordedFile, RecordedRequest
from ._server import DEFAULT_API_KEY, FakeMaxAPI
from ._task_queue import PollCount, Seconds

__all__ = [
    "DEFAULT_API_KEY",
    "AfterHandler",
    "FakeMaxAPI",
    "Fault",
    "FaultSource",
    "Origin",
    "PollCount",
    "PollUrlStyle",
    "RecordedFile",
    "RecordedRequest",
    "RequestMatch",
    "Seconds",
    "StoredAsset",
    "TaskStyle",
    "google_error",
    "make_png",
    "openai_error",
    "platform_error",
    "png_size",
    "sniff_image_type",
]
