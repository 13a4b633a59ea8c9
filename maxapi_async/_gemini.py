"""Google's ``generateContent`` as MaxAPI serves it: the answer's models, reading it, blocks. No I/O.

The Gemini-native endpoint speaks Google's JSON (camelCase); this module and
:mod:`maxapi_async._gemini_request` (contents and the request) hold all of that knowledge, the
way :mod:`maxapi_async._protocol` holds the OpenAI-compatible side. The client reads an answer
in this order (each step is a pure function here)::

    obj = <send the request, then decode_json>
    read = read_url_answer(obj, ...)   # the usual answer by URL: (response, assets), done
    response = parse_generate_content(obj, request_id=rid)                   # any other
    check_blocked(response, response_modalities=requested_modalities(spec), request_id=rid)
    decoded = decode_inline_images(response, request_id=rid)       # in a thread when big
    assets = make_native_assets(response, decoded, call=spec.call, fetcher=..., received_at=now)
    return with_images(response, assets)

The three steps after parsing also take ``parts=response.image_parts``, computed once for
all of them (each walks the candidates' parts otherwise); ``parse_with_image_parts`` gives
the answer and its image parts in one walk.

Models have Python names; the converter reads Google's camelCase keys and also the snake_case
spelling of every field it names (proto JSON allows both), and keeps unknown keys in ``extra``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
from cattrs.gen import make_dict_structure_fn, override

from ._convert import converter, slot_maker, structure
from ._errors import BlockedError, ResponseError
from ._models import ASSET_TTL, ImageAsset, _AssetFetcher
from ._protocol import ImageCall, decode_b64, inline_asset, url_asset

__all__ = [
    "ASYNC_HEADER",
    "RESPONSE_MODALITIES",
    "ROUTE_MODE_HEADER",
    "Blob",
    "BlockedError",
    "Candidate",
    "Content",
    "FileData",
    "GenerateContentResponse",
    "Part",
    "PromptFeedback",
    "UsageMetadata",
    "check_blocked",
    "decode_inline_images",
    "image_parts",
    "inline_payloads",
    "make_native_assets",
    "parse_generate_content",
    "parse_with_image_parts",
    "read_url_answer",
    "with_images",
]

#: Output kinds ``response_modalities`` may name.
RESPONSE_MODALITIES: tuple[str, ...] = ("TEXT", "IMAGE")
ROUTE_MODE_HEADER = "X-MaxAPI-Route-Mode"
ASYNC_HEADER = "X-MaxAPI-Async"

#: Finish reasons that mean "the model finished normally"; any other explains a missing image.
_NORMAL_FINISH = frozenset({"STOP", "FINISH_REASON_UNSPECIFIED"})

_REASONS = {
    "SAFETY": "flagged by the safety filters",
    "IMAGE_SAFETY": "the image was flagged by the safety filters",
    "PROHIBITED_CONTENT": "prohibited content",
    "IMAGE_PROHIBITED_CONTENT": "the image showed prohibited content",
    "RECITATION": "too close to existing material",
    "IMAGE_RECITATION": "the image was too close to existing material",
    "BLOCKLIST": "a blocked term",
    "SPII": "sensitive personal information",
    "NO_IMAGE": "the model produced no image",
    "IMAGE_OTHER": "the image was withheld for another reason",
    "OTHER": "stopped for another reason",
    "MAX_TOKENS": "the output token limit was reached",
}


# --------------------------------------------------------------------------
# Answer models.


@attrs.frozen
class Blob:
    """``inlineData``: base64 ``data`` and its ``mime_type``."""

    data: str = attrs.field(repr=lambda d: f"<{len(d)} base64 chars>")
    mime_type: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class FileData:
    """``fileData``: an image stored elsewhere (MaxAPI's CDN), by URL."""

    file_uri: str
    mime_type: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


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


@attrs.frozen
class Content:
    """A turn: its ``role`` (``"user"`` or ``"model"``) and its parts."""

    role: str | None = None
    parts: list[Part] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Candidate:
    """One answer of the model, and why it stopped (``finish_reason``)."""

    content: Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    index: int | None = None
    safety_ratings: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class PromptFeedback:
    """Set when the prompt itself was judged: ``block_reason`` says why it was refused."""

    block_reason: str | None = None
    block_reason_message: str | None = None
    safety_ratings: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class UsageMetadata:
    """Token counts; other counters (thoughts, per-modality details) stay in ``extra``."""

    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class GenerateContentResponse:
    """A ``generateContent`` answer, as Google shapes it, plus its decoded images.

    ``images`` holds the final images as :class:`ImageAsset` objects (never the drafts:
    parts marked ``thought``, reachable through :attr:`draft_parts`); the client fills it
    after decoding. ``raw`` is the answer's JSON exactly as received; ``request_id`` is the
    id the service logged the call under.

    The usual answer (its images on the CDN) structures ``candidates``,
    ``prompt_feedback`` and ``usage_metadata`` on first read, since most callers read
    only ``images``: they, equality, ``repr``, pickling and ``attrs`` functions are the
    same either way.
    """

    candidates: list[Candidate] = attrs.field(factory=list)
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)
    images: list[ImageAsset] = attrs.field(factory=list)
    request_id: str | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    #: Estimated credits for this call (see :data:`maxapi_async.PRICES`); ``None`` when unknown.
    cost: float | None = None

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

    def _repr_html_(self) -> str:
        """Jupyter: the final images as a grid of thumbnails, with the text and finish reason."""
        from ._display import content_response_html

        return content_response_html(self)

    if not TYPE_CHECKING:  # type checkers keep flagging unknown attributes

        def __getattr__(self, name: str) -> Any:
            # Only reached for a name with no value: an empty slot of a field that
            # read_url_answer left to first read, or a name the class does not have.
            if name in _DEFERRED:
                _fill_deferred(self)
                return object.__getattribute__(self, name)
            raise AttributeError(  # name and obj: Python's "Did you mean" suggestions still work
                f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
            )


