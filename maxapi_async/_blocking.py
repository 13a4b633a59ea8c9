"""``MaxAPI``: the blocking facade, for plain scripts and REPLs without an event loop.

It runs an :class:`~maxapi_async.AsyncMaxAPI` on an event loop in a background thread
(anyio's blocking portal) and waits for each call there. Method names, arguments and
results are the async client's: ``client.images.generate(...)`` returns the same
:class:`~maxapi_async.ImageResult`, ``wait=False`` a :class:`BlockingTaskHandle`
whose ``wait()`` and ``refresh()`` block. An asset's own ``read()``/``save()`` are
coroutines, so the blocking client reads and saves for it::

    with maxapi_async.MaxAPI() as client:
        result = client.images.generate("a glass cube", aspect_ratio="16:9")
        client.save(result.images[0], "cube.png")      # or: data = client.read(asset)

Inside a running event loop (async code, a Jupyter cell) blocking would stall that
loop: every call raises :class:`RunningLoopError` naming ``AsyncMaxAPI`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._batch.runner import Batch, BatchItem, BatchOptionsDict, Outcome
from ._client.client import AsyncMaxAPI, ClientOptionsDict, ClientOverridesDict
from ._client.handles import TaskHandle, TaskStatus
from ._client.resources import ReferenceInput
from ._protocol.errors import ClientClosedError, RunningLoopError
from ._protocol.gemini import GenerateContentResponse
from ._protocol.models import ImageAsset, ImageResult, _extension
from ._protocol.options import ContentOptionsDict, ImageOptionsDict
from ._protocol.tasks import TaskKind, TaskRef
from ._transport.timeouts import Timeouts

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["BlockingTaskHandle", "MaxAPI", "RunningLoopError"]

T = TypeVar("T")
R = TypeVar("R")


def _refuse_running_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RunningLoopError(
        f"{what} blocks, and this thread runs an event loop (async code or a Jupyter cell): "
        "use maxapi_async.AsyncMaxAPI with await here instead"
    )


class _Runner:
    """The portal thread and the async client living in it; shared by the facade's parts.

    A runner made with a ``parent`` (``MaxAPI.with_options``) runs its client in the
    parent's loop thread: closing it closes only its client; closing the parent ends both.
    """

    def __init__(self, make_client: Callable[[], AsyncMaxAPI], parent: _Runner | None = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        self._closed = False
        if parent is None:
            self._portal_cm = start_blocking_portal("asyncio", name="maxapi-async-portal")
            self._portal: BlockingPortal | None = self._portal_cm.__enter__()
        portal = self.portal
        if portal is None:
            raise ClientClosedError("this MaxAPI client is closed; create a new one")
        try:
            # Built in the loop's thread: everything it creates belongs to that loop.
            self.client: AsyncMaxAPI = portal.call(make_client)
        except BaseException:
            self._stop()
            raise

    @property
    def portal(self) -> BlockingPortal | None:
        """The loop thread's portal; ``None`` once this runner (or its parent) is closed."""
        if self._closed:
            return None
        return self._parent.portal if self._parent is not None else self._portal

    def run(self, func: Callable[[], Awaitable[T]], what: str) -> T:
        _refuse_running_loop(what)
        portal = self.portal
        if portal is None:
            raise ClientClosedError("this MaxAPI client is closed; create a new one")
        future: Future[T] = portal.start_task_soon(func)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C while waiting: stop the work in the loop too
            raise

    def call(self, func: Callable[[], T], what: str) -> T:
        _refuse_running_loop(what)
        portal = self.portal
        if portal is None:
            raise ClientClosedError("this MaxAPI client is closed; create a new one")
        # A one-tuple: the portal would await an awaitable result (a TaskHandle is one).
        return portal.call(lambda: (func(),))[0]

    def close(self) -> None:
        with self._lock:
            portal = self.portal
            if portal is None:
                return
            try:
                portal.call(self.client.aclose)
            finally:
                self._stop()

    def _stop(self) -> None:
        self._closed = True
        if self._parent is None:
            self._portal = None
            self._portal_cm.__exit__(None, None, None)


def _close_quietly(runner: _Runner) -> None:
    # The facade was dropped (or the interpreter exits) without close().
    with contextlib.suppress(Exception):
        runner.close()


