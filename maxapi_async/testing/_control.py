"""The fake's control API: JSON over HTTP under ``/_fake/``, for test suites in any language.

The same control a Python test has through :class:`FakeMaxAPI`'s methods, on the API origin
(no key needed; these requests are neither recorded nor faulted):

* ``GET /_fake/state``: addresses, counters and the timing options;
* ``GET /_fake/requests?origin=api|cdn&path=PREFIX&min=N&timeout=S``: the recorded requests
  (:meth:`RecordedRequest.to_json`); with ``min``, waits until at least N have arrived
  (408 after ``timeout`` seconds, default 10);
* ``POST /_fake/faults``: queue a :class:`Fault` from JSON (:func:`fault_from_json`);
  ``DELETE /_fake/faults``: drop every pending fault, task failure and block;
* ``POST /_fake/task-failures``: ``{"reason", "message", "times"}`` (:meth:`FakeMaxAPI.fail_tasks`);
* ``POST /_fake/blocks``: ``{"reason", "prompt_feedback", "times"}`` (:meth:`FakeMaxAPI.block_next`);
* ``PATCH /_fake/options``: set options (:data:`OPTIONS`), e.g. ``{"complete_after_polls": 0}``;
* ``POST /_fake/reset``: forget recorded requests and every script.

Errors are OpenAI-shaped JSON bodies with a 400 (or 404 for an unknown control path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import attrs
from aiohttp import web

from ._errors import ApiError, bad
from ._faults import Fault
from ._openai_routes import POLL_URL_STYLES, TASK_STYLES
from ._recording import Origin, RecordedRequest
from ._task_queue import check_timing

__all__ = [
    "CONTROL_PREFIX",
    "OPTIONS",
    "ControlHost",
    "RequestMatch",
    "add_control_routes",
    "fault_from_json",
]

#: Where the control API lives on the API origin.
CONTROL_PREFIX: Final = "/_fake"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number_or_none(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0)


def _timing(name: str) -> Callable[[object], bool]:
    def valid(value: object) -> bool:
        if isinstance(value, dict):
            return False
        try:
            check_timing(name, value)
        except ValueError:
            return False
        return True

    return valid


#: The options ``PATCH /_fake/options`` may set, each with its check.
OPTIONS: Final[Mapping[str, Callable[[object], bool]]] = {
    "complete_after_polls": _timing("complete_after_polls"),
    "complete_after_seconds": _timing("complete_after_seconds"),
    "poll_retry_after": _number_or_none,
    "honour_idempotency": lambda v: isinstance(v, bool),
    "strict": lambda v: isinstance(v, bool),
    "include_usage": lambda v: isinstance(v, bool),
    "task_style": lambda v: v in TASK_STYLES,
    "poll_url_style": lambda v: v in POLL_URL_STYLES,
    "task_http_status": lambda v: _is_int(v) and 200 <= v < 300,  # type: ignore[operator]
    "gemini_block_reason": lambda v: v is None or isinstance(v, str),
    "gemini_block_in_prompt": lambda v: isinstance(v, bool),
    "gemini_file_data": lambda v: isinstance(v, bool),
    "gemini_thought_drafts": lambda v: _is_int(v) and v >= 0,  # type: ignore[operator]
    "gemini_snake_case": lambda v: isinstance(v, bool),
}


@attrs.frozen
class RequestMatch:
    """A :class:`Fault` predicate written as data (the control API's ``"match"`` object).

    True for a request whose prompt contains ``prompt_contains``, whose body (JSON or form
    text) contains ``body_contains``, and which carries each of ``headers`` (names in any
    case); an unset condition always holds.
    """

    prompt_contains: str | None = None
    body_contains: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def __call__(self, record: RecordedRequest) -> bool:
        if self.prompt_contains is not None and self.prompt_contains not in (record.prompt or ""):
            return False
        if self.body_contains is not None:
            text = record.body.decode("utf-8", "replace") + "\n".join(record.form.values())
            if self.body_contains not in text:
                return False
        return all(record.header(name) == value for name, value in self.headers.items())


_FAULT_TYPES: Final[Mapping[str, Callable[[object], bool]]] = {
    "status": lambda v: v is None or (_is_int(v) and 100 <= v <= 599),  # type: ignore[operator]
    "body": lambda v: True,
    "headers": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in [*v, *v.values()]),
    "delay": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
    "times": lambda v: v is None or (_is_int(v) and v >= 1),  # type: ignore[operator]
    "skip": lambda v: _is_int(v) and v >= 0,  # type: ignore[operator]
    "path": lambda v: v is None or isinstance(v, str),
    "method": lambda v: v is None or isinstance(v, str),
    "origin": lambda v: v in ("api", "cdn"),
    "reset": lambda v: isinstance(v, bool),
    "after_handler": lambda v: v in (None, "reset", "truncate", "abort_mid_body"),
    "match": lambda v: isinstance(v, dict),
}
_MATCH_TYPES: Final[Mapping[str, Callable[[object], bool]]] = {
    "prompt_contains": lambda v: isinstance(v, str),
    "body_contains": lambda v: isinstance(v, str),
    "headers": _FAULT_TYPES["headers"],
}


def _checked(doc: object, types: Mapping[str, Callable[[object], bool]], what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise bad(None, f"{what} must be a JSON object")
    for key, value in doc.items():
        if key not in types:
            raise bad(key, f"{what}: unknown field {key!r}; known: {', '.join(types)}")
        if not types[key](value):
            raise bad(key, f"{what}: invalid value for {key!r}: {value!r}")
    return dict(doc)


def fault_from_json(doc: object) -> Fault:
    """A :class:`Fault` from the control API's JSON: :class:`Fault`'s fields by name, with
    ``match`` an object of :class:`RequestMatch`'s fields; a 400 ``ApiError`` otherwise."""
    fields = _checked(doc, _FAULT_TYPES, "fault")
    if "match" in fields:
        fields["match"] = RequestMatch(**_checked(fields["match"], _MATCH_TYPES, "fault.match"))
    return Fault(**fields)


def _fault_json(fault: Fault) -> dict[str, Any]:
    doc = attrs.asdict(fault, recurse=False)
    doc["headers"] = dict(fault.headers)
    match = fault.match
    doc["match"] = (
        attrs.asdict(match) if isinstance(match, RequestMatch) else (None if match is None else "<function>")
    )
    if isinstance(fault.body, bytes):
        doc["body"] = fault.body.decode("utf-8", "replace")
    return doc


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad(None, "the body must be JSON") from exc


class ControlHost(Protocol):
    """What the control API uses on the fake (see :class:`FakeMaxAPI`); options are set by name."""

    requests: list[RecordedRequest]
    cdn_requests: list[RecordedRequest]
    created_tasks: int
    repeated_submissions: int

    @property
    def base_url(self) -> str: ...

    @property
    def cdn_url(self) -> str: ...

    @property
    def mirror_url(self) -> str: ...

    def add_fault(self, fault: Fault) -> Fault: ...

    def pending_faults(self) -> list[Fault]: ...

    def clear_faults(self) -> None: ...

    def clear(self) -> None: ...

    def fail_tasks(self, reason: str = ..., message: str | None = ..., *, times: int = ...) -> None: ...

    def block_next(self, reason: str = ..., *, prompt_feedback: bool = ..., times: int = ...) -> None: ...

    async def wait_for_requests(
        self,
        n: int = ...,
        *,
        path: str | None = ...,
        match: Callable[[RecordedRequest], bool] | None = ...,
        origin: Origin = ...,
        timeout: float = ...,
    ) -> list[RecordedRequest]: ...


def add_control_routes(router: web.UrlDispatcher, fake: ControlHost) -> None:
    """Serve the control API for ``fake`` (a :class:`FakeMaxAPI`) under :data:`CONTROL_PREFIX`."""

    async def state(request: web.Request) -> web.Response:
        options = {name: getattr(fake, name) for name in OPTIONS}
        return web.json_response(
            {
                "base_url": fake.base_url,
                "cdn_url": fake.cdn_url,
                "mirror_url": fake.mirror_url,
                "requests": len(fake.requests),
                "cdn_requests": len(fake.cdn_requests),
                "created_tasks": fake.created_tasks,
                "repeated_submissions": fake.repeated_submissions,
                "pending_faults": [_fault_json(f) for f in fake.pending_faults()],
                "options": {k: v for k, v in options.items() if not callable(v)},
            }
        )

    async def requests(request: web.Request) -> web.Response:
        query = request.query
        origin = query.get("origin", "api")
        if origin not in ("api", "cdn"):
            raise bad("origin", "origin must be 'api' or 'cdn'")
        path = query.get("path")
        try:
            wanted = int(query.get("min", "0"))
            timeout = float(query.get("timeout", "10"))
        except ValueError as exc:
            raise bad(None, "min must be a whole number and timeout a number of seconds") from exc
        if wanted < 0 or not 0 <= timeout <= 600:
            raise bad(None, "min must be >= 0 and timeout between 0 and 600 seconds")
        try:
            found = await fake.wait_for_requests(
                wanted, path=path, origin="cdn" if origin == "cdn" else "api", timeout=timeout
            )
        except TimeoutError as exc:
            raise ApiError(408, str(exc), code="timeout") from exc
        return web.json_response({"requests": [r.to_json() for r in found]})

    async def add_fault(request: web.Request) -> web.Response:
        fault = fault_from_json(await _json_body(request))
        try:
            fake.add_fault(fault)
        except ValueError as exc:
            raise bad(None, str(exc)) from exc
        return web.json_response({"fault": _fault_json(fault)}, status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        fake.clear_faults()
        return web.json_response({"cleared": True})

    async def task_failures(request: web.Request) -> web.Response:
        types = {
            "reason": lambda v: isinstance(v, str) and bool(v),
            "message": lambda v: v is None or isinstance(v, str),
            "times": lambda v: _is_int(v) and v >= 1,
        }
        doc = _checked(await _json_body(request), types, "task failure")
        fake.fail_tasks(
            doc.get("reason", "CONTENT_MODERATION"), doc.get("message"), times=doc.get("times", 1)
        )
        return web.json_response({"scripted": doc.get("times", 1)}, status=201)

    async def blocks(request: web.Request) -> web.Response:
        types = {
            "reason": lambda v: isinstance(v, str) and bool(v),
            "prompt_feedback": lambda v: isinstance(v, bool),
            "times": lambda v: _is_int(v) and v >= 1,
        }
        doc = _checked(await _json_body(request), types, "block")
        fake.block_next(
            doc.get("reason", "IMAGE_SAFETY"),
            prompt_feedback=doc.get("prompt_feedback", False),
            times=doc.get("times", 1),
        )
        return web.json_response({"scripted": doc.get("times", 1)}, status=201)

    async def options(request: web.Request) -> web.Response:
        doc = _checked(await _json_body(request), OPTIONS, "options")
        for name, value in doc.items():
            setattr(fake, name, value)
        return await state(request)

    async def reset(request: web.Request) -> web.Response:
        fake.clear()
        return web.json_response({"reset": True})

    async def unknown(request: web.Request) -> web.Response:
        raise ApiError(404, f"No control endpoint {request.method} {request.path}.", code="not_found")

    prefix = CONTROL_PREFIX
    router.add_get(f"{prefix}/state", state)
    router.add_get(f"{prefix}/requests", requests)
    router.add_post(f"{prefix}/faults", add_fault)
    router.add_delete(f"{prefix}/faults", clear_faults)
    router.add_post(f"{prefix}/task-failures", task_failures)
    router.add_post(f"{prefix}/blocks", blocks)
    router.add_patch(f"{prefix}/options", options)
    router.add_post(f"{prefix}/reset", reset)
    router.add_route("*", f"{prefix}/{{tail:.*}}", unknown)
