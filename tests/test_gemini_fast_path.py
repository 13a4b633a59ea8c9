"""The hand-built ``generateContent`` answer is the converter's, and image parts computed once suffice.

``parse_generate_content`` builds the usual answer without the converter
(``_common_generate_content``); these tests hold that shortcut to the converter it skips.
``check_blocked``, ``inline_payloads``, ``decode_inline_images`` and ``make_native_assets``
take ``parts=`` (the answer's image parts, computed once): the results must not change.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import ResponseError
from maxapi_async._convert import slot_maker, structure, unstructure
from maxapi_async._errors import BlockedError
from maxapi_async._gemini import (
    _ANSWER_KEYS,
    _BLOB_KEYS,
    _CANDIDATE_KEYS,
    _CONTENT_KEYS,
    _FEEDBACK_KEYS,
    _FILE_KEYS,
    _PART_KEYS,
    _USAGE_KEYS,
    Blob,
    Candidate,
    Content,
    FileData,
    GenerateContentResponse,
    Part,
    PromptFeedback,
    UsageMetadata,
    _common_generate_content,
    _url_images,
    _wire_names,
    check_blocked,
    decode_inline_images,
    inline_payloads,
    make_native_assets,
    parse_generate_content,
    parse_with_image_parts,
    read_url_answer,
)
from maxapi_async._protocol import ImageCall
from maxapi_async.testing._png import make_png

MODEL = "google/gemini-2.5-flash-image"
PNG_B64 = base64.b64encode(make_png(3, 2)).decode()
DRAFT_B64 = base64.b64encode(make_png(5, 4, seed=1)).decode()
CDN_URL = "https://cdn.maxapi.dev/a/b/image.png"
USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 1290, "totalTokenCount": 1295}


def converted(obj: Any) -> GenerateContentResponse:
    """The answer as the converter builds it (the path the fast one skips)."""
    return structure(obj, GenerateContentResponse, what="generateContent answer")


def model_turn(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def inline(data: str = PNG_B64, **extra: Any) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": data}, **extra}


def file(uri: str = CDN_URL, mime: str | None = "image/png") -> dict[str, Any]:
    return {"fileData": {"mimeType": mime, "fileUri": uri} if mime else {"fileUri": uri}}


REALISTIC: dict[str, dict[str, Any]] = {
    "text and fileData": {
        "candidates": [
            {"content": model_turn({"text": "ok"}, file()), "finishReason": "STOP"},
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash-image",
    },
    "inlineData and its CDN copy": {
        "candidates": [
            {"content": model_turn(inline(), file()), "finishReason": "STOP", "index": 0},
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "resp-1",
    },
    "thought drafts then the image": {
        "candidates": [
            {
                "content": model_turn(
                    {"text": "planning the scene", "thought": True},
                    inline(DRAFT_B64, thought=True),
                    {"text": "Here it is."},
                    inline(),
                    file(mime=None),
                ),
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": USAGE,
    },
    "two candidates": {
        "candidates": [
            {"content": model_turn(inline()), "finishReason": "STOP", "index": 0},
            {"content": model_turn(file("https://cdn.maxapi.dev/c/d.webp", "image/webp")), "index": 1},
        ],
        "modelVersion": "gemini-3-pro-image-preview",
        "responseId": "resp-2",
    },
    "words only, with nulls": {
        "candidates": [
            {
                "content": {"role": None, "parts": [{"text": "What style would you like?"}]},
                "finishReason": "STOP",
                "finishMessage": None,
                "index": None,
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": None},
        "modelVersion": None,
        "responseId": None,
    },
    "an image withheld": {
        "candidates": [
            {
                "content": model_turn({"text": "I can't show that."}),
                "finishReason": "IMAGE_SAFETY",
                "finishMessage": "Unable to show the generated image.",
                "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}],
            }
        ],
        "promptFeedback": {"safetyRatings": []},
    },
    "a blocked prompt": {"promptFeedback": {"blockReason": "SAFETY", "blockReasonMessage": "no"}},
    "a candidate without content": {"candidates": [{"finishReason": "NO_IMAGE"}, {"content": None}]},
    "nothing at all": {},
    "no candidates, no parts": {"candidates": [], "usageMetadata": {}},
}


@pytest.mark.parametrize("obj", REALISTIC.values(), ids=REALISTIC.keys())
def test_a_realistic_answer_is_built_as_the_converter_builds_it(obj: dict[str, Any]) -> None:
    fast = _common_generate_content(obj)
    assert fast is not None  # each of these is the common shape
    slow = converted(obj)
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert fast.raw is obj
    assert slow.raw is obj


def test_a_realistic_answer_is_built_field_by_field() -> None:
    obj = REALISTIC["inlineData and its CDN copy"]
    response = _common_generate_content(obj)
    assert response == GenerateContentResponse(
        [
            Candidate(
                Content(
                    "model",
                    [
                        Part(inline_data=Blob(PNG_B64, "image/png")),
                        Part(file_data=FileData(CDN_URL, "image/png")),
                    ],
                ),
                "STOP",
                index=0,
            )
        ],
        usage_metadata=UsageMetadata(5, 1290, 1295),
        model_version="gemini-2.5-flash-image",
        response_id="resp-1",
    )
    assert response is not None
    assert response.extra == {}
    assert response.images == []
    assert response.request_id is None
    assert response.cost is None


def test_safety_ratings_are_a_new_list_of_the_same_dicts_as_the_converter_makes() -> None:
    obj = REALISTIC["an image withheld"]
    fast, slow = _common_generate_content(obj), converted(obj)
    assert fast is not None
    received = obj["candidates"][0]["safetyRatings"]
    for response in (fast, slow):
        ratings = response.candidates[0].safety_ratings
        assert ratings == received
        assert ratings is not received
        assert ratings is not None
        assert ratings[0] is received[0]
    assert fast.prompt_feedback == slow.prompt_feedback == PromptFeedback(safety_ratings=[])


def test_every_wire_key_of_the_models_is_known_to_the_fast_path() -> None:
    # A new field's key must be added to the fast path (until then it takes the general path).
    for keys, cls, omit in [
        (_ANSWER_KEYS, GenerateContentResponse, ("images", "request_id", "raw", "cost")),
        (_CANDIDATE_KEYS, Candidate, ()),
        (_CONTENT_KEYS, Content, ()),
        (_PART_KEYS, Part, ()),
        (_BLOB_KEYS, Blob, ()),
        (_FILE_KEYS, FileData, ()),
        (_FEEDBACK_KEYS, PromptFeedback, ()),
        (_USAGE_KEYS, UsageMetadata, ()),
    ]:
        assert keys == frozenset(_wire_names(cls, omit).values()), cls.__name__


@pytest.mark.parametrize(
    "obj",
    [
        # Spellings and keys the converter renames or keeps in ``extra``.
        {"model_version": "m"},
        {"candidates": [{"finish_reason": "STOP"}]},
        {"candidates": [{"content": {"parts": [{"inline_data": {"data": PNG_B64}}]}}]},
        {
            "candidates": [
                {"content": {"parts": [{"inlineData": {"data": PNG_B64, "mime_type": "image/png"}}]}}
            ]
        },
        {"candidates": [{"content": {"parts": [inline(thoughtSignature="sig")]}}]},
        {"candidates": [{"groundingMetadata": {}}]},
        {"usageMetadata": {**USAGE, "thoughtsTokenCount": 7}},
        {"promptFeedback": {"block_reason": "SAFETY"}},
        {"newTop": 1},
        {"raw": {}},
        # An empty fileUri: left to the general path and its check.
        {"candidates": [{"content": {"parts": [file("")]}}]},
        # What the converter refuses, and explains.
        {"candidates": None},
        {"candidates": [None]},
        {"candidates": [{"index": True}]},
        {"candidates": [{"content": {"parts": None}}]},
        {"candidates": [{"content": {"parts": [{"thought": None}]}}]},
        {"candidates": [{"content": {"parts": [{"thought": 1}]}}]},
        {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png"}}]}}]},
        {"candidates": [{"content": {"parts": [{"inlineData": {"data": None}}]}}]},
        {"candidates": [{"content": {"parts": [{"fileData": {"fileUri": None}}]}}]},
        {"candidates": [{"safetyRatings": [None]}]},
        {"candidates": [{"safetyRatings": {}}]},
        {"usageMetadata": {"totalTokenCount": False}},
        {"usageMetadata": {"totalTokenCount": 1.0}},
        {"usageMetadata": []},
        {"promptFeedback": {"blockReason": 3}},
        [],
        "not an object",
        None,
    ],
)
def test_anything_but_the_common_shape_is_left_to_the_converter(obj: Any) -> None:
    assert _common_generate_content(obj) is None


def test_an_empty_file_uri_is_still_refused_through_the_general_path() -> None:
    with pytest.raises(ResponseError, match="empty fileUri"):
        parse_generate_content({"candidates": [{"content": {"parts": [file("")]}}]})
    # A draft may carry one: the check covers final images only.
    draft = {"candidates": [{"content": {"parts": [{**file(""), "thought": True}]}}]}
    assert parse_generate_content(draft).draft_parts[0].file_data == FileData("", "image/png")


def test_parse_takes_the_fast_path_and_sets_the_request_id() -> None:
    obj = REALISTIC["text and fileData"]
    response = parse_generate_content(obj, request_id="req_1")
    assert response.raw is obj
    assert response.request_id == "req_1"
    assert attrs.evolve(response, request_id=None) == converted(obj)


# -- near the common shape, strays included ------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

# The common shape: camelCase keys only, every value of its type.
TEXT = st.none() | st.text(max_size=8)
COUNT = st.none() | st.integers(0, 2**40)
BLOBS = st.fixed_dictionaries({"data": st.text(max_size=8)}, optional={"mimeType": TEXT})
FILES = st.fixed_dictionaries(
    {"fileUri": st.sampled_from([CDN_URL, "https://cdn.maxapi.dev/x.webp", ""])}, optional={"mimeType": TEXT}
)
PARTS = st.fixed_dictionaries(
    {},
    optional={
        "text": TEXT,
        "inlineData": st.none() | BLOBS,
        "fileData": st.none() | FILES,
        "thought": st.booleans(),
    },
)
RATINGS = st.none() | st.lists(st.dictionaries(st.text(max_size=6), JSON, max_size=2), max_size=2)
# The keys that lead to parts are always there (a stray may drop them), to reach the parts often.
CONTENTS = st.fixed_dictionaries({"parts": st.lists(PARTS, max_size=4)}, optional={"role": TEXT})
CANDIDATES = st.fixed_dictionaries(
    {"content": CONTENTS | st.none()},
    optional={
        "finishReason": TEXT,
        "finishMessage": TEXT,
        "index": COUNT,
        "safetyRatings": RATINGS,
    },
)
FEEDBACK = st.fixed_dictionaries(
    {}, optional={"blockReason": TEXT, "blockReasonMessage": TEXT, "safetyRatings": RATINGS}
)
USAGES = st.fixed_dictionaries(
    {}, optional={"promptTokenCount": COUNT, "candidatesTokenCount": COUNT, "totalTokenCount": COUNT}
)
COMMON = st.fixed_dictionaries(
    {"candidates": st.lists(CANDIDATES, max_size=3)},
    optional={
        "promptFeedback": st.none() | FEEDBACK,
        "usageMetadata": st.none() | USAGES,
        "modelVersion": TEXT,
        "responseId": TEXT,
    },
)
# Every key a stray may use: the wire's, their snake_case spellings, the fields' names, unknown ones.
MODELS = (GenerateContentResponse, Candidate, Content, Part, Blob, FileData, PromptFeedback, UsageMetadata)
STRAY_KEYS = sorted(
    {key for cls in MODELS for key in _wire_names(cls, ())}
    | {key for cls in MODELS for key in _wire_names(cls, ()).values()}
    | {"extra", "unknownKey", ""}
)


def nodes(value: Any) -> list[Any]:
    """Every dict and non-empty list in ``value``, itself included."""
    found: list[Any] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += nodes(item)
    elif isinstance(value, list):
        found += [value] if value else []
        for item in value:
            found += nodes(item)
    return found


# The usual answer by URL: no inline image, no feedback, no ratings (read_url_answer's shape).
URL_PARTS = st.fixed_dictionaries(
    {"text": TEXT}, optional={"thought": st.booleans()}
) | st.fixed_dictionaries({"fileData": FILES}, optional={"text": TEXT, "thought": st.booleans()})
URL_CANDIDATES = st.fixed_dictionaries(
    {
        "content": st.fixed_dictionaries(
            {"parts": st.lists(URL_PARTS, min_size=1, max_size=4)}, optional={"role": TEXT}
        )
    },
    optional={"finishReason": TEXT, "finishMessage": TEXT, "index": COUNT},
)
URL_COMMON = st.fixed_dictionaries(
    {"candidates": st.lists(URL_CANDIDATES, min_size=1, max_size=3)},
    optional={"usageMetadata": st.none() | USAGES, "modelVersion": TEXT, "responseId": TEXT},
)


@st.composite
def near_common(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]] = COMMON) -> Any:
    """A common answer with up to three strays: a value of any type, a key dropped or added."""
    obj = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        node = draw(st.sampled_from(nodes(obj)))
        if isinstance(node, list):
            node[draw(st.integers(0, len(node) - 1))] = draw(JSON)
        elif node and draw(st.booleans()):
            node[draw(st.sampled_from(sorted(node)))] = draw(JSON)
        elif node and draw(st.booleans()):
            del node[draw(st.sampled_from(sorted(node)))]
        else:
            node[draw(st.sampled_from(STRAY_KEYS))] = draw(JSON)
    return obj


ANSWERS = near_common() | JSON
URL_ANSWERS = URL_COMMON | near_common(URL_COMMON)


@settings(max_examples=500)
@given(obj=ANSWERS)
def test_an_answer_near_the_common_shape_is_built_as_the_converter_builds_it(obj: Any) -> None:
    before = copy.deepcopy(obj)
    fast = _common_generate_content(obj)
    assert obj == before  # the fast path never touches what it was given
    try:
        slow = converted(obj)
    except ResponseError:
        assert fast is None  # what the converter refuses, the fast path leaves to it
        return
    if fast is not None:
        assert fast == slow  # ``extra`` included: an unknown key never takes the fast path
        assert repr(fast) == repr(slow)
        assert fast.raw is obj
        assert parse_generate_content(obj) == slow  # and no empty fileUri slipped through
    try:
        response, parts = parse_with_image_parts(obj)
    except ResponseError:
        return  # an empty fileUri: refused by both (see above)
    assert response == slow
    # The parts gathered while building are the answer's own, in order: the objects themselves.
    assert len(parts) == len(response.image_parts)
    assert all(given is own for given, own in zip(parts, response.image_parts, strict=True))


# -- image parts computed once ------------------------------------------------

MODALITIES: list[list[str] | None] = [None, ["IMAGE"], ["TEXT"], ["TEXT", "IMAGE"]]
BLOCKING: dict[str, dict[str, Any]] = {
    "words only": {"candidates": [{"content": model_turn({"text": "Which style?"}), "finishReason": "STOP"}]},
    "drafts only": {"candidates": [{"content": model_turn(inline(DRAFT_B64, thought=True))}]},
    "withheld": {"candidates": [{"content": model_turn({"text": "No."}), "finishReason": "IMAGE_SAFETY"}]},
    "blocked prompt": {"promptFeedback": {"blockReason": "SAFETY"}},
    "blocked prompt with a candidate": {
        "candidates": [{"finishReason": "STOP"}],
        "promptFeedback": {"blockReason": "OTHER"},
    },
    "empty": {"candidates": [{"content": model_turn(), "finishReason": "STOP"}]},
}


def blocked(response: GenerateContentResponse, modalities: list[str] | None, **parts: Any) -> Any:
    """What :func:`check_blocked` says: ``None``, or the error's reason and message."""
    try:
        check_blocked(response, response_modalities=modalities, request_id="req_1", **parts)
    except BlockedError as exc:
        return (exc.reason, str(exc), exc.response is response)
    return None


