"""Big answers with inline images: read once, and always exactly what ``json.loads`` reads."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maxapi_async import AsyncMaxAPI, _bigjson
from maxapi_async.testing import FakeMaxAPI

needs_strict_base64 = pytest.mark.skipif(sys.version_info < (3, 11), reason="binascii strict_mode")


@contextlib.contextmanager
def small_thresholds() -> Iterator[None]:
    """Cut strings from 12 characters in bodies of any size, so small examples exercise it."""
    with mock.patch.object(_bigjson, "BIG_BODY", 0), mock.patch.object(_bigjson, "LONG_STRING", 12):
        yield


B64 = st.binary(min_size=9, max_size=60).map(lambda b: base64.b64encode(b).decode())
STRINGS = (
    B64
    | st.text(max_size=30)
    | st.sampled_from(["\x000", "\x001", "QUJDREVGR0hJSktM\n", 'QUJD"REVGR0hJSktM', "QUJDREVGR0hJSktM=="])
)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=25,
)


def outcome(body: bytes, loads: Any) -> tuple[str, Any]:
    try:
        return "value", loads(body)
    except (ValueError, RecursionError) as exc:
        return "error", (type(exc), str(exc))


@needs_strict_base64
@settings(max_examples=400)
@given(value=VALUES, ensure_ascii=st.booleans())
def test_any_document_reads_as_json_loads_reads_it(value: Any, ensure_ascii: bool) -> None:
    body = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    with small_thresholds():
        got, images = _bigjson.loads_with_base64(body)
    assert got == json.loads(body)
    for text in _strings(got):
        if id(text) in images:
            assert images[id(text)] == base64.b64decode(text, validate=True)


@needs_strict_base64
@settings(max_examples=400)
@given(value=VALUES, position=st.integers(min_value=0), byte=st.integers(0, 255))
def test_a_damaged_document_fails_or_reads_as_json_loads_does(value: Any, position: int, byte: int) -> None:
    body = bytearray(json.dumps(value).encode())
    body[position % len(body)] = byte
    with small_thresholds():
        assert outcome(bytes(body), lambda b: _bigjson.loads_with_base64(b)[0]) == outcome(
            bytes(body), json.loads
        )


@needs_strict_base64
def test_each_long_base64_string_comes_decoded_once() -> None:
    images = [bytes(range(256)) * 400, b"\x89PNG" * 30_000]
    texts = [base64.b64encode(image).decode() for image in images]
    body = json.dumps(
        {"created": 1, "data": [{"b64_json": t, "revised_prompt": 'a "cube"\n'} for t in texts]}
    )
    value, decoded = _bigjson.loads_with_base64(body.encode() + b" " * _bigjson.BIG_BODY)
    assert value == json.loads(body)
    assert [decoded[id(item["b64_json"])] for item in value["data"]] == images


def test_a_small_or_odd_body_goes_to_json_loads_whole() -> None:
    assert _bigjson.loads_with_base64(b'{"a": "QUJD"}') == ({"a": "QUJD"}, {})
    utf16 = json.dumps({"a": "x" * 10}).encode("utf-16")
    with small_thresholds():
        assert _bigjson.loads_with_base64(utf16) == (json.loads(utf16), {})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


@needs_strict_base64
@pytest.mark.anyio
async def test_the_client_reads_inline_images_through_the_shortcut(fake_maxapi: FakeMaxAPI) -> None:
    with small_thresholds():
        async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
            result = await client.images.generate("a cube", n=2, response_format="b64_json")
            native = await client.models.generate_content(contents="a cube")
    for asset, item in zip(result.images, result.raw["data"], strict=True):
        assert asset.data == base64.b64decode(item["b64_json"])
    inline = [
        p["inlineData"]["data"] for p in native.raw["candidates"][0]["content"]["parts"] if "inlineData" in p
    ]
    assert inline
    assert [a.data for a in native.images if a.data is not None] == [base64.b64decode(d) for d in inline]
