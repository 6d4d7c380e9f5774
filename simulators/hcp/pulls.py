"""Pull signals: the simulated HCP showing its interest the way real ones do.

The world emits, from its hidden state, touches of the kinds of
:data:`nba.logs.schema.TOUCH_KINDS` other than ``contact``:

- ``detail_pull``: in a rep visit or remote call that was held, the HCP asks
  about ``1 + Poisson(detail_extra_topics * w[h])`` topics (without
  replacement) and is shown one approved slide (catalog item) per topic when
  the market has one; dwell is the sum of the seconds spent per topic.
- ``email_click``: a clicked email reveals the topic of its content item.
- ``portal_view``: each day a portal-registered HCP views ``Poisson(rate *
  (0.5 + digital_affinity) * w[h])`` pages, each on one topic; origin
  ``external`` (the HCP came on its own).
- ``webinar_question``: an attended webinar brings ``Poisson(rate * w[h])``
  questions, one topic each.

Topics are drawn with weight ``exp(pull_interest_coef * interest[h, t]) *
(1 - knowledge[h, t])`` (``w[h]`` is the mean of these weights over topics):
an HCP pulls what interests it and what it does not know yet. Each pulled
topic moves knowledge ``pull_knowledge_gain`` of the way to 1 (applied by the
world the day after), so pulls on a topic fade as the HCP learns it, and an HCP
who knows little keeps pulling it for longer.

All draws use the generator passed in (the world's own pull generator), never
the one that draws outcomes, so adding pull signals leaves the outcome draws
in place.

>>> from nba.catalog import Catalog
>>> from simulators.hcp.config import WorldConfig
>>> from simulators.hcp.population import Population
>>> cat = Catalog.default()
>>> pop = Population.generate(200, cat, seed=1)
>>> pm = PullModel(cat, WorldConfig(), pop)
>>> rng = np.random.default_rng(0)
>>> views = pm.portal_views(rng, 0, pm.approved_items(pop.markets, date(2026, 1, 5)))
>>> bool(views.n > 0 and (views.kind == KIND_CODE["portal_view"]).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from nba.catalog import Catalog
from nba.logs.schema import TOUCH_KINDS
from simulators.hcp.config import WorldConfig
from simulators.hcp.history import nonzero_2d
from simulators.hcp.population import Population

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: kind name -> code (index into :data:`nba.logs.schema.TOUCH_KINDS`)
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(TOUCH_KINDS)}
#: touches of these kinds come from the HCP's side, not from us
EXTERNAL_KINDS = frozenset({"portal_view"})
#: outcome type -> the pull it reveals (held visit/call: a detail; click; attendance)
PULL_OF_OUTCOME: dict[str, str] = {
    "meeting_held": "detail_pull",
    "call_held": "detail_pull",
    "clicked": "email_click",
    "attended": "webinar_question",
}

SECOND_US = 1_000_000
HOUR_US = 3_600 * SECOND_US
DAY_US = 24 * HOUR_US


@dataclass(frozen=True)
class Touches:
    """Touch rows in columns, ragged lists as sizes + flat values.

    Attributes
    ----------
    hcp, ts_us, channel, content, kind : ndarray of int64, shape (k,)
        ``content`` indexes :attr:`PullModel.content_ids` (catalog items, then
        one portal page per topic); ``kind`` indexes ``TOUCH_KINDS``.
    topic_sizes : ndarray of int64, shape (k,)
    topics : ndarray of int64, shape (topic_sizes.sum(),)
        Catalog topic indices, row after row.
    slide_sizes : ndarray of int64, shape (k,)
    slides : ndarray of int64, shape (slide_sizes.sum(),)
        Catalog item indices (``content_ids`` of the log).
    dwell_s : ndarray of float64, shape (k,)
        NaN where not measured.
    """

    hcp: I64
    ts_us: I64
    channel: I64
    content: I64
    kind: I64
    topic_sizes: I64
    topics: I64
    slide_sizes: I64
    slides: I64
    dwell_s: F64

    @property
    def n(self) -> int:
        return int(self.hcp.shape[0])

    @classmethod
    def empty(cls) -> Touches:
        z = np.empty(0, dtype=np.int64)
        return cls(z, z, z, z, z, z, z, z, z, np.empty(0))

    @classmethod
    def contacts(cls, hcp: I64, ts_us: I64, channel: I64, item: I64) -> Touches:
        """Plain contacts: kind ``contact``, no topics, no slides, no dwell."""
        k = hcp.shape[0]
        zeros = np.zeros(k, dtype=np.int64)
        none = np.empty(0, dtype=np.int64)
        return cls(
            hcp.astype(np.int64),
            ts_us.astype(np.int64),
            channel.astype(np.int64),
            item.astype(np.int64),
            np.full(k, KIND_CODE["contact"], dtype=np.int64),
            zeros,
            none,
            zeros,
            none,
            np.full(k, np.nan),
        )

    @classmethod
    def concat(cls, parts: Sequence[Touches]) -> Touches:
        if not parts:
            return cls.empty()
        return cls(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in (
                    "hcp",
                    "ts_us",
                    "channel",
                    "content",
                    "kind",
                    "topic_sizes",
                    "topics",
                    "slide_sizes",
                    "slides",
                    "dwell_s",
                )
            )
        )

    def take(self, rows: I64) -> Touches:
        """The rows ``rows`` (any order, shape (r,)), lists kept with their rows."""
        return Touches(
            self.hcp[rows],
            self.ts_us[rows],
            self.channel[rows],
            self.content[rows],
            self.kind[rows],
            self.topic_sizes[rows],
            self.topics[_ragged_index(self.topic_sizes, rows)],
            self.slide_sizes[rows],
            self.slides[_ragged_index(self.slide_sizes, rows)],
            self.dwell_s[rows],
        )

    def topic_rows(self) -> I64:
        """The row of each entry of :attr:`topics`, shape (topic_sizes.sum(),)."""
        return np.repeat(np.arange(self.n), self.topic_sizes)


def _ragged_index(sizes: I64, rows: I64) -> I64:
    """Flat positions of the values of ``rows`` in a ragged array of row ``sizes``."""
    starts = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    take = sizes[rows]
    total = int(take.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    out_starts = np.zeros(rows.shape[0], dtype=np.int64)
    np.cumsum(take[:-1], out=out_starts[1:])
    return np.repeat(starts[rows] - out_starts, take) + np.arange(total, dtype=np.int64)


class PullModel:
    """Vectorized emission of pull signals for one world's population.

    Parameters
    ----------
    catalog : Catalog
    config : WorldConfig
    population : Population
        The HCPs whose hidden state drives the pulls (its ``topic_interest`` is
        fixed for the life of the world; ``knowledge`` is read at each draw).
    """

    def __init__(self, catalog: Catalog, config: WorldConfig, population: Population) -> None:
        self.catalog = catalog
        self.config = config
        self.population = population
        #: exp(pull_interest_coef * topic_interest), shape (n, n_topics)
        self.interest_weight = np.exp(config.pull_interest_coef * population.topic_interest)
        self._portal_bound: tuple[npt.NDArray[np.bool_], F64, F64] | None = None
        self.topics = catalog.topics
        self.channels = catalog.channels
        items = catalog.items
        topic_pos = {t: i for i, t in enumerate(self.topics)}
        self.item_topic = np.array([topic_pos[it.topic] for it in items], dtype=np.int64)
        self.n_items = len(items)
        #: content ids behind ``Touches.content``: catalog items, then one portal page per topic
        self.content_ids: tuple[str, ...] = tuple(it.id for it in items) + tuple(
            f"portal:{t}" for t in self.topics
        )
        self.portal = self.channels.index("portal") if "portal" in self.channels else -1
        self.item_on_portal = np.array(["portal" in it.channels for it in items], dtype=bool)
        self._approvals = [
            {ap.market: (ap.start.toordinal(), ap.expiry.toordinal()) for ap in it.approvals}
            for it in items
        ]
        self._approved_cache: dict[tuple[tuple[str, ...], int], npt.NDArray[np.bool_]] = {}

    # ---------------------------------------------------------------- helpers
    def approved_items(self, markets: Sequence[str], day: date) -> npt.NDArray[np.bool_]:
        """Items approved in each market on ``day`` (half-open windows), shape
        (len(markets), n_items)."""
        key = (tuple(markets), day.toordinal())
        hit = self._approved_cache.get(key)
        if hit is not None:
            return hit
        o = day.toordinal()
        out = np.zeros((len(markets), self.n_items), dtype=bool)
        for i, appr in enumerate(self._approvals):
            for mi, m in enumerate(markets):
                win = appr.get(m)
                out[mi, i] = win is not None and win[0] <= o < win[1]
        self._approved_cache = {key: out}  # one day at a time
        return out

    def weights(self, hcp: I64 | None = None) -> F64:
        """Pull weight of each topic, ``exp(coef * interest) * (1 - knowledge)``,
        shape (len(hcp), n_topics) (all HCPs when ``hcp`` is None)."""
        pop = self.population
        if hcp is None:
            return self.interest_weight * (1.0 - pop.knowledge)
        return self.interest_weight[hcp] * (1.0 - pop.knowledge[hcp])

    def _dwell(self, rng: np.random.Generator, median: float, knowledge: F64) -> F64:
        """Seconds spent on each pulled topic, shape like ``knowledge``."""
        noise = np.exp(self.config.dwell_sigma * rng.standard_normal(knowledge.shape[0]))
        return median * (0.5 + (1.0 - knowledge)) * noise

    @staticmethod
    def _one_each(rng: np.random.Generator, w: F64) -> I64:
        """One column per row drawn with probability proportional to ``w`` (b, T)."""
        cum = np.cumsum(w, axis=1)
        u = rng.random(w.shape[0]) * cum[:, -1]
        idx = (cum <= u[:, None]).sum(axis=1)
        return np.minimum(idx, w.shape[1] - 1).astype(np.int64)

    def _pick_items(
        self, rng: np.random.Generator, topic: I64, allowed: npt.NDArray[np.bool_]
    ) -> I64:
        """A random allowed item on each ``topic`` (shape (s,)), -1 where none;
        ``allowed`` has shape (s, n_items)."""
        cand = allowed & (self.item_topic[None, :] == topic[:, None])
        keys = np.where(cand, rng.random(cand.shape), -1.0)
        pick = keys.argmax(axis=1)
        return np.where(cand.any(axis=1), pick, -1).astype(np.int64)

    # ---------------------------------------------------------------- signals
    def from_outcomes(
        self,
        rng: np.random.Generator,
        kind: str,
        hcp: I64,
        channel: I64,
        item: I64,
        ts_us: I64,
        approved: npt.NDArray[np.bool_],
    ) -> Touches:
        """Pulls revealed by outcomes of kind ``kind`` (``detail_pull``, ``email_click``
        or ``webinar_question``), one outcome per entry.

        Parameters
        ----------
        hcp, channel, item, ts_us : ndarray of int64, shape (e,)
            HCP, channel and content item of the executed action, time of the outcome.
        approved : ndarray of bool, shape (n_markets, n_items)
            Items approved in each market today (slides shown in a detail).
        """
        pop = self.population
        e = hcp.shape[0]
        if e == 0:
            return Touches.empty()
        if kind == "email_click":
            return Touches(
                hcp,
                ts_us,
                channel,
                item,
                np.full(e, KIND_CODE[kind], dtype=np.int64),
                np.ones(e, dtype=np.int64),
                self.item_topic[item],
                np.zeros(e, dtype=np.int64),
                np.empty(0, dtype=np.int64),
                np.full(e, np.nan),
            )
        cfg = self.config
        w = self.weights(hcp)
        mean_w = w.mean(axis=1)
        if kind == "detail_pull":
            n_t = w.shape[1]
            k = np.minimum(1 + rng.poisson(cfg.detail_extra_topics * mean_w), n_t)
            # k topics without replacement, weight w (Gumbel top-k)
            with np.errstate(divide="ignore"):
                keys = np.log(w) + rng.gumbel(size=w.shape)
            order = np.argsort(-keys, axis=1, kind="stable")
            take = (np.arange(n_t)[None, :] < k[:, None]) & (
                np.take_along_axis(w, order, axis=1) > 0
            )
            row, col = nonzero_2d(take)
            topic = order[row, col].astype(np.int64)
            sizes = np.bincount(row, minlength=e).astype(np.int64)
            know = pop.knowledge[hcp[row], topic]
            dwell_t = self._dwell(rng, cfg.detail_dwell_median_s, know)
            dwell = np.round(np.bincount(row, weights=dwell_t, minlength=e), 1)
            slide = self._pick_items(rng, topic, approved[pop.market[hcp[row]]])
            has = slide >= 0
            return Touches(
                hcp,
                ts_us,
                channel,
                item,
                np.full(e, KIND_CODE[kind], dtype=np.int64),
                sizes,
                topic,
                np.bincount(row[has], minlength=e).astype(np.int64),
                slide[has],
                np.where(sizes > 0, dwell, np.nan),
            )
        if kind == "webinar_question":
            q = rng.poisson(cfg.webinar_question_rate * mean_w)
            rows = np.repeat(np.arange(e), q)
            if rows.size == 0:
                return Touches.empty()
            topic = self._one_each(rng, w[rows])
            ts = ts_us[rows] + rng.integers(0, HOUR_US, size=rows.size)
            r = rows.size
            return Touches(
                hcp[rows],
                ts,
                channel[rows],
                item[rows],
                np.full(r, KIND_CODE[kind], dtype=np.int64),
                np.ones(r, dtype=np.int64),
                topic,
                np.zeros(r, dtype=np.int64),
                np.empty(0, dtype=np.int64),
                np.full(r, np.nan),
            )
        raise ValueError(f"pulls: no pull of kind {kind!r} comes from an outcome")

    def portal_views(
        self,
        rng: np.random.Generator,
        day_start_us: int,
        approved: npt.NDArray[np.bool_],
    ) -> Touches:
        """One day of HCP-initiated portal views (06:00-23:00 UTC), origin ``external``.

        Parameters
        ----------
        day_start_us : int
            Midnight (UTC) of the day, microseconds since the epoch.
        approved : ndarray of bool, shape (n_markets, n_items)

        Returns
        -------
        Touches
            One row per view, one topic each; ``content`` is an approved portal item on
            the topic, or the topic's portal page when the market has none.
        """
        if self.portal < 0 or self.config.portal_view_rate == 0:
            return Touches.empty()
        cfg, pop = self.config, self.population
        # Each HCP's views are Poisson(rate * (0.5 + affinity) * mean_t weight). Drawn by
        # thinning: views at the upper bound rate (knowledge 0), each kept with probability
        # mean weight / its bound, so only the few viewing HCPs' weights are computed.
        reg = pop.consent[:, self.portal]
        bound = self._portal_bound
        if bound is None or not np.array_equal(bound[0], reg):
            top = cfg.portal_view_rate * (0.5 + pop.digital_affinity)
            top = np.where(reg, top * self.interest_weight.mean(axis=1), 0.0)
            bound = (reg.copy(), np.cumsum(top), self.interest_weight.mean(axis=1))
            self._portal_bound = bound
        cum, iw_mean = bound[1], bound[2]
        total = float(cum[-1])
        if total <= 0:
            return Touches.empty()
        cand = np.searchsorted(cum, rng.random(rng.poisson(total)) * total, side="right")
        cand = np.minimum(cand, pop.n - 1).astype(np.int64)
        w_cand = self.weights(cand)
        keep = rng.random(cand.size) * iw_mean[cand] < w_cand.mean(axis=1)
        hcp = np.sort(cand[keep])
        r = hcp.size
        if r == 0:
            return Touches.empty()
        w = self.weights(hcp)
        topic = self._one_each(rng, w)
        ts = day_start_us + 6 * HOUR_US + rng.integers(0, 17 * HOUR_US, size=r)
        ts = ts - ts % 1000  # millisecond resolution, as decisions
        allowed = approved[pop.market[hcp]] & self.item_on_portal[None, :]
        page = self._pick_items(rng, topic, allowed)
        content = np.where(page >= 0, page, self.n_items + topic)
        know = pop.knowledge[hcp, topic]
        dwell = np.round(self._dwell(rng, cfg.portal_dwell_median_s, know), 1)
        order = np.argsort(ts, kind="stable")
        return Touches(
            hcp[order],
            ts[order],
            np.full(r, self.portal, dtype=np.int64),
            content[order],
            np.full(r, KIND_CODE["portal_view"], dtype=np.int64),
            np.ones(r, dtype=np.int64),
            topic[order],
            np.zeros(r, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            dwell[order],
        )
