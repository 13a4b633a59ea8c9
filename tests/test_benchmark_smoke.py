"""Smoke tests: ``benchmarks/run.py --quick`` runs every scenario and reports; the scripts run alone.

The numbers of a quick run mean nothing (tiny sizes, a busy test machine): these tests check that
every scenario measured something and said PASS or FAIL, not which.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from _redis_server import RedisServer

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCENARIOS = ("overhead", "native", "polling", "payload", "batch", "import")
NUMBER = r"[\d,]+(\.\d+)?x?"


def _run(script: str, *args: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def _cells(output: str, first: str) -> list[str]:
    """The cells after ``first`` in the markdown table row that starts with it."""
    match = re.search(rf"^\| {re.escape(first)} \|(.*)\|$", output, re.MULTILINE)
    assert match, f"no table row for {first!r} in:\n{output}"
    return [c.strip() for c in match.group(1).split("|")]


def _targets(output: str, scenario: str) -> list[str]:
    lines = re.findall(rf"^target \[{re.escape(scenario)}\] .*: (?:PASS|FAIL) \(.+\)$", output, re.MULTILINE)
    assert lines, output
    return lines


def test_run_quick_prints_one_table_and_saves_every_scenario(tmp_path: Path) -> None:
    out = _run("run.py", "--quick", "--results-dir", str(tmp_path), timeout=120)

    head = "| scenario | metric | maxapi_async | baseline | openai SDK | google-genai | target | result |"
    assert out.count(head) == 1, out
    table = [line for line in out.splitlines() if line.startswith("| ") and line != head]
    for scenario in SCENARIOS:
        rows = [line.split("|")[1:-1] for line in table if line.startswith(f"| {scenario} |")]
        assert rows, f"no rows for {scenario}:\n{out}"
        assert all(re.fullmatch(NUMBER, row[2].strip()) for row in rows), out  # maxapi_async
        assert any(row[7].strip() in ("PASS", "FAIL") for row in rows), out  # a target, judged
    assert re.search(r"^\d+ targets: \d+ PASS, \d+ FAIL, 0 N/A$", out, re.MULTILINE), out

    saved = sorted(tmp_path.glob("*-quick.json"))
    assert len(saved) == 1
    assert (tmp_path / "latest.json").read_bytes() == saved[0].read_bytes()
    data: dict[str, Any] = json.loads(saved[0].read_text())
    assert data["failures"] == {}
    assert {row["scenario"] for row in data["rows"]} == set(SCENARIOS)
    judged = [row for row in data["rows"] if row["verdict"]]
    assert all(row["verdict"] in ("PASS", "FAIL") for row in judged)
    assert all(isinstance(row["values"]["maxapi_async"], float | int) for row in judged)

    reports = data["reports"]
    overhead = {v["name"]: v for v in reports["overhead+native"]["variants"]}
    assert len(overhead) == 6
    assert all(v["runs"][0]["status"] == "ok" for v in overhead.values())
    polling = {run["name"]: run for run in reports["polling"]["runs"]}
    assert list(polling) == ["fixed 1 s poller", "fixed 1 s schedule (computed)", "maxapi_async"]
    assert all(run["resolved"] == run["tasks"] == 50 for run in polling.values())
    assert reports["polling"]["memory"]["pending"] == 50
    assert len(reports["payload"]["variants"]) == 4
    assert all(v["runs"][0]["status"] == "ok" for v in reports["payload"]["variants"])
    assert [(m["shape"], m["status"]) for m in reports["payload"]["memory"]] == [
        ("b64_json", "ok"),
        ("inlineData", "ok"),
    ]
    batches = {v["name"]: v["runs"][0] for v in reports["batch"]["variants"]}
    assert [(r["status"], r["ok_items"], r["submissions"], r["polls"]) for r in batches.values()] == [
        ("ok", 200, 200, 200)
    ] * 2
    assert batches["journal"]["journal_lines"] == 600
    assert [m["error"] for m in reports["import"]["modules"]] == [None] * 3


def test_the_scripts_still_run_on_their_own() -> None:
    out = _run("overhead.py", "--calls", "30", "--concurrency", "5", "--rounds", "1", "--warmup", "5",
               "--only", "raw aiohttp,maxapi_async")  # fmt: skip
    for variant in ("raw aiohttp", "maxapi_async"):
        assert re.fullmatch(r"\d+", _cells(out, variant)[1]), out  # CPU µs/request
    assert len(_targets(out, "overhead")) == 1, out  # the SDK target is N/A without the SDKs

    out = _run("batch.py", "--items", "100", "--warmup", "20", "--only", "no journal")
    cells = _cells(out, "no journal")
    assert cells[0] == "100", out
    assert all(re.fullmatch(NUMBER, c) for c in cells[1:]), out
    assert len(_targets(out, "batch")) == 2, out

    out = _run("payload.py", "--calls", "1", "--warmup", "0", "--rounds", "1", "--image-bytes", "100000",
               "--only", "maxapi_async b64_json,maxapi_async inlineData")  # fmt: skip
    for variant in ("maxapi_async b64_json", "maxapi_async inlineData"):
        assert all(re.fullmatch(NUMBER, c) for c in _cells(out, variant)), out
    assert len(_targets(out, "payload")) == 6, out  # throughput, stall and memory per shape

    out = _run("memory.py", "--image-bytes", "100000", "--only", "b64_json")
    assert all(re.fullmatch(NUMBER, c) for c in _cells(out, "b64_json")), out
    assert len(_targets(out, "payload")) == 1, out

    out = _run("import_time.py", "--rounds", "1", "--importtime-runs", "1", "--only", "maxapi_async")
    assert all(re.fullmatch(NUMBER, c) for c in _cells(out, "maxapi_async")), out
    assert len(_targets(out, "import")) == 2, out

    out = _run("library.py", "--calls", "50", "--blocks", "1")
    for call in ("images, URL answer", "generate_content, URL answer"):
        assert all(re.fullmatch(NUMBER, c) for c in _cells(out, call)), out
    assert len(out.splitlines()) == 6, out  # the header, its rule and four calls


def test_the_store_benchmark_counts_five_round_trips_per_item(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    out = _run(
        "store.py", "--items", "300", "--processes", "2", "--concurrency", "4",
        "--redis", redis_server.url(2), "--json", str(tmp_path / "store.json"),
    )  # fmt: skip
    item = _cells(out, "item")
    assert all(re.fullmatch(NUMBER, c) for c in item), out
    # claim, reserve, submitting, submitted, done; and each worker loads each script once
    assert item[0] == "300"
    assert 5 <= float(item[1]) <= 5.15, out
    polled = _cells(out, "item + one poll through the limiter")
    assert 7 <= float(polled[1]) <= 7.15, out  # two more per poll
    rows = json.loads((tmp_path / "store.json").read_text())["rows"]
    assert [row["items"] for row in rows] == [300, 300]
