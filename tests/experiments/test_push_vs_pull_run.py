"""The push-vs-pull experiment end to end at a tiny size: report, plot, CSV and
JSON written; the MLflow run (tmp SQLite store) holds them as artifacts; the
scores are anchored at uniform = 0 and oracle = 1; bad configurations refused."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from experiments.push_vs_pull import ExperimentConfig, ExperimentError, run
from experiments.push_vs_pull.experiment import (
    NON_LEARNING,
    PNG,
    REPORT,
    RESULTS_JSON,
    WEEKLY_CSV,
    figures_of,
    mean_sd,
    normalized_score,
)
from experiments.push_vs_pull.measure import run_policy

POLICIES = ("uniform", "campaign", "vw:epsilon", "oracle")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, empty_mlflow_store):
    root = tmp_path_factory.mktemp("pvp")
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = ExperimentConfig(hcps=60, days=16, seeds=(1, 2), policies=POLICIES, last_weeks=1)
    res = run(cfg, root / "out", log_mlflow=True, tracking_uri=uri)
    return res, root / "out", uri


def test_files_are_written(tiny):
    res, out, _ = tiny
    for name in (PNG, REPORT, WEEKLY_CSV, RESULTS_JSON):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / REPORT).read_text()
    for p in POLICIES:
        assert f"| `{p}` |" in md
    assert "## Targets, best VW" in md and "best VW configuration: `vw:epsilon`" in md
    # the table leads with the ratio to the best non-learning policy
    header = next(line for line in md.splitlines() if line.startswith("| policy |"))
    assert header.split(" | ")[1].startswith("× best non-learning")
    rows = list(csv.DictReader((out / WEEKLY_CSV).open()))
    assert len(rows) == len(POLICIES) * 2 * 3  # policies x seeds x weeks (16 days)
    data = json.loads((out / RESULTS_JSON).read_text())
    assert data["mlflow_run_id"] == res.mlflow_run_id
    assert data["best_vw"] == "vw:epsilon" and "online" in data["learning"]


def test_scores_are_anchored_and_ratios_are_relative_to_the_campaign(tiny):
    res, _, _ = tiny
    for r in res.runs_of("uniform"):
        assert r.score_last == 0.0 and r.score_all == 0.0
    for r in res.runs_of("oracle"):
        assert r.score_last == 1.0 and r.score_all == 1.0
    for r in res.runs_of("campaign"):
        assert r.ratio_last == 1.0 and r.engagement_ratio_all == 1.0
    for p in POLICIES:
        runs = res.runs_of(p)
        assert len(runs) == 2
        assert res.summary[p]["score_last"] == mean_sd(r.score_last for r in runs)
    for p in POLICIES:  # ratio to the best of uniform, campaign, segment in each seed
        for r in res.runs_of(p):
            base = max(
                x.last_reward for q in NON_LEARNING for x in res.runs_of(q) if x.seed == r.seed
            )
            assert r.baseline_ratio_last == pytest.approx(r.last_reward / base)
    assert max(r.baseline_ratio_last for q in NON_LEARNING for r in res.runs_of(q)) == 1.0
    t = res.targets
    assert t["policy"] == "vw:epsilon"
    assert t["score_met"] == (t["score_last"] >= 0.6)
    assert t["score_all_met"] == (t["score_all"] >= 0.4)
    assert t["baseline_ratio_met"] == (t["baseline_ratio_last"] >= 1.25)
    assert t["engagement_ratio_met"] == (t["engagement_ratio_last"] >= 1.3)


def test_the_mlflow_run_has_the_report_and_plot_as_artifacts(tiny):
    res, _, uri = tiny
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run_ = client.get_run(res.mlflow_run_id)
    exp = client.get_experiment(run_.info.experiment_id)
    assert exp.name == "experiments/push_vs_pull"
    names = {a.path for a in client.list_artifacts(res.mlflow_run_id)}
    assert {PNG, REPORT, WEEKLY_CSV, RESULTS_JSON} <= names
    assert run_.data.params["hcps"] == "60" and run_.data.params["policies"] == ",".join(POLICIES)
    m = run_.data.metrics
    assert m["oracle.score_last"] == 1.0 and m["uniform.score_last"] == 0.0
    assert m["vw_epsilon.total_reward"] == pytest.approx(
        res.summary["vw:epsilon"]["total_reward"][0]
    )
    curve = client.get_metric_history(res.mlflow_run_id, "vw_epsilon.weekly_truth")
    assert [x.step for x in curve] == [1, 2, 3]


def test_weekly_figures_match_the_per_decision_measurements():
    r = run_policy("segment", hcps=50, days=15, seed=3)
    f = figures_of(r, weeks=3, last_from_day=8)
    for w in range(3):
        sel = r.day // 7 == w
        assert f.weekly_decisions[w] == int(sel.sum())
        assert f.weekly_reward[w] == pytest.approx(r.reward[sel].mean())
        assert f.weekly_engagement[w] == pytest.approx(r.engaged[sel].mean())
    assert f.total_reward == pytest.approx(r.reward.sum())
    assert f.last_truth == pytest.approx(r.truth[r.day >= 8].mean())
    # the logs agree with what the world counted while it ran
    assert f.decisions == r.summary["decisions"]
    assert f.mean_reward == pytest.approx(r.summary["reward_mean"], abs=1e-12)
    assert f.mean_truth == pytest.approx(r.summary["expected_reward_mean"], abs=1e-12)
    assert f.unsubscribes == r.summary["unsubscribes"]


def test_normalized_score():
    assert normalized_score(0.1, 0.1, 0.2) == 0.0
    assert normalized_score(0.2, 0.1, 0.2) == 1.0
    assert normalized_score(0.18, 0.1, 0.2) == pytest.approx(0.8)
    assert np.isnan(normalized_score(0.18, 0.1, 0.1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hcps": 0}, r"push-vs-pull: hcps: must be a positive integer, got 0"),
        ({"days": 10, "last_weeks": 2}, r"last_weeks: 2 weeks do not fit in 10 days"),
        ({"seeds": ()}, r"seeds: at least one seed is needed"),
        ({"seeds": (1, 1)}, r"seeds: lists a seed twice"),
        ({"seeds": (-1,)}, r"seeds: -1 is not a non-negative integer"),
        ({"policies": ("uniform", "campaign")}, r"policies: must include 'oracle'"),
        ({"policies": ("uniform", "oracle", "campaign", "greedy")}, r"unknown policy 'greedy'"),
        ({"policies": ("uniform", "oracle", "campaign", "vw:nope")}, r"'nope' is neither a preset"),
        ({"policies": ("uniform", "uniform")}, r"policies: lists a policy twice"),
        ({"workers": 0}, r"workers: must be a positive integer"),
    ],
)
def test_bad_configs_are_refused(kwargs, match):
    from nba.domain import ValidationError

    with pytest.raises((ExperimentError, ValidationError), match=match):
        ExperimentConfig(**kwargs)


def test_cli_runs_tiny_without_mlflow_and_refuses_bad_input(tmp_path):
    from experiments.cli import experiment

    out = tmp_path / "o"
    res = CliRunner().invoke(
        experiment,
        [
            "push-vs-pull",
            "--hcps",
            "40",
            "--days",
            "7",
            "--seeds",
            "3",
            "--last-weeks",
            "1",
            "--policies",
            "uniform,campaign,oracle",
            "--out",
            str(out),
            "--no-mlflow",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"report: {out / REPORT}" in res.output and (out / PNG).is_file()
    bad = CliRunner().invoke(
        experiment, ["push-vs-pull", "--seeds", "a,b", "--out", str(out), "--no-mlflow"]
    )
    assert bad.exit_code != 0 and "'a,b' is not a comma-separated list of integers" in bad.output
    bad = CliRunner().invoke(
        experiment,
        ["push-vs-pull", "--policies", "uniform,oracle", "--out", str(out), "--no-mlflow"],
    )
    assert bad.exit_code != 0 and "must include 'campaign'" in bad.output


@pytest.fixture(scope="module")
def ceiling():
    """The honest ceiling of one small world, computed once: both ceiling tests
    read it (the second compares it with the reveal study's honest set)."""
    from experiments.push_vs_pull.ceiling import observable_ceiling

    return observable_ceiling(hcps=120, days=12, seed=2, train_days=8, passes=2)


def test_observable_ceiling_is_between_uniform_and_oracle_on_the_same_decisions(ceiling):
    from experiments.push_vs_pull.ceiling import observable_ceiling

    c = ceiling
    assert c["n_train"] > 0 and c["n_test"] > 0
    assert c["v_uniform"] <= c["v_oracle"] and c["v_ceiling"] <= c["v_oracle"]
    assert c["score"] == pytest.approx(
        (c["v_ceiling"] - c["v_uniform"]) / (c["v_oracle"] - c["v_uniform"])
    )
    with pytest.raises(ExperimentError, match=r"ceiling: train_days must be in 1\.\.11, got 12"):
        observable_ceiling(hcps=20, days=12, train_days=12)


def test_ceiling_reveal_scores_each_set_on_the_same_decisions(ceiling):
    from experiments.push_vs_pull.ceiling import REVEALABLE, reveal_study

    sets = [(), ("seen",), ("channel_affinity", "interest", "knowledge"), ("primary",)]
    res = reveal_study(hcps=120, days=12, seed=2, train_days=8, passes=2, reveals=sets)
    assert [r["reveal"] for r in res] == [
        "",
        "seen",
        "channel_affinity,interest,knowledge",
        "primary",
    ]
    # one simulation: the same decisions, so the same uniform and oracle values
    assert len({(r["n_test"], r["v_uniform"], r["v_oracle"]) for r in res}) == 1
    for r in res:
        assert r["v_uniform"] <= r["v_oracle"] and r["v_ceiling"] <= r["v_oracle"]
    # the honest set is the plain ceiling
    plain = ceiling
    assert plain["score"] == res[0]["score"] and plain["reveal"] == ""
    # the exact primary response lifts even this tiny regressor well above the honest one
    assert res[3]["score"] > res[0]["score"]
    assert "primary" in REVEALABLE


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fatigue,mood", r"ceiling: --reveal: unknown hidden quantity 'mood' \(known: channel_"),
        ("all,seen", r"unknown hidden quantity 'all'"),
        ("Seen", r"unknown hidden quantity 'Seen'"),
    ],
)
def test_ceiling_reveal_refuses_unknown_names(text, match):
    from experiments.push_vs_pull.ceiling import observable_ceiling, parse_reveal

    with pytest.raises(ExperimentError, match=match):
        parse_reveal(text)
    with pytest.raises(ExperimentError, match=match):
        observable_ceiling(hcps=20, days=4, train_days=2, reveal=tuple(text.split(",")))


