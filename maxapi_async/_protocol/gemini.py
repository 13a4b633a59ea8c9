"""Google's ``generateContent`` as MaxAPI serves it: the answer's attrs classes. No I/O.

The Gemini-native endpoint speaks Google's JSON (camelCase). This module holds its answer
classes, :mod:`maxapi_async._protocol.gemini_answer` reads an answer into them (blocks, images,
assets) and :mod:`maxapi_async._protocol.gemini_request` builds the request, the way
:mod:`maxapi_async._protocol.calls` and :mod:`maxapi_async._protocol.openai_answer` hold the
OpenAI-compatible side.

Models have Python names; the converter (:mod:`maxapi_async._protocol.convert`) reads Google's
camelCase keys and also the snake_case spelling of every field (proto JSON allows both),
and keeps unknown keys in ``extra``. A new field of the answer is one line here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import attrs

from .convert import NOT_FROM_JSON, WHOLE_OBJECT, wire_keys
from .models import ImageAsset

__all__ = [
    "ASYNC_HEADER",
    "RESPONSE_MODALITIES",
    "ROUTE_MODE_HEADER",
    "Blob",
    "Candidate",
    "Content",
    "FileData",
    "GenerateContentResponse",
    "Part",
    "PromptFeedback",
    "UsageMetadata",
]

#: Output kinds ``response_modalities`` may name.
RESPONSE_MODALITIES: tuple[str, ...] = ("TEXT", "IMAGE")
ROUTE_MODE_HEADER = "X-MaxAPI-Route-Mode"
ASYNC_HEADER = "X-MaxAPI-Async"

_C = TypeVar("_C", bound=type)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _google_json(cls: _C) -> _C:
    """Mark ``cls`` as read from Google's camelCase keys (or their snake_case spelling)."""
    return wire_keys(_camel)(cls)


@_google_json
@attrs.frozen
class Blob:
    """``inlineData``: base64 ``data`` and its ``mime_type``."""

    data: str = attrs.field(repr=lambda d: f"<{len(d)} base64 chars>")
    mime_type: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@_google_json
@attrs.frozen
class FileData:
    """``fileData``: an image stored elsewhere (MaxAPI's CDN), by URL."""

    file_uri: str
    mime_type: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@_google_json
@attrs.frozen
class Part:
    """One part of a content: text, an inline image or a file reference.

    ``thought`` marks the model's interim work (reasoning text, draft images): never part
    of :attr:`GenerateContentResponse.text` or ``.images``.
    """

    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    thought: bool = False
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def is_image(self) -> bool:
        """Whether this part carries an image (inline or by URL)."""
        return self.inline_data is not None or self.file_data is not None


@_google_json
@attrs.frozen
class Content:
    """A turn: its ``role`` (``"user"`` or ``"model"``) and its parts."""

    role: str | None = None
    parts: list[Part] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@_google_json
@attrs.frozen
class Candidate:
    """One answer of the model, and why it stopped (``finish_reason``)."""

    content: Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    index: int | None = None
    safety_ratings: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@_google_json
@attrs.frozen
class PromptFeedback:
    """Set when the prompt itself was judged: ``block_reason`` says why it was refused."""

    block_reason: str | None = None
    block_reason_message: str | None = None
    safety_ratings: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@_google_json
@attrs.frozen
class UsageMetadata:
    """Token counts; other counters (thoughts, per-modality details) stay in ``extra``."""

    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@_google_json
@attrs.frozen
class GenerateContentResponse:
    """A ``generateContent`` answer, as Google shapes it, plus its decoded images.

    ``images`` holds the final images as :class:`ImageAsset` objects (never the drafts:
    parts marked ``thought``, reachable through :attr:`draft_parts`); the client fills it
    after decoding. ``raw`` is the answer's JSON exactly as received; ``request_id`` is the
    id the service logged the call under.
    """

    candidates: list[Candidate] = attrs.field(factory=list)
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)
    images: list[ImageAsset] = attrs.field(factory=list, metadata=NOT_FROM_JSON)
    request_id: str | None = attrs.field(default=None, metadata=NOT_FROM_JSON)
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False, metadata=WHOLE_OBJECT)
    #: Estimated credits for this call (see :data:`maxapi_async.PRICES`); ``None`` when unknown.
    cost: float | None = attrs.field(default=None, metadata=NOT_FROM_JSON)

    @property
    def parts(self) -> list[Part]:
        """The first candidate's parts, drafts included (empty when there is none)."""
        if not self.candidates or self.candidates[0].content is None:
            return []
        return self.candidates[0].content.parts

    @property
    def text(self) -> str | None:
        """The first candidate's text, thoughts left out; ``None`` when it has none."""
        texts = [p.text for p in self.parts if p.text is not None and not p.thought]
        return "".join(texts) if texts else None

    @property
    def finish_reason(self) -> str | None:
        """Why the first candidate stopped (``"STOP"`` when all went well)."""
        return self.candidates[0].finish_reason if self.candidates else None

    @property
    def block_reason(self) -> str | None:
        """Why the prompt was refused, when it was."""
        return self.prompt_feedback.block_reason if self.prompt_feedback is not None else None

    @property
    def image_parts(self) -> list[Part]:
        """The final image parts of every candidate, in order (drafts left out)."""
        # Read on every call: spelled out (no generator, no ``is_image`` call per part).
        return [
            p
            for candidate in self.candidates
            if candidate.content is not None
            for p in candidate.content.parts
            if not p.thought and (p.inline_data is not None or p.file_data is not None)
        ]

    @property
    def draft_parts(self) -> list[Part]:
        """Interim draft images (parts marked ``thought``), in order."""
        return [p for p in self._all_parts() if p.is_image and p.thought]

    def _all_parts(self) -> Iterator[Part]:
        for candidate in self.candidates:
            if candidate.content is not None:
                yield from candidate.content.parts
