"""The OPE accuracy study, run tiny: its redraw reproduces the simulator's truth, it
is reproducible, and it writes its report, plots and MLflow run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.ope_accuracy import StudyConfig, run
from experiments.ope_accuracy.__main__ import main as study_main
from experiments.ope_accuracy.study import add_targets, draw_log, simulate_pool, summarize
from nba.catalog import Catalog
from nba.reward import RewardDefinition


@pytest.fixture(scope="module")
def pool_and_catalog() -> tuple[object, Catalog]:
    catalog = Catalog.default()
    pool = simulate_pool("poor", 3, 150, 6, catalog, RewardDefinition.default())
    add_targets(pool, catalog, None, ["uniform", "segment", "oracle"])
    return pool, catalog


def test_redrawn_rewards_match_the_ground_truth(pool_and_catalog: tuple[object, Catalog]) -> None:
    pool, _ = pool_and_catalog
    rng = np.random.default_rng(0)
    d = draw_log(pool, 60_000, rng)  # type: ignore[arg-type]
    chosen = d.flat[d.offsets[:-1] + d.action]
    truth = pool.truth[chosen]  # type: ignore[attr-defined]
    # the mean redrawn reward agrees with the mean true expected reward of the same entries
    se = float(np.std(d.reward) / np.sqrt(d.reward.size))
    assert abs(float(np.mean(d.reward)) - float(np.mean(truth))) < 4.5 * se
    # logged actions follow the logging probabilities: mean weight of the logging policy is 1
    p = pool.logging_p[chosen]  # type: ignore[attr-defined]
    assert set(np.unique(p)).issubset(set(np.unique(pool.logging_p)))  # type: ignore[attr-defined]
    uniform = pool.targets["uniform"][chosen]  # type: ignore[attr-defined]
    w = uniform / p
    assert abs(float(np.mean(w)) - 1.0) < 4.5 * float(np.std(w) / np.sqrt(w.size))


def test_targets_and_truth(pool_and_catalog: tuple[object, Catalog]) -> None:
    pool, _ = pool_and_catalog
    tv = pool.true_values  # type: ignore[attr-defined]
    assert tv["oracle"] > tv["segment"] and tv["oracle"] > tv["uniform"]
    off = pool.offsets  # type: ignore[attr-defined]
    for dist in pool.targets.values():  # type: ignore[attr-defined]
        np.testing.assert_allclose(np.add.reduceat(dist, off[:-1]), 1.0)


def test_draws_are_reproducible(pool_and_catalog: tuple[object, Catalog]) -> None:
    pool, _ = pool_and_catalog
    a = draw_log(pool, 500, np.random.default_rng(5))  # type: ignore[arg-type]
    b = draw_log(pool, 500, np.random.default_rng(5))  # type: ignore[arg-type]
    assert np.array_equal(a.flat, b.flat) and np.array_equal(a.reward, b.reward)


@pytest.fixture
def store(tmp_path: Path, empty_mlflow_store: Path) -> Iterator[str]:
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("NBA_DATA_DIR", str(tmp_path / "data"))
        yield uri


@pytest.mark.slow
def test_tiny_run_writes_report_plots_and_mlflow(tmp_path: Path, store: str) -> None:
    from mlflow import MlflowClient

    cfg = StudyConfig(
        seeds=2, reps=4, sizes=(300, 600), hcps=120, days=5, train_hcps=120, train_days=5,
        n_bootstrap=20, bootstrap_reps=(2,),
    )  # fmt: skip
    res = run(cfg, tmp_path / "out", tracking_uri=store)
    raw = res.raw
    assert set(raw["overlap"]) == {"good", "poor"}
    assert set(raw["target"]) == {"vw", "segment", "oracle", "uniform"}
    assert set(raw["size"]) == {300, 600}
    boot = raw[raw["interval"] == "bootstrap"]
    assert set(boot["rep"]) == {0, 1}  # bootstrap only on the first 2 reps of each config
    assert set(boot["estimator"]) == {"ips", "snips", "dr", "sndr"}
    assert (raw["low"] <= raw["estimate"] + 1e-12).all()
    s = res.summary
    assert {"bias", "rmse", "median_rel_error", "coverage", "coverage_se", "mean_width"} <= set(
        s.columns
    )
    assert len(res.checks) == 3
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Targets" in report and "What was simulated and redrawn" in report
    for name in ("error.png", "coverage.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "out" / "raw.csv")) == len(raw)
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("experiments/ope_accuracy")
    assert exp is not None
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.run_id == res.run_id
    assert r.data.params["reps"] == "4" and r.data.params["sizes"] == "300,600"
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"report.md", "summary.csv", "error.png", "coverage.png", "raw.csv"} <= arts
    # same seeds, same numbers
    again = run(cfg, tmp_path / "again", mlflow=False)
    pd.testing.assert_frame_equal(again.raw, raw)


def test_summary_arithmetic() -> None:
    raw = pd.DataFrame(
        {
            "overlap": ["good"] * 4,
            "size": [10] * 4,
            "target": ["t"] * 4,
            "estimator": ["ips"] * 4,
            "interval": ["gaussian"] * 4,
            "estimate": [1.0, 1.2, 0.8, 1.4],
            "low": [0.9, 1.1, 0.5, 1.3],
            "high": [1.1, 1.3, 0.9, 1.5],
            "truth": [1.0] * 4,
        }
    )
    (row,) = summarize(raw).to_dict("records")
    assert row["bias"] == pytest.approx(0.1)
    assert row["rmse"] == pytest.approx(np.sqrt((0 + 0.04 + 0.04 + 0.16) / 4))
    assert row["median_rel_error"] == pytest.approx(0.2)
    assert row["coverage"] == pytest.approx(0.25)
    assert row["coverage_se"] == pytest.approx(np.sqrt(0.25 * 0.75 / 4))
    assert row["mean_width"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--sizes", "10,x"], "not a comma-separated list of integers"),
        (["--estimators", "ips,magic"], "unknown estimator 'magic'"),
        (["--seeds", "0"], "seeds: must be a positive integer"),
        (["--bootstrap-reps", "1,2,3"], "bootstrap_reps: give one number or one per size"),
        (["--gate-estimators", "dm"], "unknown gate estimator 'dm'"),
        (["--gate-reps", "5", "--gate-lift", "-1"], "gate_lift: must be a number > 0"),
    ],
)
def test_cli_refuses_bad_parameters(tmp_path: Path, args: list[str], match: str) -> None:
    res = CliRunner().invoke(study_main, [*args, "--out", str(tmp_path), "--no-mlflow"])
    assert res.exit_code != 0 and match in res.output


def test_tiny_gate_run_measures_false_promotion_and_power(tmp_path: Path) -> None:
    cfg = StudyConfig(
        seeds=2, reps=2, sizes=(300,), hcps=150, days=6, targets=("segment",),
        estimators=("snips",), intervals=("gaussian",), gate_reps=4, gate_sizes=(800,),
        n_bootstrap=20,
    )  # fmt: skip
    res = run(cfg, tmp_path / "out", mlflow=False)
    gate = res.gate
    assert len(gate) == 2 * 4 * 3 * 4 * 2  # overlaps x reps x scenarios x estimators x intervals
    assert set(gate["scenario"]) == {"identical", "equal_value", "lift"}
    assert set(gate["estimator"]) == {"ips", "snips", "dr", "sndr"}
    same = gate[gate["scenario"] == "identical"]
    assert (same[["difference", "low", "high"]] == 0.0).all().all()
    assert not same["promoted"].any()
    equal = gate[gate["scenario"] == "equal_value"]
    np.testing.assert_allclose(equal["true_difference"], 0.0, atol=1e-12)
    lift = gate[gate["scenario"] == "lift"]
    np.testing.assert_allclose(lift["true_difference"], 0.05 * lift["champion_value"], rtol=1e-9)
    assert (gate["promoted"] == (gate["low"] > 0.0)).all()
    s = res.gate_summary
    assert {"promotion_rate", "promotion_se", "coverage"} <= set(s.columns)
    assert len(res.checks) == 4 and res.checks[-1].name.startswith("promotion gate")
    assert len(res.gate_lines) == 2 * 4 * 2
    assert "## Promotion gate" in (tmp_path / "out" / "report.md").read_text()
    assert len(pd.read_csv(tmp_path / "out" / "gate.csv")) == len(gate)
    again = run(cfg, tmp_path / "again", mlflow=False)
    pd.testing.assert_frame_equal(again.gate, gate)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gate_reps": -1}, "gate_reps: must be an integer >= 0"),
        ({"gate_reps": 2, "gate_estimators": ("dm",)}, "gate estimator 'dm'"),
        ({"gate_reps": 2, "gate_lift": 0.0}, "gate_lift: must be a number > 0"),
        ({"gate_reps": 2, "gate_min_lift": -0.1}, "gate_min_lift: must be a finite number >= 0"),
        ({"gate_reps": 2, "gate_sizes": (5,)}, "gate_sizes: need sizes >= 10"),
    ],
)
def test_bad_gate_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StudyConfig(**kwargs)  # type: ignore[arg-type]
