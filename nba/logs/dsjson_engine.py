"""DSJSON lines made by the engine: the export's line writer as a function the SQL calls.

``nba logs export --format dsjson --engine spark`` does not featurize in the
command's process. The DSJSON line writer of :func:`nba.logs.dsjson.export_dsjson`
(the bulk featurizer with ``action_json=True``, the column-wise line writer,
the per-row path for imported ``{"dsjson": ...}`` contexts and for rows it does
not cover) is registered in the engine as one vectorized (Arrow) function,
:data:`DSJSON_FUNCTION`, and one SQL statement (:data:`DSJSON_SQL`, DuckDB
dialect, transpiled for Spark like the join) calls it: the joined rows (an
Arrow table from the driver, without contexts) joined to the contexts the
engine reads from the decisions' Parquet files, in the joined table's order.
The engine writes the lines as text part files (Spark on its executors, DuckDB
in this process); :func:`export_dsjson_on_engine` concatenates them, in order,
into the one ``--out`` file, through a temporary file renamed at the end.

The two per-decision lists that come from other tables are the same
statement's work too: the engine reads the outcomes' and the touches' Parquet
files itself and, in SQL, picks each decision's outcomes about other
suggestions (``nba.other_action_outcomes``: outcomes naming an action,
de-duplicated on ``(event_id, type, source_id)`` keeping the earliest, those
about another action than the chosen one, in time order) and the HCP's pull
touches of its reward window (``nba.pulls``: ``ts <= touch.ts <= ts + window``,
not after ``as_of``, in time order), each as a list of structs in its order
(:data:`EXTRAS_SQL`). The function writes them as the in-process writer does
and splices them into each line's ``nba`` block where that writer puts them.
The driver reads neither table: it lists their part files and sends the
joined rows. The lines are therefore the in-process export's bytes, made by
the same code, with the selection rules written once in SQL
(:class:`LineExtras` says where they come from).

A row the writer refuses (a context the featurizer cannot read, a decision no
longer in the log's part files) stops the statement with :class:`DsjsonError`
naming its event id, from a Spark executor as from DuckDB; the ``--out`` file
is then left as it was and the part files are removed.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from nba.catalog import Catalog
from nba.logs import io
from nba.logs.dsjson import (
    _EPOCH,
    _YEAR_US,
    OTHER_OUTCOMES_KEY,
    PULLS_KEY,
    DsjsonError,
    _float_texts,
    _iter_lines,
    _lists,
    _str_texts,
    _timestamp,
)
from nba.logs.engine import ArrowFunction, ParquetSource, SqlEngine, first_missing_context
from nba.logs.schema import DECISIONS, JOINED, OUTCOMES, TOUCHES

#: The name the SQL calls the line-writing function by.
DSJSON_FUNCTION = "nba_dsjson_line"

_US_PER_DAY = 86_400 * 1_000_000
#: A bound no log time reaches (microseconds): no ``since``, no ``as_of``.
_NO_BOUND_US = 2**62

#: One outcome about another suggestion, as :data:`EXTRAS_SQL` lists them:
#: ``k`` its place (1-based) in the decision's list, ``ts_us`` its time.
OTHER_TYPE = pa.struct(
    [
        pa.field("k", pa.int64()),
        pa.field("ts_us", pa.int64()),
        pa.field("action_id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("source", pa.string()),
        pa.field("source_id", pa.string()),
    ]
)
#: One window pull, as :data:`EXTRAS_SQL` lists them (``k``, ``ts_us`` as above;
#: ``topics`` / ``content_ids`` null in a part file written before they existed).
PULL_TYPE = pa.struct(
    [
        pa.field("k", pa.int64()),
        pa.field("ts_us", pa.int64()),
        pa.field("channel", pa.string()),
        pa.field("content_id", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("topics", pa.list_(pa.string())),
        pa.field("content_ids", pa.list_(pa.string())),
        pa.field("dwell_s", pa.float64()),
    ]
)
_OTHER_SQL_TYPE = (
    "STRUCT(k BIGINT, ts_us BIGINT, action_id VARCHAR, type VARCHAR, value DOUBLE, "
    "source VARCHAR, source_id VARCHAR)[]"
)
_PULL_SQL_TYPE = (
    "STRUCT(k BIGINT, ts_us BIGINT, channel VARCHAR, content_id VARCHAR, origin VARCHAR, "
    "kind VARCHAR, topics VARCHAR[], content_ids VARCHAR[], dwell_s DOUBLE)[]"
)

#: The function's arguments: (column, DuckDB type), in order. ``ts`` travels as
#: microseconds since the epoch (``ts_us``); ``others`` and ``pulls`` are the
#: lists of :data:`EXTRAS_SQL`.
_ARGS = (
    ("event_id", "VARCHAR"),
    ("ts_us", "BIGINT"),
    ("hcp_id", "VARCHAR"),
    ("requester", "VARCHAR"),
    ("channels_requested", "VARCHAR[]"),
    ("context", "VARCHAR"),
    ("catalog_version", "VARCHAR"),
    ("action_ids", "VARCHAR[]"),
    ("probabilities", "DOUBLE[]"),
    ("chosen_index", "INTEGER"),
    ("chosen_action_id", "VARCHAR"),
    ("propensity", "DOUBLE"),
    ("policy", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("activated", "BOOLEAN"),
    ("slate", "STRUCT(action_id VARCHAR, probability DOUBLE)[]"),
    ("reward", "DOUBLE"),
    ("reward_is_default", "BOOLEAN"),
    ("reward_definition", "VARCHAR"),
    ("others", _OTHER_SQL_TYPE),
    ("pulls", _PULL_SQL_TYPE),
)
_ARG_NAMES = tuple(name for name, _ in _ARGS)
#: The arguments the engine computes (not columns of the driver's rows).
_COMPUTED = ("context", "others", "pulls")

#: The rows the driver gives the engine: the joined table's columns the lines
#: need, except those the engine computes, with the row's position.
ROWS_SCHEMA = pa.schema(
    [
        pa.field("pos", pa.int64()),
        *[
            pa.field("ts_us", pa.int64())
            if name == "ts_us"
            else JOINED.field(name).with_nullable(True)
            for name in _ARG_NAMES
            if name not in _COMPUTED
        ],
    ]
)

#: Each joined row's outcomes about other suggestions and its window pulls, in
#: SQL: the rules of :func:`nba.logs.dsjson.other_action_outcomes` and
#: :func:`nba.logs.dsjson.window_pulls`. The inputs: ``dsjson_rows`` (the
#: driver's rows), ``outcomes_log`` and ``touches_log`` (Parquet views, with
#: each row's file and index in it); the parameters ``$since_us`` (outcomes
#: and touches before it are not read), ``$as_of_us`` (pulls after it are
#: left out) and ``$window_us``.
#:
#: - Outcomes: those naming an action (``action_id`` not null) of a joined
#:   decision, the first of each ``(event_id, type, source_id)`` kept, whatever
#:   its action, then those about another action than the row's chosen one.
#:   "First" and the list's order are time, then value, then the order the log
#:   is read in (part file, row): Python's stable sort on ``(ts, value)`` over
#:   the rows as :func:`nba.logs.io.read` gives them. A value of -0.0 sorts as
#:   0.0 (Python compares them equal).
#: - Pulls: the HCP's touches of any ``kind`` but ``contact`` (a part file
#:   without ``kind`` holds contacts) with ``ts <= touch.ts <= ts + window``,
#:   in time, kind, channel, content id, then read order; every copy listed.
#:
#: Each list is ``list_sort`` of structs led by ``k``, the item's place: its
#: order whatever order the engine gathered the rows in.
EXTRAS_SQL = """
o_read AS (
    SELECT o.event_id, o.action_id, o.type, o.value, o.source, o.source_id,
        epoch_us(o.ts) AS ts_us,
        CASE WHEN o.value = 0 THEN CAST(0 AS DOUBLE) ELSE o.value END AS value_key,
        regexp_extract(o.nba_file, '[^/]+/[^/]+$', 0) AS file_key,
        o.nba_row AS row_key
    FROM outcomes_log AS o
    WHERE o.action_id IS NOT NULL AND epoch_us(o.ts) >= $since_us
        AND o.event_id IN (SELECT event_id FROM dsjson_rows)
),
o_first AS (
    SELECT *,
        ROW_NUMBER() OVER (
            PARTITION BY event_id, type, source_id ORDER BY ts_us, value_key, file_key, row_key
        ) AS copy_no
    FROM o_read
),
o_other AS (
    SELECT r.pos, o.ts_us, o.action_id, o.type, o.value, o.source, o.source_id,
        ROW_NUMBER() OVER (
            PARTITION BY r.pos ORDER BY o.ts_us, o.value_key, o.file_key, o.row_key
        ) AS k
    FROM o_first AS o
    JOIN dsjson_rows AS r ON r.event_id = o.event_id
    WHERE o.copy_no = 1 AND o.action_id <> r.chosen_action_id
),
others AS (
    SELECT pos,
        list_sort(list(struct_pack(
            k := k, ts_us := ts_us, action_id := action_id, type := type, value := value,
            source := source, source_id := source_id
        ))) AS others
    FROM o_other
    GROUP BY pos
),
t_read AS (
    SELECT t.hcp_id, epoch_us(t.ts) AS ts_us, t.channel, t.content_id, t.origin, t.kind,
        t.topics, t.content_ids, t.dwell_s,
        regexp_extract(t.nba_file, '[^/]+/[^/]+$', 0) AS file_key,
        t.nba_row AS row_key
    FROM touches_log AS t
    WHERE t.kind <> 'contact' AND epoch_us(t.ts) >= $since_us
        AND epoch_us(t.ts) <= $as_of_us
),
t_window AS (
    SELECT r.pos, t.ts_us, t.channel, t.content_id, t.origin, t.kind, t.topics,
        t.content_ids, t.dwell_s,
        ROW_NUMBER() OVER (
            PARTITION BY r.pos
            ORDER BY t.ts_us, t.kind, t.channel, t.content_id, t.file_key, t.row_key
        ) AS k
    FROM t_read AS t
    JOIN dsjson_rows AS r ON r.hcp_id = t.hcp_id
    WHERE t.ts_us >= r.ts_us AND t.ts_us <= r.ts_us + $window_us
),
pulls AS (
    SELECT pos,
        list_sort(list(struct_pack(
            k := k, ts_us := ts_us, channel := channel, content_id := content_id,
            origin := origin, kind := kind, topics := topics, content_ids := content_ids,
            dwell_s := dwell_s
        ))) AS pulls
    FROM t_window
    GROUP BY pos
)
"""

_ARG_LIST = ", ".join(f"s.{name}" for name in _ARG_NAMES)
_INNER = ", ".join(
    {"context": "d.context", "others": "x.others", "pulls": "w.pulls"}.get(n, f"r.{n}")
    for n in _ARG_NAMES
)

#: The one statement: the joined rows with their contexts (read by the engine
#: from the decisions' part files) and their extras (:data:`EXTRAS_SQL`),
#: written as DSJSON lines by :data:`DSJSON_FUNCTION`, in the joined table's
#: order (``pos``). The function is applied over the sorted rows, not sorted
#: with them: Spark's ``ORDER BY`` samples its input to choose the sort's
#: ranges, and a function in the sorted projection would run in that sampling
#: job too (each line made twice). A projection keeps its input's order on
#: both engines.
DSJSON_SQL = f"""
WITH {EXTRAS_SQL.strip()}
SELECT {DSJSON_FUNCTION}({_ARG_LIST}) AS line
FROM (
    SELECT {_INNER}
    FROM dsjson_rows AS r
    LEFT JOIN decisions_log AS d ON d.event_id = r.event_id
    LEFT JOIN others AS x ON x.pos = r.pos
    LEFT JOIN pulls AS w ON w.pos = r.pos
    ORDER BY r.pos
) AS s
"""

#: An argument of :class:`DsjsonLineFunction`: DuckDB passes chunked arrays, Spark arrays.
Column: TypeAlias = pa.Array | pa.ChunkedArray

_TS = JOINED.field("ts").type


def _arrow(column: Column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


@dataclass(frozen=True)
class LineExtras:
    """Where the lines' ``nba.other_action_outcomes`` and ``nba.pulls`` come from:
    what ``nba logs export --format dsjson`` gives the in-process writer, said
    as bounds the engine applies to the log's own tables.

    The in-process export with ``outcomes=io.read(logs, "outcomes",
    since=since)`` and ``pulls=window_pulls(io.read(logs, "touches",
    since=since), joined, window_days, as_of)`` writes the same lines.

    Parameters
    ----------
    window_days : float
        The reward definition's window (days, > 0): a touch belongs to a
        decision when ``ts <= touch.ts <= ts + window`` (microseconds, rounded
        as the join rounds them).
    as_of : datetime, optional
        The join's horizon (timezone-aware): touches after it are left out.
    since : date or datetime, optional
        The export's ``--since``: outcomes and touches before it are not read
        (a date: from its start, UTC).

    Raises
    ------
    DsjsonError
        On a window that is not a positive number, or a naive ``as_of`` or
        ``since``.
    """

    window_days: float
    as_of: datetime | None = None
    since: date | datetime | None = None

    def __post_init__(self) -> None:
        w = self.window_days
        if (
            isinstance(w, bool)
            or not isinstance(w, int | float)
            or not (math.isfinite(w) and w > 0)
        ):
            raise DsjsonError(f"LineExtras: window_days must be a positive number, got {w!r}")
        for name in ("as_of", "since"):
            value = getattr(self, name)
            if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
                raise DsjsonError(f"LineExtras: {name} {value!r} must be timezone-aware")

    @property
    def window_us(self) -> int:
        """The window in microseconds, rounded as the join rounds it."""
        return round(float(self.window_days) * _US_PER_DAY)

    def params(self) -> dict[str, int | float]:
        """The parameters of :data:`EXTRAS_SQL`.

        Returns
        -------
        dict
            ``since_us``, ``as_of_us`` (microseconds since the epoch; a bound
            no log time reaches when not given) and ``window_us``.
        """
        lo, _ = io.time_bounds(self.since, None)
        return {
            "since_us": -_NO_BOUND_US if lo is None else _us(lo),
            "as_of_us": _NO_BOUND_US if self.as_of is None else _us(self.as_of),
            "window_us": self.window_us,
        }

    def sources(
        self, logs_dir: str | Path, ts_us: pa.Array | pa.ChunkedArray
    ) -> dict[str, ParquetSource]:
        """The outcomes' and touches' part files the engine reads: every outcome
        day from ``since`` on (an outcome may be stamped any time), and the touch
        days from the earliest decision to the latest one's window end.

        Parameters
        ----------
        logs_dir : path
        ts_us : pyarrow array of int64, shape (n,)
            The decisions' times (microseconds since the epoch).

        Returns
        -------
        dict
            ``outcomes_log`` and ``touches_log``, the Parquet sources
            :data:`EXTRAS_SQL` reads.
        """
        lo, _ = io.time_bounds(self.since, None)
        touches: list[Path] = []
        if len(ts_us):
            first = _at(int(pc.min(ts_us).as_py()))
            last = _at(int(pc.max(ts_us).as_py()) + self.window_us)
            touches = io.part_files_between(
                logs_dir, "touches", first if lo is None else max(lo, first), last + _ONE_US
            )
        return {
            "outcomes_log": ParquetSource(
                tuple(io.part_files_between(logs_dir, "outcomes", lo, None)), OUTCOMES
            ),
            "touches_log": ParquetSource(tuple(touches), TOUCHES),
        }


_ONE_US = timedelta(microseconds=1)


def _us(ts: datetime) -> int:
    return (ts.astimezone(UTC) - _EPOCH) // _ONE_US


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


#: Parameters of :data:`EXTRAS_SQL` when the lines carry no extras (empty inputs).
_NO_EXTRAS: dict[str, int | float] = {
    "since_us": -_NO_BOUND_US,
    "as_of_us": _NO_BOUND_US,
    "window_us": 0,
}


@dataclass(frozen=True)
class DsjsonLineFunction:
    """The DSJSON lines of joined decisions, one string per decision, as a
    vectorized function.

    Picklable (the catalogs travel with it), so a Spark executor writes the
    lines as the driver would.

    Parameters
    ----------
    catalogs : mapping of catalog_version -> Catalog
        As for :func:`nba.logs.dsjson.iter_dsjson`.
    """

    catalogs: Mapping[str, Catalog] = field(default_factory=dict)

    def __call__(
        self,
        event_id: Column,
        ts_us: Column,
        hcp_id: Column,
        requester: Column,
        channels_requested: Column,
        context: Column,
        catalog_version: Column,
        action_ids: Column,
        probabilities: Column,
        chosen_index: Column,
        chosen_action_id: Column,
        propensity: Column,
        policy: Column,
        model_version: Column,
        activated: Column,
        slate: Column,
        reward: Column,
        reward_is_default: Column,
        reward_definition: Column,
        others: Column,
        pulls: Column,
    ) -> pa.Array:
        """The lines of n joined decisions (the arguments name the SQL's columns).

        Parameters
        ----------
        event_id, ts_us, ..., reward_definition : pyarrow.Array
            Each of shape (n,): the joined row's columns (``ts`` as
            microseconds since the epoch), ``context`` null when the decision
            is not in the log's part files.
        others : pyarrow.ListArray of :data:`OTHER_TYPE`
            Shape (n,): each row's outcomes about other suggestions, in order
            (null: none).
        pulls : pyarrow.ListArray of :data:`PULL_TYPE`
            Shape (n,): each row's window pulls, in order (null: none).

        Returns
        -------
        pyarrow.StringArray
            Shape (n,): each decision's DSJSON line, without the newline.

        Raises
        ------
        DsjsonError
            Naming the event id of a decision that cannot be written.
        """
        given = dict(
            zip(
                _ARG_NAMES,
                (
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
                ),
                strict=True,
            )
        )
        n = len(event_id)
        if n == 0:
            return pa.array([], pa.string())
        cols: list[pa.Array] = []
        for f in JOINED:
            if f.name == "ts":
                cols.append(_arrow(given["ts_us"]).cast(pa.int64()).cast(_TS))
            elif f.name in given:
                cols.append(_arrow(given[f.name]).cast(f.type))
            else:  # columns no line reads (suppressed, counts, ...)
                cols.append(pa.nulls(n, f.type))
        table = pa.Table.from_arrays(cols, names=JOINED.names)
        event = first_missing_context(table)
        if event is not None:
            raise DsjsonError(
                f"event {event!r} was joined but is not a decision of the log's part files "
                "(was the log changed while exporting?)"
            )
        pieces: list[pa.Array] = []
        try:
            for lines in _iter_lines(table, self.catalogs, 4096, None, None, True):
                pieces.append(pa.array([lines], pa.string()) if isinstance(lines, str) else lines)
            events = table.column("event_id").combine_chunks()
            extras = pc.binary_join_element_wise(
                other_members(_arrow(others), events), pull_members(_arrow(pulls), events), ""
            )
        except DsjsonError:
            raise
        except Exception as exc:  # the writer's own errors name the event; others: the batch
            raise DsjsonError(
                f"events {table.column('event_id')[0].as_py()!r}..: {type(exc).__name__}: {exc}"
            ) from exc
        made = pa.concat_arrays([p.cast(pa.string()) for p in pieces])
        return _splice(made, extras)

    def as_engine_function(self) -> ArrowFunction:
        """This function with its DuckDB argument and result types (for
        :meth:`nba.logs.engine.SqlEngine.write_lines`)."""
        return ArrowFunction(self, tuple(t for _, t in _ARGS), "VARCHAR")


def _splice(lines: pa.Array, extras: pa.Array) -> pa.Array:
    """``lines`` with ``extras`` inserted before their last two characters (the
    close of the ``nba`` block and of the line), where the in-process writer
    writes ``other_action_outcomes`` and ``pulls``: JSON objects compose, so the
    bytes are those of writing the whole object.

    Parameters
    ----------
    lines, extras : pyarrow.StringArray
        Shape (n,); ``extras`` null or empty where a line has none.

    Returns
    -------
    pyarrow.StringArray
        Shape (n,).
    """
    if not pc.all(pc.ends_with(lines, "}}")).as_py():
        raise DsjsonError("a DSJSON line does not end with its nba block")
    body = pc.utf8_slice_codeunits(lines, 0, -2)
    return pc.binary_join_element_wise(body, pc.fill_null(extras, ""), "}}", "")


def _items(lists: pa.Array, item_type: pa.DataType) -> tuple[pa.StructArray, np.ndarray]:
    """The items of a list column (a null list: none) and each list's length.

    Parameters
    ----------
    lists : pyarrow.ListArray, shape (n,)
    item_type : pyarrow.StructType
        The items' type (:data:`OTHER_TYPE` or :data:`PULL_TYPE`).

    Returns
    -------
    items : pyarrow.StructArray, shape (m,)
        The items in list order.
    counts : numpy.ndarray of int64, shape (n,)
        Each list's length, 0 for a null list.
    """
    typed = lists.cast(pa.list_(item_type))
    counts = pc.fill_null(pc.list_value_length(typed), 0).to_numpy().astype(np.int64)
    items = pc.list_flatten(typed)  # a null list's slots are skipped
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks()
    return items, counts


def _ts_texts(ts_us: pa.Array) -> pa.Array:
    """Each time as :func:`nba.logs.dsjson._timestamp` writes it, quoted.

    Parameters
    ----------
    ts_us : pyarrow.Int64Array, shape (m,)

    Returns
    -------
    pyarrow.StringArray, shape (m,)
    """
    us = ts_us.to_numpy(zero_copy_only=False).astype(np.int64)
    if len(us) and (us.min() < _YEAR_US[0] or us.max() > _YEAR_US[1]):
        return pa.array([f'"{_timestamp(_at(int(v)))}"' for v in us.tolist()], pa.string())
    stamps = pa.array(np.datetime_as_string(us.astype("datetime64[us]"), unit="us"), pa.string())
    return pc.binary_join_element_wise('"', stamps, 'Z"', "")


def _nullable_float_texts(values: pa.Array) -> pa.Array:
    """Each float as :func:`json.dumps` writes it, ``null`` for a null.

    Parameters
    ----------
    values : pyarrow.DoubleArray, shape (m,)

    Returns
    -------
    pyarrow.StringArray, shape (m,)
    """
    texts = _float_texts(pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False))
    return pc.if_else(values.is_null(), "null", texts)


def _str_list_texts(values: pa.Array) -> pa.Array:
    """Each list of strings as :func:`json.dumps` writes it (a null list: ``[]``).

    Parameters
    ----------
    values : pyarrow.ListArray of string, shape (m,)

    Returns
    -------
    pyarrow.StringArray, shape (m,)
    """
    counts = pc.fill_null(pc.list_value_length(values), 0).to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = pc.list_flatten(values)
    joined = pc.binary_join(_lists(offsets, _str_texts(flat)), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def _members(key: str, texts: pa.Array, counts: np.ndarray) -> pa.Array:
    """``,"<key>":[...]`` of each row's item ``texts`` (in order), ``""`` for a
    row without items.

    Parameters
    ----------
    key : str
    texts : pyarrow.StringArray, shape (m,)
        The items' JSON texts, the rows' items one after the other.
    counts : numpy.ndarray of int64, shape (n,)

    Returns
    -------
    pyarrow.StringArray, shape (n,)
    """
    offsets = np.concatenate([[0], np.cumsum(counts)])
    lists = pc.binary_join(_lists(offsets, texts), ",")
    member = pc.binary_join_element_wise(f',"{key}":[', lists, "]", "")
    return pc.if_else(pa.array(counts > 0), member, "")


def _refuse_nulls(
    items: pa.StructArray,
    fields: tuple[str, ...],
    counts: np.ndarray,
    events: pa.Array | None,
    table: str,
) -> None:
    """Refuse an item with a null in one of ``fields`` (the log's contract has
    none there; the in-process export refuses such a table,
    :func:`nba.logs.io.conform`).

    Parameters
    ----------
    items : pyarrow.StructArray, shape (m,)
    fields : tuple of str
    counts : numpy.ndarray of int64, shape (n,)
        Each row's number of items.
    events : pyarrow.StringArray, shape (n,), optional
        The rows' event ids, to name the row.
    table : str
        The log table the items come from.

    Raises
    ------
    DsjsonError
        Naming the event, the table and the column.
    """
    for name in fields:
        column = items.field(name)
        if column.null_count:
            item = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            row = int(np.searchsorted(np.cumsum(counts), item, side="right"))
            event = "?" if events is None else events[row].as_py()
            raise DsjsonError(
                f"event {event!r}: {table}: column '{name}' has a null (the contract allows none)"
            )


def other_members(others: pa.Array, events: pa.Array | None = None) -> pa.Array:
    """The ``nba.other_action_outcomes`` member of each line (``,"other_action_outcomes":[...]``),
    as the in-process writer writes it; ``""`` for a line without.

    Parameters
    ----------
    others : pyarrow.ListArray of :data:`OTHER_TYPE`, shape (n,)
        Each line's outcomes about other suggestions, in order (null: none).
    events : pyarrow.StringArray, shape (n,), optional
        The lines' event ids, to name a line in an error.

    Returns
    -------
    pyarrow.StringArray, shape (n,)

    Raises
    ------
    DsjsonError
        On an outcome with a null the log's contract does not allow, naming
        its line's event.
    """
    items, counts = _items(others, OTHER_TYPE)
    if not len(items):
        return pa.array([""] * len(counts), pa.string())
    _refuse_nulls(
        items, ("ts_us", "type", "value", "source", "source_id"), counts, events, "outcomes"
    )
    f = items.field
    texts = pc.binary_join_element_wise(
        '{"action_id":',
        _str_texts(f("action_id")),
        ',"type":',
        _str_texts(f("type")),
        ',"value":',
        _float_texts(f("value").to_numpy(zero_copy_only=False)),
        ',"ts":',
        _ts_texts(f("ts_us")),
        ',"source":',
        _str_texts(f("source")),
        ',"source_id":',
        _str_texts(f("source_id")),
        "}",
        "",
    )
    return _members(OTHER_OUTCOMES_KEY, texts, counts)


def pull_members(pulls: pa.Array, events: pa.Array | None = None) -> pa.Array:
    """The ``nba.pulls`` member of each line (``,"pulls":[...]``), as the
    in-process writer writes it; ``""`` for a line without.

    Parameters
    ----------
    pulls : pyarrow.ListArray of :data:`PULL_TYPE`, shape (n,)
        Each line's window pulls, in order (null: none).
    events : pyarrow.StringArray, shape (n,), optional
        The lines' event ids, to name a line in an error.

    Returns
    -------
    pyarrow.StringArray, shape (n,)

    Raises
    ------
    DsjsonError
        On a touch with a null the log's contract does not allow, naming its
        line's event.
    """
    items, counts = _items(pulls, PULL_TYPE)
    if not len(items):
        return pa.array([""] * len(counts), pa.string())
    _refuse_nulls(items, ("ts_us", "channel", "content_id", "origin"), counts, events, "touches")
    return _members(PULLS_KEY, pull_texts(items), counts)


def pull_texts(items: pa.StructArray) -> pa.Array:
    """The JSON object of each touch of ``nba.pulls``, as the in-process writer
    writes it (:func:`nba.logs.dsjson._pull_json`).

    Parameters
    ----------
    items : pyarrow.StructArray of :data:`PULL_TYPE` (or its fields but ``k``), shape (m,)
        The touches, ``ts_us`` in microseconds since the epoch; no null where
        the log's contract allows none.

    Returns
    -------
    pyarrow.StringArray, shape (m,)
    """
    f = items.field
    return pc.binary_join_element_wise(
        '{"ts":',
        _ts_texts(f("ts_us")),
        ',"channel":',
        _str_texts(f("channel")),
        ',"content_id":',
        _str_texts(f("content_id")),
        ',"origin":',
        _str_texts(f("origin")),
        ',"kind":',
        _str_texts(f("kind")),
        ',"topics":',
        _str_list_texts(f("topics")),
        ',"content_ids":',
        _str_list_texts(f("content_ids")),
        ',"dwell_s":',
        _nullable_float_texts(f("dwell_s")),
        "}",
        "",
    )


def dsjson_rows(joined: pa.Table) -> pa.Table:
    """The rows :data:`DSJSON_SQL` reads as ``dsjson_rows``.

    Parameters
    ----------
    joined : pyarrow.Table
        The joined rows (:data:`nba.logs.schema.JOINED`), shape (n rows,).

    Returns
    -------
    pyarrow.Table
        n rows of :data:`ROWS_SCHEMA`, ``pos`` 0..n-1.
    """
    n = joined.num_rows
    cols: list[pa.Array | pa.ChunkedArray] = []
    for f in ROWS_SCHEMA:
        if f.name == "pos":
            cols.append(pa.array(range(n), pa.int64()))
        elif f.name == "ts_us":
            cols.append(joined.column("ts").cast(_TS).cast(pa.int64()))
        else:
            cols.append(joined.column(f.name).cast(f.type))
    return pa.Table.from_arrays(cols, schema=ROWS_SCHEMA)


def lines_on_engine(engine: SqlEngine) -> bool:
    """Whether ``nba logs export --format dsjson`` has ``engine`` make the lines.

    Spark: yes (its executors featurize, the driver only concatenates part
    files). DuckDB: no; it runs in this process either way, and the function
    path adds the contexts' second read and the Arrow round trips to the
    in-process writer's work (``bench/export.py`` measures both).
    """
    return engine.name != "duckdb"


def write_dsjson_parts(
    engine: SqlEngine,
    logs_dir: str | Path,
    joined: pa.Table,
    out: str | Path,
    catalogs: Mapping[str, Catalog] | None = None,
    extras: LineExtras | None = None,
) -> list[Path]:
    """Have ``engine`` write the DSJSON lines of ``joined`` as part files.

    Parameters
    ----------
    engine : SqlEngine
        DuckDB (one part file, written in this process) or Spark (its
        executors write ``part-*`` files).
    logs_dir : path
        The log directory; the engine reads the decisions' contexts from its
        part files, and with ``extras`` its outcomes and touches.
    joined : pyarrow.Table
        The joined rows (:data:`nba.logs.schema.JOINED`), shape (n rows,);
        their event ids must be decisions of the log.
    out : path
        A directory, created (or emptied of part files) here.
    catalogs : mapping of catalog_version -> Catalog, optional
        As for :func:`nba.logs.dsjson.export_dsjson`.
    extras : LineExtras, optional
        Where the lines' outcomes about other suggestions and window pulls
        come from; without it no line carries any.

    Returns
    -------
    list of Path
        The part files, in order: their concatenation is the in-process
        export's file.

    Raises
    ------
    DsjsonError
        When a row cannot be written, naming its event id.
    """
    missing = [f.name for f in JOINED if f.name not in joined.column_names]
    if missing:
        raise DsjsonError(f"joined table: missing column(s) {', '.join(missing)}")
    rows = dsjson_rows(joined)
    ts_us = rows.column("ts_us")
    files = tuple(io.part_files_spanning(logs_dir, "decisions", ts_us))
    if extras is None:
        sources = {
            "outcomes_log": ParquetSource((), OUTCOMES),
            "touches_log": ParquetSource((), TOUCHES),
        }
        params = _NO_EXTRAS
    else:
        sources, params = extras.sources(logs_dir, ts_us), extras.params()
    with engine.function_errors(DsjsonError, "writing DSJSON"):
        return engine.write_lines(
            {"decisions_log": ParquetSource(files, DECISIONS), **sources},
            {"dsjson_rows": rows},
            (DSJSON_SQL, params),
            {DSJSON_FUNCTION: DsjsonLineFunction(dict(catalogs or {})).as_engine_function()},
            out,
        )


def export_dsjson_on_engine(
    engine: SqlEngine,
    logs_dir: str | Path,
    joined: pa.Table,
    path: str | Path,
    catalogs: Mapping[str, Catalog] | None = None,
    extras: LineExtras | None = None,
    progress: bool = False,
) -> int:
    """Write ``joined`` as a DSJSON file whose lines ``engine`` made.

    The same file as :func:`nba.logs.dsjson.export_dsjson` with the same
    catalogs and the outcomes and pulls ``extras`` describes
    (:class:`LineExtras`), byte for byte. The engine writes part files into a
    hidden directory beside ``path`` (``.<name>.parts``); they are
    concatenated in order into a temporary file (``.<name>.tmp``) renamed to
    ``path`` once every line is there. Both are removed however the call ends;
    on an error ``path`` is left as it was.

    Parameters
    ----------
    engine : SqlEngine
    logs_dir : path
        The log directory the rows were joined from.
    joined : pyarrow.Table
        The joined rows, shape (n rows,).
    path : path
        The DSJSON file.
    catalogs : mapping of catalog_version -> Catalog, optional
    extras : LineExtras, optional
        As for :func:`write_dsjson_parts`.
    progress : bool, default False
        A progress bar (on stderr) over the part files being concatenated.

    Returns
    -------
    int
        Lines written (n, counted in the file).

    Raises
    ------
    DsjsonError
        When a row cannot be written (naming its event id), or when the part
        files do not hold one line per row.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    parts_dir = out.with_name(f".{out.name}.parts")
    n = 0
    try:
        parts = write_dsjson_parts(engine, logs_dir, joined, parts_dir, catalogs, extras)
        with (
            open(tmp, "wb") as fh,
            tqdm(
                total=len(parts),
                disable=not progress,
                file=sys.stderr,
                unit="part",
                desc=f"dsjson ({engine.describe()})",
            ) as bar,
        ):
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 22):
                        n += chunk.count(b"\n")
                        fh.write(chunk)
                bar.update(1)
        if n != joined.num_rows:
            raise DsjsonError(
                f"{engine.describe()} wrote {n} DSJSON lines for {joined.num_rows} decisions; "
                f"{out} not written"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
    return n
