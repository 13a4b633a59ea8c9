"""The OpenAI-compatible routes: ``/v1/images/generations``, ``/v1/images/edits`` and their task polls.

:class:`OpenAIRoutes` checks a request's fields like the service (:func:`parse_params`) and
answers with images by URL (stored for the CDN) or inline ``b64_json``, plus ``usage``; a
queued submission (``"async": true``) answers with a task object instead, in one of the
:data:`TaskStyle` shapes, and ``GET /v1/images/<kind>/<task_id>`` polls it.
"""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal, Protocol

from aiohttp import web

from .._protocol.catalog import ROUTE_MODES
from ._assets import StoredAsset, render, store_asset
from ._errors import ApiError, bad
from ._image_request import (
    TOKENS_PER_IMAGE,
    TOKENS_PER_REFERENCE,
    ImageParams,
    find_model,
    output_size,
    text_tokens,
)
from ._png import sniff_image_type
from ._recording import IMAGE_FIELD, current_record
from ._task_queue import Task, TaskQueue

__all__ = [
    "POLL_URL_STYLES",
    "TASK_STYLES",
    "OpenAIHost",
    "OpenAIRoutes",
    "PollUrlStyle",
    "TaskStyle",
    "parse_params",
]

#: How a queued task object is shaped (see :class:`FakeMaxAPI`).
TaskStyle = Literal["plain", "envelope", "camel", "result_data"]
#: What a task object's ``poll_url`` holds (see :class:`FakeMaxAPI`).
PollUrlStyle = Literal["relative", "absolute", "foreign", "none"]

TASK_STYLES: Final = ("plain", "envelope", "camel", "result_data")
POLL_URL_STYLES: Final = ("relative", "absolute", "foreign", "none")
#: The largest ``n`` for a model the table does not know.
_FALLBACK_MAX_N: Final = 10


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_params(
    fields: Mapping[str, Any], *, multipart: bool, extra_models: Collection[str] = ()
) -> ImageParams:
    """Check a JSON body's (or a multipart form's text) fields like the service: a 400 for a bad
    field, a 404 ``model_not_found`` for a model neither the catalog nor ``extra_models`` has."""
    opt = fields.get

    model = fields.get("model")
    if model is None or model == "":
        raise bad("model", "Missing required parameter: 'model'.", "missing_required_parameter")
    if not isinstance(model, str):
        raise bad("model", "'model' must be a string.")
    spec = find_model(model, extra_models)

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

    return ImageParams(
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


def _usage(prompt: str, images: int, references: int) -> dict[str, Any]:
    text = text_tokens(prompt)
    image_tokens = references * TOKENS_PER_REFERENCE
    output = images * TOKENS_PER_IMAGE
    return {
        "total_tokens": text + image_tokens + output,
        "input_tokens": text + image_tokens,
        "output_tokens": output,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image_tokens},
    }


class OpenAIHost(Protocol):
    """What the OpenAI-compatible routes read on the fake (see :class:`FakeMaxAPI`)."""

    include_usage: bool
    extra_models: frozenset[str]
    task_http_status: int
    task_style: TaskStyle
    poll_url_style: PollUrlStyle
    status_words: dict[str, str]
    assets: dict[str, StoredAsset]

    @property
    def base_url(self) -> str: ...

    @property
    def cdn_url(self) -> str: ...

    def asset_url(self, asset_id: str, *, mirror: bool = False) -> str: ...


