"""The OpenAI-compatible image requests (``/v1/images/generations`` and ``/edits``). No I/O.

Each builder takes the prompt and an :class:`~maxapi_async._protocol.options.ImageOptions`, checks
them (the options' checks are remembered per option set) and returns the
:class:`~maxapi_async._protocol.calls.RequestSpec` the client sends. An edit is checked by
:func:`check_edit_arguments` before its reference files are read, then built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .calls import (
    EDITS_PATH,
    GENERATIONS_PATH,
    FormPart,
    ReferenceImage,
    RequestSpec,
    check_text,
    encode_json,
)
from .errors import InvalidRequestError
from .images import IMAGE_TYPES, sniff_mime_type
from .options import ImageChecked, ImageOptions, check_image_options, warn_caller

__all__ = ["build_edit_request", "build_generate_request", "check_edit_arguments", "reference_image"]


def _check_prompt(prompt: object) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("prompt", "must be a non-empty string")
    return check_text("prompt", prompt)


def _checked(prompt: object, options: ImageOptions) -> ImageChecked:
    _check_prompt(prompt)
    checked = check_image_options(options)
    warn_caller(checked.warning)
    return checked


def build_generate_request(prompt: str, options: ImageOptions, *, queued: bool = False) -> RequestSpec:
    """The ``POST /v1/images/generations`` request; optional keys only when set."""
    checked = _checked(prompt, options)
    body: dict[str, Any] = {"model": options.model, "prompt": prompt, **checked.fields}
    if queued:
        body["async"] = True
    return RequestSpec("POST", GENERATIONS_PATH, checked.generation, json=body, headers=checked.headers)


def check_edit_arguments(prompt: object, images: object, options: ImageOptions) -> None:
    """Check an edit's arguments (all but the images' bytes) before any file is read."""
    _checked(prompt, options)
    if isinstance(images, (str, bytes, bytearray, memoryview)) or not isinstance(images, Sequence):
        raise InvalidRequestError(
            "images", "must be a list of reference images (paths, bytes, files or ImageAssets)"
        )
    if not images:
        raise InvalidRequestError("images", "at least one reference image is required")


def reference_image(data: bytes, *, index: int, filename: str | None = None) -> ReferenceImage:
    """Wrap reference bytes, refusing anything that is not a PNG, JPEG, WebP or GIF."""
    mime = sniff_mime_type(data)
    if mime is None:
        raise InvalidRequestError(
            f"images[{index}]",
            f"is not an image ({len(data)} bytes, unknown format)",
            allowed=IMAGE_TYPES,
        )
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}[mime]
    name = _part_filename(filename) or f"image-{index}.{ext}"
    return ReferenceImage(data=data, filename=name, mime_type=mime)


# What a multipart header cannot hold: line breaks and other controls, lone surrogates.
_UNSENDABLE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _part_filename(filename: str | None) -> str | None:
    """A file name as it can go in a part's header: unsendable characters become ``_``."""
    if not filename:
        return None
    return _UNSENDABLE_IN_HEADER.sub("_", filename)


def build_edit_request(
    prompt: str, images: Sequence[ReferenceImage], options: ImageOptions, *, queued: bool = False
) -> RequestSpec:
    """The multipart ``POST /v1/images/edits`` request, one ``image[]`` part per image.

    The client runs :func:`check_edit_arguments` first, before reading any reference file,
    so bad input costs no I/O (this checks again, from the remembered verdict).
    """
    checked = check_image_options(options)
    parts = [FormPart("model", options.model), FormPart("prompt", prompt)]
    parts.extend(FormPart(key, _form_text(value)) for key, value in checked.fields.items())
    if queued:
        parts.append(FormPart("async", "true"))
    for image in images:
        parts.append(FormPart("image[]", image.data, image.filename, image.mime_type))
    return RequestSpec("POST", EDITS_PATH, checked.edit, form=tuple(parts), headers=checked.headers)


def _form_text(value: object) -> str:
    """A field's value as a multipart text part: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else encode_json(value).decode()
