"""Credit goes to the suggestion an outcome concerns: only outcomes about the chosen
action enter its reward; the others are kept in the log, counted, and exported."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import vowpalwabbit

from nba.catalog import Catalog
from nba.logs import io
from nba.logs.dsjson import (
    DsjsonError,
    export_dsjson,
    iter_dsjson,
    other_action_outcomes,
    read_dsjson,
)
from nba.logs.join import join_rewards, load_joined
from nba.logs.schema import OUTCOMES
from nba.reward import RewardDefinition

#: a definition that weighs rep feedback, as the reproduction needs
ACCEPTING = RewardDefinition(
    name="feedback",
    version="1",
    weights={"accepted": 1.0, "opened": 0.2, "clicked": 0.6, "visited": 0.2, "reward": 1.0},
    # imported DSJSON carries the chosen action's reward as a numeric "reward" outcome
    value_types=frozenset({"reward"}),
)
H = timedelta(hours=1)
D = timedelta(days=1)


def _first(dec: pa.Table) -> tuple[str, Any, str, str]:
    """Event id, ts, chosen action and another action of the first decision."""
    row = dec.slice(0, 1).to_pylist()[0]
    other = next(a for a in row["action_ids"] if a != row["chosen_action_id"])
    return row["event_id"], row["ts"], row["chosen_action_id"], other


def test_accepted_on_suggestion_two_is_not_credited_to_the_chosen_action(
    make_decisions: Any, make_outcomes: Any
) -> None:
    """The reproduction: 'accepted' on suggestion #2 used to give action #1 a reward of 1."""
    dec = make_decisions(1)
    eid, ts, chosen, other = _first(dec)
    res = join_rewards(
        dec, make_outcomes([(eid, ts + H, "accepted", "rep", 1.0, other)]), ACCEPTING
    )
    row = res.table.to_pylist()[0]
    assert row["reward"] == ACCEPTING.default_reward == 0.0
    assert row["reward_is_default"] is True and row["n_outcomes"] == 0
    assert res.counts.other_action_outcomes == 1 and res.counts.outcomes_used == 0
    # the same feedback about the chosen action, implicit or explicit, is credited
    for action_id in (None, chosen):
        o = make_outcomes([(eid, ts + H, "accepted", "rep", 1.0, action_id)])
        res = join_rewards(dec, o, ACCEPTING)
        assert res.table.column("reward").to_pylist() == [1.0]
        assert res.counts.other_action_outcomes == 0 and res.counts.outcomes_used == 1


def test_counts_partition_the_outcomes_with_other_actions(
    make_decisions: Any, make_outcomes: Any
) -> None:
    dec = make_decisions(3)
    e = dec.column("event_id").to_pylist()
    ts = dec.column("ts").to_pylist()
    other = [_first(dec.slice(i, 1))[3] for i in range(3)]
    o = make_outcomes(
        [
            (e[0], ts[0] + H, "opened", "a"),
            (e[0], ts[0] + H, "clicked", "b", 1.0, other[0]),  # other suggestion
            (e[0], ts[0] + H, "clicked", "b", 1.0, other[0]),  # ... duplicated
            (e[1], ts[1] + 30 * D, "accepted", "c", 1.0, other[1]),  # other and late: other
            (e[1], ts[1] + 30 * D, "clicked", "d"),  # late
            ("nobody", ts[2], "clicked", "e", 1.0, "x@email"),  # unknown event id
            (e[2], ts[2] - H, "opened", "f", 1.0, other[2]),  # other and early: other
        ]
    )
    c = join_rewards(dec, o, ACCEPTING).counts
    assert (c.outcomes_used, c.other_action_outcomes, c.duplicate_outcomes) == (1, 3, 1)
    assert (c.late_outcomes, c.unknown_event_outcomes, c.early_outcomes) == (1, 1, 0)
    assert c.outcomes == (
        c.outcomes_used
        + c.late_outcomes
        + c.early_outcomes
        + c.unknown_event_outcomes
        + c.duplicate_outcomes
        + c.unselected_outcomes
        + c.other_action_outcomes
    )


