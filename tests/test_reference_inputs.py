"""Reference images are bounded and never block: a cap per image and per request, refused before
anything is sent; files read in a worker thread within the call's deadline, FIFOs and devices
refused unopened; request bodies above 1 MiB sent without aiohttp's "large body" warning.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import maxapi_async
from maxapi_async import APITimeoutError, AsyncMaxAPI, InvalidRequestError, RetryPolicy
from maxapi_async._transport.files import FileTooLarge, NotARegularFile, read_regular_file
from maxapi_async.testing import FakeMaxAPI, make_png

CAP = maxapi_async.MAX_REFERENCE_IMAGE_BYTES
PER_REQUEST = maxapi_async.MAX_REFERENCE_BYTES_PER_REQUEST
PNG = make_png(8, 8)


def png_of(size: int) -> bytes:
    """A PNG (as sniffing sees it) of exactly ``size`` bytes: a real image, then padding."""
    return PNG + b"\x00" * (size - len(PNG))


def test_the_caps_follow_the_services_inline_limits() -> None:
    assert CAP == 7 * 1024 * 1024  # Gemini: 7 MB per image given inline
    assert PER_REQUEST * 4 / 3 < 20_000_000  # as base64, within Gemini's 20 MB per request


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, retry_policy=RetryPolicy.none()
    ) as c:
        yield c


def sparse_file(path: Path, size: int) -> Path:
    """A file that says it holds ``size`` bytes (a PNG header, then a hole): no disk, no time."""
    with open(path, "wb") as fh:
        fh.write(PNG)
        fh.truncate(size)
    return path


# -- caps ----------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "file object"])
async def test_a_reference_above_the_cap_is_refused_before_sending(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, kind: str
) -> None:
    data = png_of(CAP + 1)
    image: Any = {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "file object": io.BytesIO(data),
    }[kind]
    with pytest.raises(InvalidRequestError, match="MAX_REFERENCE_IMAGE_BYTES") as info:
        await client.images.edit("make it night", [PNG, image])
    assert info.value.argument == "images[1]"
    assert fake_maxapi.requests == []


@pytest.mark.anyio
async def test_a_file_above_the_cap_is_refused_by_its_size_naming_it(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    big = sparse_file(tmp_path / "huge.png", 100 * CAP)
    with pytest.raises(InvalidRequestError, match=r"huge\.png") as info:
        await client.images.edit("make it night", [big])
    assert info.value.argument == "images[0]"
    assert fake_maxapi.requests == []


@pytest.mark.anyio
async def test_a_reference_at_the_cap_is_sent(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    await client.images.edit("make it night", [png_of(CAP)])
    assert len(fake_maxapi.requests[0].files[0].data) == CAP


@pytest.mark.anyio
async def test_references_above_the_request_cap_are_refused_naming_the_one_past_it(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    each = PER_REQUEST // 3 + 1
    third = sparse_file(tmp_path / "third.png", each)
    with pytest.raises(InvalidRequestError, match="MAX_REFERENCE_BYTES_PER_REQUEST") as info:
        await client.images.edit("compose", [png_of(each), png_of(each), third])
    assert info.value.argument == "images[2]"
    assert fake_maxapi.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["bytes", "path", "part dict", "base64 text"])
async def test_gemini_contents_are_held_to_the_same_caps(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path, how: str
) -> None:
    import base64

    data = png_of(CAP + 3)
    part: Any = {
        "bytes": data,
        "path": sparse_file(tmp_path / "huge.png", CAP + 3),
        "part dict": {"inline_data": {"mime_type": "image/png", "data": data}},
        "base64 text": {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}},
    }[how]
    with pytest.raises(InvalidRequestError, match="MAX_REFERENCE_IMAGE_BYTES") as info:
        await client.models.generate_content(contents=["put it on a beach", part])
    assert info.value.argument.startswith("contents[1]")
    assert fake_maxapi.requests == []


@pytest.mark.anyio
async def test_gemini_contents_above_the_request_cap_are_refused(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    each = PER_REQUEST // 3 + 1
    paths = [sparse_file(tmp_path / f"{i}.png", each) for i in range(2)]
    with pytest.raises(InvalidRequestError, match="MAX_REFERENCE_BYTES_PER_REQUEST") as info:
        await client.models.generate_content(contents=["compose", png_of(each), *paths])
    assert info.value.argument == "contents[3]"
    assert fake_maxapi.requests == []


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_a_file_that_reports_no_size_is_read_one_byte_past_the_cap_at_most() -> None:
    # /proc files say they hold 0 bytes and hold more: what a growing file looks like.
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(FileTooLarge) as info:
        read_regular_file("/proc/self/status", limit=16)
    assert info.value.size == 17


# -- never blocking --------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with no writer. Opening it to read blocks until a writer comes: one comes after
    5 s, so code that blocks fails its test instead of hanging the suite."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    done = threading.Event()

    def rescue() -> None:
        if not done.wait(5):
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)

    thread = threading.Thread(target=rescue, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join()


@pytest.mark.anyio
async def test_a_fifo_is_refused_at_once_without_being_opened(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, fifo: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequestError, match="FIFO") as info:
        await client.images.edit("make it night", [fifo], timeout=10)
    assert time.monotonic() - started < 2
    assert info.value.argument == "images[0]"
    with pytest.raises(InvalidRequestError, match="FIFO"):
        await client.models.generate_content(contents=["a cube", fifo], timeout=10)
    assert fake_maxapi.requests == []


@pytest.mark.parametrize("path", ["/dev/zero", "/"])
def test_devices_and_directories_are_not_read(path: str) -> None:
    if not os.path.exists(path) or sys.platform == "win32":
        pytest.skip(f"no {path} here")
    with pytest.raises(NotARegularFile):
        read_regular_file(path, limit=16)


@pytest.mark.anyio
async def test_a_file_object_that_never_answers_ends_at_the_calls_deadline(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    read_end, write_end = os.pipe()
    pipe = os.fdopen(read_end, "rb")
    closed = threading.Lock()

    def end_the_read() -> None:  # EOF for the abandoned read (and for old code, which hangs in it)
        if closed.acquire(blocking=False):
            os.close(write_end)

    rescue = threading.Timer(5, end_the_read)
    rescue.start()
    try:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            await client.images.edit("make it night", [pipe], timeout=0.3)
        assert time.monotonic() - started < 2
        assert info.value.sent is False
        assert fake_maxapi.requests == []
    finally:
        rescue.cancel()
        end_the_read()
        pipe.close()  # waits for the abandoned read, which EOF has ended


# -- big bodies ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_edit_above_one_mebibyte_sends_without_a_resource_warning(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    # pytest runs with filterwarnings=error: aiohttp's warning would fail this call.
    image = png_of(3 * 1024 * 1024)
    await client.images.edit("make it night", [image])
    assert fake_maxapi.requests[0].files[0].data == image


@pytest.mark.anyio
async def test_generate_content_above_one_mebibyte_sends_without_a_resource_warning(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    await client.models.generate_content(contents=["put it on a beach", png_of(3 * 1024 * 1024)])
    assert len(fake_maxapi.requests[0].body) > 4 * 1024 * 1024
