"""From a 2xx answer or a finished task to what the caller gets: results, charged.

A synchronous call is sent by :meth:`Core.call <maxapi_async._core.Core.call>` with a
reader (JSON, structure, base64 and assets in one go, run in a worker thread when the body
is big) and a finisher (the result, charged to the client's ledger). A queued task's
handle gets a finisher that does the same with the task's last snapshot.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from . import _catalog, _gemini, _protocol
from ._core import Core, Deadline
from ._errors import ResponseError
from ._gemini import GenerateContentResponse
from ._handles import TaskHandle
from ._models import ImageAsset, ImageResult, ImagesResponse, _AssetFetcher
from ._protocol import ImageCall, RequestSpec
from ._tasks import TaskRef, TaskSnapshot

__all__ = ["image_call", "image_handle", "native_call", "operation_handle"]

_NOTHING_DECODED: Mapping[int, bytes] = MappingProxyType({})


async def image_call(
    core: Core, spec: RequestSpec, *, idempotency_key: str, deadline: Deadline
) -> ImageResult:
    """``images.generate`` or ``images.edit``, waited for."""
    read = functools.partial(_read_image_answer, spec.call, core)

    def finish(
        answer: tuple[dict[str, Any], list[ImageAsset]], call: ImageCall, rid: str | None
    ) -> ImageResult:
        obj, assets = answer
        return _image_result(core, obj, assets, call, rid, obj.get("created"), obj.get("usage"))

    return await core.call(spec, idempotency_key=idempotency_key, deadline=deadline, read=read, finish=finish)


def _image_result(
    core: Core,
    obj: dict[str, Any],
    images: list[ImageAsset],
    call: ImageCall,
    request_id: str | None,
    created: int | None,
    usage: dict[str, Any] | None,
) -> ImageResult:
    """The result of a call whose answer ``obj`` (already checked) gave ``images``, charged."""
    model = obj.get("model")
    return ImageResult(
        images,
        model if type(model) is str else call.model,
        created,
        usage,
        request_id,
        obj,
        core.charge(call, len(images)),
    )


async def native_call(
    core: Core, spec: RequestSpec, modalities: list[str] | None, *, idempotency_key: str, deadline: Deadline
) -> GenerateContentResponse:
    """``models.generate_content``, waited for."""
    read = functools.partial(_read_native_answer, modalities, spec.call, core)
    finish = functools.partial(_native_response, core)
    return await core.call(spec, idempotency_key=idempotency_key, deadline=deadline, read=read, finish=finish)


async def _native_result(
    core: Core, obj: Any, call: ImageCall, modalities: list[str] | None, request_id: str | None
) -> GenerateContentResponse:
    """A queued operation's ``response`` object, already parsed JSON, read like an answer."""
    size = _gemini_payload_size(obj) if isinstance(obj, dict) else 0
    answer = await core.offload(size, _parse_native_answer, obj, request_id, modalities, call, core)
    return _native_response(core, answer, call, request_id)


def _native_response(
    core: Core,
    answer: tuple[GenerateContentResponse, list[ImageAsset]],
    call: ImageCall,
    request_id: str | None,
) -> GenerateContentResponse:
    response, assets = answer
    # ``response`` was structured for this call alone and nobody else holds it yet: fill
    # in what the client adds (attrs.evolve would copy ten fields to change three).
    fill = object.__setattr__
    fill(response, "images", assets)
    fill(response, "request_id", request_id)
    fill(response, "cost", core.charge(call, max(1, len(assets))))
    return response


def image_handle(
    core: Core, snapshot: TaskSnapshot | None, ref: TaskRef, request_id: str | None
) -> TaskHandle[ImageResult]:
    """The handle of a queued ``images.generate`` or ``images.edit`` task."""
    call = ref.image_call(_catalog.DEFAULT_MODEL)

    def read(last: TaskSnapshot, last_request_id: str | None) -> list[ImageAsset]:
        response = ImagesResponse(data=last.images, created=last.created or ref.created)
        decoded = _decode_items(response, last_request_id)
        return _image_assets(response, decoded, call, core, last_request_id)

    async def finish(last: TaskSnapshot, last_request_id: str | None) -> ImageResult:
        try:
            size = sum(len(i.b64_json or "") for i in last.images)
            assets = await core.offload(size, read, last, last_request_id)
        except ResponseError as exc:
            _unreadable_task_result(exc, ref)
            raise
        created = last.created or ref.created
        result = _image_result(core, last.raw, assets, call, last_request_id, created, None)
        return attrs.evolve(result, model=last.model or call.model)

    return TaskHandle(core, ref, finish, first=snapshot, request_id=request_id)


