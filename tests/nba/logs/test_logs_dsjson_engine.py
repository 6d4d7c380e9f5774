"""``nba logs export --format dsjson``'s lines made by the engine: the line writer
registered as an Arrow function, called by one SQL statement
(:data:`nba.logs.dsjson_engine.DSJSON_SQL`), written as part files (by Spark's
executors, or by DuckDB here) and concatenated into the one ``--out`` file. The
same statement picks each line's outcomes about other suggestions and window
pulls from the outcomes and touches the engine reads itself.

The file must hold the bytes of the in-process export on a varied log: 3-slot
slates, outcomes about other suggestions, window pulls, imported foreign
decisions (both context forms, one never activated); and on a log made to hit
the rules' edges (outcomes and pulls exactly on the window's bounds and just
outside, ties in time and value, -0.0, copies of one outcome key in two part
files, an HCP without touches, ``since`` and ``as_of`` cuts). The function must
run once per row (Spark's sort samples its input); a row the writer refuses
stops the export with an error naming its event, ``--out`` left as it was.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nba.logs import io
from nba.logs.dsjson import (
    DsjsonError,
    export_dsjson,
    import_dsjson,
    load_catalogs,
    window_pulls,
)
from nba.logs.dsjson_engine import (
    DSJSON_FUNCTION,
    DSJSON_SQL,
    DsjsonLineFunction,
    LineExtras,
    dsjson_rows,
    export_dsjson_on_engine,
    write_dsjson_parts,
)
from nba.logs.engine import (
    ArrowFunction,
    DuckDBEngine,
    EngineError,
    ParquetSource,
    SparkEngine,
    SqlEngine,
)
from nba.logs.join import JoinResult, load_joined
from nba.logs.schema import DECISIONS, OUTCOMES, TOUCHES
from nba.reward import RewardDefinition
from nba_cli.main import main as nba

RD = RewardDefinition.default()


def _foreign(event_id: str, ts: str, skip: bool) -> dict[str, Any]:
    """A foreign (Personalizer-shaped) DSJSON event."""
    ev: dict[str, Any] = {
        "_label_cost": -1.0,
        "_label_probability": 0.8,
        "_label_Action": 2,
        "_labelIndex": 1,
        "o": [{"v": 1.0, "EventId": event_id, "ActionTaken": False}],
        "Timestamp": ts,
        "Version": "1",
        "EventId": event_id,
        "a": [2, 1, 3],
        "c": {
            "FromUrl": [{"timeofday": "Evening", "weather": "Snowy"}],
            "_multi": [
                {"_tag": "Cappucino", "i": {"constant": 1, "id": "Cappucino"}},
                {"i": {"constant": 1, "id": "Cold brew"}, "j": [{"type": "cold"}]},
                {"j": [{"type": 'h\u00f4t "x"'}]},
            ],
        },
        "p": [0.8, 0.1, 0.1],
        "VWState": {"m": "ff0744c1/550c12cb"},
    }
    if skip:
        ev["_skipLearn"] = True
    return ev


@pytest.fixture(scope="module")
def varied_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated log (3-slot slates, the HCPs' pulls) plus outcomes about other
    suggestions, foreign DSJSON decisions imported by ``import_dsjson`` (one never
    activated) and one foreign decision of the ``{"dsjson": c}`` context form."""
    base = tmp_path_factory.mktemp("varied")
    root = base / "logs"
    args = ["simulate", "--hcps", "120", "--days", "14", "--slate-size", "3", "--seed", "21"]
    res = CliRunner().invoke(nba, [*args, "--out", str(root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    dec = io.read(root, "decisions")
    first = min(dec.column("ts").to_pylist())
    # foreign decisions, imported as a user would
    stamps = [
        (first + timedelta(days=d, hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for d in (1, 4)
    ]
    lines = [_foreign(f"foreign-{k}", stamps[k % 2], skip=(k == 2)) for k in range(4)]
    src = base / "foreign.dsjson"
    src.write_text("\n".join(json.dumps(e) for e in lines) + "\n", encoding="utf-8")
    import_dsjson(src, root)
    # the other form of an imported context: c with its _multi list, in action order
    row = io.read(root, "decisions").to_pylist()
    row = next(r for r in row if r["event_id"] == "foreign-1")
    multi = [{"A": {"n": float(j)}} for j in range(len(row["action_ids"]))]
    row.update(
        event_id="foreign-multi",
        context=json.dumps({"dsjson": {"u": {"x": 1}, "_multi": multi}}, separators=(",", ":")),
    )
    io.append(root, "decisions", pa.Table.from_pylist([row], schema=DECISIONS))
    # outcomes about a suggestion that was not chosen (every 5th simulated decision)
    outcomes = io.read(root, "outcomes")
    extra = []
    for k, d in enumerate(dec.to_pylist()):
        other = [a for a in d["action_ids"] if a != d["chosen_action_id"]]
        if k % 5 or not other:
            continue
        for j, dt in enumerate((timedelta(hours=2), timedelta(0), timedelta(days=3))):
            extra.append(
                {
                    "event_id": d["event_id"],
                    "ts": d["ts"] + dt,
                    "type": "open",
                    "value": [1.0, -0.5, 0.25][j],
                    "source": "test",
                    "source_id": f"s{j}",
                    "action_id": other[j % len(other)],
                }
            )
    io.append(root, "outcomes", pa.Table.from_pylist(extra, schema=outcomes.schema))
    return root


def _gathered(root: Path) -> tuple[JoinResult, dict[str, Any]]:
    """The join (never-activated decisions kept) and what the command gathers for
    the in-process DSJSON lines (catalogs, outcomes, pulls), with the engine's
    description of the same outcomes and pulls (``extras``)."""
    result = load_joined(root, RD, activated_only=False)
    table = result.table
    extras = {
        "catalogs": load_catalogs(root, table.column("catalog_version").unique().to_pylist()),
        "outcomes": io.read(root, "outcomes"),
        "pulls": window_pulls(io.read(root, "touches"), table, RD.window_days, result.as_of),
        "extras": LineExtras(RD.window_days, result.as_of),
    }
    return result, extras


@pytest.fixture(scope="module")
def edge_log(varied_log: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``varied_log`` copied, plus outcomes and touches at the edges of the rules.

    For ``a`` (an activated decision with a 3-slot slate) outcomes about its
    other two suggestions: one a microsecond before it, one at its time, at
    the window's end and a microsecond after; three at one time ordered by
    value, two of them 0.0 and -0.0 (equal, so read order decides: the 0.0 is
    written first); one ``(type, source_id)`` key twice whose later copy is
    the one about another suggestion (so it is dropped), once whose earlier
    copy is about the chosen action (dropped too), once with a copy that names
    no action (not a copy: kept); and one key written in two part files at the
    same time and value (the first file's copy kept). Pull touches of its HCP
    a microsecond before it, at its time, at the window's end and a
    microsecond after, a contact, two kinds at one time, and one touch written
    twice (two part files: both listed). ``n``: a decision whose HCP has no
    touches (a copy of a simulated decision under another HCP and event id),
    with one outcome about another suggestion. ``foreign-0`` (an
    imported decision) gets one outcome about another suggestion and a pull
    of its HCP ``unknown``.
    """
    root = tmp_path_factory.mktemp("edges") / "logs"
    shutil.copytree(varied_log, root)
    dec = io.read(root, "decisions").to_pylist()
    touched = set(io.read(root, "touches").column("hcp_id").to_pylist())
    a = next(d for d in dec if d["activated"] and d["slate"] and len(d["action_ids"]) >= 3)
    # a decision of an HCP the log has no touch of (a simulated one, copied)
    n = next(
        dict(d, event_id="edge-no-touches", hcp_id="edge-hcp-without-touches")
        for d in dec
        if d["activated"]
        and d["event_id"] != a["event_id"]
        and not d["event_id"].startswith("foreign")
        and len(d["action_ids"]) >= 2
    )
    assert n["hcp_id"] not in touched
    io.append(root, "decisions", pa.Table.from_pylist([n], schema=DECISIONS))
    foreign = next(d for d in dec if d["event_id"] == "foreign-0")
    us = timedelta(microseconds=1)
    window = timedelta(days=RD.window_days)
    h = timedelta(hours=1)
    ts = a["ts"]
    c = a["chosen_action_id"]
    o1, o2 = [x for x in a["action_ids"] if x != c][:2]

    def out(
        d: dict[str, Any], at: datetime, typ: str, sid: str, aid: str | None, v: float = 1.0
    ) -> dict[str, Any]:
        return {
            "event_id": d["event_id"],
            "ts": at,
            "type": typ,
            "value": v,
            "source": "edge",
            "source_id": sid,
            "action_id": aid,
        }

    first = [
        out(a, ts - us, "open", "s-early", o2),
        out(a, ts, "open", "s-lo", o1),
        out(a, ts + window, "click", "s-hi", o1, 2.0),
        out(a, ts + window + us, "open", "s-late", o1),
        out(a, ts + h, "visit", "s-t3", o2, -1.0),
        out(a, ts + h, "visit", "s-t1", o2, 0.0),
        out(a, ts + 2 * h, "reply", "s-d", o1),
        out(a, ts + h / 2, "share", "s-c", c),
        out(a, ts + 3 * h, "share", "s-c", o1),
        out(a, ts, "share2", "s-n", None),
        out(a, ts + 4 * h, "share2", "s-n", o1),
        out(a, ts + 5 * h, "rate", "s-x", o2, 3.0),
        out(
            n,
            n["ts"] + h,
            "open",
            "s-n1",
            next(x for x in n["action_ids"] if x != n["chosen_action_id"]),
        ),
        out(foreign, foreign["ts"] + h, "reward", "s-f", "Cappucino", 0.5),
    ]
    second = [
        out(a, ts + h, "visit", "s-t2", o1, -0.0),
        out(a, ts + h, "reply", "s-d", o2, 5.0),
        out(a, ts + 5 * h, "rate", "s-x", o1, 3.0),
    ]
    for rows in (first, second):  # two appends: two part files of each day
        io.append(root, "outcomes", pa.Table.from_pylist(rows, schema=OUTCOMES))

    def touch(
        hcp: str, at: datetime, content: str, kind: str = "view", dwell: float | None = 3.5
    ) -> dict[str, Any]:
        return {
            "hcp_id": hcp,
            "ts": at,
            "channel": "web",
            "content_id": content,
            "origin": "external",
            "kind": kind,
            "topics": ['c\u0153ur "x"', "lipids"],
            "content_ids": [],
            "dwell_s": dwell,
            "overrides_event_id": None,
        }

    hcp = a["hcp_id"]
    t_first = [
        touch(hcp, ts - us, "edge-before"),
        touch(hcp, ts, "edge-lo"),
        touch(hcp, ts + window, "edge-hi", dwell=None),
        touch(hcp, ts + window + us, "edge-after"),
        touch(hcp, ts + h, "edge-contact", kind="contact"),
        touch(hcp, ts + h, "edge-twice"),
        touch(hcp, ts + h, "edge-click", kind="click"),
        touch("unknown", foreign["ts"] + h, "edge-foreign"),
    ]
    t_second = [touch(hcp, ts + h, "edge-twice")]
    for rows in (t_first, t_second):
        io.append(root, "touches", pa.Table.from_pylist(rows, schema=TOUCHES))
    return {"root": root, "a": a, "n": n, "foreign": foreign}


def _edge_lines(
    engine: SqlEngine, edge: dict[str, Any], tmp_path: Path, extras: LineExtras
) -> dict[str, dict[str, Any]]:
    """The edge log's DSJSON through ``engine`` with ``extras``, checked to be the
    in-process export's bytes given what the command reads for the same
    ``since`` / ``as_of``; its lines' ``nba`` blocks by event id."""
    root = edge["root"]
    result = load_joined(root, RD, activated_only=False)
    table = result.table
    cats = load_catalogs(root, table.column("catalog_version").unique().to_pylist())
    touches = io.read(root, "touches", since=extras.since)
    ref, out = tmp_path / "ref.dsjson", tmp_path / "engine.dsjson"
    export_dsjson(
        table,
        ref,
        cats,
        outcomes=io.read(root, "outcomes", since=extras.since),
        pulls=window_pulls(touches, table, RD.window_days, extras.as_of),
    )
    export_dsjson_on_engine(engine, root, table, out, cats, extras)
    text = ref.read_bytes()
    assert out.read_bytes() == text
    return {
        obj["EventId"]: obj["nba"]
        for obj in (json.loads(line) for line in text.decode("utf-8").splitlines())
    }


def _check_edges(engine: SqlEngine, edge: dict[str, Any], tmp_path: Path) -> None:
    """The edge log's extras, on ``engine``: the in-process bytes, and the rules
    seen in them (which outcomes and pulls, in which order)."""
    a, n, foreign = edge["a"], edge["n"], edge["foreign"]
    result = load_joined(edge["root"], RD, activated_only=False)
    blocks = _edge_lines(engine, edge, tmp_path / "all", LineExtras(RD.window_days, result.as_of))

    def ours(block: dict[str, Any], key: str, field: str, prefix: str) -> list[str]:
        return [x[field] for x in block.get(key, []) if x[field].startswith(prefix)]

    got = ours(blocks[a["event_id"]], "other_action_outcomes", "source_id", "s-")
    assert got == ["s-early", "s-lo", "s-t3", "s-t1", "s-t2", "s-d", "s-n", "s-x", "s-hi", "s-late"]
    kept = {x["source_id"]: x for x in blocks[a["event_id"]]["other_action_outcomes"]}
    assert kept["s-d"]["value"] == 5.0 and kept["s-x"]["value"] == 3.0
    assert len(blocks[a["event_id"]]["slate"]) == 3
    pulled = ours(blocks[a["event_id"]], "pulls", "content_id", "edge-")
    assert pulled == ["edge-lo", "edge-click", "edge-twice", "edge-twice", "edge-hi"]
    assert "pulls" not in blocks[n["event_id"]]
    assert ours(blocks[n["event_id"]], "other_action_outcomes", "source_id", "s-") == ["s-n1"]
    f = blocks[foreign["event_id"]]
    assert [x["action_id"] for x in f["other_action_outcomes"]] == ["Cappucino"]
    assert "edge-foreign" in [x["content_id"] for x in f["pulls"]]

    # --since at a's time and --as-of two days after it: the outcome a microsecond
    # before is not read, nor are the pulls after the horizon
    cut = LineExtras(RD.window_days, a["ts"] + timedelta(days=2), since=a["ts"])
    blocks = _edge_lines(engine, edge, tmp_path / "cut", cut)
    got = ours(blocks[a["event_id"]], "other_action_outcomes", "source_id", "s-")
    assert got == ["s-lo", "s-t3", "s-t1", "s-t2", "s-d", "s-n", "s-x", "s-hi", "s-late"]
    pulled = ours(blocks[a["event_id"]], "pulls", "content_id", "edge-")
    assert pulled == ["edge-lo", "edge-click", "edge-twice", "edge-twice"]


@pytest.fixture
def bad_log(varied_log: Path, tmp_path: Path) -> tuple[Path, str]:
    """Six decisions of ``varied_log``, the fourth with a context the featurizer
    refuses, and that decision's event id."""
    root = tmp_path / "bad"
    dec = io.read(varied_log, "decisions")
    rows = dec.filter(dec.column("activated")).slice(0, 6).to_pylist()
    rows[3]["context"] = '{"hcp_id": 7}'
    io.append(root, "decisions", pa.Table.from_pylist(rows, schema=DECISIONS))
    return root, str(rows[3]["event_id"])


def _rows_through_function(engine: SqlEngine, root: Path, tmp_path: Path) -> tuple[int, int]:
    """How many rows the line function was called with, over all its calls, when
    ``engine`` runs :data:`DSJSON_SQL` over ``root``'s joined rows (counted in a
    file, which Spark's local Python workers share with this process), and how
    many rows there are."""
    result, gathered = _gathered(root)
    table = result.table
    counts = tmp_path / "calls.txt"
    fn = DsjsonLineFunction(gathered["catalogs"])

    # the arguments named one by one: DuckDB counts a function's parameters
    def counted(
        event_id: pa.Array,
        ts_us: pa.Array,
        hcp_id: pa.Array,
        requester: pa.Array,
        channels_requested: pa.Array,
        context: pa.Array,
        catalog_version: pa.Array,
        action_ids: pa.Array,
        probabilities: pa.Array,
        chosen_index: pa.Array,
        chosen_action_id: pa.Array,
        propensity: pa.Array,
        policy: pa.Array,
        model_version: pa.Array,
        activated: pa.Array,
        slate: pa.Array,
        reward: pa.Array,
        reward_is_default: pa.Array,
        reward_definition: pa.Array,
        others: pa.Array,
        pulls: pa.Array,
    ) -> pa.Array:
        with open(counts, "a") as fh:
            fh.write(f"{len(event_id)}\n")
        return fn(
            event_id,
            ts_us,
            hcp_id,
            requester,
            channels_requested,
            context,
            catalog_version,
            action_ids,
            probabilities,
            chosen_index,
            chosen_action_id,
            propensity,
            policy,
            model_version,
            activated,
            slate,
            reward,
            reward_is_default,
            reward_definition,
            others,
            pulls,
        )

    spec = fn.as_engine_function()
    rows = dsjson_rows(table)
    files = tuple(io.part_files_between(root, "decisions", None, None))
    extras = gathered["extras"]
    out = engine.write_lines(
        {
            "decisions_log": ParquetSource(files, DECISIONS),
            **extras.sources(root, rows.column("ts_us")),
        },
        {"dsjson_rows": rows},
        (DSJSON_SQL, extras.params()),
        {DSJSON_FUNCTION: ArrowFunction(counted, spec.arg_types, spec.return_type)},
        tmp_path / "counted",
    )
    assert b"".join(p.read_bytes() for p in out).count(b"\n") == table.num_rows
    return sum(int(n) for n in counts.read_text().split()), table.num_rows


def _check_engine_export(
    engine: SqlEngine, varied_log: Path, bad_log: tuple[Path, str], tmp_path: Path
) -> list[Path]:
    """The engine's file is the in-process export's bytes on ``varied_log``; the
    function runs once per row; a refused context or a decision missing from the
    part files names its event and leaves ``--out`` as it was. Returns the
    engine's part files of ``varied_log``."""
    result, g = _gathered(varied_log)
    table = result.table
    ref, out = tmp_path / "in-process.dsjson", tmp_path / "engine.dsjson"
    n_ref = export_dsjson(table, ref, g["catalogs"], outcomes=g["outcomes"], pulls=g["pulls"])
    n = export_dsjson_on_engine(engine, varied_log, table, out, g["catalogs"], g["extras"])
    text = ref.read_bytes()
    assert out.read_bytes() == text
    assert n == n_ref == table.num_rows == text.count(b"\n") > 150
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    parsed = [json.loads(line) for line in text.decode("utf-8").splitlines()]
    blocks = [p["nba"] for p in parsed]
    assert sum("slate" in b for b in blocks) > 100
    assert sum("pulls" in b for b in blocks) > 10
    assert sum("other_action_outcomes" in b for b in blocks) > 10
    foreign = [p for p in parsed if p["EventId"].startswith("foreign-")]
    assert len(foreign) == 5 and sum(p.get("_skipLearn", False) for p in foreign) == 1
    assert any(p["c"].get("u") == {"x": 1} for p in foreign)  # the {"dsjson": c} form
    assert any("FromUrl" in p["c"] for p in foreign)
    # the part files themselves, in order, are the file
    parts = write_dsjson_parts(
        engine,
        varied_log,
        table,
        tmp_path / "parts",
        g["catalogs"],
        g["extras"],
    )
    assert parts and b"".join(p.read_bytes() for p in parts) == text

    # the statement runs the function once per row (on Spark a function in the
    # sorted projection also ran in the sort's sampling job: twice)
    called, rows = _rows_through_function(engine, varied_log, tmp_path)
    assert called == rows

    # a context the featurizer refuses: the error names the decision, brought back
    # from where the function ran; the previous --out is left as it was
    root, bad_event = bad_log
    # (every window closed: the join keeps all six)
    ts = io.read(root, "decisions").column("ts").to_pylist()
    bad = load_joined(root, RD, as_of=max(ts) + timedelta(days=30)).table
    assert bad.num_rows == 6
    previous = tmp_path / "previous.dsjson"
    previous.write_bytes(b"the previous export\n")
    with pytest.raises(DsjsonError, match=f"event {re.escape(bad_event)}") as err:
        export_dsjson_on_engine(engine, root, bad, previous, {})
    assert engine.describe() in str(err.value)
    assert previous.read_bytes() == b"the previous export\n"
    assert not (tmp_path / ".previous.dsjson.parts").exists()
    assert not (tmp_path / ".previous.dsjson.tmp").exists()
    # a joined decision the part files do not hold (the log changed): named too
    ids = bad.column("event_id").to_pylist()
    moved = bad.set_column(
        0, "event_id", pa.array([*ids[:3], "not-in-the-log", *ids[4:]], pa.string())
    )
    with pytest.raises(DsjsonError, match="event 'not-in-the-log' was joined but is not"):
        export_dsjson_on_engine(engine, root, moved, previous, {})
    assert previous.read_bytes() == b"the previous export\n"
    # the good rows go through
    good = bad.filter(pa.array([i != 3 for i in range(bad.num_rows)]))
    assert export_dsjson_on_engine(engine, root, good, previous, {}) == 5
    return parts


def test_duckdb_writes_the_in_process_dsjson_and_names_a_bad_event(
    varied_log: Path, bad_log: tuple[Path, str], tmp_path: Path
) -> None:
    parts = _check_engine_export(DuckDBEngine(), varied_log, bad_log, tmp_path)
    assert len(parts) == 1


def test_duckdb_picks_the_extras_at_the_rules_edges_as_the_in_process_export(
    edge_log: dict[str, Any], tmp_path: Path
) -> None:
    _check_edges(DuckDBEngine(), edge_log, tmp_path)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"window_days": 0}, "window_days must be a positive number, got 0"),
        ({"window_days": float("nan")}, "window_days must be a positive number"),
        ({"window_days": True}, "window_days must be a positive number, got True"),
        ({"window_days": 7, "as_of": datetime(2026, 1, 5)}, "as_of .* must be timezone-aware"),
        ({"window_days": 7, "since": datetime(2026, 1, 5)}, "since .* must be timezone-aware"),
    ],
)
def test_line_extras_refuses_a_bad_window_or_a_naive_bound(
    args: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DsjsonError, match=problem):
        LineExtras(**args)


def test_function_errors_gives_back_the_callers_error_and_passes_any_other() -> None:
    engine = DuckDBEngine()
    with pytest.raises(DsjsonError, match=r"^writing DSJSON on duckdb: event 'e1': bad$"):
        with engine.function_errors(DsjsonError, "writing DSJSON"):
            raise EngineError(
                "duckdb: Invalid Input Error: nba.logs.dsjson.DsjsonError: event 'e1': bad"
            )
    # another class whose name ends the same is not the caller's error
    with pytest.raises(EngineError, match="NotDsjsonError"):
        with engine.function_errors(DsjsonError, "writing DSJSON"):
            raise EngineError("duckdb: NotDsjsonError: event 'e1': bad")
    with pytest.raises(EngineError, match="could not read"):
        with engine.function_errors(DsjsonError, "writing DSJSON"):
            raise EngineError("duckdb could not read the log: not Parquet")


def test_a_touch_with_a_null_the_contract_forbids_names_the_event(
    varied_log: Path, tmp_path: Path
) -> None:
    """A touches part file written by other means, with a null channel in a
    decision's window: the in-process export refuses the table, and the
    engine's export names the decision whose line it would have been in,
    ``--out`` left as it was."""
    root = tmp_path / "logs"
    shutil.copytree(varied_log, root)
    result, _ = _gathered(root)
    first = next(r for r in result.table.to_pylist() if r["activated"])
    nullable = pa.schema([f.with_nullable(True) for f in TOUCHES])
    bad = pa.Table.from_pylist(
        [
            {
                "hcp_id": first["hcp_id"],
                "ts": first["ts"] + timedelta(hours=1),
                "channel": None,
                "content_id": "c",
                "origin": "external",
                "kind": "view",
                "topics": [],
                "content_ids": [],
                "dwell_s": None,
                "overrides_event_id": None,
            }
        ],
        schema=nullable,
    )
    day = root / "touches" / f"date={first['ts'].date().isoformat()}"
    day.mkdir(parents=True, exist_ok=True)
    pq.write_table(bad, day / "part-99999.parquet")
    # (io.read itself refuses it, with pyarrow's message)
    with pytest.raises(ValueError, match="'channel' with null values"):
        window_pulls(io.read(root, "touches"), result.table, RD.window_days, result.as_of)
    out = tmp_path / "out.dsjson"
    out.write_bytes(b"before\n")
    extras = LineExtras(RD.window_days, result.as_of)
    with pytest.raises(DsjsonError, match="touches: column 'channel' has a null") as err:
        export_dsjson_on_engine(DuckDBEngine(), root, result.table, out, {}, extras)
    assert "writing DSJSON on duckdb: event '" in str(err.value)
    assert out.read_bytes() == b"before\n"


def test_an_empty_join_writes_an_empty_file(varied_log: Path, tmp_path: Path) -> None:
    result, _ = _gathered(varied_log)
    empty = result.table.slice(0, 0)
    out = tmp_path / "empty.dsjson"
    assert export_dsjson_on_engine(DuckDBEngine(), varied_log, empty, out) == 0
    assert out.read_bytes() == b""


@pytest.mark.slow
def test_spark_executors_write_the_in_process_dsjson_and_name_a_bad_event(
    spark_parts_apart: SparkEngine, varied_log: Path, bad_log: tuple[Path, str], tmp_path: Path
) -> None:
    # Spark would coalesce this small log's sorted partitions into one: kept apart
    # here, several part files, each written by an executor task, must still hold
    # the lines in the joined table's order across files
    # (spark_parts_apart: the partitions kept apart, so there are several)
    parts = _check_engine_export(spark_parts_apart, varied_log, bad_log, tmp_path)
    assert len(parts) > 1


@pytest.mark.slow
def test_spark_picks_the_extras_at_the_rules_edges_as_the_in_process_export(
    spark_engine: SparkEngine, edge_log: dict[str, Any], tmp_path: Path
) -> None:
    _check_edges(spark_engine, edge_log, tmp_path)
    # the command: --engine spark --since gives the file of the in-process command
    root = edge_log["root"]
    since = edge_log["a"]["ts"].strftime("%Y-%m-%d")
    files = {}
    for engine in ("duckdb", "spark"):
        files[engine] = tmp_path / f"{engine}.dsjson"
        res = CliRunner().invoke(
            nba,
            [
                *("logs", "export", "--logs", str(root), "--format", "dsjson"),
                *("--since", since, "--engine", engine, "--quiet", "--out", str(files[engine])),
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
    assert "dsjson lines made by: spark (local[2])" in res.output
    text = files["duckdb"].read_bytes()
    assert text == files["spark"].read_bytes()
    assert b"s-late" in text and b"edge-hi" in text


def test_the_command_on_duckdb_makes_the_lines_in_its_process_and_counts_the_file(
    varied_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli.dsjson"
    res = CliRunner().invoke(
        nba,
        [
            *("logs", "export", "--logs", str(varied_log), "--format", "dsjson"),
            *("--include-inactive", "--quiet", "--out", str(out)),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "dsjson lines made by: this process" in res.output
    n = out.read_bytes().count(b"\n")
    assert n > 150 and f"wrote {n} decisions (dsjson)" in res.output
    # the engine's function path writes that file too
    result, g = _gathered(varied_log)
    again = tmp_path / "engine.dsjson"
    export_dsjson_on_engine(
        DuckDBEngine(), varied_log, result.table, again, g["catalogs"], g["extras"]
    )
    assert again.read_bytes() == out.read_bytes()
