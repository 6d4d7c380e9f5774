"""The MLproject ``main`` entry point runs end to end at small size, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nba.paths import PROJECT_ROOT


@pytest.mark.slow
def test_mlproject_main_simulates_trains_registers_and_reports(tmp_path: Path) -> None:
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
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(PROJECT_ROOT),
            "-e",
            "main",
            "--env-manager",
            "local",
            "-P",
            "hcps=200",
            "-P",
            "days=10",
            "-P",
            "seed=3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "# nba main: simulate -> train" in proc.stdout

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("nba", "challenger")
    train_run = client.get_run(mv.run_id)
    assert client.get_experiment(train_run.info.experiment_id).name == "train"
    assert "average_loss" in train_run.data.metrics
    assert train_run.data.params["reward_definition"].startswith("engagement@")
    sim_exp = client.get_experiment_by_name("simulate")
    assert sim_exp is not None
    assert client.search_runs([sim_exp.experiment_id])[0].info.status == "FINISHED"
    main_runs = client.search_runs(
        [client.get_experiment_by_name("Default").experiment_id],
        filter_string="params.`simulate.hcps` = '200'",
    )
    assert main_runs and main_runs[0].info.status == "FINISHED"
    names = [f.path for f in client.list_artifacts(main_runs[0].info.run_id)]
    assert "report.md" in names
