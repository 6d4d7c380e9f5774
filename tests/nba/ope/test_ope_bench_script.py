"""bench/ope.py runs on a small log and its estimates agree with the references."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "ope.py"


def test_bench_runs_small_and_agrees() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--n", "3000", "--bootstrap", "50", "--naive-resamples", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "os.cpu_count() = " in out
    rows = [line for line in out.splitlines() if line.split()[:1] in (["ips"], ["snips"], ["dr"])]
    point_rows = [r for r in rows if r.endswith(("yes", "NO"))]
    assert len(point_rows) == 3 and all(r.endswith("yes") for r in point_rows), out
    assert sum("multinomial" in r for r in rows) == 3 and sum("poisson" in r for r in rows) == 3