# --------------------------------------------------------------------------
# Structuring: camelCase on the wire, snake_case accepted, unknown keys kept.

_T = TypeVar("_T", bound=attrs.AttrsInstance)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _wire_names(cls: type[Any], omit: tuple[str, ...]) -> dict[str, str]:
    """{field name: camelCase key} for the fields the wire fills."""
    return {a.name: _camel(a.name) for a in attrs.fields(cls) if a.name != "extra" and a.name not in omit}


def _google_json_hook(
    cls: type[_T],
    omit: tuple[str, ...] = (),
    after: Callable[[_T, dict[str, Any]], None] | None = None,
) -> Callable[[Any, Any], _T]:
    """Structure ``cls`` from camelCase keys (or their snake_case spelling).

    ``omit`` names fields the wire never fills; ``after`` sees the built instance and the
    dict as received.
    """
    wire = _wire_names(cls, omit)
    overrides: dict[str, Any] = {name: override(omit=True) for name in (*omit, "extra")}
    overrides.update({name: override(rename=key) for name, key in wire.items() if key != name})
    base = make_dict_structure_fn(cls, converter, **overrides)
    known = frozenset(wire.values())
    snake = {name: key for name, key in wire.items() if key != name}
    snake_keys = frozenset(snake)

    def hook(value: Any, _: Any) -> _T:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        data = value
        if not snake_keys.isdisjoint(value):
            data = dict(value)
            for name, key in snake.items():
                if name in data:
                    data.setdefault(key, data.pop(name))
        instance = base(data, cls)
        if len(data) > len(known) or not known.issuperset(data):
            object.__setattr__(instance, "extra", {k: v for k, v in data.items() if k not in known})
        if after is not None:
            after(instance, value)
        return instance

    return hook


def _keep_raw(response: GenerateContentResponse, value: dict[str, Any]) -> None:
    object.__setattr__(response, "raw", value)


# Each class: the fields the wire never fills, and what to do after structuring.
_GOOGLE_JSON: dict[type[Any], tuple[tuple[str, ...], Callable[[Any, dict[str, Any]], None] | None]] = {
    Blob: ((), None),
    FileData: ((), None),
    Part: ((), None),
    Content: ((), None),
    Candidate: ((), None),
    PromptFeedback: ((), None),
    UsageMetadata: ((), None),
    GenerateContentResponse: (("images", "request_id", "raw", "cost"), _keep_raw),
}
# The structuring functions are generated on first use, not at import (cattrs' code
# generation costs milliseconds): the converter asks this factory for each class the
# first time it meets it, the contained classes' hooks included.
converter.register_structure_hook_factory(
    lambda t: t in _GOOGLE_JSON, lambda t: _google_json_hook(t, *_GOOGLE_JSON[t])
)


