"""The pure protocol layer: requests, argument checks, answers and errors, with no socket."""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import zlib

import pytest

import maxapi_async
from maxapi_async._protocol import assets as _assets
from maxapi_async._protocol import convert as _convert
from maxapi_async._protocol import openai_answer as _openai_answer
from maxapi_async._protocol.calls import ImageCall, error_from_response, parse_retry_after
from maxapi_async._protocol.catalog import MODELS, lookup_model
from maxapi_async._protocol.images import image_size, sniff_mime_type
from maxapi_async._protocol.openai_answer import parse_images_response
from maxapi_async._protocol.openai_request import (
    build_edit_request,
    build_generate_request,
    check_edit_arguments,
    reference_image,
)
from maxapi_async._protocol.options import ImageOptions


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


# -- request building ---------------------------------------------------------


def test_generate_request_sends_only_what_the_caller_set() -> None:
    spec = build_generate_request("a glass cube", ImageOptions())
    assert spec.method == "POST"
    assert spec.path == "/v1/images/generations"
    assert spec.json == {"model": "google/gemini-2.5-flash-image", "prompt": "a glass cube"}


def test_generate_request_carries_every_knob() -> None:
    options = ImageOptions(
        aspect_ratio="16:9",
        n=2,
        route_mode="official-cheap",
        asset_delivery="mirror",
        response_format="b64_json",
    )
    spec = build_generate_request("cube", options, queued=True)
    assert spec.json == {
        "model": "google/gemini-2.5-flash-image",
        "prompt": "cube",
        "aspect_ratio": "16:9",
        "n": 2,
        "route_mode": "official-cheap",
        "asset_delivery": "mirror",
        "response_format": "b64_json",
        "async": True,
    }


def test_edit_request_is_multipart_with_one_image_part_per_reference() -> None:
    png = tiny_png()
    refs = [reference_image(png, index=0, filename="a.png"), reference_image(png, index=1)]
    spec = build_edit_request("compose", refs, ImageOptions(aspect_ratio="1:1", n=2), queued=True)
    assert spec.json is None
    assert spec.form is not None
    fields = {p.name: p.value for p in spec.form if p.filename is None}
    assert fields == {
        "model": "google/gemini-2.5-flash-image",
        "prompt": "compose",
        "aspect_ratio": "1:1",
        "n": "2",
        "async": "true",
    }
    files = [p for p in spec.form if p.filename is not None]
    assert [(p.name, p.filename, p.content_type) for p in files] == [
        ("image[]", "a.png", "image/png"),
        ("image[]", "image-1.png", "image/png"),
    ]


# -- argument checks ----------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", None, 3])
def test_empty_prompt_is_refused(prompt: object) -> None:
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        build_generate_request(prompt, ImageOptions())  # type: ignore[arg-type]
    assert info.value.argument == "prompt"


@pytest.mark.parametrize("n", [0, 11, -1, True, 1.5, "2"])
def test_n_out_of_range_is_refused(n: object) -> None:
    with pytest.raises(maxapi_async.InvalidRequestError, match=r"n: must be an integer from 1 to 10"):
        build_generate_request("x", ImageOptions(n=n))  # type: ignore[arg-type]


def test_unsupported_aspect_ratio_names_the_allowed_ones() -> None:
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        build_generate_request("x", ImageOptions(aspect_ratio="7:3"))
    err = info.value
    assert err.argument == "aspect_ratio"
    assert "16:9" in err.allowed
    assert "21:9" in err.allowed
    assert "'16:9'" in str(err)
    assert isinstance(err, ValueError)


def test_unknown_route_mode_names_the_allowed_ones() -> None:
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        build_generate_request("x", ImageOptions(route_mode="cheapest"))
    assert info.value.argument == "route_mode"
    assert info.value.allowed == ("official", "official-cheap", "mix")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"response_format": "png"}, "response_format"),
        ({"asset_delivery": "cdn"}, "asset_delivery"),
        ({"model": ""}, "model"),
    ],
)
def test_other_choices_are_checked(kwargs: dict[str, str], argument: str) -> None:
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        build_generate_request("x", ImageOptions(**kwargs))  # type: ignore[arg-type]
    assert info.value.argument == argument


def test_resolution_on_flash_image_warns_instead_of_failing() -> None:
    with pytest.warns(maxapi_async.MaxAPIWarning, match="resolution='2K' is ignored"):
        spec = build_generate_request("x", ImageOptions(resolution="2K"))
    assert spec.json is not None
    assert spec.json["resolution"] == "2K"


