"""`make demo` itself, at a small size, on a fresh data directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from nba.paths import PROJECT_ROOT


@pytest.mark.slow
def test_make_demo_runs_every_step(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NBA_DATA_DIR": str(tmp_path / "data"),
        "NBA_DEMO_HCPS": "200",
        "NBA_DEMO_DAYS": "10",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run(
        ["make", "-s", "demo"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    text = out.stdout
    assert out.returncode == 0, text[-4000:] + out.stderr[-4000:]
    for step in range(1, 6):
        assert f"=== [{step}/5]" in text
    # 1: the simulator's summary
    assert re.search(r"decisions \d+ \(skipped", text)
    assert (tmp_path / "data" / "demo" / "logs" / "decisions").is_dir()
    # 2: a model registered in the project's MLflow store
    assert "registered nba version 1 as 'challenger'" in text
    assert (tmp_path / "data" / "mlflow.db").is_file()
    # 3: an evaluation table with the simulator's truth beside the estimates
    assert (tmp_path / "data" / "demo" / "evaluation" / "estimates.png").is_file()
    assert "| truth |" in text
    # 4: the gate said what it did
    assert ("champion" in text) and ("refused" in text or "promoted" in text)
    # 5: a real decision over HTTP, with readable reasons, and the command to serve
    block = text.split("--- POST /v1/decisions (rep app, 3 visit topics with reasons)\n", 1)[1]
    decision = json.JSONDecoder().raw_decode(block)[0]
    assert decision["suggestions"], decision
    assert decision["chosen_action_id"] == decision["suggestions"][0]["action_id"]
    assert all(s["reasons"] for s in decision["suggestions"])
    assert all(s["channel"] == "rep_visit" for s in decision["suggestions"])
    assert "nba serve --host 127.0.0.1 --port 8000" in text
    assert "nba demo finished." in text
