"""The public surface changes only on purpose: `__all__` is pinned here."""

from __future__ import annotations

from pathlib import Path

import maxapi_async
import maxapi_async.testing

EXPECTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(maxapi_async.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in maxapi_async.__all__:
        assert hasattr(maxapi_async, name), name
    for name in maxapi_async.testing.__all__:
        assert hasattr(maxapi_async.testing, name), name


def test_public_classes_and_functions_are_defined_in_the_package() -> None:
    for name in maxapi_async.__all__:
        obj = getattr(maxapi_async, name)
        if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__code__")):
            assert obj.__module__.startswith("maxapi_async"), name


def test_every_error_derives_from_the_base() -> None:
    errors = [getattr(maxapi_async, n) for n in maxapi_async.__all__ if n.endswith("Error")]
    assert errors
    for cls in errors:
        assert issubclass(cls, maxapi_async.MaxAPIError), cls


def test_pyproject_names_the_project_urls() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    urls = text.split("[project.urls]\n", 1)[1].split("\n[", 1)[0]
    links = [line.split("=", 1)[1].strip().strip('"') for line in urls.splitlines() if "=" in line]
    assert links
    assert all(link.startswith("https://") for link in links)
