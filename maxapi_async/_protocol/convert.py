"""The one way every JSON answer is read: bytes, one JSON decoder, one cattrs converter.

``decode_json`` turns an answer's bytes into JSON values; ``structure`` turns those into the
attrs classes of the protocol modules, through the one converter configured here. Rules it
applies everywhere:

* Primitive fields are strict: a number where a string belongs is an error,
  not silently turned into ``"3"`` (``bool`` is not accepted as ``int``), and
  a list comes only from a JSON array.
* A class with an ``extra: dict`` field keeps every key it does not name
  there, so unknown fields never break parsing and never get lost.
* A class marked :func:`wire_keys` is read from its keys as spelled on the
  wire (Google's camelCase), and from its field names (proto JSON allows both).
* A field whose metadata is :data:`NOT_FROM_JSON` is never read from the
  answer (the client fills it); one marked :data:`WHOLE_OBJECT` holds the
  object exactly as received.
* Failures become :class:`~maxapi_async.ResponseError` with readable
  ``at $.data[0].url: ...`` lines (cattrs' ``transform_error``).

The converter runs without cattrs' detailed validation: each class's generated function is
a straight line that keeps no error notes, which every answer would pay for. An answer that
fails is structured again by the same converter in detailed mode (a copy, made on the first
failure), whose errors name their paths.

Adding a field to an answer class is the whole change: the converter reads its key.
"""

from __future__ import annotations

import codecs
import functools
import types
from collections.abc import Callable
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
import msgspec
from cattrs.cols import list_structure_factory
from cattrs.gen import make_dict_structure_fn, override

from .errors import ResponseError

__all__ = [
    "NOT_FROM_JSON",
    "WHOLE_OBJECT",
    "Body",
    "converter",
    "decode_json",
    "excerpt",
    "structure",
    "unstructure",
    "wire_keys",
]

T = TypeVar("T")
_C = TypeVar("_C", bound=type)

converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=False)

#: Field metadata: the answer never fills this field (the client does).
NOT_FROM_JSON: dict[str, Any] = {"json": None}
#: Field metadata: this field holds the whole object, exactly as received.
WHOLE_OBJECT: dict[str, Any] = {"json": "*"}


# --------------------------------------------------------------------------
# Bytes to JSON values: the one decoder.


# The decoder is msgspec's: it reads JSON straight from the bytes (json.loads makes a text copy
# first), 0.9 us for a usual generateContent answer against json.loads' 3.0, and 3.5 ms for an
# answer of 8 MB of inline images against 5.4. orjson is as fast on small answers, but holds 13
# times a big body's size while it parses.
_decode = msgspec.json.Decoder().decode
_UTF8_BOM = codecs.BOM_UTF8


class Body:
    """An answer's bytes, handed over once to the code that parses them.

    An answer carrying images inline is megabytes. Whoever holds the answer gives it up
    through a ``Body`` (and keeps no other reference), so :func:`decode_json` holds the only
    copy and lets go of it once it is parsed: the images' base64 is decoded after that,
    never while the body, its strings and the images all exist at once.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def take(self) -> bytes:
        """The bytes, once: the body is empty afterwards (``RuntimeError`` on a second take)."""
        data, self._data = self._data, None
        if data is None:
            raise RuntimeError("this answer's body was taken already")
        return data


def decode_json(body: bytes | Body, *, status: int, request_id: str | None, what: str) -> Any:
    """The JSON value of a 2xx answer's ``body``, or :class:`ResponseError` describing it.

    ``what`` names the answer in the message (``"the images answer is not JSON: ..."``).
    Strict JSON in UTF-8 (a byte order mark is skipped): ``NaN``, a lone surrogate or
    another encoding is not JSON. A :class:`Body` is taken: see there.
    """
    data = body.take() if isinstance(body, Body) else body
    try:
        return _decode(data[3:] if data.startswith(_UTF8_BOM) else data)
    except (msgspec.MsgspecError, RecursionError):  # RecursionError: nested too deep
        raise _not_json(data, status, request_id, what) from None


def excerpt(body: bytes, limit: int = 200) -> str:
    """The start of ``body`` as one line of text, for an error message."""
    text = body[: limit * 4].decode("utf-8", "replace").strip()
    return " ".join(text.split())[:limit]


def _not_json(body: bytes, status: int, request_id: str | None, what: str) -> ResponseError:
    return ResponseError(
        f"the {what} answer is not JSON: {excerpt(body) or '(empty body)'!r}",
        status=status,
        request_id=request_id,
        body=excerpt(body, 2000),
    )


# --------------------------------------------------------------------------
# JSON values to attrs classes: the one converter.
#
# The hook factories take the converter they make hooks for (cattrs passes it), so the
# detailed copy that explains a failure makes its own hooks, with their error notes.


def _strict(kind: type[Any], name: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if type(value) is kind or (kind is float and type(value) is int):
            return value
        raise TypeError(f"expected {name}, got {type(value).__name__}")

    return hook


_PRIMITIVES: dict[type[Any], str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}
for _kind, _name in _PRIMITIVES.items():
    converter.register_structure_hook(_kind, _strict(_kind, _name))


def _any_dict(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


converter.register_structure_hook_func(lambda t: t == dict[str, Any], _any_dict)


def _strict_list_factory(list_type: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Lists come only from JSON arrays (cattrs would otherwise iterate a dict's keys)."""
    inner = list_structure_factory(list_type, conv)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return inner(value, list_type)

    return hook


