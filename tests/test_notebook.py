"""Notebook display: the reprs as pure functions, and a real notebook in a real Jupyter kernel.

``examples/notebook.ipynb`` runs in an ipykernel started from this interpreter
(``sys.executable -m ipykernel_launcher``, through a kernelspec written to a temporary
folder, so a fresh virtual environment needs no ``ipykernel install``) against a
FakeMaxAPI served by the test; its outputs must carry images.
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
from maxapi_async.testing import FakeMaxAPI, make_png

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


# -- the reprs, without a kernel ----------------------------------------------------------------


def test_inline_png_asset_has_png_and_a_data_url_thumbnail() -> None:
    data = make_png(1344, 768)
    asset = maxapi_async.ImageAsset(data=data, mime_type="image/png", width=1344, height=768)
    assert asset._repr_png_() == data
    html = asset._repr_html_()
    assert f'src="data:image/png;base64,{base64.b64encode(data).decode()}"' in html
    assert 'width="256"' in html
    assert "1344x768" in html


def test_url_asset_is_an_img_of_its_url_and_never_fetched() -> None:
    class NoNetwork:
        async def _download_bytes(self, url: str) -> bytes:
            raise AssertionError("a repr must not download")

        async def _download_to(self, url: str, path: Path) -> None:
            raise AssertionError("a repr must not download")

    expires = _dt.datetime(2030, 1, 2, 3, 4, tzinfo=_dt.timezone.utc)
    asset = maxapi_async.ImageAsset(
        url="https://cdn.example/a.png?x=1&y=<2>",
        width=200,
        height=100,
        expires_at=expires,
        fetcher=NoNetwork(),
    )
    assert asset._repr_png_() is None
    html = asset._repr_html_()
    assert '<img src="https://cdn.example/a.png?x=1&amp;y=&lt;2&gt;" width="200"' in html
    assert "expires 2030-01-02 03:04 UTC" in html


def test_non_png_inline_data_is_not_png_output() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    asset = maxapi_async.ImageAsset(data=jpeg, mime_type="image/jpeg")
    assert asset._repr_png_() is None
    assert "data:image/jpeg;base64," in asset._repr_html_()


def test_an_asset_without_data_or_url_still_renders() -> None:
    assert "no image data" in maxapi_async.ImageAsset()._repr_html_()


def test_result_grids_name_what_they_show() -> None:
    asset = maxapi_async.ImageAsset(url="https://cdn.example/a.png", width=1024, height=1024)
    result = maxapi_async.ImageResult(images=[asset, asset], model="m", request_id="req_1", cost=0.08)
    html = result._repr_html_()
    assert html.count("<img ") == 2
    assert "ImageResult: 2 images" in html
    assert "req_1" in html
    assert "0.08 credits" in html

    response = maxapi_async.GenerateContentResponse(images=[asset], request_id="req_2")
    html = response._repr_html_()
    assert html.count("<img ") == 1
    assert "GenerateContentResponse: 1 image" in html


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
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o["data"]]
    assert all("<img " in h for h in html)
    # The ImageResult grid, the URL asset's thumbnail, the edit, the Gemini answer, the queued result.
    assert sum(fake_maxapi.cdn_url in h for h in html) >= 4
    assert any("GenerateContentResponse" in h for h in html)
    displayed = [o for o in outputs if o["output_type"] == "display_data"]
    assert any(
        f'<img src="{fake_maxapi.cdn_url}/assets/' in o["data"].get("text/html", "") for o in displayed
    )
    # The inline asset: PNG output (bytes from memory) next to its data: URL thumbnail.
    (png,) = [o for o in displayed if "image/png" in o["data"]]
    assert base64.b64decode(png["data"]["image/png"]).startswith(b"\x89PNG")
    assert "data:image/png;base64," in png["data"]["text/html"]
    # Nothing was downloaded by a repr: the CDN saw only the edit's reference image.
    assert len(fake_maxapi.cdn_requests) == 1