def test_ceiling_cli_reveal_bad_name_is_a_one_line_error():
    from experiments.push_vs_pull.ceiling import cli

    args = ["--hcps", "20", "--days", "4", "--train-days", "2", "--reveal", "seen,x"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code != 0
    assert "Error: ceiling: --reveal: unknown hidden quantity 'x'" in out.output


def test_results_json_rebuilds_the_same_result(tiny, tmp_path):
    from experiments.push_vs_pull.experiment import load_result
    from experiments.push_vs_pull.report import markdown

    res, out, _ = tiny
    again = load_result(out / RESULTS_JSON)
    assert again.summary == res.summary and again.targets == res.targets
    assert markdown(again) == (out / REPORT).read_text()


def test_parallel_workers_give_the_same_figures():
    from dataclasses import asdict

    from experiments.push_vs_pull.experiment import run_all

    base = {"hcps": 40, "days": 7, "seeds": (4, 5), "last_weeks": 1}
    pols = ("uniform", "campaign", "vw:bag", "oracle")
    one = run_all(ExperimentConfig(**base, policies=pols, workers=1))
    two = run_all(ExperimentConfig(**base, policies=pols, workers=2))

    def strip(figs):  # as JSON text, so NaN (not yet scored) compares equal to NaN
        return json.dumps([{k: v for k, v in asdict(f).items() if k != "seconds"} for f in figs])

    assert strip(one) == strip(two)


def test_value_and_cost_come_from_the_logged_value_outcomes(tmp_path):
    from datetime import timedelta

    from nba.logs import io as logio
    from nba.reward import RewardDefinition

    r = run_policy("campaign", hcps=400, days=15, seed=4, work_dir=tmp_path, keep_logs=True)
    out = next(tmp_path.iterdir())
    vd = RewardDefinition.business_value()
    dec = logio.read(out, "decisions", columns=["event_id", "ts", "chosen_action_id"])
    oc = logio.read(out, "outcomes", columns=["event_id", "ts", "type"])
    types = set(oc.column("type").to_pylist())
    assert {"sample_requested", "rx_signal"} <= types  # the simulator emits value outcomes
    by_event: dict[str, set[str]] = {}
    start = dict(zip(dec.column("event_id").to_pylist(), dec.column("ts").to_pylist(), strict=True))
    window = timedelta(days=vd.window_days)
    cols = (oc.column(c).to_pylist() for c in ("event_id", "ts", "type"))
    for eid, ts, typ in zip(*cols, strict=True):
        if eid in start and start[eid] <= ts <= start[eid] + window:
            by_event.setdefault(eid, set()).add(typ)
    chosen = dict(zip(start, dec.column("chosen_action_id").to_pylist(), strict=True))
    expect_cost = sorted(vd.cost_of(a) for a in chosen.values())
    expect_value = sorted(vd.reward_of(by_event.get(e, set())) for e in start)
    assert sorted(r.cost.tolist()) == pytest.approx(expect_cost)
    assert sorted(r.value.tolist()) == pytest.approx(expect_value)
    f = figures_of(r, weeks=3, last_from_day=8)
    assert f.value_per_decision == pytest.approx(float(np.mean(expect_value)))
    assert f.net_value_per_decision == pytest.approx(f.value_per_decision - f.cost_per_decision)
    assert f.cost_per_decision > 0