# --------------------------------------------------------------------------
# The common answer, built by hand.
#
# Every call reads one answer on the event loop, and the converter's generic path runs the
# hook above once per nested class (seven of them for the usual answer). The usual answer
# (camelCase keys the models name, every value of its type) is built directly instead; the
# instance is the one the converter would build. Anything else (a snake_case spelling to
# rename, an unknown key to keep in ``extra``, a wrong type to explain) is left to it. The
# checks accept at most what the converter's strict hooks accept (``type(x) is int``: a
# bool is not an int), never more.

# Each class's camelCase keys (a new field's key stays out until the builder fills it).
_ANSWER_KEYS = frozenset({"candidates", "promptFeedback", "usageMetadata", "modelVersion", "responseId"})
_CANDIDATE_KEYS = frozenset({"content", "finishReason", "finishMessage", "index", "safetyRatings"})
_CONTENT_KEYS = frozenset({"role", "parts"})
_PART_KEYS = frozenset({"text", "inlineData", "fileData", "thought"})
_BLOB_KEYS = frozenset({"mimeType", "data"})
_FILE_KEYS = frozenset({"mimeType", "fileUri"})
_FEEDBACK_KEYS = frozenset({"blockReason", "blockReasonMessage", "safetyRatings"})
_USAGE_KEYS = frozenset({"promptTokenCount", "candidatesTokenCount", "totalTokenCount"})
_STR_OR_NONE = (str, type(None))
_INT_OR_NONE = (int, type(None))


# The builder's constructors: the instances the classes make, for two thirds of the cost.
_make_response = slot_maker(
    GenerateContentResponse,
    "candidates",
    "prompt_feedback",
    "usage_metadata",
    "model_version",
    "response_id",
    "raw",
)
_make_candidate = slot_maker(
    Candidate, "content", "finish_reason", "finish_message", "index", "safety_ratings"
)
_make_content = slot_maker(Content, "role", "parts")
_make_part = slot_maker(Part, "text", "inline_data", "file_data", "thought")
_make_blob = slot_maker(Blob, "data", "mime_type")
_make_file = slot_maker(FileData, "file_uri", "mime_type")
_make_feedback = slot_maker(PromptFeedback, "block_reason", "block_reason_message", "safety_ratings")
_make_usage = slot_maker(UsageMetadata, "prompt_token_count", "candidates_token_count", "total_token_count")


class _Uncommon(Exception):
    """Not the common shape: :func:`_common_generate_content` leaves the answer to the converter."""


def _common_generate_content(
    obj: Any, image_parts: list[Part] | None = None
) -> GenerateContentResponse | None:
    """The usual ``generateContent`` answer built by hand, as the converter builds it; else ``None``.

    ``raw`` is ``obj`` itself and every ``extra`` is empty, as the converter leaves them for
    an answer without unknown keys. An empty ``fileUri`` is left to the converter too, so
    an answer built here never needs :func:`parse_generate_content`'s walk over its parts.
    The answer's :attr:`~GenerateContentResponse.image_parts` are appended to
    ``image_parts`` as they are built (its content is undefined when ``None`` is returned).
    """
    if type(obj) is not dict or not _ANSWER_KEYS.issuperset(obj):
        return None
    try:
        return _common_answer(obj, [] if image_parts is None else image_parts)
    except _Uncommon:
        return None


def _common_answer(obj: dict[str, Any], image_parts: list[Part]) -> GenerateContentResponse:
    items, model_version, response_id = _answer_fields(obj)
    candidates: list[Candidate] = []
    for item in items:
        content, finish_reason, finish_message, index, ratings = _candidate_fields(item)
        candidates.append(
            _make_candidate(
                None if content is None else _common_content(content, image_parts),
                finish_reason,
                finish_message,
                index,
                None if ratings is None else _common_ratings(ratings),
            )
        )
    feedback, usage = obj.get("promptFeedback"), obj.get("usageMetadata")
    return _make_response(
        candidates,
        None if feedback is None else _common_feedback(feedback),
        None if usage is None else _make_usage(*_usage_fields(usage)),
        model_version,
        response_id,
        obj,
    )