@pytest.mark.parametrize("modalities", MODALITIES)
@pytest.mark.parametrize("obj", [*REALISTIC.values(), *BLOCKING.values()], ids=[*REALISTIC, *BLOCKING])
def test_check_blocked_says_the_same_given_the_image_parts(
    obj: dict[str, Any], modalities: list[str] | None
) -> None:
    response = parse_generate_content(obj)
    assert blocked(response, modalities, parts=response.image_parts) == blocked(response, modalities)


@pytest.mark.parametrize("obj", REALISTIC.values(), ids=REALISTIC.keys())
def test_images_come_out_the_same_given_the_image_parts(obj: dict[str, Any]) -> None:
    response = parse_generate_content(obj)
    parts = response.image_parts
    call = ImageCall("generation", MODEL, "16:9")
    received = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert inline_payloads(response, parts=parts) == inline_payloads(response)
    decoded = decode_inline_images(response, request_id="req_1")
    assert decode_inline_images(response, request_id="req_1", parts=parts) == decoded
    assets = make_native_assets(response, decoded, call=call, fetcher=None, received_at=received)
    given = make_native_assets(response, decoded, call=call, fetcher=None, received_at=received, parts=parts)
    assert given == assets


def test_the_given_parts_are_used_not_recomputed() -> None:
    response = parse_generate_content(REALISTIC["inlineData and its CDN copy"])
    call = ImageCall("generation", MODEL)
    assert inline_payloads(response, parts=[]) == []
    assert decode_inline_images(response, parts=response.image_parts[1:]) == [None]
    assert make_native_assets(response, [], call=call, fetcher=None, parts=[]) == []
    with pytest.raises(BlockedError):  # told there is no image, it looks no further
        check_blocked(response, response_modalities=["IMAGE"], parts=[])


