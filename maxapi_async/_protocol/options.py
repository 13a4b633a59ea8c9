"""The request options: what a caller may ask of one call, defined, documented and checked once.

:class:`ImageOptions` (``images.generate`` and ``images.edit``) and :class:`ContentOptions`
(``models.generate_content``) are frozen attrs classes. Everything else is made from them:

* the public methods take ``**options: Unpack[ImageOptionsDict]`` (the keyword types mypy
  users see) and build ``ImageOptions(**options)``; the blocking facade passes them on;
* the request builders (:mod:`.openai_request`, :mod:`.gemini_request`) take the object and
  ask :func:`check_image_options` / :func:`check_content_options` what it means;
* batch items (:class:`~maxapi_async.GenerateRequest`...) are subclasses: an item is the
  options of one call plus its prompt and key;
* the command line makes a flag of every field with ``cli`` metadata (argparse's keywords).

To add an option: a field in the class below (its meaning in the class docstring, ``cli=``
when the command line offers it), the same key and type in the ``...Dict`` beside it
(``tests/test_requests.py`` fails until both say the same), its check in ``_check_image`` /
``_check_content`` (an :class:`InvalidRequestError` naming it), and its place on the wire in
the builder. Nothing else lists the options.

The checks are pure, so a repeated option set (the usual case) is checked once:
``functools.lru_cache`` on the frozen object. ``n`` compares by type and value, so ``n=True``
or ``n=2.0`` never finds the verdict of ``n=1`` or ``n=2`` (the other fields' valid values
are strings, equal to strings only); an object holding a list or a dict (a
``generation_config``) is not hashable and is checked on every call. A verdict that warns
warns on every call (:func:`warn_caller`).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypedDict, TypeVar

import attrs

from . import catalog
from .calls import ImageCall, check_json, check_text
from .catalog import DEFAULT_MODEL, ROUTE_MODES, ModelSpec
from .errors import InvalidRequestError, MaxAPIWarning
from .gemini import RESPONSE_MODALITIES, _camel

__all__ = [
    "ASSET_DELIVERIES",
    "CONTENT_BODY_FIELDS",
    "IMAGE_BODY_FIELDS",
    "RESERVED_HEADERS",
    "RESPONSE_FORMATS",
    "ContentChecked",
    "ContentOptions",
    "ContentOptionsDict",
    "ImageChecked",
    "ImageOptions",
    "ImageOptionsDict",
    "camel_keys",
    "check_content_options",
    "check_headers",
    "check_image_options",
    "options_of",
    "warn_caller",
]

RESPONSE_FORMATS: tuple[str, ...] = ("url", "b64_json")
ASSET_DELIVERIES: tuple[str, ...] = ("mirror",)

T = TypeVar("T")
V = TypeVar("V")


def _typed(value: object) -> object:
    # The key a number compares and hashes by: True == 1 == 1.0, but only 1 is a valid ``n``.
    return (type(value), value)


def _option(default: Any, cli: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A field of an options class; ``cli``: argparse keywords of its command-line flag."""
    return attrs.field(default=default, metadata={"cli": cli} if cli else {}, **kwargs)


def _tuple_if_list(value: object) -> object:
    # A list of words is kept as a tuple, so the options stay hashable (and checked once).
    return tuple(value) if isinstance(value, list) else value


