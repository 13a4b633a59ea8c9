"""The image request both route families parse into, and what it implies for the answer.

:class:`ImageParams` is an OpenAI-style or Gemini-native request after its checks;
:func:`output_size` is the pixel size of the images it gets (the model table's size for the
aspect ratio and resolution, else the reference image's size); the token constants and
:func:`text_tokens` feed the ``usage`` / ``usageMetadata`` of an answer.
"""

from __future__ import annotations

from typing import Final

import attrs

from .._catalog import ModelSpec
from ._png import png_size

__all__ = [
    "TOKENS_PER_IMAGE",
    "TOKENS_PER_REFERENCE",
    "ImageParams",
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


def output_size(params: ImageParams, reference: bytes | None) -> tuple[int, int]:
    """The ``(width, height)`` of the images answering ``params`` (``reference``: the first input image)."""
    spec = params.spec
    if spec is not None and (params.aspect_ratio is not None or reference is None):
        size = spec.size_for(params.aspect_ratio, params.resolution)
        if size is not None:
            return size
    if reference is not None:
        ref_size = png_size(reference)
        if ref_size is not None:
            return ref_size
    return _FALLBACK_SIZE


def text_tokens(prompt: str) -> int:
    """The input tokens counted for a prompt (about four characters a token, at least one)."""
    return max(1, len(prompt) // 4)
