"""The OPE input arrays and their checks as SQL (:func:`nba.ope.logs.ope_statements`),
run by the engine with the join (:func:`nba.logs.join.load_joined`, ``extra_sql``):
the same arrays and the same error messages on DuckDB and on Spark ``local[2]``,
equal to :meth:`LoggedLog.from_table` (numpy on the driver), whether the engine
reads the log itself or joins the tables pyarrow read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from nba.logs import io
from nba.logs.engine import SparkEngine, SqlEngine, get_engine
from nba.logs.join import OpenWindows, join_rewards, load_joined
from nba.logs.schema import DECISIONS, OUTCOMES
from nba.ope import OPEInputError
from nba.ope.logs import LoggedLog, ope_statements
from nba.reward import RewardDefinition

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
RD = RewardDefinition.default()

DecisionRow = Callable[..., dict[str, Any]]

#: one decision's changes that make exactly one check fail first, and the message
#: (the same as :meth:`LoggedLog.from_table` gives)
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "sizes": (dict(probabilities=[0.2, 0.3]), "3 action_ids but 2 probabilities"),
    "empty": (dict(action_ids=[], probabilities=[], chosen_index=0), "no eligible actions"),
    "null": (dict(action_ids=["a@email", None, "c@email"]), "null entries in action_ids"),
    "index": (dict(chosen_index=3), "chosen_index 3 outside its 3 eligible actions"),
    "probability": (dict(probabilities=[-0.2, 0.7, 0.5]), "logged probability -0.2 outside [0, 1]"),
    "sum": (
        dict(probabilities=[0.2, 0.3, 0.6], propensity=0.6),
        "logged probabilities sum to 1.1, not 1",
    ),
    "propensity": (
        dict(propensity=0.0, probabilities=[0.5, 0.5, 0.0]),
        "propensity 0.0 outside (0, 1]",
    ),
    "served": (
        dict(propensity=0.3),
        "propensity 0.3 is not the served probability 0.5 of the chosen action",
    ),
}


def _row(decision_row: DecisionRow, i: int, **over: Any) -> dict[str, Any]:
    """Decision ``e{i}``, five hours after decision ``e{i-1}``, for one of three HCPs."""
    return decision_row(f"e{i}", ts=T0 + i * 5 * H, hcp_id=f"h{i % 3}", **over)


def _write_log(root: Path, rows: list[dict[str, Any]], make_outcomes: Any) -> Path:
    io.append(root, "decisions", pa.Table.from_pylist(rows, schema=DECISIONS))
    outs: list[tuple[Any, ...]] = []
    for i, r in enumerate(rows):
        if i % 2 == 0:
            outs.append((r["event_id"], r["ts"] + H, "opened"))
        if i % 3 == 0:
            outs.append((r["event_id"], r["ts"] + 2 * H, "clicked"))
    io.append(root, "outcomes", make_outcomes(outs))
    return root


def _good_log(root: Path, make_decisions: Any, make_outcomes: Any) -> Path:
    """30 decisions of 3-6 actions over ten days, half of them with outcomes."""
    rows = make_decisions(30, step=timedelta(hours=8), seed=3).to_pylist()
    return _write_log(root, rows, make_outcomes)


def _all_bad_log(root: Path, make_outcomes: Any, decision_row: DecisionRow) -> Path:
    """A good decision, then one failing each check (in the order of the checks)."""
    rows = [_row(decision_row, 0)]
    rows += [_row(decision_row, i + 1, **over) for i, (over, _) in enumerate(BAD.values())]
    return _write_log(root, rows, make_outcomes)


def _sql_log(
    root: Path, engine: SqlEngine | str, read_on_engine: bool, **kw: Any
) -> tuple[LoggedLog | str, Any]:
    """The log built from the engine's OPE SQL (or its error), and the join."""
    kw.setdefault("as_of", "2026-03-01T00:00:00Z")  # every window closed
    joined = load_joined(
        root, RD, engine=engine, read_on_engine=read_on_engine, extra_sql=ope_statements(), **kw
    )
    arrays, checks = joined.extra_results
    try:
        return LoggedLog.from_sql_result(joined.table, arrays, checks, (-1.0, 1.0)), joined
    except OPEInputError as exc:
        return str(exc), joined


def _numpy_log(joined: Any) -> LoggedLog | str:
    table = joined if isinstance(joined, pa.Table) else joined.table
    try:
        return LoggedLog.from_table(table, (-1.0, 1.0))
    except OPEInputError as exc:
        return str(exc)


_ARRAYS = ("offsets", "action_ids", "pscore_all", "action", "pscore", "reward", "ts_us")


def _assert_same_log(got: LoggedLog | str, want: LoggedLog | str) -> None:
    assert isinstance(got, LoggedLog) and isinstance(want, LoggedLog), (got, want)
    for name in _ARRAYS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert got.default_reward is not None and want.default_reward is not None
    assert np.array_equal(got.default_reward, want.default_reward)
    assert np.array_equal(got.event_ids, want.event_ids)
    assert np.array_equal(got.hcp_ids, want.hcp_ids)
    assert got.table.equals(want.table) and got.reward_range == want.reward_range


