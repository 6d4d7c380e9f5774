"""Slates in the log: validation, crediting later slots, DSJSON that VW still reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import vowpalwabbit

from nba.catalog import Catalog
from nba.domain import Decision, SlateSlot, ValidationError
from nba.logs.dsjson import DsjsonError, export_dsjson, iter_dsjson, read_dsjson
from nba.logs.join import join_rewards
from nba.logs.schema import DECISIONS
from nba.policies.base import sample_slate
from nba.reward import RewardDefinition

ACCEPTING = RewardDefinition(
    name="feedback",
    version="1",
    weights={"accepted": 1.0, "opened": 0.2, "clicked": 0.6, "reward": 1.0},
    value_types=frozenset({"reward"}),
)
H = timedelta(hours=1)


def with_slates(dec: pa.Table, k: int) -> pa.Table:
    """``dec`` with every decision's list of ``k`` slots drawn as serving draws them."""
    slates = []
    for r in dec.to_pylist():
        p = np.array(r["probabilities"])
        idx, cond = sample_slate(p, r["chosen_index"], k, 0, r["event_id"])
        slates.append(
            [
                {"action_id": r["action_ids"][i], "probability": q}
                for i, q in zip(idx, cond, strict=True)
            ]
        )
    i = dec.schema.get_field_index("slate")
    return dec.set_column(
        i, DECISIONS.field("slate"), pa.array(slates, DECISIONS.field("slate").type)
    )


def _decision(**over: Any) -> Decision:
    base: dict[str, Any] = dict(
        event_id="e1",
        ts=datetime(2026, 1, 5, 9, tzinfo=UTC),
        hcp_id="h1",
        requester="rep",
        channels_requested=("email",),
        context="{}",
        catalog_version="v",
        action_ids=("a@email", "b@email", "c@email"),
        probabilities=(0.5, 0.3, 0.2),
        chosen_index=0,
        chosen_action_id="a@email",
        propensity=0.5,
        policy="p",
        model_version="m",
    )
    base.update(over)
    return Decision(**base)


def test_a_slate_drawn_without_replacement_is_accepted() -> None:
    d = _decision(slate=(SlateSlot("a@email", 0.5), SlateSlot("c@email", 0.4)))
    assert [s.action_id for s in d.slate] == ["a@email", "c@email"]
    assert _decision().slate == ()


@pytest.mark.parametrize(
    ("slate", "match"),
    [
        ((SlateSlot("a@email", 0.5),), "a one-slot list is logged without a slate"),
        (
            (SlateSlot("a@email", 0.5), SlateSlot("b@email", 0.0)),
            r"slot 2 probability 0.0 is outside \(0, 1\]",
        ),
        (
            (SlateSlot("a@email", 0.5), SlateSlot("b@email", 1.5)),
            r"slot 2 probability 1.5 is outside",
        ),
        ((SlateSlot("a@email", 0.5), SlateSlot("b@email", float("nan"))), "slot 2 probability nan"),
        ((SlateSlot("a@email", 0.5), SlateSlot("a@email", 0.6)), "slot 2 repeats action 'a@email'"),
        (
            (SlateSlot("a@email", 0.5), SlateSlot("z@email", 0.6)),
            "slot 2 action 'z@email' is not eligible",
        ),
        (
            (SlateSlot("b@email", 0.3), SlateSlot("a@email", 0.5)),
            "slot 1 is 'b@email', not the chosen",
        ),
        (
            (SlateSlot("a@email", 0.5), SlateSlot("b@email", 0.3)),
            "slot 2 probability 0.3 differs from 0.6",
        ),
        ((SlateSlot("a@email", 0.5),) * 4, "has 4 slots for 3 actions"),
        (("a@email", SlateSlot("b@email", 0.6)), "slot 1 is not a SlateSlot"),
    ],
)
def test_bad_slates_are_refused(slate: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValidationError, match=f"Decision 'e1': field 'slate': {match}"):
        _decision(slate=slate)


