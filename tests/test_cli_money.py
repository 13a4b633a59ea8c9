"""The command line puts money first: every local check before a paid request, a paid result
never lost when it cannot be saved (exit 3, with what fetches it again), and ``--dry-run``,
which prices the work and sends nothing. Against FakeMaxAPI over real loopback HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli_harness import run, serve_fake

import maxapi_async
from maxapi_async._cli import output as _cli_output
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

ROOT = Path(__file__).resolve().parent.parent
UNPRICED = "google/gemini-3-pro-image-preview"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMaxAPI]:
    yield from serve_fake(monkeypatch, tmp_path)


def error_line(err: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith("maxapi-async: error: ")]
    return line


# -- every local check before the paid request ------------------------------------------------------


def test_an_out_that_is_a_file_fails_before_anything_is_sent(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "prompts.txt").write_text("a cube\n")
    for argv in (
        ["generate", "a cube", "-o", "prompts.txt"],
        ["generate", "a cube", "--queued", "-o", "prompts.txt"],
        ["edit", "x", "-i", "prompts.txt", "-o", "prompts.txt"],
        ["batch", "prompts.txt", "-o", "prompts.txt"],
        ["task", "wait", "task_1", "-o", "prompts.txt"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == _cli_output.EXIT_USAGE == 2, err
        assert out == ""
        assert error_line(err) == (
            "maxapi-async: error: --out prompts.txt: is a file, not a folder; nothing was sent"
        )
    assert fake.requests == []


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc, where nobody may make a folder")
def test_an_out_nobody_can_write_fails_before_anything_is_sent(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "generate", "a cube", "-o", "/proc/nope")
    assert code == 2
    assert error_line(err).startswith("maxapi-async: error: --out /proc/nope: cannot write a file there (")
    assert error_line(err).endswith("); nothing was sent")
    assert fake.requests == []


def test_a_batch_checks_its_reference_files_before_sending_any_item(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = ["a cube", json.dumps({"prompt": "night", "images": ["missing.png"], "key": "night"})]
    (tmp_path / "p.txt").write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "batch", "p.txt")
    assert code == 2
    assert error_line(err) == (
        "maxapi-async: error: p.txt, item 'night': images[0] missing.png: no such file; nothing was sent"
    )
    assert fake.requests == []


# -- paid, not saved: exit 3, and what fetches it again -------------------------------------------


def test_a_paid_image_that_cannot_be_saved_exits_3_naming_its_url(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake.add_fault(Fault(status=404, origin="cdn", times=None))  # the download fails after the 200
    code, out, err = run(capsys, "--json", "generate", "a cube", "-a", "16:9", "-o", str(tmp_path / "out"))
    assert code == _cli_output.EXIT_PAID_NOT_SAVED == 3
    line = error_line(err)
    assert len(fake.requests_to("/v1/images/generations")) == 1  # paid once, not repeated
    url = re.search(r"download it from (\S+)", line)
    assert url is not None, line
    assert url.group(1).startswith(fake.cdn_url)
    assert line.startswith("maxapi-async: error: the image was made (and paid for) but not saved: ")
    error = json.loads(out)["error"]
    assert error["exit_code"] == 3
    assert error["urls"] == [url.group(1)]
    assert error["type"] == "NotFoundError"


def test_a_paid_task_that_cannot_be_saved_names_the_command_that_fetches_it_again(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake.add_fault(Fault(status=404, origin="cdn", times=None))
    code, _, err = run(capsys, "generate", "a cube", "--queued", "-a", "3:2", "-o", "out")
    assert code == 3
    line = error_line(err)
    match = re.search(r"fetch it again with: (maxapi-async task wait (task_\S+) .*)$", line)
    assert match is not None, line
    assert match.group(1) == f"maxapi-async task wait {match.group(2)} --kind generation -a 3:2 -o out"

    fake.clear_faults()  # the CDN is back: the printed command fetches it
    code, out, err = run(capsys, *match.group(1).split()[1:])
    assert code == 0, err
    assert "1248x832" in out
    assert (tmp_path / "out").is_dir()


# -- --dry-run -------------------------------------------------------------------------------------


def test_generate_dry_run_prints_the_request_and_its_price_and_sends_nothing(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAXAPI_KEY")  # no key needed to see what it would cost
    code, out, err = run(
        capsys, "generate", "a cube", "-a", "16:9", "-n", "2", "--route-mode", "official-cheap", "--dry-run"
    )
    assert code == 0, err
    assert out.splitlines() == [
        "dry run: nothing was sent",
        "POST /v1/images/generations",
        "  model: 'google/gemini-2.5-flash-image'",
        "  prompt: 'a cube'",
        "  aspect_ratio: '16:9'",
        "  route_mode: 'official-cheap'",
        "  n: 2",
        "estimate: 2 images of google/gemini-2.5-flash-image on official-cheap: 0.048 credits",
    ]
    doc = json.loads(run(capsys, "--json", "generate", "a cube", "--queued", "--dry-run")[1])
    assert doc["request"]["json"] == {"model": maxapi_async.DEFAULT_MODEL, "prompt": "a cube", "async": True}
    assert doc["credits"] == 0.04
    assert fake.requests == []


def test_edit_dry_run_reads_and_checks_the_references_and_sends_nothing(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(make_png(16, 16))
    code, out, err = run(capsys, "edit", "night", "-i", "a.png", "--dry-run")
    assert code == 0, err
    assert "POST /v1/images/edits" in out
    assert "  image[]: a.png (image/png, " in out
    assert run(capsys, "edit", "night", "-i", "nope.png", "--dry-run")[0] == 2  # checked all the same
    (tmp_path / "text.png").write_text("not an image")
    code, _, err = run(capsys, "edit", "night", "-i", "text.png", "--dry-run")
    assert code == 2
    assert "images[0]: is not an image" in err
    assert fake.requests == []


def test_an_invalid_option_fails_a_dry_run_like_the_real_call(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "generate", "a cube", "-a", "7:3", "--dry-run")
    assert code == 2
    assert error_line(err).startswith("maxapi-async: error: aspect_ratio: '7:3' is not supported")


def write_prompts(folder: Path) -> Path:
    lines = [
        "one",
        "two",
        json.dumps({"prompt": "three", "route_mode": "official-cheap", "n": 2}),
        json.dumps({"prompt": "four", "aspect_ratio": "7:3"}),
        "five",
    ]
    path = folder / "p.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_dry_run_prices_each_route_and_applies_the_budget_as_the_batch_would(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_prompts(tmp_path)
    code, out, err = run(capsys, "batch", "p.txt", "--budget", "0.1", "--dry-run")
    assert code == 0, err
    assert out.splitlines() == [
        "dry run: nothing was sent; 5 items from p.txt",
        "journal p.journal.jsonl: 0 finished, 0 submitted earlier (resumed, not paid again)",
        "invalid, would fail unsent: 0004: aspect_ratio: '7:3' is not supported by "
        "google/gemini-2.5-flash-image (allowed: '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', "
        "'16:9', '21:9')",
        "  route                         items  images    credits",
        "  the key's default order           2       2      0.080",
        "  to submit                         2       2      0.080",
        "budget 0.100: the first 2 fit; the batch would stop there and skip 2",
    ]
    doc = json.loads(run(capsys, "--json", "batch", "p.txt", "--dry-run")[1])
    assert [(r["route_mode"], r["items"], r["images"], r["credits"]) for r in doc["routes"]] == [
        ("the key's default order", 3, 3, pytest.approx(0.12)),
        ("official-cheap", 1, 2, pytest.approx(0.048)),
    ]
    assert (doc["submitted"], doc["credits"], doc["skipped_by_budget"]) == (4, pytest.approx(0.168), 0)
    assert fake.requests == []
    assert not (tmp_path / "p.journal.jsonl").exists()  # a dry run leaves nothing behind


def test_batch_dry_run_counts_what_the_journal_finished_or_submitted_as_free(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "p.txt").write_text("one\ntwo\nthree\n")
    journal = tmp_path / "p.journal.jsonl"
    task = {"id": "task_1", "kind": "generation", "submitted_at": 1.0}
    records: list[dict[str, Any]] = [
        {"event": "submit", "key": "0001", "idempotency_key": "k1"},
        {"event": "task", "key": "0001", "task": task},
        {"event": "done", "key": "0001", "task_id": "task_1", "cost": 0.04, "images": []},
        {"event": "submit", "key": "0002", "idempotency_key": "k2"},
        {"event": "task", "key": "0002", "task": {**task, "id": "task_2"}},
    ]
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, _ = run(capsys, "batch", "p.txt", "--dry-run")
    assert code == 0
    assert "journal p.journal.jsonl: 1 finished, 1 submitted earlier (resumed, not paid again)" in out
    assert "  to submit                         1       1      0.040" in out
    assert fake.requests == []


def test_batch_dry_run_with_a_budget_refuses_a_model_without_a_price(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "p.txt").write_text("one\n")
    code, _, err = run(capsys, "batch", "p.txt", "--model", UNPRICED, "--budget", "5", "--dry-run")
    assert code == 2
    assert UNPRICED in error_line(err)
    assert fake.requests == []


# -- documented ------------------------------------------------------------------------------------


def test_the_readme_documents_every_exit_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Exit codes:") :].split("\n\n", 1)[0]
    for code in (0, 1, 2, 3, 130):
        assert re.search(rf"\b{code}\b", section), code
    assert "paid for, not saved" in section
    assert _cli_output.EXIT_PAID_NOT_SAVED == 3
