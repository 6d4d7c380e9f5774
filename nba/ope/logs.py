"""From a joined event log to :class:`nba.ope.LoggedData`.

:func:`nba.logs.join.load_joined` gives one row per decision (schema
:data:`nba.logs.schema.JOINED`) with list columns ``action_ids`` and
``probabilities``. Off-policy evaluation needs them ragged: flat arrays plus
``offsets``. :class:`LoggedLog` holds that layout once, validated, and builds a
:class:`~nba.ope.LoggedData` for any target policy:

- ``offsets`` from the lengths of ``action_ids``,
- ``pscore_all`` = the logged ``probabilities`` (the full served vector),
- ``action`` = ``chosen_index``, ``pscore`` = ``propensity``,
- ``default_reward`` = ``reward_is_default``, ``event_ids`` = ``event_id``,
- ``reward_range`` from the reward definition (:func:`reward_bounds`).

Simulated logs also carry ``ground_truth``; :func:`ground_truth_for` aligns it
with a joined table, and :func:`true_value` turns it into the true value of a
target policy on the logged contexts, ``mean_i sum_a pi(a|x_i) q(x_i, a)``.

>>> from nba.logs.join import join_rewards
>>> from nba.reward import RewardDefinition
>>> import pyarrow as pa
>>> from datetime import datetime, UTC
>>> from nba.logs.schema import DECISIONS, OUTCOMES
>>> row = dict(ts=datetime(2026, 1, 5, tzinfo=UTC), hcp_id="h1", requester="sim",
...     channels_requested=["email"], context="{}", catalog_version="v",
...     action_ids=["a@email", "b@email"], probabilities=[0.25, 0.75], chosen_index=1,
...     chosen_action_id="b@email", propensity=0.75, policy="p", model_version="p",
...     suppressed=[], activated=True)
>>> d = pa.Table.from_pylist([dict(row, event_id="e1")], schema=DECISIONS)
>>> joined = join_rewards(d, OUTCOMES.empty_table(), RewardDefinition.default()).table
>>> log = LoggedLog.from_table(joined, reward_range=(-1.0, 3.0))
>>> log.offsets.tolist(), log.pscore_all.tolist(), log.action.tolist()
([0, 2], [0.25, 0.75], [1])
>>> log.data(np.array([1.0, 0.0])).importance_weights.tolist()
[0.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nba.catalog import Catalog
from nba.logs import io
from nba.ope.data import SUM_TOL, FloatArray, IntArray, LoggedData, OPEInputError
from nba.reward import RewardDefinition

#: columns of a joined table that :meth:`LoggedLog.from_table` needs
REQUIRED_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "hcp_id",
    "action_ids",
    "probabilities",
    "chosen_index",
    "propensity",
    "reward",
)


def reward_bounds(reward_def: RewardDefinition) -> tuple[float, float]:
    """A priori ``(low, high)`` of any reward the definition can give.

    The sum of the negative weights and the sum of the positive weights (or
    the most negative and most positive single weight for ``max``
    aggregation), widened to include the default and narrowed by ``clip``.
    Used as ``LoggedData.reward_range`` (the empirical-Bernstein interval
    needs a true bound).

    >>> rd = RewardDefinition.from_dict({"name": "r", "version": "1", "window_days": 7,
    ...     "weights": {"opened": 0.2, "clicked": 0.6, "unsubscribed": -1.0}})
    >>> reward_bounds(rd)
    (-1.0, 0.8)
    """
    w = np.array(list(reward_def.weights.values()), dtype=np.float64)
    if reward_def.aggregation == "sum":
        lo, hi = float(w[w < 0].sum()), float(w[w > 0].sum())
    else:
        lo, hi = float(min(w.min(), 0.0)), float(max(w.max(), 0.0))
    d = float(reward_def.default_reward)
    lo, hi = min(lo, d), max(hi, d)
    if reward_def.clip is not None:
        lo, hi = max(lo, reward_def.clip[0]), min(hi, reward_def.clip[1])
    if hi <= lo:  # a degenerate definition; keep the bound valid for LoggedData
        hi = lo + 1.0
    return round(lo, 12), round(hi, 12)


def _flat(col: pa.ChunkedArray) -> tuple[pa.Array, IntArray]:
    arr = col.combine_chunks()
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - pyarrow < 12
        arr = arr.combine_chunks()
    offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
    offsets = offsets - offsets[0]
    return arr.flatten(), offsets


# the messages of the checks, shared by the numpy path and the SQL path
_MSG_NULL = "joined log: null entries in action_ids or probabilities"


def _msg_sizes(event_id: Any, n_ids: Any, n_probs: Any) -> str:
    return f"joined log: event {event_id}: {int(n_ids)} action_ids but {int(n_probs)} probabilities"


def _msg_empty(event_id: Any) -> str:
    return f"joined log: event {event_id}: no eligible actions"


def _msg_index(event_id: Any, index: Any, size: Any) -> str:
    return (
        f"joined log: event {event_id}: chosen_index {int(index)} outside its "
        f"{int(size)} eligible actions"
    )


def _msg_probability(event_id: Any, value: Any) -> str:
    return f"joined log: event {event_id}: logged probability {float(value)!r} outside [0, 1]"


def _msg_sum(event_id: Any, total: Any) -> str:
    return f"joined log: event {event_id}: logged probabilities sum to {float(total):.8g}, not 1"


def _msg_propensity(event_id: Any, value: Any) -> str:
    return f"joined log: event {event_id}: propensity {float(value)!r} outside (0, 1]"


def _msg_served(event_id: Any, propensity: Any, served: Any) -> str:
    return (
        f"joined log: event {event_id}: propensity {float(propensity):.8g} is not the "
        f"served probability {float(served):.8g} of the chosen action"
    )


@dataclass(frozen=True, eq=False)
class LoggedLog:
    """A joined log in ragged form, validated once; ``n`` decisions, ``m`` entries.

    Attributes
    ----------
    table : pyarrow.Table
        The joined rows, in the order of every array below.
    offsets : ndarray of int64, shape (n + 1,)
    action_ids : ndarray of str (object), shape (m,)
        Eligible action ids of every decision, in scoring order.
    pscore_all : ndarray of float64, shape (m,)
        Logged (served) probability of every eligible action.
    action : ndarray of int64, shape (n,)
        Chosen position within each decision.
    pscore : ndarray of float64, shape (n,)
    reward : ndarray of float64, shape (n,)
    default_reward : ndarray of bool, shape (n,) or None
    event_ids : ndarray of str (object), shape (n,)
    hcp_ids : ndarray of str (object), shape (n,)
    ts_us : ndarray of int64, shape (n,)
        Decision time in microseconds since the epoch.
    reward_range : (float, float) or None
    """

    table: pa.Table
    offsets: IntArray
    action_ids: npt.NDArray[np.object_]
    pscore_all: FloatArray
    action: IntArray
    pscore: FloatArray
    reward: FloatArray
    default_reward: npt.NDArray[np.bool_] | None
    event_ids: npt.NDArray[np.object_]
    hcp_ids: npt.NDArray[np.object_]
    ts_us: IntArray
    reward_range: tuple[float, float] | None = None

    @classmethod
    def from_table(
        cls, table: pa.Table, reward_range: tuple[float, float] | None = None
    ) -> LoggedLog:
        """Build from a joined table (:data:`nba.logs.schema.JOINED`).

        Raises
        ------
        OPEInputError
            On a missing column, an empty table, list columns of different
            lengths, a chosen index outside its set, a propensity that is not
            the served probability of the chosen action, or probabilities that
            do not sum to 1; the message names the event id.
        """
        _check_joined(table)
        event_ids = np.asarray(table.column("event_id").to_numpy(zero_copy_only=False), object)
        ids_flat, offsets = _flat(table.column("action_ids"))
        probs_flat, p_off = _flat(table.column("probabilities"))
        sizes = np.diff(offsets)
        if not np.array_equal(offsets, p_off):
            i = int(np.flatnonzero(np.diff(p_off) != sizes)[0])
            raise OPEInputError(_msg_sizes(event_ids[i], sizes[i], p_off[i + 1] - p_off[i]))
        empty = np.flatnonzero(sizes < 1)
        if empty.size:
            raise OPEInputError(_msg_empty(event_ids[int(empty[0])]))
        if ids_flat.null_count or probs_flat.null_count:
            raise OPEInputError(_MSG_NULL)
        pscore_all = np.asarray(probs_flat.to_numpy(zero_copy_only=False), dtype=np.float64)
        action = np.asarray(table.column("chosen_index").to_numpy(), dtype=np.int64)
        pscore = np.asarray(table.column("propensity").to_numpy(), dtype=np.float64)
        bad = np.flatnonzero((action < 0) | (action >= sizes))
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(_msg_index(event_ids[i], action[i], sizes[i]))
        bad = np.flatnonzero(~np.isfinite(pscore_all) | (pscore_all < 0) | (pscore_all > 1))
        if bad.size:
            i = int(np.searchsorted(offsets, bad[0], side="right") - 1)
            raise OPEInputError(_msg_probability(event_ids[i], pscore_all[bad[0]]))
        sums = np.add.reduceat(pscore_all, offsets[:-1])
        bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOL)
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(_msg_sum(event_ids[i], sums[i]))
        bad = np.flatnonzero(~((pscore > 0) & (pscore <= 1)))
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(_msg_propensity(event_ids[i], pscore[i]))
        served = pscore_all[offsets[:-1] + action]
        bad = np.flatnonzero(np.abs(served - pscore) > SUM_TOL)
        if bad.size:
            i = int(bad[0])
            raise OPEInputError(_msg_served(event_ids[i], pscore[i], served[i]))
        reward = np.asarray(table.column("reward").to_numpy(), dtype=np.float64)
        default = None
        if "reward_is_default" in table.column_names:
            default = np.asarray(
                table.column("reward_is_default").to_numpy(zero_copy_only=False), dtype=bool
            )
        ts_us = np.asarray(pc.cast(table.column("ts"), pa.int64()).to_numpy(), dtype=np.int64)
        return cls(
            table=table,
            offsets=offsets,
            action_ids=np.asarray(ids_flat.to_numpy(zero_copy_only=False), dtype=object),
            pscore_all=pscore_all,
            action=action,
            pscore=pscore,
            reward=reward,
            default_reward=default,
            event_ids=event_ids,
            hcp_ids=np.asarray(table.column("hcp_id").to_numpy(zero_copy_only=False), object),
            ts_us=ts_us,
            reward_range=reward_range,
        )

    @classmethod
    def from_sql_result(
        cls,
        table: pa.Table,
        arrays: pa.Table,
        checks: pa.Table,
        reward_range: tuple[float, float] | None = None,
    ) -> LoggedLog:
        """Build from a joined table and the results of :func:`ope_statements` over it.

        The engine that joined the log computed the per-decision numbers and
        the checks (:data:`OPE_ARRAYS_SQL`, :data:`OPE_CHECKS_SQL`) where the
        joined table is; here the first failing check, in the order of
        :meth:`from_table`, becomes the same error, and the arrays are taken
        as computed. The flat arrays (``action_ids``, ``pscore_all``) are the
        list columns of ``table``, laid end to end.

        Parameters
        ----------
        table : pyarrow.Table
            The joined rows (:data:`nba.logs.schema.JOINED`), n rows.
        arrays : pyarrow.Table
            :data:`OPE_ARRAYS_SQL`'s result over ``table``, n rows in its order.
        checks : pyarrow.Table
            :data:`OPE_CHECKS_SQL`'s result over ``table``.
        reward_range : (float, float), optional

        Raises
        ------
        OPEInputError
            As :meth:`from_table`, with the same messages; also when ``arrays``
            does not match ``table`` (results of another table).
        """
        n = _check_joined(table)
        first = _first_failures(checks)
        if "sizes" in first:
            r = first["sizes"]
            raise OPEInputError(_msg_sizes(r["event_id"], r["n_ids"], r["n_probs"]))
        if "empty" in first:
            raise OPEInputError(_msg_empty(first["empty"]["event_id"]))
        if "null" in first:
            raise OPEInputError(_MSG_NULL)
        if "index" in first:
            r = first["index"]
            raise OPEInputError(_msg_index(r["event_id"], r["chosen_index"], r["n_ids"]))
        if "probability" in first:
            r = first["probability"]
            raise OPEInputError(_msg_probability(r["event_id"], r["first_outside"]))
        if "sum" in first:
            r = first["sum"]
            raise OPEInputError(_msg_sum(r["event_id"], r["prob_sum"]))
        if "propensity" in first:
            r = first["propensity"]
            raise OPEInputError(_msg_propensity(r["event_id"], r["propensity"]))
        if "served" in first:
            r = first["served"]
            raise OPEInputError(_msg_served(r["event_id"], r["propensity"], r["served"]))
        ids_flat, offsets = _flat(table.column("action_ids"))
        probs_flat, _ = _flat(table.column("probabilities"))
        n_actions = np.asarray(arrays.column("n_actions").to_numpy(), dtype=np.int64)
        if arrays.num_rows != n or not np.array_equal(np.diff(offsets), n_actions):
            raise OPEInputError(
                f"joined log: the OPE arrays ({arrays.num_rows} decisions) do not match the "
                f"joined table ({n} decisions)"
            )
        default = None
        if "reward_is_default" in table.column_names:
            default = np.asarray(
                arrays.column("reward_is_default").to_numpy(zero_copy_only=False), dtype=bool
            )
        return cls(
            table=table,
            offsets=offsets,
            action_ids=np.asarray(ids_flat.to_numpy(zero_copy_only=False), dtype=object),
            pscore_all=np.asarray(probs_flat.to_numpy(zero_copy_only=False), dtype=np.float64),
            action=np.asarray(arrays.column("action").to_numpy(), dtype=np.int64),
            pscore=np.asarray(arrays.column("pscore").to_numpy(), dtype=np.float64),
            reward=np.asarray(arrays.column("reward").to_numpy(), dtype=np.float64),
            default_reward=default,
            event_ids=np.asarray(table.column("event_id").to_numpy(zero_copy_only=False), object),
            hcp_ids=np.asarray(table.column("hcp_id").to_numpy(zero_copy_only=False), object),
            ts_us=np.asarray(arrays.column("ts_us").to_numpy(), dtype=np.int64),
            reward_range=reward_range,
        )

    # ----------------------------------------------------------------- views
    @property
    def n_decisions(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def n_flat(self) -> int:
        return int(self.offsets[-1])

    @property
    def chosen_flat(self) -> IntArray:
        """Flat position of each logged action, shape (n,)."""
        return self.offsets[:-1] + self.action

    @property
    def observed_value(self) -> float:
        """Mean logged reward: the on-policy value of the logging policy."""
        return float(np.mean(self.reward))

    def data(
        self,
        action_dist: npt.ArrayLike | None = None,
        estimated_rewards: npt.ArrayLike | None = None,
    ) -> LoggedData:
        """A validated :class:`LoggedData` for a target policy.

        Parameters
        ----------
        action_dist : array of float, shape (m,), optional
            Target probabilities over the logged eligible sets; default: the
            logging policy itself (``pscore_all``).
        estimated_rewards : array of float, shape (m,), optional
        """
        dist = self.pscore_all if action_dist is None else np.asarray(action_dist)
        return LoggedData(
            offsets=self.offsets,
            action_dist=dist,
            reward=self.reward,
            pscore=self.pscore,
            action=self.action,
            pscore_all=self.pscore_all,
            estimated_rewards=None if estimated_rewards is None else np.asarray(estimated_rewards),
            action_ids=self.action_ids,
            default_reward=self.default_reward,
            event_ids=self.event_ids,
            reward_range=self.reward_range,
        )

    def time_order(self) -> IntArray:
        """Decision indices sorted by (ts, event_id), shape (n,)."""
        return np.lexsort((self.event_ids.astype(str), self.ts_us)).astype(np.int64)

    def data_range(self) -> tuple[str, str]:
        """First and last decision time (ISO 8601, UTC)."""
        lo, hi = np.min(self.ts_us), np.max(self.ts_us)
        fmt = np.datetime_as_string
        return (
            str(fmt(np.datetime64(int(lo), "us"), unit="s")) + "Z",
            str(fmt(np.datetime64(int(hi), "us"), unit="s")) + "Z",
        )


def catalog_for(logs_dir: str | Path, table: pa.Table) -> Catalog:
    """The catalog snapshot named by the most recent decision of ``table``.

    Falls back to the shipped catalog when its version matches; otherwise
    fails naming the missing snapshot.
    """
    versions = table.column("catalog_version")
    ts = pc.cast(table.column("ts"), pa.int64()).to_numpy()
    latest = str(versions[int(np.argmax(ts))].as_py())
    snap = Path(logs_dir) / "catalog" / f"{latest}.json"
    if snap.is_file():
        return Catalog.read_snapshot(snap)
    default = Catalog.default()
    if default.version == latest:
        return default
    raise OPEInputError(
        f"{logs_dir}: no catalog snapshot catalog/{latest}.json for catalog version {latest} "
        "(and the shipped catalog has another version)"
    )


@dataclass(frozen=True)
class GroundTruth:
    """Simulator ground truth aligned with a :class:`LoggedLog`.

    Attributes
    ----------
    expected_rewards : ndarray of float64, shape (m,)
        Exact expected reward of every eligible action of every decision.
    reward_definition : str
        Id of the reward definition the truth was computed for.
    """

    expected_rewards: FloatArray
    reward_definition: str


def ground_truth_for(logs_dir: str | Path, log: LoggedLog) -> GroundTruth | None:
    """Read ``DIR/ground_truth`` (simulator logs) aligned with ``log``.

    Returns None when the directory has no ground truth. Fails when it has one
    but it does not cover every decision of ``log`` or its lists do not match
    the eligible sets.
    """
    root = Path(logs_dir)
    if not io.part_files(root, "ground_truth"):
        return None
    gt = io.read(
        root, "ground_truth", columns=["event_id", "reward_definition", "expected_rewards"]
    )
    ids = gt.column("event_id").combine_chunks()
    idx = pc.index_in(pa.array(log.event_ids.astype(str), pa.string()), value_set=ids)
    if idx.null_count:
        pos = int(np.flatnonzero(idx.is_null().to_numpy(zero_copy_only=False))[0])
        raise OPEInputError(
            f"{root}/ground_truth: no row for event {log.event_ids[pos]} "
            f"({idx.null_count} decision(s) without ground truth)"
        )
    sub = gt.take(idx)
    rd = sub.column("reward_definition").unique().to_pylist()
    if len(rd) != 1:
        raise OPEInputError(
            f"{root}/ground_truth: computed under several reward definitions: {sorted(rd)}"
        )
    values, off = _flat(sub.column("expected_rewards"))
    if not np.array_equal(off, log.offsets):
        i = int(np.flatnonzero(np.diff(off) != np.diff(log.offsets))[0])
        raise OPEInputError(
            f"{root}/ground_truth: event {log.event_ids[i]}: "
            f"{int(off[i + 1] - off[i])} expected rewards for "
            f"{int(log.offsets[i + 1] - log.offsets[i])} eligible actions"
        )
    return GroundTruth(
        np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64), str(rd[0])
    )


def true_value(expected_rewards: npt.ArrayLike, action_dist: npt.ArrayLike, offsets: Any) -> float:
    """``mean_i sum_a pi(a|x_i) q(x_i, a)``: a policy's true value on these contexts.

    Parameters
    ----------
    expected_rewards, action_dist : array of float, shape (m,)
    offsets : array of int, shape (n + 1,)

    >>> true_value([1.0, 0.0, 0.5], [0.5, 0.5, 1.0], np.array([0, 2, 3]))
    0.5
    """
    off = np.asarray(offsets, dtype=np.int64)
    q = np.asarray(expected_rewards, dtype=np.float64)
    p = np.asarray(action_dist, dtype=np.float64)
    per = np.add.reduceat(q * p, off[:-1])
    return float(np.mean(per))


# ----------------------------------------------------------------- the SQL path
#: Per decision, over a table ``joined`` (the joined log: ``row_id`` giving its
#: order, ``event_id``, ``ts``, ``action_ids``, ``probabilities``,
#: ``chosen_index``, ``propensity``, ``reward``, ``reward_is_default``): the
#: numbers of action ids, probabilities and null entries, the sum of the logged
#: probabilities (a left fold, in list order), the logged probabilities outside
#: [0, 1] (NaN included), and the served probability of the chosen action.
#: DuckDB's dialect; the list functions become Spark's in
#: :func:`nba.logs.engine.to_spark_sql` (``list_reduce`` -> ``aggregate``,
#: ``list_extract`` -> ``try_element_at``, both 1-based).
OPE_PER_DECISION_SQL = """
WITH ope AS (
    SELECT row_id, event_id, chosen_index, propensity, reward, reward_is_default,
        epoch_us(ts) AS ts_us,
        CAST(COALESCE(array_length(action_ids), 0) AS BIGINT) AS n_ids,
        CAST(COALESCE(array_length(probabilities), 0) AS BIGINT) AS n_probs,
        CAST(COALESCE(array_length(list_filter(action_ids, lambda x: x IS NULL)), 0)
            + COALESCE(array_length(list_filter(probabilities, lambda x: x IS NULL)), 0)
            AS BIGINT) AS n_null,
        list_reduce(probabilities, lambda a, b: a + b, CAST(0 AS DOUBLE)) AS prob_sum,
        list_filter(probabilities, lambda x: NOT (x >= 0 AND x <= 1)) AS outside,
        CASE WHEN chosen_index >= 0 AND chosen_index < array_length(probabilities)
            THEN list_extract(probabilities, chosen_index + 1) END AS served
    FROM joined
)
"""

#: The OPE input arrays, one row per decision in ``row_id`` order.
OPE_ARRAYS_SQL = (
    OPE_PER_DECISION_SQL
    + """
