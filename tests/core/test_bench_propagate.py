"""The propagation benchmark runs: its stand-in for cached embeddings keeps up with the protocol
propagation uses (it once lacked ``missing`` and crashed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "bench_propagate.py"


def test_the_propagation_benchmark_prints_its_table():
    result = subprocess.run([sys.executable, str(BENCH), "--slices", "6", "--size", "64"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| SAM-Med2D") or line.startswith("| weight-free")]
    assert len(rows) == 6 and all(int(row.split("|")[2]) > 0 for row in rows), result.stdout