def test_image_parts_keep_the_order_and_leave_out_drafts_and_text() -> None:
    response = parse_generate_content(REALISTIC["thought drafts then the image"])
    everything = [p for c in response.candidates if c.content is not None for p in c.content.parts]
    assert response.image_parts == [p for p in everything if p.is_image and not p.thought]
    assert [p.file_data is not None for p in response.image_parts] == [False, True]
    assert response.draft_parts == [everything[1]]


# -- the usual answer by URL, structured on first read -----------------------------------------

RECEIVED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
CALL = ImageCall("generation", MODEL, "16:9")


def read(obj: Any, modalities: list[str] | None = None) -> tuple[GenerateContentResponse, Any] | None:
    return read_url_answer(
        obj, request_id="req_1", response_modalities=modalities, call=CALL, fetcher=None, received_at=RECEIVED
    )


def general(obj: Any) -> tuple[GenerateContentResponse, Any]:
    """What the general path makes of ``obj``: the answer and its assets."""
    response, parts = parse_with_image_parts(obj, request_id="req_1")
    check_blocked(response, request_id="req_1", parts=parts)
    decoded = decode_inline_images(response, parts=parts)
    return response, make_native_assets(
        response, decoded, call=CALL, fetcher=None, received_at=RECEIVED, parts=parts
    )


