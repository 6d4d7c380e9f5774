"""`nba evaluate` end to end on simulated logs: the table with the ground truth, the
files, the MLflow run with its plot, --json, external policy tables, DSJSON import,
and bad inputs refused with messages naming what and where."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nba.logs.join import load_joined
from nba.ope.logs import LoggedLog, ground_truth_for, true_value
from nba.reward import RewardDefinition
from nba_cli.main import main as nba_main
from simulators.hcp.world import simulate


@pytest.fixture(scope="module")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(hcps=250, days=10, policy="uniform", seed=11, out=out)
    return out


@pytest.fixture(scope="module")
def store(mlflow_sqlite_store: str) -> str:
    return mlflow_sqlite_store


@pytest.fixture(scope="module")
def log(sim_logs: Path) -> LoggedLog:
    return LoggedLog.from_table(load_joined(sim_logs, RewardDefinition.default()).table)


def _run(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(nba_main, args)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def test_evaluate_prints_truth_writes_files_and_logs_the_plot(
    sim_logs: Path, store: str, log: LoggedLog, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    out = tmp_path / "report"
    code, stdout, stderr = _run(
        [
            "evaluate", "--logs", str(sim_logs), "--policy", "uniform", "--policy", "segment",
            "--estimator", "ips", "--estimator", "snips", "--estimator", "dr",
            "--interval", "gaussian", "--folds", "3", "--seed", "1", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0, stdout + stderr
    header = next(line for line in stdout.splitlines() if line.startswith("| policy"))
    assert "| truth |" in header
    assert "logging policy observed mean reward" in stdout
    assert "reward model: VW regression, 3 folds by hcp; held-out MSE" in stdout
    frame = pd.read_csv(out / "evaluation.csv")
    assert len(frame) == 6
    assert set(frame["estimator"]) == {"ips", "snips", "dr"}
    # the truth column is the simulator's value of each target on the logged contexts
    gt = ground_truth_for(sim_logs, log)
    assert gt is not None
    sizes = np.diff(log.offsets)
    uniform_truth = true_value(gt.expected_rewards, np.repeat(1.0 / sizes, sizes), log.offsets)
    uni = frame[frame["policy"] == "uniform"]
    np.testing.assert_allclose(uni["truth"], uniform_truth, rtol=1e-12)
    # uniform is the logging policy here: IPS and SNIPS are the observed mean reward
    ips = uni[uni["estimator"] == "ips"].iloc[0]
    assert ips["estimate"] == pytest.approx(log.observed_value, rel=1e-12)
    assert ips["low"] < ips["estimate"] < ips["high"]
    assert ips["ess"] == pytest.approx(log.n_decisions)
    for name in ("evaluation.md", "evaluation.json", "estimates.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "estimates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("evaluate")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    p = run.data.params
    assert p["policies"] == "uniform,segment"
    assert p["estimators"] == "ips,snips,dr"
    assert p["intervals"] == "gaussian" and p["alpha"] == "0.05" and p["seed"] == "1"
    assert p["reward_definition"] == RewardDefinition.default().id
    assert p["data_since"].startswith("2026-01-05")
    assert run.data.metrics["logged_value"] == pytest.approx(log.observed_value)
    assert run.data.metrics["uniform_ips_gaussian.truth"] == pytest.approx(uniform_truth)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"estimates.png", "evaluation.csv", "evaluation.md", "evaluation.json"} <= arts


def test_json_output_parses(sim_logs: Path, log: LoggedLog) -> None:
    code, stdout, _ = _run(
        ["evaluate", "--logs", str(sim_logs), "--policy", "uniform", "--estimator", "snips",
         "--interval", "bernstein", "--interval", "bootstrap", "--json", "--no-mlflow"]
    )  # fmt: skip
    assert code == 0
    blob = json.loads(stdout)
    assert blob["n"] == log.n_decisions
    assert blob["reward_model"] is None  # no DM/DR estimator asked for
    assert blob["mlflow_run_id"] is None
    assert [(r["estimator"], r["interval"]) for r in blob["rows"]] == [
        ("snips", "bernstein"),
        ("snips", "bootstrap"),
    ]
    bern, boot = blob["rows"]
    assert bern["low"] <= boot["low"] and boot["high"] <= bern["high"]
    assert bern["truth"] is not None


def test_external_table_policy_matches_the_same_baseline(
    sim_logs: Path, log: LoggedLog, tmp_path: Path
) -> None:
    sizes = np.diff(log.offsets)
    seg = np.repeat(np.arange(log.n_decisions), sizes)
    path = tmp_path / "uniform.parquet"
    pq.write_table(
        pa.table(
            {
                "event_id": log.event_ids[seg].astype(str),
                "action_id": log.action_ids.astype(str),
                "probability": np.repeat(1.0 / sizes, sizes),
            }
        ),
        path,
    )
    code, stdout, _ = _run(
        ["evaluate", "--logs", str(sim_logs), "--policy", f"table:{path}", "--policy", "uniform",
         "--estimator", "ips", "--interval", "gaussian", "--json", "--no-mlflow"]
    )  # fmt: skip
    assert code == 0
    table_row, uniform_row = json.loads(stdout)["rows"]
    assert table_row["policy"] == f"table:{path}"
    for k in ("estimate", "low", "high", "truth", "ess"):
        assert table_row[k] == pytest.approx(uniform_row[k], rel=1e-12)


def test_dsjson_import_then_evaluate(sim_logs: Path, log: LoggedLog, tmp_path: Path) -> None:
    dsjson = tmp_path / "log.dsjson"
    imported = tmp_path / "imported"
    res = CliRunner().invoke(
        nba_main,
        ["logs", "export", "--logs", str(sim_logs), "--format", "dsjson", "--out", str(dsjson),
         "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(nba_main, ["logs", "import", str(dsjson), "--out", str(imported)])
    assert res.exit_code == 0, res.output
    code, stdout, _ = _run(
        ["evaluate", "--logs", str(imported), "--policy", "uniform", "--estimator", "ips",
         "--estimator", "dm", "--folds", "2", "--interval", "gaussian", "--json", "--no-mlflow"]
    )  # fmt: skip
    assert code == 0
    blob = json.loads(stdout)
    assert blob["n"] == log.n_decisions
    assert blob["logged_value"] == pytest.approx(log.observed_value, abs=1e-9)
    ips, dm = blob["rows"]
    assert ips["estimate"] == pytest.approx(log.observed_value, abs=1e-9)
    assert ips["truth"] is None  # imported logs carry no ground truth
    assert np.isfinite(dm["estimate"])
    assert blob["reward_model"]["heldout_mse"] > 0
    # a baseline that needs an nba HCP profile cannot be replayed on foreign contexts
    code, stdout, stderr = _run(
        ["evaluate", "--logs", str(imported), "--policy", "segment", "--estimator", "ips",
         "--no-mlflow"]
    )  # fmt: skip
    assert code != 0
    assert "policy 'segment': event" in stderr and "imported DSJSON context" in stderr


def _table(log: LoggedLog, tmp_path: Path, name: str, mutate: str) -> Path:
    sizes = np.diff(log.offsets)
    seg = np.repeat(np.arange(log.n_decisions), sizes)
    df = pd.DataFrame(
        {
            "event_id": log.event_ids[seg].astype(str),
            "action_id": log.action_ids.astype(str),
            "probability": np.repeat(1.0 / sizes, sizes),
        }
    )
    if mutate == "unknown":
        df.loc[0, "event_id"] = "ghost-event"
    elif mutate == "missing":
        df = df.drop(index=1)
    elif mutate == "sum":
        df.loc[0, "probability"] = 0.9
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        ("unknown", r"event id\(s\) are not logged decisions .*ghost-event"),
        ("missing", r"eligible action\(s\) missing; first: event_id "),
        ("sum", r"probabilities do not sum to 1 for 1 decision\(s\); first: event_id "),
    ],
)
def test_bad_target_tables_are_refused(
    sim_logs: Path, log: LoggedLog, tmp_path: Path, mutate: str, match: str
) -> None:
    path = _table(log, tmp_path, mutate, mutate)
    code, _, stderr = _run(
        ["evaluate", "--logs", str(sim_logs), "--policy", f"table:{path}", "--estimator", "ips",
         "--no-mlflow"]
    )  # fmt: skip
    assert code == 1
    assert str(path) in stderr
    assert re.search(match, stderr), stderr


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--policy", "bandit9000"], "policy 'bandit9000': unknown policy; expected one of"),
        (["--policy", "uniform", "--logs", "/no/such/logs"], "--logs /no/such/logs: no such"),
        (["--policy", "uniform", "--alpha", "1.5"], r"alpha: must be in \(0, 1\)"),
        (["--policy", "uniform", "--since", "yesterday"], "since: 'yesterday' is not a date"),
        (["--policy", "models:/nba@nobody"], "policy 'models:/nba@nobody'"),
        (
            ["--policy", "uniform", "--min-ess-share", "2"],
            r"--min-ess-share: must be a number in \[0, 1\], got 2.0",
        ),
        (
            ["--policy", "uniform", "--min-ess-share", "-0.5"],
            r"--min-ess-share: must be a number in \[0, 1\], got -0.5",
        ),
    ],
)
def test_bad_inputs_fail_with_clear_messages(
    sim_logs: Path, store: str, args: list[str], match: str
) -> None:
    if "--logs" not in args:
        args = ["--logs", str(sim_logs), *args]
    code, _, stderr = _run(["evaluate", *args, "--estimator", "ips", "--no-mlflow"])
    assert code != 0
    assert re.search(match, stderr), stderr


def test_warnings_are_structured_printed_and_logged(
    sim_logs: Path, store: str, tmp_path: Path
) -> None:
    """Uniform logging: the uniform target has weights exactly 1 (ESS = n, never
    flagged, even at a threshold of 100 %); the segment rules put most weight on one
    action, so their ESS is below n and is flagged at 100 %."""
    from mlflow import MlflowClient

    args = [
        "evaluate", "--logs", str(sim_logs), "--policy", "uniform", "--policy", "segment",
        "--estimator", "snips", "--estimator", "dm", "--estimator", "dr",
        "--interval", "gaussian", "--folds", "3", "--min-ess-share", "1.0",
    ]  # fmt: skip
    code, stdout, stderr = _run([*args, "--json", "--no-mlflow"])
    assert code == 0, stderr
    blob = json.loads(stdout)
    warns = blob["warnings"]
    low_ess = [w for w in warns if w["code"] == "low_ess"]
    assert [w["policy"] for w in low_ess] == ["segment"]
    assert low_ess[0]["values"]["min_ess_share"] == 1.0
    assert low_ess[0]["values"]["ess"] < low_ess[0]["values"]["n"]
    rm = blob["reward_model"]
    flagged = [w for w in warns if w["code"] == "reward_model_no_better_than_constant"]
    assert bool(flagged) == (rm["heldout_mse"] >= rm["constant_mse"])
    for r in blob["rows"]:
        assert r["unreliable"] == (bool(flagged) and r["estimator"] in ("dm", "dr"))
    for w in (w for w in warns if w["code"] == "estimators_disagree"):
        a, b = (
            next(r for r in blob["rows"] if r["policy"] == w["policy"] and r["estimator"] == e)
            for e in w["estimators"]
        )
        assert not (
            b["low"] <= a["estimate"] <= b["high"] and a["low"] <= b["estimate"] <= a["high"]
        )

    out = tmp_path / "report"
    code, stdout, stderr = _run([*args, "--out", str(out)])
    assert code == 0, stderr
    md = (out / "evaluation.md").read_text()
    for w in warns:
        line = f"warning: {w['policy'] + ': ' if w['policy'] else ''}{w['message']}"
        assert line in stdout and line in md
    assert json.loads((out / "evaluation.json").read_text())["warnings"] == warns
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("evaluate")
    assert exp is not None
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert json.loads(run.data.tags["warnings"]) == [w["code"] for w in warns]
    assert run.data.params["min_ess_share"] == "1.0"
