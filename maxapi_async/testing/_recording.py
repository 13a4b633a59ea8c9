"""Requests as the fake received them: :class:`RecordedRequest` and its :class:`RecordedFile` parts.

:func:`record_request` reads an aiohttp request (its JSON body, or the text fields and file parts
of a ``multipart/form-data`` body) into a :class:`RecordedRequest`; :func:`bare_record` keeps
what is known of a request whose body could not be read. The record of the request being
handled is :func:`current_record`, so route handlers read the parsed body from it.
"""

from __future__ import annotations

import base64
import contextvars
import json
import re
import time
from typing import Any, Literal

import attrs
from aiohttp import BodyPartReader, hdrs, web

from ._errors import bad
from ._fields import unknown_fields

__all__ = [
    "IMAGE_FIELD",
    "Origin",
    "RecordedFile",
    "RecordedRequest",
    "bare_record",
    "current_record",
    "record_request",
    "set_current_record",
]

#: Which of the fake's servers a request went to (and a :class:`Fault` applies to).
Origin = Literal["api", "cdn"]

#: The multipart field names that carry a reference image: ``image``, ``image[]``, ``image[0]``...
IMAGE_FIELD = re.compile(r"^image(\[\d*\])?$")

_CURRENT_RECORD: contextvars.ContextVar[RecordedRequest] = contextvars.ContextVar("_CURRENT_RECORD")


@attrs.frozen
class RecordedFile:
    """One file part of a recorded ``multipart/form-data`` request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@attrs.frozen
class RecordedRequest:
    """One request as the fake received it.

    ``headers`` keeps the names as sent (a plain dict; lookups are case-sensitive, repeated
    headers keep the last value). ``json`` is the parsed body when it was valid JSON, else
    ``None``. For ``multipart/form-data`` requests ``form`` holds the text fields and
    ``files`` the file parts, and ``body`` is empty; otherwise ``body`` is the raw body.
    ``received_at`` is :func:`time.monotonic` at arrival. ``request_id`` is the
    ``x-request-id`` the fake answered with; ``origin`` says which server got it.
    ``unknown_fields`` names the body fields the wire spec does not list for the route
    (``"size"``, ``"generationConfig.temperature"``...): assert it is empty to know that your
    code sends only what MaxAPI documents (a fake made with ``strict=True`` refuses them).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    form: dict[str, str]
    files: list[RecordedFile]
    received_at: float
    body: bytes = b""
    request_id: str = ""
    origin: Origin = "api"
    unknown_fields: tuple[str, ...] = ()

    @property
    def prompt(self) -> str | None:
        """The prompt this request carried: the ``prompt`` field (JSON or form), or the text
        parts of a Gemini-native ``contents`` (not the ``thought`` ones), joined by newlines;
        ``None`` when it had none."""
        body = self.json
        if isinstance(body, dict):
            if isinstance(body.get("prompt"), str):
                return str(body["prompt"])
            texts = [
                part["text"]
                for content in body.get("contents") or []
                if isinstance(content, dict)
                for part in content.get("parts") or []
                if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
            ]
            if texts:
                return "\n".join(texts)
        return self.form.get("prompt")

    def to_json(self) -> dict[str, Any]:
        """This record as JSON-ready data (the fake's control API serves it; bytes as base64)."""
        return {
            "request_id": self.request_id,
            "origin": self.origin,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "form": self.form,
            "files": [
                {
                    "field": f.field,
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "size": len(f.data),
                    "data_base64": base64.b64encode(f.data).decode("ascii"),
                }
                for f in self.files
            ],
            "body_base64": base64.b64encode(self.body).decode("ascii"),
            "unknown_fields": list(self.unknown_fields),
            "received_at": self.received_at,
        }

    def header(self, name: str) -> str | None:
        """A header's value looked up case-insensitively, or ``None``."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


def current_record() -> RecordedRequest:
    """The record of the request being handled (set by the middleware, in the handler's task)."""
    return _CURRENT_RECORD.get()


def set_current_record(record: RecordedRequest) -> None:
    """Make ``record`` the :func:`current_record` for the rest of this request's handling."""
    _CURRENT_RECORD.set(record)


def bare_record(origin: Origin, request: web.Request, request_id: str) -> RecordedRequest:
    """A record of ``request`` without its body (for a body that could not be read), received now."""
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query={str(k): v for k, v in request.query.items()},
        headers={str(k): v for k, v in request.headers.items()},
        json=None,
        form={},
        files=[],
        received_at=time.monotonic(),
        request_id=request_id,
        origin=origin,
    )


async def record_request(origin: Origin, request: web.Request, request_id: str) -> RecordedRequest:
    """Read ``request`` whole into a record; a malformed multipart body raises a 400 ``ApiError``."""
    record = bare_record(origin, request, request_id)
    form: dict[str, str] = {}
    files: list[RecordedFile] = []
    body = b""
    parsed: Any = None
    if request.content_type == "multipart/form-data":
        await _read_multipart(request, form, files)
    else:
        body = await request.read()
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
    unknown = unknown_fields(request.method, request.path, parsed, form, [f.field for f in files])
    return attrs.evolve(record, json=parsed, form=form, files=files, body=body, unknown_fields=unknown)


async def _read_multipart(request: web.Request, form: dict[str, str], files: list[RecordedFile]) -> None:
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise bad(None, "nested multipart bodies are not supported")
            data = bytes(await part.read(decode=True))
            name = part.name or ""
            if part.filename is not None or IMAGE_FIELD.match(name) or name == "mask":
                content_type = part.headers.get(hdrs.CONTENT_TYPE)
                files.append(RecordedFile(name, part.filename, content_type, data))
            else:
                form[name] = data.decode(part.get_charset("utf-8"))
    except (ValueError, LookupError, AssertionError) as exc:
        raise bad(None, f"malformed multipart body: {exc}") from exc
