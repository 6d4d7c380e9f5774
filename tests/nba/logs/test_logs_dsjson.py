"""DSJSON export that VW really learns from, and import of foreign DSJSON logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import vowpalwabbit

from nba.catalog import Catalog
from nba.domain import Action
from nba.logs import io
from nba.logs.dsjson import (
    DsjsonError,
    dsjson_features,
    export_dsjson,
    import_dsjson,
    iter_dsjson,
    read_dsjson,
)
from nba.logs.join import join_rewards
from nba.reward import RewardDefinition

RD = RewardDefinition.default()


def _joined(make_decisions: Any, make_outcomes: Any, n: int = 40, seed: int = 0) -> pa.Table:
    """Joined decisions where a chosen email action earns a click (0.6), others nothing."""
    act = [i % 9 != 8 for i in range(n)]
    dec = make_decisions(n, seed=seed, activated=act)
    rows = []
    for eid, ts, aid in zip(
        dec.column("event_id").to_pylist(),
        dec.column("ts").to_pylist(),
        dec.column("chosen_action_id").to_pylist(),
        strict=True,
    ):
        if Action.parse(aid).channel == "email":
            rows.append((eid, ts + timedelta(hours=2), "clicked", "s"))
    return join_rewards(dec, make_outcomes(rows), RD).table


def test_export_fields(make_decisions: Any, make_outcomes: Any) -> None:
    joined = _joined(make_decisions, make_outcomes)
    cat = Catalog.default()
    lines = list(iter_dsjson(joined, {cat.version: cat}))
    assert len(lines) == joined.num_rows
    for line, row in zip(lines, joined.to_pylist(), strict=True):
        obj = json.loads(line)
        n = len(row["action_ids"])
        assert obj["_label_cost"] == -row["reward"]
        assert obj["_label_probability"] == row["propensity"]
        assert obj["_label_Action"] == row["chosen_index"] + 1
        assert obj["_labelIndex"] == row["chosen_index"]
        assert obj["a"] == list(range(1, n + 1))
        assert obj["p"] == row["probabilities"]
        assert len(obj["c"]["_multi"]) == n
        assert obj["EventId"] == row["event_id"]
        assert obj["Version"] == "1"
        assert datetime.fromisoformat(obj["Timestamp"]) == row["ts"]
        assert obj["VWState"] == {"m": row["model_version"]}
        assert obj.get("_skipLearn", False) is (not row["activated"])
        assert obj["nba"]["action_ids"] == row["action_ids"]
        # item features come from the catalog of the decision's version
        first = obj["c"]["_multi"][0]
        item = cat.item_for(row["action_ids"][0])
        assert (list(first["T"]), list(first["F"])) == ([item.topic], [item.format])
        # the one featurizer: the same namespaces and features as nba train's VW lines
        from nba.context import DecisionContext
        from nba.domain import Action
        from nba.features import Featurizer

        ctx = DecisionContext.from_json(row["context"])
        acts = [Action.parse(a) for a in row["action_ids"]]
        assert obj["c"] == Featurizer(cat).dsjson_c(ctx, acts)


def test_round_trip_keeps_ids_probabilities_choice_and_reward(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    joined = _joined(make_decisions, make_outcomes, n=60, seed=4)
    path = tmp_path / "x.dsjson"
    assert export_dsjson(joined, path) == 60
    back = read_dsjson(path)
    d = back.decisions
    for col in (
        "event_id",
        "ts",
        "probabilities",
        "chosen_index",
        "chosen_action_id",
        "propensity",
        "action_ids",
        "activated",
        "hcp_id",
        "model_version",
        "catalog_version",
    ):
        assert d.column(col).to_pylist() == joined.column(col).to_pylist(), col
    assert set(d.column("policy").to_pylist()) == {"imported"}
    # one "reward" outcome per decision that earned one, carrying the reward
    rewards = {r["event_id"]: r["reward"] for r in joined.to_pylist() if not r["reward_is_default"]}
    got = {r["event_id"]: r["value"] for r in back.outcomes.to_pylist()}
    assert got == rewards and rewards
    assert set(back.outcomes.column("type").to_pylist()) == {"reward"}
    assert back.not_activated == sum(not a for a in joined.column("activated").to_pylist())
    # and joining the imported log again under the default definition gives them back
    from nba.logs.join import join_rewards
    from nba.reward import RewardDefinition

    again = join_rewards(d, back.outcomes, RewardDefinition.default()).table
    assert again.column("reward").to_pylist() == pytest.approx(joined.column("reward").to_pylist())
    # the imported context carries the features: exporting it again gives the same c
    for before, row in zip(joined.to_pylist(), d.to_pylist(), strict=True):
        s0, a0 = dsjson_features(before["context"], before["action_ids"], None)
        s1, a1 = dsjson_features(row["context"], row["action_ids"], None)
        assert (s0, a0) == (s1, a1)


def test_vw_learns_from_the_export(tmp_path: Path, make_decisions: Any, make_outcomes: Any) -> None:
    joined = _joined(make_decisions, make_outcomes, n=600, seed=1)
    path = tmp_path / "train.dsjson"
    cat = Catalog.default()
    n_lines = export_dsjson(joined, path, {cat.version: cat})
    model = tmp_path / "m.vw"
    metrics = tmp_path / "metrics.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson --epsilon 0.1 -d {path} -f {model} "
        f"--extra_metrics {metrics} --quiet"
    )
    vw.finish()
    m = json.loads(metrics.read_text())
    cbea = next(v for k, v in m.items() if k.startswith("cb_explore_adf"))
    inactive = sum(not a for a in joined.column("activated").to_pylist())
    active = joined.filter(joined.column("activated"))
    assert m["line_parse_error"] == 0
    assert m["number_skipped_events"] == inactive > 0
    assert cbea["cbea_labeled_ex"] == n_lines - inactive
    assert m["first_event_id"] == joined.column("event_id")[0].as_py()
    expected_cost = -sum(active.column("reward").to_pylist())
    assert cbea["cbea_sum_cost"] == pytest.approx(expected_cost, rel=1e-5)

    # predictions change: the trained model puts the greedy mass on the email action
    # of a probe decision built by the same featurizer (no label: prediction only;
    # VW's DSJSON parser needs `a` to read the actions)
    probe_actions = ["VEL-EFF-01@rep_visit", "VEL-EFF-02@email", "VEL-EFF-03@portal"]
    shared, actions = dsjson_features(joined.column("context")[0].as_py(), probe_actions, cat)
    probe = {"Version": "1", "EventId": "probe", "a": [1, 2, 3], "p": [1 / 3] * 3}
    line = json.dumps({**probe, "c": {**shared, "_multi": actions}})
    fresh = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --epsilon 0.1 --quiet")
    trained = vowpalwabbit.Workspace(f"--dsjson -i {model} --quiet")
    p0 = fresh.predict(line)
    p1 = trained.predict(line)
    fresh.finish()
    trained.finish()
    assert p0 == pytest.approx([1 / 3] * 3)
    assert p1 != pytest.approx(p0)
    assert max(range(3), key=lambda k: p1[k]) == 1  # the email action


# ------------------------------------------------------------------ import
def _event(**over: Any) -> dict[str, Any]:
    """A Personalizer-shaped event: a[0] is the chosen action, p aligned with a."""
    ev: dict[str, Any] = {
        "_label_cost": -1.0,
        "_label_probability": 0.8,
        "_label_Action": 2,
        "_labelIndex": 1,
        "o": [{"v": 1.0, "EventId": "ev1", "ActionTaken": False}],
        "Timestamp": "2021-02-04T16:31:29.9430000Z",
        "Version": "1",
        "EventId": "ev1",
        "a": [2, 1, 3],
        "c": {
            "FromUrl": [{"timeofday": "Evening", "weather": "Snowy"}],
            "_multi": [
                {"_tag": "Cappucino", "i": {"constant": 1, "id": "Cappucino"}},
                {"i": {"constant": 1, "id": "Cold brew"}, "j": [{"type": "cold"}]},
                {"j": [{"type": "hot"}]},
            ],
        },
        "p": [0.8, 0.1, 0.1],
        "VWState": {"m": "ff0744c1/550c12cb"},
        "_original_label_cost": -1.0,
    }
    ev.update(over)
    return ev


def _write(path: Path, events: list[Any]) -> Path:
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return path


def test_import_personalizer_shaped_events(tmp_path: Path) -> None:
    events = [
        _event(),
        _event(
            EventId="ev2",
            _skipLearn=True,
            o=[{"EventId": "ev2", "ActionTaken": True}],
            Timestamp="2021-02-04T16:31:30Z",
        ),
        {k: v for k, v in _event(EventId="ev3", _label_cost=-0.25).items() if k != "o"},
    ]
    out = tmp_path / "log"
    res = import_dsjson(_write(tmp_path / "pers.dsjson", events), out)
    d = res.decisions.to_pylist()
    assert [r["event_id"] for r in d] == ["ev1", "ev2", "ev3"]
    first = d[0]
    assert first["ts"] == datetime(2021, 2, 4, 16, 31, 29, 943000, tzinfo=UTC)
    assert first["action_ids"] == ["Cappucino", "Cold brew", "a3"]
    # p is in the order of a: action 2 had 0.8, action 1 had 0.1
    assert first["probabilities"] == pytest.approx([0.1, 0.8, 0.1])
    assert (first["chosen_index"], first["chosen_action_id"]) == (1, "Cold brew")
    assert first["propensity"] == pytest.approx(0.8)
    assert first["model_version"] == "ff0744c1/550c12cb"
    assert (first["policy"], first["catalog_version"], first["hcp_id"]) == (
        "imported",
        "external",
        "unknown",
    )
    ctx = json.loads(first["context"])
    assert ctx["dsjson"] == {"FromUrl": [{"timeofday": "Evening", "weather": "Snowy"}]}
    assert ctx["dsjson_actions"]["Cold brew"]["j"] == [{"type": "cold"}]
    assert [r["activated"] for r in d] == [True, False, True]
    outs = res.outcomes.to_pylist()
    assert [(o["event_id"], o["type"], o["value"], o["source_id"]) for o in outs] == [
        ("ev1", "reward", 1.0, "o0"),
        ("ev3", "reward", 0.25, "label"),
    ]
    # written to the log and read back through nba.logs.io
    assert io.read(out, "decisions").num_rows == 3
    assert io.read(out, "outcomes").num_rows == 2


def test_import_p_in_multi_order_is_recognised(tmp_path: Path) -> None:
    # p listed in _multi order (not in the order of a): _label_probability decides
    ev = _event(a=[2, 1, 3], p=[0.1, 0.8, 0.1], _label_probability=0.8)
    res = read_dsjson(_write(tmp_path / "m.dsjson", [ev]))
    assert res.decisions.column("probabilities")[0].as_py() == pytest.approx([0.1, 0.8, 0.1])


GOOD = json.dumps(_event(EventId="ok"))

BAD_LINES = [
    ("{not json", r"not valid JSON"),
    ("[1, 2]", r"field '\(line\)': must be a JSON object"),
    (_event(EventId=""), r"field 'EventId'"),
    (_event(Timestamp="yesterday"), r"field 'Timestamp': 'yesterday' is not"),
    (_event(Timestamp="2021-02-04T16:31:29"), r"field 'Timestamp'.*no time zone"),
    (_event(c=[1]), r"field 'c':"),
    (_event(c={"_multi": []}), r"field 'c\._multi'"),
    (_event(c={"_multi": [1, 2, 3]}), r"field 'c\._multi\[0\]'"),
    (_event(a=[1, 1, 3]), r"field 'a': must be a permutation of 1\.\.3"),
    (_event(_labelIndex=5, _label_Action=6), r"field '_labelIndex': chosen index 5"),
    (_event(_label_Action=3), r"field '_label_Action': 3 disagrees"),
    (_event(p=[0.8, 0.1]), r"field 'p': must be a list of 3"),
    (_event(p=[0.8, 0.1, 0.6], _label_probability=None), r"field 'p': probabilities sum"),
    (_event(_label_probability=0.3), r"field '_label_probability': 0\.3"),
    (_event(o=[{"v": "yes"}]), r"field 'o\[0\]\.v'"),
    (_event(o={"v": 1}), r"field 'o': must be a list"),
    (_event(_label_cost="high"), r"field '_label_cost'"),
    (_event(_skipLearn="no"), r"field '_skipLearn'"),
    (
        _event(p=[1.0, 0.0, 0.0], a=[1, 2, 3], _label_probability=None),
        r"field '\(event\)'.*propensity",
    ),
    (_event(EventId="ok"), r"field 'EventId': 'ok' already used on line 1"),
    (
        _event(c={"_multi": [{}], "_slots": [{}]}),
        r"field 'c\._slots': CCB/slates events are not supported",
    ),
    (_event(_outcomes=[{"_a": 0}]), r"field '_outcomes': CCB/slates"),
    (
        _event(
            c={"_multi": [{"i": {"id": "x"}}, {"i": {"id": "x"}}, {}]},
        ),
        r"field 'c\._multi': action id 'x' appears twice",
    ),
]


@pytest.mark.parametrize(("bad", "match"), BAD_LINES, ids=[m for _, m in BAD_LINES])
def test_bad_lines_name_file_line_and_field(tmp_path: Path, bad: Any, match: str) -> None:
    if isinstance(bad, dict):
        bad = json.dumps({k: v for k, v in bad.items() if v is not None})
    path = _write(tmp_path / "bad.dsjson", [GOOD, "", bad])
    out = tmp_path / "log"
    with pytest.raises(DsjsonError, match=rf"bad\.dsjson:3: .*{match}"):
        import_dsjson(path, out)
    # validated before writing: nothing at all was written
    assert io.read(out, "decisions").num_rows == 0
    assert not out.exists()


def test_import_never_loses_or_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "log"
    import_dsjson(_write(tmp_path / "a.dsjson", [_event(EventId="e1")]), out)
    import_dsjson(_write(tmp_path / "b.dsjson", [_event(EventId="e2")]), out)
    assert sorted(io.read(out, "decisions").column("event_id").to_pylist()) == ["e1", "e2"]
    parts = io.part_files(out, "decisions")
    assert len(parts) == 2
    with pytest.raises(DsjsonError, match=r"EventId 'e1' is already in the log.*nothing written"):
        import_dsjson(
            _write(tmp_path / "c.dsjson", [_event(EventId="e3"), _event(EventId="e1")]), out
        )
    assert io.part_files(out, "decisions") == parts


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DsjsonError, match=r"nope\.dsjson: cannot read"):
        read_dsjson(tmp_path / "nope.dsjson")


def test_export_names_the_event_with_a_bad_context(make_decisions: Any, make_outcomes: Any) -> None:
    joined = _joined(make_decisions, make_outcomes, n=3)
    ctx = joined.column("context").to_pylist()
    ctx[1] = '{"hcp": 3}'
    bad = joined.set_column(
        joined.schema.get_field_index("context"), "context", pa.array(ctx, pa.string())
    )
    with pytest.raises(DsjsonError, match=r"event e00001: context"):
        list(iter_dsjson(bad))


def test_features_without_catalog_or_separator() -> None:
    ctx = '{"dsjson": {"U": {"age": 3}}, "dsjson_actions": {"x": {"A": {"id": "x"}}}}'
    shared, actions = dsjson_features(ctx, ["x", "y"], None)
    assert shared == {"U": {"age": 3}}
    assert actions == [{"A": {"id": "x"}}, {"action": {"id": "y"}}]
    # the other foreign form: {"dsjson": c} with c._multi in action order
    ctx2 = '{"dsjson": {"U": {"age": 3}, "_multi": [{"A": {"k": 1}}, {"A": {"k": 2}}]}}'
    assert dsjson_features(ctx2, ["x", "y"], None) == (
        {"U": {"age": 3}},
        [{"A": {"k": 1}}, {"A": {"k": 2}}],
    )
    with pytest.raises(ValueError, match=r"field 'dsjson\._multi': must be 3 objects"):
        dsjson_features(ctx2, ["x", "y", "z"], None)
    with pytest.raises(ValueError, match="context: not valid JSON"):
        dsjson_features("{", ["x"], None)
    with pytest.raises(ValueError, match="must be a JSON object"):
        dsjson_features("[]", ["x"], None)


def test_timestamps_keep_microseconds(tmp_path: Path) -> None:
    ts = "2026-01-05T09:30:00.123456+01:00"
    res = read_dsjson(_write(tmp_path / "t.dsjson", [_event(Timestamp=ts)]))
    assert res.decisions.column("ts")[0].as_py() == datetime(
        2026, 1, 5, 8, 30, 0, 123456, tzinfo=UTC
    )


def test_features_refuse_an_unknown_catalog_version_without_snapshot() -> None:
    from datetime import date

    from nba.context import DecisionContext
    from nba.domain import HCPProfile

    ctx = DecisionContext(
        HCPProfile("h1", "cardiology", 7, "US", "aware", {"email"}), date(2026, 1, 5)
    )
    with pytest.raises(ValueError, match="no catalog snapshot for catalog_version deadbeef"):
        dsjson_features(ctx.to_json(), ["VEL-EFF-02@email"], None, "deadbeef")
    with pytest.raises(ValueError, match="'nope@email' is not in catalog"):
        dsjson_features(ctx.to_json(), ["nope@email"], None)
