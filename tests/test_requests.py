"""The request side: one options object per endpoint, checked once per option set, and bodies.

The options are defined once (``maxapi_async._protocol.options``); the public methods' keyword types,
the batch items and the command line are made from them, so these tests hold the copies
to the definition.
"""

from __future__ import annotations

import base64
import inspect
import json
import math
import os
import re
import typing
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import (
    AsyncMaxAPI,
    ContentRequest,
    EditRequest,
    GenerateRequest,
    InvalidRequestError,
    MaxAPIWarning,
)
from maxapi_async._batch.runner import Batch, BatchOptionsDict
from maxapi_async._client.client import ClientOptionsDict
from maxapi_async._client.core import new_idempotency_key
from maxapi_async._protocol.calls import ImageCall, RequestSpec, check_json, encode_json, with_body
from maxapi_async._protocol.gemini_request import (
    build_generate_content_request,
    inline_data_size,
    normalize_contents,
    scan_contents,
)
from maxapi_async._protocol.openai_request import build_generate_request
from maxapi_async._protocol.options import (
    ContentOptions,
    ContentOptionsDict,
    ImageOptions,
    ImageOptionsDict,
    check_content_options,
    check_image_options,
)
from maxapi_async.testing import FakeMaxAPI, make_png

MODEL = "google/gemini-2.5-flash-image"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


# -- one definition ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "keywords"), [(ImageOptions, ImageOptionsDict), (ContentOptions, ContentOptionsDict)]
)
def test_the_keyword_types_are_the_options_fields(options: type[Any], keywords: type[Any]) -> None:
    fields = typing.get_type_hints(options)
    assert typing.get_type_hints(keywords) == fields
    assert list(keywords.__annotations__) == [a.name for a in attrs.fields(options)]


@pytest.mark.parametrize(
    ("item", "options"),
    [(GenerateRequest, ImageOptions), (EditRequest, ImageOptions), (ContentRequest, ContentOptions)],
)
def test_a_batch_item_is_its_calls_options_with_a_key(item: type[Any], options: type[Any]) -> None:
    assert issubclass(item, options)
    assert {a.name for a in attrs.fields(item)} - {a.name for a in attrs.fields(options)} <= {
        "prompt",
        "images",
        "contents",
        "key",
    }


def _keywords(function: Any) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]


def test_the_passed_on_keywords_are_the_constructors() -> None:
    # The blocking client passes these on: the same names, or a caller's keyword is lost.
    assert list(ClientOptionsDict.__annotations__) == _keywords(AsyncMaxAPI.__init__)
    assert list(BatchOptionsDict.__annotations__) == _keywords(Batch.__init__)


def test_every_image_option_is_a_command_line_flag() -> None:
    from maxapi_async._cli.commands import build_parser

    args = build_parser().parse_args(["generate", "x", "--asset-delivery", "mirror", "-n", "2"])
    assert {a.name for a in attrs.fields(ImageOptions)} <= set(vars(args))
    assert (args.asset_delivery, args.n, args.model) == ("mirror", 2, None)


# -- checked once, never their verdicts ----------------------------------------------------


def test_a_repeated_option_set_is_checked_once_but_never_answers_for_another_type() -> None:
    first = build_generate_request("a fox", ImageOptions(aspect_ratio="16:9", n=2))
    again = build_generate_request("a hare", ImageOptions(aspect_ratio="16:9", n=2))
    assert again.call is first.call  # one verdict: it is frozen
    assert again.json == {"model": MODEL, "prompt": "a hare", "aspect_ratio": "16:9", "n": 2}
    assert first.json == {"model": MODEL, "prompt": "a fox", "aspect_ratio": "16:9", "n": 2}
    # Values equal to a checked set's, of another type, are still refused.
    for n in (True, 2.0):
        assert ImageOptions(n=n) != ImageOptions(n=2)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="n"):
            build_generate_request("a fox", ImageOptions(aspect_ratio="16:9", n=n))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="prompt"):
        build_generate_request(" ", ImageOptions(aspect_ratio="16:9", n=2))
    with pytest.raises(InvalidRequestError, match="aspect_ratio"):  # unhashable: checked, not remembered
        build_generate_request("a fox", ImageOptions(aspect_ratio=["16:9"]))  # type: ignore[arg-type]
    # A set that warns warns every time.
    for _ in range(2):
        with pytest.warns(MaxAPIWarning, match="resolution") as record:
            build_generate_request("a fox", ImageOptions(resolution="2K"))
        assert record[0].filename == __file__  # the caller's line, however deep the check