def empty_slots(response: GenerateContentResponse) -> list[str]:
    empty = []
    for field in attrs.fields(GenerateContentResponse):
        try:
            object.__getattribute__(response, field.name)
        except AttributeError:
            empty.append(field.name)
    return empty


@settings(max_examples=500)
@given(obj=URL_ANSWERS | ANSWERS)
def test_an_answer_read_by_url_is_one_the_fast_builder_builds_with_those_images(obj: Any) -> None:
    images = _url_images(obj)
    if images is None:
        return
    built = _common_generate_content(obj)
    assert built is not None  # so the fields left to first read always build
    assert [(p.file_data.file_uri, p.file_data.mime_type) for p in built.image_parts if p.file_data] == images
    assert all(p.inline_data is None for p in built.image_parts)  # nothing inline: no pairing


@settings(max_examples=300)
@given(obj=URL_ANSWERS | ANSWERS)
def test_an_answer_read_by_url_is_the_answer_read_the_general_way(obj: Any) -> None:
    got = read(obj)
    if got is None:
        return
    response, assets = got
    assert empty_slots(response) == ["candidates", "prompt_feedback", "usage_metadata"]
    expected, expected_assets = general(obj)
    assert assets == expected_assets
    assert response == expected  # filled on first read, by ==
    assert repr(response) == repr(expected)
    assert empty_slots(response) == []
    assert response.raw is obj


