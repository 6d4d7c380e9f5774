"""Target policies as flat ``action_dist`` arrays over a log's eligible sets.

Off-policy evaluation needs, for every logged decision, the probability the
*target* policy gives each of that decision's eligible actions. This module
turns the target policies ``nba`` knows into that array:

- a baseline by name (``uniform``, ``campaign``, ``segment``), replayed on the
  logged contexts with the same classes serving uses
  (:mod:`nba.policies.baselines`);
- an external policy given as a Parquet or CSV table of
  (``event_id``, ``action_id``, ``probability``), so a policy built anywhere can
  be evaluated on our logs; the table is checked strictly (unknown event ids,
  decisions or eligible actions it leaves out, actions outside the eligible
  set, probabilities outside [0, 1] or not summing to 1 per decision).

Registered models (``models:/nba@challenger``, ``models:/nba/3``, a model
path) need the MLflow registry, which ``nba`` does not import: they are
resolved in :mod:`training.targets`. :func:`parse_target` classifies a
command-line spec for both.

>>> parse_target("uniform"), parse_target("table:/tmp/p.parquet").kind
(TargetSpec(kind='baseline', value='uniform', label='uniform'), 'table')
>>> parse_target("models:/nba@challenger").kind
'model'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action, ValidationError
from nba.ope.data import SUM_TOL, FloatArray, OPEInputError
from nba.ope.logs import LoggedLog
from nba.policies.base import PolicyError

BASELINE_TARGETS: tuple[str, ...] = ("uniform", "campaign", "segment")
TABLE_PREFIX = "table:"
TABLE_COLUMNS: tuple[str, ...] = ("event_id", "action_id", "probability")
_DSJSON_PREFIX = '{"dsjson"'


class TargetError(OPEInputError):
    """A target policy could not be turned into probabilities; says which and where."""


@dataclass(frozen=True)
class TargetSpec:
    """A target policy named on the command line.

    Attributes
    ----------
    kind : {"baseline", "table", "model"}
    value : str
        Baseline name, table path, or model URI / path.
    label : str
        How the policy is named in reports.
    """

    kind: str
    value: str
    label: str


def parse_target(spec: str) -> TargetSpec:
    """Classify a policy spec: a baseline name, ``table:PATH``, or a model.

    Models are ``models:/...``, ``runs:/...`` or an existing directory. Anything
    else is refused with the list of accepted forms.
    """
    s = str(spec).strip()
    if not s:
        raise TargetError("policy: empty policy spec")
    if s in BASELINE_TARGETS:
        return TargetSpec("baseline", s, s)
    if s.startswith(TABLE_PREFIX):
        path = s[len(TABLE_PREFIX) :]
        if not path:
            raise TargetError("policy 'table:': give the table path, e.g. table:probs.parquet")
        return TargetSpec("table", path, s)
    if s.startswith(("models:/", "runs:/")):
        return TargetSpec("model", s, s)
    if Path(s).is_dir():
        return TargetSpec("model", s, s)
    raise TargetError(
        f"policy {s!r}: unknown policy; expected one of {', '.join(BASELINE_TARGETS)}, "
        "table:PATH (Parquet/CSV of event_id, action_id, probability), "
        "models:/<name>@<alias>, models:/<name>/<version>, or an existing model directory"
    )


# ------------------------------------------------------------------ baselines
def _is_dsjson(context: str) -> bool:
    return context.lstrip().replace(" ", "").startswith(_DSJSON_PREFIX)


def baseline_action_dist(
    name: str,
    log: LoggedLog,
    catalog: Catalog | None = None,
    params: Mapping[str, Any] | None = None,
) -> FloatArray:
    """Probabilities of a baseline over every logged eligible set.

    Parameters
    ----------
    name : {"uniform", "campaign", "segment"}
    log : LoggedLog
    catalog : Catalog, optional
        The log's catalog (topics of the actions); default: the shipped one.
    params : mapping, optional
        Constructor parameters of the baseline (e.g. ``{"epsilon": 0.0}``).

    Returns
    -------
    ndarray of float64, shape (m,)

    Raises
    ------
    TargetError
        Unknown name, bad parameters, or (campaign, segment) a decision whose
        logged context is an imported DSJSON context without an HCP profile.
    """
    if name not in BASELINE_TARGETS:
        raise TargetError(
            f"policy {name!r}: not a baseline; expected one of {', '.join(BASELINE_TARGETS)}"
        )
    sizes = np.diff(log.offsets)
    if name == "uniform":
        return np.repeat(1.0 / sizes, sizes)
    from nba.policies.registry import create

    try:
        policy = create(name, catalog=catalog or Catalog.default(), **dict(params or {}))
    except (PolicyError, TypeError) as exc:
        raise TargetError(f"policy {name!r}: {exc}") from exc
    contexts = log.table.column("context").to_pylist()
    out = np.empty(log.n_flat, dtype=np.float64)
    cache: dict[str, Action] = {}
    off = log.offsets
    for i, ctx_json in enumerate(contexts):
        lo, hi = int(off[i]), int(off[i + 1])
        if _is_dsjson(ctx_json):
            raise TargetError(
                f"policy {name!r}: event {log.event_ids[i]} has an imported DSJSON context "
                "without an nba HCP profile and day; this baseline cannot be replayed on it "
                "(use uniform, a table: policy or a model)"
            )
        try:
            ctx = DecisionContext.from_json(ctx_json)
            acts = []
            for aid in log.action_ids[lo:hi]:
                a = cache.get(aid)
                if a is None:
                    a = cache[aid] = Action.parse(str(aid))
                acts.append(a)
            out[lo:hi] = policy.probabilities(ctx, acts)
        except ValidationError as exc:
            raise TargetError(f"policy {name!r}: event {log.event_ids[i]}: {exc}") from exc
    return out


# --------------------------------------------------------------- table policy
def read_policy_table(path: str | Path) -> pa.Table:
    """Read an external policy table (``.parquet`` / ``.pq`` or ``.csv``).

    Returns a table with exactly the columns ``event_id`` (string),
    ``action_id`` (string) and ``probability`` (float64).
    """
    p = Path(path)
    if not p.is_file():
        raise TargetError(f"policy table {p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pq.read_table(p)
        elif suffix == ".csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(
                p,
                convert_options=pacsv.ConvertOptions(
                    column_types={"event_id": pa.string(), "action_id": pa.string()}
                ),
            )
        else:
            raise TargetError(f"policy table {p}: unknown format {suffix!r} (use .parquet or .csv)")
    except (pa.ArrowInvalid, OSError) as exc:
        raise TargetError(f"policy table {p}: cannot read: {exc}") from exc
    missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
    if missing:
        raise TargetError(
            f"policy table {p}: missing column(s) {', '.join(missing)} "
            f"(needs {', '.join(TABLE_COLUMNS)}; has {', '.join(table.column_names)})"
        )
    try:
        out = pa.table(
            {
                "event_id": pc.cast(table.column("event_id"), pa.string()),
                "action_id": pc.cast(table.column("action_id"), pa.string()),
                "probability": pc.cast(table.column("probability"), pa.float64()),
            }
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TargetError(f"policy table {p}: column types: {exc}") from exc
    for col in TABLE_COLUMNS:
        nulls = out.column(col).null_count
        if nulls:
            row = int(np.flatnonzero(out.column(col).is_null().to_numpy(zero_copy_only=False))[0])
            raise TargetError(f"policy table {p}: row {row}: column {col!r} is empty")
    return out


def table_action_dist(table: pa.Table, log: LoggedLog, source: str = "policy table") -> FloatArray:
    """Align an external policy table with the log's eligible sets.

    Parameters
    ----------
    table : pyarrow.Table
        Columns ``event_id``, ``action_id``, ``probability`` (see
        :func:`read_policy_table`); one row per (decision, eligible action).
    log : LoggedLog
    source : str
        Named in error messages (the file path).

    Returns
    -------
    ndarray of float64, shape (m,)

    Raises
    ------
    TargetError
        Probabilities outside [0, 1] or not finite; a (event_id, action_id)
        pair listed twice; event ids that are not logged decisions of the
        evaluated range; logged decisions the table leaves out; eligible
        actions it leaves out; actions outside a decision's eligible set;
        probabilities that do not sum to 1 per decision. Each names the first
        offending event (and action) and how many there are.
    """
    ev = np.asarray(table.column("event_id").to_numpy(zero_copy_only=False), dtype=object)
    act = np.asarray(table.column("action_id").to_numpy(zero_copy_only=False), dtype=object)
    prob = np.asarray(table.column("probability").to_numpy(zero_copy_only=False), np.float64)
    bad = np.flatnonzero(~np.isfinite(prob) | (prob < 0.0) | (prob > 1.0))
    if bad.size:
        j = int(bad[0])
        raise TargetError(
            f"{source}: {bad.size} probability value(s) outside [0, 1]; first at row {j} "
            f"(event_id {ev[j]}, action_id {act[j]}): {float(prob[j])!r}"
        )
    keys = pd.Index(pd.Series(ev).astype(str) + "\x1f" + pd.Series(act).astype(str))
    dup = keys.duplicated()
    if dup.any():
        j = int(np.flatnonzero(dup)[0])
        raise TargetError(
            f"{source}: (event_id {ev[j]}, action_id {act[j]}) is listed more than once (row {j})"
        )
    logged_events = pd.Index(log.event_ids.astype(str))
    unknown = ~pd.Index(ev.astype(str)).isin(logged_events)
    if unknown.any():
        names = pd.unique(ev[unknown])
        raise TargetError(
            f"{source}: {len(names)} event id(s) are not logged decisions in the evaluated "
            f"range (e.g. {', '.join(map(str, names[:3]))}); check the log directory and "
            "--since/--until"
        )
    table_events = pd.Index(pd.unique(ev.astype(str)))
    absent = ~logged_events.isin(table_events)
    if absent.any():
        i = int(np.flatnonzero(absent)[0])
        raise TargetError(
            f"{source}: no probabilities for {int(absent.sum())} logged decision(s) "
            f"(e.g. event_id {log.event_ids[i]})"
        )
    seg = np.repeat(np.arange(log.n_decisions), np.diff(log.offsets))
    log_keys = pd.Index(
        pd.Series(log.event_ids[seg]).astype(str) + "\x1f" + pd.Series(log.action_ids).astype(str)
    )
    pos = keys.get_indexer(log_keys)
    miss = np.flatnonzero(pos < 0)
    if miss.size:
        j = int(miss[0])
        raise TargetError(
            f"{source}: {miss.size} eligible action(s) missing; first: event_id "
            f"{log.event_ids[seg[j]]}, action_id {log.action_ids[j]} (give every eligible "
            "action of every decision a probability, 0 allowed)"
        )
    if len(keys) != log.n_flat:
        used = np.zeros(len(keys), dtype=bool)
        used[pos] = True
        j = int(np.flatnonzero(~used)[0])
        raise TargetError(
            f"{source}: {int((~used).sum())} row(s) name actions outside their decision's "
            f"eligible set; first at row {j}: event_id {ev[j]}, action_id {act[j]}"
        )
    dist = prob[pos]
    sums = np.add.reduceat(dist, log.offsets[:-1])
    bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOL)
    if bad.size:
        i = int(bad[0])
        raise TargetError(
            f"{source}: probabilities do not sum to 1 for {bad.size} decision(s); first: "
            f"event_id {log.event_ids[i]} sums to {sums[i]:.8g}"
        )
    return dist


def target_action_dist(
    spec: TargetSpec,
    log: LoggedLog,
    catalog: Catalog | None = None,
    params: Mapping[str, Any] | None = None,
) -> FloatArray:
    """``action_dist`` of a baseline or table target (models: see :mod:`training.targets`)."""
    if spec.kind == "baseline":
        return baseline_action_dist(spec.value, log, catalog, params)
    if spec.kind == "table":
        return table_action_dist(read_policy_table(spec.value), log, source=spec.value)
    raise TargetError(
        f"policy {spec.label!r}: a registered model or model path is resolved by "
        "training.targets (nba does not import the registry)"
    )
