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

What stays on the driver: the join itself (run by the engine, its result
collected), and the two per-decision lists that come from other tables, the
outcomes about other suggestions (``nba.other_action_outcomes``) and the
window pulls (``nba.pulls``), computed as in the in-process export and shipped
as one text column (:func:`line_extras`), which the function splices into each
line's ``nba`` block where the in-process writer puts them. The lines are
therefore the in-process export's bytes, made by the same code.

A row the writer refuses (a context the featurizer cannot read, a decision no
longer in the log's part files) stops the statement with :class:`DsjsonError`
naming its event id, from a Spark executor as from DuckDB; the ``--out`` file
is then left as it was and the part files are removed.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from nba.catalog import Catalog
from nba.logs import io
from nba.logs.dsjson import (
    OTHER_OUTCOMES_KEY,
    PULLS_KEY,
    DsjsonError,
    _iter_lines,
    _json,
    _other_entries,
    _other_texts,
    _pull_text,
    other_action_outcomes,
)
from nba.logs.engine import ArrowFunction, ParquetSource, SqlEngine
from nba.logs.schema import DECISIONS, JOINED

#: The name the SQL calls the line-writing function by.
DSJSON_FUNCTION = "nba_dsjson_line"

#: The function's arguments: (column, DuckDB type), in order. ``ts`` travels as
#: microseconds since the epoch (``ts_us``); ``extra`` is :func:`line_extras`.
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
    ("extra", "VARCHAR"),
)
_ARG_NAMES = tuple(name for name, _ in _ARGS)

#: The rows the driver gives the engine: the joined table's columns the lines
#: need, except ``context`` (read by the engine), with the row's position.
ROWS_SCHEMA = pa.schema(
    [
        pa.field("pos", pa.int64()),
        *[
            pa.field("ts_us", pa.int64())
            if name == "ts_us"
            else pa.field("extra", pa.string())
            if name == "extra"
            else JOINED.field(name).with_nullable(True)
            for name in _ARG_NAMES
            if name != "context"
        ],
    ]
)

_ARG_LIST = ", ".join(f"s.{name}" for name in _ARG_NAMES)
_INNER = ", ".join("d.context" if n == "context" else f"r.{n}" for n in _ARG_NAMES)

#: The one statement: the joined rows with their contexts (read by the engine
#: from the decisions' part files), written as DSJSON lines by
#: :data:`DSJSON_FUNCTION`, in the joined table's order (``pos``). The function
#: is applied over the sorted rows, not sorted with them: Spark's ``ORDER BY``
#: samples its input to choose the sort's ranges, and a function in the sorted
#: projection would run in that sampling job too (each line made twice). A
#: projection keeps its input's order on both engines.
DSJSON_SQL = f"""
SELECT {DSJSON_FUNCTION}({_ARG_LIST}) AS line
FROM (
    SELECT {_INNER}
    FROM dsjson_rows AS r
    LEFT JOIN decisions_log AS d ON d.event_id = r.event_id
    ORDER BY r.pos
) AS s
"""

#: An argument of :class:`DsjsonLineFunction`: DuckDB passes chunked arrays, Spark arrays.
Column: TypeAlias = pa.Array | pa.ChunkedArray

_TS = JOINED.field("ts").type


