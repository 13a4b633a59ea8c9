"""Test helpers for code that uses MaxAPI: a fake MaxAPI server you run in your own tests.

:class:`FakeMaxAPI` is a real HTTP server (aiohttp) on 127.0.0.1 that speaks MaxAPI's image
API as strictly as the service: the OpenAI-compatible ``/v1/images/generations`` and
``/v1/images/edits`` (sync and queued, with task polling), the Gemini-native
``/v1beta/models/<model>:generateContent`` and ``/v1beta/operations/<id>``; unknown models are a
404 ``model_not_found``, undocumented routes a JSON 404, undocumented body fields are recorded
(:attr:`RecordedRequest.unknown_fields`) and, with ``strict=True``, refused. It returns real PNGs
of the exact size of the model's table from a separate CDN origin, records every request, and
lets a test script errors, delays, dropped connections (:class:`Fault`, matched by any predicate
over the request), per-task durations, failed tasks and blocked answers. Point any client (this
package's, the ``openai`` SDK, ``google-genai`` with ``api_version="v1beta"``) at
:attr:`FakeMaxAPI.base_url` with :attr:`FakeMaxAPI.api_key`.

It runs on your event loop (``async with FakeMaxAPI() as fake``) or on one of its own in a
background thread (``with FakeMaxAPI() as fake``), which serves any test style and blocking
clients too::

    import maxapi_async
    from maxapi_async.testing import FakeMaxAPI

    def test_retries_on_503() -> None:
        with FakeMaxAPI() as fake, maxapi_async.MaxAPI(fake.api_key, base_url=fake.base_url) as client:
            fake.fail_next(503)
            client.images.generate("a glass cube")
            assert len(fake.requests_to("/v1/images/generations")) == 2

With pytest, the ``fake_maxapi`` fixture (:mod:`maxapi_async.testing.pytest_plugin`, registered
automatically) hands each test a fake running in its own thread, whatever the test's style
(anyio, pytest-asyncio strict or auto, plain ``def``); ``@pytest.mark.fake_maxapi(**options)``
passes constructor options. Wait for requests with ``await fake.wait_for_requests(n)`` or
``fake.wait_for_requests_blocking(n)``, never with sleeps.

Outside Python, ``maxapi-async fake-server --host H --port P --api-key K`` serves one, and a JSON
control API under ``/_fake/`` scripts it (state, recorded requests, faults, task failures,
blocks, options, reset): see the README's "Testing your code against the fake".
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
