"""maxapi_async: the asyncio-first client for MaxAPI's Gemini 2.5 Flash Image API.

Everything public is re-exported here; every other module is private.

    import maxapi_async

    async with maxapi_async.AsyncMaxAPI() as client:          # key from MAXAPI_KEY
        result = await client.images.generate("a glass cube", aspect_ratio="16:9")
        await result.images[0].save("cube.png")

Batches (:mod:`._batch`), their Redis store (:mod:`._batch.redis_store`, which imports
redis-py when it first connects) and the blocking facade (:mod:`._blocking`, which
starts an event loop thread through anyio) load on first use of one of their names,
so ``import maxapi_async`` stays cheap; so does aiohttp, which the transport imports
when the first session is created.
"""

import sys
from typing import TYPE_CHECKING, Any

from ._client.client import DEFAULT_BASE_URL, DEFAULT_MAX_POLLS_PER_SECOND, DEFAULT_TASK_TIMEOUT, AsyncMaxAPI
from ._client.handles import TaskHandle, TaskStatus
from ._client.hooks import Hooks, PollEvent, RequestEvent, RetryEvent, TaskDoneEvent
from ._client.limits import PollLimiter
from ._client.resources import Images, Models, ReferenceInput, Tasks
from ._protocol.calls import MAX_REFERENCE_BYTES_PER_REQUEST, MAX_REFERENCE_IMAGE_BYTES
from ._protocol.catalog import DEFAULT_MODEL, MODELS, ROUTE_MODES, ModelSpec, lookup_model
from ._protocol.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AssetTypeError,
    AuthenticationError,
    BadRequestError,
    BlockedError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    InsufficientCreditsError,
    InvalidRequestError,
    JournalError,
    JournalLockedError,
    MaxAPIError,
    MaxAPIWarning,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    ResponseTooLargeError,
    RunningLoopError,
    ServerError,
    StoreError,
    TaskFailedError,
    TaskProtocolError,
    TaskTimeoutError,
)
from ._protocol.gemini import (
    Blob,
    Candidate,
    Content,
    FileData,
    GenerateContentResponse,
    Part,
    PromptFeedback,
    UsageMetadata,
)
from ._protocol.models import ASSET_TTL, ImageAsset, ImageResult
from ._protocol.policy import PollPolicy, RetryPolicy
from ._protocol.pricing import PRICES, PriceTable, RouteUsage, Usage
from ._protocol.tasks import TaskRef
from ._transport.timeouts import Timeouts
from ._version import __version__

if TYPE_CHECKING:
    from ._batch.items import (
        BatchItem,
        BatchProgress,
        BatchSummary,
        ContentRequest,
        EditRequest,
        GenerateRequest,
        Outcome,
    )
    from ._batch.redis_client import RedisPollLimiter
    from ._batch.redis_store import RedisStore
    from ._batch.runner import Batch
    from ._batch.store import StoreProgress
    from ._blocking import BlockingTaskHandle, MaxAPI
    from ._display import show

__all__ = [
    "ASSET_TTL",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_POLLS_PER_SECOND",
    "DEFAULT_MODEL",
    "DEFAULT_TASK_TIMEOUT",
    "MAX_REFERENCE_BYTES_PER_REQUEST",
    "MAX_REFERENCE_IMAGE_BYTES",
    "MODELS",
    "PRICES",
    "ROUTE_MODES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AssetTypeError",
    "AsyncMaxAPI",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchItem",
    "BatchProgress",
    "BatchSummary",
    "Blob",
    "BlockedError",
    "BlockingTaskHandle",
    "Candidate",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "Content",
    "ContentRequest",
    "EditRequest",
    "FileData",
    "GenerateContentResponse",
    "GenerateRequest",
    "Hooks",
    "ImageAsset",
    "ImageResult",
    "Images",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JournalError",
    "JournalLockedError",
    "MaxAPI",
    "MaxAPIError",
    "MaxAPIWarning",
    "ModelSpec",
    "Models",
    "NotFoundError",
    "Outcome",
    "Part",
    "PermissionDeniedError",
    "PollEvent",
    "PollLimiter",
    "PollPolicy",
    "PriceTable",
    "PromptFeedback",
    "RateLimitError",
    "RedisPollLimiter",
    "RedisStore",
    "ReferenceInput",
    "RequestEvent",
    "ResponseError",
    "ResponseTooLargeError",
    "RetryEvent",
    "RetryPolicy",
    "RouteUsage",
    "RunningLoopError",
    "ServerError",
    "StoreError",
    "StoreProgress",
    "TaskDoneEvent",
    "TaskFailedError",
    "TaskHandle",
    "TaskProtocolError",
    "TaskRef",
    "TaskStatus",
    "TaskTimeoutError",
    "Tasks",
    "Timeouts",
    "Usage",
    "UsageMetadata",
    "__version__",
    "load_ipython_extension",
    "lookup_model",
    "show",
]

# Names whose modules load on first use (PEP 562): name -> private module.
_LAZY = {
    "Batch": "_batch.runner",
    "BatchItem": "_batch.items",
    "BatchProgress": "_batch.items",
    "BatchSummary": "_batch.items",
    "ContentRequest": "_batch.items",
    "EditRequest": "_batch.items",
    "GenerateRequest": "_batch.items",
    "Outcome": "_batch.items",
    "BlockingTaskHandle": "_blocking",
    "MaxAPI": "_blocking",
    "RedisPollLimiter": "_batch.redis_client",
    "RedisStore": "_batch.redis_store",
    "StoreProgress": "_batch.store",
    "show": "_display",
}


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext maxapi_async``: IPython displays results with their images embedded once
    (done by itself when ``maxapi_async`` is imported in a running IPython)."""
    from ._display import register

    register(ip)


if "IPython" in sys.modules:  # a notebook or an IPython shell: results display themselves there
    from ._display import register_if_running

    register_if_running()


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all for typos

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