def _json_object(text: str) -> dict[str, Any]:
    """A command-line value that must be a JSON object (argparse reports a ``ValueError``)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


_json_object.__name__ = "JSON object"  # argparse: "invalid JSON object value: ..."


@attrs.frozen(kw_only=True)
class ImageOptions:
    """The options of ``images.generate`` and ``images.edit`` (each ``None``: not sent).

    * ``model``: the model id (default ``google/gemini-2.5-flash-image``); unknown models
      pass through without size checks;
    * ``aspect_ratio``: the output's shape, one of the model's ratios (``"16:9"``...);
    * ``resolution``: ``"1K"``, ``"2K"`` or ``"4K"`` on models with tiers; ignored (with a
      warning) by gemini-2.5-flash-image, whose size is fixed per ratio;
    * ``n``: how many images, 1 to the model's maximum (default 1);
    * ``route_mode``: ``"official"``, ``"official-cheap"`` or ``"mix"``; ``None`` takes
      the client's ``route_mode``;
    * ``asset_delivery``: ``"mirror"`` returns URLs on your alias domain;
    * ``response_format``: ``"url"`` (the default) or ``"b64_json"`` (the bytes inline);
    * ``extra_body``: body fields this version does not know, sent as given (JSON values;
      text parts of an edit's form); a field an option above sets is refused;
    * ``extra_headers``: request headers for this call (never the credentials, the
      ``Idempotency-Key`` or the content type: refused).
    """

    model: str = _option(DEFAULT_MODEL, {"help": "the model"})
    aspect_ratio: str | None = _option(
        None, {"flags": ("-a",), "metavar": "W:H", "help": "e.g. 16:9 (see: maxapi-async sizes)"}
    )
    resolution: str | None = _option(
        None, {"metavar": "TIER", "help": "1K, 2K or 4K, on models that have tiers"}
    )
    n: int = _option(1, {"flags": ("-n",), "type": int, "help": "images to make (1-10)"}, eq=_typed)
    route_mode: str | None = _option(
        None, {"choices": ROUTE_MODES, "help": "default: the key's configured order"}
    )
    asset_delivery: str | None = _option(
        None, {"choices": ASSET_DELIVERIES, "help": "mirror: URLs on your alias domain"}
    )
    response_format: str | None = _option(
        None, {"choices": RESPONSE_FORMATS, "help": "url (default) or b64_json (bytes inline)"}
    )
    extra_body: Mapping[str, Any] | None = _option(
        None, {"type": _json_object, "metavar": "JSON", "help": "body fields, as given: '{\"seed\": 7}'"}
    )
    extra_headers: Mapping[str, str] | None = _option(
        None, {"type": _json_object, "metavar": "JSON", "help": "request headers, as a JSON object"}
    )

    def with_route(self, route_mode: str | None) -> ImageOptions:
        """These options, with ``route_mode`` when they name none (the client's default)."""
        if self.route_mode is not None or route_mode is None:
            return self
        return attrs.evolve(self, route_mode=route_mode)


class ImageOptionsDict(TypedDict, total=False):
    """:class:`ImageOptions` as keyword arguments (``**options: Unpack[ImageOptionsDict]``)."""

    model: str
    aspect_ratio: str | None
    resolution: str | None
    n: int
    route_mode: str | None
    asset_delivery: str | None
    response_format: str | None
    extra_body: Mapping[str, Any] | None
    extra_headers: Mapping[str, str] | None


@attrs.frozen(kw_only=True)
class ContentOptions:
    """The options of ``models.generate_content`` (each ``None``: not sent).

    * ``model``: the model id (default ``google/gemini-2.5-flash-image``; a ``models/``
      prefix is dropped); unknown models pass through without size checks;
    * ``aspect_ratio``: ``generationConfig.imageConfig.aspectRatio``;
    * ``image_size``: ``imageConfig.imageSize`` (``"2K"``...); a model without tiers
      ignores it, with a warning;
    * ``response_modalities``: ``["TEXT", "IMAGE"]``, ``["IMAGE"]``... (any case); an
      answer without the image asked for raises :class:`BlockedError`;
    * ``route_mode``: as for images; sent as the ``X-MaxAPI-Route-Mode`` header;
    * ``system_instruction``: a string or a ``{"parts": [...]}`` content;
    * ``generation_config``: a base ``generationConfig`` (snake_case keys too) that the
      options above override;
    * ``safety_settings``: a list of ``{"category", "threshold"}`` dicts;
    * ``extra_body``: top-level body fields this version does not know, sent as given
      (Google's names: ``{"toolConfig": ...}``); a field an option above sets is refused;
    * ``extra_headers``: as for images (``X-MaxAPI-Async`` and ``X-MaxAPI-Route-Mode`` too
      are the client's: ``wait=False`` and ``route_mode`` set them).
    """

    model: str = _option(DEFAULT_MODEL)
    aspect_ratio: str | None = _option(None)
    image_size: str | None = _option(None)
    response_modalities: Sequence[str] | None = _option(None, converter=_tuple_if_list)
    route_mode: str | None = _option(None)
    system_instruction: str | Mapping[str, Any] | None = _option(None)
    generation_config: Mapping[str, Any] | None = _option(None)
    safety_settings: Sequence[Mapping[str, Any]] | None = _option(None)
    extra_body: Mapping[str, Any] | None = _option(None)
    extra_headers: Mapping[str, str] | None = _option(None)

    def with_route(self, route_mode: str | None) -> ContentOptions:
        """These options, with ``route_mode`` when they name none (the client's default)."""
        if self.route_mode is not None or route_mode is None:
            return self
        return attrs.evolve(self, route_mode=route_mode)


class ContentOptionsDict(TypedDict, total=False):
    """:class:`ContentOptions` as keyword arguments (``**options: Unpack[ContentOptionsDict]``)."""

    model: str
    aspect_ratio: str | None
    image_size: str | None
    response_modalities: Sequence[str] | None
    route_mode: str | None
    system_instruction: str | Mapping[str, Any] | None
    generation_config: Mapping[str, Any] | None
    safety_settings: Sequence[Mapping[str, Any]] | None
    extra_body: Mapping[str, Any] | None
    extra_headers: Mapping[str, str] | None


def options_of(cls: type[T], source: object) -> T:
    """The ``cls`` part of ``source`` (a batch item is its call's options plus more)."""
    return cls(**{a.name: getattr(source, a.name) for a in attrs.fields(cls)})  # type: ignore[arg-type]


def _checked_once(check: Callable[[T], V]) -> Callable[[T], V]:
    """``check``, remembered per options object; an unhashable one is checked each time."""
    remembered = functools.lru_cache(maxsize=256)(check)

    @functools.wraps(check)
    def run(options: T) -> V:
        try:
            return remembered(options)  # hashed once, here
        except TypeError:  # unhashable: a list or a dict among the values
            return check(options)

    return run


def warn_caller(message: str | None) -> None:
    """A :class:`MaxAPIWarning` pointing at the first line outside this package (the caller's)."""
    if message is None:
        return
    level = 1
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("maxapi_async."):
        frame = frame.f_back
        level += 1
    warnings.warn(message, MaxAPIWarning, stacklevel=level)


# -- what passes through: headers and body fields this version does not know -------------

#: Headers nobody may set (``default_headers=``, ``extra_headers=``): the credentials, the
#: ``Idempotency-Key`` every submission carries, and what HTTP itself is framed by.
RESERVED_HEADERS = frozenset(
    {"authorization", "x-goog-api-key", "idempotency-key", "content-type", "content-length", "host",
     "transfer-encoding", "connection"}
)  # fmt: skip
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")


def check_headers(
    argument: str, headers: object, reserved: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``headers`` as a dict, each name an HTTP token and each value printable ASCII.

    A name in :data:`RESERVED_HEADERS`, or in ``reserved`` (lower-case name -> the option
    that sets it), is refused: nothing replaces the credentials or what the client sends
    itself. A value is never echoed in the error (it may be a secret).
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidRequestError(argument, f"must be a dict of header names to values, got {headers!r}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidRequestError(argument, f"{name!r} is not a header name")
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            raise InvalidRequestError(argument, f"{name!r} is the client's own header and cannot be set")
        if reserved is not None and lower in reserved:
            raise InvalidRequestError(argument, f"{name!r} is set by the client: use {reserved[lower]}")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise InvalidRequestError(argument, f"the value of {name!r} must be printable ASCII text")
        checked[name] = value
    return checked


def _check_extra_body(value: object, known: Collection[str]) -> dict[str, Any]:
    """``extra_body`` as a dict of JSON values whose keys no option sets."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequestError("extra_body", f"must be a dict of body fields, got {type(value).__name__}")
    body = dict(value)
    for key in body:
        if isinstance(key, str) and key in known:
            raise InvalidRequestError(
                "extra_body", f"{key!r} is a field this client sets from its options: use the option"
            )
    check_json("extra_body", body)
    return body


# -- images ------------------------------------------------------------------------------


@attrs.frozen
class ImageChecked:
    """What the checks make of :class:`ImageOptions`; shared between calls, never changed."""

    generation: ImageCall
    edit: ImageCall
    #: The optional body fields the options set, in the order they are sent (``extra_body`` last).
    fields: Mapping[str, Any]
    warning: str | None
    #: The call's own headers (``extra_headers``).
    headers: Mapping[str, str] = attrs.field(factory=dict)


#: The fields of an images request the options (and the builders) set.
IMAGE_BODY_FIELDS = frozenset(
    {"model", "prompt", "n", "aspect_ratio", "resolution", "route_mode", "asset_delivery",
     "response_format", "async", "image", "image[]"}
)  # fmt: skip


def _check_choice(argument: str, value: object, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        raise InvalidRequestError(argument, f"unknown value {value!r}", allowed=allowed)


def _check_model(model: object) -> ModelSpec | None:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError("model", "must be a non-empty model id", allowed=tuple(catalog.MODELS))
    return catalog.lookup_model(check_text("model", model))


def _check_ratio(argument: str, ratio: object, spec: ModelSpec | None) -> None:
    if ratio is None:
        return
    if not isinstance(ratio, str):
        raise InvalidRequestError(argument, f"must be a string like '16:9', got {ratio!r}")
    check_text(argument, ratio)
    if spec is not None and ratio not in spec.aspect_ratios:
        raise InvalidRequestError(
            argument, f"{ratio!r} is not supported by {spec.id}", allowed=spec.aspect_ratios
        )


def _check_tier(argument: str, name: str, tier: object, spec: ModelSpec | None, example: str) -> str | None:
    """Check a resolution tier; the warning to give when the model ignores it."""
    if tier is None:
        return None
    if not isinstance(tier, str):
        raise InvalidRequestError(argument, f"must be a string like {example!r}, got {tier!r}")
    check_text(argument, tier)
    if spec is not None and not spec.accepts_resolution:
        return (
            f"{name}={tier!r} is ignored by {spec.id}: its output size is fixed per aspect ratio "
            "(see maxapi_async.MODELS)"
        )
    if spec is not None and tier not in spec.resolutions:
        raise InvalidRequestError(argument, f"{tier!r} is not offered by {spec.id}", allowed=spec.resolutions)
    return None


def _check_image(options: ImageOptions) -> ImageChecked:
    spec = _check_model(options.model)
    n = options.n
    high = spec.max_n if spec is not None else 10
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= high:
        raise InvalidRequestError("n", f"must be an integer from 1 to {high}, got {n!r}")
    _check_ratio("aspect_ratio", options.aspect_ratio, spec)
    warning = _check_tier("resolution", "resolution", options.resolution, spec, "1K")
    _check_choice("route_mode", options.route_mode, ROUTE_MODES)
    _check_choice("asset_delivery", options.asset_delivery, ASSET_DELIVERIES)
    _check_choice("response_format", options.response_format, RESPONSE_FORMATS)
    fields: dict[str, Any] = {
        name: value
        for name in ("aspect_ratio", "resolution", "route_mode", "asset_delivery", "response_format")
        if (value := getattr(options, name)) is not None
    }
    if n != 1:
        fields["n"] = n
    fields.update(_check_extra_body(options.extra_body, IMAGE_BODY_FIELDS))
    headers = check_headers("extra_headers", options.extra_headers)
    call = functools.partial(
        ImageCall, model=options.model, aspect_ratio=options.aspect_ratio, resolution=options.resolution,
        route_mode=options.route_mode, n=n,
    )  # fmt: skip
    return ImageChecked(call("generation"), call("edit"), fields, warning, headers)


#: The checks of :class:`ImageOptions` (raising :class:`InvalidRequestError` naming the option).
check_image_options = _checked_once(_check_image)


# -- generateContent -------------------------------------------------------------------------


@attrs.frozen
class ContentChecked:
    """What the checks make of :class:`ContentOptions` (all but the parts the body converts)."""

    model: str  # the model id, without a ``models/`` prefix
    config: Mapping[str, Any]  # the generationConfig to send (empty: none), never changed
    generation: ImageCall  # the call made without image input
    edit: ImageCall  # and with it
    warning: str | None
    extra_body: Mapping[str, Any] = attrs.field(factory=dict)  # top-level fields, sent as given
    headers: Mapping[str, str] = attrs.field(factory=dict)  # the call's own (extra_headers)


#: The top-level fields of a generateContent body the options set (either spelling).
CONTENT_BODY_FIELDS = frozenset(
    {"contents", "generationConfig", "generation_config", "safetySettings", "safety_settings",
     "systemInstruction", "system_instruction"}
)  # fmt: skip
#: Headers of a generateContent request the client sets, and the option that does.
CONTENT_HEADERS = {"x-maxapi-async": "wait=False", "x-maxapi-route-mode": "route_mode="}


def camel_keys(mapping: Mapping[Any, Any], argument: str) -> dict[str, Any]:
    """``mapping`` with its snake_case keys in Google's camelCase (keys must be strings)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise InvalidRequestError(argument, f"keys must be strings, got {key!r}")
        out[_camel(key) if "_" in key else key] = value
    return out


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


def _generation_config(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequestError("generation_config", f"must be a dict, got {type(value).__name__}")
    config = camel_keys(value, "generation_config")
    for key in ("imageConfig", "thinkingConfig"):
        nested = config.get(key)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise InvalidRequestError("generation_config", f"{key} must be a dict")
            config[key] = camel_keys(nested, "generation_config")
    return config


def _check_content(options: ContentOptions) -> ContentChecked:
    model = options.model
    if not isinstance(model, str) or not model.removeprefix("models/").strip():
        raise InvalidRequestError("model", "must be a non-empty model id", allowed=tuple(catalog.MODELS))
    model_id = check_text("model", model.removeprefix("models/"))
    spec = catalog.lookup_model(model_id)
    _check_choice("route_mode", options.route_mode, ROUTE_MODES)
    config = _generation_config(options.generation_config)
    if options.response_modalities is not None:
        config["responseModalities"] = _check_modalities(options.response_modalities, "response_modalities")
    elif "responseModalities" in config:
        config["responseModalities"] = _check_modalities(config["responseModalities"], "generation_config")
    image_config = dict(config.get("imageConfig") or {})
    if options.aspect_ratio is not None:
        image_config["aspectRatio"] = options.aspect_ratio
    if options.image_size is not None:
        image_config["imageSize"] = options.image_size
    ratio, size = image_config.get("aspectRatio"), image_config.get("imageSize")
    _check_ratio("aspect_ratio" if options.aspect_ratio is not None else "generation_config", ratio, spec)
    size_argument = "image_size" if options.image_size is not None else "generation_config"
    warning = _check_tier(size_argument, "image_size", size, spec, "2K")
    if image_config:
        config["imageConfig"] = image_config
    ratio = ratio if isinstance(ratio, str) else None
    size = size if isinstance(size, str) else None
    return ContentChecked(
        model_id,
        config,
        ImageCall("generation", model_id, ratio, size, options.route_mode),
        ImageCall("edit", model_id, ratio, size, options.route_mode),
        warning,
        _check_extra_body(options.extra_body, CONTENT_BODY_FIELDS),
        check_headers("extra_headers", options.extra_headers, CONTENT_HEADERS),
    )


#: The checks of :class:`ContentOptions` (raising :class:`InvalidRequestError` naming the option).
check_content_options = _checked_once(_check_content)