class OpenAIRoutes:
    """The handlers of the OpenAI-compatible routes of one fake."""

    def __init__(self, fake: OpenAIHost, tasks: TaskQueue, next_id: Callable[[str], str]) -> None:
        self._fake = fake
        self._tasks = tasks
        self._next_id = next_id

    # ------------------------------------------------------------------ submissions

    async def generations(self, request: web.Request) -> web.Response:
        """``POST /v1/images/generations`` (a JSON body)."""
        record = current_record()
        if not isinstance(record.json, dict):
            raise bad(None, "The request body must be a JSON object.")
        params = parse_params(record.json, multipart=False, extra_models=self._fake.extra_models)
        size = output_size(params, None)
        return await self._answer_images(request, "generations", params, size, references=0)

    async def edits(self, request: web.Request) -> web.Response:
        """``POST /v1/images/edits`` (a multipart body with ``image[]`` parts and an optional ``mask``)."""
        record = current_record()
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
        params = parse_params(record.form, multipart=True, extra_models=self._fake.extra_models)
        size = output_size(params, images[0].data)
        return await self._answer_images(request, "edits", params, size, references=len(images))

    async def _image_items(self, params: ImageParams, size: tuple[int, int]) -> list[dict[str, Any]]:
        base_seed = zlib.crc32(params.prompt.encode())
        items: list[dict[str, Any]] = []
        for index in range(params.n):
            if params.response_format == "b64_json":
                data = await render(*size, base_seed + index)
                items.append({"b64_json": base64.b64encode(data).decode("ascii"), "revised_prompt": None})
            else:
                asset = await store_asset(self._fake.assets, self._next_id, *size, base_seed + index)
                url = self._fake.asset_url(asset.id, mirror=params.mirror)
                items.append({"url": url, "revised_prompt": None})
        return items

    async def _answer_images(
        self,
        request: web.Request,
        kind: Literal["generations", "edits"],
        params: ImageParams,
        size: tuple[int, int],
        *,
        references: int,
    ) -> web.Response:
        if params.queued:
            repeat = self._tasks.repeat_of(request)
            if repeat is not None:
                return self._task_response(repeat, "pending", 0, status=self._fake.task_http_status)
        failure = self._tasks.take_failure() if params.queued else None
        items = [] if failure is not None else await self._image_items(params, size)
        if params.queued:
            task = self._tasks.add(request, kind, params.model, items, failure)
            return self._task_response(task, "pending", 0, status=self._fake.task_http_status)
        body: dict[str, Any] = {"created": int(time.time()), "data": items}
        if self._fake.include_usage:
            body["usage"] = _usage(params.prompt, len(items), references)
        return web.json_response(body)

    # ------------------------------------------------------------------ task polls

    async def poll_generations(self, request: web.Request) -> web.Response:
        """``GET /v1/images/generations/{task_id}``."""
        return self._poll(request.match_info["task_id"], "generations")

    async def poll_edits(self, request: web.Request) -> web.Response:
        """``GET /v1/images/edits/{task_id}``."""
        return self._poll(request.match_info["task_id"], "edits")

    def _poll(self, task_id: str, kind: Literal["generations", "edits"]) -> web.Response:
        task = self._tasks.find(task_id, kind)
        if task is None:
            raise ApiError(404, f"No task found with id '{task_id}'.", code="task_not_found")
        return self._task_response(task, *self._tasks.advance(task))

    # ------------------------------------------------------------------ the task object

    def _task_response(self, task: Task, state: str, progress: int, *, status: int = 200) -> web.Response:
        response = web.json_response(self._task_body(task, state, progress), status=status)
        self._tasks.mark_retry_after(response, state)
        return response

    def _status_word(self, state: str) -> str:
        if state in self._fake.status_words:
            return self._fake.status_words[state]
        word = {
            "pending": "queued",
            "running": "processing",
            "succeeded": "succeeded",
            "failed": "failed",
        }[state]
        if self._fake.task_style == "camel":
            return "SUCCESS" if state == "succeeded" else word.upper()
        return word

    def _poll_url(self, task: Task) -> str | None:
        path = f"/v1/images/{task.kind}/{task.id}"
        style = self._fake.poll_url_style
        if style == "relative":
            return path
        if style == "absolute":
            return self._fake.base_url + path
        if style == "foreign":
            return self._fake.cdn_url + path
        return None

    def _task_body(self, task: Task, state: str, progress: int) -> dict[str, Any]:
        style = self._fake.task_style
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
