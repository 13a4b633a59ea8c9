"""The :class:`FakeMaxAPI` class: two aiohttp servers on 127.0.0.1, built from the parts beside it.

This module starts and stops the servers, holds the options and the public control methods,
and composes the parts, which import each other in this order (each only from those above it):

* :mod:`._png`: drawing PNGs of a given size, reading an image's type and size;
* :mod:`._errors`: the error bodies of the three route families and the handlers' ``ApiError``;
* :mod:`._recording`: :class:`RecordedRequest` and the reading of a request into one;
* :mod:`._faults`: :class:`Fault`, the queue of pending faults, how a fault breaks an answer;
* :mod:`._middleware`: request ids, the API key check, errors rendered in the route's style;
* :mod:`._assets`: :class:`StoredAsset`, drawing the PNGs, the CDN route serving them;
* :mod:`._image_request`: the checked image request both route families share, its output size;
* :mod:`._task_queue`: queued tasks, when they finish, ``Idempotency-Key`` repeats;
* :mod:`._openai_routes`: ``/v1/images/generations``, ``/v1/images/edits``, their task polls;
* :mod:`._gemini_routes`: ``generateContent`` and ``operations``.

A request goes through :meth:`FakeMaxAPI._dispatch`: it is recorded, a scripted fault may answer
or delay it, the API key is checked, then the route answers (and an ``after_handler`` fault may
break that answer).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from ._assets import StoredAsset, serve_asset
from ._errors import ApiError
from ._faults import Fault, FaultScript, FaultSource, break_answer, drop_connection, fault_response
from ._gemini_routes import GeminiRoutes
from ._middleware import check_auth, middleware
from ._openai_routes import POLL_URL_STYLES, TASK_STYLES, OpenAIRoutes, PollUrlStyle, TaskStyle
from ._recording import Origin, RecordedRequest, bare_record, record_request, set_current_record
from ._task_queue import TaskQueue

__all__ = ["DEFAULT_API_KEY", "FakeMaxAPI"]

#: The API key a :class:`FakeMaxAPI` accepts unless told otherwise.
DEFAULT_API_KEY: Final = "sk-fake-maxapi-test-key"


class FakeMaxAPI:
    """A fake MaxAPI on 127.0.0.1: an API origin and a CDN origin, each on its own port.

    * The **API origin** (:attr:`base_url`) speaks MaxAPI's OpenAI-compatible image endpoints
      (``/v1/images/generations``, ``/v1/images/edits`` and their task polls) and the
      Gemini-native ones (``/v1beta/models/<model>:generateContent``,
      ``/v1beta/operations/<id>``), with MaxAPI's auth, validation and error bodies.
    * The **CDN origin** (:attr:`cdn_url`) serves the generated PNGs at ``/assets/<id>.png``.
      ``asset_delivery: "mirror"`` answers with URLs on the same port but host ``localhost``
      under ``/mirror/`` (:attr:`mirror_url`), a third origin.

    Every request is recorded (:attr:`requests`, :attr:`cdn_requests`), so a test can assert
    what the client sent, e.g. that the API key never reached the CDN. Faults (:class:`Fault`)
    script error answers, delays and dropped connections; queued tasks, blocked Gemini answers
    and task failures are scripted with methods (:meth:`fail_tasks`, :meth:`block_next`).

    Typical use (``await fake.start()`` / ``await fake.close()`` work too)::

        async with FakeMaxAPI() as fake:
            fake.fail_next(429, headers={"Retry-After": "1"})
            client = SomeClient(base_url=fake.base_url, api_key=fake.api_key)
            ...
            assert fake.requests_to("/v1/images/generations")[-1].json["model"] == "..."
            assert all("Authorization" not in r.headers for r in fake.cdn_requests)

    Keyword options, with their defaults:

    * ``api_key="sk-fake-maxapi-test-key"``: the only key the API origin accepts.
    * ``complete_after_polls=2``: a queued task is ``processing`` on earlier polls and finished
      on this poll (0 = finished on the first poll).
    * ``complete_after_seconds=None``: if set, tasks finish by time instead of poll count.
    * ``task_style="plain"``: task object shape. ``"plain"``: ``{"id", "status", "created",
      "model", "progress", "poll_url", "data"|"error"}``; ``"envelope"``: the same with
      ``task_id`` wrapped in ``{"code": 0, "msg": "ok", "data": {...}}``; ``"camel"``:
      ``taskId``/``state`` with UPPERCASE words and assets under ``result: {"urls": [...]}``;
      ``"result_data"``: assets under ``result: {"data": [...]}``. Failures are
      ``error: {message, code}`` in ``"plain"`` and ``failure_reason: {code, msg}`` otherwise.
    * ``task_http_status=200``: status of the answer that queues a task (202 is the other
      common choice).
    * ``poll_retry_after=None``: if set, unfinished task/operation answers carry
      ``Retry-After`` with this many seconds.
    * ``poll_url_style="relative"``: ``poll_url`` is a path (``"relative"``), a URL on the API
      origin (``"absolute"``), a URL on the CDN origin that must not be followed with the key
      (``"foreign"``), or absent (``"none"``).
    * ``status_words=None``: override the task status words, keyed by ``"pending"``,
      ``"running"``, ``"succeeded"``, ``"failed"``.
    * ``include_usage=True``: OpenAI answers carry a ``usage`` object.
    * ``gemini_block_reason=None``: if set, every Gemini-native answer is blocked with this
      reason (see :meth:`block_next`); ``gemini_block_in_prompt=False`` chooses
      ``promptFeedback.blockReason`` instead of a candidate's ``finishReason``.
    * ``gemini_file_data=False``: Gemini answers also carry a ``fileData`` part with a CDN URL.
    * ``gemini_thought_drafts=0``: Gemini answers start with this many draft images marked
      ``"thought": true``.
    * ``gemini_snake_case=False``: Gemini answers use snake_case keys.
    * ``fault_source=None``: a callable ``(origin, method, path) -> Fault | None`` asked for
      every request that no scripted fault matches (its fault's ``times``, ``path``, ``method``
      and ``origin`` are ignored): random faults for a soak test, for instance.

    Queued submissions honour ``Idempotency-Key`` like a careful service: a repeat of a
    key returns the task the first submission created instead of creating another
    (``created_tasks`` counts the tasks created, ``repeated_submissions`` the repeats).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        complete_after_polls: int = 2,
        complete_after_seconds: float | None = None,
        task_style: TaskStyle = "plain",
        task_http_status: int = 200,
        poll_retry_after: float | None = None,
        poll_url_style: PollUrlStyle = "relative",
        status_words: Mapping[str, str] | None = None,
        include_usage: bool = True,
        gemini_block_reason: str | None = None,
        gemini_block_in_prompt: bool = False,
        gemini_file_data: bool = False,
        gemini_thought_drafts: int = 0,
        gemini_snake_case: bool = False,
        fault_source: FaultSource | None = None,
    ) -> None:
        if task_style not in TASK_STYLES:
            raise ValueError(f"task_style must be one of {TASK_STYLES}, not {task_style!r}")
        if poll_url_style not in POLL_URL_STYLES:
            raise ValueError(f"poll_url_style must be one of {POLL_URL_STYLES}")
        if complete_after_polls < 0:
            raise ValueError("complete_after_polls must be >= 0")
        if status_words is not None:
            unknown = set(status_words) - {"pending", "running", "succeeded", "failed"}
            if unknown:
                raise ValueError(f"unknown status_words keys: {sorted(unknown)}")
        self.api_key = api_key
        self.complete_after_polls = complete_after_polls
        self.complete_after_seconds = complete_after_seconds
        self.task_style: TaskStyle = task_style
        self.task_http_status = task_http_status
        self.poll_retry_after = poll_retry_after
        self.poll_url_style: PollUrlStyle = poll_url_style
        self.status_words: dict[str, str] = dict(status_words or {})
        self.include_usage = include_usage
        self.gemini_block_reason = gemini_block_reason
        self.gemini_block_in_prompt = gemini_block_in_prompt
        self.gemini_file_data = gemini_file_data
        self.gemini_thought_drafts = gemini_thought_drafts
        self.gemini_snake_case = gemini_snake_case
        self.fault_source = fault_source

        self.requests: list[RecordedRequest] = []
        self.cdn_requests: list[RecordedRequest] = []
        self.assets: dict[str, StoredAsset] = {}
        #: Queued tasks created so far; a repeated ``Idempotency-Key`` creates none.
        self.created_tasks = 0
        #: Queued submissions whose ``Idempotency-Key`` had already created a task.
        self.repeated_submissions = 0
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._instance = secrets.token_hex(2)
        self._faults = FaultScript()
        self._queue = TaskQueue(self, self._next_id)
        self._openai = OpenAIRoutes(self, self._queue, self._next_id)
        self._gemini = GeminiRoutes(self, self._queue, self._next_id)
        self._api_runner: web.AppRunner | None = None
        self._cdn_runner: web.AppRunner | None = None
        self._api_port: int | None = None
        self._cdn_port: int | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeMaxAPI:
        """Bind both servers to 127.0.0.1 on ephemeral ports; returns ``self``."""
        if self._api_runner is not None or self._closed:
            raise RuntimeError("FakeMaxAPI can be started only once")
        api_app = web.Application(
            middlewares=[middleware("api", self._dispatch, self._next_request_id)],
            client_max_size=64 * 1024 * 1024,
        )
        openai, gemini = self._openai, self._gemini
        api_app.router.add_post("/v1/images/generations", openai.generations)
        api_app.router.add_post("/v1/images/edits", openai.edits)
        api_app.router.add_get("/v1/images/generations/{task_id}", openai.poll_generations)
        api_app.router.add_get("/v1/images/edits/{task_id}", openai.poll_edits)
        # google-genai requests /v1/models/... by default, MaxAPI documents /v1beta/models/...
        for version in ("v1beta", "v1"):
            api_app.router.add_post(f"/{version}/models/{{tail:.+}}", gemini.generate_content)
            api_app.router.add_get(f"/{version}/operations/{{tail:.+}}", gemini.operation)
        cdn_app = web.Application(middlewares=[middleware("cdn", self._dispatch, self._next_request_id)])
        cdn_app.router.add_get("/assets/{name}", self._cdn_asset)
        cdn_app.router.add_get("/mirror/{name}", self._cdn_asset)
        try:
            self._api_runner, self._api_port = await self._serve(api_app)
            self._cdn_runner, self._cdn_port = await self._serve(cdn_app)
        except BaseException:
            await self.close()
            raise
        return self

    @staticmethod
    async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        return runner, port

    async def close(self) -> None:
        """Stop both servers (idempotent). Recorded requests stay readable."""
        self._closed = True
        runners = [r for r in (self._api_runner, self._cdn_runner) if r is not None]
        self._api_runner = self._cdn_runner = None
        for runner in runners:
            await runner.cleanup()

    async def __aenter__(self) -> FakeMaxAPI:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The API origin's port (after :meth:`start`)."""
        if self._api_port is None:
            raise RuntimeError("FakeMaxAPI is not started")
        return self._api_port

    @property
    def cdn_port(self) -> int:
        """The CDN origin's port (after :meth:`start`)."""
        if self._cdn_port is None:
            raise RuntimeError("FakeMaxAPI is not started")
        return self._cdn_port

    @property
    def base_url(self) -> str:
        """The API origin, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        """The CDN origin, e.g. ``http://127.0.0.1:41235``; assets live under ``/assets/``."""
        return f"http://127.0.0.1:{self.cdn_port}"

    @property
    def mirror_url(self) -> str:
        """The mirror alias origin, ``http://localhost:<cdn_port>``; assets under ``/mirror/``."""
        return f"http://localhost:{self.cdn_port}"

    def asset_url(self, asset_id: str, *, mirror: bool = False) -> str:
        """The URL the fake hands out for an asset."""
        if mirror:
            return f"{self.mirror_url}/mirror/{asset_id}.png"
        return f"{self.cdn_url}/assets/{asset_id}.png"

    # ------------------------------------------------------------------ scripting

    def add_fault(self, fault: Fault) -> Fault:
        """Queue a :class:`Fault`; faults are tried in the order they were added."""
        self._faults.add(fault)
        return fault

    def fail_next(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        path: str | None = None,
    ) -> Fault:
        """Answer the next ``times`` API requests (under ``path``, if given) with ``status``.

        ``body=None`` gives an error body in the route's style.
        """
        return self.add_fault(
            Fault(status=status, body=body, headers=dict(headers or {}), times=times, path=path)
        )

    def clear_faults(self) -> None:
        """Drop every pending fault, task failure and block."""
        self._faults.clear()
        self._queue.clear_failures()
        self._gemini.clear_blocks()

    def clear(self) -> None:
        """Forget recorded requests and pending scripts (assets and tasks are kept)."""
        self.requests.clear()
        self.cdn_requests.clear()
        self.clear_faults()

    def fail_tasks(
        self, reason: str = "CONTENT_MODERATION", message: str | None = None, *, times: int = 1
    ) -> None:
        """Make the next ``times`` queued tasks (either API family) end as failed.

        ``message`` defaults to a sentence describing ``reason``.
        """
        self._queue.script_failures(reason, message, times)

    def block_next(
        self, reason: str = "IMAGE_SAFETY", *, prompt_feedback: bool = False, times: int = 1
    ) -> None:
        """Make the next ``times`` Gemini-native answers blocked (HTTP 200, no image).

        By default the candidate comes back without an image and ``finishReason=reason``;
        with ``prompt_feedback=True`` there are no candidates and
        ``promptFeedback.blockReason=reason`` (use e.g. ``"SAFETY"``).
        """
        self._gemini.script_blocks(reason, prompt_feedback, times)

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        """The recorded API requests whose path starts with ``path_prefix``."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    # ------------------------------------------------------------------ the request path

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{self._instance}{next(self._ids):08x}"

    def _next_request_id(self) -> str:
        return f"req_{self._instance}{next(self._request_ids):08x}"

    async def _dispatch(
        self,
        origin: Origin,
        request: web.Request,
        handler: Handler,
        request_id: str,
    ) -> web.StreamResponse:
        """Record the request, apply a scripted fault, check the key, run the route.

        The middleware calls this for every request; a subclass may wrap it.
        """
        log = self.requests if origin == "api" else self.cdn_requests
        try:
            record = await record_request(origin, request, request_id)
        except ApiError:
            log.append(bare_record(origin, request, request_id))
            raise
        log.append(record)
        set_current_record(record)
        fault = self._take_fault(origin, request.method, request.path)
        if fault is None and self.fault_source is not None:
            fault = self.fault_source(origin, request.method, request.path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.after_handler is None:
                if fault.reset:
                    await self._drop_connection(request)
                if fault.status is not None or fault.body is not None:
                    return fault_response(origin, request.path, fault)
        if origin == "api":
            check_auth(request, self.api_key)
        response = await handler(request)
        if fault is not None and fault.after_handler is not None:
            return await break_answer(request, response, fault.after_handler)
        return response

    def _take_fault(self, origin: Origin, method: str, path: str) -> Fault | None:
        """The scripted fault for a request, if one matches; a subclass may add its own."""
        return self._faults.take(origin, method, path)

    _drop_connection = staticmethod(drop_connection)

    async def _cdn_asset(self, request: web.Request) -> web.Response:
        return serve_asset(self.assets, request)
