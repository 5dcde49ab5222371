"""The benchmark's own smoke test: its quickest mode runs our engine against the counting
target and produces the table, with our count equal to the target's. (Its goals are read
from the table by people, not asserted here: timings belong to the benchmark.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_bench_smoke_produces_the_table_with_exact_counts(tmp_path):
    output = tmp_path / "table.md"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = output.read_text()
    assert "| # | figure | measured" in table
    assert table.count("| b | open model at") == 2
    assert "| c | closed model" in table
    runs = [line for line in table.splitlines() if line.startswith("| e | ours: count")]
    assert len(runs) == 1 and "in 3 of 3 runs" in runs[0]
    assert "nproc" in table