def test_resolution_is_checked_on_a_model_with_tiers() -> None:
    build_generate_request("x", ImageOptions(model="google/gemini-3-pro-image-preview", resolution="2K"))
    with pytest.raises(maxapi_async.InvalidRequestError, match="resolution"):
        build_generate_request("x", ImageOptions(model="google/gemini-3-pro-image-preview", resolution="8K"))


def test_unknown_model_passes_through_without_size_checks() -> None:
    spec = build_generate_request(
        "x", ImageOptions(model="vendor/new-image-model", aspect_ratio="7:3", resolution="9K")
    )
    assert spec.json is not None
    assert spec.json["aspect_ratio"] == "7:3"
    assert spec.call.expected_size() is None


def test_edit_needs_at_least_one_reference_image() -> None:
    common = ImageOptions()
    with pytest.raises(maxapi_async.InvalidRequestError, match="at least one reference image"):
        check_edit_arguments("x", [], common)
    with pytest.raises(maxapi_async.InvalidRequestError, match="must be a list"):
        check_edit_arguments("x", b"\x89PNG", common)


def test_bytes_that_are_not_an_image_are_refused() -> None:
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        reference_image(b"hello, world", index=2)
    assert info.value.argument == "images[2]"
    assert "image/png" in info.value.allowed


# -- image bytes --------------------------------------------------------------


def test_sniffing_recognises_the_four_accepted_types() -> None:
    assert sniff_mime_type(tiny_png()) == "image/png"
    assert sniff_mime_type(b"\xff\xd8\xff\xe0" + b"\0" * 20) == "image/jpeg"
    assert sniff_mime_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff_mime_type(b"GIF89a" + b"\0" * 10) == "image/gif"
    assert sniff_mime_type(b"%PDF-1.7") is None
    assert sniff_mime_type(b"") is None


def test_image_size_reads_headers() -> None:
    assert image_size(tiny_png(7, 5)) == (7, 5)
    assert image_size(b"GIF89a" + struct.pack("<HH", 12, 34) + b"\0" * 8) == (12, 34)
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x04\x00\x00" + b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 480, 640)
    assert image_size(jpeg + b"\0" * 16) == (640, 480)
    assert image_size(b"not an image") is None
    assert image_size(b"\x89PNG\r\n\x1a\n") is None


# -- the size table -----------------------------------------------------------


def test_size_table_matches_googles_presets() -> None:
    flash = MODELS["google/gemini-2.5-flash-image"]
    assert flash.size_for("1:1") == (1024, 1024)
    assert flash.size_for("9:16") == (768, 1344)
    assert flash.size_for("16:9") == (1344, 768)
    assert flash.size_for("21:9") == (1536, 672)
    assert flash.size_for(None) == (1024, 1024)
    assert flash.size_for("16:9", "4K") == (1344, 768)  # resolution ignored
    pro = MODELS["google/gemini-3-pro-image-preview"]
    assert pro.size_for("9:16", "2K") == (1536, 2752)  # the product sheet's example
    assert lookup_model("gemini-2.5-flash-image") is flash
    assert lookup_model("models/gemini-2.5-flash-image") is flash
    assert lookup_model("someone/else") is None


# -- answers ------------------------------------------------------------------


def test_images_answer_keeps_unknown_fields() -> None:
    answer = {
        "created": 1732400000,
        "data": [{"url": "https://cdn.maxapi.dev/a.png", "revised_prompt": None, "seed": 7}],
        "usage": {"total_tokens": 3},
        "route": "official",
    }
    response = parse_images_response(answer)
    assert response.created == 1732400000
    assert response.data[0].url == "https://cdn.maxapi.dev/a.png"
    assert response.data[0].extra == {"seed": 7}
    assert response.extra == {"route": "official"}
    assert response.usage == {"total_tokens": 3}


@pytest.mark.parametrize(
    "answer",
    [
        [],
        "ok",
        None,
        {},
        {"data": []},
        {"data": [{}]},
        {"data": [{"url": 3}]},
        {"data": "x"},
        {"created": "yesterday", "data": [{"url": "u"}]},
        {"data": [{"url": "u"}], "usage": [1]},
    ],
)
def test_malformed_images_answers_raise_response_error(answer: object) -> None:
    with pytest.raises(maxapi_async.ResponseError):
        parse_images_response(answer)


def test_response_error_names_the_bad_field() -> None:
    with pytest.raises(maxapi_async.ResponseError, match=r"\$\.data\[0\]\.url"):
        parse_images_response({"data": [{"url": 3}]})


