"""The pure Gemini-native layer: contents, the generateContent request, answers, blocked answers."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import ImageAsset, InvalidRequestError, MaxAPIError, MaxAPIWarning, ResponseError
from maxapi_async._protocol.calls import ImageCall
from maxapi_async._protocol.errors import APIError, BlockedError
from maxapi_async._protocol.gemini import Blob, Content, FileData, GenerateContentResponse, Part
from maxapi_async._protocol.gemini_answer import (
    check_blocked,
    decode_inline_images,
    image_parts,
    inline_payloads,
    make_native_assets,
    parse_generate_content,
    with_images,
)
from maxapi_async._protocol.gemini_request import (
    build_generate_content_request,
    needs_loading,
    normalize_contents,
    pending_loads,
    requested_modalities,
)
from maxapi_async._protocol.images import IMAGE_TYPES
from maxapi_async._protocol.options import ContentOptions
from maxapi_async.testing._png import make_png

MODEL = "google/gemini-2.5-flash-image"
PNG = make_png(3, 2)
PNG_B64 = base64.b64encode(PNG).decode()
DRAFT = make_png(5, 4, seed=1)
DRAFT_B64 = base64.b64encode(DRAFT).decode()
CDN_URL = "https://cdn.maxapi.dev/a/b/image.png"


def answer(*parts: dict[str, Any], finish: str = "STOP", **top: Any) -> dict[str, Any]:
    """A generateContent answer with one candidate holding ``parts``."""
    body: dict[str, Any] = {
        "candidates": [
            {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1290, "totalTokenCount": 1300},
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "resp-1",
    }
    body.update(top)
    return body


def inline(data: str = PNG_B64, **extra: Any) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": data}, **extra}


def snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", k).lower(): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def build(contents: Any = "a glass cube", **kwargs: Any) -> Any:
    queued = kwargs.pop("queued", False)
    options = ContentOptions(model=kwargs.pop("model", MODEL), **kwargs)
    return build_generate_content_request(normalize_contents(contents), options, queued=queued)


# -- the request ----------------------------------------------------------------


def test_request_body_holds_only_the_contents_by_default() -> None:
    spec = build("a glass cube")
    assert spec.method == "POST"
    assert spec.json == {"contents": [{"role": "user", "parts": [{"text": "a glass cube"}]}]}
    assert spec.form is None
    assert dict(spec.headers) == {}


def test_request_body_is_camel_case_exactly() -> None:
    spec = build(["put this cube on a beach", PNG], aspect_ratio="16:9", response_modalities=["IMAGE"])
    assert spec.json == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "put this cube on a beach"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                ],
            }
        ],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }


def test_path_keeps_the_model_slash() -> None:
    assert build().path == "/v1beta/models/google/gemini-2.5-flash-image:generateContent"


def test_models_prefix_is_dropped_from_path_and_call() -> None:
    spec = build(model="models/google/gemini-2.5-flash-image")
    assert spec.path == "/v1beta/models/google/gemini-2.5-flash-image:generateContent"
    assert spec.call.model == MODEL


def test_route_mode_and_queue_go_in_headers() -> None:
    spec = build(route_mode="official-cheap", queued=True)
    assert dict(spec.headers) == {"X-MaxAPI-Route-Mode": "official-cheap", "X-MaxAPI-Async": "true"}
    assert "route_mode" not in spec.json


def test_modalities_are_upper_cased_and_deduplicated() -> None:
    spec = build(response_modalities=["text", "Image", "IMAGE"])
    assert spec.json["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"]}


def test_requested_modalities_reads_the_built_request() -> None:
    assert requested_modalities(build()) is None
    assert requested_modalities(build(response_modalities=["IMAGE"])) == ["IMAGE"]


def test_image_size_is_sent_for_a_tiered_model() -> None:
    spec = build(model="google/gemini-3-pro-image-preview", aspect_ratio="9:16", image_size="2K")
    assert spec.json["generationConfig"] == {"imageConfig": {"aspectRatio": "9:16", "imageSize": "2K"}}
    assert spec.call.expected_size() == (1536, 2752)


def test_image_size_for_a_fixed_size_model_warns_and_is_sent() -> None:
    with pytest.warns(MaxAPIWarning, match="ignored"):
        spec = build(image_size="2K")
    assert spec.json["generationConfig"] == {"imageConfig": {"imageSize": "2K"}}


def test_unknown_model_passes_through_unchecked() -> None:
    spec = build(model="acme/next-image", aspect_ratio="7:3", image_size="8K")
    assert spec.path == "/v1beta/models/acme/next-image:generateContent"
    assert spec.call.expected_size() is None


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"model": ""}, "model"),
        ({"model": "models/"}, "model"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"aspect_ratio": 16}, "aspect_ratio"),
        ({"model": "google/gemini-3-pro-image-preview", "image_size": "8K"}, "image_size"),
        ({"response_modalities": []}, "response_modalities"),
        ({"response_modalities": ["AUDIO"]}, "response_modalities"),
        ({"response_modalities": "IMAGE"}, "response_modalities"),
        ({"route_mode": "fastest"}, "route_mode"),
        ({"generation_config": {"imageConfig": {"aspectRatio": "7:3"}}}, "generation_config"),
        ({"generation_config": {"responseModalities": ["VIDEO"]}}, "generation_config"),
        ({"generation_config": ["temperature"]}, "generation_config"),
        ({"system_instruction": 42}, "system_instruction"),
        ({"safety_settings": {"category": "x"}}, "safety_settings"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build(**kwargs)
    assert info.value.argument == argument


def test_bad_aspect_ratio_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequestError) as info:
        build(aspect_ratio="7:3")
    assert "16:9" in info.value.allowed


@pytest.mark.parametrize("contents", [[], [{"role": "user", "parts": []}], "a cube", [{"text": "x"}]])
def test_contents_must_be_normalised_and_not_empty(contents: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build_generate_content_request(contents, ContentOptions(model=MODEL))
    assert info.value.argument.startswith("contents")


def test_generation_config_is_a_base_the_arguments_override() -> None:
    spec = build(
        aspect_ratio="16:9",
        generation_config={
            "temperature": 0.5,
            "response_modalities": ["TEXT", "IMAGE"],
            "image_config": {"aspect_ratio": "1:1"},
        },
    )
    assert spec.json["generationConfig"] == {
        "temperature": 0.5,
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9"},
    }
    assert spec.call.aspect_ratio == "16:9"


def test_system_instruction_and_safety_settings_are_camel_case() -> None:
    spec = build(
        system_instruction="Always square.",
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    )
    assert spec.json["systemInstruction"] == {"parts": [{"text": "Always square."}]}
    assert spec.json["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]


def test_text_only_contents_make_a_generation_call() -> None:
    spec = build("a cube")
    assert spec.call == ImageCall("generation", MODEL, None, None)
    assert spec.call.expected_size() == (1024, 1024)


def test_image_in_contents_makes_an_edit_call_whose_size_follows_the_image() -> None:
    assert build(["restyle", PNG]).call.expected_size() is None
    assert build(["restyle", PNG], aspect_ratio="16:9").call.expected_size() == (1344, 768)


# -- contents -------------------------------------------------------------------


def test_a_string_is_one_user_text_part() -> None:
    assert normalize_contents("a cube") == [{"role": "user", "parts": [{"text": "a cube"}]}]


@pytest.mark.parametrize("data", [PNG, bytearray(PNG), memoryview(PNG)])
def test_image_bytes_become_inline_data(data: Any) -> None:
    assert normalize_contents(data) == [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}
    ]


def test_loose_parts_make_one_user_content() -> None:
    contents = [
        "compose",
        PNG,
        {"text": "and this"},
        {"inline_data": {"mime_type": "image/png", "data": PNG_B64}},
    ]
    assert normalize_contents(contents) == [
        {
            "role": "user",
            "parts": [
                {"text": "compose"},
                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                {"text": "and this"},
                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
            ],
        }
    ]


def test_file_data_dict_is_camel_cased() -> None:
    parts = normalize_contents([{"file_data": {"mime_type": "image/png", "file_uri": CDN_URL}}])[0]["parts"]
    assert parts == [{"fileData": {"mimeType": "image/png", "fileUri": CDN_URL}}]


def test_inline_dict_without_mime_type_is_sniffed() -> None:
    parts = normalize_contents({"inlineData": {"data": PNG_B64}})[0]["parts"]
    assert parts == [{"inlineData": {"data": PNG_B64, "mimeType": "image/png"}}]


def test_inline_dict_with_bytes_is_encoded() -> None:
    parts = normalize_contents({"inlineData": {"data": PNG}})[0]["parts"]
    assert parts == [{"inlineData": {"data": PNG_B64, "mimeType": "image/png"}}]


def test_a_content_dict_keeps_its_role() -> None:
    content = {"role": "user", "parts": [{"text": "put this cube on a beach"}, PNG]}
    assert normalize_contents(content) == [
        {
            "role": "user",
            "parts": [
                {"text": "put this cube on a beach"},
                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
            ],
        }
    ]


def test_a_list_of_content_dicts_is_a_conversation() -> None:
    history = [
        {"role": "user", "parts": [{"text": "a cube"}]},
        {"role": "model", "parts": [inline()]},
        {"role": "user", "parts": ["make it red"]},
    ]
    assert normalize_contents(history) == [
        {"role": "user", "parts": [{"text": "a cube"}]},
        {"role": "model", "parts": [inline()]},
        {"role": "user", "parts": [{"text": "make it red"}]},
    ]


def test_a_previous_answer_content_can_be_sent_back() -> None:
    signed = inline(thoughtSignature="sig")
    response = parse_generate_content(answer({"text": "Here."}, signed))
    content = response.candidates[0].content
    assert isinstance(content, Content)
    assert normalize_contents([content]) == [
        {"role": "model", "parts": [{"text": "Here."}, {"thoughtSignature": "sig", **inline()}]}
    ]


def test_part_instances_are_accepted_as_loose_parts() -> None:
    part = parse_generate_content(answer(inline())).parts[0]
    assert isinstance(part, Part)
    assert normalize_contents(["again", part])[0]["parts"][1] == inline()


def test_non_image_bytes_are_refused_naming_the_item() -> None:
    with pytest.raises(InvalidRequestError) as info:
        normalize_contents(["describe", b"%PDF-1.7 not an image"])
    assert info.value.argument == "contents[1]"
    assert info.value.allowed == IMAGE_TYPES


def test_non_image_bytes_in_a_content_are_named_by_path() -> None:
    with pytest.raises(InvalidRequestError) as info:
        normalize_contents([{"role": "user", "parts": ["x", b"plain text"]}])
    assert info.value.argument == "contents[0].parts[1]"


@pytest.mark.parametrize(
    ("contents", "argument"),
    [
        ([], "contents"),
        (42, "contents"),
        ([object()], "contents[0]"),
        (["x", {"role": "user", "parts": ["y"]}], "contents"),
        ({"role": "user", "parts": []}, "contents.parts"),
        ({}, "contents"),
        ({"text": 3}, "contents.text"),
        ({"inlineData": "abc"}, "contents.inlineData"),
        ({"inlineData": {"data": base64.b64encode(b"hello").decode()}}, "contents.inlineData.mimeType"),
        ({"fileData": {"mimeType": "image/png"}}, "contents.fileData"),
        ({"role": 1, "parts": ["x"]}, "contents.role"),
    ],
)
def test_unusable_contents_are_refused(contents: Any, argument: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        normalize_contents(contents)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("contents", "argument"),
    [
        (["x", Part(text="a \ud800")], "contents[1].text"),
        (["x", Part(text="x", extra={"seed": math.nan})], "contents[1].seed"),
        (["x", Blob(data="QUJD\ud800", mime_type="image/png")], "contents[1].inlineData.data"),
        (["x", FileData(file_uri="https://cdn.maxapi.dev/\udcff.png")], "contents[1].fileData.fileUri"),
        ([Content(role="user", parts=[Part(text="x")], extra={"k": math.inf})], "contents[0].k"),
        ({"role": "user", "parts": ["x"], "cachedContent": math.nan}, "contents.cachedContent"),
    ],
)
def test_what_json_cannot_carry_is_refused_naming_the_callers_item(contents: Any, argument: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        normalize_contents(contents)
    assert info.value.argument == argument


def test_a_string_is_text_never_a_path() -> None:
    assert not needs_loading("cube.png")
    assert normalize_contents("cube.png")[0]["parts"] == [{"text": "cube.png"}]


@pytest.mark.parametrize(
    "item",
    [Path("cube.png"), io.BytesIO(PNG), ImageAsset(url=CDN_URL)],
    ids=["path", "file", "url-asset"],
)
def test_paths_files_and_url_assets_need_loading(item: object) -> None:
    assert needs_loading(item)


def test_an_asset_with_bytes_is_used_inline_without_loading() -> None:
    asset = ImageAsset(data=PNG, mime_type="image/png")
    assert not needs_loading(asset)
    assert normalize_contents(asset)[0]["parts"] == [inline()]


def test_pending_loads_names_each_item_and_normalize_takes_the_bytes_in_order() -> None:
    first, second = Path("a.png"), ImageAsset(url=CDN_URL)
    contents = ["compose", first, second]
    assert pending_loads(contents) == [("contents[1]", first), ("contents[2]", second)]
    parts = normalize_contents(contents, loaded=[PNG, DRAFT])[0]["parts"]
    assert parts[1:] == [inline(), inline(DRAFT_B64)]


def test_pending_loads_checks_everything_else_before_any_io() -> None:
    with pytest.raises(InvalidRequestError) as info:
        pending_loads([Path("a.png"), b"not an image"])
    assert info.value.argument == "contents[1]"


def test_loaded_bytes_that_are_no_image_are_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        normalize_contents(["x", Path("notes.txt")], loaded=[b"just text"])
    assert info.value.argument == "contents[1]"


def test_normalize_without_the_loaded_bytes_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs loading"):
        normalize_contents([Path("a.png")])


def test_more_loaded_bytes_than_items_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="more loaded"):
        normalize_contents("a cube", loaded=[PNG])


# -- answers --------------------------------------------------------------------


def test_answer_is_parsed_into_python_names() -> None:
    response = parse_generate_content(answer({"text": "Here is your image."}, inline()), request_id="req_1")
    assert response.text == "Here is your image."
    assert response.finish_reason == "STOP"
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count == 1300
    assert response.model_version == "gemini-2.5-flash-image"
    assert response.response_id == "resp-1"
    assert response.request_id == "req_1"
    assert [p.inline_data.mime_type for p in image_parts(response) if p.inline_data] == ["image/png"]


def test_snake_case_answer_is_accepted() -> None:
    camel = answer({"text": "Here."}, inline(), {"fileData": {"mimeType": "image/png", "fileUri": CDN_URL}})
    camel["promptFeedback"] = {"blockReasonMessage": "fine"}
    assert parse_generate_content(snake_keys(camel)) == parse_generate_content(camel)


def test_unknown_fields_are_kept_at_every_level() -> None:
    obj = answer(inline(thoughtSignature="sig"), newTop=1)
    obj["candidates"][0]["groundingMetadata"] = {"x": 1}
    obj["usageMetadata"]["thoughtsTokenCount"] = 7
    response = parse_generate_content(obj)
    assert response.extra == {"newTop": 1}
    assert response.candidates[0].extra == {"groundingMetadata": {"x": 1}}
    assert response.parts[0].extra == {"thoughtSignature": "sig"}
    assert response.usage_metadata is not None
    assert response.usage_metadata.extra == {"thoughtsTokenCount": 7}


def test_raw_is_the_answer_as_received() -> None:
    obj = snake_keys(answer(inline()))
    assert parse_generate_content(obj).raw == obj


def test_text_skips_thoughts_and_joins_the_rest() -> None:
    response = parse_generate_content(
        answer({"text": "planning...", "thought": True}, {"text": "Here "}, {"text": "it is."})
    )
    assert response.text == "Here it is."


def test_answer_without_text_has_none() -> None:
    assert parse_generate_content(answer(inline())).text is None


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "not an object",
        {"candidates": {}},
        {"candidates": [{"content": {"parts": [{"text": 3}]}}]},
        {"candidates": [{"content": {"parts": [{"thought": "yes"}]}}]},
        {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png"}}]}}]},
        {"candidates": [{"content": {"parts": [{"fileData": {"mimeType": "image/png"}}]}}]},
        {"usageMetadata": {"totalTokenCount": "1300"}},
        {"promptFeedback": []},
        {"candidates": [{"index": True}]},
        {"candidates": [{"content": {"parts": [{"fileData": {"mimeType": "image/png", "fileUri": ""}}]}}]},
    ],
)
def test_malformed_answer_is_a_response_error(obj: Any) -> None:
    with pytest.raises(ResponseError, match=r"generateContent answer") as info:
        parse_generate_content(obj, request_id="req_9")
    assert info.value.request_id == "req_9"


def test_malformed_answer_error_names_the_path() -> None:
    with pytest.raises(ResponseError, match=r"\$\.candidates\[0\]\.content\.parts\[0\]"):
        parse_generate_content({"candidates": [{"content": {"parts": [{"text": 3}]}}]})


# -- images ---------------------------------------------------------------------


def test_thought_drafts_are_not_images_but_stay_reachable() -> None:
    response = parse_generate_content(
        answer(inline(DRAFT_B64, thought=True), inline(DRAFT_B64, thought=True), inline())
    )
    assert inline_payloads(response) == [PNG_B64]
    assert len(response.draft_parts) == 2
    assert all(p.thought for p in response.draft_parts)
    assert len(response.parts) == 3


def test_inline_image_becomes_an_asset_with_bytes_type_and_size() -> None:
    response = parse_generate_content(answer({"text": "Here."}, inline()))
    decoded = decode_inline_images(response)
    assert decoded == [PNG]
    (asset,) = make_native_assets(response, decoded, call=ImageCall("generation", MODEL), fetcher=None)
    assert asset.data == PNG
    assert asset.url is None
    assert asset.mime_type == "image/png"
    assert asset.size == (3, 2)
    assert asset.expires_at is None


def test_file_data_image_becomes_an_asset_with_url_table_size_and_expiry() -> None:
    response = parse_generate_content(answer({"fileData": {"mimeType": "image/webp", "fileUri": CDN_URL}}))
    decoded = decode_inline_images(response)
    assert decoded == [None]
    received = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    (asset,) = make_native_assets(
        response, decoded, call=ImageCall("generation", MODEL, "16:9"), fetcher=None, received_at=received
    )
    assert asset.url == CDN_URL
    assert asset.data is None
    assert asset.mime_type == "image/webp"
    assert asset.size == (1344, 768)
    assert asset.expires_at == received + dt.timedelta(days=7)


def test_file_data_without_mime_type_takes_it_from_the_url() -> None:
    response = parse_generate_content(answer({"fileData": {"fileUri": "https://cdn.maxapi.dev/x.jpg"}}))
    (asset,) = make_native_assets(response, [None], call=ImageCall("generation", MODEL), fetcher=None)
    assert asset.mime_type == "image/jpeg"


def test_file_data_right_after_its_inline_image_is_the_same_asset() -> None:
    response = parse_generate_content(
        answer(inline(), {"fileData": {"mimeType": "image/png", "fileUri": CDN_URL}}, inline(DRAFT_B64))
    )
    assets = make_native_assets(
        response, decode_inline_images(response), call=ImageCall("generation", MODEL), fetcher=None
    )
    assert [(a.data, a.url) for a in assets] == [(PNG, CDN_URL), (DRAFT, None)]


def test_decoded_list_must_match_the_image_parts() -> None:
    response = parse_generate_content(answer(inline()))
    with pytest.raises(ValueError, match="decoded"):
        make_native_assets(response, [], call=ImageCall("generation", MODEL), fetcher=None)


@pytest.mark.parametrize("data", ["!!!not base64!!!", ""])
def test_undecodable_inline_image_is_a_response_error(data: str) -> None:
    response = parse_generate_content(answer(inline(data)))
    call = ImageCall("generation", MODEL)
    with pytest.raises(ResponseError):  # not base64, or no image: decoding or the asset refuses it
        make_native_assets(response, decode_inline_images(response), call=call, fetcher=None)


def test_with_images_fills_images_and_keeps_the_rest() -> None:
    response = parse_generate_content(answer({"text": "Here."}, inline()), request_id="req_3")
    assets = make_native_assets(
        response, decode_inline_images(response), call=ImageCall("generation", MODEL), fetcher=None
    )
    done = with_images(response, assets)
    assert done.images == assets
    assert done.text == "Here."
    assert done.raw == response.raw
    assert done.request_id == "req_3"
    assert response.images == []


# -- blocked answers ------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "PROHIBITED_CONTENT",
        "SAFETY",
        "NO_IMAGE",
        "IMAGE_OTHER",
        "RECITATION",
        "BLOCKLIST",
        "SPII",
        "OTHER",
    ],
)
def test_candidate_without_image_and_a_block_finish_reason_is_blocked(reason: str) -> None:
    response = parse_generate_content(answer({"text": "I can't generate that image."}, finish=reason))
    with pytest.raises(BlockedError) as info:
        check_blocked(response, request_id="req_4")
    assert info.value.reason == reason
    assert info.value.request_id == "req_4"
    assert info.value.response is response
    assert "I can't generate that image." in str(info.value)


def test_prompt_feedback_without_candidates_is_blocked() -> None:
    response = parse_generate_content({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}})
    with pytest.raises(BlockedError, match="prompt was blocked") as info:
        check_blocked(response)
    assert info.value.reason == "SAFETY"


def test_prompt_feedback_blocks_even_a_text_only_request() -> None:
    response = parse_generate_content({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    with pytest.raises(BlockedError) as info:
        check_blocked(response, response_modalities=["TEXT"])
    assert info.value.reason == "PROHIBITED_CONTENT"


def test_no_candidates_and_no_reason_is_blocked_as_no_candidates() -> None:
    with pytest.raises(BlockedError) as info:
        check_blocked(parse_generate_content({"candidates": []}))
    assert info.value.reason == "NO_CANDIDATES"


def test_image_only_request_answered_in_words_is_no_image() -> None:
    response = parse_generate_content(answer({"text": "What style would you like?"}))
    with pytest.raises(BlockedError) as info:
        check_blocked(response, response_modalities=["IMAGE"])
    assert info.value.reason == "NO_IMAGE"


def test_text_and_image_request_answered_in_words_is_not_blocked() -> None:
    response = parse_generate_content(answer({"text": "What style would you like?"}))
    check_blocked(response)
    check_blocked(response, response_modalities=["TEXT", "IMAGE"])


def test_text_only_request_with_text_is_not_blocked() -> None:
    check_blocked(parse_generate_content(answer({"text": "A cube."})), response_modalities=["TEXT"])


def test_drafts_alone_are_no_image() -> None:
    response = parse_generate_content(answer(inline(DRAFT_B64, thought=True)))
    with pytest.raises(BlockedError) as info:
        check_blocked(response, response_modalities=["IMAGE"])
    assert info.value.reason == "NO_IMAGE"


def test_empty_stop_answer_is_no_image() -> None:
    with pytest.raises(BlockedError) as info:
        check_blocked(parse_generate_content(answer()))
    assert info.value.reason == "NO_IMAGE"


def test_an_image_is_never_blocked_whatever_the_finish_reason() -> None:
    check_blocked(
        parse_generate_content(answer(inline(), finish="MAX_TOKENS")), response_modalities=["IMAGE"]
    )


def test_text_only_request_blocked_says_no_text() -> None:
    response = parse_generate_content(answer(finish="SAFETY"))
    with pytest.raises(BlockedError, match="returned no text") as info:
        check_blocked(response, response_modalities=["TEXT"])
    assert info.value.reason == "SAFETY"


def test_blocked_error_is_a_maxapi_error_not_an_api_error() -> None:
    error = BlockedError("IMAGE_SAFETY", request_id="req_5")
    assert isinstance(error, MaxAPIError)
    assert not isinstance(error, APIError)
    assert str(error) == "the model returned no image (IMAGE_SAFETY) (reason=IMAGE_SAFETY, request_id=req_5)"


def test_blocked_error_carries_the_finish_message() -> None:
    obj = answer(finish="IMAGE_SAFETY")
    obj["candidates"][0]["finishMessage"] = "Unable to show the generated image."
    with pytest.raises(BlockedError, match="Unable to show the generated image"):
        check_blocked(parse_generate_content(obj))


# -- any JSON -------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.just(PNG_B64)
_good_blob = st.just({"mimeType": "image/png", "data": PNG_B64}) | st.just(
    {"mime_type": "image/png", "data": "@@"}
)
_blob = _good_blob | st.fixed_dictionaries(
    {}, optional={"mimeType": _leaf, "data": _leaf, "mime_type": _leaf}
)
_file = st.fixed_dictionaries({"fileUri": st.just(CDN_URL) | _leaf}, optional={"mimeType": _leaf})
_part = (
    st.fixed_dictionaries({"inlineData": _good_blob}, optional={"thought": st.booleans()})
    | st.fixed_dictionaries({"text": st.text(max_size=8)}, optional={"thought": st.booleans()})
    | st.fixed_dictionaries(
        {},
        optional={
            "text": _leaf,
            "thought": _leaf,
            "inlineData": _blob | _json,
            "inline_data": _blob,
            "fileData": _file | _json,
        },
    )
)
_reason = st.sampled_from(["STOP", "IMAGE_SAFETY", "SAFETY", "MAX_TOKENS"]) | _leaf
_candidate = st.fixed_dictionaries(
    {"content": st.fixed_dictionaries({"role": st.just("model"), "parts": st.lists(_part, max_size=4)})},
    optional={"finishReason": _reason, "index": st.integers()},
) | st.fixed_dictionaries(
    {},
    optional={
        "content": st.fixed_dictionaries(
            {}, optional={"role": _leaf, "parts": st.lists(_part, max_size=4) | _json}
        ),
        "finishReason": _reason,
        "finish_reason": _reason,
        "index": _leaf,
        "safetyRatings": _json,
    },
)
_tokens = st.sampled_from(["promptTokenCount", "total_token_count", "thoughtsTokenCount"])
_answers = st.fixed_dictionaries(
    {"candidates": st.lists(_candidate, max_size=2)},
    optional={"usageMetadata": st.dictionaries(_tokens, st.integers()), "modelVersion": st.text(max_size=8)},
) | st.fixed_dictionaries(
    {},
    optional={
        "candidates": st.lists(_candidate, max_size=3) | _json,
        "promptFeedback": st.fixed_dictionaries({}, optional={"blockReason": _reason}) | _json,
        "usageMetadata": st.dictionaries(_tokens, _leaf),
        "modelVersion": _leaf,
    },
)


def _whole_pipeline(obj: Any) -> None:
    response = parse_generate_content(obj)
    check_blocked(response, response_modalities=["IMAGE"])
    decoded = decode_inline_images(response)
    assets = make_native_assets(response, decoded, call=ImageCall("generation", MODEL), fetcher=None)
    assert isinstance(with_images(response, assets), GenerateContentResponse)


@settings(max_examples=300, deadline=None)
@given(_json | _answers)
def test_any_json_answer_raises_only_maxapi_errors(obj: Any) -> None:
    with contextlib.suppress(MaxAPIError):
        _whole_pipeline(obj)