def _is_list(type_: Any) -> bool:
    return bool(get_origin(type_) is list)


converter.register_structure_hook_factory(_is_list, _strict_list_factory)


def _optional_factory(optional_type: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """``X | None``: the hook for ``X`` looked up once, not on every value as cattrs does.

    For a primitive ``X`` the check is made here, one call per value instead of two.
    """
    (inner_type,) = [arg for arg in get_args(optional_type) if arg is not type(None)]
    name = _PRIMITIVES.get(inner_type)
    if name is not None and inner_type is not float:

        def primitive(value: Any, _: Any) -> Any:
            if value is None or type(value) is inner_type:
                return value
            raise TypeError(f"expected {name}, got {type(value).__name__}")

        return primitive
    if _has_extra(inner_type):  # an answer class: its own hook takes None, one call fewer
        return _class_hook(inner_type, conv, none_ok=True)
    inner = conv.get_structure_hook(inner_type)

    def hook(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return hook


def _is_optional(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) in (Union, types.UnionType) and len(args) == 2 and type(None) in args


converter.register_structure_hook_factory(_is_optional, _optional_factory)


# Classes whose keys are not their field names: the spelling of each class's keys.
_SPELLINGS: dict[type[Any], Callable[[str], str]] = {}


def wire_keys(spell: Callable[[str], str]) -> Callable[[_C], _C]:
    """A class decorator: the class's keys are its field names as ``spell`` writes them.

    The field names themselves are read too, for a key that is absent (Google's camelCase
    keys and their snake_case spelling, which proto JSON also allows).
    """

    def mark(cls: _C) -> _C:
        _SPELLINGS[cls] = spell
        return cls

    return mark


def _has_extra(cls: Any) -> bool:
    return attrs.has(cls) and any(a.name == "extra" for a in attrs.fields(cls))


def _extra_keeping_factory(cls: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Structure ``cls`` from an object, keeping the keys it does not name in ``extra``."""
    return _class_hook(cls, conv, none_ok=False)


def _class_hook(cls: Any, conv: cattrs.Converter, *, none_ok: bool) -> Callable[[Any, Any], Any]:
    """:func:`_extra_keeping_factory`'s hook; ``none_ok``: for ``cls | None``, ``None`` too."""
    spell = _SPELLINGS.get(cls)
    keys: dict[str, str] = {}  # field name -> its key on the wire
    whole: list[str] = []
    overrides: dict[str, Any] = {}
    for field in attrs.fields(cls):
        source = field.metadata.get("json", "")
        if field.name == "extra" or source is None or source == "*":
            overrides[field.name] = override(omit=True)
            if source == "*":
                whole.append(field.name)
            continue
        keys[field.name] = spell(field.name) if spell is not None else field.name
        if keys[field.name] != field.name:
            overrides[field.name] = override(rename=keys[field.name])
    base = make_dict_structure_fn(cls, conv, **overrides)
    known = frozenset(keys.values())
    # A field name that is not its key on the wire, read as that key when the key is absent.
    spellings = {name: key for name, key in keys.items() if key != name}
    spelled = frozenset(spellings)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            if value is None and none_ok:
                return None
            raise TypeError(f"expected an object, got {type(value).__name__}")
        if known.issuperset(value):  # the usual object: every key is a field's
            instance = base(value, cls)
        else:  # field names spelled otherwise (read as their keys), or keys for ``extra``
            data = value
            if spellings and not spelled.isdisjoint(value):
                data = dict(value)
                for name, key in spellings.items():
                    if name in data:
                        data.setdefault(key, data.pop(name))
            instance = base(data, cls)
            # The instance is new and nobody else holds it yet: fill what the wire does not.
            if not known.issuperset(data):
                object.__setattr__(instance, "extra", {k: v for k, v in data.items() if k not in known})
        for name in whole:
            object.__setattr__(instance, name, value)
        return instance

    return hook


# Hooks are generated on first use, not at import (cattrs' code generation costs
# milliseconds): the converter asks this factory for each class the first time it meets it.
converter.register_structure_hook_factory(_has_extra, _extra_keeping_factory)


@functools.lru_cache(maxsize=1)
def _explaining() -> cattrs.Converter:
    """The converter in cattrs' detailed mode, made on the first answer that fails."""
    return converter.copy(detailed_validation=True)


def structure(value: Any, cls: type[T], *, what: str, request_id: str | None = None) -> T:
    """Structure ``value`` into ``cls`` or raise :class:`ResponseError` naming ``what``.

    A failure is structured again in detailed mode, for lines naming each path.
    """
    try:
        return converter.structure(value, cls)
    except Exception as exc:  # every structuring failure is the answer's fault
        failure: Exception = exc
    try:
        _explaining().structure(value, cls)
    except Exception as exc:
        failure = exc
    if isinstance(failure, cattrs.BaseValidationError):
        lines = cattrs.transform_error(failure, path="$")
    else:
        lines = [str(failure)]
    raise ResponseError(
        f"unexpected {what}: " + "; ".join(lines), request_id=request_id, body=value
    ) from failure


def unstructure(value: Any) -> Any:
    """Plain JSON-ready data from attrs instances."""
    return converter.unstructure(value)
