"""The client's resources: ``client.images``, ``client.models`` and ``client.tasks``.

Each method checks its arguments (pure protocol functions, before any I/O),
reads local inputs without blocking the loop, then hands a request spec to the
client, which sends it and reads the answer.
"""

from __future__ import annotations

import io
import math
import os
import time
import warnings
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, Union, overload

from . import _catalog, _gemini_request, _protocol
from ._client import check_call_timeout, new_idempotency_key
from ._errors import APITimeoutError, InvalidRequestError, MaxAPIError
from ._files import INLINE_IO_LIMIT, FileTooLarge, NotARegularFile, in_thread, read_file
from ._gemini import GenerateContentResponse
from ._handles import TaskHandle
from ._models import ImageAsset, ImageResult
from ._protocol import ReferenceImage
from ._tasks import TaskKind, TaskRef, default_poll_path

if TYPE_CHECKING:
    from ._client import AsyncMaxAPI

__all__ = ["Images", "Models", "ReferenceInput", "Tasks"]

R = TypeVar("R")
TASK_KINDS: tuple[TaskKind, ...] = ("generation", "edit", "operation")

#: What ``images.edit`` accepts as one reference image.
ReferenceInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], ImageAsset]


async def read_image_input(image: object, argument: str, *, total: int = 0) -> tuple[bytes, str | None]:
    """Bytes (and a file name when known) of a path, bytes, binary file or ImageAsset.

    Each is held to :func:`~maxapi_async._protocol.check_reference_size` (``total``: the
    bytes of the request's reference images read before this one), before it is read
    where its size can be known first (bytes, a file's size), and never read past one
    byte over the cap. A path must name a regular file (a FIFO, a device or a directory
    is refused unopened); files are read in a worker thread that a deadline abandons.
    """
    if isinstance(image, ImageAsset):
        data = await image.read()
        name = None
    elif isinstance(image, (bytes, bytearray, memoryview)):
        size = image.nbytes if isinstance(image, memoryview) else len(image)
        _protocol.check_reference_size(argument, size, total=total + size)
        return bytes(image), None
    elif isinstance(image, (str, os.PathLike)):
        path = Path(os.fspath(image))
        name = str(path)
        try:
            data = await read_file(path, limit=_protocol.MAX_REFERENCE_IMAGE_BYTES)
        except FileTooLarge as exc:
            _protocol.check_reference_size(argument, exc.size, total=total + exc.size, name=name)
            raise  # pragma: no cover - the size is above the cap, so the check raised
        except NotARegularFile as exc:
            raise InvalidRequestError(argument, f"{name!r} {exc}; pass an image file") from None
        except OSError as exc:
            raise InvalidRequestError(argument, f"cannot read {name!r}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # a NUL, or a lone surrogate the file system cannot name
            raise InvalidRequestError(argument, f"{name!r} is not a usable path: {exc}") from None
        name = path.name
    elif callable(getattr(image, "read", None)):
        if isinstance(image, io.TextIOBase):
            raise InvalidRequestError(argument, "is a text file; open it in binary mode ('rb')")
        read = image.read  # type: ignore[attr-defined]
        try:
            # One byte past the cap at most: a pipe or a huge file is never read whole.
            content = await in_thread(read, _protocol.MAX_REFERENCE_IMAGE_BYTES + 1, abandon_on_cancel=True)
        except OSError as exc:
            raise InvalidRequestError(argument, f"cannot read the file object: {exc}") from exc
        if not isinstance(content, (bytes, bytearray)):
            raise InvalidRequestError(argument, "the file object must be opened in binary mode ('rb')")
        data = bytes(content)
        given = getattr(image, "name", None)
        name = Path(given).name if isinstance(given, str) else None
    else:
        raise InvalidRequestError(
            argument,
            f"unsupported type {type(image).__name__}; pass a path, bytes, a binary file or an ImageAsset",
        )
    _protocol.check_reference_size(argument, len(data), total=total + len(data), name=name)
    return data, name


async def _read_within(
    client: AsyncMaxAPI, timeout: float | None, reading: Awaitable[R]
) -> tuple[R, float | None]:
    """Await ``reading`` (a call's local inputs: files, pipes, assets) within the call's
    deadline; returns its result and what is left of the deadline for the request.

    A read still running at the deadline is abandoned: :class:`APITimeoutError`, nothing sent.
    """
    total = timeout if timeout is not None else client.timeouts.total
    if total is None or total == math.inf:
        return await reading, total
    import anyio

    started = time.monotonic()
    try:
        with anyio.fail_after(total):
            result = await reading
    except TimeoutError as exc:
        if isinstance(exc, MaxAPIError):  # a download's own deadline: already said
            raise
        raise APITimeoutError(
            f"reading the call's images took longer than its timeout of {total:g} s; nothing was sent",
            sent=False,
        ) from None
    return result, total - (time.monotonic() - started)


async def _load_references(images: Sequence[object]) -> list[ReferenceImage]:
    """Each reference read and wrapped, the request's total held to the cap as they come."""
    references: list[ReferenceImage] = []
    total = 0
    for index, image in enumerate(images):
        data, filename = await read_image_input(image, f"images[{index}]", total=total)
        total += len(data)
        references.append(_protocol.reference_image(data, index=index, filename=filename))
    return references


class Images:
    """The OpenAI-compatible image endpoints: ``client.images``."""

    def __init__(self, client: AsyncMaxAPI) -> None:
        self._client = client

    @overload
    async def generate(
        self,
        prompt: str,
        *,
        model: str = ...,
        aspect_ratio: str | None = ...,
        resolution: str | None = ...,
        n: int = ...,
        route_mode: str | None = ...,
        asset_delivery: str | None = ...,
        response_format: str | None = ...,
        wait: Literal[True] = ...,
        timeout: float | None = ...,
    ) -> ImageResult: ...

    @overload
    async def generate(
        self,
        prompt: str,
        *,
        model: str = ...,
        aspect_ratio: str | None = ...,
        resolution: str | None = ...,
        n: int = ...,
        route_mode: str | None = ...,
        asset_delivery: str | None = ...,
        response_format: str | None = ...,
        wait: Literal[False],
        timeout: float | None = ...,
    ) -> TaskHandle[ImageResult]: ...

    async def generate(
        self,
        prompt: str,
        *,
        model: str = _catalog.DEFAULT_MODEL,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        n: int = 1,
        route_mode: str | None = None,
        asset_delivery: str | None = None,
        response_format: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> ImageResult | TaskHandle[ImageResult]:
        """Generate ``n`` images from ``prompt`` (``POST /v1/images/generations``).

        ``aspect_ratio`` fixes the output size (see :data:`maxapi_async.MODELS`);
        ``resolution`` is ignored by gemini-2.5-flash-image (a warning says so).
        ``route_mode`` overrides the client's default route; ``asset_delivery=
        "mirror"`` returns URLs on your alias domain; ``response_format=
        "b64_json"`` returns the bytes inline.

        ``wait=False`` queues the task (``"async": true``) and returns a
        :class:`TaskHandle` as soon as the service accepts it; ``await handle``
        gives the same :class:`ImageResult`. ``timeout`` bounds the whole call
        (for ``wait=False``, the submission only).
        """
        timeout = check_call_timeout(timeout)
        client = self._client
        queued = not wait or client.wait_by_polling
        spec = _protocol.build_generate_request(
            prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            n=n,
            route_mode=route_mode if route_mode is not None else client.route_mode,
            asset_delivery=asset_delivery,
            response_format=response_format,
            queued=queued,
            # Made here, so an unreadable answer can name it; a queued submission gets its own.
            idempotency_key=None if queued else new_idempotency_key(),
        )
        if not queued:
            return await client._image_call(spec, timeout)
        return await _submit_images(client, spec, "generation", wait, timeout)

    @overload
    async def edit(
        self,
        prompt: str,
        images: Sequence[ReferenceInput],
        *,
        model: str = ...,
        aspect_ratio: str | None = ...,
        resolution: str | None = ...,
        n: int = ...,
        route_mode: str | None = ...,
        asset_delivery: str | None = ...,
        response_format: str | None = ...,
        wait: Literal[True] = ...,
        timeout: float | None = ...,
    ) -> ImageResult: ...

    @overload
    async def edit(
        self,
        prompt: str,
        images: Sequence[ReferenceInput],
        *,
        model: str = ...,
        aspect_ratio: str | None = ...,
        resolution: str | None = ...,
        n: int = ...,
        route_mode: str | None = ...,
        asset_delivery: str | None = ...,
        response_format: str | None = ...,
        wait: Literal[False],
        timeout: float | None = ...,
    ) -> TaskHandle[ImageResult]: ...

    async def edit(
        self,
        prompt: str,
        images: Sequence[ReferenceInput],
        *,
        model: str = _catalog.DEFAULT_MODEL,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        n: int = 1,
        route_mode: str | None = None,
        asset_delivery: str | None = None,
        response_format: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> ImageResult | TaskHandle[ImageResult]:
        """Edit or compose from one or more reference images (``POST /v1/images/edits``).

        Each reference is a path, bytes, a binary file object or an
        :class:`ImageAsset` from an earlier result; it is sent as an ``image[]``
        part with its file name and a content type sniffed from its bytes
        (PNG, JPEG, WebP or GIF; anything else is refused before sending).
        Other arguments, ``wait`` included, as in :meth:`generate`.
        """
        timeout = check_call_timeout(timeout)
        client = self._client
        effective_route = route_mode if route_mode is not None else client.route_mode
        _protocol.check_edit_arguments(
            prompt,
            images,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            n=n,
            route_mode=effective_route,
            asset_delivery=asset_delivery,
            response_format=response_format,
        )
        references, timeout = await _read_within(client, timeout, _load_references(images))
        queued = not wait or client.wait_by_polling
        spec = _protocol.build_edit_request(
            prompt,
            references,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            n=n,
            route_mode=effective_route,
            asset_delivery=asset_delivery,
            response_format=response_format,
            queued=queued,
        )
        if not queued:
            return await client._image_call(spec, timeout)
        return await _submit_images(client, spec, "edit", wait, timeout)


async def _submit_images(
    client: AsyncMaxAPI, spec: _protocol.RequestSpec, kind: TaskKind, wait: bool, timeout: float | None
) -> ImageResult | TaskHandle[ImageResult]:
    started = time.monotonic()
    snapshot, ref, request_id = await client._submit(spec, kind, timeout)
    handle = client._image_handle(snapshot, ref, request_id)
    if not wait:
        return handle
    result: ImageResult = await _wait_within(handle, timeout, started, client)
    return result


async def _wait_within(
    handle: TaskHandle[Any], timeout: float | None, started: float, client: AsyncMaxAPI
) -> Any:
    """``wait=True`` on a queued call: the call's deadline covers submission and polling."""
    total = timeout if timeout is not None else client.timeouts.total
    if total is None:
        return await handle.wait()  # the client's task_timeout
    if total == math.inf:
        return await handle.wait(timeout=math.inf)
    remaining = total - (time.monotonic() - started)
    if remaining <= 0:
        raise APITimeoutError(f"{handle.kind} task {handle.id}: the call's deadline passed")
    return await handle.wait(timeout=remaining)


class Models:
    """The Gemini-native endpoint: ``client.models.generate_content(...)``."""

    def __init__(self, client: AsyncMaxAPI) -> None:
        self._client = client

    @overload
    async def generate_content(
        self,
        *,
        model: str = ...,
        contents: object,
        aspect_ratio: str | None = ...,
        image_size: str | None = ...,
        response_modalities: Sequence[str] | None = ...,
        route_mode: str | None = ...,
        system_instruction: str | Mapping[str, Any] | None = ...,
        generation_config: Mapping[str, Any] | None = ...,
        safety_settings: Sequence[Mapping[str, Any]] | None = ...,
        wait: Literal[True] = ...,
        timeout: float | None = ...,
    ) -> GenerateContentResponse: ...

    @overload
    async def generate_content(
        self,
        *,
        model: str = ...,
        contents: object,
        aspect_ratio: str | None = ...,
        image_size: str | None = ...,
        response_modalities: Sequence[str] | None = ...,
        route_mode: str | None = ...,
        system_instruction: str | Mapping[str, Any] | None = ...,
        generation_config: Mapping[str, Any] | None = ...,
        safety_settings: Sequence[Mapping[str, Any]] | None = ...,
        wait: Literal[False],
        timeout: float | None = ...,
    ) -> TaskHandle[GenerateContentResponse]: ...

    async def generate_content(
        self,
        *,
        model: str = _catalog.DEFAULT_MODEL,
        contents: object,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        response_modalities: Sequence[str] | None = None,
        route_mode: str | None = None,
        system_instruction: str | Mapping[str, Any] | None = None,
        generation_config: Mapping[str, Any] | None = None,
        safety_settings: Sequence[Mapping[str, Any]] | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> GenerateContentResponse | TaskHandle[GenerateContentResponse]:
        """Google's ``generateContent`` (``POST /v1beta/models/{model}:generateContent``).

        ``contents`` is a string, a list of parts (text, image bytes,
        ``pathlib.Path``s, binary files, :class:`ImageAsset`s, Google-style
        part dicts) or Google-style content dicts; a ``str`` is always text.
        The body goes out in Google's camelCase; ``route_mode`` travels as the
        ``X-MaxAPI-Route-Mode`` header. The answer is a
        :class:`GenerateContentResponse` whose ``.images`` are the final images
        (inline or on the CDN) and ``.text`` the model's text; an answer without
        the image asked for raises :class:`BlockedError` naming the reason.

        ``wait=False`` sends ``X-MaxAPI-Async: true`` and returns a handle on
        the operation, polled at ``/v1beta/operations/{id}``.
        """
        timeout = check_call_timeout(timeout)
        client = self._client
        route = route_mode if route_mode is not None else client.route_mode
        queued = not wait or client.wait_by_polling
        key = None if queued else new_idempotency_key()
        prompt = type(contents) is str
        spec = None
        plain = system_instruction is None and generation_config is None and safety_settings is None
        if type(contents) is str and plain:
            spec = _gemini_request.known_prompt_request(  # the usual call, its options checked before
                model,
                contents,
                aspect_ratio=aspect_ratio,
                image_size=image_size,
                response_modalities=response_modalities,
                route_mode=route,
                queued=queued,
                idempotency_key=key,
            )
        if spec is None:
            options: dict[str, Any] = {
                "aspect_ratio": aspect_ratio,
                "image_size": image_size,
                "response_modalities": response_modalities,
                "route_mode": route,
                "queued": queued,
                "system_instruction": system_instruction,
                "generation_config": generation_config,
                "safety_settings": safety_settings,
                "idempotency_key": key,
            }
            if prompt:  # what normalize_contents makes of it, without the walk
                wire = [{"role": "user", "parts": [{"text": contents}]}]
            else:
                wire, timeout = await _read_within(client, timeout, _wire_contents(model, contents, options))
            spec = _gemini_request.build_generate_content_request(model, wire, **options)
            if not prompt and _gemini_request.inline_data_size(wire) > INLINE_IO_LIMIT:
                # Megabytes of base64 to encode as JSON: 20 ms for four 1.5 MB images.
                spec = await in_thread(_protocol.with_body, spec)
        modalities = _gemini_request.requested_modalities(spec)
        if not queued:
            return await client._native_call(spec, modalities, timeout)
        started = time.monotonic()
        snapshot, ref, request_id = await client._submit(spec, "operation", timeout)
        handle = client._operation_handle(snapshot, ref, request_id, modalities)
        if not wait:
            return handle
        response: GenerateContentResponse = await _wait_within(handle, timeout, started, client)
        return response


async def _wire_contents(model: str, contents: object, options: dict[str, Any]) -> list[dict[str, Any]]:
    """``contents`` as Google's JSON, its files read and its images encoded (in a thread when big)."""
    loads, inline_bytes = _gemini_request.scan_contents(contents)
    if loads:
        # Check every other argument before reading files or downloading assets.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _gemini_request.build_generate_content_request(model, [{"parts": [{"text": "-"}]}], **options)
    loaded: list[bytes] = []
    total = inline_bytes  # held to the request's cap as files come in (normalize_contents: exactly)
    for argument, item in loads:
        data = (await read_image_input(item, argument, total=total))[0]
        total += len(data)
        loaded.append(data)
    if sum(len(b) for b in loaded) + inline_bytes > INLINE_IO_LIMIT:
        return await in_thread(lambda: _gemini_request.normalize_contents(contents, loaded=loaded))
    return _gemini_request.normalize_contents(contents, loaded=loaded)


class Tasks:
    """Rebuild task handles anywhere: ``client.tasks``."""

    def __init__(self, client: AsyncMaxAPI) -> None:
        self._client = client

    def from_dict(self, data: Mapping[str, Any]) -> TaskHandle[Any]:
        """A handle from :meth:`TaskHandle.to_dict` output (another process, another machine).

        The handle polls at once on its first ``await``, then follows the poll
        policy from the task's age.
        """
        ref = TaskRef.from_dict(dict(data) if isinstance(data, Mapping) else data)
        return self._handle(ref)

    def get(
        self,
        task_id: str,
        *,
        kind: TaskKind = "generation",
        model: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
    ) -> TaskHandle[Any]:
        """A handle on a task known only by its id (``kind`` says which endpoint polls it).

        ``model``, ``aspect_ratio`` and ``resolution`` are optional: they let
        the result report pixel sizes for URL assets.
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidRequestError("task_id", "must be a non-empty string")
        if kind not in ("generation", "edit", "operation"):
            raise InvalidRequestError(
                "kind", f"unknown value {kind!r}", allowed=("generation", "edit", "operation")
            )
        for argument, value in (("model", model), ("aspect_ratio", aspect_ratio), ("resolution", resolution)):
            if value is not None and not isinstance(value, str):
                raise InvalidRequestError(argument, f"must be a string or None, got {type(value).__name__}")
        default_poll_path(kind, task_id)  # an id that cannot be sent is refused now, not at the first poll
        ref = TaskRef(id=task_id, kind=kind, model=model, aspect_ratio=aspect_ratio, resolution=resolution)
        return self._handle(ref)

    def _handle(self, ref: TaskRef) -> TaskHandle[Any]:
        if ref.kind == "operation":
            return self._client._operation_handle(None, ref, None)
        return self._client._image_handle(None, ref, None)