class BlockingTaskHandle(Generic[R]):
    """A queued task seen from blocking code: :class:`TaskHandle`'s API, with blocking calls.

    ``wait(timeout=None)`` blocks until the result, at most the client's ``task_timeout``
    unless ``timeout`` says otherwise (a :class:`TaskTimeoutError` leaves the task
    running: call ``wait()`` again); ``refresh()`` polls once. ``id``, ``kind``,
    ``status``, ``done()`` and ``to_dict()`` read the last state seen, without I/O.
    ``handle`` is the underlying async :class:`TaskHandle`.
    """

    def __init__(self, owner: MaxAPI, handle: TaskHandle[R]) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while the handle is used
        self._runner = owner._runner
        self.handle = handle

    @property
    def id(self) -> str:
        """The task id the service assigned."""
        return self.handle.id

    @property
    def kind(self) -> TaskKind:
        """``"generation"``, ``"edit"`` or ``"operation"``."""
        return self.handle.kind

    @property
    def ref(self) -> TaskRef:
        """The resumable description of this task."""
        return self.handle.ref

    @property
    def status(self) -> TaskStatus:
        """The last state seen (no request)."""
        return self.handle.status

    def done(self) -> bool:
        """Whether the task has ended, as last seen."""
        return self.handle.done()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; ``client.tasks.from_dict`` rebuilds the handle anywhere."""
        return self.handle.to_dict()

    def refresh(self) -> TaskStatus:
        """Poll once now and return the new status."""
        return self._runner.run(self.handle.refresh, "TaskHandle.refresh()")

    def wait(self, timeout: float | None = None) -> R:
        """Block until the task's result (or its error); ``timeout`` bounds this wait
        (default: the client's ``task_timeout``)."""
        return self._runner.run(functools.partial(self.handle.wait, timeout), "TaskHandle.wait()")

    def __repr__(self) -> str:
        return "<Blocking" + repr(self.handle)[1:]


class BlockingImages:
    """``client.images`` of the blocking client: :class:`~maxapi_async.Images`, blocking."""

    def __init__(self, owner: MaxAPI) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while this is used
        self._runner = owner._runner

    @overload
    def generate(self, prompt: str, *, wait: Literal[True] = ..., timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> ImageResult: ...  # fmt: skip
    @overload
    def generate(self, prompt: str, *, wait: Literal[False], timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> BlockingTaskHandle[ImageResult]: ...  # fmt: skip
    def generate(
        self, prompt: str, *, wait: bool = True, timeout: float | Timeouts | None = None,
        **options: Unpack[ImageOptionsDict],
    ) -> ImageResult | BlockingTaskHandle[ImageResult]:  # fmt: skip
        """:meth:`Images.generate <maxapi_async.Images.generate>`, blocking."""
        api, what = self._runner.client.images, "images.generate()"
        if wait:
            return self._runner.run(lambda: api.generate(prompt, timeout=timeout, **options), what)
        handle = self._runner.run(lambda: api.generate(prompt, wait=False, timeout=timeout, **options), what)
        return BlockingTaskHandle(self._owner, handle)

    @overload
    def edit(self, prompt: str, images: Sequence[ReferenceInput], *,
        wait: Literal[True] = ..., timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> ImageResult: ...  # fmt: skip
    @overload
    def edit(self, prompt: str, images: Sequence[ReferenceInput], *,
        wait: Literal[False], timeout: float | Timeouts | None = ...,
        **options: Unpack[ImageOptionsDict]) -> BlockingTaskHandle[ImageResult]: ...  # fmt: skip
    def edit(
        self, prompt: str, images: Sequence[ReferenceInput], *, wait: bool = True,
        timeout: float | Timeouts | None = None, **options: Unpack[ImageOptionsDict],
    ) -> ImageResult | BlockingTaskHandle[ImageResult]:  # fmt: skip
        """:meth:`Images.edit <maxapi_async.Images.edit>`, blocking; references may be its assets."""
        api, what = self._runner.client.images, "images.edit()"
        if wait:
            return self._runner.run(lambda: api.edit(prompt, images, timeout=timeout, **options), what)
        handle = self._runner.run(
            lambda: api.edit(prompt, images, wait=False, timeout=timeout, **options), what
        )
        return BlockingTaskHandle(self._owner, handle)


class BlockingModels:
    """``client.models`` of the blocking client: ``generate_content``, blocking."""

    def __init__(self, owner: MaxAPI) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while this is used
        self._runner = owner._runner

    @overload
    def generate_content(self, *, contents: object,
        wait: Literal[True] = ..., timeout: float | Timeouts | None = ...,
        **options: Unpack[ContentOptionsDict]) -> GenerateContentResponse: ...  # fmt: skip
    @overload
    def generate_content(self, *, contents: object,
        wait: Literal[False], timeout: float | Timeouts | None = ...,
        **options: Unpack[ContentOptionsDict],
    ) -> BlockingTaskHandle[GenerateContentResponse]: ...  # fmt: skip
    def generate_content(
        self, *, contents: object, wait: bool = True, timeout: float | Timeouts | None = None,
        **options: Unpack[ContentOptionsDict],
    ) -> GenerateContentResponse | BlockingTaskHandle[GenerateContentResponse]:  # fmt: skip
        """:meth:`Models.generate_content <maxapi_async.Models.generate_content>`, blocking."""
        api, what = self._runner.client.models, "models.generate_content()"
        if wait:
            return self._runner.run(
                lambda: api.generate_content(contents=contents, timeout=timeout, **options), what
            )
        handle = self._runner.run(
            lambda: api.generate_content(contents=contents, wait=False, timeout=timeout, **options), what
        )
        return BlockingTaskHandle(self._owner, handle)


class BlockingTasks:
    """``client.tasks`` of the blocking client: handles on tasks by id or from ``to_dict()``."""

    def __init__(self, owner: MaxAPI) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while this is used
        self._runner = owner._runner

    def get(
        self,
        task_id: str,
        *,
        kind: TaskKind = "generation",
        model: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
    ) -> BlockingTaskHandle[Any]:
        """:meth:`Tasks.get <maxapi_async.Tasks.get>`: a handle on a task known by its id."""
        tasks = self._runner.client.tasks
        handle = self._runner.call(
            functools.partial(
                tasks.get, task_id, kind=kind, model=model, aspect_ratio=aspect_ratio, resolution=resolution
            ),
            "tasks.get()",
        )
        return BlockingTaskHandle(self._owner, handle)

    def from_dict(self, data: Mapping[str, Any]) -> BlockingTaskHandle[Any]:
        """:meth:`Tasks.from_dict <maxapi_async.Tasks.from_dict>`: rebuild a handle from ``to_dict()``."""
        handle = self._runner.call(functools.partial(self._runner.client.tasks.from_dict, data), "tasks")
        return BlockingTaskHandle(self._owner, handle)


class MaxAPI:
    """The blocking MaxAPI client: :class:`AsyncMaxAPI`'s arguments, methods and results, without ``await``.

    ``images.generate``/``images.edit``, ``models.generate_content`` and
    ``tasks.get``/``tasks.from_dict`` block and return the async client's objects
    (``wait=False`` returns a :class:`BlockingTaskHandle`); :meth:`batch` runs a batch
    to its end and returns its outcomes. Assets are read and saved
    through the client: ``client.read(asset)``, ``client.save(asset, path)`` and
    ``client.save_all(result, directory)``.

    Use ``with MaxAPI() as client:`` or call :meth:`close`. A client that is never
    closed is closed when it is garbage-collected or at interpreter exit. Thread-safe:
    several threads may share one client (their calls run concurrently in its loop).
    Every call from a thread running an event loop raises :class:`RunningLoopError`.
    (An ``http_session`` would have to belong to the client's own loop: leave it out.)
    """

    def __init__(self, api_key: str | None = None, **options: Unpack[ClientOptionsDict]) -> None:
        _refuse_running_loop("MaxAPI")
        self._parent: MaxAPI | None = None
        self._start(_Runner(functools.partial(AsyncMaxAPI, api_key, **options)))

    def _start(self, runner: _Runner) -> None:
        self._runner = runner
        self._finalizer = weakref.finalize(self, _close_quietly, self._runner)
        self.images = BlockingImages(self)
        self.models = BlockingModels(self)
        self.tasks = BlockingTasks(self)

    def with_options(self, *, api_key: str | None = None, **options: Unpack[ClientOverridesDict]) -> MaxAPI:
        """:meth:`AsyncMaxAPI.with_options`, blocking: a client with some options changed that
        shares this one's loop thread and connection pool. Closing it leaves this one open;
        closing this one closes it too."""
        _refuse_running_loop("MaxAPI.with_options()")
        parent = self._runner
        if parent.portal is None:
            raise ClientClosedError("this MaxAPI client is closed; create a new one")
        derived = MaxAPI.__new__(MaxAPI)
        derived._parent = self  # keeps this client (and its loop thread) alive while that one is used
        derived._start(_Runner(lambda: parent.client.with_options(api_key=api_key, **options), parent))
        return derived

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._runner.portal is None

    def __repr__(self) -> str:
        return "<MaxAPI" + repr(self._runner.client).removeprefix("<AsyncMaxAPI")

    def __enter__(self) -> MaxAPI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the async client and stop the loop thread (idempotent)."""
        _refuse_running_loop("MaxAPI.close()")
        self._runner.close()
        self._finalizer.detach()

    def batch(self, items: Iterable[BatchItem], **options: Unpack[BatchOptionsDict]) -> list[Outcome]:
        """A :class:`~maxapi_async.Batch` of ``items`` run to its end: the outcomes, in the order
        of the items. The options are the batch's; a ``progress`` callback is called in the
        client's loop thread.
        """
        listed = list(items)

        async def run() -> list[Outcome]:
            return await Batch(self._runner.client, listed, **options).gather()

        return self._runner.run(run, "MaxAPI.batch()")

    def read(self, asset: ImageAsset) -> bytes:
        """``await asset.read()``, blocking: the inline bytes, or a download of its URL."""
        return self._runner.run(asset.read, "MaxAPI.read()")

    def save(self, asset: ImageAsset, path: str | os.PathLike[str]) -> Path:
        """``await asset.save(path)``, blocking: the file's path."""
        return self._runner.run(functools.partial(asset.save, path), "MaxAPI.save()")

    def save_all(
        self,
        result: ImageResult | GenerateContentResponse,
        directory: str | os.PathLike[str],
        *,
        stem: str = "image",
    ) -> list[Path]:
        """Save every image of ``result`` into ``directory`` as ``{stem}-{i}.{ext}``."""
        _refuse_running_loop("MaxAPI.save_all()")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)

        async def save() -> list[Path]:
            return [
                await asset.save(folder / f"{stem}-{i}{_extension(asset.mime_type)}")
                for i, asset in enumerate(result.images)
            ]

        return self._runner.run(save, "MaxAPI.save_all()")