def _common_content(value: object, image_parts: list[Part]) -> Content:
    role, items = _content_fields(value)
    parts: list[Part] = []
    for item in items:
        text, inline, file, thought = _part_fields(item)
        part = _make_part(
            text,
            None if inline is None else _common_blob(inline),
            None if file is None else _make_file(*_file_fields(file)),
            thought,
        )
        parts.append(part)
        if not thought and (inline is not None or file is not None):
            image_parts.append(part)
    return _make_content(role, parts)


# Each class's checks, shared by the builder and read_url_answer: the values of an object's
# fields, or _Uncommon. ``.get(key, [])``: a missing list is the field's empty default, a
# ``null`` one an error.


def _answer_fields(obj: dict[str, Any]) -> tuple[list[Any], str | None, str | None]:
    items, model_version, response_id = (
        obj.get("candidates", []),
        obj.get("modelVersion"),
        obj.get("responseId"),
    )
    if (
        type(items) is not list
        or type(model_version) not in _STR_OR_NONE
        or type(response_id) not in _STR_OR_NONE
    ):
        raise _Uncommon
    return items, model_version, response_id


def _candidate_fields(item: object) -> tuple[Any, str | None, str | None, int | None, Any]:
    if type(item) is not dict or not _CANDIDATE_KEYS.issuperset(item):
        raise _Uncommon
    content, ratings = item.get("content"), item.get("safetyRatings")
    finish_reason, finish_message, index = (
        item.get("finishReason"),
        item.get("finishMessage"),
        item.get("index"),
    )
    if (
        type(finish_reason) not in _STR_OR_NONE
        or type(finish_message) not in _STR_OR_NONE
        or type(index) not in _INT_OR_NONE
    ):
        raise _Uncommon
    return content, finish_reason, finish_message, index, ratings


def _content_fields(value: object) -> tuple[str | None, list[Any]]:
    if type(value) is not dict or not _CONTENT_KEYS.issuperset(value):
        raise _Uncommon
    role, items = value.get("role"), value.get("parts", [])
    if type(role) not in _STR_OR_NONE or type(items) is not list:
        raise _Uncommon
    return role, items


def _part_fields(item: object) -> tuple[str | None, Any, Any, bool]:
    if type(item) is not dict or not _PART_KEYS.issuperset(item):
        raise _Uncommon
    text, inline, file, thought = (
        item.get("text"),
        item.get("inlineData"),
        item.get("fileData"),
        item.get("thought", False),
    )
    if type(text) not in _STR_OR_NONE or type(thought) is not bool:
        raise _Uncommon
    return text, inline, file, thought


def _file_fields(value: object) -> tuple[str, str | None]:
    if type(value) is not dict or not _FILE_KEYS.issuperset(value):
        raise _Uncommon
    file_uri, mime_type = value.get("fileUri"), value.get("mimeType")
    # An empty fileUri (an error for a final image) goes to the converter and the check after it.
    if type(file_uri) is not str or not file_uri or type(mime_type) not in _STR_OR_NONE:
        raise _Uncommon
    return file_uri, mime_type


def _usage_fields(value: object) -> tuple[int | None, int | None, int | None]:
    if type(value) is not dict or not _USAGE_KEYS.issuperset(value):
        raise _Uncommon
    prompt, candidates, total = (
        value.get("promptTokenCount"),
        value.get("candidatesTokenCount"),
        value.get("totalTokenCount"),
    )
    if (
        type(prompt) not in _INT_OR_NONE
        or type(candidates) not in _INT_OR_NONE
        or type(total) not in _INT_OR_NONE
    ):
        raise _Uncommon
    return prompt, candidates, total


def _common_blob(value: object) -> Blob:
    if type(value) is not dict or not _BLOB_KEYS.issuperset(value):
        raise _Uncommon
    data, mime_type = value.get("data"), value.get("mimeType")
    if type(data) is not str or type(mime_type) not in _STR_OR_NONE:
        raise _Uncommon
    return _make_blob(data, mime_type)


def _common_feedback(value: object) -> PromptFeedback:
    if type(value) is not dict or not _FEEDBACK_KEYS.issuperset(value):
        raise _Uncommon
    reason, message, ratings = (
        value.get("blockReason"),
        value.get("blockReasonMessage"),
        value.get("safetyRatings"),
    )
    if type(reason) not in _STR_OR_NONE or type(message) not in _STR_OR_NONE:
        raise _Uncommon
    return _make_feedback(reason, message, None if ratings is None else _common_ratings(ratings))