SELECT n_ids AS n_actions, CAST(chosen_index AS BIGINT) AS action, propensity AS pscore,
    reward, reward_is_default, ts_us, prob_sum, served
FROM ope
ORDER BY row_id
"""
)

#: The first offending decision of each check (at most one row per check, each
#: with every flag and the values the messages need); ``$sum_tol`` is
#: :data:`nba.ope.data.SUM_TOL`.
OPE_CHECKS_SQL = (
    OPE_PER_DECISION_SQL
    + """,
flagged AS (
    SELECT row_id, event_id, n_ids, n_probs, chosen_index, propensity, prob_sum, served,
        CASE WHEN array_length(outside) > 0 THEN list_extract(outside, 1) END AS first_outside,
        n_ids <> n_probs AS bad_sizes,
        n_ids < 1 AS bad_empty,
        n_null > 0 AS bad_null,
        chosen_index < 0 OR chosen_index >= n_ids AS bad_index,
        COALESCE(array_length(outside), 0) > 0 AS bad_probability,
        COALESCE(ABS(prob_sum - 1) > $sum_tol, FALSE) AS bad_sum,
        NOT (propensity > 0 AND propensity <= 1) AS bad_propensity,
        COALESCE(ABS(served - propensity) > $sum_tol, FALSE) AS bad_served
    FROM ope
),
firsts AS (
    SELECT
        MIN(CASE WHEN bad_sizes THEN row_id END) AS r_sizes,
        MIN(CASE WHEN bad_empty THEN row_id END) AS r_empty,
        MIN(CASE WHEN bad_null THEN row_id END) AS r_null,
        MIN(CASE WHEN bad_index THEN row_id END) AS r_index,
        MIN(CASE WHEN bad_probability THEN row_id END) AS r_probability,
        MIN(CASE WHEN bad_sum THEN row_id END) AS r_sum,
        MIN(CASE WHEN bad_propensity THEN row_id END) AS r_propensity,
        MIN(CASE WHEN bad_served THEN row_id END) AS r_served
    FROM flagged
)
SELECT g.row_id, g.event_id, g.n_ids, g.n_probs, CAST(g.chosen_index AS BIGINT) AS chosen_index,
    g.propensity, g.prob_sum, g.served, g.first_outside, g.bad_sizes, g.bad_empty, g.bad_null,
    g.bad_index, g.bad_probability, g.bad_sum, g.bad_propensity, g.bad_served
