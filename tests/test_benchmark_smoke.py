"""Smoke tests: ``benchmarks/overhead.py`` and ``benchmarks/polling.py`` run end to end and report."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

OVERHEAD = Path(__file__).resolve().parent.parent / "benchmarks" / "overhead.py"
POLLING = Path(__file__).resolve().parent.parent / "benchmarks" / "polling.py"


def _client_importable() -> bool:
    try:
        return hasattr(importlib.import_module("maxapi_async"), "AsyncMaxAPI")
    except Exception:
        return False


def _row(output: str, variant: str) -> str:
    match = re.search(rf"^\| {re.escape(variant)} \|(.*)$", output, re.MULTILINE)
    assert match, f"no table row for {variant!r} in:\n{output}"
    return match.group(1)


def _cpu_cell(row: str) -> str:
    return row.split("|")[0].strip()


def test_overhead_benchmark_reports_both_variants() -> None:
    args = ["--calls", "50", "--concurrency", "10", "--rounds", "1", "--warmup", "20"]
    proc = subprocess.run(
        [sys.executable, str(OVERHEAD), *args, "--only", "raw aiohttp,maxapi_async"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr

    assert re.fullmatch(r"\d+", _cpu_cell(_row(proc.stdout, "raw aiohttp"))), proc.stdout
    maxapi_cpu = _cpu_cell(_row(proc.stdout, "maxapi_async"))
    if _client_importable():
        assert re.fullmatch(r"\d+", maxapi_cpu), proc.stdout
        assert re.search(r"^maxapi_async target: .*: (PASS|FAIL) ", proc.stdout, re.MULTILINE)
    else:
        assert maxapi_cpu.startswith("unavailable"), proc.stdout


def test_polling_benchmark_prints_its_table_and_targets(tmp_path: Path) -> None:
    report = tmp_path / "polling.json"
    args = ["--tasks", "50", "--min", "0.1", "--max", "0.5", "--cap", "500", "--json", str(report)]
    proc = subprocess.run([sys.executable, str(POLLING), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr

    # Columns: the measured fixed 1 s loop, the computed fixed 1 s schedule, maxapi_async.
    resolved = _row(proc.stdout, "tasks resolved / submitted")
    assert re.fullmatch(r"( 50 / 50 \|){3}", resolved), proc.stdout
    assert re.fullmatch(r"( \d+\.\d+ \|){3}", _row(proc.stdout, "polls per task (mean)")), proc.stdout
    memory = _row(proc.stdout, "memory per pending handle, awaited, bytes")
    assert re.fullmatch(r" n/a \| n/a \| [\d,]+ \|", memory), proc.stdout
    for target in ("mean lag", "polls per task", "highest polls", "memory per pending handle"):
        assert re.search(rf"^target {target}.*: (PASS|FAIL) \(", proc.stdout, re.MULTILINE), proc.stdout
    data = json.loads(report.read_text())
    names = [run["name"] for run in data["runs"]]
    assert names == ["fixed 1 s poller", "fixed 1 s schedule (computed)", "maxapi_async"]
    assert all(run["resolved"] == 50 for run in data["runs"])
    assert data["memory"]["pending"] == 50


BATCH = Path(__file__).resolve().parent.parent / "benchmarks" / "batch.py"


def test_batch_benchmark_prints_its_table_and_targets(tmp_path: Path) -> None:
    report = tmp_path / "batch.json"
    proc = subprocess.run(
        [sys.executable, str(BATCH), "--items", "200", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout

    for variant in ("no journal", "journal"):
        cells = [c.strip() for c in _row(proc.stdout, variant).split("|")[:-1]]
        assert cells[0] == "200", proc.stdout
        assert all(re.fullmatch(r"\d+(\.\d+)?", c) for c in cells[1:]), proc.stdout
        for target in ("items/s on one core", "MB peak"):
            pattern = rf"^target .*{target} \[{variant}\]: (PASS|FAIL) \("
            assert re.search(pattern, proc.stdout, re.MULTILINE), proc.stdout
    data = json.loads(report.read_text())
    assert [v["name"] for v in data["variants"]] == ["no journal", "journal"]
    for variant in data["variants"]:
        (run,) = variant["runs"]
        assert (run["status"], run["ok_items"], run["submissions"], run["polls"]) == ("ok", 200, 200, 200)
    assert data["variants"][1]["runs"][0]["journal_lines"] == 600
