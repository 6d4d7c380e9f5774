"""The simulator's context rendering as it was before the contexts were joined
once per decision from pieces: each history map's strings made apart (count maps
de-duplicated by packed row and cached, sparse maps joined from their non-zero
cells, the interest map from its distinct rounded values), then one f-string per
decision. Only the tests use it: it is the reference they hold
``ContextBuilder.render`` (and ``MapRenderer.cells``, ``ContextBuilder._interest_cells``)
to, so it lives here and not in ``simulators``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nba.context import CONTEXT_VERSION
from simulators.hcp.history import LONGEST, ContextBuilder


class ReferenceMap:
    """Renders rows of counts as canonical JSON objects (``{"key":count,...}``),
    the way ``MapRenderer`` did before it gave cells.

    Rows are packed into one integer key each (``bits`` per column), reduced to
    their distinct keys, and each distinct row is rendered once (a cache keyed by
    the packed row). Rows with a value that does not fit are joined from their
    non-zero cells.

    Parameters
    ----------
    names : sequence of str
        Column names; keys are written in sorted order, zero counts left out.

    >>> ReferenceMap(["email", "portal"]).render(np.array([[2, 0], [0, 0], [2, 0]]))
    ['{"email":2}', '{}', '{"email":2}']
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        k = len(self.names)
        self.order = sorted(range(k), key=lambda i: self.names[i])
        self.keys = [json.dumps(self.names[i]) for i in self.order]
        self.bits = 62 // max(k, 1)
        self.shifts = np.arange(k, dtype=np.int64) * self.bits
        self._shift_list = [int(s) for s in self.shifts]
        # '"key":value' pieces in output order, for small values
        self._pieces = [[f"{key}:{v}" for v in range(128)] for key in self.keys]
        self.cache: dict[int, str] = {}
        self._comma_pieces: dict[int, list[npt.NDArray[np.object_]]] = {}
        self._flat_pieces: dict[int, npt.NDArray[np.object_]] = {}

    def render_row(self, row: Sequence[int]) -> str:
        """One row (length k) as its JSON object."""
        pieces = self._pieces
        keys = self.keys
        parts = []
        for j, i in enumerate(self.order):
            v = row[i]
            if v:
                parts.append(pieces[j][v] if 0 <= v < 128 else f"{keys[j]}:{v}")
        return "{" + ",".join(parts) + "}"

    def render_small(self, rows: npt.NDArray[np.integer], limit: int) -> list[str]:
        """:meth:`render` for rows (shape (b, k)) whose values are all below
        ``limit``, without caching: per-column pieces looked up and joined row by
        row (dense rows) or only the non-zero cells' pieces (sparse rows)."""
        if rows.shape[0] == 0:
            return []
        if rows.min() < 0 or rows.max() >= limit:
            return self.render(rows)
        tables = self._comma_pieces.get(limit)
        if tables is None:
            tables = [
                np.array([""] + [f",{key}:{v}" for v in range(1, limit)], dtype=object)
                for key in self.keys
            ]
            self._comma_pieces[limit] = tables
        ordered = rows[:, self.order]
        row, col = np.nonzero(ordered)  # row-major: rows ascending, keys in order
        if row.size * 2 > ordered.size:  # dense rows: join every column's piece
            cols = [tables[j].take(ordered[:, j]).tolist() for j in range(len(tables))]
            return ["{" + "".join(parts)[1:] + "}" for parts in zip(*cols, strict=True)]
        flat = self._flat_pieces.get(limit)
        if flat is None:
            flat = self._flat_pieces[limit] = np.concatenate(tables)
        pieces = flat.take(col * limit + ordered[row, col]).tolist()
        bounds = np.searchsorted(row, np.arange(rows.shape[0] + 1)).tolist()
        return ["{" + "".join(pieces[lo:hi])[1:] + "}" for lo, hi in itertools.pairwise(bounds)]

    def render_many(self, blocks: Sequence[npt.NDArray[np.integer]]) -> list[list[str]]:
        """:meth:`render` of several (b, k) blocks at once (one pass, one cache)."""
        b = blocks[0].shape[0]
        rows = np.concatenate([np.asarray(x) for x in blocks], axis=0)
        flat = self.render(rows)
        return [flat[i * b : (i + 1) * b] for i in range(len(blocks))]

    def render(self, rows: npt.NDArray[np.integer]) -> list[str]:
        """Canonical JSON of each row of ``rows`` (shape (b, k)), b strings."""
        b = rows.shape[0]
        if b == 0:
            return []
        r = rows.astype(np.int64, copy=False)
        if self.bits >= 4 and r.min() >= 0 and r.max() < (1 << self.bits):
            out: list[str] = self._render_packed(r).tolist()
            return out
        return self._render_sparse(r)

    def _render_sparse(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """:meth:`render` by the non-zero cells of each row (shape (b, k))."""
        b = rows.shape[0]
        ordered = rows[:, self.order]
        row, col = np.nonzero(ordered)
        values = ordered[row, col].tolist()
        pieces, keys = self._pieces, self.keys
        parts = [
            pieces[j][v] if 0 <= v < 128 else f"{keys[j]}:{v}"
            for j, v in zip(col.tolist(), values, strict=True)
        ]
        bounds = np.searchsorted(row, np.arange(b + 1)).tolist()
        return ["{" + ",".join(parts[lo:hi]) + "}" for lo, hi in itertools.pairwise(bounds)]

    def _render_packed(self, r: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
        """:meth:`render` of rows (shape (b, k)) whose values fit ``bits`` each, by
        their distinct packed keys, shape (b,)."""
        packed = (r << self.shifts).sum(axis=1)
        inverse, uniq = pd.factorize(packed)
        cache = self.cache
        keys = uniq.tolist()
        frags = [cache.get(key) for key in keys]
        mask = (1 << self.bits) - 1
        for i, f in enumerate(frags):
            if f is None:
                frag = self.render_row([(keys[i] >> s) & mask for s in self._shift_list])
                cache[keys[i]] = frags[i] = frag
        return np.array(frags, dtype=object).take(inverse.reshape(-1))


def interest_json(topics: Sequence[str], values: npt.NDArray[np.float64]) -> list[str]:
    """``History.interest`` as canonical JSON, shape (b, n_topics) -> b strings:
    each distinct non-zero value rounded (``round(x, 3)``) and formatted once,
    values that round to zero left out, keys in sorted order."""
    b = values.shape[0]
    if b == 0:
        return []
    order = sorted(range(len(topics)), key=lambda i: topics[i])
    keys = [json.dumps(topics[i]) + ":" for i in order]
    ordered = values[:, order]
    row, col = np.nonzero(ordered)
    if row.size == 0:
        return ["{}"] * b
    uniq, inv = np.unique(ordered[row, col], return_inverse=True)
    text = [repr(v) if (v := round(x, 3)) else "" for x in uniq.tolist()]
    keep = np.array([bool(t) for t in text], dtype=bool)[inv]
    row, col, inv = row[keep], col[keep], inv[keep]
    pieces = [keys[c] + text[i] for c, i in zip(col.tolist(), inv.tolist(), strict=True)]
    bounds = np.searchsorted(row, np.arange(b + 1)).tolist()
    return ["{" + ",".join(pieces[lo:hi]) + "}" for lo, hi in itertools.pairwise(bounds)]


def joined_cells(
    b: int,
    row: npt.NDArray[np.int64],
    pieces: npt.NDArray[np.object_],
    lengths: npt.NDArray[np.int64],
) -> list[str]:
    """The product's cells (``MapRenderer.cells``, ``ContextBuilder._interest_cells``:
    the row of each piece, ascending, the pieces and their lengths, shape (m,)
    each) joined into each of the ``b`` rows' JSON objects, after checking that
    each length is its piece's ``len``."""
    flat = pieces.tolist()
    assert lengths.tolist() == [len(p) for p in flat]
    bounds = np.searchsorted(row, np.arange(b + 1)).tolist()
    return ["{" + "".join(flat[lo:hi]) + "}" for lo, hi in itertools.pairwise(bounds)]


def render_by_map(
    cb: ContextBuilder,
    day: date,
    profiles: npt.NDArray[np.object_],
    history: dict[str, Any],
    request_json: str,
) -> npt.NDArray[np.object_]:
    """``cb.render(day, profiles, history, request_json)`` the way it was written
    before (each map's strings made apart, then one f-string per decision): ``b``
    profiles, shape (b,), give b context strings, shape (b,)."""
    b = profiles.shape[0]
    if b == 0:
        return np.empty(0, dtype=object)
    h = history
    channel_map, topic_map = ReferenceMap(cb.channels), ReferenceMap(cb.topics)
    topic_channel_map = ReferenceMap(cb._topic_channel_map.names)
    item_map = ReferenceMap(cb._item_map.names)
    dst = channel_map.render_small(h["days_since_touch"], LONGEST + 1)
    eng, t7, t30, t90 = channel_map.render_many(
        [h["engagements_30d"], h["touches_7d"], h["touches_30d"], h["touches_90d"]]
    )
    teng = topic_map.render(h["topic_engagements_90d"])
    tceng = topic_channel_map.render(h["topic_channel_engagements_90d"])
    dsc = item_map.render_small(h["days_since_content"], LONGEST + 1)
    inter = interest_json(cb.topics, h["interest"])
    tpull = topic_map.render(h["topic_pulls_90d"])
    last = cb._content[h["last_content"]].tolist()  # -1 -> "null" (last entry)
    prof = profiles.tolist()
    head = f'{{"day":"{day.isoformat()}","hcp":'
    tail = f'}},"request":{request_json},"v":{CONTEXT_VERSION}}}'
    rows = [
        f'{head}{p},"history":{{"days_since_content":{sc},"days_since_touch":{a},'
        f'"engagements_30d":{e},"interest":{it},"last_content_id":{lc},'
        f'"topic_channel_engagements_90d":{tce},"topic_engagements_90d":{te},'
        f'"topic_pulls_90d":{tp},"touches_30d":{b30},"touches_7d":{b7},"touches_90d":{b90}'
        f"{tail}"
        for p, sc, a, e, it, lc, tce, te, tp, b30, b7, b90 in zip(
            prof, dsc, dst, eng, inter, last, tceng, teng, tpull, t30, t7, t90, strict=True
        )
    ]
    return np.array(rows, dtype=object)
