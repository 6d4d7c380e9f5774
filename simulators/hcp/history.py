"""Per-HCP history counters and the fast builder of logged context JSON.

The counters follow :mod:`nba.context` exactly: touches in the 7/30/90 days
before the decision day, engagements in the 30 days before by channel and in
the 90 days before by topic (counted on the day each outcome happened), days
since the last touch per channel (within 90 days), and the content of the most
recent touch before the decision day; and (context version 2) engagements in
the 90 days before by topic and channel together, and days since each content
item last reached the HCP (within 90 days).

The tracker also counts, per HCP, day and topic, the topics the HCP pulled
(``detail_pull``, ``email_click``, ``portal_view``, ``webinar_question``
touches; see :mod:`simulators.hcp.pulls`). :meth:`HistoryTracker.interest` weighs them
with the engagements by topic and gives the context's ``interest`` map (version 3),
summed in the same order as :func:`nba.context.interest_profile`;
:meth:`HistoryTracker.topic_pulls` gives their undecayed 90-day counts, the
context's ``topic_pulls_90d`` (version 4). The simulator
has no stated preferences and no declared attributes: its contexts leave both
out.

Counts are kept per day in ring buffers (one slot per day, long enough for the
longest window plus the longest outcome delay), and rolling window sums are
updated once a day: adding the day that just ended and subtracting the day
that left each window.

Context strings are assembled from fragments: the profile fragment of each HCP
is cached until the profile changes, and each history map's non-zero cells are
looked up as ready pieces, all of a batch's pieces placed in one array and
joined once per decision, so no decision pays for ``json.dumps``; the result is
byte-identical to :meth:`nba.context.DecisionContext.to_json`.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from nba.context import CONTEXT_VERSION, HISTORY_WINDOWS, INTEREST_WEIGHTS, topic_channel_key

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]

DAY_US = 86_400_000_000

LONGEST = max(HISTORY_WINDOWS)
#: INTEREST_WEIGHTS as an array indexed by age (days)
_INTEREST_W = np.array(INTEREST_WEIGHTS[: LONGEST + 1], dtype=np.float64)
ENGAGEMENT_CHANNEL_WINDOW = 30
ENGAGEMENT_TOPIC_WINDOW = 90
#: interest texts kept by a ContextBuilder before the dictionary is emptied
_INTEREST_TEXTS = 1 << 20
#: values below this have a ready piece in :meth:`MapRenderer.cells`' table
_CELL_LIMIT = 128


def nonzero_2d(a: npt.NDArray[Any]) -> tuple[I64, I64]:
    """``np.nonzero(a)`` of a 2-d array: the rows and columns of its non-zero
    cells in row-major order, from the flat positions of ``a != 0``. The same
    arrays; ``np.nonzero`` of a 2-d array is an order of magnitude slower than
    this for the batches here (a few hundred microseconds against tens).

    Parameters
    ----------
    a : ndarray, shape (b, k)

    Returns
    -------
    row, col : ndarray of int64, shape (m,) each

    >>> [x.tolist() for x in nonzero_2d(np.array([[0, 3, 0], [1, 0, 2]], dtype=np.int8))]
    [[0, 1, 1], [1, 0, 2]]
    """
    flat = np.flatnonzero(a != 0)
    k = a.shape[1]
    if k == 1:
        return flat.astype(np.int64, copy=False), np.zeros(flat.shape[0], dtype=np.int64)
    row, col = np.divmod(flat, k)
    return row.astype(np.int64, copy=False), col.astype(np.int64, copy=False)


def add_counts(
    arr: npt.NDArray[np.integer],
    index: tuple[I64, ...],
    distinct: bool = False,
    step: int = 1,
) -> None:
    """``np.add.at(arr, index, step)`` for a C-contiguous integer array, an order of
    magnitude faster for the few thousand entries of a batch.

    ``np.add.at`` has a fast loop for a 1-d array, an integer index and a value of
    the array's own dtype; given a tuple of indices or a Python int it takes a
    general path (about 100 µs for 3,000 entries against 10). So the indices are
    folded into flat positions of the array's 1-d view and ``step`` is cast to its
    dtype: the same sums (integer additions, in any order; wrapping as before).

    Parameters
    ----------
    arr : ndarray of int, any shape, C-contiguous
    index : tuple of ndarray of int64, one per axis of ``arr``, each shape (k,)
    distinct : bool
        The caller guarantees no cell appears twice (kept for callers; both cases
        take the same path now).
    step : int
        Added once per entry (-1 to take counts away; a signed dtype then).
    """
    if index[0].shape[0] == 0:
        return
    if not arr.flags.c_contiguous or len(index) != arr.ndim:  # pragma: no cover - never here
        np.add.at(arr, index, step)
        return
    flat = index[0].astype(np.int64, copy=False)
    for axis in range(1, arr.ndim):
        flat = flat * arr.shape[axis] + index[axis]
    np.add.at(arr.reshape(-1), flat, arr.dtype.type(step))


class HistoryTracker:
    """Day-indexed counters for ``n`` HCPs.

    Parameters
    ----------
    n : int
    n_channels, n_topics : int
    horizon_days : int
        Longest delay after which an outcome can still be recorded.
    n_items : int, optional
        Content items (for days since each item last reached the HCP).
    """

    def __init__(
        self, n: int, n_channels: int, n_topics: int, horizon_days: int, n_items: int = 0
    ) -> None:
        self.n = n
        self.ring = LONGEST + horizon_days + 2
        r = self.ring
        self.touch_day = np.zeros((r, n, n_channels), dtype=np.int16)
        self.eng_day = np.zeros((r, n, n_channels), dtype=np.int16)
        self.topic_day = np.zeros((r, n, n_topics), dtype=np.int16)
        #: topics pulled per day (``interest``, ``topic_pulls_90d``): (ring, n, n_topics)
        self.pull_day = np.zeros((r, n, n_topics), dtype=np.int16)
        self.touch_win = {w: np.zeros((n, n_channels), dtype=np.int32) for w in HISTORY_WINDOWS}
        self.eng_win = np.zeros((n, n_channels), dtype=np.int32)
        self.topic_win = np.zeros((n, n_topics), dtype=np.int32)
        # pulls by topic over the 90 days before the current day (topic_pulls_90d)
        self.pull_win = np.zeros((n, n_topics), dtype=np.int32)
        self.last_touch = np.full((n, n_channels), -(10**6), dtype=np.int64)
        self.last_content = np.full(n, -1, dtype=np.int64)
        # same-day state, folded into the fields above when the day ends
        self._today_last_touch = np.full((n, n_channels), -(10**6), dtype=np.int64)
        self._today_content = np.full(n, -1, dtype=np.int64)
        self._today_content_ts = np.full(n, -1, dtype=np.int64)
        self.day = 0
        # ---- topic x channel engagements (90 days) and days since each content item.
        # Kept apart from the counters above: engagements as sparse per-day event
        # lists (a dense (ring, n, topics * channels) buffer would be large), the
        # day each item last reached each HCP as one (n, n_items) array.
        self.n_channels = n_channels
        self.tc_win = np.zeros((n, n_topics * n_channels), dtype=np.int32)
        self._tc_events: dict[int, list[tuple[I64, I64]]] = {}
        self.item_last_day = np.full((n, n_items), -(10**6), dtype=np.int32)
        self._today_items: list[tuple[I64, I64]] = []
        # ---- the non-zero signal counts (pulls + engagements by topic) of the days
        # that ended, newest day first: (day, hcp, topic, count) (see interest); and
        # each kept day with its number of signals, newest last
        self._signal_days: deque[tuple[int, int]] = deque()
        self._signals: tuple[I64, I64, I64, F64] = (
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
        )
        self._row_of = np.full(n, -1, dtype=np.int64)

    # ------------------------------------------------------------ recording
    def record_touches(
        self, day: int, hcp: I64, channel: I64, item: I64, ts_ms: npt.NDArray[np.int64]
    ) -> None:
        """Touches that happened on ``day`` (each HCP at most once per call)."""
        add_counts(self.touch_day[day % self.ring], (hcp, channel), distinct=True)
        self._today_last_touch[hcp, channel] = day
        newer = ts_ms > self._today_content_ts[hcp]
        self._today_content[hcp[newer]] = item[newer]
        self._today_content_ts[hcp[newer]] = ts_ms[newer]
        self._record_items_seen(hcp, item)

    def record_engagements(self, day: I64, hcp: I64, channel: I64, topic: I64) -> None:
        """Engagement outcomes that happen on ``day`` (absolute day numbers, may be future)."""
        slot = day % self.ring
        add_counts(self.eng_day, (slot, hcp, channel))
        add_counts(self.topic_day, (slot, hcp, topic))
        self._record_topic_channel_engagements(day, hcp, channel, topic)

    def record_pulls(self, day: I64, hcp: I64, topic: I64) -> None:
        """Topics pulled on ``day`` (absolute day numbers, may be future), one entry
        per (touch, topic), each shape (k,)."""
        if day.shape[0] == 0:
            return
        ahead = int(day.max()) - self.day
        if ahead >= self.ring - LONGEST - 1 or int(day.min()) < self.day:
            raise ValueError(
                f"history: pulls on days {int(day.min())}..{int(day.max())} are outside the "
                f"recordable range {self.day}..{self.day + self.ring - LONGEST - 2}"
            )
        add_counts(self.pull_day, (day % self.ring, hcp, topic))

    def interest(self, hcp: I64) -> F64:
        """The context's ``interest`` (before rounding) of each HCP as of the current
        day: pulls and engagements by topic on each of the 90 days before, weighted by
        :data:`nba.context.INTEREST_WEIGHTS`, summed over ages in ascending order.

        Parameters
        ----------
        hcp : ndarray of int64, shape (b,)

        Returns
        -------
        ndarray of float64, shape (b, n_topics)
        """
        b, n_t = hcp.shape[0], self.pull_day.shape[2]
        out = np.zeros((b, n_t))
        if b == 0 or not self._signal_days:
            return out
        day, s_hcp, s_topic, count = self._signals
        row_of = self._row_of
        row_of[hcp] = np.arange(b)
        try:
            row = row_of[s_hcp]
        finally:
            row_of[hcp] = -1
        mine = np.flatnonzero(row >= 0)
        if mine.size == 0:
            return out
        cell = row[mine] * n_t + s_topic[mine]
        terms = count[mine] * _INTEREST_W[self.day - day[mine]]
        # The signals are newest day first, so each cell's terms come in ascending
        # ages; bincount adds its weights one at a time in input order, so each
        # cell is summed in the order of a plain loop over ages 1..90. The zero
        # counts that loop also adds change nothing (x + 0.0 == x), so the sums
        # are bit-identical to it.
        # (float64 with weights; the stubs say int: no copy is made)
        sums = np.bincount(cell, weights=terms, minlength=b * n_t).astype(np.float64, copy=False)
        return sums.reshape(b, n_t)

    def _freeze_signals(self, ended: int) -> None:
        """Keep the non-zero signal counts (pulls + engagements by topic) of the day
        that ended as a sparse list for :meth:`interest`; nothing records into a past
        day, so they are final. Days older than the longest window are dropped.

        The kept signals stay one set of arrays, newest day first: the new day's
        go in front and the dropped days' (the oldest) are cut from the end, so
        no day's arrays are concatenated again."""
        slot = ended % self.ring
        counts = self.pull_day[slot].astype(np.int32) + self.topic_day[slot]
        flat = np.flatnonzero(counts)
        h, t = np.divmod(flat, counts.shape[1])
        self._signal_days.append((ended, int(flat.shape[0])))
        kept = sum(n for _, n in self._signal_days)
        while self._signal_days and self._signal_days[0][0] < ended + 1 - LONGEST:
            kept -= self._signal_days.popleft()[1]
        rest = kept - flat.shape[0]  # the earlier days' signals still kept
        day, s_hcp, s_topic, count = self._signals
        self._signals = (
            np.concatenate([np.full(flat.shape[0], ended, dtype=np.int64), day[:rest]]),
            np.concatenate([h.astype(np.int64, copy=False), s_hcp[:rest]]),
            np.concatenate([t.astype(np.int64, copy=False), s_topic[:rest]]),
            np.concatenate([counts.reshape(-1).take(flat).astype(np.float64), count[:rest]]),
        )

    def topic_pulls(self, hcp: I64) -> I64:
        """The context's ``topic_pulls_90d`` (version 4): topics pulled on each of the
        90 days before the current day, undecayed.

        Parameters
        ----------
        hcp : ndarray of int64, shape (b,)

        Returns
        -------
        ndarray of int64, shape (b, n_topics)
        """
        # kept as a rolling window (see advance), like the other windows
        return self.pull_win[hcp].astype(np.int64)

    # ------------------------------------------------------------ day change
    def advance(self, new_day: int) -> None:
        """Move to ``new_day`` (= previous day + 1): fold in the day that ended."""
        if new_day != self.day + 1:
            raise ValueError(f"history: cannot move from day {self.day} to {new_day}")
        ended = self.day
        r = self.ring
        s_end = ended % r
        for w, win in self.touch_win.items():
            win += self.touch_day[s_end]
            old = ended - w
            if old >= 0:
                win -= self.touch_day[old % r]
        self.eng_win += self.eng_day[s_end]
        old = ended - ENGAGEMENT_CHANNEL_WINDOW
        if old >= 0:
            self.eng_win -= self.eng_day[old % r]
        self.topic_win += self.topic_day[s_end]
        old = ended - ENGAGEMENT_TOPIC_WINDOW
        if old >= 0:
            self.topic_win -= self.topic_day[old % r]
        self.pull_win += self.pull_day[s_end]
        old = ended - LONGEST
        if old >= 0:
            self.pull_win -= self.pull_day[old % r]
        self._freeze_signals(ended)
        # the slot of the day that left the longest window is reused for a future day
        gone = ended - LONGEST
        if gone >= 0:
            g = gone % r
            self.touch_day[g] = 0
            self.eng_day[g] = 0
            self.topic_day[g] = 0
            self.pull_day[g] = 0
        touched = self._today_last_touch > -(10**6)
        self.last_touch[touched] = self._today_last_touch[touched]
        self._today_last_touch[:] = -(10**6)
        got = self._today_content >= 0
        self.last_content[got] = self._today_content[got]
        self._today_content[:] = -1
        self._today_content_ts[:] = -1
        self._advance_items_and_topic_channel(ended)
        self.day = new_day

    # ------------------------------- topic x channel engagements, items seen
    def _record_items_seen(self, hcp: I64, item: I64) -> None:
        """Content items that reached ``hcp`` today (visible from tomorrow)."""
        self._today_items.append((np.asarray(hcp, dtype=np.int64), np.asarray(item, np.int64)))

    def _record_topic_channel_engagements(
        self, day: I64, hcp: I64, channel: I64, topic: I64
    ) -> None:
        """Engagements by (topic, channel) on ``day`` (absolute days, may be future)."""
        tc = np.asarray(topic, dtype=np.int64) * self.n_channels + channel
        day = np.asarray(day, dtype=np.int64)
        hcp = np.asarray(hcp, dtype=np.int64)
        for d in np.unique(day).tolist():
            sel = day == d
            self._tc_events.setdefault(int(d), []).append((hcp[sel], tc[sel]))

    def _advance_items_and_topic_channel(self, ended: int) -> None:
        """Fold the day that ended into ``tc_win`` and ``item_last_day``; drop the
        engagements of the day that left the 90-day window."""
        for hcp, tc in self._tc_events.get(ended, []):
            add_counts(self.tc_win, (hcp, tc))
        for hcp, tc in self._tc_events.pop(ended - ENGAGEMENT_TOPIC_WINDOW, []):
            add_counts(self.tc_win, (hcp, tc), step=-1)
        if self._today_items:
            hcp = np.concatenate([h for h, _ in self._today_items])
            item = np.concatenate([i for _, i in self._today_items])
            self.item_last_day[hcp, item] = ended
            self._today_items = []

    def days_since_content(self, hcp: I64) -> I64:
        """Days since each content item last reached each HCP, 0 where not in the
        last 90 days, shape (len(hcp), n_items)."""
        ds = self.day - self.item_last_day[hcp].astype(np.int64)
        return np.where(ds <= LONGEST, ds, 0)

    def topic_channel_engagements(self, hcp: I64) -> I64:
        """Engagements in the 90 days before, by topic and channel, shape
        (len(hcp), n_topics * n_channels) (column ``topic * n_channels + channel``)."""
        return self.tc_win[hcp].astype(np.int64)

    def days_since_touch(self, hcp: I64) -> I64:
        """Days since the last touch per channel, 0 where none in the last 90 days,
        shape (len(hcp), n_channels)."""
        ds = self.day - self.last_touch[hcp]
        return np.where(ds <= LONGEST, ds, 0)


