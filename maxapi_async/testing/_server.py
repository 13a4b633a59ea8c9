"""The :class:`FakeMaxAPI` class: two aiohttp servers, built from the parts beside it.

This module starts and stops the servers (on the caller's event loop, or on a loop of their
own in a background thread), holds the options and the addresses, and composes the parts,
which import each other in this order (each only from those above it):

* :mod:`._png`: drawing PNGs of a given size, reading an image's type and size;
* :mod:`._errors`: the error bodies of the three route families and the handlers' ``ApiError``;
* :mod:`._fields`: the body fields the wire spec lists for each route;
* :mod:`._recording`: :class:`RecordedRequest` and the reading of a request into one;
* :mod:`._faults`: :class:`Fault`, the queue of pending faults, how a fault breaks an answer;
* :mod:`._middleware`: request ids, the API key check, errors rendered in the route's style;
* :mod:`maxapi_async._protocol.assets`: :class:`StoredAsset`, drawing the PNGs, the CDN route serving them;
* :mod:`._image_request`: the checked image request both route families share, its output size;
* :mod:`._task_queue`: queued tasks, when they finish, ``Idempotency-Key`` repeats;
* :mod:`._openai_routes`: ``/v1/images/generations``, ``/v1/images/edits``, their task polls;
* :mod:`._gemini_routes`: ``generateContent`` and ``operations``;
* :mod:`._waiting` and :mod:`._thread`: waiting for requests, the background loop;
* :mod:`._scripting`: the control methods a test calls (faults, failures, blocks, waits);
* :mod:`._control`: the same control as JSON over HTTP, under ``/_fake/``.

A request goes through :meth:`FakeMaxAPI._dispatch`: it is recorded, a scripted fault may answer
or delay it, the API key is checked, the body's unknown fields are refused in strict mode,
then the route answers (and an ``after_handler`` fault may break that answer).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Final

import anyio.to_thread
from aiohttp import web
from aiohttp.typedefs import Handler

from ._assets import StoredAsset, serve_asset
from ._control import CONTROL_PREFIX, add_control_routes
from ._errors import ApiError, bad, is_native
from ._faults import Fault, FaultScript, FaultSource, break_answer, drop_connection, fault_response
from ._gemini_routes import GeminiRoutes
from ._middleware import check_auth, middleware
from ._openai_routes import POLL_URL_STYLES, TASK_STYLES, OpenAIRoutes, PollUrlStyle, TaskStyle
from ._recording import (
    Origin,
    RecordedRequest,
    bare_record,
    current_record,
    record_request,
    set_current_record,
)
from ._scripting import Scripting
from ._task_queue import PollCount, Seconds, TaskQueue, check_timing
from ._thread import LoopThread
from ._waiting import RequestWaiters

__all__ = ["DEFAULT_API_KEY", "FakeMaxAPI"]

#: The API key a :class:`FakeMaxAPI` accepts unless told otherwise.
DEFAULT_API_KEY: Final = "sk-fake-maxapi-test-key"

_ANY_HOST: Final = frozenset({"", "0.0.0.0", "::"})


class FakeMaxAPI(Scripting):
    """A fake MaxAPI: an API origin and a CDN origin, each on its own port (127.0.0.1 by default).

    * The **API origin** (:attr:`base_url`) speaks MaxAPI's OpenAI-compatible image endpoints
      (``/v1/images/generations``, ``/v1/images/edits`` and their task polls) and the
      Gemini-native ones (``/v1beta/models/<model>:generateContent``,
      ``/v1beta/operations/<id>``), with MaxAPI's auth, validation and error bodies; any
      other path is a 404 in JSON. Its control API lives under ``/_fake/`` (see the README).
    * The **CDN origin** (:attr:`cdn_url`) serves the generated PNGs at ``/assets/<id>.png``.
      ``asset_delivery: "mirror"`` answers with URLs on the same port but host ``localhost``
      under ``/mirror/`` (:attr:`mirror_url`), a third origin.

    Every request is recorded (:attr:`requests`, :attr:`cdn_requests`), so a test can assert
    what the client sent, e.g. that the API key never reached the CDN. Faults (:class:`Fault`)
    script error answers, delays and dropped connections; queued tasks, blocked Gemini answers
    and task failures are scripted with methods (:meth:`fail_tasks`, :meth:`block_next`).

    Run it on your event loop (``async with FakeMaxAPI() as fake``, or ``await fake.start()``
    / ``await fake.close()``), or on a loop of its own in a background thread (``with
    FakeMaxAPI() as fake``, or :meth:`start_in_thread` / :meth:`stop_thread`): then any
    test style and any client, blocking or async, can talk to it, and its control methods
    may be called from the test's thread.

    Keyword options, with their defaults:

    * ``api_key="sk-fake-maxapi-test-key"``: the only key the API origin accepts.
    * ``strict=False``: refuse (400) a body field the wire spec does not list for the route;
      either way such fields are recorded on :attr:`RecordedRequest.unknown_fields`.
    * ``extra_models=()``: model ids accepted besides the catalog's (other models get 404
      ``model_not_found``); they get no size checks, and images of the first reference
      image's size, else 1024x1024.
    * ``honour_idempotency=True``: a queued submission repeating an ``Idempotency-Key``
      gets the first submission's task; ``False`` creates a new task each time.
    * ``complete_after_polls=2``: a queued task is ``processing`` on earlier polls and finished
      on this poll (0 = finished on the first poll). A list is a schedule (the n-th task
      queued takes the n-th value, the last repeating); a function takes the submission's
      :class:`RecordedRequest`.
    * ``complete_after_seconds=None``: if set, tasks finish by time (counted from the
      submission) instead of by poll count; a number, a schedule, or a function as above
      (``None`` from it counts polls).
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
      every request that no scripted fault matches (its fault's ``times``, ``skip``, ``path``,
      ``method``, ``match`` and ``origin`` are ignored): random faults for a soak test.
    * ``host="127.0.0.1"``, ``port=0``, ``cdn_port=0``: where the two servers listen (0 = a
      free port). ``public_host=None``: the host name in :attr:`base_url` and in the URLs
      the fake hands out (default: ``host``, or 127.0.0.1 when ``host`` is 0.0.0.0 or ::),
      e.g. the service name in a docker-compose file.

    Queued submissions honour ``Idempotency-Key`` like a careful service: a repeat of a
    key returns the task the first submission created instead of creating another
    (``created_tasks`` counts the tasks created, ``repeated_submissions`` the repeats).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        strict: bool = False,
        extra_models: Iterable[str] = (),
        honour_idempotency: bool = True,
        complete_after_polls: PollCount = 2,
        complete_after_seconds: Seconds = None,
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
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        public_host: str | None = None,
    ) -> None:
        if task_style not in TASK_STYLES:
            raise ValueError(f"task_style must be one of {TASK_STYLES}, not {task_style!r}")
        if poll_url_style not in POLL_URL_STYLES:
            raise ValueError(f"poll_url_style must be one of {POLL_URL_STYLES}")
        check_timing("complete_after_polls", complete_after_polls)
        check_timing("complete_after_seconds", complete_after_seconds)
        if status_words is not None:
            unknown = set(status_words) - {"pending", "running", "succeeded", "failed"}
            if unknown:
                raise ValueError(f"unknown status_words keys: {sorted(unknown)}")
        if isinstance(extra_models, str):
            raise ValueError("extra_models must be a list of model ids, not one string")
        self.api_key = api_key
        self.strict = strict
        self.extra_models: frozenset[str] = frozenset(extra_models)
        self.honour_idempotency = honour_idempotency
        self.complete_after_polls: PollCount = complete_after_polls
        self.complete_after_seconds: Seconds = complete_after_seconds
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
        self.host = host
        self._ports = (port, cdn_port)
        if public_host is None:
            public_host = "127.0.0.1" if host in _ANY_HOST else host
        self._url_host = f"[{public_host}]" if ":" in public_host else public_host

        self.requests: list[RecordedRequest] = []
        self.cdn_requests: list[RecordedRequest] = []
        self.assets: dict[str, StoredAsset] = {}
        #: Queued tasks created so far; a repeated ``Idempotency-Key`` creates none.
        self.created_tasks = 0
        #: Queued submissions whose ``Idempotency-Key`` had been seen before.
        self.repeated_submissions = 0
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._instance = secrets.token_hex(2)
        self._faults = FaultScript()
        self._queue = TaskQueue(self, self._next_id)
        self._openai = OpenAIRoutes(self, self._queue, self._next_id)
        self._gemini = GeminiRoutes(self, self._queue, self._next_id)
        self._waiters = RequestWaiters()
        self._api_runner: web.AppRunner | None = None
        self._cdn_runner: web.AppRunner | None = None
        self._api_port: int | None = None
        self._cdn_port: int | None = None
        self._closed = False
        self._thread: LoopThread | None = None
        self._loop_thread_id: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeMaxAPI:
        """Start both servers on the running event loop; returns ``self``."""
        if self._api_runner is not None or self._closed:
            raise RuntimeError("FakeMaxAPI can be started only once")
        self._loop_thread_id = threading.get_ident()
        api_app = web.Application(
            middlewares=[middleware("api", self._dispatch, self._next_request_id)],
            client_max_size=64 * 1024 * 1024,
        )
        openai, gemini = self._openai, self._gemini
        api_app.router.add_post("/v1/images/generations", openai.generations)
        api_app.router.add_post("/v1/images/edits", openai.edits)
        api_app.router.add_get("/v1/images/generations/{task_id}", openai.poll_generations)
        api_app.router.add_get("/v1/images/edits/{task_id}", openai.poll_edits)
        api_app.router.add_post("/v1beta/models/{tail:.+}", gemini.generate_content)
        api_app.router.add_get("/v1beta/operations/{tail:.+}", gemini.operation)
        add_control_routes(api_app.router, self)
        cdn_app = web.Application(middlewares=[middleware("cdn", self._dispatch, self._next_request_id)])
        cdn_app.router.add_get("/assets/{name}", self._cdn_asset)
        cdn_app.router.add_get("/mirror/{name}", self._cdn_asset)
        try:
            self._api_runner, self._api_port = await self._serve(api_app, self._ports[0])
            self._cdn_runner, self._cdn_port = await self._serve(cdn_app, self._ports[1])
        except BaseException:
            await self.close()
            raise
        return self

    async def _serve(self, app: web.Application, port: int) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, port)
            await site.start()
            port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        return runner, port

    async def close(self) -> None:
        """Stop both servers (idempotent). Recorded requests stay readable.

        For a fake started with :meth:`start_in_thread`, this stops its thread too (without
        blocking the caller's loop).
        """
        if self._thread is not None and threading.get_ident() != self._loop_thread_id:
            await anyio.to_thread.run_sync(self.stop_thread)
            return
        self._closed = True
        runners = [r for r in (self._api_runner, self._cdn_runner) if r is not None]
        self._api_runner = self._cdn_runner = None
        for runner in runners:
            await runner.cleanup()
        self._waiters.notify()

    async def __aenter__(self) -> FakeMaxAPI:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def start_in_thread(self) -> FakeMaxAPI:
        """Start both servers on an event loop of their own, in a daemon thread; returns ``self``.

        Blocks until the servers listen. The fake then answers whatever the calling thread
        does (blocking clients, another event loop); stop it with :meth:`stop_thread`.
        """
        if self._thread is not None or self._api_runner is not None or self._closed:
            raise RuntimeError("FakeMaxAPI can be started only once")
        thread = LoopThread(f"FakeMaxAPI-{self._instance}")
        try:
            thread.run(self.start)
        except BaseException:
            thread.stop()
            raise
        self._thread = thread
        return self

    def stop_thread(self) -> None:
        """Stop a fake started with :meth:`start_in_thread` and its thread; blocks (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            thread.run(self.close)
        finally:
            thread.stop()

    def __enter__(self) -> FakeMaxAPI:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    def _on_server_thread(self) -> bool:
        return self._loop_thread_id is not None and threading.get_ident() == self._loop_thread_id

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
        return f"http://{self._url_host}:{self.port}"

    @property
    def cdn_url(self) -> str:
        """The CDN origin, e.g. ``http://127.0.0.1:41235``; assets live under ``/assets/``."""
        return f"http://{self._url_host}:{self.cdn_port}"

    @property
    def mirror_url(self) -> str:
        """The mirror alias origin, ``http://localhost:<cdn_port>``; assets under ``/mirror/``.

        With a ``public_host`` other than 127.0.0.1 it is :attr:`cdn_url` (same origin).
        """
        if self._url_host != "127.0.0.1":
            return self.cdn_url
        return f"http://localhost:{self.cdn_port}"

    @property
    def control_url(self) -> str:
        """The control API's root, :attr:`base_url` + ``/_fake``."""
        return self.base_url + CONTROL_PREFIX

    def asset_url(self, asset_id: str, *, mirror: bool = False) -> str:
        """The URL the fake hands out for an asset."""
        if mirror:
            return f"{self.mirror_url}/mirror/{asset_id}.png"
        return f"{self.cdn_url}/assets/{asset_id}.png"

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
        """Record the request, apply a scripted fault, check the key and fields, run the route.

        The middleware calls this for every request; a subclass may wrap it. Control API
        requests (under ``/_fake/``) skip all of it: they are neither recorded nor faulted.
        """
        if origin == "api" and request.path.startswith(CONTROL_PREFIX + "/"):
            return await handler(request)
        log = self.requests if origin == "api" else self.cdn_requests
        try:
            record = await record_request(origin, request, request_id)
        except ApiError:
            self._log(log, bare_record(origin, request, request_id))
            raise
        self._log(log, record)
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
            if self.strict and record.unknown_fields:
                raise _unknown_field(request.path, record.unknown_fields[0])
        response = await handler(request)
        if fault is not None and fault.after_handler is not None:
            return await break_answer(request, response, fault.after_handler)
        return response

    def _log(self, log: list[RecordedRequest], record: RecordedRequest) -> None:
        log.append(record)
        self._waiters.notify()

    def _take_fault(self, origin: Origin, method: str, path: str) -> Fault | None:
        """The scripted fault for a request, if one matches; a subclass may add its own."""
        return self._faults.take(origin, method, path, current_record())

    _drop_connection = staticmethod(drop_connection)

    async def _cdn_asset(self, request: web.Request) -> web.Response:
        return serve_asset(self.assets, request)


def _unknown_field(path: str, field: str) -> ApiError:
    """The 400 a strict service gives for a body field it does not know, in the route's words."""
    if is_native(path):
        where, _, name = field.rpartition(".")
        at = f" at '{where}'" if where else ""
        return bad(None, f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')
    return bad(field, f"Unrecognized request argument supplied: {field}", "unknown_parameter")
