"""The gate refuses to judge a challenger on the decisions it was trained on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from nba_cli.main import main as nba_main
from simulators.hcp.world import simulate


@pytest.mark.slow
def test_gate_refuses_in_sample_logs_and_judges_later_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_store: Path
) -> None:
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("NBA_DATA_DIR", str(tmp_path / "data"))
    logs = tmp_path / "logs"
    simulate(hcps=300, days=12, policy="uniform", seed=5, out=logs)  # 2026-01-05 .. 01-16
    runner = CliRunner()
    res = runner.invoke(
        nba_main, ["train", "--logs", str(logs), "--until", "2026-01-12", "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "registered nba version 1 as 'challenger'" in res.output

    same = runner.invoke(nba_main, ["promote", "--logs", str(logs), "--estimator", "snips"])
    assert same.exit_code != 0
    assert "trained on decisions up to 2026-01-12" in same.output
    assert "--since 2026-01-13" in same.output

    later = runner.invoke(
        nba_main,
        ["promote", "--logs", str(logs), "--estimator", "snips", "--since", "2026-01-13"],
    )
    # judged on unseen decisions: whatever the verdict, it is not the overlap refusal
    assert "trained on decisions up to" not in later.output, later.output
    assert "challenger nba/1: snips" in later.output
