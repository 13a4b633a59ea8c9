"""The shortcuts on the per-call path give exactly what the general path gives.

Each call reads its answer on the event loop, so that step has fast paths; these tests
hold each to the slow path it replaces.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import PRICES, AsyncMaxAPI, ResponseError, Timeouts
from maxapi_async._convert import slot_maker, structure
from maxapi_async._models import ASSET_TTL, ImagesResponse
from maxapi_async._protocol import (
    ImageCall,
    _common_images_response,
    decode_json,
    expiry,
    make_asset,
    parse_images_response,
    url_answer_assets,
)

MODEL = "google/gemini-2.5-flash-image"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# Mostly well-formed values, with every kind of stray among them.
TEXT_OR_NONE = st.none() | st.text(max_size=20) | JSON
ITEMS = (
    st.dictionaries(
        st.sampled_from(["url", "b64_json", "revised_prompt", "extra", "size"]), TEXT_OR_NONE, max_size=4
    )
    | JSON
)
ANSWERS = (
    st.dictionaries(
        st.sampled_from(["data", "created", "usage", "model", "extra"]),
        st.lists(ITEMS, max_size=3)
        | st.none()
        | st.integers()
        | st.booleans()
        | st.dictionaries(st.text(), JSON),
        max_size=5,
    )
    | JSON
)


@settings(max_examples=400)
@given(obj=ANSWERS)
def test_the_common_images_answer_is_built_as_the_converter_builds_it(obj: Any) -> None:
    fast = _common_images_response(obj)
    try:
        slow = structure(obj, ImagesResponse, what="images answer")
    except ResponseError:
        assert fast is None  # what the converter refuses, the fast path leaves to it
        return
    if fast is not None:
        assert fast == slow  # extra included: an unknown key never takes the fast path
        assert fast.extra == {}
        assert all(item.extra == {} for item in fast.data)


@settings(max_examples=400)
@given(obj=ANSWERS, ratio=st.sampled_from([None, "1:1", "16:9"]))
def test_the_usual_answer_by_url_gives_the_assets_the_general_path_gives(obj: Any, ratio: str | None) -> None:
    call = ImageCall("generation", MODEL, ratio)
    fast = url_answer_assets(obj, call, None)
    try:
        response = parse_images_response(obj)
    except ResponseError:
        assert fast is None  # what the general path refuses, the shortcut leaves to it
        return
    if fast is not None:
        assert all(item.b64_json is None for item in response.data)
        slow = [
            make_asset(item, None, call=call, created=response.created, fetcher=None)
            for item in response.data
        ]
        assert fast == slow


def test_an_answer_with_inline_images_or_unknown_keys_takes_the_general_path() -> None:
    call = ImageCall("generation", MODEL, "1:1")
    url = "https://cdn.maxapi.dev/a/b.png"
    assert url_answer_assets({"created": 1, "data": [{"url": url}]}, call, None) is not None
    assert url_answer_assets({"created": 1, "data": [{"url": url, "b64_json": "iVBO"}]}, call, None) is None
    assert url_answer_assets({"created": 1, "data": [{"url": url, "seed": 7}]}, call, None) is None
    assert url_answer_assets({"created": 1, "data": [{"url": url}], "model": "m"}, call, None) is None
    assert url_answer_assets({"created": True, "data": [{"url": url}]}, call, None) is None
    assert url_answer_assets({"created": 1, "data": []}, call, None) is None


def test_expiry_is_seven_days_after_created_whatever_came_before() -> None:
    assert expiry(None) is None
    for created in (1_700_000_000, 1_700_000_000, 1_700_000_001, 0, 1_700_000_000):
        assert expiry(created) == dt.datetime.fromtimestamp(created, tz=dt.timezone.utc) + ASSET_TTL
    assert expiry(None) is None
    assert expiry(253_402_300_800) is None  # year 10000: no date holds it
    assert expiry(-62_135_596_801) is None  # year 0


def test_prices_are_looked_up_once_per_model_and_route() -> None:
    table = PRICES.with_prices({(MODEL, "mix"): 0.03})
    for _ in range(2):
        assert table.per_call(MODEL, "mix") == 0.03
        assert table.per_call(MODEL, None) == 0.04  # the dearest route
        assert table.per_call("gemini-2.5-flash-image", "official-cheap") == 0.024
        assert table.per_call("other/model", "official") is None
    assert PRICES.per_call(MODEL, "mix") == 0.04  # the copy's memo is its own


def test_an_unknown_key_is_kept_in_extra_through_the_general_path() -> None:
    answer = {"created": 1, "data": [{"url": "https://cdn/a.png", "seed": 7}], "model": "m"}
    response = parse_images_response(answer)
    assert response.extra == {"model": "m"}
    assert response.data[0].extra == {"seed": 7}


@pytest.mark.anyio
async def test_the_first_attempt_under_the_clients_deadline_reuses_one_aiohttp_timeout() -> None:
    async with AsyncMaxAPI("k", timeout=Timeouts(total=30.0, connect=5.0, read=20.0)) as client:
        transport = client._transport
        transport._get_session()
        full = transport._timeout(30.0)
        assert transport._timeout(29.9995) is full
        assert transport._timeout(None) is full
        assert (full.total, full.connect, full.sock_connect, full.sock_read) == (30.1, 30.0, 5.0, 20.0)
        later = transport._timeout(12.5)  # a retry: what is left, exactly
        assert later is not full
        assert (later.total, later.connect, later.sock_connect, later.sock_read) == (12.6, 12.5, 5.0, 12.5)


OBJECT_BODIES = st.builds(
    lambda value, before, after: before + json.dumps(value).encode() + after,
    st.dictionaries(st.text(max_size=6), JSON, max_size=4),
    st.sampled_from([b"", b"{"]),
    st.sampled_from([b"", b" ", b"\n", b"}", b" x", b"{}", b"\xff"]),
)


@settings(max_examples=400)
@given(body=OBJECT_BODIES | st.binary(max_size=40).map(lambda tail: b"{" + tail))
def test_a_body_read_by_the_scanner_alone_is_what_json_loads_reads(body: bytes) -> None:
    try:
        expected = json.loads(body)
    except ValueError:
        with pytest.raises(ResponseError):
            decode_json(body, status=200, request_id=None, what="images")
        return
    got = decode_json(body, status=200, request_id=None, what="images")
    assert json.dumps(got) == json.dumps(expected)  # NaN included, which is not equal to itself


@attrs.frozen
class _Sample:
    name: str
    size: int = 0
    tags: list[str] = attrs.field(factory=list)
    _secret: str | None = attrs.field(default=None, alias="secret")


def test_a_slot_maker_builds_the_instance_the_class_builds() -> None:
    make = slot_maker(_Sample, "name", "secret")
    made, built = make("fox", "s"), _Sample("fox", secret="s")
    assert made == built
    assert attrs.asdict(made) == attrs.asdict(built)  # every slot set: none left empty
    assert made.tags == []
    assert made.tags is not make("hare", None).tags  # a factory runs per instance
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.name = "hare"  # type: ignore[misc]


def test_a_slot_maker_is_refused_for_classes_that_run_code_on_construction() -> None:
    @attrs.frozen
    class Checked:
        size: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen
    class Hooked:
        size: int = 0

        def __attrs_post_init__(self) -> None:
            pass

    @attrs.frozen(slots=False)
    class Unslotted:
        size: int = 0

    @attrs.frozen
    class SelfDefault:
        size: int = attrs.field(default=attrs.Factory(lambda self: 1, takes_self=True))

    for cls, pattern in [
        (Checked, "not a plain slot"),
        (Hooked, "runs code"),
        (Unslotted, "not a plain slot"),
        (SelfDefault, "needs the instance"),
    ]:
        with pytest.raises(TypeError, match=pattern):
            slot_maker(cls)
    with pytest.raises(TypeError, match="no default"):
        slot_maker(_Sample, "size")
    with pytest.raises(TypeError, match="no fields"):
        slot_maker(_Sample, "name", "_secret")  # the alias, as __init__ names it
    with pytest.raises(TypeError, match="not an attrs class"):
        slot_maker(int)  # type: ignore[type-var]
