"""Parity of the DSJSON export's fast path with the per-row reference.

The fast path (``iter_dsjson(..., bulk=True)``: the bulk featurizer writing each
action line's JSON object from its own token tables, the fields around ``c``
written column-wise) must give, line for line, the bytes of
:func:`nba.logs.dsjson.dsjson_line` on varied generated logs: declared
attributes of every type, request values of every type, empty and full
histories, interest values, stated preferences, slates, pulls, outcomes about
other suggestions, imported foreign rows and two catalog versions in one batch.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.context import DecisionContext, History
from nba.domain import HCPProfile
from nba.features import Featurizer
from nba.features.bulk import _cross_json, _fragment_json, _NotJson, _static_json
from nba.features.dsjson import line_to_namespaces
from nba.logs import io
from nba.logs.dsjson import (
    _iter_lines,
    _other_texts,
    dsjson_line,
    iter_dsjson,
    load_catalogs,
    other_action_outcomes,
    window_pulls,
)
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from nba_cli.main import main as nba

RD = RewardDefinition.default()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Path]:
    out = tmp_path_factory.mktemp("sim") / "logs"
    args = ["simulate", "--hcps", "60", "--days", "14", "--slate-size", "3", "--seed", "11"]
    res = CliRunner().invoke(nba, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return load_joined(out, RD).table, out


def _second_catalog(cat: Catalog) -> Catalog:
    """The same actions with other static features (formats swapped between two
    items, a title changed): another catalog version."""
    data = json.loads(cat.snapshot_json())
    items = data["items"]
    j = next(k for k, it in enumerate(items) if it["format"] != items[0]["format"])
    items[0]["format"], items[j]["format"] = items[j]["format"], items[0]["format"]
    items[0]["title"] += " (revised)"
    other = Catalog.from_dict(data)
    assert other.version != cat.version and other.action_ids == cat.action_ids
    return other


def _context(rng: np.random.Generator, cat: Catalog, day: date, hcp_id: str, kind: int) -> str:
    """A valid context; ``kind`` picks which optional parts it has."""
    channels, topics = list(cat.channels), list(cat.topics)
    items = [it.id for it in cat.items]
    hcp = HCPProfile(
        hcp_id,
        str(rng.choice(["cardiology", "endo-crinology", "Général practice"])),
        int(rng.integers(1, 11)),
        str(rng.choice(["US", "DE", "FR"])),
        str(rng.choice(["unaware", "aware", "adopting", "advocate"])),
        frozenset(str(c) for c in rng.choice(channels, size=int(rng.integers(0, 3)))),
        no_see=bool(rng.integers(0, 2)),
        digital_affinity=float(rng.choice([0.0, 1.0, round(float(rng.uniform()), 3)])),
    )
    if kind % 3 == 0:
        hist = History()  # an empty history
    else:
        hist = History(
            touches_7d={c: int(rng.integers(0, 3)) for c in channels[:2]},
            touches_30d={c: int(rng.integers(0, 9)) for c in channels},
            engagements_30d={channels[0]: int(rng.integers(0, 4))},
            topic_engagements_90d={t: int(rng.integers(0, 5)) for t in topics[:2]},
            days_since_touch={c: int(rng.integers(0, 200)) for c in channels[1:]},
            last_content_id=str(rng.choice(items)),
            days_since_content={str(rng.choice(items)): int(rng.integers(1, 60))},
            interest={t: round(float(rng.uniform()), 3) for t in topics[: 1 + kind % 3]},
            topic_pulls_90d={topics[0]: int(rng.integers(0, 4))},
        )
    request: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    if kind % 2 == 1:
        request = {
            "requester": str(rng.choice(["crm", "portal"])),
            "slot": int(rng.integers(0, 5)),
            "score": round(float(rng.normal()), 4),
            "urgent": bool(rng.integers(0, 2)),
        }
    if kind % 4 in (1, 2):
        attributes = {
            "tier": str(rng.choice(["gold", "silver", "bronze-1"])),
            "kol": bool(rng.integers(0, 2)),
            "patients": float(rng.integers(0, 900)),
            "share": round(float(rng.uniform()), 2),
            "interests": [str(t) for t in rng.choice(topics, size=2, replace=False)],
        }
    stated_topics = tuple(str(t) for t in topics[: kind % 3])
    stated_channels = tuple(str(c) for c in channels[: kind % 2])
    ctx = DecisionContext(
        hcp=hcp,
        day=day,
        history=hist,
        request=request,
        stated_topics=stated_topics,
        stated_channels=stated_channels,
        attributes=attributes,
    )
    return ctx.to_json()


def _varied(table: pa.Table, cat: Catalog, other: Catalog, seed: int) -> pa.Table:
    """``table`` with generated contexts of every kind, every third row on the
    second catalog version, and a few imported foreign rows (both forms)."""
    rng = np.random.default_rng(seed)
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        day = row["ts"].date()
        row["context"] = _context(rng, cat, day, row["hcp_id"], i)
        if i % 3 == 2:
            row["catalog_version"] = other.version
        if i % 29 == 7:
            row["context"] = _dumps(
                {
                    "dsjson": {"u": {"age": 3, "seg": "a"}, "flag": True},
                    "dsjson_actions": {row["action_ids"][0]: {"A": {"k": 1.5}}},
                }
            )
        elif i % 29 == 19:
            multi = [{"A": {"n": float(j)}} for j in range(len(row["action_ids"]))]
            row["context"] = _dumps({"dsjson": {"u": {"x": 1}, "_multi": multi}})
    return pa.Table.from_pylist(rows, schema=table.schema)


def _other_outcomes(table: pa.Table, outcomes: pa.Table, value: float = 1.0) -> pa.Table:
    """The log's outcomes plus some about a suggestion that was not chosen: at
    tied and out-of-order times, repeated (type, source_id) keys (the earliest
    counts, even when it is about the chosen action), and one about an event
    that is not in the table."""
    extra: list[dict[str, Any]] = []
    for k, row in enumerate(table.to_pylist()):
        if k % 11 != 4:
            continue
        other = next(a for a in row["action_ids"] if a != row["chosen_action_id"])
        base = {"event_id": row["event_id"], "type": "open", "source": "test", "action_id": other}
        extra += [
            {**base, "ts": row["ts"] + timedelta(hours=k % 5), "value": value, "source_id": "a"},
            {**base, "ts": row["ts"], "value": float(k % 3), "source_id": "b"},
            {**base, "ts": row["ts"], "value": -1.5, "source_id": "c"},  # a tie in time
            {**base, "ts": row["ts"] + timedelta(days=2), "value": 2.0, "source_id": "b"},
        ]
        if k % 2:  # the chosen action claims the key first: no other-action outcome "d"
            chosen = {**base, "action_id": row["chosen_action_id"], "source_id": "d"}
            extra += [
                {**chosen, "ts": row["ts"], "value": 1.0},
                {**base, "ts": row["ts"] + timedelta(hours=1), "value": 1.0, "source_id": "d"},
            ]
    extra.append({**extra[0], "event_id": "not-in-the-log"})
    return pa.concat_tables(
        [io.conform(outcomes, "outcomes"), pa.Table.from_pylist(extra, schema=outcomes.schema)]
    )


@pytest.mark.parametrize(
    ("seed", "batch_size", "value"),
    [(1, 4096, 1.0), (2, 53, 0.25), (3, 4096, -0.0), (4, 97, float("nan"))],
    ids=["one-batch", "small-batches", "negative-zero-value", "nan-value"],
)
def test_fast_path_equals_dsjson_line_on_varied_logs(
    joined: tuple[pa.Table, Path], seed: int, batch_size: int, value: float
) -> None:
    """A negative-zero or NaN outcome value sends the other-action outcomes the
    per-row way (Python's sort orders them); the lines stay the reference's."""
    table, logs = joined
    catalogs = load_catalogs(logs, table.column("catalog_version").unique().to_pylist())
    assert len(catalogs) == 1
    (cat,) = catalogs.values()
    other = _second_catalog(cat)
    catalogs[other.version] = other
    varied = _varied(table, cat, other, seed)
    outcomes = _other_outcomes(varied, io.read(logs, "outcomes"), value)
    pulls = window_pulls(io.read(logs, "touches"), varied, RD.window_days)
    others = other_action_outcomes(outcomes, varied)
    assert pulls and others  # both blocks travel in some lines

    fast = list(
        iter_dsjson(
            varied, catalogs, batch_size=batch_size, outcomes=outcomes, pulls=pulls, bulk=True
        )
    )
    reference = [
        dsjson_line(
            row,
            catalogs.get(row["catalog_version"]),
            others.get(row["event_id"], ()),
            pulls.get(row["event_id"], ()),
        )
        for row in varied.to_pylist()
    ]
    assert len(fast) == len(reference) == varied.num_rows
    for i, (a, b) in enumerate(zip(fast, reference, strict=True)):
        assert a == b, f"row {i}"
    parsed = [json.loads(x) for x in fast]
    assert any("slate" in p["nba"] for p in parsed)
    assert any("pulls" in p["nba"] for p in parsed)
    assert any("other_action_outcomes" in p["nba"] for p in parsed)
    assert any(p["nba"]["catalog_version"] == other.version for p in parsed)
    assert any("u" in p["c"] for p in parsed)  # the foreign rows
    # only the foreign rows went the per-row way: every other line was written
    # column-wise from the featurizer's JSON pieces
    per_row = sum(
        isinstance(x, str)
        for x in _iter_lines(varied, catalogs, batch_size, outcomes, pulls, bulk=True)
    )
    foreign = sum('"dsjson"' in c for c in varied.column("context").to_pylist())
    assert per_row == foreign > 0
    covered = _other_texts(outcomes, varied)
    assert (covered is None) == (value == 0.0 or value != value)


def test_the_featurizer_writes_every_action_line_and_shared_line_as_json(
    joined: tuple[pa.Table, Path],
) -> None:
    """The action objects and the shared lines' namespaces come from the
    featurizer's own pieces (not from re-reading its lines) and equal
    ``json.dumps(line_to_namespaces(line))``."""
    table, logs = joined
    (cat,) = load_catalogs(logs, table.column("catalog_version").unique().to_pylist()).values()
    for catalog in (cat, _second_catalog(cat)):
        varied = _varied(table, cat, catalog, 3)
        native = varied.filter(
            pa.array(['"dsjson"' not in c for c in varied.column("context").to_pylist()])
        )
        fb = Featurizer(catalog).featurize_table(native, action_json=True)
        assert fb.actions_json is not None
        lines = fb.actions.to_pylist()
        objects = fb.actions_json.to_pylist()
        assert len(objects) == len(lines) > 0
        for line, obj in zip(lines, objects, strict=True):
            assert obj == _dumps(line_to_namespaces(line))
        # the shared namespaces too, as the open start of c
        assert fb.shared_json is not None
        heads = fb.shared_json.to_pylist()
        shared = fb.shared.to_pylist()
        assert len(heads) == len(shared) == native.num_rows
        for line, head in zip(shared, heads, strict=True):
            assert head == _dumps(line_to_namespaces(line[len("shared ") :]))[:-1] + ","
        plain = Featurizer(catalog).featurize_table(native)
        assert plain.actions_json is None and plain.shared_json is None  # not asked


def test_static_namespaces_open_only_at_an_empty_last_namespace() -> None:
    assert _static_json("|T a |K b |x", True) == '{"T":{"a":1.0},"K":{"b":1.0},"x":{'
    assert _static_json("|T a |K b", False) == '{"T":{"a":1.0},"K":{"b":1.0}}'
    assert _static_json("|x |T a |x", True) is None  # x is not the object's last key
    assert _static_json("|T a |x b |x", True) is None  # x already holds a feature


@pytest.mark.parametrize(
    "fragment",
    ["same_last", " a |b", " a:1 a:2", " a:x1"],
    ids=["glues-to-previous", "opens-namespace", "name-twice", "not-a-number"],
)
def test_pieces_of_another_form_are_refused(fragment: str) -> None:
    with pytest.raises(_NotJson):
        _fragment_json(fragment, set())


def test_fragments_write_as_json_dumps_does() -> None:
    names: set[str] = set()
    text = _fragment_json(" ch_t7:3 n\u00e9=x:0.500 sp_top big:123456789012", names)
    assert text == '"ch_t7":3.0,"n\u00e9=x":0.5,"sp_top":1.0,"big":123456789012.0,'
    assert names == {"ch_t7", "n\u00e9=x", "sp_top", "big"}


def test_a_name_in_two_factors_or_an_empty_namespace_falls_back() -> None:
    codes = np.zeros(2, dtype=np.int64)
    static = (["|T a |x", "|T b |x"], np.array([0, 1]))
    pair = ([" p:1"], np.zeros(2, dtype=np.int64))
    ok = _cross_json([static, None, ([" q"], codes)], [pair], np.array([0, 0]))
    assert ok is not None
    assert ok.to_pylist() == ['{"T":{"a":1.0},"x":{"p":1.0,"q":1.0}}'] * 1 + [
        '{"T":{"b":1.0},"x":{"p":1.0,"q":1.0}}'
    ]
    # the name p in the per-channel piece and again in a later factor: a dict would merge
    assert _cross_json([static, None, ([" p:2"], codes)], [pair], np.array([0, 0])) is None
    # a line whose x namespace has no feature
    empty = ([""], np.zeros(2, dtype=np.int64))
    assert _cross_json([static, None], [empty], np.array([0, 0])) is None