def _arrow(column: Column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


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
        extra: Column,
    ) -> pa.Array:
        """The lines of n joined decisions (the arguments name the SQL's columns).

        Parameters
        ----------
        event_id, ts_us, ..., reward_definition : pyarrow.Array
            Each of shape (n,): the joined row's columns (``ts`` as
            microseconds since the epoch), ``context`` null when the decision
            is not in the log's part files.
        extra : pyarrow.Array
            Shape (n,): the row's :func:`line_extras` text.

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
                    extra,
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
        lost = table.column("context").is_null()
        if pc.any(lost).as_py():
            event = table.column("event_id").filter(lost)[0].as_py()
            raise DsjsonError(
                f"event {event!r} was joined but is not a decision of the log's part files "
                "(was the log changed while exporting?)"
            )
        pieces: list[pa.Array] = []
        try:
            for lines in _iter_lines(table, self.catalogs, 4096, None, None, True):
                pieces.append(pa.array([lines], pa.string()) if isinstance(lines, str) else lines)
        except DsjsonError:
            raise
        except Exception as exc:  # the writer's own errors name the event; others: the batch
            raise DsjsonError(
                f"events {table.column('event_id')[0].as_py()!r}..: {type(exc).__name__}: {exc}"
            ) from exc
        made = pa.concat_arrays([p.cast(pa.string()) for p in pieces])
        return _splice(made, _arrow(given["extra"]).cast(pa.string()))

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


def line_extras(
    joined: pa.Table,
    outcomes: pa.Table | None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None,
) -> pa.Array:
    """The end of each line's ``nba`` block that comes from other tables: its
    ``,"other_action_outcomes":[...]`` and ``,"pulls":[...]`` members, as the
    in-process export writes them (empty when a line has neither).

    Parameters
    ----------
    joined : pyarrow.Table
        The joined rows (:data:`nba.logs.schema.JOINED`), shape (n rows,).
    outcomes : pyarrow.Table, optional
        The log's outcomes, as for :func:`nba.logs.dsjson.iter_dsjson`.
    pulls : mapping of event_id -> touch rows, optional
        As for :func:`nba.logs.dsjson.iter_dsjson`.

    Returns
    -------
    pyarrow.StringArray
        Shape (n,), no nulls.
    """
    n = joined.num_rows
    events = joined.column("event_id").to_pylist()
    other = _other_texts(outcomes, joined)
    if other is None:  # what the column-wise writer does not cover: row by row
        rows = {} if outcomes is None else other_action_outcomes(outcomes, joined)
        other = pa.array(
            [
                f',"{OTHER_OUTCOMES_KEY}":{_json(_other_entries(rows[e]))}' if rows.get(e) else ""
                for e in events
            ],
            pa.string(),
        )
    window = pulls or {}
    texts: dict[int, tuple[Mapping[str, Any], str]] = {}
    pulled = pa.array(
        [
            f',"{PULLS_KEY}":[{",".join(_pull_text(t, texts) for t in window[e])}]'
            if window.get(e)
            else ""
            for e in events
        ]
        if window
        else [""] * n,
        pa.string(),
    )
    return pc.binary_join_element_wise(pc.fill_null(other, ""), pulled, "")


def dsjson_rows(joined: pa.Table, extras: pa.Array) -> pa.Table:
    """The rows :data:`DSJSON_SQL` reads as ``dsjson_rows``.

    Parameters
    ----------
    joined : pyarrow.Table
        The joined rows (:data:`nba.logs.schema.JOINED`), shape (n rows,).
    extras : pyarrow.StringArray
        Shape (n,): :func:`line_extras`.

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
        elif f.name == "extra":
            cols.append(extras)
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
    outcomes: pa.Table | None = None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[Path]:
    """Have ``engine`` write the DSJSON lines of ``joined`` as part files.

    Parameters
    ----------
    engine : SqlEngine
        DuckDB (one part file, written in this process) or Spark (its
        executors write ``part-*`` files).
    logs_dir : path
        The log directory; the engine reads the decisions' contexts from its
        part files.
    joined : pyarrow.Table
        The joined rows (:data:`nba.logs.schema.JOINED`), shape (n rows,);
        their event ids must be decisions of the log.
    out : path
        A directory, created (or emptied of part files) here.
    catalogs, outcomes, pulls
        As for :func:`nba.logs.dsjson.export_dsjson`.

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
    rows = dsjson_rows(joined, line_extras(joined, outcomes, pulls))
    files = tuple(io.part_files_spanning(logs_dir, "decisions", rows.column("ts_us")))
    with engine.function_errors(DsjsonError, "writing DSJSON"):
        return engine.write_lines(
            {"decisions_log": ParquetSource(files, DECISIONS)},
            {"dsjson_rows": rows},
            (DSJSON_SQL, {}),
            {DSJSON_FUNCTION: DsjsonLineFunction(dict(catalogs or {})).as_engine_function()},
            out,
        )


def export_dsjson_on_engine(
    engine: SqlEngine,
    logs_dir: str | Path,
    joined: pa.Table,
    path: str | Path,
    catalogs: Mapping[str, Catalog] | None = None,
    outcomes: pa.Table | None = None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    progress: bool = False,
) -> int:
    """Write ``joined`` as a DSJSON file whose lines ``engine`` made.

    The same file as :func:`nba.logs.dsjson.export_dsjson` with the same
    arguments, byte for byte. The engine writes part files into a hidden
    directory beside ``path`` (``.<name>.parts``); they are concatenated in
    order into a temporary file (``.<name>.tmp``) renamed to ``path`` once
    every line is there. Both are removed however the call ends; on an error
    ``path`` is left as it was.

    Parameters
    ----------
    engine : SqlEngine
    logs_dir : path
        The log directory the rows were joined from.
    joined : pyarrow.Table
        The joined rows, shape (n rows,).
    path : path
        The DSJSON file.
    catalogs, outcomes, pulls
        As for :func:`nba.logs.dsjson.export_dsjson`.
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
        parts = write_dsjson_parts(engine, logs_dir, joined, parts_dir, catalogs, outcomes, pulls)
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
