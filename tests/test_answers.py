"""Every answer is read one way: bytes, one JSON decoder, the one converter, attrs classes, assets.

Generated answers of both APIs, with unknown keys at every level, go through the same readers
the client runs (``read_images_answer``, ``read_native_answer``): the assets are the images the
answer carries, in order, and every unknown key lands in the ``extra`` of the object it was on.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import ASSET_TTL, InsufficientCreditsError, ResponseError
from maxapi_async._protocol.assets import decode_b64, expiry
from maxapi_async._protocol.calls import ImageCall
from maxapi_async._protocol.convert import (
    NOT_FROM_JSON,
    WHOLE_OBJECT,
    Body,
    decode_json,
    structure,
    wire_keys,
)
from maxapi_async._protocol.gemini import _camel
from maxapi_async._protocol.gemini_answer import parse_generate_content, read_native_answer
from maxapi_async._protocol.openai_answer import parse_images_response, read_images_answer
from maxapi_async._protocol.task_objects import parse_task
from maxapi_async.testing import make_png

MODEL = "google/gemini-2.5-flash-image"
CALL = ImageCall("generation", MODEL, "16:9")
PNGS = [make_png(3, 2), make_png(5, 4, seed=1), make_png(7, 7, seed=2)]
URLS = ["https://cdn.maxapi.dev/a/1.png", "https://cdn.maxapi.dev/b/2.webp", "https://cdn.maxapi.dev/c/3.jpg"]
URL_TYPES = {".png": "image/png", "webp": "image/webp", ".jpg": "image/jpeg"}

SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6)
JSON = st.recursive(
    SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# Keys no answer class names, in any spelling.
UNKNOWN = st.dictionaries(st.from_regex(r"x[A-Za-z_]{0,6}", fullmatch=True), JSON, max_size=2)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- the OpenAI-compatible answer ---------------------------------------------------------


@st.composite
def images_answers(draw: st.DrawFn) -> tuple[dict[str, Any], list[Any]]:
    """An images answer, and what each item carries: a URL or the image's bytes."""
    carried: list[Any] = []
    items: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        inline = draw(st.booleans())
        image = draw(st.sampled_from(PNGS if inline else URLS))
        item: dict[str, Any] = {"b64_json": b64(image)} if inline else {"url": image}
        if draw(st.booleans()):
            item["revised_prompt"] = draw(st.none() | st.text(max_size=8))
        items.append({**draw(UNKNOWN), **item})
        carried.append(image)
    obj: dict[str, Any] = {**draw(UNKNOWN), "data": items}
    if draw(st.booleans()):
        obj["created"] = draw(st.none() | st.integers(1_600_000_000, 1_900_000_000))
    return obj, carried


@settings(max_examples=200)
@given(answer=images_answers())
def test_an_images_answer_gives_one_asset_per_item_and_keeps_unknown_keys(
    answer: tuple[dict[str, Any], list[Any]],
) -> None:
    obj, carried = answer
    response = parse_images_response(obj)
    assert response.extra == {k: v for k, v in obj.items() if k not in ("data", "created")}
    for item, data in zip(obj["data"], response.data, strict=True):
        assert data.extra == {k: v for k, v in item.items() if k not in ("url", "b64_json", "revised_prompt")}

    raw, assets = read_images_answer(json.dumps(obj).encode(), 200, "req_1", call=CALL, fetcher=None)
    assert len(assets) == len(carried)
    for item, image, asset in zip(obj["data"], carried, assets, strict=True):
        assert asset.revised_prompt == item.get("revised_prompt")
        if isinstance(image, bytes):
            assert (asset.data, asset.url, asset.size, asset.mime_type) == (
                image,
                None,
                png_size(image),
                "image/png",
            )
        else:
            assert (asset.data, asset.url, asset.size) == (None, image, CALL.expected_size())
            assert asset.mime_type == URL_TYPES[image[-4:]]
            assert asset.expires_at == expiry(obj.get("created"))
    # The raw answer, less the inline images' text (their bytes are the assets').
    assert raw == {**obj, "data": [{k: v for k, v in i.items() if k != "b64_json"} for i in obj["data"]]}


def test_an_unknown_key_is_kept_in_extra() -> None:
    answer = {"created": 1, "data": [{"url": "https://cdn/a.png", "seed": 7}], "model": "m"}
    response = parse_images_response(answer)
    assert response.extra == {"model": "m"}
    assert response.data[0].extra == {"seed": 7}


def test_an_images_answers_raw_holds_no_base64_once_decoded() -> None:
    body = json.dumps({"created": 1, "data": [{"b64_json": b64(PNGS[0]), "seed": 7}]}).encode()
    raw, (asset,) = read_images_answer(body, 200, None, call=CALL, fetcher=None)
    assert raw == {"created": 1, "data": [{"seed": 7}]}
    assert asset.data == PNGS[0]


def test_expiry_is_seven_days_after_created_whatever_came_before() -> None:
    assert expiry(None) is None
    for created in (1_700_000_000, 1_700_000_000, 1_700_000_001, 0, 1_700_000_000):
        assert expiry(created) == dt.datetime.fromtimestamp(created, tz=dt.timezone.utc) + ASSET_TTL
    assert expiry(253_402_300_800) is None  # year 10000: no date holds it
    assert expiry(-62_135_596_801) is None  # year 0


