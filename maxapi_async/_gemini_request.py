"""Google's ``generateContent`` requests: the contents a caller may pass, and the request. No I/O.

The request half of :mod:`maxapi_async._gemini` (which holds the answer's models and reading
it). The client builds a request in this order::

    loads = pending_loads(contents)                   # checks everything else, no I/O yet
    data = [<read path / file / asset URL> for _, item in loads]     # the client's I/O
    wire = normalize_contents(contents, loaded=data)  # base64: in a thread when big
    spec = build_generate_content_request(model, wire, aspect_ratio=..., ...)

or, for the usual call (a string prompt, options checked before),
``known_prompt_request(model, prompt, ...)``.
"""

from __future__ import annotations

import binascii
import functools
import os
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import attrs

from . import _catalog
from ._errors import InvalidRequestError, MaxAPIWarning
from ._gemini import (
    ASYNC_HEADER,
    RESPONSE_MODALITIES,
    ROUTE_MODE_HEADER,
    Blob,
    Content,
    FileData,
    Part,
    _camel,
)
from ._images import IMAGE_TYPES, sniff_mime_type
from ._models import ImageAsset
from ._protocol import (
    IDEMPOTENCY_HEADER,
    TEXT_SLOT,
    ImageCall,
    OptionMemo,
    RequestSpec,
    check_json,
    check_reference_size,
    check_text,
    fill_text,
    text_template,
)

__all__ = [
    "build_generate_content_request",
    "generate_content_path",
    "inline_data_size",
    "known_prompt_request",
    "needs_loading",
    "normalize_contents",
    "pending_loads",
    "requested_modalities",
    "scan_contents",
]

# --------------------------------------------------------------------------
# Contents: everything a caller may pass, as Google's JSON.


def needs_loading(item: object) -> bool:
    """Whether ``item`` must be read (I/O) before :func:`normalize_contents` can use it.

    True for ``os.PathLike`` paths, binary file objects and :class:`ImageAsset` objects
    without inline bytes. A ``str`` is always text, never a path: pass ``pathlib.Path``.
    """
    if isinstance(item, ImageAsset):
        return item.data is None
    if isinstance(item, os.PathLike):
        return True
    if isinstance(item, (str, bytes, bytearray, memoryview, Mapping, Part, Content, Blob, FileData)):
        return False
    return callable(getattr(item, "read", None))


def _camel_key(key: object, argument: str) -> str:
    if not isinstance(key, str):
        raise InvalidRequestError(argument, f"keys must be strings, got {key!r}")
    return _camel(key) if "_" in key else key


def _camel_keys(mapping: Mapping[Any, Any], argument: str) -> dict[str, Any]:
    return {_camel_key(k, argument): v for k, v in mapping.items()}


def _b64(data: bytes | bytearray | memoryview) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _sniff_b64(text: str) -> str | None:
    try:
        return sniff_mime_type(binascii.a2b_base64(text[:24]))
    except (binascii.Error, ValueError):
        return None


def _part_to_wire(part: Part) -> dict[str, Any]:
    out = _camel_keys(part.extra, "contents")
    if part.text is not None:
        out["text"] = part.text
    if part.inline_data is not None:
        out["inlineData"] = _blob_to_wire(part.inline_data)
    if part.file_data is not None:
        out["fileData"] = _file_to_wire(part.file_data)
    if part.thought:
        out["thought"] = True
    return out


def _blob_to_wire(blob: Blob) -> dict[str, Any]:
    out = _camel_keys(blob.extra, "contents")
    if blob.mime_type is not None:
        out["mimeType"] = blob.mime_type
    out["data"] = blob.data
    return out


def _file_to_wire(file: FileData) -> dict[str, Any]:
    out = _camel_keys(file.extra, "contents")
    if file.mime_type is not None:
        out["mimeType"] = file.mime_type
    out["fileUri"] = file.file_uri
    return out