def test_the_usual_answer_is_read_by_url_and_its_fields_are_filled_on_first_read() -> None:
    obj = REALISTIC["text and fileData"]
    got = read(obj)
    assert got is not None
    response, assets = got
    assert [a.url for a in assets] == [CDN_URL]
    assert assets[0].size == CALL.expected_size()
    assert assets[0].expires_at == RECEIVED + dt.timedelta(days=7)
    assert response.request_id == "req_1"
    assert response.model_version == "gemini-2.5-flash-image"
    assert response.text == "ok"  # a property reading candidates fills them
    assert response.usage_metadata == UsageMetadata(5, 1290, 1295)
    assert response.candidates == converted(obj).candidates
    assert empty_slots(response) == []


def test_each_way_of_reading_a_lazy_answer_sees_the_whole_answer() -> None:
    obj = REALISTIC["text and fileData"]
    expected = general(obj)[0]
    readers: list[Any] = [
        lambda r: r,
        lambda r: attrs.asdict(r),
        lambda r: unstructure(r),
        lambda r: pickle.loads(pickle.dumps(r)),
        lambda r: copy.copy(r),
        lambda r: copy.deepcopy(r),
        lambda r: attrs.evolve(r, cost=1.0),
        lambda r: r.parts,
        lambda r: r.finish_reason,
        lambda r: r.block_reason,
        lambda r: r.image_parts,
    ]
    for reader in readers:
        got = read(obj)
        assert got is not None
        fresh = got[0]
        assert reader(fresh) == reader(expected)
    fresh = read(obj)[0]  # type: ignore[index]
    assert not hasattr(fresh, "no_such_field")
    with pytest.raises(AttributeError, match="'GenerateContentResponse' object has no attribute 'nope'"):
        fresh.nope  # type: ignore[attr-defined]  # noqa: B018
    assert empty_slots(fresh) == ["candidates", "prompt_feedback", "usage_metadata"]  # hasattr filled none


