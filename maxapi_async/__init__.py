"""maxapi_async: the asyncio-first client for MaxAPI's Gemini 2.5 Flash Image API.

Everything public is re-exported here; every other module is private.

    import maxapi_async

    async with maxapi_async.AsyncMaxAPI() as client:          # key from MAXAPI_KEY
        result = await client.images.generate("a glass cube", aspect_ratio="16:9")
        await result.images[0].save("cube.png")
"""

from ._catalog import DEFAULT_MODEL, MODELS, ROUTE_MODES, ModelSpec, lookup_model
from ._client import DEFAULT_BASE_URL, AsyncMaxAPI, Images, ReferenceInput
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    InsufficientCreditsError,
    InvalidRequestError,
    MaxAPIError,
    MaxAPIWarning,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    ServerError,
)
from ._models import ASSET_TTL, ImageAsset, ImageData, ImageResult, ImagesResponse
from ._transport import Timeouts
from ._version import __version__

__all__ = [
    "ASSET_TTL",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MODELS",
    "ROUTE_MODES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncMaxAPI",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "ImageAsset",
    "ImageData",
    "ImageResult",
    "Images",
    "ImagesResponse",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "MaxAPIError",
    "MaxAPIWarning",
    "ModelSpec",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReferenceInput",
    "ResponseError",
    "ServerError",
    "Timeouts",
    "__version__",
    "lookup_model",
]