def test_outcomes_naming_a_later_slot_are_credited_to_it(
    make_decisions: Any, make_outcomes: Any
) -> None:
    dec = with_slates(make_decisions(4), 3)
    rows = dec.to_pylist()
    eid, ts = rows[0]["event_id"], rows[0]["ts"]
    s1, s2, s3 = (s["action_id"] for s in rows[0]["slate"])
    not_shown = next(a for a in rows[0]["action_ids"] if a not in (s1, s2, s3))
    o = make_outcomes(
        [
            (eid, ts + H, "accepted", "r1", 1.0, s2),
            (eid, ts + H, "accepted", "r1", 1.0, s2),  # the same report twice
            (eid, ts + 2 * H, "accepted", "r2", 1.0, s3),
            (eid, ts + 30 * 24 * H, "accepted", "r3", 1.0, s3),  # after the window
            (eid, ts + H, "accepted", "r4", 1.0, not_shown),  # not in the list
            (eid, ts + H, "accepted", "r5", 1.0, None),  # the chosen action
        ]
    )
    res = join_rewards(dec, o, ACCEPTING)
    got = res.table.to_pylist()
    assert got[0]["reward"] == 1.0 and got[0]["slot_rewards"] == [1.0, 1.0, 1.0]
    assert got[1]["slot_rewards"] == [0.0, 0.0, 0.0]
    c = res.counts
    assert (c.outcomes_used, c.slot_outcomes, c.late_outcomes) == (1, 2, 1)
    assert (c.other_action_outcomes, c.duplicate_outcomes) == (1, 1)
    parts = (
        c.outcomes_used
        + c.slot_outcomes
        + c.late_outcomes
        + c.early_outcomes
        + c.other_action_outcomes
        + c.duplicate_outcomes
        + c.unknown_event_outcomes
    )
    assert parts == c.outcomes == 6


def test_a_later_slot_reward_is_net_of_its_own_actions_cost(
    make_decisions: Any, make_outcomes: Any
) -> None:
    dec = with_slates(make_decisions(2), 3)
    row = dec.to_pylist()[0]
    eid, ts = row["event_id"], row["ts"]
    s1, s2, s3 = (s["action_id"] for s in row["slate"])
    channels = {a: a.split("@")[1] for a in (s1, s2, s3)}
    costs = {c: 0.1 * (i + 1) for i, c in enumerate(sorted(set(channels.values())))}
    priced = RewardDefinition(
        name="priced",
        version="1",
        weights=dict(ACCEPTING.weights),
        value_types=ACCEPTING.value_types,
        costs=costs,
    )
    o = make_outcomes([(eid, ts + H, "accepted", "r1", 1.0, s2)])
    got = join_rewards(dec, o, priced).table.to_pylist()[0]
    want = [-costs[channels[s1]], 1.0 - costs[channels[s2]], -costs[channels[s3]]]
    assert got["slot_rewards"] == pytest.approx(want, abs=1e-12)
    assert got["reward"] == pytest.approx(want[0], abs=1e-12)


def test_one_slot_decisions_join_as_before(make_decisions: Any, make_outcomes: Any) -> None:
    dec = make_decisions(3)
    r0 = dec.to_pylist()[0]
    other = next(a for a in r0["action_ids"] if a != r0["chosen_action_id"])
    o = make_outcomes([(r0["event_id"], r0["ts"] + H, "accepted", "x", 1.0, other)])
    res = join_rewards(dec, o, ACCEPTING)
    assert res.table.column("slot_rewards").null_count == 3
    assert res.counts.other_action_outcomes == 1 and res.counts.slot_outcomes == 0


def _slate_log(make_decisions: Any, make_outcomes: Any, n: int) -> tuple[pa.Table, pa.Table]:
    dec = with_slates(make_decisions(n), 3)
    rows = []
    for i, r in enumerate(dec.to_pylist()):
        if i % 2 == 0:
            rows.append(
                (r["event_id"], r["ts"] + H, "accepted", f"s{i}", 1.0, r["slate"][1]["action_id"])
            )
        if i % 3 == 0:
            rows.append((r["event_id"], r["ts"] + H, "accepted", f"c{i}", 1.0))
    o = make_outcomes(rows)
    return join_rewards(dec, o, ACCEPTING).table, o


