"""Asset URLs are URLs we fetch: ``http(s)`` only, at once refused otherwise (never retried), and
a CDN's redirects followed a few hops at most, each to ``http(s)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from maxapi_async import AsyncMaxAPI, ImageAsset, ResponseError, RetryPolicy
from maxapi_async._protocol.urls import MAX_ASSET_REDIRECTS
from maxapi_async.testing import FakeMaxAPI, Fault

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    # Retries on: a refusal must come at once anyway.
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, retry_policy=RetryPolicy.instant()
    ) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://cdn.example/image.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://cdn.example/image.png",
        "image.png",
        "//cdn.example/image.png",
        "http://[not-a-host/image.png",
    ],
)
@pytest.mark.parametrize("how", ["read", "save"])
async def test_an_asset_url_that_is_not_http_is_refused_at_once(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path, url: str, how: str
) -> None:
    asset = ImageAsset(url=url, fetcher=client)
    with pytest.raises(ResponseError, match="only http and https"):
        await _fetch(asset, how, tmp_path)
    assert not await _saved(tmp_path)
    assert fake_maxapi.cdn_requests == []


async def _fetch(asset: ImageAsset, how: str, folder: Path) -> None:
    if how == "read":
        await asset.read()
    else:
        await asset.save(folder / "image.png")


async def _saved(folder: Path) -> list[anyio.Path]:
    return [path async for path in anyio.Path(folder).iterdir()]


async def _asset(client: AsyncMaxAPI) -> ImageAsset:
    return (await client.images.generate("a cube")).images[0]


async def test_a_few_redirects_are_followed(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    asset = await _asset(client)
    assert asset.url is not None
    hop = Fault(status=302, headers={"Location": asset.url}, origin="cdn", times=MAX_ASSET_REDIRECTS)
    fake_maxapi.add_fault(hop)
    assert await asset.read() == fake_maxapi.assets[Path(asset.url).stem].data
    assert len(fake_maxapi.cdn_requests) == MAX_ASSET_REDIRECTS + 1


@pytest.mark.parametrize("how", ["read", "save"])
async def test_a_longer_redirect_chain_is_refused_without_retries(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path, how: str
) -> None:
    asset = await _asset(client)
    assert asset.url is not None
    relative = "/" + asset.url.split("/", 3)[3]  # a relative Location, read against the current URL
    fake_maxapi.add_fault(Fault(status=301, headers={"Location": relative}, origin="cdn", times=None))
    with pytest.raises(ResponseError, match="redirected more than"):
        await _fetch(asset, how, tmp_path)
    assert len(fake_maxapi.cdn_requests) == MAX_ASSET_REDIRECTS + 1
    assert not await _saved(tmp_path)


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://cdn.example/x.png", "data:image/png;base64,AAAA", ""]
)
async def test_a_redirect_to_anything_but_http_is_refused(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, location: str
) -> None:
    asset = await _asset(client)
    fake_maxapi.add_fault(Fault(status=302, headers={"Location": location}, origin="cdn", times=None))
    with pytest.raises(ResponseError):
        await asset.read()
    assert len(fake_maxapi.cdn_requests) == 1  # not retried
