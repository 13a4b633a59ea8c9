"""``task wait`` / ``task status``, and the sizes the command line reports: a task is found by its
id alone, sizes come from the images when nothing else can tell them, and the ``--no-wait``
hint carries every option the task needs. Against FakeMaxAPI over real loopback HTTP."""

from __future__ import annotations

import shlex
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_harness import run, run_json, serve_fake

import maxapi_async
from maxapi_async._protocol.images import image_size
from maxapi_async.testing import FakeMaxAPI, make_png


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMaxAPI]:
    yield from serve_fake(monkeypatch, tmp_path)


def real_size(url: str) -> tuple[int, int] | None:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return image_size(answer.read())


def test_task_wait_reports_sizes_from_the_image_not_the_tables_default(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = run_json(capsys, "generate", "a cube", "-a", "16:9", "--no-wait")["task"]["id"]
    code, out, err = run(capsys, "task", "wait", task_id)  # no --kind, no -a: the id alone
    assert code == 0, err
    assert out.split()[0] == "1344x768"  # read from the image (the table's default would say 1024x1024)
    doc = run_json(capsys, "task", "wait", task_id)
    (image,) = doc["images"]
    assert (image["width"], image["height"]) == (1344, 768) == real_size(image["url"])


def test_the_kind_is_found_from_the_endpoints_and_operations_from_their_prefix(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ref.png").write_bytes(make_png(64, 64))
    edit_id = run_json(capsys, "edit", "night", "-i", "ref.png", "-a", "1:1", "--no-wait")["task"]["id"]
    code, out, err = run(capsys, "task", "status", edit_id)
    assert code == 0, err
    assert out.startswith(f"{edit_id}  edit  ")
    tried = [r.path for r in fake.requests if r.method == "GET"]
    assert tried[-2:] == [f"/v1/images/generations/{edit_id}", f"/v1/images/edits/{edit_id}"]

    with maxapi_async.MaxAPI(fake.api_key, base_url=fake.base_url) as client:
        operation = client.models.generate_content(contents="a cube", wait=False)
    before = len(fake.requests)
    code, out, err = run(capsys, "task", "status", f"operations/{operation.id}")
    assert code == 0, err
    assert [r.path for r in fake.requests[before:]] == [f"/v1beta/operations/{operation.id}"]


def test_task_status_of_a_finished_task_lists_its_images_with_their_sizes(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.complete_after_polls = 0
    task_id = run_json(capsys, "generate", "a cube", "-a", "9:16", "--no-wait")["task"]["id"]
    code, out, err = run(capsys, "task", "status", task_id)
    assert code == 0, err
    first, image = out.splitlines()
    assert first == f"{task_id}  generation  succeeded 100%"
    assert image.split()[0] == "768x1344"
    assert image.split()[1].startswith(fake.cdn_url)


def test_a_wrong_kind_says_so_and_an_unknown_id_names_every_endpoint_asked(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = run_json(capsys, "generate", "a cube", "--no-wait")["task"]["id"]
    code, _, err = run(capsys, "task", "wait", task_id, "--kind", "edit")
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"maxapi-async: error: no edit task {task_id} (")
    assert line.endswith("leave out --kind to look for it at every endpoint")
    code, _, err = run(capsys, "task", "status", "task_nope")
    assert code == 1
    assert err.strip() == (
        "maxapi-async: error: no task task_nope at the generation, edit, operation endpoints "
        "(HTTP 404 from each)"
    )


def test_the_no_wait_hint_carries_every_option_the_task_needs(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = "google/gemini-3-pro-image-preview"
    code, out, err = run(
        capsys,
        "generate",
        "a cube",
        "-a",
        "3:2",
        "--model",
        model,
        "--resolution",
        "2K",
        "--no-wait",
        "-o",
        "out",
    )
    assert code == 0, err
    hint = out.split("wait for it with: ", 1)[1].strip()
    words = shlex.split(hint)
    task_id = words[3]
    assert words == [
        "maxapi-async", "task", "wait", task_id, "--kind", "generation", "-a", "3:2", "--model", model,
        "--resolution", "2K", "-o", "out",
    ]  # fmt: skip
    code, out, err = run(capsys, *words[1:])
    assert code == 0, err
    assert out.split()[0] == "2528x1696"  # the model's 2K tier at 3:2
    assert (tmp_path / "out").is_dir()


def test_edit_without_a_ratio_prints_the_real_size(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ref.png").write_bytes(make_png(120, 80))
    code, out, err = run(capsys, "edit", "night", "-i", "ref.png")  # no -a, no --out: a URL only
    assert code == 0, err
    size, url = out.split()[:2]
    assert "?" not in size
    width, height = map(int, size.split("x"))
    assert (width, height) == real_size(url)