def test_vw_reads_lines_with_slates_and_import_gives_them_back(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    joined, outcomes = _slate_log(make_decisions, make_outcomes, 60)
    path = tmp_path / "x.dsjson"
    cat = Catalog.default()
    assert export_dsjson(joined, path, {cat.version: cat}, outcomes=outcomes) == 60
    first = json.loads(path.read_text().splitlines()[0])
    assert [s["action_id"] for s in first["nba"]["slate"]] == [
        s["action_id"] for s in joined.column("slate")[0].as_py()
    ]
    metrics = tmp_path / "metrics.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson --epsilon 0.1 -d {path} --extra_metrics {metrics} --quiet"
    )
    vw.finish()
    m = json.loads(metrics.read_text())
    cbea = next(v for k, v in m.items() if k.startswith("cb_explore_adf"))
    assert m["line_parse_error"] == 0 and cbea["cbea_labeled_ex"] == 60
    assert cbea["cbea_sum_cost"] == pytest.approx(-sum(joined.column("reward").to_pylist()))
    back = read_dsjson(path)
    assert back.decisions.column("slate").to_pylist() == joined.column("slate").to_pylist()
    again = join_rewards(back.decisions, back.outcomes, ACCEPTING).table
    assert again.column("slot_rewards").to_pylist() == joined.column("slot_rewards").to_pylist()
    assert sum(r[1] for r in joined.column("slot_rewards").to_pylist()) == 30


@pytest.mark.parametrize(
    ("slate", "match"),
    [
        ("x", r"nba\.slate': must be a list"),
        ([3], r"nba\.slate\[0\]': must be an object with a string action_id"),
        (
            [{"action_id": "A", "probability": "1"}],
            r"nba\.slate\[0\]\.probability': must be a finite",
        ),
        (
            [
                {"action_id": "CHOSEN", "probability": 2.0},
                {"action_id": "OTHER", "probability": 1.0},
            ],
            r"slot 1 probability 2.0 is outside",
        ),
        (
            [
                {"action_id": "CHOSEN", "probability": "P"},
                {"action_id": "CHOSEN", "probability": 1.0},
            ],
            r"slot 2 repeats action",
        ),
    ],
)
def test_bad_slates_in_dsjson_are_refused(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any, slate: Any, match: str
) -> None:
    joined, outcomes = _slate_log(make_decisions, make_outcomes, 1)
    obj = json.loads(next(iter_dsjson(joined, outcomes=outcomes)))
    row = joined.to_pylist()[0]
    text = json.dumps(slate).replace('"CHOSEN"', json.dumps(row["chosen_action_id"]))
    text = text.replace('"OTHER"', json.dumps(row["slate"][1]["action_id"]))
    text = text.replace('"P"', str(row["propensity"]))
    obj["nba"]["slate"] = json.loads(text)
    path = tmp_path / "bad.dsjson"
    path.write_text(json.dumps(obj) + "\n")
    with pytest.raises(DsjsonError, match=match):
        read_dsjson(path)