def test_sql_reward_uses_only_outcomes_about_the_chosen_action(
    make_decisions: Any, make_outcomes: Any
) -> None:
    """Random logs against a reference in Python: drop outcomes about other actions,
    then window and ``reward_of``."""
    rng = np.random.default_rng(11)
    dec = make_decisions(80, seed=5)
    rows = []
    for d in dec.to_pylist():
        for j in range(int(rng.integers(0, 5))):
            typ = str(rng.choice(["accepted", "opened", "clicked", "visited"]))
            pick = int(rng.integers(0, 3))
            aid = [None, d["chosen_action_id"], str(rng.choice(d["action_ids"]))][pick]
            rows.append(
                (d["event_id"], d["ts"] + float(rng.uniform(0, 20)) * D, typ, f"s{j}", 1.0, aid)
            )
    res = join_rewards(dec, make_outcomes(rows), ACCEPTING)
    window = timedelta(days=ACCEPTING.window_days)
    expected = []
    for d in dec.to_pylist():
        types = {
            typ
            for eid, ts, typ, _, _, aid in rows
            if eid == d["event_id"]
            and aid in (None, d["chosen_action_id"])
            and d["ts"] <= ts <= d["ts"] + window
        }
        expected.append(ACCEPTING.reward_of(types))
    assert res.table.column("reward").to_pylist() == pytest.approx(expected)
    ids, chosen_ids = dec["event_id"].to_pylist(), dec["chosen_action_id"].to_pylist()
    chosen = dict(zip(ids, chosen_ids, strict=True))
    n_other = sum(1 for eid, *_, aid in rows if aid is not None and aid != chosen[eid])
    assert res.counts.other_action_outcomes == n_other > 0


