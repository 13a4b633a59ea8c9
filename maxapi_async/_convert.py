"""The one cattrs converter that turns every JSON answer into attrs classes.

Rules it applies everywhere:

* Primitive fields are strict: a number where a string belongs is an error,
  not silently turned into ``"3"`` (``bool`` is not accepted as ``int``), and
  a list comes only from a JSON array.
* A class with an ``extra: dict`` field keeps every key it does not name
  there, so unknown fields never break parsing and never get lost.
* Failures become :class:`~maxapi_async.ResponseError` with readable
  ``at $.data[0].url: ...`` lines (cattrs' ``transform_error``).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.gen import make_dict_structure_fn, override

from ._errors import ResponseError

__all__ = ["converter", "structure", "unstructure"]

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False)


def _strict(kind: type[Any], name: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if type(value) is kind or (kind is float and type(value) is int):
            return value
        raise TypeError(f"expected {name}, got {type(value).__name__}")

    return hook


converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))


def _any_dict(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


converter.register_structure_hook_func(lambda t: t == dict[str, Any], _any_dict)


def _strict_list_factory(list_type: Any) -> Callable[[Any, Any], Any]:
    """Lists come only from JSON arrays (cattrs would otherwise iterate a dict's keys)."""
    inner = list_structure_factory(list_type, converter)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return inner(value, list_type)

    return hook


def _is_list(type_: Any) -> bool:
    return bool(get_origin(type_) is list)


converter.register_structure_hook_factory(_is_list, _strict_list_factory)


def _optional_factory(optional_type: Any) -> Callable[[Any, Any], Any]:
    """``X | None``: the hook for ``X`` looked up once, not on every value as cattrs does."""
    (inner_type,) = [arg for arg in get_args(optional_type) if arg is not type(None)]
    inner = converter.get_structure_hook(inner_type)

    def hook(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return hook


def _is_optional(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) in (Union, types.UnionType) and len(args) == 2 and type(None) in args


converter.register_structure_hook_factory(_is_optional, _optional_factory)


def _has_extra(cls: Any) -> bool:
    return attrs.has(cls) and any(a.name == "extra" for a in attrs.fields(cls))


def _extra_keeping_factory(cls: Any) -> Callable[[Any, Any], Any]:
    """Structure ``cls`` from a dict and keep the keys it does not name in ``extra``."""
    renames: dict[str, str] = dict(getattr(cls, "__wire_names__", {}))
    overrides: dict[str, Any] = {"extra": override(omit=True)}
    for field_name, wire_name in renames.items():
        overrides[field_name] = override(rename=wire_name)
    base = make_dict_structure_fn(cls, converter, **overrides)
    known = frozenset(renames.get(a.name, a.name) for a in attrs.fields(cls) if a.name != "extra")

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        instance = base(value, cls)
        if len(value) > len(known) or not known.issuperset(value):
            extra = {k: v for k, v in value.items() if k not in known}
            object.__setattr__(instance, "extra", extra)
        return instance

    return hook


converter.register_structure_hook_factory(_has_extra, _extra_keeping_factory)


def structure(value: Any, cls: type[T], *, what: str, request_id: str | None = None) -> T:
    """Structure ``value`` into ``cls`` or raise :class:`ResponseError` naming ``what``."""
    try:
        return converter.structure(value, cls)
    except Exception as exc:  # every structuring failure is the answer's fault
        if isinstance(exc, cattrs.BaseValidationError):
            lines = cattrs.transform_error(exc, path="$")
        else:
            lines = [str(exc)]
        raise ResponseError(
            f"unexpected {what}: " + "; ".join(lines), request_id=request_id, body=value
        ) from exc


def unstructure(value: Any) -> Any:
    """Plain JSON-ready data from attrs instances."""
    return converter.unstructure(value)


_A = TypeVar("_A", bound=attrs.AttrsInstance)


def slot_maker(cls: type[_A], *names: str, unset: tuple[str, ...] = ()) -> Callable[..., _A]:
    """A positional constructor for the frozen, slotted attrs class ``cls``, for hot paths.

    ``make(*values)`` gives the instance ``cls(**dict(zip(names, values)))`` gives, every
    other field at its default, for about two thirds of the cost: a frozen class's
    ``__init__`` calls ``object.__setattr__`` per field, this sets each slot through its
    descriptor. ``names`` are ``__init__``'s names (aliases). Refused (``TypeError``) for a
    class or field that runs code on construction: validators, converters, post-init hooks,
    factories that take ``self``.

    Fields named in ``unset`` are left empty: only for a class that fills them on first
    read (a ``__getattr__``, called for an empty slot).
    """
    if not attrs.has(cls):
        raise TypeError(f"{cls.__name__} is not an attrs class")
    if any(hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        raise TypeError(f"{cls.__name__} runs code on construction")
    fields = attrs.fields(cls)
    slots = getattr(cls, "__slots__", ())
    unknown = (set(names) - {f.alias for f in fields}) | (set(unset) - {f.name for f in fields})
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    if unset and "__getattr__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} cannot fill an empty field: it has no __getattr__")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    self = _new(_cls)"]
    for i, field in enumerate(fields):
        if field.name not in slots or field.validator is not None or field.converter is not None:
            raise TypeError(f"{cls.__name__}.{field.name} is not a plain slot")
        if field.name in unset:
            continue
        scope[f"_set{i}"] = getattr(cls, field.name).__set__
        if field.alias in names:
            value = field.alias
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            if field.default.takes_self:
                raise TypeError(f"{cls.__name__}.{field.name}'s default needs the instance")
            scope[f"_default{i}"] = field.default.factory
            value = f"_default{i}()"
        elif field.default is attrs.NOTHING:
            raise TypeError(f"{cls.__name__}.{field.name} has no default: name it")
        else:
            scope[f"_default{i}"] = field.default
            value = f"_default{i}"
        lines.append(f"    _set{i}(self, {value})")
    lines.append("    return self")
    exec("\n".join(lines), scope)  # our own source, as attrs makes __init__
    make: Callable[..., _A] = scope["make"]
    make.__qualname__ = f"slot_maker({cls.__name__})"
    return make
