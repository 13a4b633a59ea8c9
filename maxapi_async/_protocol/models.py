"""The result classes callers get back from image calls: :class:`ImageAsset`, :class:`ImageResult`.

They are built from the answers' wire classes (:mod:`maxapi_async._protocol.openai_answer`,
:mod:`maxapi_async._gemini_models`): the wire data plus what the client knows (pixel
size from the model table, expiry, decoded bytes).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import attrs

__all__ = [
    "ASSET_TTL",
    "ImageAsset",
    "ImageResult",
]

#: How long MaxAPI keeps an output asset on its CDN.
ASSET_TTL = _dt.timedelta(days=7)


class _AssetFetcher(Protocol):
    """What an asset needs from the client to fetch itself (never the API key)."""

    async def _download_bytes(self, url: str) -> bytes: ...

    async def _download_to(self, url: str, path: Path) -> None: ...


def _bytes_repr(value: bytes | None) -> str:
    return "None" if value is None else f"<{len(value)} bytes>"


@attrs.frozen
class ImageAsset:
    """One output image.

    ``url`` is where the service stored it (a CDN URL, kept for 7 days: see
    ``expires_at``); ``data`` holds the decoded bytes when the answer carried
    them inline (``b64_json`` or ``inlineData``). ``width`` and ``height`` come
    from the image itself when the bytes are at hand, otherwise from the
    model's size table; they are ``None`` when neither is known.

    ``await asset.read()`` returns the bytes, downloading the URL (without the
    API key) when needed; ``await asset.save(path)`` streams them to disk.
    """

    url: str | None = None
    data: bytes | None = attrs.field(default=None, repr=_bytes_repr)
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    expires_at: _dt.datetime | None = None
    revised_prompt: str | None = None
    _fetcher: _AssetFetcher | None = attrs.field(default=None, eq=False, repr=False, alias="fetcher")

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` in pixels, when known."""
        if self.width is None or self.height is None:
            return None
        return (self.width, self.height)

    async def read(self) -> bytes:
        """The image bytes: inline data, or a download of :attr:`url`."""
        if self.data is not None:
            return self.data
        return await self._require_fetcher()._download_bytes(self._require_url())

    async def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image to ``path`` and return the file's path.

        A download is streamed to a temporary file beside the target and
        renamed into place, so a crash never leaves a half-written image under
        the final name. When ``path`` is an existing directory, the file is
        named after the URL (or ``image.<ext>`` for inline data).
        """
        import anyio  # on first use: ~20 ms at import

        target = Path(path)
        if await anyio.Path(target).is_dir():
            target = target / self._default_filename()
        if self.data is not None:
            from .._transport.files import write_bytes_atomic

            await write_bytes_atomic(target, self.data)
        else:
            await self._require_fetcher()._download_to(self._require_url(), target)
        return target

    def _default_filename(self) -> str:
        from .._transport.files import safe_filename

        return safe_filename(self.url, default="image" + _extension(self.mime_type))

    def _require_url(self) -> str:
        if not self.url:
            raise ValueError("this asset has neither inline data nor a URL")
        return self.url

    def _require_fetcher(self) -> _AssetFetcher:
        if self._fetcher is None:
            raise RuntimeError(
                "this asset is not bound to a client; download its url yourself "
                "or rebuild it through AsyncMaxAPI"
            )
        return self._fetcher


@attrs.frozen
class ImageResult:
    """The outcome of an image call: its assets plus what the answer said.

    ``raw`` is the answer's JSON as received, for fields this class does not
    name; an answer's inline images (``b64_json``) are not kept in it as text
    once decoded into their asset's ``data``, which would hold each image twice.
    ``request_id`` is the id the service logged the call under.
    """

    images: list[ImageAsset]
    model: str
    created: int | None = None
    usage: dict[str, Any] | None = None
    request_id: str | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    #: Estimated credits for this call (see :data:`maxapi_async.PRICES`); ``None`` when unknown.
    cost: float | None = None

    @property
    def created_at(self) -> _dt.datetime | None:
        """``created`` as an aware UTC datetime."""
        if self.created is None:
            return None
        return _dt.datetime.fromtimestamp(self.created, tz=_dt.timezone.utc)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[ImageAsset]:
        return iter(self.images)

    async def save_all(self, directory: str | os.PathLike[str], *, stem: str = "image") -> list[Path]:
        """Save every image into ``directory`` as ``{stem}-{i}.{ext}``; returns the paths."""
        import anyio

        folder = Path(directory)
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        for i, asset in enumerate(self.images):
            name = f"{stem}-{i}{_extension(asset.mime_type)}"
            paths.append(await asset.save(folder / name))
        return paths


_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def _extension(mime_type: str | None) -> str:
    return _EXTENSIONS.get(mime_type or "", ".png")
