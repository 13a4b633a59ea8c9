"""The Gemini-native routes: ``POST /v1beta/models/<model>:generateContent`` and its operations.

:class:`GeminiRoutes` reads a ``generateContent`` body (camelCase or snake_case keys: the
``text``, ``inlineData`` and ``fileData`` parts of ``contents``, base64 standard or URL-safe,
``generationConfig.responseModalities`` and ``imageConfig``'s ``aspectRatio`` and
``imageSize``) and the ``X-MaxAPI-*`` headers, and answers with a candidate carrying the image
inline, or a blocked answer (:meth:`GeminiRoutes.script_blocks`). With ``X-MaxAPI-Async:
true`` it answers with a long-running operation instead, polled at
``GET /v1beta/operations/<id>``. Only ``/v1beta`` is served, as MaxAPI documents it
(google-genai needs ``HttpOptions(api_version="v1beta")``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
from aiohttp import web

from .._protocol.catalog import ROUTE_MODES
from .._protocol.images import IMAGE_TYPES
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
from ._recording import current_record
from ._task_queue import Task, TaskQueue

__all__ = ["GeminiHost", "GeminiRoutes", "decode_base64", "read_contents"]

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


@attrs.frozen
class _Block:
    reason: str
    prompt_feedback: bool


def _get(mapping: Mapping[str, Any], *names: str) -> Any:
    """The first present key among camelCase / snake_case spellings."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_CAMEL.sub(r"_\1", k).lower(): _snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def _rfc3339(unix: float) -> str:
    return _dt.datetime.fromtimestamp(unix, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _inline(data: bytes) -> dict[str, str]:
    return {"mimeType": "image/png", "data": base64.b64encode(data).decode("ascii")}


def decode_base64(data: str) -> bytes:
    """Bytes from standard or URL-safe base64, with or without padding (google-genai sends
    URL-safe base64; Google's API reads both); a 400 for anything else."""
    text = data.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad(None, "inlineData.data is not valid base64.") from exc


def read_contents(
    body: Mapping[str, Any], resolve_uri: Callable[[str], bytes | None] = lambda uri: None
) -> tuple[str, list[bytes | None]]:
    """The prompt (the non-thought text parts, joined) and the reference images of ``contents``.

    A reference is the bytes of an ``inlineData`` part, or of a ``fileData`` part whose
    ``fileUri`` ``resolve_uri`` can read (the fake's own assets); ``None`` for another
    ``fileData`` image. Image-only contents are fine; contents with neither text nor an image
    are not.
    """
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise bad(None, "* GenerateContentRequest.contents: contents is not specified")
    texts: list[str] = []
    references: list[bytes | None] = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise bad(None, "* GenerateContentRequest.contents.parts: must not be empty")
        for part in parts:
            if not isinstance(part, dict):
                raise bad(None, "Each part must be an object.")
            text = part.get("text")
            inline = _get(part, "inlineData", "inline_data")
            file_data = _get(part, "fileData", "file_data")
            if isinstance(text, str):
                if not part.get("thought"):
                    texts.append(text)
            elif isinstance(inline, dict):
                mime = _get(inline, "mimeType", "mime_type")
                data = inline.get("data")
                if not isinstance(mime, str) or not isinstance(data, str):
                    raise bad(None, "inlineData needs 'mimeType' and base64 'data'.")
                raw = decode_base64(data)
                if sniff_image_type(raw) is None:
                    raise bad(None, "inlineData.data is not a PNG, JPEG, WEBP or GIF image.")
                references.append(raw)
            elif isinstance(file_data, dict):
                uri = _get(file_data, "fileUri", "file_uri")
                mime = _get(file_data, "mimeType", "mime_type")
                if not isinstance(uri, str) or not uri:
                    raise bad(None, "fileData needs a 'fileUri'.")
                if mime is not None and mime not in IMAGE_TYPES:
                    raise bad(None, f"fileData.mimeType must be one of {', '.join(IMAGE_TYPES)}.")
                references.append(resolve_uri(uri))
            else:
                raise bad(None, "Each part needs 'text', 'inlineData' or 'fileData'.")
    prompt = "\n".join(t for t in texts if t.strip())
    if not prompt and not references:
        raise bad(None, "The request must contain a non-empty text part or an image.")
    return prompt, references


class GeminiHost(Protocol):
    """What the Gemini-native routes read on the fake (see :class:`FakeMaxAPI`)."""

    gemini_block_reason: str | None
    gemini_block_in_prompt: bool
    gemini_file_data: bool
    gemini_thought_drafts: int
    gemini_snake_case: bool
    extra_models: frozenset[str]
    assets: dict[str, StoredAsset]

    def asset_url(self, asset_id: str, *, mirror: bool = False) -> str: ...


class GeminiRoutes:
    """The handlers of the Gemini-native routes of one fake, and its scripted blocked answers."""

    def __init__(self, fake: GeminiHost, tasks: TaskQueue, next_id: Callable[[str], str]) -> None:
        self._fake = fake
        self._tasks = tasks
        self._next_id = next_id
        self._blocks: list[_Block] = []
        self._lock = threading.Lock()  # blocks are scripted from a test's thread

    # ------------------------------------------------------------------ scripted blocks

    def script_blocks(self, reason: str, prompt_feedback: bool, times: int) -> None:
        """Make the next ``times`` answers blocked (see :meth:`FakeMaxAPI.block_next`)."""
        with self._lock:
            self._blocks.extend(_Block(reason, prompt_feedback) for _ in range(times))

    def clear_blocks(self) -> None:
        """Drop the scripted blocks not used yet."""
        with self._lock:
            self._blocks.clear()

    def _next_block(self) -> _Block | None:
        with self._lock:
            if self._blocks:
                return self._blocks.pop(0)
        if self._fake.gemini_block_reason is not None:
            return _Block(self._fake.gemini_block_reason, self._fake.gemini_block_in_prompt)
        return None

    def _asset_bytes(self, uri: str) -> bytes | None:
        """The bytes of one of the fake's own assets named by ``uri``; ``None`` for any other URI."""
        asset_id = uri.rsplit("/", 1)[-1].removesuffix(".png")
        asset = self._fake.assets.get(asset_id)
        urls = (self._fake.asset_url(asset_id), self._fake.asset_url(asset_id, mirror=True))
        return asset.data if asset is not None and uri in urls else None

    # ------------------------------------------------------------------ generateContent

    async def generate_content(self, request: web.Request) -> web.Response:
        """``POST /v1beta/models/{model}:generateContent`` (any other method on a model is a 404)."""
        tail = request.match_info["tail"]
        model, sep, action = tail.rpartition(":")
        if not sep or action != "generateContent" or not model:
            raise ApiError(404, f"Unknown method '{tail}'.")
        model = model.removeprefix("models/")
        spec = find_model(model, self._fake.extra_models)
        body = current_record().json
        if not isinstance(body, dict):
            raise bad(None, "Invalid JSON payload: the body must be a JSON object.")

        route_mode = request.headers.get("X-MaxAPI-Route-Mode")
        if route_mode is not None and route_mode not in ROUTE_MODES:
            raise bad(None, f"X-MaxAPI-Route-Mode must be one of {', '.join(ROUTE_MODES)}.")
        async_header = request.headers.get("X-MaxAPI-Async", "false").strip().lower()
        if async_header not in ("true", "false", "1", "0"):
            raise bad(None, "X-MaxAPI-Async must be 'true' or 'false'.")
        queued = async_header in ("true", "1")

        prompt, references = read_contents(body, self._asset_bytes)
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

        params = ImageParams(
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
        size = output_size(params, references[0] if references else None)
        repeat = self._tasks.repeat_of(request) if queued else None
        if repeat is not None:
            return self._operation_response(repeat, "pending", 0)
        block = self._next_block()
        failure = self._tasks.take_failure() if queued else None
        response_body = None
        if failure is None:
            response_body = await self._answer(
                params, size, len(references), block, want_text=want_text, want_image=want_image
            )
        if not queued:
            if self._fake.gemini_snake_case:
                response_body = _snake_keys(response_body)
            return web.json_response(response_body)
        task = self._tasks.add(request, "operation", model, response_body, failure)
        return self._operation_response(task, "pending", 0)

    async def _answer(
        self,
        params: ImageParams,
        size: tuple[int, int],
        references: int,
        block: _Block | None,
        *,
        want_text: bool,
        want_image: bool,
    ) -> dict[str, Any]:
        prompt_tokens = text_tokens(params.prompt) + references * TOKENS_PER_REFERENCE
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
                for draft in range(self._fake.gemini_thought_drafts):
                    data = await render(*size, seed + draft + 1)
                    parts.append({"inlineData": _inline(data), "thought": True})
                asset = await store_asset(self._fake.assets, self._next_id, *size, seed)
                parts.append({"inlineData": _inline(asset.data)})
                if self._fake.gemini_file_data:
                    file_uri = self._fake.asset_url(asset.id)
                    parts.append({"fileData": {"mimeType": "image/png", "fileUri": file_uri}})
                images = 1
            answer["candidates"] = [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ]
        output_tokens = images * TOKENS_PER_IMAGE
        answer["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        }
        answer["modelVersion"] = bare_model
        answer["responseId"] = secrets.token_urlsafe(16)
        return answer

    # ------------------------------------------------------------------ operations

    async def operation(self, request: web.Request) -> web.Response:
        """``GET /v1beta/operations/{id}``: a queued answer's operation, counting one poll."""
        op_id = request.match_info["tail"].removeprefix("operations/")
        task = self._tasks.find(op_id, "operation")
        if task is None:
            raise ApiError(404, f"Operation 'operations/{op_id}' not found.")
        return self._operation_response(task, *self._tasks.advance(task))

    def _operation_response(self, task: Task, state: str, progress: int) -> web.Response:
        body = _operation_body(task, state, progress)
        if self._fake.gemini_snake_case:
            body = _snake_keys(body)
        response = web.json_response(body)
        self._tasks.mark_retry_after(response, state)
        return response


def _operation_body(task: Task, state: str, progress: int) -> dict[str, Any]:
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