def test_a_raw_answer_changed_before_the_first_read_is_structured_as_it_is_then() -> None:
    obj = copy.deepcopy(REALISTIC["text and fileData"])
    response = read(obj)[0]  # type: ignore[index]
    obj["candidates"][0]["seed"] = 7  # unknown to the fast builder: the converter keeps it
    assert response.candidates[0].extra == {"seed": 7}
    broken = copy.deepcopy(REALISTIC["text and fileData"])
    response = read(broken)[0]  # type: ignore[index]
    broken["candidates"] = "gone"
    with pytest.raises(ResponseError, match="candidates"):
        response.candidates  # noqa: B018


@pytest.mark.parametrize(
    ("name", "modalities"),
    [
        ("inlineData and its CDN copy", None),  # inline: decoded and paired the general way
        ("thought drafts then the image", None),
        ("words only, with nulls", None),  # no image: check_blocked decides
        ("an image withheld", None),
        ("text and fileData", ["TEXT"]),  # text asked for: check_blocked decides
    ],
)
def test_any_other_answer_is_left_to_the_general_path(name: str, modalities: list[str] | None) -> None:
    assert read(REALISTIC[name], modalities) is None


def test_images_asked_for_in_any_spelling_take_the_url_path() -> None:
    assert read(REALISTIC["text and fileData"], ["image"]) is not None
    assert read(REALISTIC["text and fileData"], ["TEXT", "IMAGE"]) is not None


def test_a_slot_maker_leaves_fields_empty_only_for_a_class_that_fills_them() -> None:
    with pytest.raises(TypeError, match="no __getattr__"):
        slot_maker(Part, "text", unset=("file_data",))
    with pytest.raises(TypeError, match="no fields"):
        slot_maker(GenerateContentResponse, unset=("nope",))
