"""The commands' join reads the log directory with the engine itself (DuckDB
``read_parquet``, Spark ``spark.read.parquet``): the selection (``since`` /
``until``, activated decisions, the ``as_of`` horizon, open windows, outcomes of
unselected decisions) is SQL, and the result equals what reading the log with
pyarrow and joining Arrow tables gives (:func:`_arrow_reference`, the previous
path), row for row and count for count, on DuckDB and on Spark ``local[2]``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nba.logs import io
from nba.logs.engine import SparkEngine
from nba.logs.join import JoinResult, OpenWindows, load_joined
from nba.logs.schema import DECISIONS
from nba.reward import RewardDefinition

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)

_CUSTOM = RewardDefinition(
    name="custom",
    version="2",
    weights={"opened": 0.3, "clicked": 0.7, "reward": 1.0, "unsubscribed": -2.0},
    window_days=2.5,
    aggregation="max",
    default_reward=0.05,
    clip=(-1.0, 0.8),
    value_types=frozenset({"reward"}),
    costs={"email": 0.02, "rep_visit": 0.1},
)


def _arrow_reference(root: Path, rd: RewardDefinition, **kw: Any) -> JoinResult:
    """The join as the commands did it before the engine read the log (pyarrow)."""
    return load_joined(root, rd, read_on_engine=False, **kw)


@pytest.fixture
def log_dir(tmp_path: Path, make_decisions: Any, make_outcomes: Any) -> Path:
    """Six days of decisions (some not activated, three with slates), outcomes of every
    status, and an older part file written without the nullable ``slate`` and
    ``action_id`` columns (the engines read those as nulls)."""
    root = tmp_path / "logs"
    rows = make_decisions(18, step=timedelta(hours=8), activated=[i % 7 != 3 for i in range(18)])
    rows = rows.to_pylist()
    for r in rows[4:7]:
        ids, c = r["action_ids"], r["chosen_index"]
        others = [a for a in ids if a != ids[c]][:2]
        r["slate"] = [{"action_id": ids[c], "probability": r["propensity"]}] + [
            {"action_id": a, "probability": 0.5} for a in others
        ]
    dec = pa.Table.from_pylist(rows, schema=DECISIONS)
    # the first day as an old writer wrote it: no slate column
    old = dec.slice(0, 3).drop_columns(["slate", "rules_version", "rules_market", "journey"])
    day = root / "decisions" / "date=2026-01-05"
    day.mkdir(parents=True)
    pq.write_table(old, day / "part-00000.parquet")
    io.append(root, "decisions", dec.slice(3))
    out: list[tuple[Any, ...]] = []
    for i, r in enumerate(rows):
        ts, eid = r["ts"], r["event_id"]
        out.append((eid, ts + H, "opened", "a"))
        out.append((eid, ts + 2 * H, "opened", "a"))  # duplicate
        out.append((eid, ts + timedelta(days=3), "clicked", "b"))  # late for 2.5 days
        if i % 3 == 0:
            out.append((eid, ts - H, "clicked", "c"))  # early
            out.append((eid, ts + 5 * H, "reward", "r", 0.4))
        if r["slate"]:
            out.append((eid, ts + 3 * H, "clicked", "s", 1.0, r["slate"][1]["action_id"]))
        else:
            other = next(a for a in r["action_ids"] if a != r["chosen_action_id"])
            out.append((eid, ts + 3 * H, "clicked", "x", 1.0, other))
    out.append(("nope", T0 + H, "opened", "u"))  # unknown event
    o = make_outcomes(out)
    old_o = o.slice(0, 6).drop_columns(["action_id"])
    oday = root / "outcomes" / "date=2026-01-05"
    oday.mkdir(parents=True)
    pq.write_table(old_o, oday / "part-00000.parquet")
    io.append(root, "outcomes", o.slice(6))
    return root


_CASES: list[tuple[RewardDefinition, dict[str, Any]]] = [
    (RewardDefinition.default(), {}),
    (_CUSTOM, {"activated_only": False}),
    (_CUSTOM, {"since": date(2026, 1, 6), "until": date(2026, 1, 8)}),
    (_CUSTOM, {"as_of": "2026-01-09T12:00:00Z"}),
    (_CUSTOM, {"as_of": "2026-01-09T12:00:00Z", "open_windows": OpenWindows.PARTIAL}),
    (_CUSTOM, {"as_of": "2026-01-09T12:00:00Z", "open_windows": OpenWindows.DELAY_CORRECTED}),
    (RewardDefinition.default(), {"since": date(2026, 1, 7), "as_of": "2026-01-12"}),
]


def _check(root: Path, engine: Any) -> None:
    for rd, kw in _CASES:
        want = _arrow_reference(root, rd, **kw)
        got = load_joined(root, rd, engine=engine, read_on_engine=True, **kw)
        assert got.table.equals(want.table), (rd.name, kw)
        assert got.counts == want.counts, (rd.name, kw)
        assert got.as_of == want.as_of and got.as_of_basis == want.as_of_basis
    # the fixture's log exercises every status
    c = _arrow_reference(root, _CUSTOM, activated_only=False, as_of="2026-01-09T12:00:00Z").counts
    assert c.duplicate_outcomes and c.late_outcomes and c.early_outcomes and c.slot_outcomes
    assert c.unknown_event_outcomes and c.other_action_outcomes and c.outcomes_after_as_of
    assert c.open_window_decisions and c.open_window_outcomes
    c = _arrow_reference(root, _CUSTOM, since=date(2026, 1, 6), until=date(2026, 1, 8)).counts
    assert c.unselected_outcomes
    # only some columns: the others are not read, the rows the same
    light = load_joined(
        root, _CUSTOM, columns=["event_id", "propensity"], engine=engine, read_on_engine=True
    )
    full = _arrow_reference(root, _CUSTOM)
    assert "context" not in light.table.column_names and "hcp_id" not in light.table.column_names
    for name in ("event_id", "propensity", "reward", "slot_rewards", "n_outcomes"):
        assert light.table.column(name).equals(full.table.column(name)), name
    # nothing selected: an empty result, counted
    none = load_joined(root, _CUSTOM, since=date(2030, 1, 1), engine=engine, read_on_engine=True)
    assert (
        none.table.num_rows == 0
        and none.counts == _arrow_reference(root, _CUSTOM, since=date(2030, 1, 1)).counts
    )


def test_duckdb_reads_the_log_itself_with_the_same_result(log_dir: Path) -> None:
    _check(log_dir, "duckdb")


def test_a_duplicated_event_id_in_the_log_is_named(log_dir: Path, make_decisions: Any) -> None:
    again = io.read(log_dir, "decisions").slice(4, 1)
    io.append(log_dir, "decisions", again)
    eid = again.column("event_id")[0].as_py()
    with pytest.raises(io.LogError, match=f"column 'event_id': '{eid}' appears more than once"):
        load_joined(log_dir, _CUSTOM, read_on_engine=True)


def test_the_logs_timestamps_are_microsecond_utc_instants(log_dir: Path) -> None:
    """Every timestamp the log holds is Parquet TIMESTAMP(MICROS, isAdjustedToUTC=true)."""
    for name in ("decisions", "outcomes"):
        for f in io.part_files(log_dir, name):
            col = pq.ParquetFile(f).schema.column(pq.ParquetFile(f).schema.names.index("ts"))
            logical = col.logical_type.to_json()
            assert '"timeUnit": "microseconds"' in logical, (f, logical)
            assert '"isAdjustedToUTC": true' in logical, (f, logical)


@pytest.mark.slow
def test_spark_reads_the_log_itself_with_the_same_result(
    spark_engine: SparkEngine, log_dir: Path
) -> None:
    _check(log_dir, spark_engine)
    part = _corrupt_a_part(log_dir)
    with pytest.raises(io.LogError, match=rf"Spark could not read the log \(part file {part}\)"):
        load_joined(log_dir, _CUSTOM, engine=spark_engine)


def _corrupt_a_part(root: Path) -> Path:
    part = io.part_files(root, "outcomes")[1]
    part.write_bytes(b"not a parquet file")
    return part


def test_a_part_file_the_engine_cannot_read_is_named(log_dir: Path) -> None:
    from click.testing import CliRunner

    from nba_cli.main import main as nba

    part = _corrupt_a_part(log_dir)
    with pytest.raises(io.LogError, match=f"duckdb could not read the log: .*{part.name}"):
        load_joined(log_dir, _CUSTOM, read_on_engine=True)
    res = CliRunner().invoke(
        nba,
        [
            *("logs", "export", "--logs", str(log_dir), "--format", "dsjson"),
            *("--out", str(log_dir.parent / "x.dsjson")),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code != 0 and str(part.parent.name) in res.output, res.output