# -- the generateContent answer ------------------------------------------------------------

# Each key of the wire, and its snake_case spelling (proto JSON allows both).
SPELLINGS = st.sampled_from(["camel", "snake"])


def spelled(key: str, style: str) -> str:
    return key if style == "camel" else "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


@st.composite
def parts(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "inline", "file", "inline+file"]))
    style = draw(SPELLINGS)
    part: dict[str, Any] = draw(UNKNOWN)
    if kind == "text":
        part["text"] = draw(st.text(max_size=8))
    if kind.startswith("inline"):
        blob = {**draw(UNKNOWN), "data": b64(draw(st.sampled_from(PNGS)))}
        blob[spelled("mimeType", style)] = "image/png"
        part[spelled("inlineData", style)] = blob
    if kind.endswith("file"):
        file = {**draw(UNKNOWN), spelled("fileUri", style): draw(st.sampled_from(URLS))}
        if draw(st.booleans()):
            file[spelled("mimeType", style)] = (
                "image/png" if file[spelled("fileUri", style)].endswith("png") else None
            )
        part[spelled("fileData", style)] = file
    if draw(st.booleans()):
        part["thought"] = draw(st.booleans())
    return part


def field(obj: dict[str, Any], key: str) -> Any:
    """A wire field in either spelling."""
    return obj.get(key, obj.get(spelled(key, "snake")))


def expected_images(answer: dict[str, Any]) -> list[tuple[bytes | None, str | None]]:
    """(bytes, URL) of each final image, as the answer states them: an inline image and a
    ``fileData`` of the same type right after it are one image (its CDN copy)."""
    finals = [
        p
        for c in answer["candidates"]
        for p in field(c, "content")["parts"]
        if not p.get("thought") and (field(p, "inlineData") or field(p, "fileData"))
    ]
    out: list[tuple[bytes | None, str | None]] = []
    i = 0
    while i < len(finals):
        inline, file = field(finals[i], "inlineData"), field(finals[i], "fileData")
        if inline is not None:
            url = None
            after = finals[i + 1] if i + 1 < len(finals) else None
            after_file = field(after, "fileData") if after is not None else None
            if after is not None and field(after, "inlineData") is None and after_file is not None:
                ours, theirs = field(inline, "mimeType"), field(after_file, "mimeType")
                if ours is None or theirs is None or ours == theirs:
                    url = field(after_file, "fileUri")
                    i += 1
            out.append((base64.b64decode(inline["data"]), url))
        else:
            out.append((None, field(file, "fileUri")))
        i += 1
    return out


@st.composite
def native_answers(draw: st.DrawFn) -> dict[str, Any]:
    candidates = []
    for _ in range(draw(st.integers(1, 2))):
        content = {**draw(UNKNOWN), "role": "model", "parts": draw(st.lists(parts(), min_size=1, max_size=4))}
        candidates.append({**draw(UNKNOWN), "content": content, "finishReason": "STOP"})
    # At least one final image, so the answer is never blocked.
    candidates[0]["content"]["parts"].append({"fileData": {"fileUri": URLS[0], "mimeType": "image/png"}})
    answer = {**draw(UNKNOWN), "candidates": candidates}
    if draw(st.booleans()):
        answer[spelled("usageMetadata", draw(SPELLINGS))] = {**draw(UNKNOWN), "totalTokenCount": 1290}
    return answer


def known(cls: type[Any]) -> set[str]:
    return {k for f in attrs.fields(cls) for k in (f.name, _camel(f.name))}


@settings(max_examples=200)
@given(obj=native_answers())
def test_a_native_answer_gives_its_final_images_and_keeps_unknown_keys(obj: dict[str, Any]) -> None:
    received = dt.datetime.now(dt.timezone.utc)
    response, assets = read_native_answer(
        json.dumps(obj).encode(), 200, "req_1", response_modalities=None, call=CALL, fetcher=None
    )
    assert response.raw == obj
    assert response.request_id == "req_1"
    assert [(a.data, a.url) for a in assets] == expected_images(obj)
    for asset in assets:
        if asset.data is not None:
            assert (asset.size, asset.mime_type) == (png_size(asset.data), "image/png")
        else:
            assert asset.size == CALL.expected_size()
        if asset.url is not None:
            assert asset.expires_at is not None
            assert received <= asset.expires_at - ASSET_TTL <= dt.datetime.now(dt.timezone.utc)

    def unknown(value: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k not in known(cls)}

    assert response.extra == unknown(obj, type(response))
    for wire, candidate in zip(obj["candidates"], response.candidates, strict=True):
        assert candidate.extra == unknown(wire, type(candidate))
        assert candidate.content is not None
        assert candidate.content.extra == unknown(wire["content"], type(candidate.content))
        for wire_part, part in zip(wire["content"]["parts"], candidate.content.parts, strict=True):
            assert part.extra == unknown(wire_part, type(part))
            if part.inline_data is not None:
                assert part.inline_data.extra == unknown(
                    field(wire_part, "inlineData"), type(part.inline_data)
                )
            if part.file_data is not None:
                assert part.file_data.extra == unknown(field(wire_part, "fileData"), type(part.file_data))
    usage = field(obj, "usageMetadata")
    if usage is not None:
        assert response.usage_metadata is not None
        assert response.usage_metadata.total_token_count == 1290
        assert response.usage_metadata.extra == unknown(usage, type(response.usage_metadata))


