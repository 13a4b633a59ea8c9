"""The shortcuts on the per-call path give exactly what the general path gives.

Each call reads its answer, encodes its body and makes an Idempotency-Key on the event
loop, so those steps have fast paths; these tests hold each to the slow path it replaces.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import PRICES, AsyncMaxAPI, InvalidRequestError, MaxAPIWarning, ResponseError, Timeouts
from maxapi_async._client import new_idempotency_key
from maxapi_async._convert import slot_maker, structure
from maxapi_async._gemini_request import (
    build_generate_content_request,
    inline_data_size,
    known_prompt_request,
    normalize_contents,
    scan_contents,
)
from maxapi_async._models import ASSET_TTL, ImagesResponse
from maxapi_async._protocol import (
    TEXT_SLOT,
    ImageCall,
    RequestSpec,
    _common_images_response,
    build_generate_request,
    decode_json,
    encode_json,
    expiry,
    make_asset,
    parse_images_response,
    text_template,
    url_answer_assets,
    with_body,
)
from maxapi_async.testing import FakeMaxAPI, make_png

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


def test_a_repeated_option_set_skips_the_checks_but_never_their_verdicts() -> None:
    first = build_generate_request("a fox", aspect_ratio="16:9", n=2)
    again = build_generate_request("a hare", aspect_ratio="16:9", n=2)
    assert again.call is first.call  # shared: it is frozen
    assert again.json == {"model": MODEL, "prompt": "a hare", "aspect_ratio": "16:9", "n": 2}
    assert first.json == {"model": MODEL, "prompt": "a fox", "aspect_ratio": "16:9", "n": 2}
    # Values equal to a remembered set's, of the wrong type, are still refused.
    for n in (True, 2.0):
        with pytest.raises(InvalidRequestError, match="n"):
            build_generate_request("a fox", aspect_ratio="16:9", n=n)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="prompt"):
        build_generate_request(" ", aspect_ratio="16:9", n=2)
    with pytest.raises(InvalidRequestError, match="aspect_ratio"):
        build_generate_request("a fox", aspect_ratio=["16:9"])  # type: ignore[arg-type]
    # A set that warns warns every time.
    for _ in range(2):
        with pytest.warns(MaxAPIWarning, match="resolution"):
            build_generate_request("a fox", resolution="2K")


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


@settings(max_examples=300)
@given(body=st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_a_body_encoded_in_pieces_is_byte_for_byte_the_one_piece_body(body: dict[str, Any]) -> None:
    spec = RequestSpec("POST", "/v1/x", ImageCall("generation", MODEL), json=body)
    assert with_body(spec).body == encode_json(body)


def test_a_body_encoded_in_pieces_handles_every_shape_json_allows() -> None:
    shapes: list[Any] = [
        {"contents": [{"parts": [{"text": 'é "q" \\ \n'}, {"inlineData": {"data": "QUJD"}}]}]},
        {"n": [1, 2.5, -0.0, 1e300, float("nan"), float("inf")], "t": (1, [()]), "e": {}, "l": []},
        {"deep": [[[[[[[[[[["down"]]]]]]]]]]]},
    ]
    for body in shapes:
        spec = RequestSpec("POST", "/v1/x", ImageCall("generation", MODEL), json=body)
        assert with_body(spec).body == encode_json(body)
    get = RequestSpec("GET", "/v1/x", ImageCall("generation", MODEL))
    assert with_body(get) is get


@settings(max_examples=300)
@given(body=JSON)
def test_a_body_encoded_by_the_made_once_encoder_is_what_json_dumps_gives(body: Any) -> None:
    assert encode_json(body) == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_body_that_holds_itself_is_refused_as_json_refuses_it() -> None:
    body: dict[str, Any] = {"contents": []}
    body["contents"].append(body)
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json(body)
    assert encode_json({"contents": [1]}) == b'{"contents":[1]}'  # and the next body is fine


def test_idempotency_keys_are_128_random_bits_and_never_repeat() -> None:
    keys = [new_idempotency_key() for _ in range(1000)]  # spans several batches
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_keys_its_parent_does_not() -> None:
    new_idempotency_key()  # the parent has spare keys now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next key and leave at once
        os.write(write, new_idempotency_key().encode())
        os._exit(0)
    os.close(write)
    child_key = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_keys = {new_idempotency_key() for _ in range(64)}
    assert re.fullmatch(r"[0-9a-f]{32}", child_key)
    assert child_key not in parent_keys


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


def test_scanning_contents_counts_the_image_bytes_given_inline() -> None:
    png = make_png(8, 8)
    loads, inline = scan_contents(["a cube", png, {"inline_data": {"data": png}}, {"text": "x"}])
    assert loads == []
    assert inline == 2 * len(png)
    wire = normalize_contents(["a cube", png])
    assert inline_data_size(wire) == len(base64.b64encode(png))


@pytest.mark.anyio
async def test_a_request_of_megabytes_of_inline_images_arrives_intact(fake_maxapi: FakeMaxAPI) -> None:
    # Past 256 KiB of images the body is encoded in a worker thread: the same bytes arrive.
    images = [make_png(16, 16, seed=i) + os.urandom(200_000) for i in range(3)]
    async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
        await client.models.generate_content(model=MODEL, contents=["compose these", *images])
    sent = fake_maxapi.requests_to(f"/v1beta/models/{MODEL}:generateContent")[-1].json
    parts = sent["contents"][0]["parts"]
    assert parts[0] == {"text": "compose these"}
    assert [base64.b64decode(p["inlineData"]["data"]) for p in parts[1:]] == images


def test_generate_content_options_are_checked_once_per_set_but_never_their_verdicts() -> None:
    text = [{"role": "user", "parts": [{"text": "a fox"}]}]
    first = build_generate_content_request(MODEL, text, aspect_ratio="16:9", response_modalities=["image"])
    again = build_generate_content_request(MODEL, text, aspect_ratio="16:9", response_modalities=("IMAGE",))
    assert again.json == first.json
    # Words are keyed as given ("image" and "IMAGE" are two sets), each checked once.
    assert again.call == first.call
    assert (
        build_generate_content_request(MODEL, text, aspect_ratio="16:9", response_modalities=["image"]).call
        is first.call
    )
    with pytest.raises(InvalidRequestError, match="response_modalities"):
        build_generate_content_request(MODEL, text, response_modalities=["VIDEO"])
    with pytest.raises(InvalidRequestError, match="aspect_ratio"):
        build_generate_content_request(MODEL, text, aspect_ratio="7:3")
    # A set that warns warns every time; a generation_config is checked every time.
    for _ in range(2):
        with pytest.warns(MaxAPIWarning, match="image_size"):
            build_generate_content_request(MODEL, text, image_size="2K")
        with pytest.raises(InvalidRequestError, match="generation_config"):
            build_generate_content_request(MODEL, text, generation_config={"responseModalities": ["VIDEO"]})


PROMPTS = st.text(max_size=40) | st.sampled_from([TEXT_SLOT, 'say "hi" \\ \n', "\x00", "é ✓ 🦊"])


@settings(max_examples=300)
@given(
    prompt=PROMPTS,
    ratio=st.sampled_from([None, "1:1", "16:9"]),
    route=st.sampled_from([None, "mix", "official"]),
    n=st.sampled_from([1, 2]),
    queued=st.booleans(),
)
def test_a_body_encoded_around_the_prompt_is_the_body_encoded_whole(
    prompt: str, ratio: str | None, route: str | None, n: int, queued: bool
) -> None:
    if not prompt.strip():
        return  # refused: see the test above
    spec = build_generate_request(prompt, aspect_ratio=ratio, route_mode=route, n=n, queued=queued)
    assert spec.json is not None
    assert spec.json["prompt"] == prompt
    if queued:
        assert spec.body is None  # encoded when sent, "async" key and all
    else:
        assert spec.body == encode_json(spec.json)


@settings(max_examples=300)
@given(
    prompt=PROMPTS,
    ratio=st.sampled_from([None, "1:1", "21:9"]),
    modalities=st.sampled_from([None, ["IMAGE"], ("text", "image")]),
    route=st.sampled_from([None, "official-cheap"]),
    queued=st.booleans(),
)
def test_a_known_prompt_request_is_the_request_built_the_general_way(
    prompt: str, ratio: str | None, modalities: Any, route: str | None, queued: bool
) -> None:
    options: dict[str, Any] = {
        "aspect_ratio": ratio,
        "response_modalities": modalities,
        "route_mode": route,
        "queued": queued,
        "idempotency_key": "k",
    }
    general = build_generate_content_request(
        MODEL, [{"role": "user", "parts": [{"text": prompt}]}], **options
    )
    known = known_prompt_request(MODEL, prompt, **options)  # checked just now
    assert known is not None
    assert (known.method, known.path, known.json, known.headers) == (
        general.method,
        general.path,
        general.json,
        general.headers,
    )
    assert known.call is general.call
    assert known.body == encode_json(general.json)


def test_a_prompt_request_with_options_never_checked_is_left_to_the_general_builder() -> None:
    assert known_prompt_request("never/seen-model", "a fox", aspect_ratio="1:1") is None
    build_generate_content_request("never/seen-model", [{"parts": [{"text": "x"}]}], aspect_ratio="1:1")
    assert known_prompt_request("never/seen-model", "a fox", aspect_ratio="1:1") is not None
    # A set that warns is never remembered, so it warns on every call.
    assert known_prompt_request(MODEL, "a fox", image_size="2K") is None


def test_a_body_whose_options_hold_the_slot_is_encoded_whole() -> None:
    assert text_template({"model": TEXT_SLOT, "prompt": TEXT_SLOT}) is None
    assert text_template({"prompt": "no slot"}) is None
    spec = build_generate_request("a fox", model=TEXT_SLOT)
    assert spec.body is None
    assert spec.json is not None
    spec = build_generate_request("a fox", model=f"odd/{TEXT_SLOT}")  # the slot is a whole string
    assert spec.json is not None
    assert spec.body == encode_json(spec.json)
    assert text_template({"a": 1, "prompt": TEXT_SLOT}) == (b'{"a":1,"prompt":', b"}")


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