def _common_ratings(value: object) -> list[dict[str, Any]]:
    # ``list[dict[str, Any]]`` in the converter: a new list holding the same dicts.
    if type(value) is not list or not all(type(rating) is dict for rating in value):
        raise _Uncommon
    return list(value)


# -- the usual answer by URL, its tree structured on first read ---------------------------

#: The fields read_url_answer leaves empty; GenerateContentResponse.__getattr__ fills them.
_DEFERRED = ("candidates", "prompt_feedback", "usage_metadata")
_make_url_response = slot_maker(
    GenerateContentResponse, "model_version", "response_id", "raw", "request_id", unset=_DEFERRED
)


def _fill_deferred(response: GenerateContentResponse) -> None:
    """Structure the fields :func:`read_url_answer` left empty, from ``raw``, as the fast builder does."""
    raw = response.raw
    built = _common_generate_content(raw)
    if built is None:  # ``raw`` was changed after the call: structure what it holds now
        built = structure(
            raw, GenerateContentResponse, what="generateContent answer", request_id=response.request_id
        )
    for name in _DEFERRED:
        try:
            object.__getattribute__(response, name)  # filled meanwhile (another thread): keep it
        except AttributeError:
            object.__setattr__(response, name, object.__getattribute__(built, name))


def read_url_answer(
    obj: Any,
    *,
    request_id: str | None,
    response_modalities: Sequence[str] | None,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
    received_at: _dt.datetime,
) -> tuple[GenerateContentResponse, list[ImageAsset]] | None:
    """The usual answer (images on the CDN, nothing inline) and its assets; else ``None``.

    The answer holds a final image and passes the fast builder's checks, and images were
    asked for, so :func:`check_blocked` has nothing to say; the assets are those of
    :func:`make_native_assets`. ``candidates``, ``prompt_feedback`` and ``usage_metadata``
    are left to first read (see :class:`GenerateContentResponse`). Any other answer
    (inline images or drafts, no image, safety ratings, an uncommon shape) is ``None``:
    read it with :func:`parse_with_image_parts` and the steps after it.
    """
    if response_modalities is not None:
        asked = _upper_modalities(response_modalities)
        if asked is None or "IMAGE" not in asked:
            return None
    images = _url_images(obj)
    if not images:
        return None
    response = _make_url_response(obj.get("modelVersion"), obj.get("responseId"), obj, request_id)
    size, expires = call.expected_size(), received_at + ASSET_TTL
    return response, [url_asset(uri, mime_type, None, size, expires, fetcher) for uri, mime_type in images]


def _url_images(obj: Any) -> list[tuple[str, str | None]] | None:
    """Each final image's ``(fileUri, mimeType)``, for an answer of the shape read_url_answer takes.

    The fast builder's checks (the same ``_*_fields`` functions) and three more (no feedback,
    no ratings, nothing inline), so the fields left to first read always build the same way.
    """
    if type(obj) is not dict or not _ANSWER_KEYS.issuperset(obj):
        return None
    try:
        items = _answer_fields(obj)[0]
        usage = obj.get("usageMetadata")
        if usage is not None:
            _usage_fields(usage)
        if obj.get("promptFeedback") is not None:
            return None
        images: list[tuple[str, str | None]] = []
        for item in items:
            content, _, _, _, ratings = _candidate_fields(item)
            if ratings is not None:
                return None
            for part in () if content is None else _content_fields(content)[1]:
                _, inline, file, thought = _part_fields(part)
                if inline is not None:
                    return None
                if file is not None:
                    uri, mime_type = _file_fields(file)
                    if not thought:
                        images.append((uri, mime_type))
        return images
    except _Uncommon:
        return None


def parse_generate_content(obj: Any, *, request_id: str | None = None) -> GenerateContentResponse:
    """Structure a ``generateContent`` answer; a malformed one raises :class:`ResponseError`.

    This only parses: an answer without images is valid here (see :func:`check_blocked`).
    """
    return parse_with_image_parts(obj, request_id=request_id)[0]


