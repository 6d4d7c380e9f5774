"""Target policies as action_dist: baselines replayed on logged contexts reproduce
what the simulator served; external policy tables are aligned and checked strictly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from nba.logs.join import load_joined
from nba.ope.logs import LoggedLog, catalog_for
from nba.ope.targets import (
    TargetError,
    baseline_action_dist,
    parse_target,
    read_policy_table,
    table_action_dist,
    target_action_dist,
)
from nba.reward import RewardDefinition
from simulators.hcp.world import simulate


def _log(root: Path) -> LoggedLog:
    return LoggedLog.from_table(load_joined(root, RewardDefinition.default()).table)


@pytest.fixture(scope="module")
def campaign_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoggedLog]:
    out = tmp_path_factory.mktemp("campaign")
    simulate(hcps=150, days=15, policy="campaign", seed=4, out=out)
    return out, _log(out)


@pytest.fixture(scope="module")
def segment_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoggedLog]:
    out = tmp_path_factory.mktemp("segment")
    simulate(hcps=120, days=6, policy="segment", seed=5, out=out)
    return out, _log(out)


@pytest.mark.parametrize("which", ["campaign", "segment"])
def test_baseline_replays_the_served_probabilities(
    which: str,
    campaign_log: tuple[Path, LoggedLog],
    segment_log: tuple[Path, LoggedLog],
) -> None:
    root, log = campaign_log if which == "campaign" else segment_log
    dist = baseline_action_dist(which, log, catalog_for(root, log.table))
    np.testing.assert_allclose(dist, log.pscore_all, rtol=0, atol=1e-12)


def test_uniform_and_baseline_params(campaign_log: tuple[Path, LoggedLog]) -> None:
    root, log = campaign_log
    uni = baseline_action_dist("uniform", log)
    sizes = np.diff(log.offsets)
    np.testing.assert_allclose(uni, np.repeat(1.0 / sizes, sizes))
    greedy = baseline_action_dist("campaign", log, catalog_for(root, log.table), {"epsilon": 0.0})
    assert set(np.unique(greedy).tolist()) == {0.0, 1.0}
    with pytest.raises(TargetError, match=r"policy 'campaign': .*epsilon must be in \[0, 1\]"):
        baseline_action_dist("campaign", log, params={"epsilon": 2.0})
    with pytest.raises(TargetError, match="policy 'oracle': not a baseline"):
        baseline_action_dist("oracle", log)


def _policy_table(log: LoggedLog, dist: np.ndarray) -> pa.Table:
    seg = np.repeat(np.arange(log.n_decisions), np.diff(log.offsets))
    return pa.table(
        {
            "event_id": pa.array(log.event_ids[seg].astype(str)),
            "action_id": pa.array(log.action_ids.astype(str)),
            "probability": pa.array(dist),
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_external_table_round_trip(
    suffix: str, tmp_path: Path, campaign_log: tuple[Path, LoggedLog]
) -> None:
    _, log = campaign_log
    rng = np.random.default_rng(0)
    raw = rng.random(log.n_flat)
    dist = raw / np.repeat(np.add.reduceat(raw, log.offsets[:-1]), np.diff(log.offsets))
    table = _policy_table(log, dist)
    # shuffled rows: alignment is by (event_id, action_id), not by position
    table = table.take(pa.array(rng.permutation(table.num_rows)))
    path = tmp_path / f"policy{suffix}"
    if suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    spec = parse_target(f"table:{path}")
    got = target_action_dist(spec, log)
    np.testing.assert_allclose(got, dist, rtol=1e-12)


def _bad_tables(log: LoggedLog) -> list[tuple[str, pa.Table, str]]:
    sizes = np.diff(log.offsets)
    dist = np.repeat(1.0 / sizes, sizes)
    good = _policy_table(log, dist)
    first = str(log.event_ids[0])
    n0 = int(sizes[0])
    ev = good.column("event_id").to_pylist()
    act = good.column("action_id").to_pylist()
    p = good.column("probability").to_numpy().copy()
    out = []
    unknown = pa.table(
        {
            "event_id": [*ev, "no-such-event"],
            "action_id": [*act, act[0]],
            "probability": np.append(p, 0.5),
        }
    )
    out.append(
        ("unknown event", unknown, r"1 event id\(s\) are not logged decisions .*no-such-event")
    )
    out.append(
        ("missing decision", good.slice(n0), rf"no probabilities for 1 logged decision.*{first}")
    )
    drop_one = good.take(pa.array(np.delete(np.arange(good.num_rows), 1)))
    out.append(
        ("missing action", drop_one, rf"1 eligible action\(s\) missing; first: event_id {first}")
    )
    p2 = p.copy()
    p2[0] += 0.25
    out.append(
        (
            "sum",
            good.set_column(2, "probability", pa.array(p2)),
            rf"do not sum to 1 for 1 decision\(s\); first: event_id {first} sums to 1\.25",
        )
    )
    p3 = p.copy()
    p3[0] = 1.5
    out.append(
        (
            "range",
            good.set_column(2, "probability", pa.array(p3)),
            r"outside \[0, 1\]; first at row 0 .*: 1\.5",
        )
    )
    p4 = p.copy()
    p4[0] = -0.1
    out.append(("negative", good.set_column(2, "probability", pa.array(p4)), r"outside \[0, 1\]"))
    dup = pa.concat_tables([good, good.slice(0, 1)])
    out.append(("duplicate", dup, rf"\(event_id {first}, action_id .*\) is listed more than once"))
    foreign = pa.table(
        {
            "event_id": [*ev, first],
            "action_id": [*act, "NOT-AN-ACTION@email"],
            "probability": np.append(p, 0.0),
        }
    )
    out.append(
        ("ineligible action", foreign, r"name actions outside their decision's eligible set")
    )
    return out


def test_bad_external_tables_fail_naming_what_and_where(
    tmp_path: Path, campaign_log: tuple[Path, LoggedLog]
) -> None:
    _, log = campaign_log
    for name, table, match in _bad_tables(log):
        path = tmp_path / f"{name.replace(' ', '_')}.parquet"
        pq.write_table(table, path)
        with pytest.raises(TargetError, match=match) as info:
            table_action_dist(read_policy_table(path), log, source=str(path))
        assert str(path) in str(info.value), name


def test_unreadable_tables(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"policy table .*missing\.parquet: no such file"):
        read_policy_table(tmp_path / "missing.parquet")
    txt = tmp_path / "p.txt"
    txt.write_text("x")
    with pytest.raises(TargetError, match=r"unknown format '\.txt'"):
        read_policy_table(txt)
    cols = tmp_path / "cols.csv"
    cols.write_text("event_id,action,probability\ne1,a@email,1.0\n")
    with pytest.raises(TargetError, match=r"missing column\(s\) action_id"):
        read_policy_table(cols)
    empty = tmp_path / "empty.csv"
    empty.write_text("event_id,action_id,probability\ne1,a@email,\n")
    with pytest.raises(TargetError, match=r"row 0: column 'probability' is empty"):
        read_policy_table(empty)
    text = tmp_path / "text.csv"
    text.write_text("event_id,action_id,probability\ne1,a@email,high\n")
    with pytest.raises(TargetError, match=r"text\.csv"):
        read_policy_table(text)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("greedy", r"policy 'greedy': unknown policy; expected one of uniform, campaign, segment"),
        ("", "empty policy spec"),
        ("table:", "give the table path"),
        ("/no/such/model/dir", r"policy '/no/such/model/dir': unknown policy"),
    ],
)
def test_bad_policy_specs(spec: str, match: str) -> None:
    with pytest.raises(TargetError, match=match):
        parse_target(spec)


def test_parse_target_kinds(tmp_path: Path) -> None:
    assert parse_target("segment").kind == "baseline"
    assert parse_target("models:/nba/3").kind == "model"
    assert parse_target("runs:/abc/model").kind == "model"
    assert parse_target(str(tmp_path)).kind == "model"
    assert parse_target("table:x.csv").value == "x.csv"
