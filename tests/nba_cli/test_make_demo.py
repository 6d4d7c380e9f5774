"""`make demo` itself, at a small size, on a fresh data directory."""

from __future__ import annotations

import json
import os
import re
import shlex
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
    # what is served is what production would serve: never a refused challenger
    block = text.split("--- GET /v1/models/current\n", 1)[1]
    current = json.JSONDecoder().raw_decode(block)[0]
    assert current["following"] == "models:/nba@champion"
    if "the gate refused the challenger" in text:
        assert current["is_baseline"], current  # fresh store: no champion before
    else:
        assert "the gate promoted the challenger" in text
        assert not current["is_baseline"] and current["model_version"] == "1", current

    # every printed command runs when pasted: quoted for the shell, and the
    # evaluation command, pasted into bash from the same directory, succeeds
    commands = [line[2:] for line in text.splitlines() if line.startswith("$ ")]
    assert len(commands) == 5, commands
    train = shlex.split(next(c for c in commands if " train " in c))
    assert train[train.index("--vw-args") + 1] == "--squarecb --gamma_scale 100"
    evaluate = next(c for c in commands if " evaluate " in c)
    pasted = evaluate.replace(
        str(tmp_path / "data" / "demo" / "evaluation"), str(tmp_path / "again")
    )
    assert pasted != evaluate
    again = subprocess.run(
        ["bash", "-c", pasted],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert (tmp_path / "again" / "estimates.png").is_file()
