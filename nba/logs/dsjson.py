"""DSJSON interop: export joined decisions for VW, import other VW-based systems' logs.

DSJSON is Vowpal Wabbit's "decision service" JSON: one JSON object per line,
read by ``vw --cb_explore_adf --dsjson`` as one multi-line ADF example.

Export (one line per joined decision)
-------------------------------------
=========================  ==================================================
DSJSON field               from the joined row
=========================  ==================================================
``_label_cost``            ``-reward`` (VW minimises cost)
``_label_probability``     ``propensity``
``_label_Action``          ``chosen_index + 1`` (1-based)
``_labelIndex``            ``chosen_index`` (0-based, into ``c._multi``)
``_skipLearn``             ``true`` only when ``activated`` is false
``Timestamp``              ``ts`` as ``YYYY-MM-DDThh:mm:ss.ffffffZ``
``Version``                ``"1"``
``EventId``                ``event_id``
``a``                      ``[1, 2, ..., n]``: the actions in logged order
``p``                      ``probabilities`` in logged order
``c``                      shared features, plus ``_multi``: one feature
                           object per action, in logged order
                           (both from :func:`dsjson_features`)
``VWState.m``              ``model_version`` (VW reads it as the model id)
``nba``                    our own fields VW ignores: ``action_ids``,
                           ``hcp_id``, ``requester``, ``channels_requested``,
                           ``catalog_version``, ``policy``,
                           ``reward_definition``, ``reward_is_default``,
                           ``other_action_outcomes`` and ``pulls`` when
                           there are any, and ``slate``
                           (``[{action_id, probability}]``, every slot with
                           its conditional probability) when the decision
                           served more than one slot
=========================  ==================================================

What the HCP pulls travels two ways. Before the decision, as the context's
features: ``c`` is the featurizer's output, so it holds what nba train and
serving see of the HCP's interest (``h int_<topic>``, ``h top_int``, and per
action ``x it_int``, ``x it_pull``, ``x it_pull_<channel>``, ``x sp_top``,
``x sp_ch``, the declared attributes ``p a_<name>``; see
:mod:`nba.features`). After the decision, as raw records: ``nba.pulls`` lists
the HCP's pull touches (any ``kind`` but ``contact``, ours or external)
stamped inside the decision's reward window (``ts <= touch.ts <= ts +
window``, the join's rule for outcomes) and not after the join's ``as_of``, as
objects ``{"ts", "channel", "content_id", "origin", "kind", "topics",
"content_ids", "dwell_s"}`` (``dwell_s`` null when not measured) in time
order. Windows of one HCP's decisions overlap, so one touch may be listed by
several lines. VW ignores the block.

Outcomes about another suggestion than the chosen one (an outcome ``action_id``
that is not the decision's ``chosen_action_id``) are not part of the reward, so
they cannot travel in ``_label_cost``; VW's label has room for the chosen
action only. They travel in ``nba.other_action_outcomes``, a list of objects
``{"action_id", "type", "value", "ts", "source", "source_id"}`` (``ts`` written
like ``Timestamp``), de-duplicated on ``(type, source_id)`` (earliest kept) and
ordered by time, whatever their time (late ones included). VW ignores the
``nba`` block, so it reads every line exactly as it would without them.

Import (foreign or our own DSJSON into ``decisions`` + ``outcomes``)
--------------------------------------------------------------------
- ``event_id`` = ``EventId``; ``ts`` = ``Timestamp`` (ISO 8601 with ``Z`` or an
  offset; up to 7 fractional digits, truncated to microseconds).
- The eligible actions are the entries of ``c._multi``. Their ids: ``nba.action_ids``
  when the line carries our block; else, per entry, the first string ``id``
  feature found (a top-level ``"id"``, then an ``"id"`` inside a namespace
  object, then ``_tag``); else ``"a<k>"`` with ``k`` the 1-based position.
- The chosen index is ``_labelIndex``, else ``_label_Action - 1``, else
  ``a[0] - 1`` (the decision service puts the chosen action first).
- ``p`` gives the probabilities. With ``a`` present, ``p[i]`` belongs to action
  ``a[i]`` (decision-service order); if that disagrees with
  ``_label_probability`` but ``p`` read in ``_multi`` order agrees, the latter is
  used. A vector whose sum is off 1 by more than 1e-6 but at most 1e-4
  (float32 round-off in foreign logs) is renormalised; ``propensity`` is its
  chosen entry and must agree with ``_label_probability`` to 1e-4.
- ``context`` = canonical JSON of ``{"dsjson": <c without _multi>,
  "dsjson_actions": {<action id>: <its _multi entry>}}``, so the features
  survive and :func:`dsjson_features` can rebuild the same ``c``.
- ``hcp_id`` ``"unknown"``, ``requester`` ``"imported"``, ``channels_requested``
  ``[]``, ``catalog_version`` ``"external"`` (for these four, the values in our
  ``nba`` block win when present); ``policy`` ``"imported"``;
  ``model_version`` = ``VWState.m`` (else ``"unknown"``); ``suppressed`` ``[]``;
  ``activated`` = not ``_skipLearn`` (deferred, never activated events).
- Outcomes: each entry of ``o`` with a numeric ``v`` becomes an outcome of type
  ``"reward"`` with value ``v`` (entries without ``v`` are activation markers
  and are skipped); without ``o``, ``_label_cost`` becomes one ``"reward"``
  outcome with value ``-cost``, except when our block says the reward was the
  default (no outcome arrived). Outcomes carry the decision's timestamp (DSJSON
  has no outcome time), ``source`` ``"dsjson"`` and ``source_id`` ``"o<i>"`` or
  ``"label"``. Their reward lives in ``value``; the default reward definition
  weighs type ``reward`` by its value (``value_types``), so re-joining an
  imported log gives back its rewards.
- Each entry of ``nba.other_action_outcomes`` becomes an outcome with its own
  ``action_id``, ``type``, ``value``, ``ts``, ``source`` and ``source_id``. The
  action must be one of the event's actions other than the chosen one, the
  type a known outcome type (:data:`nba.domain.OUTCOME_TYPES` or ``reward``)
  that can happen on the action's channel
  (:func:`nba.domain.outcome_channel_problem`). Re-joining counts them as
  ``other_action_outcomes``, as before the export.
- Each entry of ``nba.pulls`` becomes a touch of the line's ``nba.hcp_id``
  (:class:`nba.domain.Touch` checks it: a pull ``kind``, a non-empty
  ``content_id``, ``dwell_s`` null or >= 0); it may not be stamped before its
  decision. A touch listed by several lines is kept once.

Only contextual-bandit events are read; CCB/slates events (``c._slots``,
``_outcomes``) are refused. Bad lines fail with ``FILE:LINE: field '...': problem``.
:func:`import_dsjson` validates the whole file before writing anything, refuses
event ids already in the target log, and only ever adds new Parquet parts, so
nothing already written is lost.

>>> from datetime import date
>>> from nba.context import DecisionContext
>>> from nba.domain import HCPProfile
>>> ctx = DecisionContext(HCPProfile("h1", "cardiology", 7, "US", "aware", {"email"}),
...                       date(2026, 1, 5))
>>> shared, actions = dsjson_features(ctx.to_json(), ["VEL-EFF-02@email"], None)
>>> sorted(actions[0]["K"])
['email']
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import (
    OUTCOME_TYPES,
    PROBABILITY_TOLERANCE,
    REWARD_TYPE,
    Action,
    Decision,
    Outcome,
    SlateSlot,
    Touch,
    ValidationError,
    outcome_channel_problem,
)
from nba.features import Featurizer
from nba.features.dsjson import DSJSON_PREFIX_PATTERN, line_to_namespaces
from nba.logs import io
from nba.logs.io import LogError
from nba.logs.schema import DECISIONS, JOINED, OUTCOMES, TOUCHES

#: The DSJSON format version VW expects.
DSJSON_VERSION = "1"
#: Top-level key of our own fields in exported lines (VW ignores it).
NBA_KEY = "nba"
#: Top-level key of an imported foreign context.
FOREIGN_KEY = "dsjson"
FOREIGN_ACTIONS_KEY = "dsjson_actions"
#: Key, inside our block, of the outcomes about other suggestions than the chosen one.
OTHER_OUTCOMES_KEY = "other_action_outcomes"
#: Key, inside our block, of the HCP's pull touches inside the decision's reward window.
PULLS_KEY = "pulls"
_PULL_FIELDS = ("ts", "channel", "content_id", "origin", "kind", "topics", "content_ids", "dwell_s")
_US_PER_DAY = 86_400 * 1_000_000
#: Key, inside our block, of every slot of a served list (absent for one slot).
SLATE_KEY = "slate"
PROBABILITY_SLACK = 1e-4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class DsjsonError(LogError):
    """A DSJSON line (or a row to export) is invalid; names file, line and field."""


# ---------------------------------------------------------------- features
def _context_dict(context_json: str) -> dict[str, Any]:
    try:
        d = json.loads(context_json)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"context: not valid JSON: {exc.msg}") from exc
    if not isinstance(d, dict):
        raise ValidationError("context: must be a JSON object")
    return d


_FEATURIZERS: dict[str, Featurizer] = {}


def _featurizer(catalog: Catalog | None, version: str | None = None) -> Featurizer:
    """The one featurizer (:mod:`nba.features`) for ``catalog``.

    Without a catalog the packaged one is used, but only when ``version`` (the
    decision's ``catalog_version``, if known) is the packaged catalog's version:
    featurizing with another catalog would silently give other features.
    """
    cat = catalog if catalog is not None else Catalog.default()
    if catalog is None and version is not None and version != cat.version:
        raise ValidationError(
            f"no catalog snapshot for catalog_version {version} (the packaged catalog is "
            f"{cat.version}); store it under the log's catalog/ directory"
        )
    f = _FEATURIZERS.get(cat.version)
    if f is None:
        f = _FEATURIZERS[cat.version] = Featurizer(cat)
    return f


def dsjson_features(
    context_json: str,
    action_ids: Sequence[str],
    catalog: Catalog | None,
    catalog_version: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The VW JSON features of one decision: the single featurizer of DSJSON export.

    Parameters
    ----------
    context_json : str
        The logged ``context``: a :class:`nba.context.DecisionContext` as JSON,
        or an imported foreign context ``{"dsjson": {...}, "dsjson_actions": {...}}``
        (also accepted: ``{"dsjson": c}`` with ``c._multi`` listing the actions in order).
    action_ids : sequence of str, length n
        The eligible actions in logged order.
    catalog_version : str, optional
        The decision's ``catalog_version``; without ``catalog`` it must be the
        packaged catalog's version.
    catalog : Catalog or None
        The catalog the decision used (default: the packaged catalog); our own
        contexts are featurized by :class:`nba.features.Featurizer`, the same
        featurizer training and serving use, so a model VW learns from this
        export sees exactly the features of ``nba train``.

    Returns
    -------
    shared : dict
        Namespace name -> features (the shared example, ``c`` without ``_multi``).
    actions : list of dict, length n
        One feature object per action (the entries of ``c._multi``).

    Raises
    ------
    ValidationError
        When the context is neither form.
    """
    d = _context_dict(context_json)
    if FOREIGN_KEY in d:
        shared = d[FOREIGN_KEY]
        per_action = d.get(FOREIGN_ACTIONS_KEY) or {}
        if not isinstance(shared, dict) or not isinstance(per_action, dict):
            raise ValidationError(f"context: field '{FOREIGN_KEY}': must be JSON objects")
        shared = dict(shared)
        if "_multi" in shared:  # the other accepted form: {"dsjson": c} with c._multi in order
            multi = shared.pop("_multi")
            if (
                not isinstance(multi, list)
                or len(multi) != len(action_ids)
                or not all(isinstance(m, dict) for m in multi)
            ):
                raise ValidationError(
                    f"context: field '{FOREIGN_KEY}._multi': must be {len(action_ids)} objects, "
                    "one per action"
                )
            return shared, [dict(m) for m in multi]
        actions = [
            dict(per_action[a]) if isinstance(per_action.get(a), dict) else {"action": {"id": a}}
            for a in action_ids
        ]
        return shared, actions
    ctx = DecisionContext.from_dict(d)
    try:
        actions_parsed = [Action.parse(a) for a in action_ids]
        c = _featurizer(catalog, catalog_version).dsjson_c(ctx, actions_parsed)
    except ValidationError:
        raise
    except (KeyError, ValueError) as exc:
        raise ValidationError(
            f"context: cannot featurize actions {list(action_ids)}: {exc}"
        ) from exc
    multi = c.pop("_multi")
    return c, multi


# ------------------------------------------------------------------ export
def _timestamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dsjson_line(
    row: Mapping[str, Any],
    catalog: Catalog | None = None,
    other_outcomes: Sequence[Mapping[str, Any]] = (),
    pulls: Sequence[Mapping[str, Any]] = (),
) -> str:
    """One DSJSON line for one joined row (a dict with the :data:`JOINED` columns).

    ``other_outcomes`` are this decision's outcomes about other actions than the
    chosen one (dicts with the :data:`OUTCOMES` columns), written to
    ``nba.other_action_outcomes`` in the order given. ``pulls`` are the HCP's
    pull touches of the decision's reward window (dicts with the :data:`TOUCHES`
    columns, as :func:`window_pulls` gives them), written to ``nba.pulls`` in
    the order given.
    """
    shared, actions = dsjson_features(
        row["context"], row["action_ids"], catalog, row.get("catalog_version")
    )
    return _line(row, shared, actions, other_outcomes, pulls)


def _line(
    row: Mapping[str, Any],
    shared: dict[str, Any],
    actions: list[dict[str, Any]],
    other_outcomes: Sequence[Mapping[str, Any]],
    pulls: Sequence[Mapping[str, Any]],
) -> str:
    """The DSJSON line of ``row`` given its features (see :func:`dsjson_line`)."""
    if "_multi" in shared:
        raise DsjsonError(f"event {row['event_id']}: shared features may not use '_multi'")
    obj = _line_obj(row, {**shared, "_multi": actions}, other_outcomes, pulls)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _line_with_c_json(
    row: Mapping[str, Any],
    c_json: str,
    other_outcomes: Sequence[Mapping[str, Any]],
    pulls: Sequence[Mapping[str, Any]],
) -> str:
    """:func:`_line` with ``c`` given as its JSON text: the fields before and after
    ``c`` are encoded on their own and spliced around it (JSON objects compose, so
    the bytes are those of encoding the whole object)."""
    obj = _line_obj(row, None, other_outcomes, pulls)
    keys = list(obj)
    at = keys.index("c")
    head = json.dumps({k: obj[k] for k in keys[:at]}, separators=(",", ":"), ensure_ascii=False)
    tail = json.dumps(
        {k: obj[k] for k in keys[at + 1 :]}, separators=(",", ":"), ensure_ascii=False
    )
    return f'{head[:-1]},"c":{c_json},{tail[1:]}'


def _line_obj(
    row: Mapping[str, Any],
    c: Any,
    other_outcomes: Sequence[Mapping[str, Any]],
    pulls: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The object of one DSJSON line, its key ``c`` holding ``c``."""
    n = len(row["action_ids"])
    ci = int(row["chosen_index"])
    reward = float(row["reward"])
    obj: dict[str, Any] = {
        "_label_cost": -reward if reward != 0.0 else 0.0,
        "_label_probability": float(row["propensity"]),
        "_label_Action": ci + 1,
        "_labelIndex": ci,
    }
    if not row["activated"]:
        obj["_skipLearn"] = True
    obj.update(
        {
            "Timestamp": _timestamp(row["ts"]),
            "Version": DSJSON_VERSION,
            "EventId": row["event_id"],
            "a": list(range(1, n + 1)),
            "c": c,
            "p": [float(p) for p in row["probabilities"]],
            "VWState": {"m": row["model_version"]},
            NBA_KEY: {
                "action_ids": list(row["action_ids"]),
                "hcp_id": row["hcp_id"],
                "requester": row["requester"],
                "channels_requested": list(row["channels_requested"]),
                "catalog_version": row["catalog_version"],
                "policy": row["policy"],
                "reward_definition": row["reward_definition"],
                "reward_is_default": bool(row["reward_is_default"]),
            },
        }
    )
    if row.get("slate"):
        obj[NBA_KEY][SLATE_KEY] = [
            {"action_id": sl["action_id"], "probability": float(sl["probability"])}
            for sl in row["slate"]
        ]
    if other_outcomes:
        obj[NBA_KEY][OTHER_OUTCOMES_KEY] = _other_entries(other_outcomes)
    if pulls:
        obj[NBA_KEY][PULLS_KEY] = _pull_entries(pulls)
    return obj


def _other_entries(other_outcomes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects of ``nba.other_action_outcomes``."""
    return [
        {
            "action_id": o["action_id"],
            "type": o["type"],
            "value": float(o["value"]),
            "ts": _timestamp(o["ts"]),
            "source": o["source"],
            "source_id": o["source_id"],
        }
        for o in other_outcomes
    ]


def _pull_text(pull: Mapping[str, Any], texts: dict[int, tuple[Mapping[str, Any], str]]) -> str:
    """The JSON text of one ``nba.pulls`` object; ``texts`` keeps it by the touch
    row's identity (the windows of one HCP's decisions share their rows)."""
    hit = texts.get(id(pull))
    if hit is None or hit[0] is not pull:
        hit = texts[id(pull)] = (pull, _pull_json(pull))
    return hit[1]


def _pull_json(pull: Mapping[str, Any]) -> str:
    """``_json(_pull_entries([pull])[0])``: the strings and lists by orjson (whose
    strings are those of :func:`json.dumps` without ``ensure_ascii``, checked
    by the tests on every code point), ``dwell_s`` by :func:`_json` (orjson
    writes some floats otherwise, ``1e-05`` as ``0.00001``); anything orjson
    refuses (a lone surrogate, a type it does not know) by :func:`_json`."""
    entry = _pull_entries([pull])[0]
    dwell = entry.pop("dwell_s")
    try:
        head = orjson.dumps(entry).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        entry["dwell_s"] = dwell
        return _json(entry)
    return f'{head[:-1]},"dwell_s":{_json(dwell)}}}'


def _pull_entries(pulls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects of ``nba.pulls``."""
    return [
        {
            "ts": _timestamp(t["ts"]),
            "channel": t["channel"],
            "content_id": t["content_id"],
            "origin": t["origin"],
            "kind": t["kind"],
            "topics": list(t["topics"]),
            "content_ids": list(t["content_ids"]),
            "dwell_s": None if t["dwell_s"] is None else float(t["dwell_s"]),
        }
        for t in pulls
    ]


def window_pulls(
    touches: pa.Table,
    joined: pa.Table,
    window_days: float,
    as_of: datetime | None = None,
) -> Mapping[str, list[dict[str, Any]]]:
    """The pull touches of each decision's HCP inside the decision's reward window.

    Parameters
    ----------
    touches : pyarrow.Table
        Conforming to :data:`TOUCHES` (any rows; contacts and other HCPs' are ignored).
    joined : pyarrow.Table
        With ``event_id``, ``ts`` and ``hcp_id``, shape (n rows,).
    window_days : float
        The reward definition's window: touches with ``ts <= touch.ts <= ts +
        window`` (microseconds, rounded as the join rounds them) belong to a decision.
    as_of : datetime, optional
        The join's horizon (timezone-aware): touches stamped after it are left out.

    Returns
    -------
    mapping
        ``event_id`` -> touch rows (dicts with the :data:`TOUCHES` columns), in
        time order (ties by kind, channel, content id, then the order read);
        decisions without any are absent. A :class:`WindowPulls` (found
        column-wise; the bulk writer reads its lines' ``nba.pulls`` as text),
        or ``{}`` when there is no pull or no decision.

    Raises
    ------
    DsjsonError
        On a window that is not a positive number or a naive ``as_of``.
    """
    if (
        isinstance(window_days, bool)
        or not isinstance(window_days, int | float)
        or not (math.isfinite(window_days) and window_days > 0)
    ):
        raise DsjsonError(
            f"window_pulls: window_days must be a positive number, got {window_days!r}"
        )
    if as_of is not None and (as_of.tzinfo is None or as_of.utcoffset() is None):
        raise DsjsonError(f"window_pulls: as_of {as_of!r} must be timezone-aware")
    missing = [c for c in ("event_id", "ts", "hcp_id") if c not in joined.column_names]
    if missing:
        raise DsjsonError(f"joined table: missing column(s) {', '.join(missing)}")
    touches = io.conform(touches, "touches")
    pulls = touches.filter(pc.not_equal(touches.column("kind"), "contact"))
    if as_of is not None:
        horizon = pa.scalar(as_of.astimezone(UTC), type=TOUCHES.field("ts").type)
        pulls = pulls.filter(pc.less_equal(pulls.column("ts"), horizon))
    if pulls.num_rows == 0 or joined.num_rows == 0:
        return {}
    return WindowPulls(pulls, joined, window_days)


class WindowPulls(Mapping[str, list[dict[str, Any]]]):
    """The result of :func:`window_pulls`: ``event_id`` -> the pull rows of its
    decision's window, found column-wise.

    The pulls are sorted once by HCP, time, kind, channel and content id (a
    stable sort: ties keep the order read), and each decision's window is a
    range of them found by :func:`numpy.searchsorted`. The rows as dicts are
    made only when a value is read (the per-row writer); the bulk writer takes
    each line's ``nba.pulls`` member as text from the columns
    (:meth:`members`).

    Parameters
    ----------
    pulls : pyarrow.Table
        Pull touches conforming to :data:`TOUCHES`, shape (m rows,), m > 0.
    joined : pyarrow.Table
        With ``event_id``, ``ts`` and ``hcp_id``, shape (n rows,).
    window_days : float
        The reward window, a positive number (checked by :func:`window_pulls`).
    """

    def __init__(self, pulls: pa.Table, joined: pa.Table, window_days: float) -> None:
        us = pc.cast(pulls.column("ts"), pa.int64())
        keyed = pa.table(
            {
                "h": pulls.column("hcp_id"),
                "t": us,
                "k": pulls.column("kind"),
                "c": pulls.column("channel"),
                "i": pulls.column("content_id"),
            }
        )
        order = pc.sort_indices(
            keyed, sort_keys=[(name, "ascending") for name in ("h", "t", "k", "c", "i")]
        )
        self._pulls = pulls.take(order).combine_chunks()
        pull_us = np.asarray(us.take(order).to_numpy(), dtype=np.int64)
        hcps = self._pulls.column("hcp_id").combine_chunks().dictionary_encode()
        pull_h = np.asarray(hcps.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        dec_h = pc.index_in(joined.column("hcp_id"), value_set=hcps.dictionary)
        dec_h_np = np.asarray(pc.fill_null(dec_h, -1).to_numpy(), dtype=np.int64)
        lo_us = _us_of_column(joined.column("ts"))
        # |lo_us| < 2**58 (years 1-9999): a window beyond 2**62 us reaches every pull
        hi_us = lo_us + min(round(float(window_days) * _US_PER_DAY), 2**62)
        # times as ranks among every bound (the first place of an equal value), so
        # (HCP, time) packs into one int64; a plain sort (np.unique hashes first)
        bounds = np.sort(np.concatenate([pull_us, lo_us, hi_us]))
        width = len(bounds)
        pull_key = pull_h * width + np.searchsorted(bounds, pull_us)
        lo = np.searchsorted(pull_key, dec_h_np * width + np.searchsorted(bounds, lo_us), "left")
        hi = np.searchsorted(pull_key, dec_h_np * width + np.searchsorted(bounds, hi_us), "right")
        found = (dec_h_np >= 0) & (hi > lo)
        at = np.flatnonzero(found)
        events = joined.column("event_id").take(pa.array(at, pa.int64()))
        # a repeated event id keeps its last window, listed where it came first
        index = dict(zip(events.to_pylist(), at.tolist(), strict=True))
        rows = np.fromiter(index.values(), dtype=np.int64, count=len(index))
        self._keys = pa.array(list(index), pa.string())
        self._lo = lo[rows]
        self._hi = hi[rows]
        self._where = dict(zip(index, range(len(index)), strict=True))
        self._rows: list[dict[str, Any]] | None = None
        self._texts: pa.Array | None = None

    def __getitem__(self, event_id: str) -> list[dict[str, Any]]:
        k = self._where[event_id]
        if self._rows is None:
            self._rows = self._pulls.to_pylist()
        return self._rows[int(self._lo[k]) : int(self._hi[k])]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def members(self, event_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The ``nba.pulls`` member of each line (``,"pulls":[...]``, ``""`` for
        a decision without pulls), the bytes the per-row writer writes; null
        where a pull's text holds a null (a null inside its lists), a line the
        bulk writer leaves to the per-row writer.

        Parameters
        ----------
        event_ids : pyarrow.Array of string, shape (n,)

        Returns
        -------
        pyarrow.StringArray, shape (n,)
        """
        from nba.logs.dsjson_engine import _members, pull_texts

        if not len(self._keys):
            return pa.array([""] * len(event_ids), pa.string())
        pos = pc.index_in(event_ids, value_set=self._keys)
        valid = pos.is_valid().to_numpy(zero_copy_only=False)
        k = np.asarray(pc.fill_null(pos, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        counts = np.where(valid, self._hi[k] - self._lo[k], 0)
        if not counts.any():
            return pa.array([""] * len(counts), pa.string())
        if self._texts is None:
            p = self._pulls
            # the pull's columns as pull_texts reads them, the time as its integer
            rest = ("channel", "content_id", "origin", "kind", "topics", "content_ids", "dwell_s")
            items = pa.StructArray.from_arrays(
                [
                    pc.cast(p.column("ts"), pa.int64()).combine_chunks(),
                    *(p.column(name).combine_chunks() for name in rest),
                ],
                names=["ts_us", *rest],
            )
            self._texts = pull_texts(items)
        starts = np.cumsum(counts) - counts
        take = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
            np.where(valid, self._lo[k], 0) - starts, counts
        )
        return _members(PULLS_KEY, self._texts.take(pa.array(take)), counts)


def _us(ts: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _us_of_column(ts: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    """:func:`_us` of each value of a timestamp column, shape (n,).

    A column of microsecond timestamps with a time zone and no null holds those
    integers already (Arrow stores the instant, whatever the zone): they are read
    as they are, without a Python datetime per value (half the time of
    :func:`window_pulls` on a log of 14,059 decisions); any other column goes
    through its values (and a null or a naive time fails as it always did).
    """
    t = ts.type
    if pa.types.is_timestamp(t) and t.unit == "us" and t.tz is not None and not ts.null_count:
        return np.asarray(pc.cast(ts, pa.int64()).to_numpy(), dtype=np.int64)
    return np.array([_us(v) for v in ts.to_pylist()], dtype=np.int64)


def other_action_outcomes(outcomes: pa.Table, joined: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """The outcomes about another action than the chosen one, per joined decision.

    Parameters
    ----------
    outcomes : pyarrow.Table
        Conforming to :data:`OUTCOMES` (any rows; others are ignored).
    joined : pyarrow.Table
        With ``event_id`` and ``chosen_action_id``.

    Returns
    -------
    dict
        ``event_id`` -> outcome rows (dicts), de-duplicated on ``(type,
        source_id)`` keeping the earliest (as the join does), in time order.
    """
    outcomes = io.conform(outcomes, "outcomes")
    aid = outcomes.column("action_id")
    if aid.null_count == len(aid):
        return {}
    chosen = dict(
        zip(
            joined.column("event_id").to_pylist(),
            joined.column("chosen_action_id").to_pylist(),
            strict=True,
        )
    )
    rows = outcomes.filter(pc.is_valid(aid)).to_pylist()
    rows.sort(key=lambda o: (o["ts"], o["value"]))
    out: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for o in rows:
        key = (o["event_id"], o["type"], o["source_id"])
        c = chosen.get(o["event_id"])
        if c is None or key in seen:
            continue
        seen.add(key)
        if o["action_id"] != c:
            out.setdefault(o["event_id"], []).append(o)
    return out


def _other_texts(outcomes: pa.Table | None, joined: pa.Table) -> pa.Array | None:
    """The ``nba.other_action_outcomes`` member of each joined row's line
    (``,"other_action_outcomes":[...]``), written column-wise: the bytes that
    :func:`other_action_outcomes` and :func:`_other_entries` give.

    Parameters
    ----------
    outcomes : pyarrow.Table or None
        Conforming to :data:`OUTCOMES`.
    joined : pyarrow.Table
        With ``event_id`` and ``chosen_action_id``, shape (n rows,).

    Returns
    -------
    pyarrow.StringArray, shape (n,), or None
        Null for a row without such outcomes; None (the caller goes through
        :func:`other_action_outcomes`) when the table holds what this writer
        does not cover: a repeated event id among the joined rows, a null, a
        NaN or negative-zero value (whose order Python's sort decides
        differently), or a time outside years 1000-9999.
    """
    n = joined.num_rows
    none = pa.nulls(n, pa.string())
    if outcomes is None:
        return none
    outcomes = io.conform(outcomes, "outcomes")
    aid = outcomes.column("action_id")
    if aid.null_count == len(aid) or n == 0:
        return none
    events = joined.column("event_id").combine_chunks()
    if events.null_count or pc.count_distinct(events).as_py() != n:
        return None
    o = outcomes.filter(pc.is_valid(aid)).combine_chunks()
    if any(o.column(c).null_count for c in o.column_names):
        return None
    row = pc.index_in(o.column("event_id"), value_set=events)
    o = o.filter(pc.is_valid(row))
    if o.num_rows == 0:
        return none
    value = o.column("value").to_numpy()
    if np.isnan(value).any() or np.any(np.signbit(value) & (value == 0.0)):
        return None
    # the rows in time order (ties by value), stable as Python's sort
    o = o.take(pc.sort_indices(o, sort_keys=[("ts", "ascending"), ("value", "ascending")]))
    rows = pc.index_in(o.column("event_id"), value_set=events).to_numpy().astype(np.int64)
    ts_us = o.column("ts").cast(pa.int64()).to_numpy()
    if ts_us.min() < _YEAR_US[0] or ts_us.max() > _YEAR_US[1]:
        return None
    # the earliest of each (event, type, source_id) counts, whatever its action
    types = pc.dictionary_encode(o.column("type").combine_chunks())
    sources = pc.dictionary_encode(o.column("source_id").combine_chunks())
    nt, ns = len(types.dictionary), len(sources.dictionary)
    if n * nt * ns >= 2**62:
        return None
    key = (rows * nt + types.indices.to_numpy()) * ns + sources.indices.to_numpy()
    first = np.zeros(len(key), dtype=bool)
    first[np.unique(key, return_index=True)[1]] = True
    chosen = joined.column("chosen_action_id").combine_chunks().take(pa.array(rows))
    keep = first & pc.not_equal(o.column("action_id"), chosen).to_numpy(zero_copy_only=False)
    if not keep.any():
        return none
    o = o.filter(pa.array(keep))
    rows = rows[keep]
    col = o.column
    texts = pc.binary_join_element_wise(
        '{"action_id":',
        _str_texts(col("action_id").combine_chunks()),
        ',"type":',
        _str_texts(col("type").combine_chunks()),
        ',"value":',
        _float_texts(col("value").to_numpy()),
        ',"ts":"',
        pa.array(
            np.datetime_as_string(ts_us[keep].astype("datetime64[us]"), unit="us"), pa.string()
        ),
        'Z","source":',
        _str_texts(col("source").combine_chunks()),
        ',"source_id":',
        _str_texts(col("source_id").combine_chunks()),
        "}",
        "",
    )
    by_row = np.argsort(rows, kind="stable")  # each row's outcomes, still in time order
    counts = np.bincount(rows, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    lists = pc.binary_join(_lists(offsets, texts.take(pa.array(by_row))), ",")
    member = pc.binary_join_element_wise(f',"{OTHER_OUTCOMES_KEY}":[', lists, "]", "")
    return pc.if_else(pa.array(counts > 0), member, pa.scalar(None, pa.string()))


def iter_dsjson(
    joined: pa.Table,
    catalogs: Mapping[str, Catalog] | None = None,
    batch_size: int = 4096,
    outcomes: pa.Table | None = None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    bulk: bool = True,
) -> Iterator[str]:
    """DSJSON lines (without newline) for every row of a joined table, in order.

    Parameters
    ----------
    joined : pyarrow.Table
        Schema :data:`nba.logs.schema.JOINED`.
    catalogs : mapping of catalog_version -> Catalog, optional
        Catalog of each version, for item features; missing versions get none.
    outcomes : pyarrow.Table, optional
        The log's outcomes (:data:`OUTCOMES`); those about another action than
        a decision's chosen one go to its ``nba.other_action_outcomes``.
        Without it no line carries any.
    pulls : mapping of event_id -> touch rows, optional
        Each decision's pull touches of its reward window (:func:`window_pulls`),
        written to its ``nba.pulls``. Without it no line carries any.
    bulk : bool, default True
        Featurize our own contexts a batch at a time with the bulk featurizer
        (:meth:`nba.features.Featurizer.featurize_table`, the path ``nba
        train`` uses) and write the lines column-wise in Arrow, instead of one
        decision at a time. The lines are the same byte for byte; a batch the
        bulk featurizer refuses is featurized row by row, so a bad row fails
        with the same error either way, and rows the column-wise writer does
        not cover (imported contexts, nulls) are written row by row in place.
    """
    for lines in _iter_lines(joined, catalogs, batch_size, outcomes, pulls, bulk):
        if isinstance(lines, str):
            yield lines
        else:
            yield from lines.to_pylist()


def _iter_lines(
    joined: pa.Table,
    catalogs: Mapping[str, Catalog] | None,
    batch_size: int,
    outcomes: pa.Table | None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    bulk: bool,
) -> Iterator[str | pa.Array]:
    """The lines of :func:`iter_dsjson`, in order: a run of lines written
    column-wise as one string array (no nulls), or one line written by the
    per-row path."""
    table, other_texts = _prepare(joined, outcomes, bulk)
    yield from _iter_range(
        table, joined, other_texts, catalogs, batch_size, outcomes, pulls, bulk, 0, table.num_rows
    )


def _prepare(
    joined: pa.Table, outcomes: pa.Table | None, bulk: bool
) -> tuple[pa.Table, pa.Array | None]:
    """The joined table's columns the lines read and, on the bulk path, each
    row's outcomes about other suggestions as text (:func:`_other_texts`; None
    where that writer does not cover them). Raises :class:`DsjsonError` for a
    missing column."""
    missing = [f.name for f in JOINED if f.name not in joined.column_names]
    if missing:
        raise DsjsonError(f"joined table: missing column(s) {', '.join(missing)}")
    table = joined.select(JOINED.names)
    # the outcomes about other suggestions: as text per row, column-wise, where
    # covered; as rows (the per-row path's input) only when needed
    other_texts = _other_texts(outcomes, table) if bulk else None
    return table, other_texts


def _iter_range(
    table: pa.Table,
    joined: pa.Table,
    other_texts: pa.Array | None,
    catalogs: Mapping[str, Catalog] | None,
    batch_size: int,
    outcomes: pa.Table | None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    bulk: bool,
    begin: int,
    end: int,
    newline: bool = False,
) -> Iterator[str | pa.Array]:
    """The lines of rows ``begin`` to ``end`` (exclusive) of ``table`` (from
    :func:`_prepare`, ``other_texts`` with it), as :func:`_iter_lines` gives
    them; ``joined`` is the caller's whole table (for the per-row path's
    outcomes about other suggestions). With ``newline`` the column-wise lines
    end with a newline (the lines of the per-row path, ``str``, still do not)."""
    cats = dict(catalogs or {})
    window = pulls or {}
    cache: dict[str, str] = {}
    pull_texts: dict[int, tuple[Mapping[str, Any], str]] = {}
    others_rows: dict[str, list[dict[str, Any]]] | None = None
    start_row = begin
    span = table.slice(begin, end - begin)
    if bulk:  # the bulk featurizer's cost is per call: give it whole batches
        span = span.combine_chunks()
    for batch in span.to_batches(max_chunksize=batch_size):
        if batch.num_rows == 0:
            continue
        fast: pa.Array | None = None
        if bulk:
            c_texts = _bulk_features(batch, cats, cache)
            if other_texts is None and others_rows is None:
                others_rows = {} if outcomes is None else other_action_outcomes(outcomes, joined)
            others: Mapping[str, Sequence[Mapping[str, Any]]] | pa.Array = (
                other_texts.slice(start_row, batch.num_rows)
                if other_texts is not None
                else others_rows or {}
            )
            fast = _bulk_line_array(batch, c_texts, others, window, pull_texts, newline)
        start_row += batch.num_rows
        if fast is not None and fast.null_count == 0:
            yield fast
            continue
        ready = (
            np.zeros(batch.num_rows, dtype=bool)
            if fast is None
            else fast.is_valid().to_numpy(zero_copy_only=False)
        )
        rows: list[dict[str, Any]] | None = None
        start = 0
        for i in np.flatnonzero(~ready).tolist():
            if i > start:
                assert fast is not None
                yield fast.slice(start, i - start)
            start = i + 1
            if rows is None:
                rows = batch.to_pylist()
            if others_rows is None:
                others_rows = {} if outcomes is None else other_action_outcomes(outcomes, joined)
            row = rows[i]
            eid = row["event_id"]
            try:
                shared, actions = dsjson_features(
                    row["context"],
                    row["action_ids"],
                    cats.get(row["catalog_version"]),
                    row["catalog_version"],
                )
                yield _line(row, shared, actions, others_rows.get(eid, ()), window.get(eid, ()))
            except ValidationError as exc:
                if isinstance(exc, DsjsonError):
                    raise
                raise DsjsonError(f"event {eid}: {exc}") from exc
        if start < batch.num_rows:
            assert fast is not None
            yield fast.slice(start)


def _bulk_features(
    batch: pa.RecordBatch,
    cats: Mapping[str, Catalog],
    cache: dict[str, str],
) -> list[pa.Array | str]:
    """The JSON text of ``c`` (what :func:`dsjson_features` gives, encoded) of a
    batch's own (not imported) contexts, through the bulk featurizer, one catalog
    version at a time.

    The featurizer's lines are converted to JSON and the ``_multi`` lists
    joined by Arrow's string kernels, a whole batch at a time.

    Parameters
    ----------
    batch : pyarrow.RecordBatch
        Rows of the joined table, shape (n rows,).
    cats : mapping of catalog_version -> Catalog
    cache : dict
        VW action line of an unusual form -> its JSON object text, shared
        across batches.

    Returns
    -------
    list of pyarrow.Array of string (shape (n,)) and str
        Pieces whose element-wise join is the ``c`` text per row (null for a
        row left to :func:`dsjson_features`: an imported foreign context, or a
        row of a catalog version whose rows the bulk featurizer refused): one
        array holding the nulls, or, for a batch of one catalog version
        without foreign rows, the shared namespaces' and the ``_multi`` texts
        apart (no nulls), so that the line's own join copies the action
        objects once instead of twice.
    """
    n = batch.num_rows
    ctx = batch.column("context")
    # an imported context, or anything else that mentions the key (the per-row path
    # decides what it is)
    if ctx.null_count == 0 and not _mentions(ctx, f'"{FOREIGN_KEY}'.encode()):
        foreign = np.zeros(n, dtype=bool)  # the usual batch: no row to look at
    else:
        foreign = pc.or_(
            pc.match_substring_regex(ctx, DSJSON_PREFIX_PATTERN),
            pc.match_substring(ctx, f'"{FOREIGN_KEY}'),
        ).to_numpy(zero_copy_only=False)
    versions = batch.column("catalog_version").dictionary_encode()
    codes = versions.indices.to_numpy(zero_copy_only=False)
    table = pa.table(
        {
            "context": ctx,
            "action_ids": batch.column("action_ids"),
            "event_id": batch.column("event_id"),
        }
    )
    if len(cache) > _CACHE_LINES:
        cache.clear()
    pieces: list[pa.Array] = []
    where: list[npt.NDArray[np.int64]] = []
    for code, version in enumerate(versions.dictionary.to_pylist()):
        rows = np.flatnonzero((codes == code) & ~foreign)
        if not len(rows):
            continue
        part = table if len(rows) == n else table.take(pa.array(rows, pa.int64()))
        try:
            fb = _featurizer(cats.get(version), version).featurize_table(part, action_json=True)
        except (ValidationError, KeyError, ValueError, pa.ArrowException):
            continue  # the per-row path featurizes these rows and names the problem
        # the shared namespaces' JSON as the featurizer wrote it from its own
        # token tables, else converted from its VW text
        heads = fb.shared_json if fb.shared_json is not None else _shared_heads(fb.shared)
        per_action = (
            fb.actions_json if fb.actions_json is not None else _action_texts(fb.actions, cache)
        )
        multi = pc.binary_join(_lists(fb.offsets, per_action), ",")
        if len(rows) == n:  # one version, no foreign row: in order, joined in the line
            return [heads, '"_multi":[', multi, "]}"]
        pieces.append(pc.binary_join_element_wise(heads, '"_multi":[', multi, "]}", ""))
        where.append(rows)
    if not pieces:
        return [pa.nulls(n, pa.string())]
    positions = np.concatenate(where)
    order = np.full(n, -1, dtype=np.int64)
    order[positions] = np.arange(len(positions))
    return [pa.concat_arrays(pieces).take(pa.array(order, mask=order < 0))]


def _mentions(strings: pa.Array, needle: bytes) -> bool:
    """Whether any string of ``strings`` (string or large string, shape (n,))
    holds ``needle``: one search of the bytes they span (a match across two
    strings can only say yes where the strings' own test would say no, never the
    reverse, so a False is exact)."""
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        return True  # another layout (string views): "maybe", the caller looks row by row
    return _span(strings).tobytes().find(needle) >= 0


def _span(strings: pa.Array) -> memoryview:
    """The bytes of the strings of ``strings`` (string or large string, shape
    (n,), any slice of an array), back to back: a view of its data buffer."""
    if len(strings) == 0:
        return memoryview(b"")
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        strings = strings.cast(pa.large_string())
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=width)
    lo, hi = int(offsets[strings.offset]), int(offsets[strings.offset + len(strings)])
    data = strings.buffers()[2]
    if data is None or hi <= lo:
        return memoryview(b"")
    return memoryview(data)[lo:hi]


def _shared_heads(shared: pa.Array) -> pa.Array:
    """The start of ``c`` per shared line (``shared |ns ...``): its namespaces as
    an open JSON object (:func:`_namespaces_json` with ``head``), null where the
    line names a ``_multi`` namespace (the per-row path refuses it).

    Parameters
    ----------
    shared : pyarrow.Array of string, shape (n,)

    Returns
    -------
    pyarrow.Array of string, shape (n,)
    """
    prefix = "shared "
    starts = pc.starts_with(shared, prefix)
    if pc.all(starts).as_py():  # as always: cut the prefix bytewise (it is ASCII)
        raw = pa.large_binary() if pa.types.is_large_string(shared.type) else pa.binary()
        body = pc.binary_slice(shared.view(raw), len(prefix), 2**31 - 1)
        body = body.view(shared.type)
    else:
        body = pc.utf8_slice_codeunits(shared, len(prefix))
    usual = pc.and_(starts, pc.match_substring_regex(body, _VW_LINE)).to_numpy(zero_copy_only=False)
    usual &= ~pc.match_substring_regex(body, r"(^| )\|_multi( |$)").to_numpy(zero_copy_only=False)
    heads, repeated = _segment_heads(body)
    usual &= ~repeated
    if usual.all():
        return heads
    texts: list[str | None] = heads.to_pylist()
    for i in np.flatnonzero(~usual).tolist():  # the general conversion
        ns = line_to_namespaces(shared[i].as_py()[len(prefix) :])
        texts[i] = None if "_multi" in ns else (_json(ns)[:-1] + "," if ns else "{")
    return pa.array(texts, pa.string())


def _segment_heads(body: pa.Array) -> tuple[pa.Array, npt.NDArray[np.bool_]]:
    """``_namespaces_json(body, head=True)`` and ``_repeated_names(body)`` of
    shared lines of the form :data:`_VW_LINE` (the caller checks), each
    distinct namespace segment converted once: an HCP's profile namespace, the
    request and the calendar recur over many decisions, so a batch holds a
    fraction of its segments' tokens as distinct segments.

    A line of that form has no ``|`` but at its namespaces' starts and single
    spaces, so cut at ``|`` it gives an empty piece, then each namespace with
    the space before the next one. Each distinct namespace becomes
    ``"ns":{...},`` (the open head form without its opening brace) and the
    line ``{`` and its namespaces' texts; a line repeats a name when one of
    its namespaces does, or when two of its namespaces have the same name.

    Parameters
    ----------
    body : pyarrow.Array of string, shape (n,)

    Returns
    -------
    heads : pyarrow.Array of string, shape (n,)
    repeated : numpy.ndarray of bool, shape (n,)
    """
    n = len(body)
    segs = pc.split_pattern(body, "|")
    enc = pc.dictionary_encode(pc.list_flatten(segs))
    words: list[str] = enc.dictionary.to_pylist()
    # each distinct namespace alone, without the space before the next one
    alone = ["|" + w[:-1] if w.endswith(" ") else "|" + w for w in words if w]
    empty = [i for i, w in enumerate(words) if not w]
    seg_lines = pa.array(alone, pa.string())
    toks = _Tokens.of(seg_lines)
    seg_repeated = _repeated_names(seg_lines, toks)
    seg_texts = pc.binary_slice(
        _namespaces_json(seg_lines, head=True, toks=toks).view(pa.binary()), 1, 2**31 - 1
    ).view(pa.string())
    # back to the dictionary's order: the empty piece writes nothing
    real = np.ones(len(words), dtype=bool)
    real[empty] = False
    at = np.full(len(words), -1, dtype=np.int64)
    at[real] = np.arange(len(alone))
    texts = pa.concat_arrays([seg_texts, pa.array([""], pa.string())])
    idx = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    word_text = np.where(real, at, len(alone))
    pieces = texts.take(pa.array(word_text[idx]))
    off = np.asarray(segs.offsets, dtype=np.int64)
    heads = pc.binary_join_element_wise("{", pc.binary_join(_lists(off, pieces), ""), "")
    # repeats: inside a namespace, or a namespace named twice in a line
    row = np.asarray(pc.list_parent_indices(segs).to_numpy(zero_copy_only=False), dtype=np.int64)
    seg_rep = np.zeros(len(words), dtype=bool)
    seg_rep[real] = seg_repeated
    repeated = np.zeros(n, dtype=bool)
    repeated[row[seg_rep[idx]]] = True
    names: dict[str, int] = {}
    ns_code = np.full(len(words), -1, dtype=np.int64)
    ns_code[real] = [names.setdefault(w.split(" ", 1)[0], len(names)) for w in alone]
    code = ns_code[idx]
    named = code >= 0
    key = np.sort(row[named] * (len(names) + 1) + code[named])
    twice = key[1:][key[1:] == key[:-1]] // (len(names) + 1)
    repeated[twice] = True
    return heads, repeated


def _action_texts(actions: pa.Array, cache: dict[str, str]) -> pa.Array:
    """Each action line's JSON object (what ``json.dumps(line_to_namespaces(line))``
    writes): lines of the featurizer's usual form (:data:`_ACTION_LINE`) in
    Arrow, any other through the general conversion (``cache`` keeps those).

    Parameters
    ----------
    actions : pyarrow.Array of string, shape (m,)
    cache : dict
        Action line -> its JSON text, for lines of another form.

    Returns
    -------
    pyarrow.Array of string, shape (m,)
    """
    usual = pc.match_substring_regex(actions, _ACTION_LINE).to_numpy(zero_copy_only=False)
    texts = _namespaces_json(actions)
    if usual.all():
        return texts
    out: list[str] = texts.to_pylist()
    for j in np.flatnonzero(~usual).tolist():
        line = actions[j].as_py()
        text = cache.get(line)
        if text is None:
            text = cache[line] = _json(line_to_namespaces(line))
        out[j] = text
    return pa.array(out, pa.string())


def _lists(offsets: npt.NDArray[np.int64], values: pa.Array) -> pa.Array:
    """A list array of ``values`` cut at ``offsets`` (shape (n + 1,), from 0)."""
    off = np.asarray(offsets, dtype=np.int64)
    off = off - off[0]
    return pa.LargeListArray.from_arrays(pa.array(off, pa.int64()), values)


def _list_texts(column: pa.Array, texts: pa.Array) -> pa.Array:
    """Each list of ``column`` written as its elements' ``texts`` (the flattened
    values, in order) joined by commas."""
    return pc.binary_join(_lists(np.asarray(column.offsets), texts), ",")


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'

#: the bytes :func:`json.dumps` escapes in a string (a quote, a backslash, the
#: control characters below U+0020); in UTF-8 every byte of a character beyond
#: ASCII is 0x80 or more, so a byte test is exact
_ESCAPED_BYTES = np.zeros(256, dtype=bool)
_ESCAPED_BYTES[:0x20] = True
_ESCAPED_BYTES[[ord('"'), ord("\\")]] = True


def _needs_escape(values: pa.Array) -> bool:
    """Whether a string of ``values`` (shape (n,)) holds a character
    :func:`json.dumps` escapes: one test of the bytes the strings span (bytes
    under a null slot can only say yes, which costs the slow path, never a
    wrong text)."""
    if len(values) == 0:
        return False
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return bool(pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py())
    span = np.frombuffer(_span(values), dtype=np.uint8)
    return bool(_ESCAPED_BYTES[span].any())


def _str_texts(values: pa.Array) -> pa.Array:
    """Each string as :func:`json.dumps` writes it (non-ASCII kept)."""
    if _needs_escape(values):
        return pa.array([_json(v) for v in values.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', values, '"', "")


def _str_parts(values: pa.Array) -> list[pa.Array | str]:
    """Pieces that write each string as :func:`json.dumps` does, for an
    element-wise join: the string between quote pieces when none needs
    escaping (no copy of the column), else :func:`_str_texts`."""
    if _needs_escape(values):
        return [_str_texts(values)]
    return ['"', values, '"']


def _str_list_parts(column: pa.Array) -> list[pa.Array | str]:
    """Pieces that write each list of strings of ``column`` (no null list,
    shape (n,)) as the inside of its JSON array (``"a","b"``, empty for an
    empty list), for an element-wise join: when no string needs escaping, each
    list joined by ``","`` in one kernel (no text per element); else each
    element through :func:`_str_texts`."""
    flat = pc.list_flatten(column)
    if _needs_escape(flat):
        return [_list_texts(column, _str_texts(flat))]
    joined = pc.binary_join(column, '","')
    lengths = pc.list_value_length(column)
    if len(column) == 0 or pc.min(lengths).as_py() > 0:
        return ['"', joined, '"']
    quoted = pc.binary_join_element_wise('"', joined, '"', "")
    return [pc.if_else(pc.equal(lengths, 0), "", quoted)]


def _float_texts(values: npt.NDArray[np.float64]) -> pa.Array:
    """Each float as :func:`json.dumps` writes it (``repr``; ``NaN``/``Infinity``),
    each distinct value (bit for bit) written once.

    Parameters
    ----------
    values : numpy.ndarray of float64, shape (n,)

    Returns
    -------
    pyarrow.Array of string, shape (n,)
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    distinct = pa.array(values.view(np.int64)).dictionary_encode()
    uniq = distinct.dictionary.to_numpy().view(np.float64)
    texts = [_json(v) for v in uniq.tolist()]
    return pa.array(texts, pa.string()).take(distinct.indices)


#: columns the bulk line writer reads; a batch with a null in any goes row by row
_LINE_COLUMNS = (
    "reward",
    "propensity",
    "chosen_index",
    "activated",
    "ts",
    "event_id",
    "action_ids",
    "probabilities",
    "model_version",
    "hcp_id",
    "requester",
    "channels_requested",
    "catalog_version",
    "policy",
    "reward_definition",
    "reward_is_default",
)
#: years ``strftime("%Y")`` writes with four digits, as numpy does
_YEAR_US = (
    (datetime(1000, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US,
    (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _ONE_US,
)


def _bulk_lines(
    batch: pa.RecordBatch,
    c_texts: pa.Array | Sequence[pa.Array | str],
    others: Mapping[str, Sequence[Mapping[str, Any]]],
    window: Mapping[str, Sequence[Mapping[str, Any]]],
    pull_texts: dict[int, tuple[Mapping[str, Any], str]],
) -> list[str | None]:
    """:func:`_bulk_line_array` as a list: each row's line, or None for a row
    left to the per-row path."""
    lines = _bulk_line_array(batch, c_texts, others, window, pull_texts)
    return [None] * batch.num_rows if lines is None else lines.to_pylist()


def _bulk_line_array(
    batch: pa.RecordBatch,
    c_texts: pa.Array | Sequence[pa.Array | str],
    others: Mapping[str, Sequence[Mapping[str, Any]]] | pa.Array,
    window: Mapping[str, Sequence[Mapping[str, Any]]],
    pull_texts: dict[int, tuple[Mapping[str, Any], str]],
    newline: bool = False,
) -> pa.Array | None:
    """The DSJSON lines of a batch written column-wise: the bytes of :func:`_line`
    (each followed by a newline with ``newline``).

    Parameters
    ----------
    batch : pyarrow.RecordBatch
        Rows of the joined table, shape (n rows,).
    c_texts : pyarrow.Array of string, shape (n,), or pieces
        Each row's ``c`` as JSON text, null for a row left to the per-row
        path; or the pieces :func:`_bulk_features` gives (their element-wise
        join is that text; only a lone array holds nulls).
    others, window : mapping of event_id -> rows
        Outcomes about other actions and pulls, as for :func:`iter_dsjson`;
        ``others`` may also be the batch's rows of :func:`_other_texts`
        (string array, shape (n,)).
    pull_texts : dict
        Each pull's JSON text by its row's identity (:func:`_pull_text`),
        shared across batches.

    Returns
    -------
    pyarrow.StringArray, shape (n,), or None
        Each row's line, null for a row left to the per-row path (a null
        ``c``); None (every row left to it) when a column the writer reads
        holds a null or a timestamp outside years 1000-9999.
    """
    n = batch.num_rows
    col = batch.column
    c_parts: list[pa.Array | str] = [c_texts] if isinstance(c_texts, pa.Array) else list(c_texts)
    if n == 0 or any(isinstance(p, pa.Array) and p.null_count == n for p in c_parts):
        return None
    if any(col(name).null_count for name in _LINE_COLUMNS):
        return None
    ts_us = col("ts").cast(pa.int64()).to_numpy()
    if ts_us.min() < _YEAR_US[0] or ts_us.max() > _YEAR_US[1]:
        return None
    slate = col("slate")
    slots = pc.list_flatten(slate)
    off = np.asarray(slate.offsets)
    if off[-1] - off[0] != len(slots) or slots.null_count:  # a null list holding values
        return None
    if any(slots.field(k).null_count for k in range(slots.type.num_fields)):
        return None
    probs = col("probabilities")
    channels = col("channels_requested")
    action_ids = col("action_ids")
    if pc.list_flatten(channels).null_count or pc.list_flatten(action_ids).null_count:
        return None
    if pc.list_flatten(probs).null_count:
        return None

    reward = col("reward").to_numpy()
    ci = col("chosen_index").to_numpy().astype(np.int64)
    activated = col("activated").to_numpy(zero_copy_only=False)
    n_actions = pc.list_value_length(action_ids).to_numpy()
    a_texts = {k: _json(list(range(1, k + 1))) for k in np.unique(n_actions).tolist()}
    has_slate = pc.fill_null(pc.greater(pc.list_value_length(slate), 0), False)
    slot_texts = pc.binary_join_element_wise(
        '{"action_id":',
        _str_texts(slots.field("action_id")),
        ',"probability":',
        _float_texts(slots.field("probability").to_numpy(zero_copy_only=False)),
        "}",
        "",
    )
    slate_texts = pc.if_else(
        has_slate,
        pc.binary_join_element_wise(',"slate":[', _list_texts(slate, slot_texts), "]", ""),
        "",
    )
    extras: list[str] = [""] * n
    other_rows = others if isinstance(others, Mapping) else {}
    # the pulls found column-wise give their members as text; rows (a caller's
    # own mapping) are written here, after the outcomes about other suggestions
    pull_members = window.members(col("event_id")) if isinstance(window, WindowPulls) else None
    window_rows = {} if pull_members is not None else window
    if other_rows or window_rows:
        for i, eid in enumerate(col("event_id").to_pylist()):
            other, pulled = other_rows.get(eid), window_rows.get(eid)
            if other or pulled:
                text = ""
                if other:
                    text += f',"{OTHER_OUTCOMES_KEY}":{_json(_other_entries(other))}'
                if pulled:
                    text += (
                        f',"{PULLS_KEY}":[{",".join(_pull_text(t, pull_texts) for t in pulled)}]'
                    )
                extras[i] = text
    extra_texts = pa.array(extras, pa.string())
    if not isinstance(others, Mapping):  # the other outcomes' texts come first
        extra_texts = pc.binary_join_element_wise(pc.fill_null(others, ""), extra_texts, "")
    if pull_members is not None:
        extra_texts = pc.binary_join_element_wise(extra_texts, pull_members, "")
    lines = pc.binary_join_element_wise(
        '{"_label_cost":',
        _float_texts(np.where(reward != 0.0, -reward, 0.0)),
        ',"_label_probability":',
        _float_texts(col("propensity").to_numpy()),
        ',"_label_Action":',
        pa.array((ci + 1).astype(str), pa.string()),
        ',"_labelIndex":',
        pa.array(ci.astype(str), pa.string()),
        pa.array(np.where(activated, "", ',"_skipLearn":true'), pa.string()),
        ',"Timestamp":"',
        pa.array(np.datetime_as_string(ts_us.astype("datetime64[us]"), unit="us"), pa.string()),
        f'Z","Version":{_json(DSJSON_VERSION)},"EventId":',
        *_str_parts(col("event_id")),
        ',"a":',
        pa.array([a_texts[k] for k in n_actions.tolist()], pa.string()),
        ',"c":',
        *c_parts,
        ',"p":[',
        _list_texts(probs, _float_texts(pc.list_flatten(probs).to_numpy())),
        '],"VWState":{"m":',
        *_str_parts(col("model_version")),
        f'}},"{NBA_KEY}":{{"action_ids":[',
        *_str_list_parts(action_ids),
        '],"hcp_id":',
        *_str_parts(col("hcp_id")),
        ',"requester":',
        *_str_parts(col("requester")),
        ',"channels_requested":[',
        *_str_list_parts(channels),
        '],"catalog_version":',
        *_str_parts(col("catalog_version")),
        ',"policy":',
        *_str_parts(col("policy")),
        ',"reward_definition":',
        *_str_parts(col("reward_definition")),
        ',"reward_is_default":',
        pc.if_else(col("reward_is_default"), "true", "false"),
        slate_texts,
        extra_texts,
        "}}\n" if newline else "}}",
        "",
    )
    return lines


# An action line of the featurizer (nba.features.tokens.cross_tokens and the
# action namespaces), its x tokens in their fixed order, each at most once: its
# feature names are unique, so no dict merges anything, and it holds no character
# JSON would escape. Lines of this form are converted by _namespaces_json; any
# other line goes through line_to_namespaces and json.dumps.
#: what str.split() splits on besides ASCII space and control characters
_UNICODE_SPACE = "\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NAME = r'[^ "\\\x00-\x1f|:,{}' + _UNICODE_SPACE + "]+"
_INT = r"-?(?:0|[1-9][0-9]{0,11})"
_NUM = _INT + r"(?:\.[0-9]{3})?"
_ACTION_LINE = (
    rf"^\|T {_NAME} \|K {_NAME} \|F {_NAME} \|I {_NAME} \|x"
    rf"(?: same_last)?(?: ch_t7:{_INT})?(?: ch_t30:{_INT})?(?: ch_e30:{_INT})?"
    rf"(?: ch_dst_none| ch_dst:{_INT} ch_dstb={_NAME})? aff_{_NAME}:{_NUM}(?: nocons)?"
    rf"(?: top_e90:{_INT})? st_top={_NAME}(?: tc_e90:{_INT})?(?: it_ago={_NAME})?"
    rf"(?: it_int:{_NUM})?(?: it_pull:{_INT} it_pull_{_NAME}:{_INT})?(?: sp_top)?(?: sp_ch)?$"
)


# A line of VW namespaces (``|ns tok tok |ns2 ...``) converts to the JSON of
# ``line_to_namespaces`` with Arrow's string kernels when it is of this form:
# single spaces, names free of anything JSON would escape or str.split() would
# split on, values as the featurizer writes them (integers, or three decimals)
# and -- checked apart -- no name twice in one namespace and no namespace twice.
_VW_LINE = rf"^(?:\|{_NAME}(?: {_NAME}(?::{_NUM})?)*(?: \|{_NAME}(?: {_NAME}(?::{_NUM})?)*)*)?$"


@dataclass
class _Tokens:
    """Lines of VW namespaces cut into tokens at single spaces, the tokens
    dictionary-encoded: what :func:`_namespaces_json` and
    :func:`_repeated_names` both start from."""

    #: each line's tokens, list array, shape (n,)
    parts: pa.Array
    #: the tokens of all lines, dictionary-encoded, shape (total tokens,)
    distinct: pa.DictionaryArray
    #: the distinct tokens, in the dictionary's order
    words: list[str]

    @classmethod
    def of(cls, lines: pa.Array) -> _Tokens:
        parts = pc.split_pattern(lines, " ")
        distinct = pc.dictionary_encode(pc.list_flatten(parts))
        return cls(parts, distinct, distinct.dictionary.to_pylist())


def _namespaces_json(lines: pa.Array, head: bool = False, toks: _Tokens | None = None) -> pa.Array:
    """``json.dumps(line_to_namespaces(line))`` (compact, non-ASCII kept) of
    lines of the form :data:`_VW_LINE` with distinct names (the caller checks).

    The lines are cut into tokens in Arrow; each distinct token is written once
    (as a line's or namespace's first token, and with a comma before it), and
    the lines are joined back from those pieces in Arrow.

    Parameters
    ----------
    lines : pyarrow.Array of string, shape (n,)
    head : bool, default False
        Leave the object open for more keys: without its closing brace, and
        with a comma after its last namespace if it has any.
    toks : _Tokens, optional
        ``_Tokens.of(lines)``, if the caller has it.

    Returns
    -------
    pyarrow.Array of string, shape (n,)
    """
    if toks is None:
        toks = _Tokens.of(lines)
    parts, distinct = toks.parts, toks.distinct
    first: list[str] = []  # a token opening its line or its namespace
    later: list[str] = []  # any other
    ns_flags: list[bool] = []
    for tok in toks.words:
        if tok.startswith("|"):
            key = _json(tok[1:])
            first.append(f"{{{key}:{{")
            later.append(f"}},{key}:{{")
            ns_flags.append(True)
        else:
            name, sep, value = tok.partition(":")
            piece = f"{_json(name)}:{_json(float(value)) if sep else '1.0'}"
            first.append(piece)
            later.append("," + piece)
            ns_flags.append(False)
    idx = distinct.indices.to_numpy().astype(np.int64)
    is_ns = np.asarray(ns_flags, dtype=bool)[idx]
    after_ns = np.ones(len(idx), dtype=bool)
    after_ns[1:] = is_ns[:-1]
    off = np.asarray(parts.offsets, dtype=np.int64)
    off = off - off[0]
    use_first = after_ns & ~is_ns
    use_first[off[:-1][off[:-1] < len(idx)]] = True
    pieces = pa.array(first + later, pa.string()).take(
        pa.array(np.where(use_first, idx, idx + len(first)))
    )
    s = pc.binary_join(_lists(off, pieces), "")
    empty = pc.equal(pc.utf8_length(lines), 0)
    return pc.if_else(
        empty, "{" if head else "{}", pc.binary_join_element_wise(s, "}," if head else "}}", "")
    )


def _repeated_names(lines: pa.Array, toks: _Tokens | None = None) -> npt.NDArray[np.bool_]:
    """Which lines of VW namespaces (form :data:`_VW_LINE`) name a namespace
    twice, or a feature twice in one namespace.

    Parameters
    ----------
    lines : pyarrow.Array of string, shape (n,)
    toks : _Tokens, optional
        ``_Tokens.of(lines)``, if the caller has it.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    n = len(lines)
    out = np.zeros(n, dtype=bool)
    if toks is None:
        toks = _Tokens.of(lines)
    parts, distinct, words = toks.parts, toks.distinct, toks.words
    if len(distinct) == 0:
        return out
    row = pc.list_parent_indices(parts).to_numpy()
    # each distinct token's name (up to its first colon) coded once, in Python
    names: dict[str, int] = {}
    word_code = np.array([names.setdefault(w.partition(":")[0], len(names)) for w in words])
    word_ns = np.array([w.startswith("|") for w in words], dtype=bool)
    word_real = np.array([w != "" for w in words], dtype=bool)  # an empty line has no name
    at = distinct.indices.to_numpy().astype(np.int64)
    code = word_code.astype(np.int64)[at]
    is_ns = word_ns[at]
    group = np.where(is_ns, row, np.cumsum(is_ns) + n)  # a namespace's features: its own group
    key = group.astype(np.int64) * (int(code.max()) + 1) + code
    real = np.flatnonzero(word_real[at])
    keys = np.sort(key[real])  # the usual batch has no repeat: one sort says so
    if not np.any(keys[1:] == keys[:-1]):
        return out
    order = real[np.argsort(key[real], kind="stable")]
    dup = np.flatnonzero(np.diff(key[order]) == 0)
    out[row[order[dup]]] = True
    return out


#: most action lines kept in :func:`_bulk_features`' cache before it starts afresh
_CACHE_LINES = 200_000


#: what ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)`` makes for
#: each call, made once (its ``encode`` gives the same text)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``."""
    return _ENCODER.encode(obj)


def export_dsjson(
    joined: pa.Table,
    path: str | Path,
    catalogs: Mapping[str, Catalog] | None = None,
    progress: bool = False,
    outcomes: pa.Table | None = None,
    pulls: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    bulk: bool = True,
    workers: int | None = None,
) -> int:
    """Write ``joined`` as a DSJSON file (atomically: temp file, then rename).

    ``outcomes`` (optional) supplies each decision's outcomes about other
    actions than the chosen one, ``pulls`` (optional) each decision's pull
    touches of its reward window, and ``bulk`` chooses the featurizing path,
    as for :func:`iter_dsjson`.

    ``workers`` (the bulk path only): with 2, the rows after the first
    :data:`_PARENT_SHARE` percent are written by a forked child process into a
    part file of its own while this process writes those before, and the part
    is then appended; the file is the
    same bytes as with 1. A child that fails for any reason leaves its half to
    this process, which writes it as with 1, so a bad row fails with the very
    error it fails with there. Default: 2 where the table has at least
    :data:`_PARALLEL_ROWS` rows and a second core is idle (:func:`_idle_core`:
    on a busy machine the child's copied pages cost more than its core gives),
    and ``os.fork`` exists; else 1.

    Returns
    -------
    int
        Lines written (one per row).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    part = out.with_name(f".{out.name}.part.tmp")
    if workers is None:
        workers = 2 if joined.num_rows >= _PARALLEL_ROWS and _idle_core() else 1
    parallel = bulk and workers > 1 and hasattr(os, "fork") and joined.num_rows >= 2
    n = 0
    child = 0
    try:
        with (
            open(tmp, "wb") as fh,
            tqdm(
                total=joined.num_rows,
                disable=not progress,
                file=sys.stderr,
                unit="dec",
                desc="dsjson",
            ) as bar,
        ):
            table, other = _prepare(joined, outcomes, bulk)
            rows = table.num_rows

            def lines(begin: int, end: int) -> Iterator[str | pa.Array]:
                return _iter_range(
                    table,
                    joined,
                    other,
                    catalogs,
                    _EXPORT_BATCH_ROWS,
                    outcomes,
                    pulls,
                    bulk,
                    begin,
                    end,
                    newline=True,
                )

            if not parallel:
                n = _write_lines(fh, bar, lines(0, rows))
            else:
                # the child's share a little larger: this process also appends it
                half = max(1, rows * _PARENT_SHARE // 100)
                fh.flush()
                child = os.fork()
                if child == 0:  # the child: the second half into the part file, then out
                    code = 1
                    try:
                        with open(part, "wb") as pf:
                            _write_lines(pf, None, lines(half, rows))
                        code = 0
                    finally:
                        os._exit(code)
                n = _write_lines(fh, bar, lines(0, half))
                _, status = os.waitpid(child, 0)
                child = 0
                if os.waitstatus_to_exitcode(status) == 0 and part.exists():
                    fh.flush()
                    _append(fh, part)
                    n += rows - half
                    bar.update(rows - half)
                else:  # whatever went wrong there: the half written here, as with 1
                    n += _write_lines(fh, bar, lines(half, rows))
        tmp.replace(out)
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        tmp.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    return n


#: rows per batch of :func:`export_dsjson` (featurized and written together):
#: each batch costs some fixed work (per-call Arrow overheads, each distinct
#: token's JSON written once per batch), so larger batches cost less CPU per
#: row; memory grows with the batch (see docs/performance.md, "Sixth round")
_EXPORT_BATCH_ROWS = 16_384
#: fewest rows :func:`export_dsjson` splits between two processes by default
_PARALLEL_ROWS = 2048
#: how much of a core the load average must leave idle for the default to split
_IDLE_MARGIN = 0.5
#: percent of the rows the parent writes when split (the rest: the child's part,
#: which the parent then appends, at about a tenth of the cost of writing it)
_PARENT_SHARE = 45


def _idle_core() -> bool:
    """Whether this process may run on two cores or more and, by the last
    minute's load average, about one of them is idle: a second process costs
    CPU (its copied pages), so it pays only where it gets a core of its own."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity call on this platform
        cores = os.cpu_count() or 1
    if cores < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average here: trust the cores
        return True
    return load <= cores - _IDLE_MARGIN


def _write_lines(fh: BinaryIO, bar: Any, lines: Iterable[str | pa.Array]) -> int:
    """Write lines to ``fh``: a line as ``str`` followed by a newline, a run of
    them as a string array whose strings end with their newline (written from
    its data buffer, not copied); update ``bar`` (a tqdm bar, or None); return
    how many were written."""
    n = 0
    for run in lines:
        if isinstance(run, str):
            fh.write(run.encode("utf-8"))
            fh.write(b"\n")
            k = 1
        else:
            fh.write(_span(run))
            k = len(run)
        n += k
        if bar is not None:
            bar.update(k)
    return n


def _append(fh: BinaryIO, part: Path) -> None:
    """Append the bytes of file ``part`` to ``fh`` (flushed), in the kernel
    where it can."""
    size = part.stat().st_size
    with open(part, "rb") as src:
        offset = fh.tell()
        copy = getattr(os, "copy_file_range", None)
        done = 0
        if copy is not None:
            try:
                while done < size:
                    k = copy(src.fileno(), fh.fileno(), size - done, done, offset + done)
                    if k == 0:
                        break
                    done += k
            except OSError:
                done = 0  # this file system refuses it: copy by hand from the start
        if done < size:
            src.seek(done)
            fh.seek(offset + done)
            shutil.copyfileobj(src, fh, 1 << 20)
        fh.seek(offset + size)


def load_catalogs(logs_dir: str | Path, versions: Iterable[str]) -> dict[str, Catalog]:
    """Catalog snapshots ``logs_dir/catalog/<version>.json`` that exist, by version."""
    found: dict[str, Catalog] = {}
    for v in sorted(set(versions)):
        p = Path(logs_dir) / "catalog" / f"{v}.json"
        if p.is_file():
            found[v] = Catalog.read_snapshot(p)
    return found


# ------------------------------------------------------------------ import
@dataclass(frozen=True)
class DsjsonImport:
    """Decisions and outcomes read from one DSJSON file.

    Attributes
    ----------
    decisions : pyarrow.Table
        Schema :data:`nba.logs.schema.DECISIONS`, one row per event, file order.
    outcomes : pyarrow.Table
        Schema :data:`nba.logs.schema.OUTCOMES`.
    lines : int
        Non-blank lines read.
    not_activated : int
        Events marked ``_skipLearn`` (imported with ``activated`` false).
    touches : pyarrow.Table
        Schema :data:`nba.logs.schema.TOUCHES`: the pull touches of the lines'
        ``nba.pulls``, each once, in time order.
    """

    decisions: pa.Table
    outcomes: pa.Table
    lines: int
    not_activated: int
    touches: pa.Table = field(default_factory=TOUCHES.empty_table)


def _parse_ts(value: Any, err: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise err("Timestamp", "must be an ISO 8601 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # at most 6 fractional digits for datetime.fromisoformat on every 3.11 patch level
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise err("Timestamp", f"{value!r} is not an ISO 8601 timestamp") from None
    if ts.tzinfo is None:
        raise err("Timestamp", f"{value!r} has no time zone (expected 'Z' or an offset)")
    return ts.astimezone(UTC)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _foreign_action_id(entry: Mapping[str, Any]) -> str | None:
    v = entry.get("id")
    if isinstance(v, str) and v:
        return v
    for key, ns in entry.items():
        if key.startswith("_"):
            continue
        for obj in ns if isinstance(ns, list) else [ns]:
            if isinstance(obj, dict):
                v = obj.get("id")
                if isinstance(v, str) and v:
                    return v
    tag = entry.get("_tag")
    if isinstance(tag, str) and tag:
        return tag
    return None


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_line(obj: Any, err: Any) -> tuple[Decision, list[Outcome], list[Touch]]:
    if not isinstance(obj, dict):
        raise err("(line)", "must be a JSON object")
    event_id = obj.get("EventId")
    if not isinstance(event_id, str) or not event_id:
        raise err("EventId", "must be a non-empty string")
    ts = _parse_ts(obj.get("Timestamp"), err)
    c = obj.get("c")
    if not isinstance(c, dict):
        raise err("c", "must be an object with the context and '_multi'")
    if "_slots" in c or "_outcomes" in obj:
        field = "c._slots" if "_slots" in c else "_outcomes"
        raise err(field, "CCB/slates events are not supported (only CB, cb_explore_adf events)")
    multi = c.get("_multi")
    if not isinstance(multi, list) or not multi:
        raise err("c._multi", "must be a non-empty list of action objects")
    for k, entry in enumerate(multi):
        if not isinstance(entry, dict):
            raise err(f"c._multi[{k}]", "must be an object")
    n = len(multi)
    nba = obj.get(NBA_KEY)
    if nba is not None and not isinstance(nba, dict):
        raise err(NBA_KEY, "must be an object")
    nba = nba or {}

    # --- chosen index
    label_index = obj.get("_labelIndex")
    label_action = obj.get("_label_Action")
    a = obj.get("a")
    if a is not None:
        if (
            not isinstance(a, list)
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in a)
            or sorted(a) != list(range(1, n + 1))
        ):
            raise err("a", f"must be a permutation of 1..{n} (one entry per c._multi action)")
    if label_index is not None:
        if not isinstance(label_index, int) or isinstance(label_index, bool):
            raise err("_labelIndex", f"must be an integer, got {label_index!r}")
        chosen = label_index
        if label_action is not None and label_action != label_index + 1:
            raise err("_label_Action", f"{label_action!r} disagrees with _labelIndex {chosen}")
    elif label_action is not None:
        if not isinstance(label_action, int) or isinstance(label_action, bool):
            raise err("_label_Action", f"must be an integer, got {label_action!r}")
        chosen = label_action - 1
    elif a is not None:
        chosen = a[0] - 1
    else:
        raise err("_labelIndex", "no chosen action (_labelIndex, _label_Action or a)")
    if not 0 <= chosen < n:
        raise err("_labelIndex", f"chosen index {chosen} outside 0..{n - 1}")

    # --- probabilities
    p = obj.get("p")
    if not isinstance(p, list) or len(p) != n or not all(_is_number(x) for x in p):
        raise err("p", f"must be a list of {n} numbers (one per c._multi action)")
    label_p = obj.get("_label_probability")
    if label_p is not None and not _is_number(label_p):
        raise err("_label_probability", f"must be a number, got {label_p!r}")
    candidates: list[list[float]] = []
    if a is not None:
        by_a = [0.0] * n
        for i, act in enumerate(a):
            by_a[act - 1] = float(p[i])
        candidates.append(by_a)
    candidates.append([float(x) for x in p])
    probs = candidates[0]
    if label_p is not None:
        for cand in candidates:
            if abs(cand[chosen] - label_p) <= PROBABILITY_SLACK:
                probs = cand
                break
        else:
            raise err(
                "_label_probability",
                f"{label_p} is not the probability p gives action {chosen + 1} ({probs[chosen]})",
            )
    if any(x < 0 for x in probs):
        raise err("p", "has a negative probability")
    total = math.fsum(probs)
    if abs(total - 1.0) > PROBABILITY_SLACK:
        raise err("p", f"probabilities sum to {total}, not 1")
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        probs = [x / total for x in probs]  # float32 round-off; exact vectors kept as is

    # --- action ids
    ids = nba.get("action_ids")
    if ids is not None:
        if (
            not isinstance(ids, list)
            or len(ids) != n
            or not all(isinstance(x, str) and x for x in ids)
        ):
            raise err(f"{NBA_KEY}.action_ids", f"must be {n} non-empty strings")
        action_ids = list(ids)
    else:
        action_ids = [_foreign_action_id(e) or f"a{k + 1}" for k, e in enumerate(multi)]
    if len(set(action_ids)) != n:
        dup = next(x for x in action_ids if action_ids.count(x) > 1)
        raise err("c._multi", f"action id {dup!r} appears twice in one event")

    def nba_str(key: str, default: str) -> str:
        v = nba.get(key, default)
        if not isinstance(v, str) or not v:
            raise err(f"{NBA_KEY}.{key}", "must be a non-empty string")
        return v

    channels = nba.get("channels_requested", [])
    if not isinstance(channels, list) or not all(isinstance(x, str) for x in channels):
        raise err(f"{NBA_KEY}.channels_requested", "must be a list of strings")
    vw_state = obj.get("VWState")
    model = vw_state.get("m") if isinstance(vw_state, dict) else None
    shared = {k: v for k, v in c.items() if k != "_multi"}
    context = _canonical_json(
        {FOREIGN_KEY: shared, FOREIGN_ACTIONS_KEY: dict(zip(action_ids, multi, strict=True))}
    )
    skip = obj.get("_skipLearn", False)
    if not isinstance(skip, bool):
        raise err("_skipLearn", f"must be true or false, got {skip!r}")
    try:
        decision = Decision(
            event_id=event_id,
            ts=ts,
            hcp_id=nba_str("hcp_id", "unknown"),
            requester=nba_str("requester", "imported"),
            channels_requested=tuple(channels),
            context=context,
            catalog_version=nba_str("catalog_version", "external"),
            action_ids=tuple(action_ids),
            probabilities=tuple(probs),
            chosen_index=chosen,
            chosen_action_id=action_ids[chosen],
            propensity=probs[chosen],
            policy="imported",
            model_version=model if isinstance(model, str) and model else "unknown",
            activated=not skip,
            slate=_slate(nba.get(SLATE_KEY), err),
        )
    except ValidationError as exc:
        raise err("(event)", str(exc)) from exc

    # --- outcomes
    outcomes: list[Outcome] = []
    o = obj.get("o")
    cost = obj.get("_label_cost")
    if cost is not None and not _is_number(cost):
        raise err("_label_cost", f"must be a finite number, got {cost!r}")
    if o is not None:
        if not isinstance(o, list):
            raise err("o", "must be a list of outcome objects")
        for i, item in enumerate(o):
            if not isinstance(item, dict):
                raise err(f"o[{i}]", "must be an object")
            if "v" not in item:
                continue  # activation marker, not a reward
            if not _is_number(item["v"]):
                raise err(f"o[{i}].v", f"must be a finite number, got {item['v']!r}")
            outcomes.append(Outcome(event_id, ts, "reward", float(item["v"]), "dsjson", f"o{i}"))
    elif cost is not None and not nba.get("reward_is_default", False):
        value = -float(cost) if cost != 0 else 0.0
        outcomes.append(Outcome(event_id, ts, "reward", value, "dsjson", "label"))
    outcomes.extend(_other_outcomes(nba.get(OTHER_OUTCOMES_KEY), decision, err))
    return decision, outcomes, _pull_touches(nba.get(PULLS_KEY), decision, err)


def _pull_touches(entries: Any, decision: Decision, err: Any) -> list[Touch]:
    """The touches of ``nba.pulls`` (see the module docstring)."""
    if entries is None:
        return []
    where = f"{NBA_KEY}.{PULLS_KEY}"
    if not isinstance(entries, list):
        raise err(where, "must be a list of touch objects")
    out = []
    for i, e in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(e, dict):
            raise err(at, "must be an object")
        unknown = sorted(set(e) - set(_PULL_FIELDS))
        if unknown:
            raise err(f"{at}.{unknown[0]}", f"unknown field; expected {', '.join(_PULL_FIELDS)}")
        ts = _parse_ts(e.get("ts"), lambda _f, problem, _at=at: err(f"{_at}.ts", problem))
        if ts < decision.ts:
            raise err(f"{at}.ts", f"{e['ts']!r} is before its decision ({_timestamp(decision.ts)})")
        for key in ("channel", "content_id", "origin", "kind"):
            if not isinstance(e.get(key), str):
                raise err(f"{at}.{key}", "must be a string")
        if e["kind"] == "contact":
            raise err(f"{at}.kind", "'contact' is not a pull (the block lists pulls only)")
        for key in ("topics", "content_ids"):
            v = e.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise err(f"{at}.{key}", "must be a list of strings")
        dwell = e.get("dwell_s")
        if dwell is not None and not _is_number(dwell):
            raise err(f"{at}.dwell_s", f"must be null or a finite number, got {dwell!r}")
        try:
            out.append(
                Touch(
                    decision.hcp_id,
                    ts,
                    e["channel"],
                    e["content_id"],
                    e["origin"],
                    e["kind"],
                    tuple(e.get("topics", [])),
                    tuple(e.get("content_ids", [])),
                    None if dwell is None else float(dwell),
                )
            )
        except ValidationError as exc:
            raise err(at, str(exc)) from exc
    return out


_KNOWN_TYPES = OUTCOME_TYPES | {REWARD_TYPE}


def _slate(entries: Any, err: Any) -> tuple[SlateSlot, ...]:
    """The slots of ``nba.slate`` (absent: none); the decision checks them further."""
    if entries is None:
        return ()
    where = f"{NBA_KEY}.{SLATE_KEY}"
    if not isinstance(entries, list):
        raise err(where, "must be a list of {action_id, probability} objects")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("action_id"), str):
            raise err(f"{where}[{i}]", "must be an object with a string action_id")
        if not _is_number(e.get("probability")):
            raise err(f"{where}[{i}].probability", "must be a finite number")
        out.append(SlateSlot(e["action_id"], float(e["probability"])))
    return tuple(out)


def _other_outcomes(entries: Any, decision: Decision, err: Any) -> list[Outcome]:
    """The outcomes of ``nba.other_action_outcomes`` (see the module docstring)."""
    if entries is None:
        return []
    where = f"{NBA_KEY}.{OTHER_OUTCOMES_KEY}"
    if not isinstance(entries, list):
        raise err(where, "must be a list of outcome objects")
    out = []
    for i, e in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(e, dict):
            raise err(at, "must be an object")
        aid = e.get("action_id")
        if not isinstance(aid, str) or aid not in decision.action_ids:
            raise err(f"{at}.action_id", f"{aid!r} is not one of the event's actions")
        if aid == decision.chosen_action_id:
            raise err(
                f"{at}.action_id",
                f"{aid!r} is the chosen action; its outcomes travel in the label",
            )
        typ = e.get("type")
        if typ not in _KNOWN_TYPES:
            raise err(f"{at}.type", f"unknown outcome type {typ!r}")
        _, sep, channel = aid.rpartition("@")
        problem = outcome_channel_problem(typ, channel) if sep else None
        if problem is not None:
            raise err(f"{at}.type", problem)
        value = e.get("value", 1.0)
        if not _is_number(value):
            raise err(f"{at}.value", f"must be a finite number, got {value!r}")
        for key in ("source", "source_id"):
            if not isinstance(e.get(key), str):
                raise err(f"{at}.{key}", "must be a string")
        ts = _parse_ts(e.get("ts"), lambda _f, problem, _at=at: err(f"{_at}.ts", problem))
        out.append(
            Outcome(decision.event_id, ts, typ, float(value), e["source"], e["source_id"], aid)
        )
    return out


def _decisions_table(decisions: Sequence[Decision]) -> pa.Table:
    rows = [
        {
            "event_id": d.event_id,
            "ts": d.ts,
            "hcp_id": d.hcp_id,
            "requester": d.requester,
            "channels_requested": list(d.channels_requested),
            "context": d.context,
            "catalog_version": d.catalog_version,
            "action_ids": list(d.action_ids),
            "probabilities": list(d.probabilities),
            "chosen_index": d.chosen_index,
            "chosen_action_id": d.chosen_action_id,
            "propensity": d.propensity,
            "policy": d.policy,
            "model_version": d.model_version,
            "suppressed": [{"action_id": s.action_id, "rule": s.rule} for s in d.suppressed],
            "activated": d.activated,
            "slate": (
                [{"action_id": sl.action_id, "probability": sl.probability} for sl in d.slate]
                if d.slate
                else None
            ),
        }
        for d in decisions
    ]
    return pa.Table.from_pylist(rows, schema=DECISIONS)


def _outcomes_table(outcomes: Sequence[Outcome]) -> pa.Table:
    rows = [
        {
            "event_id": o.event_id,
            "ts": o.ts,
            "type": o.type,
            "value": o.value,
            "source": o.source,
            "source_id": o.source_id,
            "action_id": o.action_id,
        }
        for o in outcomes
    ]
    return pa.Table.from_pylist(rows, schema=OUTCOMES)


def _touches_table(touches: Sequence[Touch]) -> pa.Table:
    """Each distinct touch once, in time order (then kind, channel, content)."""
    unique = sorted(
        set(touches),
        key=lambda t: (t.ts, t.kind, t.channel, t.content_id, t.topics, t.content_ids),
    )
    rows = [
        {
            "hcp_id": t.hcp_id,
            "ts": t.ts,
            "channel": t.channel,
            "content_id": t.content_id,
            "origin": t.origin,
            "kind": t.kind,
            "topics": list(t.topics),
            "content_ids": list(t.content_ids),
            "dwell_s": t.dwell_s,
        }
        for t in unique
    ]
    return pa.Table.from_pylist(rows, schema=TOUCHES)


def read_dsjson(path: str | Path) -> DsjsonImport:
    """Parse and validate a whole DSJSON file (mapping in the module docstring).

    Raises
    ------
    DsjsonError
        At the first bad line: ``FILE:LINE: field '...': problem``.
    """
    src = Path(path)
    try:
        fh = open(src, encoding="utf-8")
    except OSError as exc:
        raise DsjsonError(f"{src}: cannot read: {exc.strerror or exc}") from exc
    decisions: list[Decision] = []
    outcomes: list[Outcome] = []
    touches: list[Touch] = []
    seen: dict[str, int] = {}
    lines = 0
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            lines += 1

            def err(fieldname: str, problem: str, _ln: int = lineno) -> DsjsonError:
                return DsjsonError(f"{src}:{_ln}: field '{fieldname}': {problem}")

            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DsjsonError(
                    f"{src}:{lineno}: not valid JSON: {exc.msg} at column {exc.colno}"
                ) from exc
            decision, outs, pulled = _parse_line(obj, err)
            if decision.event_id in seen:
                raise err(
                    "EventId",
                    f"{decision.event_id!r} already used on line {seen[decision.event_id]}",
                )
            seen[decision.event_id] = lineno
            decisions.append(decision)
            outcomes.extend(outs)
            touches.extend(pulled)
    return DsjsonImport(
        decisions=_decisions_table(decisions),
        outcomes=_outcomes_table(outcomes),
        lines=lines,
        not_activated=sum(not d.activated for d in decisions),
        touches=_touches_table(touches),
    )


def import_dsjson(path: str | Path, out_dir: str | Path) -> DsjsonImport:
    """Validate a whole DSJSON file, then append it to the log at ``out_dir``.

    Nothing is written unless every line is valid and no event id is already
    in the log's ``decisions``. Existing parts are never touched; decisions are
    appended before outcomes. Into a log without decisions, ``manifest.json``
    gets ``outcomes_complete: true``: a DSJSON label is final, so no reward
    window of these decisions is open (docs/DESIGN.md, "Decisions taken here").
    """
    result = read_dsjson(path)
    existing = io.read(out_dir, "decisions", columns=["event_id"]).column("event_id")
    if len(existing) and result.decisions.num_rows:
        clash = pc.is_in(result.decisions.column("event_id"), value_set=existing.combine_chunks())
        if pc.any(clash).as_py():
            first = result.decisions.column("event_id").filter(clash)[0].as_py()
            raise DsjsonError(
                f"{path}: EventId {first!r} is already in the log at {out_dir}; nothing written"
            )
    io.append(out_dir, "decisions", result.decisions)
    io.append(out_dir, "outcomes", result.outcomes)
    io.append(out_dir, "touches", result.touches)
    if not len(existing):
        from nba.logs.join import MANIFEST_OUTCOMES_COMPLETE, update_manifest

        update_manifest(out_dir, {"writer": "nba.logs.dsjson", MANIFEST_OUTCOMES_COMPLETE: True})
    return result