def test_non_json_success_body_is_a_response_error() -> None:
    with pytest.raises(maxapi_async.ResponseError, match="not JSON") as info:
        _convert.decode_json(b"<html>502</html>", status=200, request_id="r9", what="images")
    assert info.value.request_id == "r9"


def test_asset_gets_size_from_table_and_expiry_from_created() -> None:
    response = parse_images_response({"created": 1732400000, "data": [{"url": "https://c/x.png"}]})
    asset = _openai_answer.make_asset(
        response.data[0],
        None,
        call=ImageCall("generation", maxapi_async.DEFAULT_MODEL, "9:16"),
        created=1732400000,
        fetcher=None,
    )
    assert asset.size == (768, 1344)
    assert asset.mime_type == "image/png"
    assert asset.expires_at == dt.datetime(2024, 11, 23, 22, 13, 20, tzinfo=dt.timezone.utc) + dt.timedelta(
        days=7
    )


def test_inline_asset_takes_size_and_type_from_its_bytes() -> None:
    png = tiny_png(5, 4)
    response = parse_images_response({"data": [{"b64_json": base64.b64encode(png).decode()}]})
    assert response.data[0].b64_json is not None
    data = _assets.decode_b64(response.data[0].b64_json)
    asset = _openai_answer.make_asset(
        response.data[0], data, call=ImageCall("edit", maxapi_async.DEFAULT_MODEL), created=None, fetcher=None
    )
    assert (asset.width, asset.height, asset.mime_type, asset.data) == (5, 4, "image/png", png)


def test_bad_base64_is_a_response_error() -> None:
    with pytest.raises(maxapi_async.ResponseError, match="base64"):
        _assets.decode_b64("@@@not base64@@@=")


# -- errors -------------------------------------------------------------------


def test_openai_error_body() -> None:
    body = {"error": {"message": "bad ratio", "type": "invalid_request_error", "param": "x", "code": "bad"}}
    err = error_from_response(400, {"x-request-id": "req_1"}, json.dumps(body).encode())
    assert isinstance(err, maxapi_async.BadRequestError)
    assert (err.status, err.code, err.message, err.request_id) == (400, "bad", "bad ratio", "req_1")
    assert err.body == body


def test_google_error_body() -> None:
    body = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": []}}
    err = error_from_response(429, {"Retry-After": "7"}, json.dumps(body).encode())
    assert isinstance(err, maxapi_async.RateLimitError)
    assert (err.code, err.message, err.retry_after) == ("RESOURCE_EXHAUSTED", "quota", 7.0)


def test_task_platform_error_body() -> None:
    err = error_from_response(402, {}, b'{"code": 402, "msg": "insufficient points"}')
    assert isinstance(err, maxapi_async.InsufficientCreditsError)
    assert (err.code, err.message) == (402, "insufficient points")


def test_non_json_error_body_still_gives_a_typed_error() -> None:
    err = error_from_response(502, {"x-request-id": "r"}, b"<html><body>Bad gateway</body></html>")
    assert isinstance(err, maxapi_async.ServerError)
    assert "Bad gateway" in err.message
    assert err.request_id == "r"
    assert isinstance(err.body, str)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, maxapi_async.BadRequestError),
        (422, maxapi_async.BadRequestError),
        (401, maxapi_async.AuthenticationError),
        (402, maxapi_async.InsufficientCreditsError),
        (403, maxapi_async.PermissionDeniedError),
        (404, maxapi_async.NotFoundError),
        (408, maxapi_async.ConflictError),
        (409, maxapi_async.ConflictError),
        (429, maxapi_async.RateLimitError),
        (500, maxapi_async.ServerError),
        (503, maxapi_async.ServerError),
        (418, maxapi_async.APIError),
    ],
)
def test_status_maps_to_error_class(status: int, cls: type[maxapi_async.APIError]) -> None:
    err = error_from_response(status, {}, b"")
    assert type(err) is cls
    assert err.status == status
    assert f"HTTP {status}" in str(err)


@pytest.mark.parametrize("body", [b"[1,2]", b'"text"', b"{}", b'{"error": 5}', b"\xff\xfe", b"null"])
def test_odd_error_bodies_never_escape_as_other_exceptions(body: bytes) -> None:
    err = error_from_response(500, {}, body)
    assert isinstance(err, maxapi_async.ServerError)
    assert err.message


def test_retry_after_seconds_and_http_date() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None
