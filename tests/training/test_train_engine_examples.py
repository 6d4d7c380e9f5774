"""``nba train``'s VW examples made by the engine: the featurizer registered as an
Arrow function, called by one SQL statement (:data:`training.examples.EXAMPLES_SQL`),
written as part files (by Spark's executors, or by DuckDB here), which VW learns.

The part files must hold the bytes the driver's path writes (featurize and label
in chunks in this process), so VW learns the same model; a context the
featurizer refuses stops the statement with an error naming its event id, from a
Spark executor as from DuckDB.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from nba.catalog import Catalog
from nba.features import Featurizer
from nba.logs import io
from nba.logs.engine import ArrowFunction, DuckDBEngine, ParquetSource, SparkEngine, SqlEngine
from nba.logs.schema import DECISIONS
from nba.reward import RewardDefinition
from nba_cli.main import main as nba
from training.examples import (
    EXAMPLE_FUNCTION,
    EXAMPLES_SQL,
    ROWS_SCHEMA,
    ExampleError,
    ExampleFunction,
    write_examples,
)
from training.holdout import (
    HOLDOUT_FUNCTION,
    HOLDOUT_ROWS,
    HOLDOUT_SQL,
    HoldoutError,
    HoldoutFunction,
    holdout_probabilities,
)
from training.train import train


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated log with 3-slot slates (every slot is an example of its own)."""
    out = tmp_path_factory.mktemp("sim") / "logs"
    args = ["simulate", "--hcps", "80", "--days", "12", "--slate-size", "3", "--seed", "4"]
    res = CliRunner().invoke(nba, [*args, "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def bad_log(sim_log: Path, tmp_path: Path) -> tuple[Path, pa.Table, str]:
    """The first six activated decisions of ``sim_log``, the fourth with a context the
    featurizer refuses; their training rows as :func:`write_examples` takes them; and
    that decision's event id."""
    root = tmp_path / "bad"
    dec = io.read(sim_log, "decisions")
    dec = dec.filter(dec.column("activated")).slice(0, 6)
    rows = dec.to_pylist()
    rows[3]["context"] = '{"hcp_id": 7}'
    dec = pa.Table.from_pylist(rows, schema=DECISIONS)
    io.append(root, "decisions", dec)
    n = dec.num_rows
    train_rows = pa.table(
        {
            "event_id": dec.column("event_id"),
            "ts_us": dec.column("ts").cast(pa.int64()),
            "chosen_index": dec.column("chosen_index"),
            "reward": pa.array([0.5] * n, pa.float64()),
            "propensity": dec.column("propensity"),
            "slate": pa.nulls(n, ROWS_SCHEMA.field("slate").type),
            "slot_rewards": pa.nulls(n, ROWS_SCHEMA.field("slot_rewards").type),
        },
        schema=ROWS_SCHEMA,
    )
    return root, train_rows, str(rows[3]["event_id"])


def _check_engine_examples(
    engine: SqlEngine, sim_log: Path, bad_log: tuple[Path, pa.Table, str], tmp_path: Path
) -> list[Path]:
    """Train on ``sim_log`` with the driver's path (DuckDB) and with ``engine``
    featurizing; same bytes, same model. A bad context names its event. Returns
    the engine's part files."""
    rd = RewardDefinition.default()
    driver = train(
        sim_log,
        rd,
        seed=3,
        work_dir=tmp_path / "driver",
        featurize_on_engine=False,
        holdout_days=2,
    )
    on = train(
        sim_log,
        rd,
        seed=3,
        work_dir=tmp_path / "engine",
        engine=engine,
        featurize_on_engine=True,
        holdout_days=2,
    )
    text = (tmp_path / "driver" / "train.vw.txt").read_bytes()
    parts = sorted((tmp_path / "engine" / "examples").glob("part-*"))
    assert parts, "the engine wrote no part file"
    # VW learned the engine's part files: their bytes, in order, are the driver's
    assert b"".join(p.read_bytes() for p in parts) == text
    assert (tmp_path / "engine" / "train.vw.txt").read_bytes() == text
    assert b"|z slot=2" in text  # slates: every slot an example of its own
    assert on.n_examples == driver.n_examples == text.count(b"\n\n") > 300
    assert on.policy.model_bytes() == driver.policy.model_bytes()
    # the held-out slice scored by the engine (featurized and predicted where the
    # function ran): the same probabilities, so the same report, to the bit
    assert on.n_holdout == driver.n_holdout > 20
    assert on.holdout is not None and on.holdout == driver.holdout
    assert sorted((tmp_path / "engine" / "holdout").glob("part-*"))
    # a context the featurizer refuses: the error names the decision
    root, rows, bad_event = bad_log
    featurizer = Featurizer(Catalog.default())
    # (written apart from the log: Spark's overwrite empties its output directory)
    with pytest.raises(ExampleError, match=f"event '{re.escape(bad_event)}'") as err:
        write_examples(engine, root, rows, featurizer, tmp_path / "refused")
    assert engine.name in str(err.value)
    # the same rows without the bad one go through
    good = rows.filter(pa.array([i != 3 for i in range(rows.num_rows)]))
    out = write_examples(engine, root, good, featurizer, tmp_path / "good")
    assert b"".join(p.read_bytes() for p in out).count(b"\n\n") == 5
    # the statement runs the function once per decision (on Spark a function in
    # the sorted projection also ran in the sort's sampling job: twice)
    assert _rows_through_function(engine, root, good, featurizer, tmp_path) == good.num_rows
    # the held-out statement: a context the featurizer refuses names its event; the
    # function runs once per decision
    files = tuple(io.part_files_between(root, "decisions", None, None))
    with pytest.raises(HoldoutError, match=f"event '{re.escape(bad_event)}'") as herr:
        holdout_probabilities(engine, files, _hold_rows(rows), on.policy, tmp_path / "h-refused")
    assert engine.name in str(herr.value)
    flat, offsets = holdout_probabilities(
        engine, files, _hold_rows(good), on.policy, tmp_path / "h-good"
    )
    assert len(offsets) == 6 and np.allclose(np.add.reduceat(flat, offsets[:-1]), 1.0)
    assert _holdout_rows_through_function(engine, files, good, on, tmp_path) == good.num_rows
    return parts


def _hold_rows(rows: pa.Table) -> pa.Table:
    """Training rows as :func:`holdout_probabilities` takes them (event id, time)."""
    return pa.table(
        {
            "event_id": rows.column("event_id"),
            "ts": rows.column("ts_us").cast(DECISIONS.field("ts").type),
        }
    )


def _holdout_rows_through_function(
    engine: SqlEngine, files: tuple[Path, ...], rows: pa.Table, on: Any, tmp_path: Path
) -> int:
    """How many rows the held-out function was called with, over all its calls."""
    counts = tmp_path / "holdout-calls.txt"
    fn = HoldoutFunction.of(on.policy)

    def counted(context: pa.Array, action_ids: pa.Array, event_id: pa.Array) -> pa.Array:
        with open(counts, "a") as fh:
            fh.write(f"{len(context)}\n")
        return fn(context, action_ids, event_id)

    spec = fn.as_engine_function()
    table = pa.table(
        {"event_id": rows.column("event_id"), "ts_us": rows.column("ts_us")},
        schema=HOLDOUT_ROWS,
    )
    out = engine.write_lines(
        {"decisions_log": ParquetSource(files, DECISIONS)},
        {"holdout_rows": table},
        (HOLDOUT_SQL, {}),
        {HOLDOUT_FUNCTION: ArrowFunction(counted, spec.arg_types, spec.return_type)},
        tmp_path / "holdout-counted",
    )
    assert b"".join(p.read_bytes() for p in out).count(b"\n") == rows.num_rows
    return sum(int(n) for n in counts.read_text().split())


def _rows_through_function(
    engine: SqlEngine, root: Path, rows: pa.Table, featurizer: Featurizer, tmp_path: Path
) -> int:
    """How many rows the example function was called with, over all its calls,
    when ``engine`` runs :data:`EXAMPLES_SQL` over ``rows`` (counted in a file,
    which Spark's local Python workers share with this process)."""
    counts = tmp_path / "calls.txt"
    fn = ExampleFunction(featurizer).as_engine_function()

    # the arguments named one by one: DuckDB counts a function's parameters
    def counted(
        context: pa.Array,
        action_ids: pa.Array,
        chosen_index: pa.Array,
        reward: pa.Array,
        propensity: pa.Array,
        event_id: pa.Array,
        slate: pa.Array,
        slot_rewards: pa.Array,
    ) -> pa.Array:
        with open(counts, "a") as fh:
            fh.write(f"{len(context)}\n")
        return fn.function(
            context, action_ids, chosen_index, reward, propensity, event_id, slate, slot_rewards
        )

    files = tuple(io.part_files_between(root, "decisions", None, None))
    out = engine.write_lines(
        {"decisions_log": ParquetSource(files, DECISIONS)},
        {"train_rows": rows.select(ROWS_SCHEMA.names).cast(ROWS_SCHEMA)},
        (EXAMPLES_SQL, {}),
        {EXAMPLE_FUNCTION: ArrowFunction(counted, fn.arg_types, fn.return_type)},
        tmp_path / "counted",
    )
    assert b"".join(p.read_bytes() for p in out).count(b"\n\n") == rows.num_rows
    return sum(int(n) for n in counts.read_text().split())


def test_duckdb_writes_the_drivers_examples_and_names_a_bad_event(
    sim_log: Path, bad_log: tuple[Path, pa.Table, str], tmp_path: Path
) -> None:
    parts = _check_engine_examples(DuckDBEngine(), sim_log, bad_log, tmp_path)
    assert len(parts) == 1


@pytest.mark.slow
def test_spark_executors_write_the_drivers_examples_and_name_a_bad_event(
    spark_parts_apart: SparkEngine,
    sim_log: Path,
    bad_log: tuple[Path, pa.Table, str],
    tmp_path: Path,
) -> None:
    # Spark would coalesce this small log's sorted partitions into one: kept apart
    # here, several part files, each written by an executor task, must still hold
    # the lines in the ORDER BY's order across files
    # (spark_parts_apart: the partitions kept apart, so there are several)
    parts = _check_engine_examples(spark_parts_apart, sim_log, bad_log, tmp_path)
    assert len(parts) > 1


def test_a_workers_chained_traceback_gives_the_last_exception_raised() -> None:
    """What Spark reports of a Python worker's failure: the exception the function
    raised last (``ExampleError`` naming the event), not the one it wraps."""
    from nba.logs.engine import _python_error

    text = (
        "[PYTHON_EXCEPTION] An exception was thrown from the Python worker:\n"
        'Traceback (most recent call last):\n  File "f.py", line 1, in g\n'
        "nba.features.featurizer.FeaturizeError: featurize_table: event 'a': bad\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "e.py", line 2, in h\n'
        "training.examples.ExampleError: featurize_table: event 'a': bad\n SQLSTATE: 38000"
    )
    assert _python_error(Exception(text)) == (
        "training.examples.ExampleError: featurize_table: event 'a': bad"
    )
    assert _python_error(Exception("no traceback\nmore")) == "no traceback"
