"""bench/ope.py runs on a small log and its estimates agree with the references."""

from __future__ import annotations

import json
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
    # the headline figures as a record for the README's table (bench/table.py)
    (line,) = [ln for ln in out.splitlines() if ln.startswith("bench-record: ")]
    figures = {f["measure"]: f for f in json.loads(line.split(": ", 1)[1])["figures"]}
    ips = figures["IPS point estimate, 3,000 decisions"]
    ips_row = next(r for r in point_rows if r.startswith("ips"))
    assert f"{ips['value']:,.0f}" == ips_row.split()[3]
    assert ips["met"] == (ips["value"] >= 5e6) and ips["ratio"] > 0
    boot = figures["50 bootstrap resamples of SNIPS, 3,000 decisions"]
    snips_row = next(r for r in rows if r.startswith("snips") and "multinomial" in r)
    assert f"{boot['value']:.2f}" == snips_row.split()[2] and boot["met"] is True