def parse_with_image_parts(
    obj: Any, *, request_id: str | None = None
) -> tuple[GenerateContentResponse, list[Part]]:
    """:func:`parse_generate_content`, and the answer's :attr:`~GenerateContentResponse.image_parts`.

    The usual answer gives its image parts as it is built, without a second walk.
    """
    parts: list[Part] = []
    response = _common_generate_content(obj, parts)
    if response is None:
        response = structure(
            obj, GenerateContentResponse, what="generateContent answer", request_id=request_id
        )
        parts = response.image_parts  # what the fast path left in it is not the answer's
        # Only here: the common answer above holds no empty fileUri.
        for i, part in enumerate(parts):
            if part.file_data is not None and part.inline_data is None and not part.file_data.file_uri:
                raise ResponseError(
                    f"image part {i} of the generateContent answer has an empty fileUri",
                    request_id=request_id,
                    body=obj,
                )
    if request_id is not None:
        object.__setattr__(response, "request_id", request_id)
    return response, parts


# --------------------------------------------------------------------------
# Blocked answers.


def _upper_modalities(modalities: Sequence[str] | None) -> frozenset[str] | None:
    if modalities is None:
        return None
    return frozenset(str(m).upper() for m in modalities)


def check_blocked(
    response: GenerateContentResponse,
    *,
    response_modalities: Sequence[str] | None = None,
    request_id: str | None = None,
    parts: Sequence[Part] | None = None,
) -> None:
    """Raise :class:`BlockedError` when the answer lacks what was asked for and says why.

    ``response_modalities`` is what the request asked for (``None``: the model's default,
    text and image). ``parts`` is ``response.image_parts`` when the caller has it already.
    The rules, in order:

    * No candidates: always blocked, with ``promptFeedback.blockReason`` as the reason, or
      ``"NO_CANDIDATES"`` when there is none (nothing came back, whatever was asked).
    * Images asked for and a final image present (drafts do not count): fine.
    * Text only asked for and text present: fine.
    * Otherwise the reason is ``promptFeedback.blockReason``, else the first candidate
      ``finishReason`` other than ``STOP`` (``IMAGE_SAFETY``, ``PROHIBITED_CONTENT``, ...,
      ``MAX_TOKENS``), even when the model added a sentence of text.
    * The model stopped normally without an image: fine when text was allowed and came back
      (the model chose to answer in words, as Google's API allows); otherwise ``"NO_IMAGE"``
      (or ``"NO_TEXT"`` for a text-only request that got nothing).
    """
    asked = _upper_modalities(response_modalities)
    wants_image = asked is None or "IMAGE" in asked
    wants_text = asked is None or "TEXT" in asked
    block = response.block_reason
    if not response.candidates:
        _raise_blocked(
            response, block or "NO_CANDIDATES", "prompt" if block else None, wants_image, request_id
        )
    if wants_image and (response.image_parts if parts is None else parts):
        return  # the usual answer: its text is not needed
    text = response.text
    has_text = bool(text and text.strip())
    if not wants_image and has_text:
        return
    if block:
        _raise_blocked(response, block, "prompt", wants_image, request_id)
    for candidate in response.candidates:
        reason = candidate.finish_reason
        if reason and reason not in _NORMAL_FINISH:
            _raise_blocked(response, reason, "candidate", wants_image, request_id, candidate.finish_message)
    if wants_text and has_text:
        return
    _raise_blocked(response, "NO_IMAGE" if wants_image else "NO_TEXT", None, wants_image, request_id)


def _raise_blocked(
    response: GenerateContentResponse,
    reason: str,
    source: str | None,
    wants_image: bool,
    request_id: str | None,
    detail: str | None = None,
) -> NoReturn:
    wanted = "an image" if wants_image else "text"
    explained = f"{reason}: {_REASONS[reason]}" if reason in _REASONS else reason
    if source == "prompt":
        message = f"the prompt was blocked (blockReason {explained})"
        feedback = response.prompt_feedback
        detail = feedback.block_reason_message if feedback is not None else None
    elif source == "candidate":
        message = f"the model returned no {wanted.removeprefix('an ')} (finishReason {explained})"
    elif reason == "NO_CANDIDATES":
        message = "the answer holds no candidates and no block reason"
    else:
        message = f"the model finished without {wanted}"
    if detail:
        message += f": {detail}"
    said = (response.text or "").strip()
    if said:
        message += f"; the model said: {' '.join(said.split())[:200]!r}"
    raise BlockedError(reason, message, request_id=request_id or response.request_id, response=response)


