"""Smoke test: ``benchmarks/overhead.py`` runs end to end and reports a number per variant."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

OVERHEAD = Path(__file__).resolve().parent.parent / "benchmarks" / "overhead.py"


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
