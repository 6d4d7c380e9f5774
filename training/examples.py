"""VW training examples written by the engine: the featurizer as a function the SQL calls.

The featurizer (:class:`nba.features.Featurizer`, shared with serving) and the
contextual-bandit labels (:func:`nba.policies.vw.labelled_text_buffer`,
:func:`training.slates.labelled_slot_text` for slates) are registered in the
engine as one vectorized (Arrow) function, :data:`EXAMPLE_FUNCTION`, and one
SQL statement (:data:`EXAMPLES_SQL`, DuckDB dialect, transpiled for Spark like
the join) calls it over the training rows: the join's rewards (an Arrow table
from the driver, no contexts) joined to the contexts and action lists the
engine reads from the decisions' Parquet files. Each result row is the VW text
of one decision (every slot's example for a slate), and the engine writes the
rows, in the order the driver's path writes them (time, then ``event_id``),
as text part files: Spark on its executors (``DataFrame.write.text``),
DuckDB in this process. VW then learns from those files with its own parser.

The lines are the bytes the driver's path (featurize and label in chunks)
writes, because they are made by the same code: no second copy of the
featurizer in SQL.

A row the featurizer refuses stops the statement with :class:`ExampleError`
naming its ``event_id``, from a Spark executor as from DuckDB.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nba.features import Featurizer
from nba.logs import io
from nba.logs.engine import ArrowFunction, ParquetSource, SqlEngine, first_missing_context
from nba.logs.io import LogError
from nba.logs.schema import DECISIONS, JOINED
from nba.policies.vw import labelled_text_buffer
from training.slates import has_slates, labelled_slot_text

#: The name the SQL calls the featurizing function by.
EXAMPLE_FUNCTION = "nba_vw_example"

#: The training rows' columns (an Arrow table from the driver), with their types.
ROWS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("ts_us", pa.int64()),
        JOINED.field("chosen_index"),
        JOINED.field("reward"),
        JOINED.field("propensity"),
        JOINED.field("slate"),
        JOINED.field("slot_rewards"),
    ]
)

#: The one statement: the training rows joined to their contexts (read by the
#: engine from the decisions' part files), featurized and labelled by
#: :data:`EXAMPLE_FUNCTION`, in the driver's order (time, then event id).
#: The function is applied over the sorted rows, not sorted with them: Spark's
#: ``ORDER BY`` samples its input to choose the sort's ranges, and a function in
#: the sorted projection would run in that sampling job too (each decision
#: featurized twice). A projection keeps its input's order on both engines.
EXAMPLES_SQL = f"""
SELECT {EXAMPLE_FUNCTION}(s.context, s.action_ids, s.chosen_index, s.reward,
                          s.propensity, s.event_id, s.slate, s.slot_rewards) AS line
