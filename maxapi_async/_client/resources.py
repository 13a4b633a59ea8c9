"""The client's resources: ``client.images``, ``client.models`` and ``client.tasks``.

Each call checks its arguments (pure protocol functions, before any I/O), reads local
inputs without blocking the loop, builds a request spec and hands it to the core with an
``Idempotency-Key`` and the call's deadline; the core sends it and :mod:`maxapi_async._client.results` reads
the answer. The public methods are thin: :func:`generate_images`, :func:`edit_images` and
:func:`generate_content` do the work, and batches call them with their own keys.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, Union, overload

from .._protocol import calls, gemini_request, openai_request
from .._protocol.calls import ReferenceImage, RequestSpec
from .._protocol.errors import APITimeoutError, InvalidRequestError
from .._protocol.gemini import GenerateContentResponse
from .._protocol.models import ImageAsset, ImageResult
from .._protocol.options import ContentOptions, ContentOptionsDict, ImageOptions, ImageOptionsDict
from .._protocol.tasks import TaskKind, TaskRef, default_poll_path
from .._transport.files import INLINE_IO_LIMIT, FileTooLarge, NotARegularFile, in_thread, read_file
from .._transport.timeouts import Timeouts
from .core import Core, check_call_timeout, new_idempotency_key
from .handles import TaskHandle
from .limits import Deadline
from .results import image_call, image_handle, native_call, operation_handle

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Images",
    "Models",
    "ReferenceInput",
    "Tasks",
    "edit_images",
    "generate_content",
    "generate_images",
    "load_references",
    "read_image_input",
]

R = TypeVar("R")

#: What ``images.edit`` accepts as one reference image.
ReferenceInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], ImageAsset]


async def read_image_input(image: object, argument: str, *, total: int = 0) -> tuple[bytes, str | None]:
    """Bytes (and a file name when known) of a path, bytes, binary file or ImageAsset.

    Each is held to :func:`~maxapi_async._protocol.calls.check_reference_size` (``total``: the
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
        calls.check_reference_size(argument, size, total=total + size)
        return bytes(image), None
    elif isinstance(image, (str, os.PathLike)):
        path = Path(os.fspath(image))
        name = str(path)
        try:
            data = await read_file(path, limit=calls.MAX_REFERENCE_IMAGE_BYTES)
        except FileTooLarge as exc:
            calls.check_reference_size(argument, exc.size, total=total + exc.size, name=name)
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
            content = await in_thread(read, calls.MAX_REFERENCE_IMAGE_BYTES + 1, abandon_on_cancel=True)
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
    calls.check_reference_size(argument, len(data), total=total + len(data), name=name)
    return data, name


async def load_references(images: Sequence[object]) -> list[ReferenceImage]:
    """Each reference read and wrapped, the request's total held to the cap as they come."""
    references: list[ReferenceImage] = []
    total = 0
    for index, image in enumerate(images):
        data, filename = await read_image_input(image, f"images[{index}]", total=total)
        total += len(data)
        references.append(openai_request.reference_image(data, index=index, filename=filename))
    return references


async def generate_images(
    core: Core,
    prompt: str,
    options: ImageOptions,
    *,
    wait: bool,
    timeout: float | Timeouts | None,
    idempotency_key: str | None = None,
) -> ImageResult | TaskHandle[ImageResult]:
    """``images.generate``: see :meth:`Images.generate`; ``idempotency_key``: a new one if ``None``."""
    deadline = core.deadline(check_call_timeout(timeout))
    queued = not wait or core.wait_by_polling
    spec = openai_request.build_generate_request(prompt, options.with_route(core.route_mode), queued=queued)
    key = idempotency_key or new_idempotency_key()
    if not queued:
        return await image_call(core, spec, idempotency_key=key, deadline=deadline)
    return await _queued_images(core, spec, "generation", key, deadline, wait)


async def edit_images(
    core: Core,
    prompt: str,
    images: Sequence[ReferenceInput],
    options: ImageOptions,
    *,
    wait: bool,
    timeout: float | Timeouts | None,
    idempotency_key: str | None = None,
) -> ImageResult | TaskHandle[ImageResult]:
    """``images.edit``: see :meth:`Images.edit`; ``idempotency_key``: a new one if ``None``."""
    deadline = core.deadline(check_call_timeout(timeout))
    options = options.with_route(core.route_mode)
    openai_request.check_edit_arguments(prompt, images, options)
    references = await deadline.run(load_references(images), "reading the call's images")
    queued = not wait or core.wait_by_polling
    spec = openai_request.build_edit_request(prompt, references, options, queued=queued)
    key = idempotency_key or new_idempotency_key()
    if not queued:
        return await image_call(core, spec, idempotency_key=key, deadline=deadline)
    return await _queued_images(core, spec, "edit", key, deadline, wait)


async def _queued_images(
    core: Core, spec: RequestSpec, kind: TaskKind, key: str, deadline: Deadline, wait: bool
) -> ImageResult | TaskHandle[ImageResult]:
    snapshot, ref, request_id = await core.submit(spec, kind, idempotency_key=key, deadline=deadline)
    handle = image_handle(core, snapshot, ref, request_id)
    if not wait:
        return handle
    result: ImageResult = await _wait_within(handle, deadline)
    return result


async def _wait_within(handle: TaskHandle[R], deadline: Deadline) -> R:
    """``wait=True`` on a queued call: the call's deadline covers submission and polling."""
    if deadline.seconds is None:
        return await handle.wait()  # the client's task_timeout
    if deadline.seconds == math.inf:
        return await handle.wait(timeout=math.inf)
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        raise APITimeoutError(f"{handle.kind} task {handle.id}: the call's deadline passed")
    return await handle.wait(timeout=remaining)


async def generate_content(
    core: Core,
    contents: object,
    options: ContentOptions,
    *,
    wait: bool,
    timeout: float | Timeouts | None,
    idempotency_key: str | None = None,
) -> GenerateContentResponse | TaskHandle[GenerateContentResponse]:
    """``models.generate_content``: see :meth:`Models.generate_content`."""
    deadline = core.deadline(check_call_timeout(timeout))
    options = options.with_route(core.route_mode)
    queued = not wait or core.wait_by_polling
    if type(contents) is str:  # what normalize_contents makes of it, without the walk
        wire = [{"role": "user", "parts": [{"text": calls.check_text("contents", contents)}]}]
        spec = gemini_request.build_generate_content_request(wire, options, queued=queued)
    else:
        wire = await deadline.run(_wire_contents(contents, options), "reading the call's images")
        spec = gemini_request.build_generate_content_request(wire, options, queued=queued)
        if gemini_request.inline_data_size(wire) > INLINE_IO_LIMIT:
            # Megabytes of base64 to encode as JSON: 20 ms for four 1.5 MB images.
            spec = await in_thread(calls.with_body, spec)
    modalities = gemini_request.requested_modalities(spec)
    key = idempotency_key or new_idempotency_key()
    if not queued:
        return await native_call(core, spec, modalities, idempotency_key=key, deadline=deadline)
    snapshot, ref, request_id = await core.submit(spec, "operation", idempotency_key=key, deadline=deadline)
    handle = operation_handle(core, snapshot, ref, request_id, modalities)
    if not wait:
        return handle
    return await _wait_within(handle, deadline)


async def _wire_contents(contents: object, options: ContentOptions) -> list[dict[str, Any]]:
    """``contents`` as Google's JSON, its files read and its images encoded (in a thread when big)."""
    loads, inline_bytes = gemini_request.scan_contents(contents)
    if loads:
        # Check every other argument before reading files or downloading assets.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gemini_request.build_generate_content_request([{"parts": [{"text": "-"}]}], options)
    loaded: list[bytes] = []
    total = inline_bytes  # held to the request's cap as files come in (normalize_contents: exactly)
    for argument, item in loads:
        data = (await read_image_input(item, argument, total=total))[0]
        total += len(data)
        loaded.append(data)
    if sum(len(b) for b in loaded) + inline_bytes > INLINE_IO_LIMIT:
        return await in_thread(lambda: gemini_request.normalize_contents(contents, loaded=loaded))
    return gemini_request.normalize_contents(contents, loaded=loaded)


class Images:
    """The OpenAI-compatible image endpoints: ``client.images``.

    The options (``model``, ``aspect_ratio``, ``resolution``, ``n``, ``route_mode``,
    ``asset_delivery``, ``response_format``) are those of
    :class:`~maxapi_async._protocol.options.ImageOptions`, which documents each.
    """

    def __init__(self, core: Core) -> None:
        self._core = core

    @overload
    async def generate(self, prompt: str, *, wait: Literal[True] = ...,
        timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> ImageResult: ...  # fmt: skip
    @overload
    async def generate(self, prompt: str, *, wait: Literal[False], timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> TaskHandle[ImageResult]: ...  # fmt: skip
    async def generate(
        self, prompt: str, *, wait: bool = True, timeout: float | Timeouts | None = None,
        **options: Unpack[ImageOptionsDict],
    ) -> ImageResult | TaskHandle[ImageResult]:  # fmt: skip
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
        return await generate_images(self._core, prompt, ImageOptions(**options), wait=wait, timeout=timeout)

    @overload
    async def edit(self, prompt: str, images: Sequence[ReferenceInput], *,
        wait: Literal[True] = ..., timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> ImageResult: ...  # fmt: skip
    @overload
    async def edit(self, prompt: str, images: Sequence[ReferenceInput], *,
        wait: Literal[False], timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> TaskHandle[ImageResult]: ...  # fmt: skip
    async def edit(
        self, prompt: str, images: Sequence[ReferenceInput], *, wait: bool = True,
        timeout: float | Timeouts | None = None, **options: Unpack[ImageOptionsDict],
    ) -> ImageResult | TaskHandle[ImageResult]:  # fmt: skip
        """Edit or compose from one or more reference images (``POST /v1/images/edits``).

        Each reference is a path, bytes, a binary file object or an
        :class:`ImageAsset` from an earlier result; it is sent as an ``image[]``
        part with its file name and a content type sniffed from its bytes
        (PNG, JPEG, WebP or GIF; anything else is refused before sending).
        Other arguments, ``wait`` included, as in :meth:`generate`.
        """
        options_ = ImageOptions(**options)
        return await edit_images(self._core, prompt, images, options_, wait=wait, timeout=timeout)


class Models:
    """The Gemini-native endpoint: ``client.models.generate_content(...)``.

    The options (``model``, ``aspect_ratio``, ``image_size``, ``response_modalities``,
    ``route_mode``, ``system_instruction``, ``generation_config``, ``safety_settings``)
    are those of :class:`~maxapi_async._protocol.options.ContentOptions`, which documents each.
    """

    def __init__(self, core: Core) -> None:
        self._core = core

    @overload
    async def generate_content(self, *, contents: object,
        wait: Literal[True] = ..., timeout: float | Timeouts | None = ...,
        **options: Unpack[ContentOptionsDict]) -> GenerateContentResponse: ...  # fmt: skip
    @overload
    async def generate_content(self, *, contents: object,
        wait: Literal[False], timeout: float | Timeouts | None = ...,
        **options: Unpack[ContentOptionsDict]) -> TaskHandle[GenerateContentResponse]: ...  # fmt: skip
    async def generate_content(
        self, *, contents: object, wait: bool = True, timeout: float | Timeouts | None = None,
        **options: Unpack[ContentOptionsDict],
    ) -> GenerateContentResponse | TaskHandle[GenerateContentResponse]:  # fmt: skip
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
        options_ = ContentOptions(**options)
        return await generate_content(self._core, contents, options_, wait=wait, timeout=timeout)


class Tasks:
    """Rebuild task handles anywhere: ``client.tasks``."""

    def __init__(self, core: Core) -> None:
        self._core = core

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
            return operation_handle(self._core, None, ref, None)
        return image_handle(self._core, None, ref, None)