FROM flagged AS g
JOIN firsts AS f ON g.row_id IN (
    f.r_sizes, f.r_empty, f.r_null, f.r_index, f.r_probability, f.r_sum, f.r_propensity,
    f.r_served
)
ORDER BY g.row_id
"""
)


def ope_statements() -> list[tuple[str, dict[str, int | float]]]:
    """The OPE SQL statements over ``joined``: :data:`OPE_ARRAYS_SQL`, :data:`OPE_CHECKS_SQL`.

    Give them to :func:`nba.logs.join.load_joined` (``extra_sql``), which runs
    them on the engine where the joined table is, and build the log with
    :meth:`LoggedLog.from_sql_result`.
    """
    return [(OPE_ARRAYS_SQL, {}), (OPE_CHECKS_SQL, {"sum_tol": SUM_TOL})]


#: The checks of :data:`OPE_CHECKS_SQL`, in the order :meth:`LoggedLog.from_table` applies them.
_CHECKS = ("sizes", "empty", "null", "index", "probability", "sum", "propensity", "served")


def _first_failures(checks: pa.Table) -> dict[str, dict[str, Any]]:
    """``{check: row}``: the first row (by ``row_id``) failing each check of ``checks``."""
    rows = sorted(checks.to_pylist(), key=lambda r: r["row_id"])
    first: dict[str, dict[str, Any]] = {}
    for name in _CHECKS:
        for r in rows:
            if r[f"bad_{name}"]:
                first[name] = r
                break
    return first


def _check_joined(table: pa.Table) -> int:
    """The number of rows of a joined table that has every column OPE reads.

    Raises
    ------
    OPEInputError
        On a missing column or an empty table.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise OPEInputError(
            f"joined log: missing column(s) {', '.join(missing)} "
            "(expected the JOINED schema of nba.logs.join.load_joined)"
        )
    n: int = table.num_rows
    if n == 0:
        raise OPEInputError("joined log: no decisions to evaluate (empty selection)")
    return n
