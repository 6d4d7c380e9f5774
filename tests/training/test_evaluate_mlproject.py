"""The MLproject ``evaluate`` entry point runs `nba evaluate` and records into the
project's run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nba.paths import PROJECT_ROOT
from simulators.hcp.world import simulate


@pytest.mark.slow
def test_mlproject_evaluate_entry_point(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    logs = tmp_path / "logs"
    simulate(hcps=120, days=5, policy="uniform", seed=2, out=logs)
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
    proc = subprocess.run(
        [
            sys.executable, "-m", "mlflow", "run", str(PROJECT_ROOT), "-e", "evaluate",
            "--env-manager", "local", "--experiment-name", "evaluate",
            "-P", f"logs={logs}", "-P", "policies=uniform,segment",
            "-P", "estimators=ips,snips", "-P", "interval=gaussian",
        ],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| segment | segment | snips | gaussian |" in proc.stdout
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("evaluate")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["policies"] == "uniform,segment"
    assert run.data.params["estimators"] == "ips,snips"
    assert "estimates.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
