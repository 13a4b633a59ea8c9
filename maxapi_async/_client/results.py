"""From a 2xx answer or a finished task to what the caller gets: results, charged.

A synchronous call is sent by :meth:`Core.call <maxapi_async._client.core.Core.call>` with a
reader (JSON, structure, base64 and assets in one go, run in a worker thread when the body
is big) and a finisher (the result, charged to the client's ledger). A queued task's
handle gets a finisher that does the same with the task's last snapshot.
"""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from typing import Any

import attrs

from .._protocol import catalog, gemini_answer, openai_answer
from .._protocol.calls import ImageCall, RequestSpec
from .._protocol.errors import ResponseError
from .._protocol.gemini import GenerateContentResponse
from .._protocol.models import ImageAsset, ImageResult
from .._protocol.tasks import TaskRef, TaskSnapshot, unreadable_task_result
from .core import Core
from .handles import TaskHandle
from .limits import Deadline

__all__ = ["image_call", "image_handle", "native_call", "operation_handle"]


def image_call(
    core: Core, spec: RequestSpec, *, idempotency_key: str, deadline: Deadline
) -> Coroutine[Any, Any, ImageResult]:
    """``images.generate`` or ``images.edit``, waited for: the core's call, to be awaited.

    (Not a coroutine of its own, here or in :func:`native_call`: that would be one more
    frame for every resume of the call, for nothing but passing it on.)
    """
    return core.call(
        spec,
        idempotency_key=idempotency_key,
        deadline=deadline,
        read=openai_answer.read_images_answer,
        finish=_finish_images,
    )


def _finish_images(
    core: Core, answer: tuple[dict[str, Any], list[ImageAsset]], call: ImageCall, request_id: str | None
) -> ImageResult:
    obj, assets = answer
    return _image_result(core, obj, assets, call, request_id, obj.get("created"), obj.get("usage"))


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


def native_call(
    core: Core, spec: RequestSpec, modalities: list[str] | None, *, idempotency_key: str, deadline: Deadline
) -> Coroutine[Any, Any, GenerateContentResponse]:
    """``models.generate_content``, waited for: the core's call, to be awaited."""
    read = functools.partial(gemini_answer.read_native_answer, response_modalities=modalities)
    return core.call(
        spec, idempotency_key=idempotency_key, deadline=deadline, read=read, finish=_native_response
    )


async def _native_result(
    core: Core, obj: Any, call: ImageCall, modalities: list[str] | None, request_id: str | None
) -> GenerateContentResponse:
    """A queued operation's ``response`` object, already parsed JSON, read like an answer."""
    response = gemini_answer.parse_generate_content(obj, request_id=request_id)
    read = functools.partial(
        gemini_answer.native_assets,
        response,
        response_modalities=modalities,
        call=call,
        fetcher=core,
        request_id=request_id,
    )
    assets = await core.offload(gemini_answer.inline_text_size(response), read)
    return _native_response(core, (response, assets), call, request_id)


def _native_response(
    core: Core,
    answer: tuple[GenerateContentResponse, list[ImageAsset]],
    call: ImageCall,
    request_id: str | None,
) -> GenerateContentResponse:
    response, assets = answer
    # ``response`` was structured for this call alone (its ``request_id`` with it) and nobody
    # else holds it yet: fill in what the client adds (attrs.evolve would copy ten fields).
    fill = object.__setattr__
    fill(response, "images", assets)
    fill(response, "cost", core.charge(call, max(1, len(assets))))
    return response


def image_handle(
    core: Core, snapshot: TaskSnapshot | None, ref: TaskRef, request_id: str | None
) -> TaskHandle[ImageResult]:
    """The handle of a queued ``images.generate`` or ``images.edit`` task."""
    call = ref.image_call(catalog.DEFAULT_MODEL)

    async def finish(last: TaskSnapshot, last_request_id: str | None) -> ImageResult:
        created = last.created or ref.created
        read = functools.partial(
            openai_answer.image_assets,
            last.images,
            call=call,
            created=created,
            fetcher=core,
            request_id=last_request_id,
        )
        try:
            assets = await core.offload(openai_answer.inline_text_size(last.images), read)
        except ResponseError as exc:
            unreadable_task_result(exc, ref)
            raise
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
    call = ref.image_call(catalog.DEFAULT_MODEL)

    async def finish(last: TaskSnapshot, last_request_id: str | None) -> GenerateContentResponse:
        try:
            return await _native_result(core, last.response, call, modalities, last_request_id)
        except ResponseError as exc:
            unreadable_task_result(exc, ref)
            raise

    return TaskHandle(core, ref, finish, first=snapshot, request_id=request_id)
