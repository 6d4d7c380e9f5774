"""The held-out slice's probabilities computed by the engine: the trained policy as a
function the SQL calls.

``nba train --holdout-days N --engine spark`` checks the trained policy on the
last N days (IPS/SNIPS, :func:`training.train.holdout_report`), which needs
the policy's probability of every eligible action of every held-out decision.
Those come from one SQL statement (:data:`HOLDOUT_SQL`, DuckDB dialect,
transpiled for Spark like the join) calling :class:`HoldoutFunction`, the
trained policy (its saved files: VW model, featurizer configuration, catalog)
registered as a vectorized Arrow function: the held-out rows (an Arrow table
from the driver, no contexts) joined to the contexts and action lists the
engine reads from the decisions' Parquet files, in time then ``event_id``
order. Spark's executors featurize and predict; the driver reads back one
line per decision, its probabilities in ``action_ids`` order, written with
``repr`` so that they read back as the same doubles, and computes the
estimates.

The probabilities are those of :meth:`nba.policies.vw.VWPolicy.probabilities_table`
on the driver, because the executors run it on the same saved model.

A decision the featurizer refuses stops the statement with
:class:`HoldoutError` naming its ``event_id``.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from nba.logs.engine import ArrowFunction, ParquetSource, SqlEngine, first_missing_context
from nba.logs.io import LogError
from nba.logs.schema import DECISIONS
from nba.policies.vw import VWPolicy
from training.examples import Column, _arrow

#: The name the SQL calls the policy by.
HOLDOUT_FUNCTION = "nba_holdout_probabilities"

#: The held-out rows the driver gives the engine.
HOLDOUT_ROWS = pa.schema([pa.field("event_id", pa.string()), pa.field("ts_us", pa.int64())])

#: The one statement: the held-out rows joined to their contexts and action
#: lists (read by the engine from the decisions' part files), their
#: probabilities under the trained policy, in time then event id order. The
#: function is applied over the sorted rows (Spark's sort samples its input: a
#: function in the sorted projection would run twice per row).
HOLDOUT_SQL = f"""
SELECT {HOLDOUT_FUNCTION}(s.context, s.action_ids, s.event_id) AS line
FROM (
    SELECT d.context, d.action_ids, r.event_id
    FROM holdout_rows AS r
    LEFT JOIN decisions_log AS d ON d.event_id = r.event_id AND d.activated
    ORDER BY r.ts_us, r.event_id
) AS s
"""


class HoldoutError(LogError):
    """A held-out decision could not be scored (the message names its event)."""


#: the policy last loaded by this process (a Spark Python worker), by its files' digest
_LOADED: dict[str, VWPolicy] = {}


def scoring_copy(policy: VWPolicy) -> VWPolicy:
    """A copy of ``policy`` loaded from its saved files, to score with.

    Scoring advances VW's counters in the workspace that scores, and those are
    saved with the model: the held-out slice is scored on a copy (here or on
    the engine's workers), so the trained model is returned as it was trained
    whichever path scored it. The caller closes the copy.
    """
    with tempfile.TemporaryDirectory() as d:
        policy.save(Path(d) / "policy")
        return VWPolicy.load(Path(d) / "policy")


@dataclass(frozen=True)
class HoldoutFunction:
    """The trained policy's probabilities of n decisions, one line per decision.

    Picklable: it holds the policy's saved files (:meth:`VWPolicy.save`), which
    each process that runs it loads once.

    Parameters
    ----------
    files : tuple of (str, bytes)
        The saved policy's files, by name.
    """

    files: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, policy: VWPolicy) -> HoldoutFunction:
        """The function of ``policy``, from its saved files."""
        with tempfile.TemporaryDirectory() as d:
            policy.save(Path(d) / "policy")
            saved = sorted((Path(d) / "policy").iterdir())
            return cls(tuple((f.name, f.read_bytes()) for f in saved))

    def policy(self) -> VWPolicy:
        """The policy, loaded once per process."""
        digest = hashlib.sha256(b"".join(n.encode() + b"\0" + b for n, b in self.files))
        key = digest.hexdigest()
        found = _LOADED.get(key)
        if found is None:
            with tempfile.TemporaryDirectory() as d:
                for name, data in self.files:
                    (Path(d) / name).write_bytes(data)
                for old in _LOADED.values():  # one trained policy at a time
                    old.close()
                _LOADED.clear()
                found = _LOADED[key] = VWPolicy.load(d)
        return found

    def __call__(self, context: Column, action_ids: Column, event_id: Column) -> pa.Array:
        """The probabilities of n decisions.

        Parameters
        ----------
        context, action_ids, event_id : pyarrow.Array
            Each of shape (n,): the logged decisions (``context`` null when the
            decision is not in the log's part files).

        Returns
        -------
        pyarrow.StringArray
            Shape (n,): each decision's probabilities, in ``action_ids`` order,
            written with ``repr`` and joined by commas.

        Raises
        ------
        HoldoutError
            Naming the event id of a decision that cannot be scored.
        """
        table = pa.table(
            {
                "context": _arrow(context).cast(pa.string()),
                "action_ids": _arrow(action_ids).cast(pa.list_(pa.string())),
                "event_id": _arrow(event_id).cast(pa.string()),
            }
        )
        if table.num_rows == 0:
            return pa.array([], pa.string())
        event = first_missing_context(table)
        if event is not None:
            raise HoldoutError(
                f"event {event!r} was held out but is not an activated decision of the log's "
                "part files (was the log changed while training?)"
            )
        try:
            flat, offsets = self.policy().probabilities_table(table)
        except Exception as exc:  # e.g. a context the featurizer refuses: its message
            raise HoldoutError(str(exc)) from exc  # names the event
        texts = [repr(float(x)) for x in flat.tolist()]
        return pa.array(
            [",".join(texts[int(a) : int(b)]) for a, b in itertools.pairwise(offsets.tolist())],
            pa.string(),
        )

    def as_engine_function(self) -> ArrowFunction:
        """This function with its DuckDB argument and result types."""
        return ArrowFunction(self, ("VARCHAR", "VARCHAR[]", "VARCHAR"), "VARCHAR")


def holdout_probabilities(
    engine: SqlEngine,
    files: tuple[Path, ...],
    rows: pa.Table,
    policy: VWPolicy,
    out: str | Path,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Have ``engine`` compute ``policy``'s probabilities of the held-out ``rows``.

    Parameters
    ----------
    engine : SqlEngine
    files : tuple of Path
        The decisions' part files that hold the rows' contexts.
    rows : pyarrow.Table
        n held-out rows with ``event_id`` and ``ts``, activated decisions of
        the log, each once, in time then ``event_id`` order.
    policy : VWPolicy
        The trained policy.
    out : path
        A directory for the engine's part files, created (or emptied of part
        files) here.

    Returns
    -------
    probabilities : numpy.ndarray of float64, shape (m,)
        Flat, each row's in its ``action_ids`` order (as
        :meth:`VWPolicy.probabilities_table` gives them).
    offsets : numpy.ndarray of int64, shape (n + 1,)
        Row ``i`` owns ``probabilities[offsets[i]:offsets[i + 1]]``.

    Raises
    ------
    HoldoutError
        When a decision cannot be scored, naming its event id, or when the
        engine does not give one line per row.
    """
    table = pa.table(
        {
            "event_id": rows.column("event_id").cast(pa.string()),
            "ts_us": rows.column("ts").cast(DECISIONS.field("ts").type).cast(pa.int64()),
        },
        schema=HOLDOUT_ROWS,
    )
    with engine.function_errors(HoldoutError, "scoring the held-out slice"):
        parts = engine.write_lines(
            {"decisions_log": ParquetSource(files, DECISIONS)},
            {"holdout_rows": table},
            (HOLDOUT_SQL, {}),
            {HOLDOUT_FUNCTION: HoldoutFunction.of(policy).as_engine_function()},
            out,
        )
    lines: list[Any] = b"".join(p.read_bytes() for p in parts).decode("utf-8").splitlines()
    if len(lines) != rows.num_rows:
        raise HoldoutError(
            f"{engine.describe()} scored {len(lines)} held-out decisions of {rows.num_rows}"
        )
    values = [[float(x) for x in line.split(",")] if line else [] for line in lines]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    flat = np.fromiter((x for v in values for x in v), dtype=np.float64, count=int(offsets[-1]))
    return flat, offsets