def _check_engine(
    engine: SqlEngine | str,
    tmp: Path,
    make_decisions: Any,
    make_outcomes: Any,
    decision_row: DecisionRow,
    reads: tuple[bool, ...] = (True, False),
) -> None:
    """Every case on one engine, against DuckDB (pyarrow reading the log) and numpy.

    ``reads``: the values of ``read_on_engine`` the good log is read with (the
    statements over a table on the driver are also run for the bad rows below).
    """
    good = _good_log(tmp / "good", make_decisions, make_outcomes)
    for kw in ({}, {"as_of": "2026-01-22T00:00:00Z"}):  # then some windows are open
        ref, joined = _sql_log(good, "duckdb", False, **kw)
        _assert_same_log(ref, _numpy_log(joined))
        for read_on_engine in reads:
            got, _ = _sql_log(good, engine, read_on_engine, **kw)
            _assert_same_log(got, ref)
        assert isinstance(ref, LoggedLog)
        assert ref.default_reward is not None and 0 < ref.default_reward.sum() < ref.n_decisions
    # every check fails on a row of its own, the engine reading the log: the same
    # first offender of each check on both engines, and the first check's message
    bad = _all_bad_log(tmp / "bad", make_outcomes, decision_row)
    msg, joined = _sql_log(bad, engine, True)
    assert msg == _numpy_log(joined) == f"joined log: event e1: {BAD['sizes'][1]}"
    checks = joined.extra_results[1].to_pylist()
    # (a row failing one check may fail later ones too: e2, empty, has no index 0)
    for i, name in enumerate(BAD):
        first = next(r for r in checks if r[f"bad_{name}"])
        assert int(first["event_id"][1:]) <= i + 1, (name, first)
    _, duck = _sql_log(bad, "duckdb", True)
    assert duck.extra_results[1].to_pylist() == checks
    # each bad row alone, after a good one: its own message (the statements over
    # each joined table, all in one engine call, as load_joined runs them over a
    # table already on the driver)
    tables: dict[str, pa.Table] = {}
    statements: list[tuple[str, Any]] = []
    for name, (over, _) in BAD.items():
        d = pa.Table.from_pylist(
            [_row(decision_row, 0), _row(decision_row, 1, **over)], schema=DECISIONS
        )
        t = join_rewards(d, OUTCOMES.empty_table(), RD).table
        tables[f"joined_{name}"] = t.append_column("row_id", pa.array([0, 1], pa.int64()))
        statements += [
            (sql.replace("FROM joined", f"FROM joined_{name}"), params)
            for sql, params in ope_statements()
        ]
    results = get_engine(engine).run(tables, statements)
    for i, (name, (_, text)) in enumerate(BAD.items()):
        table = tables[f"joined_{name}"].drop_columns(["row_id"])
        try:
            LoggedLog.from_sql_result(table, results[2 * i], results[2 * i + 1])
            msg = "no error"
        except OPEInputError as exc:
            msg = str(exc)
        want = (
            f"joined log: event e1: {text}"
            if name != "null"
            else f"joined log: {text} or probabilities"
        )
        assert msg == want == _numpy_log(table), name


def test_ope_sql_on_duckdb_matches_numpy(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any, decision_row: DecisionRow
) -> None:
    _check_engine("duckdb", tmp_path, make_decisions, make_outcomes, decision_row)


def test_ope_sql_with_delay_corrected_rewards_reads_the_corrected_table(
    tmp_path: Path, make_decisions: Any, make_outcomes: Any
) -> None:
    """Delay-corrected rewards are corrected on the driver: the OPE SQL then runs over
    the corrected table (on the engine), and its rewards are the corrected ones."""
    good = _good_log(tmp_path / "good", make_decisions, make_outcomes)
    kw = {"as_of": "2026-01-22T00:00:00Z", "open_windows": OpenWindows.DELAY_CORRECTED}
    for read_on_engine in (True, False):
        got, joined = _sql_log(good, get_engine("duckdb"), read_on_engine, **kw)
        assert joined.counts.open_window_decisions > 0
        _assert_same_log(got, _numpy_log(joined))


@pytest.mark.slow
def test_ope_sql_on_spark_matches_duckdb(
    spark_engine: SparkEngine,
    tmp_path: Path,
    make_decisions: Any,
    make_outcomes: Any,
    decision_row: DecisionRow,
) -> None:
    # the engine reading the log (each Spark read costs tens of seconds on the
    # shared machine); the statements over a driver table run for the bad rows
    _check_engine(
        spark_engine, tmp_path, make_decisions, make_outcomes, decision_row, reads=(True,)
    )


def test_list_functions_spark_has_otherwise_are_rewritten_or_refused() -> None:
    from nba.logs.engine import EngineError, to_spark_sql

    sql = "SELECT list_reduce(l, lambda a, b: a + b, CAST(0 AS DOUBLE)) AS s, "
    sql += "list_extract(l, i + 1) AS e FROM t"
    assert to_spark_sql(sql) == (
        "SELECT AGGREGATE(l, CAST(0 AS DOUBLE), (a, b) -> a + b) AS s, "
        "TRY_ELEMENT_AT(l, i + 1) AS e FROM t"
    )
    with pytest.raises(EngineError, match="list_reduce without an initial value"):
        to_spark_sql("SELECT list_reduce(l, lambda a, b: a + b) FROM t")
    # the OPE statements transpile whole, their list functions rewritten
    for text, params in ope_statements():
        spark = to_spark_sql(text, params)
        assert "LIST_" not in spark.upper() and "AGGREGATE(" in spark, spark
