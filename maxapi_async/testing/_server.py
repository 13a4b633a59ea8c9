"""The fake MaxAPI service: a real :mod:`aiohttp.web` server on 127.0.0.1.

:class:`FakeMaxAPI` runs two origins on two ephemeral ports:

* the **API origin** (:attr:`FakeMaxAPI.base_url`) speaks MaxAPI's OpenAI-compatible image
  endpoints (``/v1/images/generations``, ``/v1/images/edits`` and their task polls) and the
  Gemini-native ones (``/v1beta/models/<model>:generateContent``, ``/v1beta/operations/<id>``),
  with MaxAPI's auth, validation and error bodies;
* the **CDN origin** (:attr:`FakeMaxAPI.cdn_url`) serves the generated PNGs at
  ``/assets/<id>.png``. ``asset_delivery: "mirror"`` answers with URLs on the same port but
  host ``localhost`` under ``/mirror/`` (:attr:`FakeMaxAPI.mirror_url`), a third origin.

Every request is recorded (:attr:`FakeMaxAPI.requests`, :attr:`FakeMaxAPI.cdn_requests`), so a
test can assert what the client sent, e.g. that the API key never reached the CDN. Faults
(:class:`Fault`) script error answers, delays and dropped connections; queued tasks, blocked
Gemini answers and task failures are scripted with methods on :class:`FakeMaxAPI`.

Typical use::

    async with FakeMaxAPI() as fake:
        fake.fail_next(429, headers={"Retry-After": "1"})
        client = SomeClient(base_url=fake.base_url, api_key=fake.api_key)
        ...
        assert fake.requests_to("/v1/images/generations")[-1].json["model"] == "..."
        assert all("Authorization" not in r.headers for r in fake.cdn_requests)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as _dt
import itertools
import re
import secrets
import time
import zlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Literal

import attrs
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from .._catalog import ROUTE_MODES, ModelSpec, lookup_model
from ._errors import ApiError, bad
from ._faults import Fault, FaultScript, FaultSource, break_answer, drop_connection, fault_response
from ._middleware import check_auth, middleware
from ._png import make_png, png_size, sniff_image_type
from ._recording import (
    IMAGE_FIELD,
    Origin,
    RecordedRequest,
    bare_record,
    current_record,
    record_request,
    set_current_record,
)

__all__ = [
    "DEFAULT_API_KEY",
    "FakeMaxAPI",
    "PollUrlStyle",
    "StoredAsset",
    "TaskStyle",
]
#: The API key a :class:`FakeMaxAPI` accepts unless told otherwise.
DEFAULT_API_KEY: Final = "sk-fake-maxapi-test-key"

#: How a queued task object is shaped (see :class:`FakeMaxAPI`).
TaskStyle = Literal["plain", "envelope", "camel", "result_data"]
#: What a task object's ``poll_url`` holds (see :class:`FakeMaxAPI`).
PollUrlStyle = Literal["relative", "absolute", "foreign", "none"]

_TASK_STYLES: Final = ("plain", "envelope", "camel", "result_data")
_POLL_URL_STYLES: Final = ("relative", "absolute", "foreign", "none")
_ASSET_TTL: Final = 7 * 24 * 3600.0
_TOKENS_PER_IMAGE: Final = 1290
_TOKENS_PER_REFERENCE: Final = 258
_FALLBACK_SIZE: Final = (1024, 1024)
_FALLBACK_MAX_N: Final = 10
_SEEDS: Final = 16
_JSON = Any  # a decoded JSON value

_DEFAULT_FAILURE_MESSAGES: Final[Mapping[str, str]] = {
    "CONTENT_MODERATION": "The request was rejected by content moderation.",
    "INVALID_PARAMETERS": "The request parameters were rejected by the upstream model.",
    "INSUFFICIENT_POINTS": "Insufficient credits to run this task.",
}


@attrs.frozen
class StoredAsset:
    """A generated image the CDN origin serves. ``created_at`` is a Unix time."""

    id: str
    data: bytes
    width: int
    height: int
    created_at: float
    content_type: str = "image/png"

    @property
    def expires_at(self) -> float:
        """Unix time the real CDN would drop the asset (7 days after creation)."""
        return self.created_at + _ASSET_TTL


@attrs.frozen
class _Failure:
    reason: str
    message: str


@attrs.frozen
class _Block:
    reason: str
    prompt_feedback: bool


@attrs.frozen
class _ImageParams:
    model: str
    spec: ModelSpec | None
    prompt: str
    n: int
    aspect_ratio: str | None
    resolution: str | None
    route_mode: str | None
    response_format: str
    mirror: bool
    queued: bool


@attrs.define
class _Task:
    id: str
    kind: Literal["generations", "edits", "operation"]
    model: str
    created: int
    submitted_at: float
    result: Any
    failure: _Failure | None
    polls: int = 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get(mapping: Mapping[str, Any], *names: str) -> Any:
    """The first present key among camelCase / snake_case spellings."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_CAMEL.sub(r"_\1", k).lower(): _snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def _rfc3339(unix: float) -> str:
    return _dt.datetime.fromtimestamp(unix, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeMaxAPI:
    """A fake MaxAPI on 127.0.0.1: an API origin and a CDN origin, each on its own port.

    Use ``async with FakeMaxAPI() as fake:`` (or ``await fake.start()`` /
    ``await fake.close()``). Keyword options, with their defaults:

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
        if task_style not in _TASK_STYLES:
            raise ValueError(f"task_style must be one of {_TASK_STYLES}, not {task_style!r}")
        if poll_url_style not in _POLL_URL_STYLES:
            raise ValueError(f"poll_url_style must be one of {_POLL_URL_STYLES}")
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
        self._tasks: dict[str, _Task] = {}
        self._by_idempotency_key: dict[str, str] = {}
        #: Queued tasks created so far; a repeated ``Idempotency-Key`` creates none.
        self.created_tasks = 0
        #: Queued submissions whose ``Idempotency-Key`` had already created a task.
        self.repeated_submissions = 0
        self._faults = FaultScript()
        self._task_failures: list[_Failure] = []
        self._blocks: list[_Block] = []
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._instance = secrets.token_hex(2)
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
        api_app.router.add_post("/v1/images/generations", self._generations)
        api_app.router.add_post("/v1/images/edits", self._edits)
        api_app.router.add_get("/v1/images/generations/{task_id}", self._poll_generations)
        api_app.router.add_get("/v1/images/edits/{task_id}", self._poll_edits)
        # google-genai requests /v1/models/... by default, MaxAPI documents /v1beta/models/...
        for version in ("v1beta", "v1"):
            api_app.router.add_post(f"/{version}/models/{{tail:.+}}", self._gemini)
            api_app.router.add_get(f"/{version}/operations/{{tail:.+}}", self._operation)
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
        self._task_failures.clear()
        self._blocks.clear()

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
        text = message or _DEFAULT_FAILURE_MESSAGES.get(reason, f"Task failed: {reason}")
        self._task_failures.extend(_Failure(reason, text) for _ in range(times))

    def block_next(
        self, reason: str = "IMAGE_SAFETY", *, prompt_feedback: bool = False, times: int = 1
    ) -> None:
        """Make the next ``times`` Gemini-native answers blocked (HTTP 200, no image).

        By default the candidate comes back without an image and ``finishReason=reason``;
        with ``prompt_feedback=True`` there are no candidates and
        ``promptFeedback.blockReason=reason`` (use e.g. ``"SAFETY"``).
        """
        self._blocks.extend(_Block(reason, prompt_feedback) for _ in range(times))

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

    # ------------------------------------------------------------------ images (OpenAI shape)

    @staticmethod
    def _record_of(request: web.Request) -> RecordedRequest:
        return current_record()

    async def _generations(self, request: web.Request) -> web.Response:
        record = self._record_of(request)
        if not isinstance(record.json, dict):
            raise bad(None, "The request body must be a JSON object.")
        params = self._parse_params(record.json, multipart=False)
        size = self._output_size(params, None)
        return await self._answer_images(request, "generations", params, size, references=0)

    async def _edits(self, request: web.Request) -> web.Response:
        record = self._record_of(request)
        if request.content_type != "multipart/form-data":
            raise bad(
                "image",
                "The edits endpoint takes a multipart/form-data body with 'image[]' file parts.",
                "missing_required_parameter",
            )
        images = [f for f in record.files if IMAGE_FIELD.match(f.field)]
        if not images:
            raise bad(
                "image", "At least one image is required (field 'image[]').", "missing_required_parameter"
            )
        for upload in [*images, *(f for f in record.files if f.field == "mask")]:
            param = "mask" if upload.field == "mask" else "image"
            if not upload.filename:
                raise bad(param, f"The '{upload.field}' part must have a filename.")
            if sniff_image_type(upload.data) is None:
                raise bad(
                    param,
                    f"Invalid image file '{upload.filename}': expected PNG, JPEG, WEBP or GIF.",
                    "invalid_image_format",
                )
        params = self._parse_params(record.form, multipart=True)
        size = self._output_size(params, images[0].data)
        return await self._answer_images(request, "edits", params, size, references=len(images))

    def _parse_params(self, fields: Mapping[str, Any], *, multipart: bool) -> _ImageParams:
        opt = fields.get

        model = fields.get("model")
        if model is None or model == "":
            raise bad("model", "Missing required parameter: 'model'.", "missing_required_parameter")
        if not isinstance(model, str):
            raise bad("model", "'model' must be a string.")
        spec = lookup_model(model)

        prompt = fields.get("prompt")
        if prompt is None:
            raise bad("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
        if not isinstance(prompt, str):
            raise bad("prompt", "'prompt' must be a string.")
        if not prompt.strip():
            raise bad("prompt", "'prompt' must not be empty.")

        max_n = spec.max_n if spec is not None else _FALLBACK_MAX_N
        raw_n = opt("n")
        n = 1
        if raw_n is not None:
            if multipart and isinstance(raw_n, str) and raw_n.strip().isdigit():
                raw_n = int(raw_n.strip())
            if not _is_int(raw_n) or not 1 <= raw_n <= max_n:
                raise bad("n", f"'n' must be an integer between 1 and {max_n}.")
            n = int(raw_n)

        aspect_ratio = opt("aspect_ratio")
        if aspect_ratio is not None:
            if not isinstance(aspect_ratio, str):
                raise bad("aspect_ratio", "'aspect_ratio' must be a string such as '16:9'.")
            if spec is not None and aspect_ratio not in spec.aspect_ratios:
                allowed = ", ".join(spec.aspect_ratios)
                raise bad(
                    "aspect_ratio",
                    f"Invalid aspect_ratio '{aspect_ratio}' for {spec.id}; allowed: {allowed}.",
                )

        resolution = opt("resolution")
        if spec is not None and spec.accepts_resolution and resolution is not None:
            if resolution not in spec.resolutions:
                allowed = ", ".join(spec.resolutions)
                raise bad(
                    "resolution",
                    f"Invalid resolution {resolution!r} for {spec.id}; allowed: {allowed}.",
                )
        elif not isinstance(resolution, str):
            resolution = None  # accepted and ignored

        route_mode = opt("route_mode")
        if route_mode is not None and route_mode not in ROUTE_MODES:
            raise bad("route_mode", f"'route_mode' must be one of {', '.join(ROUTE_MODES)}.")

        response_format = opt("response_format")
        if response_format is None:
            response_format = "url"
        elif response_format not in ("url", "b64_json"):
            raise bad("response_format", "'response_format' must be 'url' or 'b64_json'.")

        asset_delivery = opt("asset_delivery")
        if asset_delivery is not None and asset_delivery != "mirror":
            raise bad("asset_delivery", "'asset_delivery' must be 'mirror' when given.")

        queued = opt("async")
        if queued is None:
            queued = False
        elif multipart and isinstance(queued, str) and queued.lower() in ("true", "false"):
            queued = queued.lower() == "true"
        elif not isinstance(queued, bool):
            raise bad("async", "'async' must be a boolean.")

        return _ImageParams(
            model=model,
            spec=spec,
            prompt=prompt,
            n=n,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            route_mode=route_mode,
            response_format=response_format,
            mirror=asset_delivery == "mirror",
            queued=queued,
        )

    @staticmethod
    def _output_size(params: _ImageParams, reference: bytes | None) -> tuple[int, int]:
        spec = params.spec
        if spec is not None and (params.aspect_ratio is not None or reference is None):
            size = spec.size_for(params.aspect_ratio, params.resolution)
            if size is not None:
                return size
        if reference is not None:
            ref_size = png_size(reference)
            if ref_size is not None:
                return ref_size
        return _FALLBACK_SIZE

    async def _render(self, width: int, height: int, seed: int) -> bytes:
        # Encoding is cached, but a first encode of a large image is worth a thread hop.
        return await asyncio.to_thread(make_png, width, height, seed % _SEEDS)

    async def _new_asset(self, width: int, height: int, seed: int) -> StoredAsset:
        data = await self._render(width, height, seed)
        asset = StoredAsset(
            id=self._next_id("img_"), data=data, width=width, height=height, created_at=time.time()
        )
        self.assets[asset.id] = asset
        return asset

    async def _image_items(self, params: _ImageParams, size: tuple[int, int]) -> list[dict[str, Any]]:
        base_seed = zlib.crc32(params.prompt.encode())
        items: list[dict[str, Any]] = []
        for index in range(params.n):
            if params.response_format == "b64_json":
                data = await self._render(*size, base_seed + index)
                items.append({"b64_json": base64.b64encode(data).decode("ascii"), "revised_prompt": None})
            else:
                asset = await self._new_asset(*size, base_seed + index)
                items.append({"url": self.asset_url(asset.id, mirror=params.mirror), "revised_prompt": None})
        return items

    def _usage(self, prompt: str, images: int, references: int) -> dict[str, Any]:
        text_tokens = max(1, len(prompt) // 4)
        image_tokens = references * _TOKENS_PER_REFERENCE
        output = images * _TOKENS_PER_IMAGE
        return {
            "total_tokens": text_tokens + image_tokens + output,
            "input_tokens": text_tokens + image_tokens,
            "output_tokens": output,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        }

    async def _answer_images(
        self,
        request: web.Request,
        kind: Literal["generations", "edits"],
        params: _ImageParams,
        size: tuple[int, int],
        *,
        references: int,
    ) -> web.Response:
        if params.queued:
            repeat = self._repeat_of(request)
            if repeat is not None:
                return self._task_response(repeat, "pending", 0, status=self.task_http_status)
        failure = self._task_failures.pop(0) if params.queued and self._task_failures else None
        items = [] if failure is not None else await self._image_items(params, size)
        if params.queued:
            task = _Task(
                id=self._next_id("task_"),
                kind=kind,
                model=params.model,
                created=int(time.time()),
                submitted_at=self._record_of(request).received_at,
                result=items,
                failure=failure,
            )
            self._remember(request, task)
            return self._task_response(task, "pending", 0, status=self.task_http_status)
        body: dict[str, Any] = {"created": int(time.time()), "data": items}
        if self.include_usage:
            body["usage"] = self._usage(params.prompt, len(items), references)
        return web.json_response(body)

    # ------------------------------------------------------------------ queued tasks

    def _advance(self, task: _Task) -> tuple[str, int]:
        """Count one poll and return ``(state, progress)``."""
        task.polls += 1
        if self.complete_after_seconds is not None:
            elapsed = time.monotonic() - task.submitted_at
            done = elapsed >= self.complete_after_seconds
            fraction = elapsed / self.complete_after_seconds if self.complete_after_seconds else 1.0
        else:
            done = task.polls >= self.complete_after_polls
            fraction = task.polls / self.complete_after_polls if self.complete_after_polls else 1.0
        if done:
            return ("failed" if task.failure is not None else "succeeded"), 100
        return "running", max(1, min(99, int(fraction * 100)))

    def _status_word(self, state: str) -> str:
        if state in self.status_words:
            return self.status_words[state]
        word = {
            "pending": "queued",
            "running": "processing",
            "succeeded": "succeeded",
            "failed": "failed",
        }[state]
        if self.task_style == "camel":
            return "SUCCESS" if state == "succeeded" else word.upper()
        return word

    def _poll_url(self, task: _Task) -> str | None:
        path = f"/v1/images/{task.kind}/{task.id}"
        if self.poll_url_style == "relative":
            return path
        if self.poll_url_style == "absolute":
            return self.base_url + path
        if self.poll_url_style == "foreign":
            return self.cdn_url + path
        return None

    def _task_body(self, task: _Task, state: str, progress: int) -> dict[str, Any]:
        style = self.task_style
        obj: dict[str, Any] = {}
        if style == "camel":
            obj["taskId"] = task.id
            obj["state"] = self._status_word(state)
        else:
            obj["task_id" if style == "envelope" else "id"] = task.id
            obj["status"] = self._status_word(state)
        obj["created"] = task.created
        obj["model"] = task.model
        obj["progress"] = progress
        poll_url = self._poll_url(task)
        if poll_url is not None:
            obj["poll_url"] = poll_url
        if state == "succeeded":
            items: list[dict[str, Any]] = task.result
            if style == "camel" and all("url" in item for item in items):
                obj["result"] = {"urls": [item["url"] for item in items]}
            elif style in ("camel", "result_data"):
                obj["result"] = {"data": items}
            else:
                obj["data"] = items
        elif state == "failed" and task.failure is not None:
            if style == "plain":
                obj["error"] = {"message": task.failure.message, "code": task.failure.reason}
            else:
                obj["failure_reason"] = {"code": task.failure.reason, "msg": task.failure.message}
        if style == "envelope":
            return {"code": 0, "msg": "ok", "data": obj}
        return obj

    def _repeat_of(self, request: web.Request) -> _Task | None:
        """The task an earlier submission with the same ``Idempotency-Key`` created, if any."""
        key = request.headers.get("Idempotency-Key")
        if key not in self._by_idempotency_key:
            return None
        self.repeated_submissions += 1
        return self._tasks.get(self._by_idempotency_key[key])

    def _remember(self, request: web.Request, task: _Task) -> None:
        self._tasks[task.id] = task
        self.created_tasks += 1
        key = request.headers.get("Idempotency-Key")
        if key:
            self._by_idempotency_key[key] = task.id

    def _task_response(self, task: _Task, state: str, progress: int, *, status: int = 200) -> web.Response:
        response = web.json_response(self._task_body(task, state, progress), status=status)
        self._maybe_retry_after(response, state)
        return response

    def _maybe_retry_after(self, response: web.Response, state: str) -> None:
        if self.poll_retry_after is not None and state in ("pending", "running"):
            value = self.poll_retry_after
            response.headers[hdrs.RETRY_AFTER] = str(int(value)) if value == int(value) else str(value)

    def _find_task(self, task_id: str, kind: str) -> _Task:
        task = self._tasks.get(task_id)
        if task is None or task.kind != kind:
            raise ApiError(404, f"No task found with id '{task_id}'.", code="task_not_found")
        return task

    async def _poll_generations(self, request: web.Request) -> web.Response:
        task = self._find_task(request.match_info["task_id"], "generations")
        return self._task_response(task, *self._advance(task))

    async def _poll_edits(self, request: web.Request) -> web.Response:
        task = self._find_task(request.match_info["task_id"], "edits")
        return self._task_response(task, *self._advance(task))

    # ------------------------------------------------------------------ Gemini-native

    async def _gemini(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        model, sep, action = tail.rpartition(":")
        if not sep or action != "generateContent" or not model:
            raise ApiError(404, f"Unknown method '{tail}'.")
        model = model.removeprefix("models/")
        spec = lookup_model(model)
        record = self._record_of(request)
        body = record.json
        if not isinstance(body, dict):
            raise bad(None, "Invalid JSON payload: the body must be a JSON object.")

        route_mode = request.headers.get("X-MaxAPI-Route-Mode")
        if route_mode is not None and route_mode not in ROUTE_MODES:
            raise bad(None, f"X-MaxAPI-Route-Mode must be one of {', '.join(ROUTE_MODES)}.")
        async_header = request.headers.get("X-MaxAPI-Async", "false").strip().lower()
        if async_header not in ("true", "false", "1", "0"):
            raise bad(None, "X-MaxAPI-Async must be 'true' or 'false'.")
        queued = async_header in ("true", "1")

        prompt, references = self._gemini_contents(body)
        config = _get(body, "generationConfig", "generation_config") or {}
        if not isinstance(config, dict):
            raise bad(None, "generationConfig must be an object.")
        modalities = _get(config, "responseModalities", "response_modalities")
        if modalities is None:
            want_text = want_image = True
        elif isinstance(modalities, list) and all(
            isinstance(m, str) and m.upper() in ("TEXT", "IMAGE") for m in modalities
        ):
            upper = {m.upper() for m in modalities}
            want_text, want_image = "TEXT" in upper, "IMAGE" in upper
        else:
            raise bad(None, "responseModalities must be a list of 'TEXT' / 'IMAGE'.")
        image_config = _get(config, "imageConfig", "image_config") or {}
        if not isinstance(image_config, dict):
            raise bad(None, "imageConfig must be an object.")
        aspect_ratio = _get(image_config, "aspectRatio", "aspect_ratio")
        image_size = _get(image_config, "imageSize", "image_size")
        if aspect_ratio is not None and (
            not isinstance(aspect_ratio, str) or (spec is not None and aspect_ratio not in spec.aspect_ratios)
        ):
            raise bad(None, f"Unsupported aspect ratio: {aspect_ratio!r}.")
        if (
            spec is not None
            and spec.accepts_resolution
            and image_size is not None
            and image_size not in spec.resolutions
        ):
            raise bad(None, f"Unsupported image size: {image_size!r}.")

        params = _ImageParams(
            model=model,
            spec=spec,
            prompt=prompt,
            n=1,
            aspect_ratio=aspect_ratio,
            resolution=image_size if isinstance(image_size, str) else None,
            route_mode=route_mode,
            response_format="b64_json",
            mirror=False,
            queued=queued,
        )
        size = self._output_size(params, references[0] if references else None)
        repeat = self._repeat_of(request) if queued else None
        if repeat is not None:
            return self._operation_response(repeat, "pending", 0)
        block = self._next_block()
        failure = self._task_failures.pop(0) if queued and self._task_failures else None
        response_body = None
        if failure is None:
            response_body = await self._gemini_answer(
                params, size, len(references), block, want_text=want_text, want_image=want_image
            )
        if not queued:
            if self.gemini_snake_case:
                response_body = _snake_keys(response_body)
            return web.json_response(response_body)
        task = _Task(
            id=self._next_id("op_"),
            kind="operation",
            model=model,
            created=int(time.time()),
            submitted_at=self._record_of(request).received_at,
            result=response_body,
            failure=failure,
        )
        self._remember(request, task)
        return self._operation_response(task, "pending", 0)

    @staticmethod
    def _gemini_contents(body: Mapping[str, Any]) -> tuple[str, list[bytes]]:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise bad(None, "* GenerateContentRequest.contents: contents is not specified")
        texts: list[str] = []
        references: list[bytes] = []
        for content in contents:
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise bad(None, "* GenerateContentRequest.contents.parts: must not be empty")
            for part in parts:
                if not isinstance(part, dict):
                    raise bad(None, "Each part must be an object.")
                text = part.get("text")
                inline = _get(part, "inlineData", "inline_data")
                if isinstance(text, str):
                    if not part.get("thought"):
                        texts.append(text)
                elif isinstance(inline, dict):
                    mime = _get(inline, "mimeType", "mime_type")
                    data = inline.get("data")
                    if not isinstance(mime, str) or not isinstance(data, str):
                        raise bad(None, "inlineData needs 'mimeType' and base64 'data'.")
                    try:
                        raw = base64.b64decode(data, validate=True)
                    except (binascii.Error, ValueError) as exc:
                        raise bad(None, "inlineData.data is not valid base64.") from exc
                    if sniff_image_type(raw) is None:
                        raise bad(None, "inlineData.data is not a PNG, JPEG, WEBP or GIF image.")
                    references.append(raw)
        prompt = "\n".join(t for t in texts if t.strip())
        if not prompt:
            raise bad(None, "The request must contain at least one non-empty text part.")
        return prompt, references

    def _next_block(self) -> _Block | None:
        if self._blocks:
            return self._blocks.pop(0)
        if self.gemini_block_reason is not None:
            return _Block(self.gemini_block_reason, self.gemini_block_in_prompt)
        return None

    async def _gemini_answer(
        self,
        params: _ImageParams,
        size: tuple[int, int],
        references: int,
        block: _Block | None,
        *,
        want_text: bool,
        want_image: bool,
    ) -> dict[str, Any]:
        prompt_tokens = max(1, len(params.prompt) // 4) + references * _TOKENS_PER_REFERENCE
        bare_model = params.model.removeprefix("google/")
        answer: dict[str, Any] = {}
        images = 0
        if block is not None and block.prompt_feedback:
            answer["promptFeedback"] = {"blockReason": block.reason, "safetyRatings": []}
        elif block is not None:
            answer["candidates"] = [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "I can't generate that image."}],
                    },
                    "finishReason": block.reason,
                    "index": 0,
                }
            ]
        else:
            seed = zlib.crc32(params.prompt.encode())
            parts: list[dict[str, Any]] = []
            if want_text:
                parts.append({"text": "Here is your image."})
            if want_image:
                for draft in range(self.gemini_thought_drafts):
                    data = await self._render(*size, seed + draft + 1)
                    parts.append({"inlineData": _inline(data), "thought": True})
                asset = await self._new_asset(*size, seed)
                parts.append({"inlineData": _inline(asset.data)})
                if self.gemini_file_data:
                    parts.append({"fileData": {"mimeType": "image/png", "fileUri": self.asset_url(asset.id)}})
                images = 1
            answer["candidates"] = [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ]
        output_tokens = images * _TOKENS_PER_IMAGE
        answer["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        }
        answer["modelVersion"] = bare_model
        answer["responseId"] = secrets.token_urlsafe(16)
        return answer

    def _operation_body(self, task: _Task, state: str, progress: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": f"operations/{task.id}",
            "done": state in ("succeeded", "failed"),
            "metadata": {
                "model": task.model,
                "createTime": _rfc3339(task.created),
                "progressPercent": progress,
            },
        }
        if state == "succeeded":
            body["response"] = task.result
        elif state == "failed" and task.failure is not None:
            body["error"] = {
                "code": 3,
                "message": f"{task.failure.reason}: {task.failure.message}",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": task.failure.reason,
                        "domain": "maxapi.dev",
                    }
                ],
            }
        return body

    def _operation_response(self, task: _Task, state: str, progress: int) -> web.Response:
        body = self._operation_body(task, state, progress)
        if self.gemini_snake_case:
            body = _snake_keys(body)
        response = web.json_response(body)
        self._maybe_retry_after(response, state)
        return response

    async def _operation(self, request: web.Request) -> web.Response:
        op_id = request.match_info["tail"].removeprefix("operations/")
        task = self._tasks.get(op_id)
        if task is None or task.kind != "operation":
            raise ApiError(404, f"Operation 'operations/{op_id}' not found.")
        return self._operation_response(task, *self._advance(task))

    # ------------------------------------------------------------------ CDN

    async def _cdn_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        asset_id, dot, ext = name.rpartition(".")
        asset = self.assets.get(asset_id) if dot and ext == "png" else None
        if asset is None:
            raise web.HTTPNotFound(reason="Asset not found")
        response = web.Response(body=asset.data, content_type=asset.content_type)
        response.headers[hdrs.CACHE_CONTROL] = "public, max-age=604800, immutable"
        response.headers[hdrs.LAST_MODIFIED] = _dt.datetime.fromtimestamp(
            asset.created_at, _dt.timezone.utc
        ).strftime("%a, %d %b %Y %H:%M:%S GMT")
        return response


def _inline(data: bytes) -> dict[str, str]:
    return {"mimeType": "image/png", "data": base64.b64encode(data).decode("ascii")}
