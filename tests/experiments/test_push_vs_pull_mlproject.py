"""The MLproject ``push_vs_pull`` entry point runs at a tiny size, offline, and
records its report and plot in the run ``mlflow run`` created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nba.paths import PROJECT_ROOT


@pytest.mark.slow
def test_mlproject_push_vs_pull_entry_point(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_TRACKING_URI": uri,
            "NBA_DATA_DIR": str(tmp_path / "data"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
    )
    out = tmp_path / "report"
    params = {
        "hcps": "40",
        "days": "7",
        "seeds": "1",
        "policies": "uniform,campaign,vw:epsilon,oracle",
        "last_weeks": "1",
        "out": str(out),
    }
    cmd = [sys.executable, "-m", "mlflow", "run", str(PROJECT_ROOT), "-e", "push_vs_pull"]
    cmd += ["--env-manager", "local", "--experiment-name", "experiments/push_vs_pull"]
    for k, v in params.items():
        cmd += ["-P", f"{k}={v}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "report.md").is_file() and (out / "learning_curve.png").is_file()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("experiments/push_vs_pull")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "learning_curve.png"} <= names
    assert run.data.metrics["oracle.score_last"] == 1.0