# ------------------------------------------------------------------ Parquet
def test_outcome_action_id_round_trips_through_parquet(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    dec = make_decisions(2)
    eid, ts, _, other = _first(dec)
    o = make_outcomes([(eid, ts + H, "accepted", "r1", 1.0, other), (eid, ts + H, "opened", "m1")])
    io.append(tmp_path, "decisions", dec)
    io.append(tmp_path, "outcomes", o)
    back = io.read(tmp_path, "outcomes")
    assert back.schema == OUTCOMES
    assert sorted(back.column("action_id").to_pylist(), key=str) == [None, other]
    # every window closed: the log holds no manifest, so the horizon is given
    res = load_joined(tmp_path, ACCEPTING, as_of=ts + timedelta(days=30))
    assert res.counts.other_action_outcomes == 1
    assert res.table.column("reward").to_pylist()[0] == 0.2


def test_parts_written_before_action_id_read_as_the_chosen_action(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    """A part written with the previous outcomes schema (no action_id) still reads: null."""
    dec = make_decisions(1)
    eid, ts, _, _ = _first(dec)
    io.append(tmp_path, "decisions", dec)
    old = make_outcomes([(eid, ts + H, "opened", "m1")]).drop_columns(["action_id"])
    part = tmp_path / "outcomes" / f"date={(ts + H).date().isoformat()}" / "part-00000.parquet"
    part.parent.mkdir(parents=True)
    pq.write_table(old, part)
    back = io.read(tmp_path, "outcomes")
    assert back.schema == OUTCOMES and back.column("action_id").to_pylist() == [None]
    joined = load_joined(tmp_path, ACCEPTING, as_of=ts + timedelta(days=30))
    assert joined.table.column("reward").to_pylist() == [0.2]
    # an old writer's table (without the column) still conforms
    assert io.conform(old, "outcomes").column("action_id").null_count == 1


# ------------------------------------------------------------------- DSJSON
def _joined_with_others(make_decisions: Any, make_outcomes: Any, n: int) -> tuple[Any, Any]:
    """Decisions where the chosen email action is clicked and, for every third one,
    a rep accepted another suggestion (twice: a duplicate) and it was visited late."""
    dec = make_decisions(n, seed=2)
    rows = []
    for d in dec.to_pylist():
        others = [a for a in d["action_ids"] if a != d["chosen_action_id"]]
        if d["chosen_action_id"].endswith("@email"):
            rows.append((d["event_id"], d["ts"] + 2 * H, "clicked", "c"))
        if int(d["event_id"][1:]) % 3 == 0:
            rows.append((d["event_id"], d["ts"] + H, "accepted", "rep", 1.0, others[0]))
            rows.append((d["event_id"], d["ts"] + 5 * H, "accepted", "rep", 1.0, others[0]))
            rows.append((d["event_id"], d["ts"] + 20 * D, "dismissed", "rep2", 1.0, others[-1]))
    outcomes = make_outcomes(rows)
    return join_rewards(dec, outcomes, ACCEPTING), outcomes


def test_dsjson_export_keeps_outcomes_about_other_suggestions(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    res, outcomes = _joined_with_others(make_decisions, make_outcomes, 30)
    joined = res.table
    by_event = other_action_outcomes(outcomes, joined)
    assert len(by_event) == 10
    lines = [json.loads(x) for x in iter_dsjson(joined, outcomes=outcomes)]
    for obj, row in zip(lines, joined.to_pylist(), strict=True):
        others = obj["nba"].get("other_action_outcomes")
        if int(row["event_id"][1:]) % 3:
            assert others is None
            continue
        # the duplicate is gone, the late dismissal kept, earliest first
        assert [(o["type"], o["source_id"]) for o in others] == [
            ("accepted", "rep"),
            ("dismissed", "rep2"),
        ]
        assert all(o["action_id"] != row["chosen_action_id"] for o in others)
        assert others[0]["ts"] == (row["ts"] + H).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        # never in the label: the chosen action's reward is its click or the default
        assert obj["_label_cost"] == -row["reward"]
    # round trip: the other-suggestion outcomes come back with their action ids,
    # and re-joining counts them again instead of crediting them
    path = tmp_path / "x.dsjson"
    export_dsjson(joined, path, outcomes=outcomes)
    back = read_dsjson(path)
    got = back.outcomes.filter(pc.is_valid(back.outcomes["action_id"])).to_pylist()
    want = [o for rows in by_event.values() for o in rows]
    key = ("event_id", "type", "source_id", "action_id", "value", "ts")
    assert sorted(tuple(o[k] for k in key) for o in got) == sorted(
        tuple(o[k] for k in key) for o in want
    )
    again = join_rewards(back.decisions, back.outcomes, ACCEPTING)
    assert again.table.column("reward").to_pylist() == pytest.approx(
        joined.column("reward").to_pylist()
    )
    assert again.counts.other_action_outcomes == len(want) == 20


def test_vw_reads_every_line_with_other_suggestion_outcomes(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    """The real VW binding, --cb_explore_adf --dsjson: no line is refused or skipped, and
    the costs it learns from are exactly the chosen actions' rewards."""
    res, outcomes = _joined_with_others(make_decisions, make_outcomes, 90)
    joined = res.table
    path = tmp_path / "train.dsjson"
    cat = Catalog.default()
    n = export_dsjson(joined, path, {cat.version: cat}, outcomes=outcomes)
    with_others = sum("other_action_outcomes" in line for line in path.read_text().splitlines())
    assert with_others == 30
    metrics = tmp_path / "metrics.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson --epsilon 0.1 -d {path} --extra_metrics {metrics} --quiet"
    )
    vw.finish()
    m = json.loads(metrics.read_text())
    cbea = next(v for k, v in m.items() if k.startswith("cb_explore_adf"))
    inactive = sum(not a for a in joined.column("activated").to_pylist())
    active = joined.filter(joined.column("activated"))
    assert m["line_parse_error"] == 0
    assert m["number_skipped_events"] == inactive
    assert cbea["cbea_labeled_ex"] == n - inactive == 90
    assert cbea["cbea_sum_cost"] == pytest.approx(-sum(active.column("reward").to_pylist()))


def _line(tmp_path: Path, make_decisions: Any, make_outcomes: Any) -> dict[str, Any]:
    res, outcomes = _joined_with_others(make_decisions, make_outcomes, 1)
    return dict(json.loads(next(iter_dsjson(res.table, outcomes=outcomes))))


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("x", r"\[0\]': must be an object"),
        ({"action_id": "NOPE@email"}, r"\[0\]\.action_id': 'NOPE@email' is not one of the event"),
        ({"action_id": "CHOSEN"}, r"\[0\]\.action_id': .* is the chosen action"),
        ({"type": "teleported"}, r"\[0\]\.type': unknown outcome type 'teleported'"),
        ({"type": "INCOMPATIBLE"}, r"\[0\]\.type': outcome type '\w+' cannot happen on"),
        ({"value": "1"}, r"\[0\]\.value': must be a finite number"),
        ({"source_id": 3}, r"\[0\]\.source_id': must be a string"),
        ({"ts": "yesterday"}, r"\[0\]\.ts': 'yesterday' is not an ISO 8601 timestamp"),
        ({"ts": "2026-01-05T10:00:00"}, r"\[0\]\.ts': .* has no time zone"),
    ],
)
def test_import_refuses_bad_other_suggestion_outcomes(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any, entry: Any, match: str
) -> None:
    obj = _line(tmp_path, make_decisions, make_outcomes)
    others = obj["nba"]["other_action_outcomes"]
    good = dict(others[0])
    if isinstance(entry, dict):
        if entry.get("action_id") == "CHOSEN":
            entry = {"action_id": obj["nba"]["action_ids"][obj["_labelIndex"]]}
        if entry.get("type") == "INCOMPATIBLE":
            # a type that cannot happen on the channel of the action the entry concerns
            channel = good["action_id"].rpartition("@")[2]
            entry = {"type": "meeting_held" if channel != "rep_visit" else "opened"}
        good.update(entry)
        others[0] = good
    else:
        others[0] = entry
    path = tmp_path / "bad.dsjson"
    path.write_text(json.dumps(obj) + "\n")
    with pytest.raises(
        DsjsonError, match=rf"bad\.dsjson:1: field 'nba\.other_action_outcomes{match}"
    ):
        read_dsjson(path)
