"""What the HCP pulls, in the DSJSON export: the context features derived from pulls
were already in ``c``; the pull touches of each reward window travel in ``nba.pulls``,
which the real VW binding ignores, and import restores them as touches."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import vowpalwabbit

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import HCPProfile
from nba.logs import io
from nba.logs.dsjson import (
    DsjsonError,
    export_dsjson,
    import_dsjson,
    iter_dsjson,
    read_dsjson,
    window_pulls,
)
from nba.logs.join import join_rewards
from nba.logs.schema import DECISIONS, TOUCHES
from nba.reward import RewardDefinition

RD = RewardDefinition.default()
US = timedelta(microseconds=1)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CAT = Catalog.default()


def _touch(hcp: str, ts: datetime, kind: str = "portal_view", **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "hcp_id": hcp,
        "ts": ts,
        "channel": "portal",
        "content_id": "portal:dosing",
        "origin": "external",
        "kind": kind,
        "topics": [] if kind == "contact" else ["dosing"],
        "content_ids": [],
        "dwell_s": 12.5,
    }
    row.update(over)
    return row


def _touches(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TOUCHES)


def _joined(make_decisions: Any, make_outcomes: Any, n: int = 14) -> pa.Table:
    dec = make_decisions(n, step=timedelta(days=1))
    return join_rewards(dec, make_outcomes([]), RD).table


def test_window_holds_the_hcps_pulls_from_the_decision_to_the_window_end(
    make_decisions: Any, make_outcomes: Any
) -> None:
    joined = _joined(make_decisions, make_outcomes, n=1)
    d = joined.to_pylist()[0]
    h, ts = d["hcp_id"], d["ts"]
    end = ts + timedelta(days=RD.window_days)
    rows = [
        _touch(h, ts - US, content_id="before"),
        _touch(h, ts, content_id="at-decision"),
        _touch(h, ts, "contact", content_id="a-contact"),
        _touch("someone-else", ts + timedelta(hours=1), content_id="other-hcp"),
        _touch(
            h,
            ts + timedelta(days=2),
            "detail_pull",
            channel="rep_visit",
            dwell_s=None,
            content_id="VEL-EFF-01",
            origin="ours",
            topics=["safety", "dosing"],
            content_ids=["VEL-SAF-01"],
        ),
        _touch(h, end, content_id="window-end"),
        _touch(h, end + US, content_id="after"),
    ]
    got = window_pulls(_touches(rows), joined, RD.window_days)
    assert [t["content_id"] for t in got[d["event_id"]]] == [
        "at-decision",
        "VEL-EFF-01",
        "window-end",
    ]
    # the horizon: nothing stamped after as_of
    cut = window_pulls(_touches(rows), joined, RD.window_days, as_of=ts + timedelta(days=3))
    assert [t["content_id"] for t in cut[d["event_id"]]] == ["at-decision", "VEL-EFF-01"]
    assert window_pulls(_touches(rows[:1]), joined, RD.window_days) == {}


def test_export_lists_window_pulls_and_c_already_carries_the_interest_features(
    make_decisions: Any, make_outcomes: Any
) -> None:
    # a context with pulls behind it: its features are in c (as before this block existed)
    hcp = HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset({"email"}), False, 0.5)
    hist = History(interest={"dosing": 0.707}, topic_pulls_90d={"dosing": 2})
    ctx = DecisionContext(hcp, date(2026, 1, 5), hist, stated_topics=("dosing",))
    dec = make_decisions(1).to_pylist()[0]
    dec.update(
        hcp_id="h1",
        context=ctx.to_json(),
        action_ids=["VEL-DOS-01@remote_call"],
        chosen_index=0,
        chosen_action_id="VEL-DOS-01@remote_call",
        probabilities=[1.0],
        propensity=1.0,
    )
    joined = join_rewards(
        pa.Table.from_pylist([dec], schema=DECISIONS), make_outcomes([]), RD
    ).table
    pull = _touch(
        "h1",
        dec["ts"] + timedelta(hours=3),
        "email_click",
        channel="email",
        content_id="VEL-DOS-01",
        origin="ours",
        dwell_s=None,
    )
    pulls = window_pulls(_touches([pull]), joined, RD.window_days)
    obj = json.loads(next(iter_dsjson(joined, {CAT.version: CAT}, pulls=pulls)))
    assert obj["c"]["h"]["int_dosing"] == pytest.approx(0.707)
    x = obj["c"]["_multi"][0]["x"]
    assert (x["it_pull"], x["it_pull_remote_call"], x["it_int"], x["sp_top"]) == (2, 2, 0.707, 1)
    assert obj["nba"]["pulls"] == [
        {
            "ts": (dec["ts"] + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "channel": "email",
            "content_id": "VEL-DOS-01",
            "origin": "ours",
            "kind": "email_click",
            "topics": ["dosing"],
            "content_ids": [],
            "dwell_s": None,
        }
    ]
    # without pulls the block has no such key
    assert "pulls" not in json.loads(next(iter_dsjson(joined, {CAT.version: CAT})))["nba"]


def _export_with_pulls(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any, n: int = 60
) -> tuple[pa.Table, pa.Table, Path, dict[str, Any]]:
    dec = make_decisions(n, step=timedelta(hours=7))
    rows = [
        (r["event_id"], r["ts"] + timedelta(hours=2), "clicked")
        for r in dec.to_pylist()
        if r["chosen_action_id"].endswith("@email")
    ]
    joined = join_rewards(dec, make_outcomes(rows), RD).table
    touches = _touches(
        [
            _touch(f"h{i % 7}", T0 + timedelta(hours=5 * i + 1), topics=[t], dwell_s=float(i))
            for i, t in enumerate(["dosing", "safety", "efficacy"] * 10)
        ]
    )
    pulls = window_pulls(touches, joined, RD.window_days)
    path = tmp_path / "train.dsjson"
    export_dsjson(joined, path, {CAT.version: CAT}, pulls=pulls)
    return joined, touches, path, pulls


def _vw_metrics(tmp_path: Path, path: Path, name: str) -> dict[str, Any]:
    metrics = tmp_path / f"{name}.json"
    vw = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson --epsilon 0.1 -d {path} --extra_metrics {metrics} --quiet"
    )
    vw.finish()
    return dict(json.loads(metrics.read_text()))


def test_vw_reads_lines_with_pulls_exactly_as_without(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    """The real VW binding, --cb_explore_adf --dsjson: no line refused or skipped, the
    same labels learned, and the same prediction for a line with and without the block."""
    joined, _, path, pulls = _export_with_pulls(tmp_path, make_decisions, make_outcomes)
    lines = path.read_text().splitlines()
    assert sum('"pulls":' in line for line in lines) == len(pulls) > 10
    plain = tmp_path / "plain.dsjson"
    export_dsjson(joined, plain, {CAT.version: CAT})
    m, m0 = _vw_metrics(tmp_path, path, "with"), _vw_metrics(tmp_path, plain, "without")
    cb = next(v for k, v in m.items() if k.startswith("cb_explore_adf"))
    cb0 = next(v for k, v in m0.items() if k.startswith("cb_explore_adf"))
    inactive = sum(not a for a in joined.column("activated").to_pylist())
    assert m["line_parse_error"] == 0
    assert m["number_skipped_events"] == m0["number_skipped_events"] == inactive
    assert cb["cbea_labeled_ex"] == cb0["cbea_labeled_ex"] == len(lines) - inactive
    assert cb["cbea_sum_cost"] == pytest.approx(cb0["cbea_sum_cost"])
    with_block = next(line for line in lines if '"pulls":' in line)
    obj = json.loads(with_block)
    without = dict(obj, nba={k: v for k, v in obj["nba"].items() if k != "pulls"})
    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --dsjson --epsilon 0.1 -d {path} --quiet")
    p1, p0 = vw.predict(with_block), vw.predict(json.dumps(without))
    vw.finish()
    assert p1 == p0 and len(p1) == len(obj["a"])


def test_import_restores_each_window_pull_once(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    joined, touches, path, pulls = _export_with_pulls(tmp_path, make_decisions, make_outcomes)
    listed = sum(len(v) for v in pulls.values())
    distinct = {
        (t["hcp_id"], t["ts"], t["content_id"], tuple(t["topics"]))
        for v in pulls.values()
        for t in v
    }
    assert listed > len(distinct)  # windows overlap: the same touch on several lines
    out = tmp_path / "log"
    res = import_dsjson(path, out)
    back = io.read(out, "touches").to_pylist()
    assert len(back) == res.touches.num_rows == len(distinct)
    want = {
        (t["hcp_id"], t["ts"]): t
        for t in touches.to_pylist()
        if (t["hcp_id"], t["ts"], t["content_id"], tuple(t["topics"])) in distinct
    }
    for t in back:
        assert t == want[(t["hcp_id"], t["ts"])]
    # exporting the imported log again lists the same pulls on the same events
    again = window_pulls(io.read(out, "touches"), joined, RD.window_days)
    assert again == pulls


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("x", r"\[0\]': must be an object"),
        ({"colour": "red"}, r"\[0\]\.colour': unknown field"),
        ({"ts": "soon"}, r"\[0\]\.ts': 'soon' is not an ISO 8601 timestamp"),
        ({"ts": "2026-01-05T10:00:00"}, r"\[0\]\.ts': .* has no time zone"),
        ({"ts": "2020-01-01T00:00:00Z"}, r"\[0\]\.ts': .* is before its decision"),
        ({"kind": "contact"}, r"\[0\]\.kind': 'contact' is not a pull"),
        ({"kind": "telepathy"}, r"\[0\]': .*field 'kind': 'telepathy' is not one of"),
        ({"kind": 3}, r"\[0\]\.kind': must be a string"),
        ({"content_id": ""}, r"\[0\]': .*field 'content_id': must not be empty"),
        ({"origin": "alien"}, r"\[0\]': .*field 'origin': 'alien' is not one of"),
        ({"topics": "dosing"}, r"\[0\]\.topics': must be a list of strings"),
        ({"content_ids": [1]}, r"\[0\]\.content_ids': must be a list of strings"),
        ({"dwell_s": -1.0}, r"\[0\]': .*field 'dwell_s': must be a finite number >= 0"),
        ({"dwell_s": "12"}, r"\[0\]\.dwell_s': must be null or a finite number"),
    ],
)
def test_import_refuses_bad_pulls(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any, entry: Any, match: str
) -> None:
    _, _, path, _ = _export_with_pulls(tmp_path, make_decisions, make_outcomes)
    obj = json.loads(next(x for x in path.read_text().splitlines() if '"pulls":' in x))
    good = dict(obj["nba"]["pulls"][0])
    obj["nba"]["pulls"][0] = {**good, **entry} if isinstance(entry, dict) else entry
    bad = tmp_path / "bad.dsjson"
    bad.write_text(json.dumps(obj) + "\n")
    out = tmp_path / "log"
    with pytest.raises(DsjsonError, match=rf"bad\.dsjson:1: field 'nba\.pulls{match}"):
        import_dsjson(bad, out)
    assert not out.exists() or not io.part_files(out, "touches")  # nothing written


def test_import_refuses_a_pulls_block_that_is_not_a_list(tmp_path: Path) -> None:
    line = {
        "_label_cost": 0.0,
        "_label_probability": 1.0,
        "_labelIndex": 0,
        "Timestamp": "2026-01-05T09:00:00Z",
        "Version": "1",
        "EventId": "e1",
        "a": [1],
        "p": [1.0],
        "c": {"_multi": [{"A": {"id": "x"}}]},
        "nba": {"pulls": {"kind": "portal_view"}},
    }
    bad = tmp_path / "bad.dsjson"
    bad.write_text(json.dumps(line) + "\n")
    with pytest.raises(DsjsonError, match=r"field 'nba\.pulls': must be a list of touch objects"):
        read_dsjson(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_days": 0}, r"window_days must be a positive number, got 0"),
        ({"window_days": -3.0}, r"window_days must be a positive number"),
        ({"window_days": float("nan")}, r"window_days must be a positive number"),
        ({"window_days": True}, r"window_days must be a positive number, got True"),
        ({"window_days": "14"}, r"window_days must be a positive number, got '14'"),
        ({"as_of": datetime(2026, 1, 9)}, r"as_of .* must be timezone-aware"),
        ({"joined": pa.table({"event_id": ["e"]})}, r"missing column\(s\) ts, hcp_id"),
        ({"touches": pa.table({"hcp_id": ["h"]})}, r"touches: missing column\(s\) ts"),
    ],
)
def test_window_pulls_refuses_bad_arguments(
    make_decisions: Any, make_outcomes: Any, kwargs: dict[str, Any], match: str
) -> None:
    args: dict[str, Any] = {
        "touches": _touches([_touch("h0", T0)]),
        "joined": _joined(make_decisions, make_outcomes, n=2),
        "window_days": RD.window_days,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        window_pulls(**args)


def test_window_pulls_read_the_decision_times_the_same_from_any_timestamp_column(
    make_decisions: Any, make_outcomes: Any
) -> None:
    """The microsecond column of a zone is read as integers; other columns value by
    value: the same windows either way, a null time still refused."""
    joined = _joined(make_decisions, make_outcomes, n=10)
    rows = []
    for i, d in enumerate(joined.to_pylist()):
        h, ts = d["hcp_id"], d["ts"]
        rows += [
            _touch(h, ts - US, content_id=f"before-{i}"),
            _touch(h, ts, content_id=f"at-{i}"),
            _touch(h, ts + timedelta(days=RD.window_days), content_id=f"end-{i}"),
            _touch(h, ts + timedelta(days=RD.window_days) + US, content_id=f"after-{i}"),
        ]
    touches = _touches(rows)
    want = window_pulls(touches, joined, RD.window_days)
    # one HCP's touches fall in several of its decisions' windows
    assert len(want) == 10 and max(len(v) for v in want.values()) > 2
    i = joined.schema.get_field_index("ts")
    for type_ in (
        pa.timestamp("us", tz="America/New_York"),  # read as integers
        pa.timestamp("ms", tz="UTC"),  # value by value
        pa.timestamp("ns", tz="UTC"),
    ):
        other = joined.set_column(i, "ts", joined.column("ts").cast(type_))
        assert window_pulls(touches, other, RD.window_days) == want
    with_null = joined.set_column(
        i,
        "ts",
        pa.array([None, *joined.column("ts").to_pylist()[1:]], joined.schema.field("ts").type),
    )
    with pytest.raises(TypeError):
        window_pulls(touches, with_null, RD.window_days)
