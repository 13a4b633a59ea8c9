"""The image request both route families parse into, and what it implies for the answer.

:func:`find_model` accepts the catalog's models (and a fake's ``extra_models``) and answers
any other with the service's 404 ``model_not_found``. :class:`ImageParams` is an
OpenAI-style or Gemini-native request after its checks; :func:`output_size` is the pixel size
of the images it gets: the model table's size for the aspect ratio and resolution, and for an
edit without a ratio the table size whose ratio is closest to the first reference image's
(:func:`closest_ratio`). The token constants and :func:`text_tokens` feed the ``usage`` /
``usageMetadata`` of an answer.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Final

import attrs

from .._protocol.catalog import ModelSpec, lookup_model
from .._protocol.images import image_size
from ._errors import ApiError

__all__ = [
    "TOKENS_PER_IMAGE",
    "TOKENS_PER_REFERENCE",
    "ImageParams",
    "closest_ratio",
    "find_model",
    "output_size",
    "text_tokens",
]

#: Output tokens counted for each image an answer carries.
TOKENS_PER_IMAGE: Final = 1290
#: Input tokens counted for each reference image a request carries.
TOKENS_PER_REFERENCE: Final = 258
#: The size of an image when neither the model table nor a reference image gives one.
_FALLBACK_SIZE: Final = (1024, 1024)


@attrs.frozen
class ImageParams:
    """A checked image request. ``spec`` is ``None`` for a model the table does not know."""

    model: str
    spec: ModelSpec | None
    prompt: str
    n: int
    aspect_ratio: str | None
    resolution: str | None
    route_mode: str | None
    response_format: str
    mirror: bool
    queued: bool


def find_model(model: str, extra_models: Collection[str]) -> ModelSpec | None:
    """The catalog's spec for ``model``; ``None`` for one of ``extra_models``; else a 404."""
    spec = lookup_model(model)
    if spec is None and model.removeprefix("models/") not in extra_models:
        raise ApiError(
            404,
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return spec


def closest_ratio(spec: ModelSpec, width: int, height: int) -> str:
    """The aspect ratio of ``spec``'s table nearest to ``width:height`` (the first, on a tie)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(spec.aspect_ratios, key=distance)


def output_size(params: ImageParams, reference: bytes | None) -> tuple[int, int]:
    """The ``(width, height)`` of the images answering ``params`` (``reference``: the first input
    image's bytes, when the request had one the fake can read)."""
    spec = params.spec
    ref_size = image_size(reference) if reference is not None else None
    if spec is None:
        return ref_size or _FALLBACK_SIZE
    ratio = params.aspect_ratio
    if ratio is None and ref_size is not None and ref_size[0] > 0 and ref_size[1] > 0:
        ratio = closest_ratio(spec, *ref_size)
    return spec.size_for(ratio, params.resolution) or _FALLBACK_SIZE


def text_tokens(prompt: str) -> int:
    """The input tokens counted for a prompt (about four characters a token, at least one)."""
    return max(1, len(prompt) // 4)