def test_the_camel_case_key_wins_over_its_snake_case_spelling() -> None:
    response = parse_generate_content({"modelVersion": "camel", "model_version": "snake"})
    assert response.model_version == "camel"
    assert response.extra == {}


# -- the one decoder and the one converter -------------------------------------------------


@settings(max_examples=300)
@given(value=JSON)
def test_the_decoder_reads_what_json_dumps_writes(value: Any) -> None:
    body = json.dumps(value).encode()
    assert decode_json(body, status=200, request_id=None, what="x") == value
    assert decode_json(Body(body), status=200, request_id=None, what="x") == value
    assert decode_json(b"\xef\xbb\xbf" + body, status=200, request_id=None, what="x") == value  # a BOM


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>502</html>",
        b'{"a": 1',
        b'{"a": NaN}',
        b'{"s": "\\ud800"}',
        "{}".encode("utf-16"),
        b"[" * 5000,
    ],
)
def test_anything_but_strict_utf8_json_is_not_json(body: bytes) -> None:
    with pytest.raises(ResponseError, match="the images answer is not JSON") as info:
        decode_json(body, status=200, request_id="r9", what="images")
    assert (info.value.status, info.value.request_id) == (200, "r9")


def test_a_body_is_handed_over_once() -> None:
    body = Body(b"{}")
    assert decode_json(body, status=200, request_id=None, what="x") == {}
    with pytest.raises(RuntimeError, match="taken"):
        body.take()


@wire_keys(lambda name: name.upper())
@attrs.frozen
class _Shouting:
    name: str
    size: int | None = None
    note: str = attrs.field(default="", metadata=NOT_FROM_JSON)
    whole: dict[str, Any] = attrs.field(factory=dict, eq=False, metadata=WHOLE_OBJECT)
    extra: dict[str, Any] = attrs.field(factory=dict)


def test_a_new_answer_class_is_read_by_declaring_it() -> None:
    obj = {"NAME": "fox", "size": 3, "NOTE": "kept", "other": [1]}
    got = structure(obj, _Shouting, what="shout")
    assert got == _Shouting("fox", 3, extra={"NOTE": "kept", "other": [1]})
    assert got.whole is obj
    with pytest.raises(ResponseError, match=r"unexpected shout: .*\$\.size"):
        structure({"NAME": "fox", "SIZE": True}, _Shouting, what="shout")


def test_a_malformed_answer_names_the_path_of_every_fault() -> None:
    with pytest.raises(ResponseError, match=r"expected str \| None @ \$\.data\[1\]\.url$"):
        parse_images_response({"data": [{"url": URLS[0]}, {"url": 5}]})
    with pytest.raises(ResponseError, match=r"expected list @ \$\.data$"):
        parse_images_response({"data": {"url": URLS[0]}})
    answer = {
        "candidates": [{"content": {"parts": [{"text": 3}, {"fileData": {"mimeType": "image/png"}}]}}],
        "usageMetadata": {"totalTokenCount": "12"},
    }
    with pytest.raises(ResponseError) as info:
        parse_generate_content(answer, request_id="req_7")
    assert str(info.value).split(": ", 1)[1].split("; ") == [
        "invalid value for type, expected str | None @ $.candidates[0].content.parts[0].text",
        "required field missing @ $.candidates[0].content.parts[1].file_data.file_uri",
        "invalid value for type, expected int | None @ $.usage_metadata.total_token_count (request_id=req_7)",
    ]
    assert info.value.request_id == "req_7"
    assert info.value.body is answer


# -- what the other answers are read into ---------------------------------------------------


def test_an_envelope_whose_code_is_an_http_status_is_that_error_without_a_second_parse() -> None:
    envelope = {"code": 402, "msg": "insufficient points", "data": None}
    with pytest.raises(InsufficientCreditsError, match="insufficient points") as info:
        parse_task(envelope, kind="generation", request_id="req_1")
    assert info.value.body is envelope
    assert info.value.request_id == "req_1"


def test_base64_is_decoded_strictly_with_the_spellings_proto_json_allows() -> None:
    image = bytes(range(256)) * 3000
    text = b64(image)
    assert decode_b64(text) == image
    assert decode_b64(text.rstrip("=") + "\n") == image  # missing padding, a line break
    assert decode_b64(text.replace("+", "-").replace("/", "_")) == image  # URL-safe
    assert decode_b64("data:image/png;base64," + text) == image
    assert decode_b64("AAAA=") == bytes(3)  # padding beyond what is needed
    for junk in ("@@@@", text[:4000] + "=" + text[4000:], text + "AAAA==AA", "é" + text):
        with pytest.raises(ResponseError, match="not valid base64"):
            decode_b64(junk)