def test_content_options_are_checked_once_per_set_but_never_their_verdicts() -> None:
    text = [{"role": "user", "parts": [{"text": "a fox"}]}]
    first = build_generate_content_request(
        text, ContentOptions(aspect_ratio="16:9", response_modalities=["image"])
    )
    again = build_generate_content_request(
        text, ContentOptions(aspect_ratio="16:9", response_modalities=("image",))
    )
    assert again.json == first.json
    assert again.call is first.call  # a list of words is kept as a tuple: the same set
    assert check_content_options(ContentOptions(response_modalities=["IMAGE"])).config == {
        "responseModalities": ["IMAGE"]
    }
    with pytest.raises(InvalidRequestError, match="response_modalities"):
        build_generate_content_request(text, ContentOptions(response_modalities=["VIDEO"]))
    with pytest.raises(InvalidRequestError, match="aspect_ratio"):
        build_generate_content_request(text, ContentOptions(aspect_ratio="7:3"))
    # A set that warns warns every time; a generation_config (a dict) is checked every time.
    bad_config = ContentOptions(generation_config={"responseModalities": ["VIDEO"]})
    for _ in range(2):
        with pytest.warns(MaxAPIWarning, match="image_size"):
            build_generate_content_request(text, ContentOptions(image_size="2K"))
        with pytest.raises(InvalidRequestError, match="generation_config"):
            build_generate_content_request(text, bad_config)


def test_the_checks_of_an_option_set_are_remembered() -> None:
    options = ImageOptions(aspect_ratio="4:3", route_mode="mix")
    assert check_image_options(options) is check_image_options(
        ImageOptions(aspect_ratio="4:3", route_mode="mix")
    )
    assert check_image_options(options).fields == {"aspect_ratio": "4:3", "route_mode": "mix"}


def test_the_client_route_fills_only_options_that_name_none() -> None:
    assert ImageOptions().with_route("mix").route_mode == "mix"
    assert ImageOptions(route_mode="official").with_route("mix").route_mode == "official"
    assert ContentOptions().with_route(None) == ContentOptions()


# -- bodies and keys -----------------------------------------------------------------------


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


@settings(max_examples=100)
@given(body=JSON)
def test_a_body_is_compact_utf8_json(body: Any) -> None:
    encoded = encode_json(body)
    expected = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    if not _floats(body):
        assert encoded == expected
    elif all(math.isfinite(f) for f in _floats(body)):  # check_json refuses the others first
        # The same numbers; an exponent is spelled 1e16 where json.dumps writes 1e+16.
        assert json.loads(encoded) == body
        assert len(encoded) <= len(expected)


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [f for item in value for f in _floats(item)]
    return []


def test_a_body_that_holds_itself_is_refused() -> None:
    body: dict[str, Any] = {"contents": []}
    body["contents"].append(body)
    with pytest.raises(InvalidRequestError, match="nested too deep"):
        check_json("contents", body)  # what the builders run before any body is encoded
    with pytest.raises(RecursionError):
        encode_json(body)
    assert encode_json({"contents": [1]}) == b'{"contents":[1]}'  # and the next body is fine


ODD_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(["\ud800", b"x", {1, 2}]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=3) | st.sampled_from([1, "\udfff"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(value=ODD_JSON)
def test_a_value_is_refused_exactly_when_strict_utf8_json_cannot_carry_it(value: Any) -> None:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
        # json.dumps writes a number key as a string; a body refuses it.
        carried = "keys must be strings" not in _keys_problem(value)
    except (TypeError, ValueError):
        carried = False
    if carried:
        check_json("generation_config", value)
    else:
        with pytest.raises(InvalidRequestError, match="generation_config"):
            check_json("generation_config", value)


def _keys_problem(value: Any) -> str:
    if isinstance(value, dict):
        if any(not isinstance(key, str) for key in value):
            return "keys must be strings"
        return "".join(_keys_problem(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return "".join(_keys_problem(item) for item in value)
    return ""


def test_a_refused_value_is_named_by_its_path() -> None:
    config = {"imageConfig": {"sizes": [1, {"x": math.nan}]}}
    with pytest.raises(InvalidRequestError, match=r"generation_config\.imageConfig\.sizes\[1\]\.x"):
        check_json("generation_config", config)
    with pytest.raises(InvalidRequestError, match="nested too deep"):
        check_json("contents", [[[["x"]]]], depth=3)
    check_json("contents", [[["x"]]], depth=3)


def test_idempotency_keys_are_128_random_bits_and_never_repeat() -> None:
    keys = [new_idempotency_key() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
    assert len(set(keys)) == len(keys)


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