def _slot_rewards_by_row(
    decisions: pa.Table,
    d_in: pa.Table,
    named: pa.Table,
    reward: pa.ChunkedArray,
    sql: str,
    params: dict[str, Any],
    weights: pa.Table,
    reward_def: RewardDefinition,
    sql_engine: Any,
) -> tuple[pa.Array, dict[str, int]]:
    """The slots' rewards one slot at a time in Python (the join's way before it
    read the slates column-wise): the reference for the column-wise one."""
    from nba.logs import join

    slates = decisions.column("slate").to_pylist()
    event_ids = d_in.column("event_id").to_pylist()
    ts_us = d_in.column("ts_us").to_pylist()
    keys, slot_ts, slot_action, where = [], [], [], []
    for r, slate in enumerate(slates):
        for j, slot in enumerate(slate or ()):
            if j:
                keys.append(f"{event_ids[r]}{join._SLOT_KEY_SEP}{slot['action_id']}")
                slot_ts.append(ts_us[r])
                slot_action.append(slot["action_id"])
                where.append((r, j))
    costs = [reward_def.cost_of(a) if a is not None else 0.0 for a in slot_action]
    s_in = pa.table(
        {
            "row_id": pa.array(np.arange(len(keys), dtype=np.int64)),
            "event_id": pa.array(keys, pa.string()),
            "ts_us": pa.array(slot_ts, pa.int64()),
            "chosen_action_id": pa.array(slot_action, pa.string()),
            "cost": pa.array(costs, pa.float64()),
        }
    )
    o_key = pc.binary_join_element_wise(
        named.column("event_id"), named.column("action_id"), join._SLOT_KEY_SEP
    )
    per, counted = sql_engine.run(
        {"decisions": s_in, "outcomes": named.set_column(0, "event_id", o_key), "weights": weights},
        [(sql, params), (join.COUNTS_SQL, {"window_us": params["window_us"]})],
    )
    status = {
        k: c for k, c in join._status_counts(counted).items() if k in ("used", "late", "early")
    }
    first = reward.to_pylist()
    out: list[list[float] | None] = [
        None if not sl else [float(first[r])] + [0.0] * (len(sl) - 1) for r, sl in enumerate(slates)
    ]
    for (r, j), value in zip(where, per.column("reward").to_pylist(), strict=True):
        row = out[r]
        assert row is not None
        row[j] = float(value)
    return pa.array(out, pa.list_(pa.float64())), status


def test_slot_rewards_read_column_wise_match_one_slot_at_a_time(
    make_decisions: Any, make_outcomes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nba.logs import join

    dec = with_slates(make_decisions(40), 3)
    rows = dec.to_pylist()
    slates: list[Any] = [r["slate"] for r in rows]
    slates[1], slates[2], slates[3] = None, [], slates[3][:1]  # null, empty, one slot
    slates[4] = slates[4][:2]
    slates[5] = [slates[5][0], {"action_id": None, "probability": 0.5}]  # no action id
    i = dec.schema.get_field_index("slate")
    dec = dec.set_column(
        i, DECISIONS.field("slate"), pa.array(slates, DECISIONS.field("slate").type)
    )
    dec = pa.concat_tables([dec.slice(0, 17), dec.slice(17)])  # two chunks
    assert dec.column("slate").num_chunks == 2
    out = []
    for k, r in enumerate(rows):
        for j, slot in enumerate(slates[k] or ()):
            if slot["action_id"] is not None and k % 3 != 1:
                late = 30 * 24 * H if k % 7 == 0 else H
                out.append(
                    (
                        r["event_id"],
                        r["ts"] + late,
                        "accepted",
                        f"s{k}.{j}",
                        1.0 + j,
                        slot["action_id"],
                    )
                )
    out.append((rows[5]["event_id"], rows[5]["ts"] + H, "accepted", "x", 1.0, "None"))
    o = make_outcomes(out)
    priced = RewardDefinition(
        name="priced",
        version="1",
        weights=dict(ACCEPTING.weights),
        value_types=ACCEPTING.value_types,
        costs={"email": 0.25, "rep_visit": 1.5},
    )
    for rd in (ACCEPTING, priced):
        got = join_rewards(dec, o, rd)
        with monkeypatch.context() as m:
            m.setattr(join, "_slot_rewards", _slot_rewards_by_row)
            want = join_rewards(dec, o, rd)
        assert (
            got.table.column("slot_rewards").to_pylist()
            == want.table.column("slot_rewards").to_pylist()
        )
        assert got.table.equals(want.table)
        assert got.counts == want.counts
        lists = got.table.column("slot_rewards").to_pylist()
        assert lists[1] is None and lists[2] is None and len(lists[3]) == 1
        assert got.counts.slot_outcomes > 0
