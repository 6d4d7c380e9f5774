"""Simulated logs -> `nba logs export` -> VW: the join agrees with the simulator's own
accounting, and VW learns from every exported line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import vowpalwabbit
from click.testing import CliRunner

from nba.reward import RewardDefinition
from nba_cli.main import main
from simulators.hcp.world import Summary, simulate


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Summary]:
    out = tmp_path_factory.mktemp("sim")
    summary = simulate(hcps=300, days=21, policy="campaign", seed=7, out=out)
    return out, summary


def test_join_agrees_with_the_simulator(tmp_path: Path, sim_dir: tuple[Path, Summary]) -> None:
    logs, summary = sim_dir
    out = tmp_path / "joined.parquet"
    res = CliRunner().invoke(
        main, ["logs", "export", "--logs", str(logs), "--format", "parquet", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    t = pq.read_table(out)
    assert t.num_rows == summary.decisions
    assert set(t.column("reward_definition").to_pylist()) == {RewardDefinition.default().id}
    assert summary.reward_definition == RewardDefinition.default().id
    assert pc.mean(t.column("reward")).as_py() == pytest.approx(
        summary.reward_mean,
        abs=1e-9,
    )
    assert f"late_outcomes: {summary.late_outcomes}" in res.output


def test_vw_learns_from_simulated_export(tmp_path: Path, sim_dir: tuple[Path, Summary]) -> None:
    logs, _ = sim_dir
    out = tmp_path / "train.dsjson"
    res = CliRunner().invoke(
        main,
        ["logs", "export", "--logs", str(logs), "--format", "dsjson", "--out", str(out), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    metrics = tmp_path / "m.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson -d {out} --extra_metrics {metrics} --quiet"
    )
    examples = vw.get_weighted_examples()
    vw.finish()
    m = json.loads(metrics.read_text())
    assert m["line_parse_error"] == 0
    assert examples == len(lines) > 500
    # topic/format features from the simulator's catalog snapshot reached VW
    first = json.loads(lines[0])
    assert all(len(a["T"]) == 1 for a in first["c"]["_multi"])


def test_dsjson_export_carries_the_simulated_pulls_of_each_window(
    tmp_path: Path, sim_dir: tuple[Path, Summary]
) -> None:
    """`nba logs export --format dsjson` lists, per line, the HCP's pull touches of the
    reward window (counted here independently with pandas), and VW reads every line."""
    from nba.logs import io
    from nba.logs.join import load_joined

    logs, _ = sim_dir
    out = tmp_path / "train.dsjson"
    res = CliRunner().invoke(
        main,
        ["logs", "export", "--logs", str(logs), "--format", "dsjson", "--out", str(out), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    got = {o["EventId"]: o["nba"].get("pulls", []) for o in lines}
    joined = load_joined(logs, RewardDefinition.default())
    dec = joined.table.select(["event_id", "ts", "hcp_id"]).to_pandas()
    tch = io.read(logs, "touches").to_pandas()
    tch = tch[tch["kind"] != "contact"]
    assert set(tch["kind"]) >= {"detail_pull", "portal_view"}
    m = dec.merge(tch, on="hcp_id", suffixes=("", "_t"))
    window = pd.Timedelta(days=RewardDefinition.default().window_days)
    inside = (m["ts_t"] >= m["ts"]) & (m["ts_t"] <= m["ts"] + window)
    if joined.as_of is not None:
        inside &= m["ts_t"] <= pd.Timestamp(joined.as_of)
    want = m[inside].groupby("event_id").size().to_dict()
    assert {k: len(v) for k, v in got.items() if v} == want
    assert sum(want.values()) > 100
    for o in lines:
        for p in o["nba"].get("pulls", []):
            assert p["kind"] != "contact" and p["topics"]
    metrics = tmp_path / "m.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson -d {out} --extra_metrics {metrics} --quiet"
    )
    vw.finish()
    assert json.loads(metrics.read_text())["line_parse_error"] == 0
