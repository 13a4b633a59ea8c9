"""What a batch is made of: one item per call, each the options of its call plus a ``key``;
the batch's own options; and what it reports: progress counts, each item's outcome, a summary.

:class:`GenerateRequest`, :class:`EditRequest` and :class:`ContentRequest` subclass the
options classes (:mod:`.._protocol.options`): an item is its call's options, its prompt or contents,
and the caller's ``key``. Each submits itself through the resources' functions with the
``Idempotency-Key`` the batch gives it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import attrs

from .._client.core import Core
from .._client.handles import TaskHandle
from .._client.resources import edit_images, generate_content, generate_images
from .._protocol.errors import InvalidRequestError
from .._protocol.gemini import GenerateContentResponse
from .._protocol.models import ImageAsset, ImageResult
from .._protocol.options import ContentOptions, ImageOptions, options_of
from .._protocol.pricing import PriceTable

if TYPE_CHECKING:
    from .redis_store import RedisStore

__all__ = [
    "BatchItem",
    "BatchOptionsDict",
    "BatchProgress",
    "BatchSummary",
    "ContentRequest",
    "EditRequest",
    "GenerateRequest",
    "Outcome",
    "Result",
    "check_batch_arguments",
]


def _described(item: Any, **replaced: Any) -> dict[str, Any]:
    """An item's fields for the journal: its extra headers by name only (they may hold secrets)."""
    described = attrs.asdict(item, recurse=False)
    if described.get("extra_headers"):
        described["extra_headers"] = dict.fromkeys(described["extra_headers"], "[not recorded]")
    described.update(replaced)
    return described


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
        return {"type": "generate", **_described(self)}


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
        return {"type": "edit", **_described(self, images=[_describe_image(i) for i in self.images])}


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
        contents = self.contents if isinstance(self.contents, str) else "<contents>"
        return {"type": "generate_content", **_described(self, contents=contents)}


def _handle(submitted: object) -> TaskHandle[Any]:
    assert isinstance(submitted, TaskHandle)  # wait=False
    return submitted


BatchItem = GenerateRequest | EditRequest | ContentRequest

#: What an item gives when it is done.
Result = ImageResult | GenerateContentResponse


@attrs.frozen
class Outcome:
    """How one item ended.

    ``status`` is ``"done"``, ``"failed"``, ``"skipped"`` (not submitted:
    ``reason`` says ``"budget"``, ``"fail_fast"`` or ``"cancelled"``),
    ``"cancelled"`` (stopped while running; a submitted task resumes from the
    journal) or ``"restored"`` (finished in an earlier run, or by another
    worker of a shared store: ``images`` come from the journal or the store,
    ``result`` is ``None``). An item another worker failed is ``"failed"``
    with ``error`` ``None`` and ``reason`` that worker's error.
    ``cost`` is the estimated credits charged: 0 for an item failed or not
    submitted, ``None`` for one whose model has no price (the client's
    ``prices=`` can give it one). ``error`` is
    the exception for a failed item (``None`` otherwise): an item whose wait
    passed the client's ``task_timeout`` has :class:`TaskTimeoutError` (its
    task runs on; a rerun with the journal waits for it again), and items
    never submitted because the service asked for too long a pause have its
    :class:`RateLimitError`; ``task_id`` the
    service's task id when one was assigned; ``files`` the saved images.
    """

    key: str
    status: str
    result: Result | None = None
    error: BaseException | None = None
    cost: float | None = 0.0
    images: list[ImageAsset] = attrs.field(factory=list)
    task_id: str | None = None
    files: list[Path] = attrs.field(factory=list)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True for an item that produced its images, in this run or an earlier one."""
        return self.status in ("done", "restored")


@attrs.frozen
class BatchSummary:
    """What a finished (or stopped) batch did and what it left.

    ``remaining`` lists the keys not finished: skipped by the budget or
    ``fail_fast``, and failed ones (a rerun with the same journal retries only
    what did not finish). ``credits`` are this run's estimated credits, added
    exactly; ``unpriced`` counts the items done in this run whose model has no
    price, whose credits are therefore not in ``credits``.
    """

    total: int
    done: int
    restored: int
    failed: int
    skipped: int
    credits: float
    remaining: list[str]
    stopped_by_budget: bool
    unpriced: int = 0


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
    * ``store``: a :class:`RedisStore` instead, holding the batch's state for
      every process that runs it (each item runs in one; the budget is theirs
      together);
    * ``fail_fast``: the first failure stops the batch (default: never);
    * ``progress``: a callback taking :class:`BatchProgress`, or ``True``
      for a status line on stderr when it is a terminal (counts, credits and a
      clock, redrawn four times a second; nothing off a terminal);
    * ``download_to``: save every image into this folder, named after the
      item's key, skipping files already there;
    * ``prices``: the :class:`PriceTable` of the estimates (default: the client's).
    """

    concurrency: int
    max_pending: int
    budget: float | None
    journal: str | os.PathLike[str] | None
    store: RedisStore | None
    fail_fast: bool
    progress: Callable[[BatchProgress], Any] | bool | None
    download_to: str | os.PathLike[str] | None
    prices: PriceTable | None


def check_batch_arguments(
    items: list[BatchItem],
    concurrency: int,
    max_pending: int,
    budget: float | None,
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