FROM (
    SELECT d.context, d.action_ids, r.chosen_index, r.reward, r.propensity,
           r.event_id, r.slate, r.slot_rewards
    FROM train_rows AS r
    LEFT JOIN decisions_log AS d ON d.event_id = r.event_id AND d.activated
    ORDER BY r.ts_us, r.event_id
) AS s
"""

#: DuckDB types of the function's arguments, in order.
_ARG_TYPES = (
    "VARCHAR",
    "VARCHAR[]",
    "INTEGER",
    "DOUBLE",
    "DOUBLE",
    "VARCHAR",
    "STRUCT(action_id VARCHAR, probability DOUBLE)[]",
    "DOUBLE[]",
)
_NAMES = (
    "context",
    "action_ids",
    "chosen_index",
    "reward",
    "propensity",
    "event_id",
    "slate",
    "slot_rewards",
)
_TYPES = {
    "context": pa.string(),
    "action_ids": pa.list_(pa.string()),
    **{f.name: f.type for f in ROWS_SCHEMA},
}


#: An argument of :class:`ExampleFunction`: DuckDB passes chunked arrays, Spark arrays.
Column: TypeAlias = pa.Array | pa.ChunkedArray


class ExampleError(LogError):
    """A decision could not be made into a VW example (the message names its event)."""


@dataclass(frozen=True)
class ExampleFunction:
    """The VW text of decisions, one string per decision, as a vectorized function.

    Picklable (the featurizer holds the catalog and its configuration), so a
    Spark executor runs it as the driver would.

    Parameters
    ----------
    featurizer : Featurizer
        The featurizer of the policy being trained.
    """

    featurizer: Featurizer

    def __call__(
        self,
        context: Column,
        action_ids: Column,
        chosen_index: Column,
        reward: Column,
        propensity: Column,
        event_id: Column,
        slate: Column,
        slot_rewards: Column,
    ) -> pa.Array:
        """The examples of n decisions (the arguments name the SQL's columns).

        Parameters
        ----------
        context, action_ids, chosen_index, reward, propensity, event_id : pyarrow.Array
            Each of shape (n,): the logged decision and the join's reward.
        slate, slot_rewards : pyarrow.Array
            Shape (n,), null for a decision without a slate.

        Returns
        -------
        pyarrow.StringArray
            Shape (n,): each decision's labelled VW text (its slots' examples
            for a slate), without the final newline (the writer adds it).

        Raises
        ------
        ExampleError
            Naming the event id of a decision that cannot be featurized.
        """
        columns = (
            context,
            action_ids,
            chosen_index,
            reward,
            propensity,
            event_id,
            slate,
            slot_rewards,
        )
        table = pa.table(
            [_arrow(c).cast(_TYPES[name]) for name, c in zip(_NAMES, columns, strict=True)],
            names=list(_NAMES),
        )
        if table.num_rows == 0:
            return pa.array([], pa.string())
        event = first_missing_context(table)
        if event is not None:
            raise ExampleError(
                f"event {event!r} was joined but is not an activated decision of the log's "
                "part files (was the log changed while training?)"
            )
        try:
            batch = self.featurizer.featurize_table(table)
            if has_slates(table):
                text = labelled_slot_text(table, batch)
                per_row = np.where(
                    table.column("slate").is_null().to_numpy(zero_copy_only=False),
                    1,
                    pc.fill_null(pc.list_value_length(table.column("slate")), 1).to_numpy(
                        zero_copy_only=False
                    ),
                ).astype(np.int64)
            else:
                text = labelled_text_buffer(
                    batch,
                    table.column("chosen_index").to_numpy(),
                    table.column("reward").to_numpy(),
                    table.column("propensity").to_numpy(),
                    table.column("event_id").to_pylist(),
                ).to_pybytes()
                per_row = np.ones(table.num_rows, dtype=np.int64)
        except Exception as exc:  # e.g. a context the featurizer refuses: its message
            raise ExampleError(str(exc)) from exc  # names the event
        examples = text.split(b"\n\n")
        if len(examples) != int(per_row.sum()) + 1 or examples[-1]:
            raise ExampleError(
                f"events {table.column('event_id')[0].as_py()!r}..: the VW text does not "
                "split into one example per decision (an empty line inside an example)"
            )
        bounds = np.zeros(per_row.size + 1, dtype=np.int64)
        np.cumsum(per_row, out=bounds[1:])
        return pa.array(
            [
                (b"\n\n".join(examples[a:b]) + b"\n").decode("utf-8")
                for a, b in itertools.pairwise(bounds.tolist())
            ],
            pa.string(),
        )

    def as_engine_function(self) -> ArrowFunction:
        """This function with its DuckDB argument and result types (for
        :meth:`nba.logs.engine.SqlEngine.write_lines`)."""
        return ArrowFunction(self, _ARG_TYPES, "VARCHAR")


def _arrow(column: Column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def example_rows(joined: pa.Table) -> pa.Table:
    """The training rows of ``joined`` as :func:`write_examples` takes them.

    Parameters
    ----------
    joined : pyarrow.Table
        n joined rows (:data:`nba.logs.schema.JOINED` columns, at least
        ``event_id``, ``ts``, ``chosen_index``, ``reward``, ``propensity``).

    Returns
    -------
    pyarrow.Table
        n rows of :data:`ROWS_SCHEMA`: ``ts`` as ``ts_us`` (microseconds since
        the epoch), null ``slate`` / ``slot_rewards`` when ``joined`` has none.
    """
    ts = joined.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    cols = []
    for field in ROWS_SCHEMA:
        if field.name == "ts_us":
            cols.append(ts)
        elif field.name in joined.column_names:
            cols.append(joined.column(field.name).cast(field.type))
        else:
            cols.append(pa.chunked_array([pa.nulls(joined.num_rows, field.type)]))
    return pa.Table.from_arrays(cols, schema=ROWS_SCHEMA)


def write_examples(
    engine: SqlEngine,
    logs_dir: str | Path,
    rows: pa.Table,
    featurizer: Featurizer,
    out: str | Path,
) -> list[Path]:
    """Have ``engine`` featurize and label ``rows`` and write their VW text as part files.

    Parameters
    ----------
    engine : SqlEngine
        DuckDB (writes one part file in this process) or Spark (its executors
        featurize and write ``part-*`` files).
    logs_dir : path
        The log directory; the engine reads the contexts and action lists of
        the activated decisions from its part files.
    rows : pyarrow.Table
        The training rows, n of them, with the columns of :data:`ROWS_SCHEMA`
        (rewards as the join gave them). Their event ids must be activated
        decisions of the log, each once.
    featurizer : Featurizer
    out : path
        A directory, created (or emptied of part files) here.

    Returns
    -------
    list of Path
        The part files, in order: their concatenation is the VW example text
        of the n decisions in time, then ``event_id``, order.

    Raises
    ------
    ExampleError
        When a decision cannot be featurized or is not in the log's part
        files, naming its event id.
    """
    missing = [c for c in ROWS_SCHEMA.names if c not in rows.column_names]
    if missing:
        raise ExampleError(f"write_examples: rows lack column {missing[0]!r}")
    rows = rows.select(ROWS_SCHEMA.names).cast(ROWS_SCHEMA)
    files = tuple(io.part_files_spanning(logs_dir, "decisions", rows.column("ts_us")))
    with engine.function_errors(ExampleError, "featurizing"):
        return engine.write_lines(
            {"decisions_log": ParquetSource(files, DECISIONS)},
            {"train_rows": rows},
            (EXAMPLES_SQL, {}),
            {EXAMPLE_FUNCTION: ExampleFunction(featurizer).as_engine_function()},
            out,
        )
