"""Notebook display: images embedded once, downloaded first by ``show()``; a real notebook in a
real Jupyter kernel.

``examples/notebook.ipynb`` runs in an ipykernel started from this interpreter
(``sys.executable -m ipykernel_launcher``, through a kernelspec written to a temporary
folder, so a fresh virtual environment needs no ``ipykernel install``) against a
FakeMaxAPI served by the test; its outputs must carry every image, each stored once.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import maxapi_async
from maxapi_async import _display
from maxapi_async.testing import FakeMaxAPI, make_png

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


# -- display, without a kernel ----------------------------------------------------------------------


class NoNetwork:
    async def _download_bytes(self, url: str) -> bytes:
        raise AssertionError("a plain display must not download")

    async def _download_to(self, url: str, path: Path) -> None:
        raise AssertionError("a plain display must not download")


@pytest.fixture
def displayed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """What IPython's ``display`` was given: (mime bundle, metadata) per output."""
    import IPython.display

    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def display(bundle: dict[str, Any], raw: bool = False, metadata: dict[str, Any] | None = None) -> None:
        assert raw
        shown.append((bundle, metadata or {}))

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(_display, "_in_ipython", lambda: True)  # as in a kernel
    return shown


def test_inline_png_is_embedded_once_as_image_png(displayed: list[tuple[dict[str, Any], Any]]) -> None:
    data = make_png(1344, 768)
    asset = maxapi_async.ImageAsset(data=data, mime_type="image/png", width=1344, height=768)
    assert _display._display_now(asset)
    ((bundle, metadata),) = displayed
    assert bundle["image/png"] == data
    assert set(bundle) == {"image/png", "text/plain"}  # the bytes once: no data: URL beside them
    assert metadata == {"image/png": {"width": 256}}


def test_a_url_only_image_is_linked_and_never_fetched(displayed: list[tuple[dict[str, Any], Any]]) -> None:
    expires = _dt.datetime(2030, 1, 2, 3, 4, tzinfo=_dt.timezone.utc)
    asset = maxapi_async.ImageAsset(
        url="https://cdn.example/a.png?x=1&y=<2>",
        width=200,
        height=100,
        expires_at=expires,
        fetcher=NoNetwork(),
    )
    _display._display_now(asset)
    ((bundle, _),) = displayed
    assert "image/png" not in bundle
    assert '<img src="https://cdn.example/a.png?x=1&amp;y=&lt;2&gt;" width="200"' in bundle["text/html"]
    assert "URL expires 2030-01-02 03:04 UTC" in bundle["text/html"]
    assert "await maxapi_async.show" in bundle["text/html"]  # how to keep it


def test_a_result_shows_its_caption_then_one_output_per_image(
    displayed: list[tuple[dict[str, Any], Any]],
) -> None:
    data = make_png(64, 64)
    inline = maxapi_async.ImageAsset(data=data, width=64, height=64)
    linked = maxapi_async.ImageAsset(url="https://cdn.example/b.png", fetcher=NoNetwork())
    result = maxapi_async.ImageResult(images=[inline, linked], model="m", request_id="req_1", cost=0.08)
    _display._display_now(result)
    (caption, _), (first, _), (second, _) = displayed
    assert "ImageResult: 2 images" in caption["text/html"]
    assert "req_1" in caption["text/html"]
    assert "0.080 credits" in caption["text/html"]
    assert "<img" not in caption["text/html"]
    assert first["image/png"] == data
    assert "https://cdn.example/b.png" in second["text/html"]


def test_non_png_inline_bytes_are_embedded_once_too(displayed: list[tuple[dict[str, Any], Any]]) -> None:
    gif = b"GIF89a" + b"\x00" * 32
    _display._display_now(maxapi_async.ImageAsset(data=gif, mime_type="image/gif"))
    ((bundle, _),) = displayed
    assert bundle["text/html"].count("data:image/gif;base64,") == 1
    assert not any(k.startswith("image/") for k in bundle)


@pytest.mark.anyio
async def test_show_downloads_what_is_missing_and_embeds_it(
    fake_maxapi: FakeMaxAPI, displayed: list[tuple[dict[str, Any], Any]]
) -> None:
    async with maxapi_async.AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
        result = await client.images.generate("a cube", aspect_ratio="16:9", n=2)
        assert all(a.data is None for a in result.images)
        await maxapi_async.show(result)
    caption, *images = displayed
    assert "ImageResult: 2 images" in caption[0]["text/html"]
    assert [b["image/png"][:8] for b, _ in images] == [b"\x89PNG\r\n\x1a\n"] * 2
    assert len(fake_maxapi.cdn_requests) == 2  # each image downloaded once
    assert all(r.header("Authorization") is None for r in fake_maxapi.cdn_requests)