class MapRenderer:
    """Gives the JSON pieces of rows of counts, for canonical JSON objects
    (``{"key":count,...}``: keys in sorted order, zero counts left out) that
    :meth:`ContextBuilder.render` joins once per decision.

    Parameters
    ----------
    names : sequence of str
        Column names.

    >>> row, pieces, lengths = MapRenderer(["portal", "email"]).cells(
    ...     np.array([[0, 2], [0, 0], [1, 3]]))
    >>> row.tolist(), pieces.tolist(), lengths.tolist()
    ([0, 2, 2], ['"email":2', '"email":3', ',"portal":1'], [9, 9, 11])
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        k = len(self.names)
        self.order = sorted(range(k), key=lambda i: self.names[i])
        self.keys = [json.dumps(self.names[i]) for i in self.order]
        self._cell_table: npt.NDArray[np.object_] | None = None
        self._cell_len = np.zeros(0, dtype=np.int64)

    def cells(self, rows: npt.NDArray[np.integer]) -> tuple[I64, npt.NDArray[np.object_], I64]:
        """The JSON pieces of the non-zero cells of ``rows`` (shape (b, k)), for
        :meth:`ContextBuilder.render` to join: ``'"key":value'`` for the first cell
        of a row and ``',"key":value'`` for the others, rows ascending and keys in
        output order, so that joining a row's pieces between braces gives the
        row's JSON object (keys in sorted order, zero counts left out).

        Returns
        -------
        row : ndarray of int64, shape (m,)
            The row of each piece (ascending).
        pieces : ndarray of object (str), shape (m,)
        lengths : ndarray of int64, shape (m,)
            ``len`` of each piece.
        """
        k = len(self.keys)
        limit = _CELL_LIMIT
        table = self._cell_table
        if table is None:
            # [comma pieces of every key and value below the limit | the same without]
            comma = [f",{key}:{v}" for key in self.keys for v in range(limit)]
            table = self._cell_table = np.array(comma + [c[1:] for c in comma], dtype=object)
            self._cell_len = np.array([len(c) for c in table.tolist()], dtype=np.int64)
        ordered = rows[:, self.order] if self.order != list(range(k)) else rows
        row, col = nonzero_2d(ordered)  # row-major: rows ascending, keys in order
        values = ordered[row, col].astype(np.int64, copy=False)
        first = np.empty(row.shape[0], dtype=bool)
        if row.size:
            first[0] = True
            np.not_equal(row[1:], row[:-1], out=first[1:])
        small = (values >= 0) & (values < limit)
        index = np.where(small, col * limit + values, 0) + first * (k * limit)
        pieces = table.take(index)
        lengths = self._cell_len.take(index)
        if not small.all():  # counts beyond the table: written from the number
            keys = self.keys
            for i in np.flatnonzero(~small).tolist():
                pieces[i] = piece = ("" if first[i] else ",") + f"{keys[col[i]]}:{values[i]}"
                lengths[i] = len(piece)
        return row.astype(np.int64, copy=False), pieces, lengths


class ContextBuilder:
    """Builds ``DecisionContext.to_json()`` strings for batches of decisions.

    Parameters
    ----------
    channels, topics : sequence of str
        Names of the tracker's channel and topic columns.
    item_ids : sequence of str
        Content ids behind item indices (for ``last_content_id``).
    """

    def __init__(self, channels: Sequence[str], topics: Sequence[str], item_ids: Sequence[str]):
        self.channels = tuple(channels)
        self.topics = tuple(topics)
        self._content = np.array([json.dumps(i) for i in item_ids] + ["null"], dtype=object)
        self._channel_map = MapRenderer(self.channels)
        self._topic_map = MapRenderer(self.topics)
        # context version 2: topic x channel engagements, days since each item
        self._topic_channel_map = MapRenderer(
            [topic_channel_key(t, c) for t in self.topics for c in self.channels]
        )
        self._item_map = MapRenderer(list(item_ids))
        # context version 3: interest per topic, three decimals
        self._topic_keys = [json.dumps(t) for t in self.topics]
        self._topic_order = sorted(range(len(self.topics)), key=lambda i: self.topics[i])
        self._sorted_topic_keys = [self._topic_keys[i] + ":" for i in self._topic_order]
        self._cell_topic_keys = np.array(
            ["," + k for k in self._sorted_topic_keys] + self._sorted_topic_keys, dtype=object
        )
        self._cell_topic_len = np.array([len(k) for k in self._cell_topic_keys.tolist()])
        #: interest values already written: value -> its text ("" if it rounds to 0)
        self._interest_text: dict[float, str] = {}
        self._content_len = np.array([len(c) for c in self._content.tolist()], dtype=np.int64)

    def _new_interest_text(self, x: float) -> str:
        """The interest value ``x`` as written (``round(x, 3)``; "" when that is 0),
        kept for the next batches."""
        text = self._interest_text[x] = repr(v) if (v := round(x, 3)) else ""
        return text

    def _interest_cells(self, values: F64) -> tuple[I64, npt.NDArray[np.object_], I64]:
        """The interest map's cells (``values``: float64, shape (b, n_topics), before
        rounding) as :meth:`MapRenderer.cells` gives a count map's: the row of each
        written cell (ascending) and its piece, ``'"topic":value'`` first in a row
        and ``',"topic":value'`` after, and its ``len``, shape (m,) each. Each distinct value is
        rounded (``round(x, 3)``, as ``nba.context.History`` rounds it) and
        formatted once; values that round to zero are left out."""
        ordered = values[:, self._topic_order]
        row, col = nonzero_2d(ordered)  # row-major: rows ascending, topics in key order
        if row.size == 0:
            return row.astype(np.int64), np.empty(0, dtype=object), np.zeros(0, dtype=np.int64)
        uniq, inv = np.unique(ordered[row, col], return_inverse=True)
        values = uniq.tolist()
        # each value's text is kept across batches (the same sums recur): exact
        # float keys, so a kept text is the one rounding gives
        kept = self._interest_text
        if len(kept) > _INTEREST_TEXTS:
            kept.clear()
        new = self._new_interest_text
        text = [t if (t := kept.get(x)) is not None else new(x) for x in values]
        written = np.array([bool(t) for t in text], dtype=bool)[inv]
        if not written.all():  # values that round to zero are left out
            row, col, inv = row[written], col[written], inv[written]
        first = np.empty(row.shape[0], dtype=bool)
        if row.size:
            first[0] = True
            np.not_equal(row[1:], row[:-1], out=first[1:])
        key = col + first * len(self.topics)
        pieces = self._cell_topic_keys.take(key) + np.array(text, dtype=object)[inv]
        lengths = self._cell_topic_len.take(key) + np.array([len(t) for t in text])[inv]
        return row.astype(np.int64, copy=False), pieces, lengths

    def build(
        self,
        day: date,
        profile_json: npt.NDArray[np.object_],
        tracker: HistoryTracker,
        hcp: I64,
        request_json: str,
    ) -> npt.NDArray[np.object_]:
        """Context JSON of each decision.

        Parameters
        ----------
        day : date
        profile_json : ndarray of object (str), shape (n_hcps,)
            Canonical JSON of every HCP's current profile.
        tracker : HistoryTracker
            Positioned on ``day``.
        hcp : ndarray of int, shape (b,)
        request_json : str
            Canonical JSON of the request map (same for the whole batch).

        Returns
        -------
        ndarray of object (str), shape (b,)
        """
        return self.render(day, profile_json[hcp], self.gather(tracker, hcp), request_json)

    def gather(self, tracker: HistoryTracker, hcp: I64) -> dict[str, Any]:
        """The numbers behind the history part of each decision's context: what
        :meth:`render` turns into JSON. Gathering reads the tracker (so it must run
        on the decision day); rendering needs nothing else, so it can run later or
        in another process (see ``simulators.hcp.world``).

        Parameters
        ----------
        tracker : HistoryTracker
            Positioned on the decision day.
        hcp : ndarray of int, shape (b,)

        Returns
        -------
        dict of str to ndarray
            ``days_since_touch``, ``engagements_30d``, ``touches_7d``, ``touches_30d``,
            ``touches_90d`` (each shape (b, n_channels)); ``topic_engagements_90d``,
            ``topic_pulls_90d`` (shape (b, n_topics)); ``interest`` (float64, shape
            (b, n_topics), before rounding); ``topic_channel_engagements_90d`` (shape
            (b, n_topics * n_channels)); ``days_since_content`` (shape (b, n_items));
            ``last_content`` (int64, shape (b,), -1 for none). Days are int8 (0 to
            90), counts int32 (topic x channel engagements int16 when they fit).
        """
        tr = tracker
        # days are 0..90 (int8); counts keep the tracker's int32 (compact to send)
        return {
            "days_since_touch": tr.days_since_touch(hcp).astype(np.int8),
            "engagements_30d": tr.eng_win[hcp],
            "touches_7d": tr.touch_win[7][hcp],
            "touches_30d": tr.touch_win[30][hcp],
            "touches_90d": tr.touch_win[90][hcp],
            "topic_engagements_90d": tr.topic_win[hcp],
            "topic_channel_engagements_90d": _compact(tr.tc_win[hcp]),
            # as days_since_content, in int32 (item days are int32; no int64 pass)
            "days_since_content": _recent_days(tr.day - tr.item_last_day[hcp]),
            "interest": tr.interest(hcp),
            "topic_pulls_90d": tr.pull_win[hcp],
            "last_content": tr.last_content[hcp],
        }

    def render(
        self,
        day: date,
        profiles: npt.NDArray[np.object_],
        history: dict[str, Any],
        request_json: str,
    ) -> npt.NDArray[np.object_]:
        """Context JSON of each decision from its profile and gathered history.

        Each context is joined once from one array of pieces (:meth:`_pieces`), so
        no map's string is joined apart. The tests hold it to a reference that
        writes each map apart.

        Parameters
        ----------
        day : date
        profiles : ndarray of object (str), shape (b,)
            Canonical JSON of each decision's HCP profile.
        history : dict of str to ndarray
            :meth:`gather`'s arrays for the same b decisions.
        request_json : str
            Canonical JSON of the request map (same for the whole batch).

        Returns
        -------
        ndarray of object (str), shape (b,)
        """
        if profiles.shape[0] == 0:
            return np.empty(0, dtype=object)
        pieces, bounds, _ = self._pieces(day, profiles, history, request_json, False)
        flat = pieces.tolist()
        return np.array(
            ["".join(flat[lo:hi]) for lo, hi in itertools.pairwise(bounds.tolist())],
            dtype=object,
        )

    def render_column(
        self,
        day: date,
        profiles: npt.NDArray[np.object_],
        history: dict[str, Any],
        request_json: str,
    ) -> pa.StringArray:
        """:meth:`render`'s strings as an Arrow string array (what the ``decisions``
        table's ``context`` column takes), made without a Python string per
        decision: every piece of the batch is joined once into one text, encoded
        once, and each decision's bounds come from the pieces' lengths. Text that is
        not all ASCII (where lengths in characters and in bytes differ; the
        canonical JSON here is ASCII) is joined decision by decision instead.

        Parameters and their shapes as :meth:`render`'s; returns b strings.
        """
        b = profiles.shape[0]
        if b == 0:
            return pa.array([], pa.string())
        pieces, bounds, lengths = self._pieces(day, profiles, history, request_json, True)
        flat = pieces.tolist()
        text = "".join(flat)
        if text.isascii() and len(text) < np.iinfo(np.int32).max:
            ends = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
            np.cumsum(lengths, out=ends[1:])
            offsets = ends[bounds]
            if int(offsets[-1]) != len(text):  # pragma: no cover - a bug, never data
                raise RuntimeError(
                    f"contexts: the pieces' lengths add up to {int(offsets[-1])}, "
                    f"their text has {len(text)} characters"
                )
            return pa.StringArray.from_buffers(
                b, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(text.encode("ascii"))
            )
        rows = ["".join(flat[lo:hi]) for lo, hi in itertools.pairwise(bounds.tolist())]
        return pa.array(rows, pa.string())

    def _pieces(
        self,
        day: date,
        profiles: npt.NDArray[np.object_],
        history: dict[str, Any],
        request_json: str,
        measure: bool,
    ) -> tuple[npt.NDArray[np.object_], I64, I64]:
        """Every piece of b > 0 decisions' contexts, in order: the fixed text
        between the maps, each decision's profile and last content, and one piece
        per non-zero cell of every history map (:meth:`MapRenderer.cells`,
        :meth:`_interest_cells`), each piece placed at its position in its
        decision's sequence by array arithmetic.

        Parameters as :meth:`render`'s (``profiles`` shape (b,)); ``measure``:
        whether to give the pieces' lengths (:meth:`render_column` needs them,
        :meth:`render` does not).

        Returns
        -------
        pieces : ndarray of object (str), shape (m,)
        bounds : ndarray of int64, shape (b + 1,)
            Decision i's pieces are ``pieces[bounds[i]:bounds[i + 1]]``.
        lengths : ndarray of int64, shape (m,), or shape (0,) unless ``measure``
            ``len`` of each piece.
        """
        b = profiles.shape[0]
        h = history
        chan, topic = self._channel_map, self._topic_map
        last = h["last_content"]
        # the decision's pieces in order: a str is the same text for every decision,
        # an (object array, lengths) pair one piece per decision, a (row, pieces,
        # lengths) triple a map's cells
        seq: list[Any] = [
            f'{{"day":"{day.isoformat()}","hcp":',
            (profiles, np.fromiter(map(len, profiles.tolist()), np.int64, b) if measure else None),
            ',"history":{"days_since_content":{',
            self._item_map.cells(h["days_since_content"]),
            '},"days_since_touch":{',
            chan.cells(h["days_since_touch"]),
            '},"engagements_30d":{',
            chan.cells(h["engagements_30d"]),
            '},"interest":{',
            self._interest_cells(h["interest"]),
            '},"last_content_id":',
            # -1 -> "null" (last entry)
            (self._content.take(last), self._content_len.take(last) if measure else None),
            ',"topic_channel_engagements_90d":{',
            self._topic_channel_map.cells(h["topic_channel_engagements_90d"]),
            '},"topic_engagements_90d":{',
            topic.cells(h["topic_engagements_90d"]),
            '},"topic_pulls_90d":{',
            topic.cells(h["topic_pulls_90d"]),
            '},"touches_30d":{',
            chan.cells(h["touches_30d"]),
            '},"touches_7d":{',
            chan.cells(h["touches_7d"]),
            '},"touches_90d":{',
            chan.cells(h["touches_90d"]),
            f'}}}},"request":{request_json},"v":{CONTEXT_VERSION}}}',
        ]
        cell_maps = [x for x in seq if isinstance(x, tuple) and len(x) == 3]
        counts = [np.bincount(x[0], minlength=b) for x in cell_maps]
        per_row = len(seq) - len(cell_maps) + sum(counts)
        bounds = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(per_row, out=bounds[1:])
        pieces = np.empty(int(bounds[-1]), dtype=object)
        lengths = np.empty(int(bounds[-1]) if measure else 0, dtype=np.int64)
        at = bounds[:-1].copy()  # where each decision's next piece goes
        cell_counts = iter(counts)
        for x in seq:
            if isinstance(x, str):
                pieces[at] = x
                if measure:
                    lengths[at] = len(x)
                at += 1
            elif len(x) == 2:
                pieces[at] = x[0]
                if measure:
                    lengths[at] = x[1]
                at += 1
            else:
                row, cells, cell_len = x
                n = next(cell_counts)
                if cells.size:
                    # k-th cell of its row goes k places after the row's position
                    row_first = np.cumsum(n) - n
                    where = at[row] + (np.arange(row.shape[0]) - row_first[row])
                    pieces[where] = cells
                    if measure:
                        lengths[where] = cell_len
                at += n
        return pieces, bounds, lengths


def _compact(counts: I32) -> npt.NDArray[np.int16] | I32:
    """Non-negative counts as int16 when they fit (the widest map, to send), else
    as they are."""
    if counts.size and int(counts.max()) > np.iinfo(np.int16).max:
        return counts
    return counts.astype(np.int16)


def _recent_days(ds: I32) -> npt.NDArray[np.int8]:
    """Days since (shape any, int32), 0 where more than the longest window ago, as
    int8 (0 to 90)."""
    # the same values as np.where(ds <= LONGEST, ds, 0).astype(np.int8), whose
    # where on int32 took ten times as long: a 0/1 mask times the int8 days
    return (ds <= LONGEST).astype(np.int8) * ds.astype(np.int8)


NEVER_US = -(1 << 60)


class ContactState:
    """Exact touch times the contact rules look at, for ``n`` HCPs (only kept when
    a world runs with rules).

    Per HCP: the time of the latest touch, the time each content item last reached
    it, and per channel the times of its ``depth`` latest touches -- enough to tell
    whether any frequency cap (at most ``max <= depth`` touches in a window) is full.

    Parameters
    ----------
    n, n_channels, n_items : int
    depth : int
        How many recent touches to keep per channel (the largest cap ``max``; >= 1).

    >>> st = ContactState(1, 2, 3, depth=2)
    >>> st.record(np.array([0]), np.array([1]), np.array([2]), np.array([0]))
    >>> st.inputs(np.array([0]), np.array([DAY_US]), (7.0,))[0][0, :, 0].tolist()
    [0, 1]
    """

    def __init__(self, n: int, n_channels: int, n_items: int, depth: int) -> None:
        self.depth = max(1, int(depth))
        self.last_ts = np.full(n, NEVER_US, dtype=np.int64)
        self.content_ts = np.full((n, n_items), NEVER_US, dtype=np.int64)
        # oldest first along the last axis
        self.recent = np.full((n, n_channels, self.depth), NEVER_US, dtype=np.int64)

    def record(self, hcp: I64, channel: I64, item: I64, ts_us: I64) -> None:
        """Touches at ``ts_us`` (each HCP at most once per call), shape (k,) each."""
        if hcp.shape[0] == 0:
            return
        self.last_ts[hcp] = np.maximum(self.last_ts[hcp], ts_us)
        self.content_ts[hcp, item] = np.maximum(self.content_ts[hcp, item], ts_us)
        rows = self.recent[hcp, channel]  # (k, depth)
        rows = np.concatenate([rows, ts_us[:, None]], axis=1)
        rows.sort(axis=1)
        self.recent[hcp, channel] = rows[:, 1:]

    def inputs(self, hcp: I64, now_us: I64, windows: Sequence[float]) -> tuple[I64, F64, F64]:
        """Touch counts and ages for :meth:`nba.contact.ContactPolicy.mask_batch`.

        Parameters
        ----------
        hcp : ndarray of int64, shape (b,)
        now_us : ndarray of int64, shape (b,)
            Decision times (microseconds since the epoch).
        windows : sequence of float, length w
            Cap window lengths in days.

        Returns
        -------
        touch_counts : ndarray of int64, shape (b, n_channels, w)
            Touches with ``0 <= now - ts < window`` (counted up to ``depth``).
        days_since_touch : ndarray of float64, shape (b,)
            ``inf`` where the HCP was never touched (or only after ``now``).
        days_since_content : ndarray of float64, shape (b, n_items)
        """
        now = now_us[:, None]
        rec = self.recent[hcp]  # (b, c, depth)
        age_us = now[:, :, None] - rec
        past = (rec > NEVER_US) & (age_us >= 0)
        counts = np.zeros((hcp.shape[0], rec.shape[1], len(windows)), dtype=np.int64)
        for w, days in enumerate(windows):
            counts[:, :, w] = (past & (age_us < days * DAY_US)).sum(axis=2)
        return counts, _age_days(self.last_ts[hcp], now_us), _age_days(self.content_ts[hcp], now)


def _age_days(ts: I64, now: npt.NDArray[np.int64]) -> F64:
    """Age in days of ``ts`` at ``now`` (broadcast); ``inf`` for never or the future."""
    age = now - ts
    out = age / DAY_US
    out[(ts == NEVER_US) | (age < 0)] = np.inf
    return out