def _is_content(item: object) -> TypeGuard[Content | Mapping[Any, Any]]:
    return isinstance(item, Content) or (isinstance(item, Mapping) and "parts" in item)


class _Normalizer:
    """One walk over ``contents``. With ``loaded=None`` it only checks and collects loads."""

    def __init__(self, loaded: Sequence[bytes] | None) -> None:
        self.dry = loaded is None
        self.inline_bytes = 0  # image bytes given inline, to be base64-encoded
        self.image_bytes = 0  # image bytes of the request, base64 given as text included
        self.loaded = iter(loaded or ())
        self.found: list[tuple[str, object]] = []

    def contents(self, contents: object) -> list[dict[str, Any]]:
        if _is_content(contents):
            return [self.content(contents, "contents")]
        if isinstance(contents, (list, tuple)):
            if not contents:
                raise InvalidRequestError("contents", "must not be empty")
            whole = [_is_content(item) for item in contents]
            if all(whole):
                return [self.content(item, f"contents[{i}]") for i, item in enumerate(contents)]
            if any(whole):
                raise InvalidRequestError(
                    "contents", "mixes whole contents ({'role', 'parts'}) with loose parts"
                )
            return [
                {"role": "user", "parts": [self.part(p, f"contents[{i}]") for i, p in enumerate(contents)]}
            ]
        return [{"role": "user", "parts": [self.part(contents, "contents")]}]

    def content(self, item: Content | Mapping[Any, Any], argument: str) -> dict[str, Any]:
        if isinstance(item, Content):
            out = _camel_keys(item.extra, argument)
            if item.role is not None:
                out["role"] = item.role
            parts: object = item.parts
        else:
            out = _camel_keys(item, argument)
            parts = out.pop("parts")
            role = out.get("role")
            if role is None:
                out.pop("role", None)
            elif not isinstance(role, str):
                raise InvalidRequestError(f"{argument}.role", f"must be a string, got {role!r}")
        if not isinstance(parts, (list, tuple)) or not parts:
            raise InvalidRequestError(f"{argument}.parts", "must be a non-empty list of parts")
        out["parts"] = [self.part(p, f"{argument}.parts[{j}]") for j, p in enumerate(parts)]
        return out

    def part(self, item: object, argument: str) -> dict[str, Any]:
        if isinstance(item, str):
            return {"text": check_text(argument, item)}
        if isinstance(item, (bytes, bytearray, memoryview)):
            return self.image(item, argument)
        if isinstance(item, Part):
            if item.inline_data is not None:
                self.count(item.inline_data.data, argument)
            return _part_to_wire(item)
        if isinstance(item, Blob):
            self.count(item.data, argument)
            return {"inlineData": _blob_to_wire(item)}
        if isinstance(item, FileData):
            return {"fileData": _file_to_wire(item)}
        if isinstance(item, Mapping):
            return self.part_dict(item, argument)
        if isinstance(item, ImageAsset) and item.data is not None:
            return self.image(item.data, argument)
        if needs_loading(item):
            if self.dry:
                self.found.append((argument, item))
                return {}
            data = next(self.loaded, None)
            if data is None:
                raise ValueError(f"{argument} needs loading, but no loaded bytes are left for it")
            return self.image(data, argument)
        raise InvalidRequestError(
            argument,
            f"cannot send a {type(item).__name__}; use text, image bytes, a pathlib.Path, "
            "an ImageAsset or a Gemini part dict ({'text'}, {'inlineData'}, {'fileData'})",
        )

    def count(self, data: str | bytes | bytearray | memoryview, argument: str) -> None:
        """Hold one image (bytes, or base64 text) to the caps of one request."""
        if isinstance(data, str):
            size = len(data) * 3 // 4
        else:
            size = data.nbytes if isinstance(data, memoryview) else len(data)
        self.image_bytes += size
        check_reference_size(argument, size, total=self.image_bytes)

    def image(self, data: bytes | bytearray | memoryview, argument: str) -> dict[str, Any]:
        self.count(data, argument)
        mime = sniff_mime_type(data)
        if mime is None:
            raise InvalidRequestError(
                argument, f"is not an image ({len(data)} bytes, unknown format)", allowed=IMAGE_TYPES
            )
        self.inline_bytes += len(data)
        return {"inlineData": {"mimeType": mime, "data": "" if self.dry else _b64(data)}}

    def part_dict(self, item: Mapping[Any, Any], argument: str) -> dict[str, Any]:
        out = _camel_keys(item, argument)
        if not out:
            raise InvalidRequestError(argument, "is an empty part")
        if "parts" in out:
            raise InvalidRequestError(argument, "is a whole content inside a content's parts")
        if "text" in out and not isinstance(out["text"], str):
            raise InvalidRequestError(f"{argument}.text", f"must be a string, got {out['text']!r}")
        if "inlineData" in out:
            out["inlineData"] = self.inline_dict(out["inlineData"], f"{argument}.inlineData")
        if "fileData" in out:
            file = out["fileData"]
            if not isinstance(file, Mapping):
                raise InvalidRequestError(f"{argument}.fileData", "must be an object with 'fileUri'")
            file = _camel_keys(file, argument)
            if not isinstance(file.get("fileUri"), str) or not file["fileUri"]:
                raise InvalidRequestError(f"{argument}.fileData", "needs a 'fileUri' string")
            out["fileData"] = file
        check_json(argument, out)  # named from the caller's contents, not the body's
        return out

    def inline_dict(self, value: object, argument: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidRequestError(argument, "must be an object with 'mimeType' and 'data'")
        out = _camel_keys(value, argument)
        data = out.get("data")
        mime = out.get("mimeType")
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.count(data, argument)
            mime = mime or sniff_mime_type(data)
            self.inline_bytes += len(data)
            out["data"] = "" if self.dry else _b64(data)
        elif isinstance(data, str) and data:
            self.count(data, argument)
            mime = mime or _sniff_b64(data)
        else:
            raise InvalidRequestError(f"{argument}.data", "must be base64 text or bytes")
        if not isinstance(mime, str) or not mime:
            raise InvalidRequestError(
                f"{argument}.mimeType",
                "is missing and the data is not a known image type",
                allowed=IMAGE_TYPES,
            )
        out["mimeType"] = mime
        return out


def pending_loads(contents: object) -> list[tuple[str, object]]:
    """The items of ``contents`` that need I/O, with the argument name for error messages.

    Also checks everything else in ``contents`` (so bad input fails before any file is
    read). The client reads each item (a path, a binary file object, or an ImageAsset's
    URL) and passes the bytes, in this order, to :func:`normalize_contents`.
    """
    return scan_contents(contents)[0]


def scan_contents(contents: object) -> tuple[list[tuple[str, object]], int]:
    """:func:`pending_loads`, and the number of image bytes ``contents`` holds inline.

    The client moves :func:`normalize_contents` (base64) to a worker thread when those
    and the loaded bytes are many.
    """
    walker = _Normalizer(None)
    walker.contents(contents)
    return walker.found, walker.inline_bytes


def inline_data_size(contents: Sequence[dict[str, Any]]) -> int:
    """The base64 characters of the ``inlineData`` parts of wire ``contents`` (a request body's bulk)."""
    return sum(
        len(part["inlineData"].get("data") or "")
        for content in contents
        for part in content.get("parts") or ()
        if isinstance(part, dict) and isinstance(part.get("inlineData"), dict)
    )


def normalize_contents(contents: object, *, loaded: Sequence[bytes] = ()) -> list[dict[str, Any]]:
    """``contents`` as Google's JSON: a list of ``{"role", "parts"}`` dicts, camelCase.

    Accepted: a string; image bytes; a part dict (``{"text"}``, ``{"inlineData"}``,
    ``{"fileData"}``, snake_case keys too); a :class:`Part`, :class:`Blob` or
    :class:`FileData`; a content dict ``{"role", "parts"}`` or :class:`Content` (so a
    previous answer's content can be sent back); or a list of either whole contents or
    loose parts (loose parts make one ``"user"`` content). Image bytes are sniffed and
    base64-encoded; non-image bytes raise :class:`InvalidRequestError` naming the item.

    Items that need I/O (see :func:`pending_loads`) are taken, in order, from ``loaded``.
    Base64-encoding is CPU work: the client runs this in a thread when payloads are big.
    """
    walker = _Normalizer(loaded)
    out = walker.contents(contents)
    if next(walker.loaded, None) is not None:
        raise ValueError("more loaded items than contents needs")
    return out


# --------------------------------------------------------------------------
# The request.


@functools.lru_cache(maxsize=64)
def generate_content_path(model: str) -> str:
    """``/v1beta/models/{model}:generateContent``, the model's slash kept."""
    return f"/v1beta/models/{urllib.parse.quote(model, safe='/')}:generateContent"


def _check_model(model: object) -> str:
    if not isinstance(model, str) or not model.removeprefix("models/").strip():
        raise InvalidRequestError("model", "must be a non-empty model id", allowed=tuple(_catalog.MODELS))
    return check_text("model", model.removeprefix("models/"))


def _check_contents(contents: object) -> list[dict[str, Any]]:
    if not isinstance(contents, (list, tuple)) or not contents:
        raise InvalidRequestError("contents", "must be a non-empty list (see normalize_contents)")
    for i, content in enumerate(contents):
        if (
            not isinstance(content, dict)
            or not isinstance(content.get("parts"), list)
            or not content["parts"]
        ):
            raise InvalidRequestError(f"contents[{i}]", "must be a {'role', 'parts'} dict with parts")
    return list(contents)


def _check_modalities(value: object, argument: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise InvalidRequestError(
            argument, f"must be a non-empty list, got {value!r}", allowed=RESPONSE_MODALITIES
        )
    out: list[str] = []
    for item in value:
        word = item.upper() if isinstance(item, str) else item
        if word not in RESPONSE_MODALITIES:
            raise InvalidRequestError(argument, f"unknown modality {item!r}", allowed=RESPONSE_MODALITIES)
        if word not in out:
            out.append(word)
    return out


def _check_image_config(
    spec: _catalog.ModelSpec | None, ratio: object, size: object, ratio_arg: str, size_arg: str
) -> None:
    if ratio is not None:
        if not isinstance(ratio, str):
            raise InvalidRequestError(ratio_arg, f"must be a string like '16:9', got {ratio!r}")
        check_text(ratio_arg, ratio)
        if spec is not None and ratio not in spec.aspect_ratios:
            raise InvalidRequestError(
                ratio_arg, f"{ratio!r} is not supported by {spec.id}", allowed=spec.aspect_ratios
            )
    if size is not None:
        if not isinstance(size, str):
            raise InvalidRequestError(size_arg, f"must be a string like '2K', got {size!r}")
        check_text(size_arg, size)
        if spec is not None and not spec.accepts_resolution:
            warnings.warn(
                f"image_size={size!r} is ignored by {spec.id}: its output size is fixed per aspect ratio",
                MaxAPIWarning,
                stacklevel=5,  # the caller of the client method that builds the request
            )
        elif spec is not None and size not in spec.resolutions:
            raise InvalidRequestError(
                size_arg, f"{size!r} is not offered by {spec.id}", allowed=spec.resolutions
            )


def _generation_config(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequestError("generation_config", f"must be a dict, got {type(value).__name__}")
    config = _camel_keys(value, "generation_config")
    for key in ("imageConfig", "thinkingConfig"):
        nested = config.get(key)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise InvalidRequestError("generation_config", f"{key} must be a dict")
            config[key] = _camel_keys(nested, "generation_config")
    return config


def _system_instruction(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        return {"parts": [{"text": value}]}
    if not _is_content(value):
        raise InvalidRequestError("system_instruction", "must be a string or a {'parts': [...]} content")
    return _Normalizer(()).content(value, "system_instruction")


def _safety_settings(value: object) -> list[dict[str, Any]]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise InvalidRequestError("safety_settings", "must be a list of {'category', 'threshold'} dicts")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidRequestError(f"safety_settings[{i}]", "must be a {'category', 'threshold'} dict")
        out.append(_camel_keys(item, f"safety_settings[{i}]"))
    return out


def _has_image_input(contents: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(part, dict) and ("inlineData" in part or "fileData" in part)
        for content in contents
        for part in content["parts"]
    )


def build_generate_content_request(
    model: str,
    contents: Sequence[dict[str, Any]],
    *,
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    response_modalities: Sequence[str] | None = None,
    route_mode: str | None = None,
    queued: bool = False,
    system_instruction: str | Mapping[str, Any] | Content | None = None,
    generation_config: Mapping[str, Any] | None = None,
    safety_settings: Sequence[Mapping[str, Any]] | None = None,
    idempotency_key: str | None = None,
) -> RequestSpec:
    """The ``POST /v1beta/models/{model}:generateContent`` request, checked.

    ``contents`` comes from :func:`normalize_contents`. ``model`` keeps its slash
    (``google/gemini-2.5-flash-image``); a ``models/`` prefix is dropped. The body is
    camelCase and carries only what the caller set: no ``generationConfig`` at all by
    default, so the model answers with its default modalities (text and image).
    ``generation_config`` is a base (its top-level, ``imageConfig`` and
    ``thinkingConfig`` keys may be snake_case) that the explicit arguments override.
    ``route_mode`` goes in ``X-MaxAPI-Route-Mode``; ``queued`` sets ``X-MaxAPI-Async: true``;
    ``idempotency_key`` goes in ``Idempotency-Key``.

    Aspect ratio and image size are checked against the model's table (unknown models pass
    through); an ``image_size`` for a model without a size selector warns and is sent.
    """
    plain = system_instruction is None and generation_config is None and safety_settings is None
    key = _options_key(model, aspect_ratio, image_size, response_modalities, route_mode) if plain else None
    known = _KNOWN_OPTIONS.get(key)
    if known is None:
        known = _checked_options(
            model, aspect_ratio, image_size, response_modalities, route_mode, generation_config
        )
        if image_size is None or known.spec is None or known.spec.accepts_resolution:  # else: warn each time
            _KNOWN_OPTIONS.remember(key, known)
    wire_contents = _check_contents(contents)
    body: dict[str, Any] = {"contents": wire_contents}
    if system_instruction is not None:
        body["systemInstruction"] = _system_instruction(system_instruction)
    if known.config:
        body["generationConfig"] = known.config
    if safety_settings is not None:
        body["safetySettings"] = _safety_settings(safety_settings)
    for field, argument in _BODY_ARGUMENTS:
        if field in body:
            check_json(argument, body[field])  # what JSON cannot carry, named before sending
    call = known.edit if _has_image_input(wire_contents) else known.generation
    return RequestSpec(
        "POST", known.path, call, json=body, headers=_headers(route_mode, queued, idempotency_key)
    )


# The body's keys and the arguments they come from.
_BODY_ARGUMENTS = (
    ("contents", "contents"),
    ("systemInstruction", "system_instruction"),
    ("generationConfig", "generation_config"),
    ("safetySettings", "safety_settings"),
)


def known_prompt_request(
    model: str,
    prompt: str,
    *,
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    response_modalities: Sequence[str] | None = None,
    route_mode: str | None = None,
    queued: bool = False,
    idempotency_key: str | None = None,
) -> RequestSpec | None:
    """:func:`build_generate_content_request` for one text prompt, when its options passed before.

    The usual call: the same request (``contents`` is the user's one text part), its body
    already encoded, since around the prompt it is the same for every call with these
    options. ``None`` for options not checked yet: build the request the general way.
    """
    known = _KNOWN_OPTIONS.get(_options_key(model, aspect_ratio, image_size, response_modalities, route_mode))
    if known is None or type(prompt) is not str:
        return None
    check_text("contents", prompt)
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    if known.config:
        body["generationConfig"] = known.config
    return RequestSpec(
        "POST",
        known.path,
        known.generation,
        json=body,
        headers=_headers(route_mode, queued, idempotency_key),
        body=fill_text(known.prompt_body, prompt),
    )


def _headers(route_mode: str | None, queued: bool, idempotency_key: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if route_mode is not None:
        headers[ROUTE_MODE_HEADER] = route_mode
    if queued:
        headers[ASYNC_HEADER] = "true"
    if idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    return headers


@attrs.frozen
class _Checked:
    """What the checks make of a request's options (all but the contents)."""

    spec: _catalog.ModelSpec | None  # the model's table row
    path: str
    config: dict[str, Any]  # the generationConfig to send, never changed
    generation: ImageCall  # the call made without image input
    edit: ImageCall  # and with it
    prompt_body: tuple[bytes, bytes] | None  # the body around a text prompt (text_template)


# Option sets without a generation_config, system_instruction or safety_settings; the config
# dict is sent as it is, never changed, so calls share it.
_KNOWN_OPTIONS: OptionMemo[_Checked] = OptionMemo()


def _options_key(
    model: object, aspect_ratio: object, image_size: object, modalities: object, route_mode: object
) -> tuple[object, ...] | None:
    words: tuple[str, ...] | None = None
    if modalities is not None:
        if not isinstance(modalities, (list, tuple)) or not all(type(m) is str for m in modalities):
            return None
        words = tuple(modalities)
    return (model, aspect_ratio, image_size, words, route_mode)


def _checked_options(
    model: str,
    aspect_ratio: str | None,
    image_size: str | None,
    response_modalities: Sequence[str] | None,
    route_mode: str | None,
    generation_config: Mapping[str, Any] | None,
) -> _Checked:
    """Check the options of a request (raising :class:`InvalidRequestError`) and build its config."""
    model_id = _check_model(model)
    spec = _catalog.lookup_model(model_id)
    if route_mode is not None and route_mode not in _catalog.ROUTE_MODES:
        raise InvalidRequestError("route_mode", f"unknown value {route_mode!r}", allowed=_catalog.ROUTE_MODES)
    config = _generation_config(generation_config)

    if response_modalities is not None:
        config["responseModalities"] = _check_modalities(response_modalities, "response_modalities")
    elif "responseModalities" in config:
        config["responseModalities"] = _check_modalities(config["responseModalities"], "generation_config")

    image_config = dict(config.get("imageConfig") or {})
    if aspect_ratio is not None:
        image_config["aspectRatio"] = aspect_ratio
    if image_size is not None:
        image_config["imageSize"] = image_size
    ratio, size = image_config.get("aspectRatio"), image_config.get("imageSize")
    _check_image_config(
        spec,
        ratio,
        size,
        "aspect_ratio" if aspect_ratio is not None else "generation_config",
        "image_size" if image_size is not None else "generation_config",
    )
    if image_config:
        config["imageConfig"] = image_config
    ratio = ratio if isinstance(ratio, str) else None
    size = size if isinstance(size, str) else None
    prompt_body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": TEXT_SLOT}]}]}
    if config:
        prompt_body["generationConfig"] = config
    return _Checked(
        spec,
        generate_content_path(model_id),
        config,
        ImageCall("generation", model_id, ratio, size, route_mode),
        ImageCall("edit", model_id, ratio, size, route_mode),
        text_template(prompt_body),
    )


def requested_modalities(spec: RequestSpec) -> list[str] | None:
    """The ``responseModalities`` a built request asks for (``None``: the model's default)."""
    config = (spec.json or {}).get("generationConfig") or {}
    modalities = config.get("responseModalities")
    return list(modalities) if modalities is not None else None
