"""The promotion gate on real VW models in a real (SQLite) MLflow registry: a
clearly better challenger is promoted, a clearly worse one is refused with its
reason and a non-zero exit, and every decision is recorded in MLflow.

The two models are made clearly different on purpose: both are VW policies
trained with full information on the simulator's ground truth (every eligible
action of a sample of logged decisions labelled with its exact expected reward),
one on the truth and one on its negation, so one approaches the oracle and the
other its opposite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.logs.join import load_joined
from nba.ope.logs import LoggedLog, ground_truth_for
from nba.policies.vw import VWConfig, VWPolicy
from nba.reward import RewardDefinition
from nba_cli.main import main as nba_main
from simulators.hcp.world import simulate


@pytest.fixture(scope="module")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(hcps=1500, days=10, policy="uniform", seed=21, out=out)
    return out


@pytest.fixture(scope="module")
def store(mlflow_sqlite_store: str) -> str:
    return mlflow_sqlite_store


def _full_information_policy(logs: Path, sign: float, seed: int) -> VWPolicy:
    """A VW policy that learned sign * (true expected reward) of sampled actions."""
    log = LoggedLog.from_table(load_joined(logs, RewardDefinition.default()).table)
    gt = ground_truth_for(logs, log)
    assert gt is not None
    rng = np.random.default_rng(seed)
    catalog = Catalog.default()
    index = np.array([catalog.action_index[a] for a in log.action_ids], dtype=np.int64)
    sizes = np.diff(log.offsets)
    contexts = log.table.column("context").to_pylist()
    # four labelled copies of each decision, each labelling a random eligible action
    reps = 4
    dec = np.repeat(np.arange(log.n_decisions), reps)
    pos = (rng.random(dec.size) * sizes[dec]).astype(np.int64)
    flat = np.concatenate([np.arange(log.offsets[i], log.offsets[i + 1]) for i in dec])
    offsets = np.zeros(dec.size + 1, dtype=np.int64)
    np.cumsum(sizes[dec], out=offsets[1:])
    policy = VWPolicy(VWConfig(epsilon=0.05), catalog=catalog, seed=seed)
    policy.learn_ragged(
        [contexts[i] for i in dec],
        offsets,
        index[flat],
        pos,
        sign * gt.expected_rewards[log.offsets[dec] + pos],
        np.ones(dec.size),
    )
    return policy


def _register(policy: VWPolicy, name: str = "nba") -> str:
    import mlflow

    from training.mlflow_utils import experiment_id, log_policy_model

    with mlflow.start_run(experiment_id=experiment_id("train")):
        logged = log_policy_model(policy, registered_name=name, alias="challenger")
    assert logged.version is not None
    return logged.version


def _alias(store: str, alias: str, name: str = "nba") -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(tracking_uri=store).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _promote(logs: Path, *extra: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(
        nba_main,
        [
            "promote",
            "--logs",
            str(logs),
            "--interval",
            "gaussian",
            "--estimator",
            "dr",
            "--folds",
            "3",
            *extra,
        ],
    )
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.slow
def test_gate_accepts_a_better_challenger_and_refuses_a_worse_one(
    sim_logs: Path, store: str
) -> None:
    from mlflow import MlflowClient

    good = _full_information_policy(sim_logs, +1.0, seed=1)
    bad = _full_information_policy(sim_logs, -1.0, seed=2)

    # no champion yet: the good challenger must beat the logging policy's observed value on
    # the same decisions, paired; an unreachable minimum lift refuses it first
    v_good = _register(good)
    code, out, err = _promote(sim_logs, "--min-lift", "0.5")
    assert code == 1
    assert "refused: challenger - logging policy (observed value on the same decisions" in err
    assert "does not exceed the minimum lift 0.50000" in err
    assert _alias(store, "champion") is None
    code, out, err = _promote(sim_logs)
    assert code == 0, out + err
    assert f"promoted: champion -> version {v_good}" in out
    assert "challenger - logging policy (observed value on the same decisions" in out
    assert "exceeds the minimum lift 0.00000" in out
    assert "paired difference challenger - logging:" in out
    assert _alias(store, "champion") == v_good

    # an identical copy of the champion: the paired difference is exactly 0, never promoted
    v_same = _register(good)
    code, out, err = _promote(sim_logs)
    assert code == 1
    assert "challenger - champion = 0.00000 [0.00000, 0.00000]" in err
    assert _alias(store, "champion") == v_good

    # a clearly worse challenger is refused and the champion stays
    v_bad = _register(bad)
    assert _alias(store, "challenger") == v_bad
    code, out, err = _promote(sim_logs)
    assert code == 1
    assert "refused: challenger - champion = -" in err
    assert "does not exceed the minimum lift 0.00000" in err
    assert _alias(store, "champion") == v_good

    # the challenger already being the champion is refused too
    MlflowClient(tracking_uri=store).set_registered_model_alias("nba", "challenger", v_good)
    code, out, err = _promote(sim_logs)
    assert code == 1 and f"version {v_good}) already is the champion" in err

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("promote")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["decision"] for r in runs] == [
        "refused",
        "promoted",
        "refused",
        "refused",
        "refused",
    ]
    first, same, second = runs[1], runs[2], runs[3]
    assert first.data.params["challenger_version"] == v_good
    assert first.data.params["champion_version_before"] == ""
    assert first.data.params["baseline"] == "logging"
    assert first.data.metrics["difference_low"] > 0.0
    assert runs[0].data.params["min_lift"] == "0.5"
    assert same.data.params["challenger_version"] == v_same
    assert same.data.metrics["difference"] == 0.0
    assert same.data.metrics["difference_high"] == 0.0
    m = second.data.metrics
    assert m["promoted"] == 0.0
    assert m["challenger_high"] < m["champion_low"]  # clearly worse, not a coin flip
    assert m["difference"] == pytest.approx(m["challenger_estimate"] - m["champion_estimate"])
    assert m["difference_high"] < 0.0
    assert second.data.params["baseline"] == "champion"
    assert second.data.params["min_lift"] == "0.0"
    assert "warnings" in second.data.tags  # the evaluation's warnings travel with the decision
    arts = {a.path for a in client.list_artifacts(second.info.run_id)}
    assert "decision.json" in arts and "evaluation" in arts


@pytest.mark.slow
def test_gate_without_champion_refuses_a_challenger_below_the_logging_policy(
    sim_logs: Path, store: str
) -> None:
    from training.promote import promote

    bad = _full_information_policy(sim_logs, -1.0, seed=3)
    version = _register(bad, name="nba_other")
    decision = promote(
        sim_logs,
        RewardDefinition.default(),
        estimator="snips",
        interval="gaussian",
        registered_name="nba_other",
    )
    assert not decision.promoted
    assert decision.challenger_version == version and decision.champion_version is None
    assert decision.baseline == "logging"
    assert "does not exceed the minimum lift" in decision.reason
    assert decision.challenger is not None and decision.logged_value is not None
    assert decision.difference is not None and decision.difference_high is not None
    assert decision.difference == pytest.approx(
        decision.challenger["estimate"] - decision.logged_value
    )
    assert decision.difference_high < 0.0
    assert decision.run_id is not None
    assert _alias(store, "champion", "nba_other") is None


def test_gate_without_a_challenger_is_refused(sim_logs: Path, store: str) -> None:
    from training.promote import promote

    decision = promote(sim_logs, RewardDefinition.default(), registered_name="nba_empty")
    assert not decision.promoted
    assert decision.reason == "no 'challenger' alias on registered model 'nba_empty'"
    assert decision.run_id is not None  # the refusal is recorded too


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--estimator", "dm"], "Invalid value for '--estimator'"),
        (["--interval", "wild"], "Invalid value for '--interval'"),
        (["--min-lift", "abc"], "Invalid value for '--min-lift'"),
    ],
)
def test_promote_refuses_bad_options(sim_logs: Path, args: list[str], match: str) -> None:
    res = CliRunner().invoke(nba_main, ["promote", "--logs", str(sim_logs), *args])
    assert res.exit_code == 2 and match in res.stderr


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("-0.01", "--min-lift: must be a finite number >= 0 \\(reward units\\), got -0.01"),
        ("nan", "--min-lift: must be a finite number >= 0 \\(reward units\\), got nan"),
        ("inf", "--min-lift: must be a finite number >= 0 \\(reward units\\), got inf"),
    ],
)
def test_promote_refuses_a_bad_min_lift(sim_logs: Path, store: str, value: str, match: str) -> None:
    import re

    res = CliRunner().invoke(nba_main, ["promote", "--logs", str(sim_logs), "--min-lift", value])
    assert res.exit_code == 1
    assert re.search(match, res.stderr)
    assert res.stderr.count("\n") == 1  # one line
    # refused before anything was evaluated or recorded
    from mlflow import MlflowClient

    exp = MlflowClient(tracking_uri=store).get_experiment_by_name("promote")
    runs = [] if exp is None else MlflowClient(tracking_uri=store).search_runs([exp.experiment_id])
    assert all(r.data.params.get("min_lift") != value for r in runs)


@pytest.mark.parametrize(
    ("value", "match"),
    [(-1.0, "got -1.0"), (float("nan"), "got nan"), (True, "got True"), ("0.1", "got '0.1'")],
)
def test_check_min_lift_refuses(value: object, match: str) -> None:
    from training.evaluate import EvaluationError
    from training.promote import check_min_lift

    with pytest.raises(EvaluationError, match=f"--min-lift: must be a finite number >= 0.*{match}"):
        check_min_lift(value)
