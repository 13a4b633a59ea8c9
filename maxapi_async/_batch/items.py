"""What a batch is made of: one item per call, each the options of its call plus a ``key``;
the batch's own options, and the progress counts it reports.

:class:`GenerateRequest`, :class:`EditRequest` and :class:`ContentRequest` subclass the
options classes (:mod:`.._protocol.options`): an item is its call's options, its prompt or contents,
and the caller's ``key``. Each submits itself through the resources' functions with the
``Idempotency-Key`` the batch gives it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import attrs

from .._client.core import Core
from .._client.handles import TaskHandle
from .._client.resources import edit_images, generate_content, generate_images
from .._protocol.errors import InvalidRequestError
from .._protocol.models import ImageAsset
from .._protocol.options import ContentOptions, ImageOptions, options_of
from .._protocol.pricing import PriceTable

__all__ = [
    "BatchItem",
    "BatchOptionsDict",
    "BatchProgress",
    "ContentRequest",
    "EditRequest",
    "GenerateRequest",
    "check_batch_arguments",
]


def _describe_image(image: object) -> object:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, ImageAsset):
        return {"url": image.url} if image.url else f"<inline {len(image.data or b'')} bytes>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} bytes>"
    return f"<{type(image).__name__}>"


@attrs.frozen(kw_only=True)
class GenerateRequest(ImageOptions):
    """One ``images.generate`` call in a batch: its prompt, its ``key`` and the call's options
    (those of :class:`~maxapi_async._protocol.options.ImageOptions`; they mean what they mean there)."""

    prompt: str = attrs.field(kw_only=False)
    key: str

    async def _submit(self, core: Core, idempotency_key: str) -> TaskHandle[Any]:
        options = options_of(ImageOptions, self)
        return _handle(
            await generate_images(
                core, self.prompt, options, wait=False, timeout=None, idempotency_key=idempotency_key
            )
        )

    def _describe(self) -> dict[str, Any]:
        return {"type": "generate", **attrs.asdict(self)}


@attrs.frozen(kw_only=True)
class EditRequest(ImageOptions):
    """One ``images.edit`` call in a batch (references: paths, bytes, files or ImageAssets)."""

    prompt: str = attrs.field(kw_only=False)
    images: Sequence[Any] = attrs.field(kw_only=False)
    key: str

    async def _submit(self, core: Core, idempotency_key: str) -> TaskHandle[Any]:
        options = options_of(ImageOptions, self)
        return _handle(
            await edit_images(
                core,
                self.prompt,
                self.images,
                options,
                wait=False,
                timeout=None,
                idempotency_key=idempotency_key,
            )
        )

    def _describe(self) -> dict[str, Any]:
        described = attrs.asdict(self, recurse=False)
        described["images"] = [_describe_image(i) for i in self.images]
        return {"type": "edit", **described}


@attrs.frozen(kw_only=True)
class ContentRequest(ContentOptions):
    """One ``models.generate_content`` call in a batch: its contents, its ``key`` and the
    call's options (those of :class:`~maxapi_async._protocol.options.ContentOptions`)."""

    contents: Any = attrs.field(kw_only=False)
    key: str

    async def _submit(self, core: Core, idempotency_key: str) -> TaskHandle[Any]:
        options = options_of(ContentOptions, self)
        return _handle(
            await generate_content(
                core, self.contents, options, wait=False, timeout=None, idempotency_key=idempotency_key
            )
        )

    def _describe(self) -> dict[str, Any]:
        described = attrs.asdict(self, recurse=False)
        described["contents"] = self.contents if isinstance(self.contents, str) else "<contents>"
        return {"type": "generate_content", **described}


def _handle(submitted: object) -> TaskHandle[Any]:
    assert isinstance(submitted, TaskHandle)  # wait=False
    return submitted


BatchItem = GenerateRequest | EditRequest | ContentRequest


@attrs.frozen
class BatchProgress:
    """Counts passed to the ``progress`` callback after every change."""

    total: int
    submitted: int
    running: int
    done: int
    failed: int
    skipped: int
    credits: float


class BatchOptionsDict(TypedDict, total=False):
    """The options of a :class:`~maxapi_async.Batch` (``MaxAPI.batch`` passes them on):

    * ``concurrency`` (16): submissions in flight at once (all paused while the
      service's ``Retry-After`` lasts, up to ``task_timeout`` in all; a longer
      one stops submitting, and each item not submitted fails saying when to rerun);
    * ``max_pending`` (1000): tasks submitted and not yet finished at once
      (each polls within the client's ``max_polls_per_second``);
    * ``budget``: estimated credits never to pass: an item whose estimate
      would cross it is not submitted, and the batch stops there (every
      item's model needs a price, see ``prices``: else ``InvalidRequestError``);
    * ``journal``: a ``.jsonl`` file or a folder, for crash-safe resumption;
      one batch at a time writes it (else ``JournalLockedError``);
    * ``fail_fast``: the first failure stops the batch (default: never);
    * ``progress``: a callback taking :class:`BatchProgress`, or ``True``
      for a tqdm bar on a terminal (``pip install 'maxapi-async[progress]'``);
    * ``download_to``: save every image into this folder, named after the
      item's key, skipping files already there;
    * ``shard``: ``(index, count)``, to split one batch across processes;
    * ``prices``: the :class:`PriceTable` of the estimates (default: the client's).
    """

    concurrency: int
    max_pending: int
    budget: float | None
    journal: str | os.PathLike[str] | None
    fail_fast: bool
    progress: Callable[[BatchProgress], Any] | bool | None
    download_to: str | os.PathLike[str] | None
    shard: tuple[int, int] | None
    prices: PriceTable | None


def check_batch_arguments(
    items: list[BatchItem],
    concurrency: int,
    max_pending: int,
    budget: float | None,
    shard: tuple[int, int] | None,
) -> None:
    kinds = (GenerateRequest, EditRequest, ContentRequest)
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, kinds):
            raise InvalidRequestError(
                f"items[{i}]", "must be a GenerateRequest, EditRequest or ContentRequest"
            )
        if not isinstance(item.key, str) or not item.key:
            raise InvalidRequestError(f"items[{i}].key", "must be a non-empty string")
        if item.key in seen:
            raise InvalidRequestError(f"items[{i}].key", f"duplicate key {item.key!r}: keys must be unique")
        seen.add(item.key)
    for name, value in (("concurrency", concurrency), ("max_pending", max_pending)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(name, f"must be a positive integer, got {value!r}")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0
    ):
        raise InvalidRequestError("budget", f"must be a non-negative number of credits, got {budget!r}")
    if shard is not None and (
        not isinstance(shard, tuple)
        or len(shard) != 2
        or not all(isinstance(v, int) for v in shard)
        or not 0 <= shard[0] < shard[1]
    ):
        raise InvalidRequestError("shard", f"must be (index, count) with 0 <= index < count, got {shard!r}")