def operation_handle(
    core: Core,
    snapshot: TaskSnapshot | None,
    ref: TaskRef,
    request_id: str | None,
    modalities: list[str] | None = None,
) -> TaskHandle[GenerateContentResponse]:
    """The handle of a queued ``models.generate_content`` operation."""
    call = ref.image_call(_catalog.DEFAULT_MODEL)

    async def finish(last: TaskSnapshot, last_request_id: str | None) -> GenerateContentResponse:
        try:
            return await _native_result(core, last.response, call, modalities, last_request_id)
        except ResponseError as exc:
            _unreadable_task_result(exc, ref)
            raise

    return TaskHandle(core, ref, finish, first=snapshot, request_id=request_id)


# -- reading answers (pure) --------------------------------------------------------------


def _read_image_answer(
    call: ImageCall, fetcher: _AssetFetcher, body: bytes, status: int, request_id: str | None
) -> tuple[dict[str, Any], list[ImageAsset]]:
    """JSON, structure, base64 and assets in one go: run inline or in a thread as a whole.

    The usual answer (images by URL) goes straight to its assets.
    """
    obj, images = _protocol.decode_answer(body, status=status, request_id=request_id, what="images")
    assets = _protocol.url_answer_assets(obj, call, fetcher)
    if assets is None:
        response = _protocol.parse_images_response(obj, request_id=request_id)
        assets = _image_assets(
            response, _decode_items(response, request_id, images), call, fetcher, request_id
        )
    return obj, assets


def _image_assets(
    response: ImagesResponse,
    decoded: list[bytes | None],
    call: ImageCall,
    fetcher: _AssetFetcher,
    request_id: str | None,
) -> list[ImageAsset]:
    return [
        _protocol.make_asset(
            item, data, call=call, created=response.created, fetcher=fetcher, index=i, request_id=request_id
        )
        for i, (item, data) in enumerate(zip(response.data, decoded, strict=True))
    ]


def _decode_items(
    response: ImagesResponse, request_id: str | None, decoded: Mapping[int, bytes] = _NOTHING_DECODED
) -> list[bytes | None]:
    """Each item's image bytes (``None`` for an item by URL); ``decoded``: see ``decode_answer``."""
    return [
        (decoded.get(id(item.b64_json)) or _protocol.decode_b64(item.b64_json, request_id=request_id))
        if item.b64_json
        else None
        for item in response.data
    ]


def _parse_native_answer(
    obj: Any,
    request_id: str | None,
    modalities: list[str] | None,
    call: ImageCall,
    fetcher: _AssetFetcher,
    decoded: Mapping[int, bytes] | None = None,
) -> tuple[GenerateContentResponse, list[ImageAsset]]:
    """The answer, checked for a block, and its final images as assets.

    The usual answer (images by URL) goes straight to its assets; any other is
    structured whole, its image parts walked once.
    """
    received_at = _dt.datetime.now(_dt.timezone.utc)
    read = _gemini.read_url_answer(
        obj,
        request_id=request_id,
        response_modalities=modalities,
        call=call,
        fetcher=fetcher,
        received_at=received_at,
    )
    if read is not None:
        return read
    response, parts = _gemini.parse_with_image_parts(obj, request_id=request_id)
    _gemini.check_blocked(response, response_modalities=modalities, request_id=request_id, parts=parts)
    images = _gemini.decode_inline_images(response, request_id=request_id, decoded=decoded, parts=parts)
    assets = _gemini.make_native_assets(
        response,
        images,
        call=call,
        fetcher=fetcher,
        received_at=received_at,
        parts=parts,
        request_id=request_id,
    )
    return response, assets


def _read_native_answer(
    modalities: list[str] | None,
    call: ImageCall,
    fetcher: _AssetFetcher,
    body: bytes,
    status: int,
    request_id: str | None,
) -> tuple[GenerateContentResponse, list[ImageAsset]]:
    """JSON, structure, base64 and assets of a ``generateContent`` answer in one go (one thread hop)."""
    obj, images = _protocol.decode_answer(body, status=status, request_id=request_id, what="generateContent")
    return _parse_native_answer(obj, request_id, modalities, call, fetcher, images)


def _gemini_payload_size(obj: dict[str, Any]) -> int:
    # A cheap upper bound of the inline image data, without walking every part.
    total = 0
    for candidate in obj.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            blob = part.get("inlineData") or part.get("inline_data") if isinstance(part, dict) else None
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                total += len(blob["data"])
    return total


def _unreadable_task_result(exc: ResponseError, ref: TaskRef) -> None:
    """A task that succeeded but whose images cannot be read: done, maybe charged.

    ``exc`` (re-raised by the caller) gains the submission's ``idempotency_key`` and a
    message naming the task, so the paid task is never lost from sight.
    """
    key = ref.idempotency_key
    exc.idempotency_key = key
    exc.message = (
        f"{ref.kind} task {ref.id} succeeded but its result could not be read, so it may have "
        f"been charged; its Idempotency-Key is {key}. Cause: {exc.message}"
    )
    exc.args = (exc.message,)
