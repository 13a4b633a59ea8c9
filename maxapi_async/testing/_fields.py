"""The request body fields the wire spec lists, per route, and the ones a request sent besides.

:func:`unknown_fields` names every body field of a request that MaxAPI's wire reference does
not list for its route, as a path (``"size"``, ``"generationConfig.temperature"``,
``"contents[0].parts[1].videoMetadata"``). The fake records them on each request
(:attr:`RecordedRequest.unknown_fields`) and, made with ``strict=True``, refuses the request
with a 400, as a strict service would. Gemini-native names count in either spelling
(``imageConfig`` or ``image_config``): Google's JSON accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = ["EDIT_FILE_FIELDS", "IMAGE_REQUEST_FIELDS", "is_generate_content", "unknown_fields"]

#: The JSON fields of ``POST /v1/images/generations`` (and the text fields of an edit).
IMAGE_REQUEST_FIELDS: Final = frozenset(
    {
        "model",
        "prompt",
        "aspect_ratio",
        "resolution",
        "n",
        "route_mode",
        "async",
        "asset_delivery",
        "response_format",
    }
)
#: The multipart file fields of ``POST /v1/images/edits``: ``image``, ``image[]`` and ``mask``.
EDIT_FILE_FIELDS: Final = re.compile(r"^(image(\[\d*\])?|mask)$")

_CAMEL: Final = re.compile(r"_([a-z])")

# The Gemini-native body, as nested field sets (camelCase; snake_case is folded onto it).
_REQUEST: Final = frozenset({"contents", "generationConfig"})
_CONTENT: Final = frozenset({"role", "parts"})
_PART: Final = frozenset({"text", "inlineData", "fileData", "thought"})
_INLINE: Final = frozenset({"mimeType", "data"})
_FILE: Final = frozenset({"mimeType", "fileUri"})
_CONFIG: Final = frozenset({"responseModalities", "imageConfig"})
_IMAGE_CONFIG: Final = frozenset({"aspectRatio", "imageSize"})


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def is_generate_content(method: str, path: str) -> bool:
    """Whether a request is a Gemini-native ``generateContent`` call."""
    return method == "POST" and path.startswith("/v1beta/models/") and path.endswith(":generateContent")


def unknown_fields(
    method: str, path: str, json_body: Any, form: Mapping[str, str], files: list[str]
) -> tuple[str, ...]:
    """The body fields of a request the wire spec does not list for its route (``files``: part names)."""
    if method != "POST":
        return ()
    if path == "/v1/images/generations":
        return (
            tuple(k for k in json_body if k not in IMAGE_REQUEST_FIELDS)
            if isinstance(json_body, dict)
            else ()
        )
    if path == "/v1/images/edits":
        text = [k for k in form if k not in IMAGE_REQUEST_FIELDS]
        return (*text, *(f for f in files if not EDIT_FILE_FIELDS.match(f)))
    if is_generate_content(method, path) and isinstance(json_body, dict):
        return tuple(_gemini_unknown(json_body))
    return ()


def _extra(obj: Mapping[str, Any], known: frozenset[str], where: str) -> Iterator[str]:
    for key in obj:
        if _camel(key) not in known:
            yield f"{where}{key}"


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """A camelCase field, or its snake_case spelling."""
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name))


def _gemini_unknown(body: Mapping[str, Any]) -> Iterator[str]:
    yield from _extra(body, _REQUEST, "")
    contents = body.get("contents")
    for i, content in enumerate(contents if isinstance(contents, list) else []):
        if not isinstance(content, dict):
            continue
        yield from _extra(content, _CONTENT, f"contents[{i}].")
        parts = content.get("parts")
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            if not isinstance(part, dict):
                continue
            where = f"contents[{i}].parts[{j}]."
            yield from _extra(part, _PART, where)
            for name, known in (("inlineData", _INLINE), ("fileData", _FILE)):
                inner = _field(part, name)
                if isinstance(inner, dict):
                    yield from _extra(inner, known, f"{where}{name}.")
    config = _field(body, "generationConfig")
    if isinstance(config, dict):
        yield from _extra(config, _CONFIG, "generationConfig.")
        image_config = _field(config, "imageConfig")
        if isinstance(image_config, dict):
            yield from _extra(image_config, _IMAGE_CONFIG, "generationConfig.imageConfig.")