@pytest.mark.anyio
async def test_show_links_an_image_it_cannot_embed(
    fake_maxapi: FakeMaxAPI, displayed: list[tuple[dict[str, Any], Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_display, "DISPLAY_MAX_BYTES", 10)
    async with maxapi_async.AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
        result = await client.images.generate("a cube")
        await maxapi_async.show(result.images[0])
    ((bundle, _),) = displayed
    assert "image/png" not in bundle  # too big to embed: linked
    assert result.images[0].url is not None
    assert result.images[0].url in bundle["text/html"]


@pytest.mark.anyio
async def test_show_refuses_what_it_cannot_display() -> None:
    with pytest.raises(maxapi_async.InvalidRequestError, match="objects"):
        await maxapi_async.show("a picture")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_show_outside_ipython_prints_what_it_shows(
    fake_maxapi: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    async with maxapi_async.AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
        result = await client.images.generate("a cube", aspect_ratio="16:9")
        await maxapi_async.show(result)
    assert capsys.readouterr().out == f"1344x768  {result.images[0].url}\n"


def test_register_teaches_ipython_each_result_type() -> None:
    registered: list[type] = []

    class Formatter:
        def for_type(self, cls: type, func: Any) -> None:
            registered.append(cls)

    class Shell:
        class display_formatter:
            ipython_display_formatter = Formatter()

    maxapi_async.load_ipython_extension(Shell())
    assert registered == [
        maxapi_async.ImageAsset,
        maxapi_async.ImageResult,
        maxapi_async.GenerateContentResponse,
    ]


def test_the_models_know_nothing_of_display() -> None:
    import ast

    for module in ("models", "gemini"):
        tree = ast.parse((ROOT / "maxapi_async" / "_protocol" / f"{module}.py").read_text())
        imported = [
            n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
        ]  # (inside functions too)
        assert not any("display" in name for name in imported), module
    assert not hasattr(maxapi_async.ImageAsset, "_repr_html_")


# -- a real notebook in a real kernel ---------------------------------------------------------------


def image_outputs(cell: Any) -> list[dict[str, Any]]:
    return [o for o in cell.get("outputs", ()) if o["output_type"] in ("display_data", "execute_result")]


@pytest.mark.anyio
@pytest.mark.fake_maxapi(complete_after_polls=0)
# Jupyter's libraries have deprecations of their own in flight; only theirs are let through.
@pytest.mark.filterwarnings("ignore:Jupyter is migrating its paths:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_client.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_core.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:nbclient.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:zmq.*")
async def test_the_example_notebook_shows_images(fake_maxapi: FakeMaxAPI, tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = tmp_path / "kernels" / "maxapi-async-test"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "maxapi-async test",
        "language": "python",
        "env": {"MAXAPI_KEY": fake_maxapi.api_key, "MAXAPI_BASE_URL": fake_maxapi.base_url},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    km = AsyncKernelManager(kernel_name="maxapi-async-test", kernel_spec_manager=specs)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        km=km,
        timeout=60,
        kernel_name="maxapi-async-test",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        # We made the kernel manager, so nbclient would leave the kernel and its client open.
        executed = await client.async_execute(cleanup_kc=True)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)

    code = [c for c in executed.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", ()) if o["output_type"] == "error"]
    assert not errors, errors
    outputs = [o for c in code for o in image_outputs(c)]
    pngs = [o for o in outputs if "image/png" in o["data"]]
    # One image/png output per displayed image: the generated, the inline, the edited, the
    # Gemini answer's and the queued task's; each a real PNG, its bytes stored once.
    assert len(pngs) == 5, [sorted(o["data"]) for o in outputs]
    assert all(base64.b64decode(o["data"]["image/png"]).startswith(b"\x89PNG") for o in pngs)
    assert all(set(o["data"]) == {"image/png", "text/plain"} for o in pngs)
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o["data"]]
    assert not any("data:image" in h or "<img" in h for h in html)  # captions only
    assert any("GenerateContentResponse: 1 image" in h for h in html)
    # Nothing of a saved notebook points at the CDN for its pictures.
    assert not any(fake_maxapi.cdn_url in json.dumps(o["data"].get("image/png", "")) for o in outputs)