# --------------------------------------------------------------------------
# Images out of an answer.


def image_parts(response: GenerateContentResponse) -> list[Part]:
    """The final image parts (inline or by URL) of every candidate; drafts left out."""
    return response.image_parts


def inline_payloads(
    response: GenerateContentResponse, *, parts: Sequence[Part] | None = None
) -> list[str | None]:
    """The base64 text of each of :func:`image_parts` (``None`` for a part given by URL).

    ``parts`` is ``response.image_parts`` when the caller has it already.
    """
    if parts is None:
        parts = response.image_parts
    return [p.inline_data.data if p.inline_data is not None else None for p in parts]


def decode_inline_images(
    response: GenerateContentResponse,
    *,
    request_id: str | None = None,
    decoded: Mapping[int, bytes] | None = None,
    parts: Sequence[Part] | None = None,
) -> list[bytes | None]:
    """Decode :func:`inline_payloads` (CPU-bound: run it in a thread for big answers).

    ``decoded`` holds payloads decoded already, by ``id()`` of their text (see
    :func:`~maxapi_async._protocol.decode_answer`); ``parts`` is ``response.image_parts``
    when the caller has it already.
    """
    if parts is None:
        parts = response.image_parts
    done = decoded or {}
    images: list[bytes | None] = []
    for part in parts:
        if part.inline_data is None:
            images.append(None)
            continue
        payload = part.inline_data.data
        images.append(done.get(id(payload)) or decode_b64(payload, request_id=request_id))
    return images


def _same_image_type(inline: Blob, file: FileData) -> bool:
    return inline.mime_type is None or file.mime_type is None or inline.mime_type == file.mime_type


def make_native_assets(
    response: GenerateContentResponse,
    decoded: Sequence[bytes | None],
    *,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
    received_at: _dt.datetime | None = None,
    parts: Sequence[Part] | None = None,
    request_id: str | None = None,
) -> list[ImageAsset]:
    """One :class:`ImageAsset` per final image, from :func:`decode_inline_images`' output.

    Inline images carry their bytes, checked to be the image they claim (see
    :func:`~maxapi_async._protocol.inline_asset`; :class:`AssetTypeError` otherwise), their
    type and size read from them; images by URL carry
    the URL, the type from ``mimeType`` and the size from the model's table, and expire
    :data:`ASSET_TTL` after ``received_at``. A ``fileData`` part right after an inline
    image of the same type is that image's CDN copy (MaxAPI sends both): the two make one
    asset with bytes and URL. ``parts`` is ``response.image_parts`` when the caller has it
    already.
    """
    if parts is None:
        parts = response.image_parts
    if len(decoded) != len(parts):
        raise ValueError(f"{len(decoded)} decoded payloads for {len(parts)} image parts")
    expires = received_at + ASSET_TTL if received_at is not None else None
    assets: list[ImageAsset] = []
    i = 0
    while i < len(parts):
        part, data = parts[i], decoded[i]
        i += 1
        if part.inline_data is not None:
            if data is None:
                raise ValueError(f"image part {i - 1} is inline but was not decoded")
            url = None
            following = parts[i] if i < len(parts) else None
            if (
                following is not None
                and following.inline_data is None
                and following.file_data is not None
                and _same_image_type(part.inline_data, following.file_data)
            ):
                url = following.file_data.file_uri or None
                i += 1
            assets.append(
                inline_asset(
                    data,
                    claimed=part.inline_data.mime_type,
                    what=f"inline image {len(assets)} of the generateContent answer",
                    url=url,
                    expected_size=call.expected_size(),
                    expires_at=expires if url else None,
                    fetcher=fetcher,
                    request_id=request_id,
                )
            )
        elif part.file_data is not None:
            file = part.file_data
            assets.append(
                url_asset(file.file_uri, file.mime_type, None, call.expected_size(), expires, fetcher)
            )
    return assets


def with_images(response: GenerateContentResponse, images: list[ImageAsset]) -> GenerateContentResponse:
    """``response`` with its :attr:`~GenerateContentResponse.images` filled in."""
    return attrs.evolve(response, images=images)
