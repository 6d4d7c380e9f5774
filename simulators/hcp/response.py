"""How a simulated HCP responds to one action: outcome probabilities, delays,
sampling, and the exact expected reward under a reward definition.

Every channel follows the same small structure (a *channel model*)::

    gate       (email: delivered)                       probability pg
      primary  (opened / meeting_held / call_held /     probability p1
                registered / visited)
        secondary (clicked / attended / downloaded)     probability p2 given primary
      side     (email: unsubscribed)                    probability ps given gate

Each event has a delay measured from the gate (the send); a secondary event
comes after its primary. Business value events (``sample_requested``,
``rx_signal``; :data:`VALUE_EVENTS`) follow the primary event with a per-channel
probability (``WorldConfig.sample_request_rate`` / ``rx_signal_rate``) and a
delay of their own, independently of the secondary and side events.
Outcomes later than the reward window do not count.
Because the delay distributions do not depend on the HCP, the chance that an
event falls inside the window is one number per event type, computed once by
numerical integration; the expected reward is then exact for any reward
definition (sum or max aggregation, clip, default).

>>> d = LogNormalDelay(median=1.0, sigma=1.0)
>>> round(d.cdf(1.0), 6)
0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import integrate, special

from nba.catalog import Catalog
from nba.reward import RewardDefinition
from nba.topics import stage_topic_matrix
from simulators.hcp.config import SimulatorConfigError, WorldConfig
from simulators.hcp.population import Population

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Delay(Protocol):
    """A delay distribution in days."""

    def sample(self, rng: np.random.Generator, size: int) -> F64: ...
    def cdf(self, x: float) -> float: ...
    def pdf(self, x: float) -> float: ...


@dataclass(frozen=True)
class FixedDelay:
    days: float

    def sample(self, rng: np.random.Generator, size: int) -> F64:
        return np.full(size, self.days)

    def cdf(self, x: float) -> float:
        return 1.0 if x >= self.days else 0.0

    def pdf(self, x: float) -> float:  # pragma: no cover - never integrated
        raise NotImplementedError("a fixed delay has no density")


@dataclass(frozen=True)
class LogNormalDelay:
    """Log-normal delay with the given median (days) and log-scale ``sigma``."""

    median: float
    sigma: float

    def sample(self, rng: np.random.Generator, size: int) -> F64:
        return self.median * np.exp(self.sigma * rng.standard_normal(size))

    def cdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        z = math.log(x / self.median) / self.sigma
        return 0.5 * math.erfc(-z / math.sqrt(2.0))

    def pdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        z = math.log(x / self.median) / self.sigma
        return math.exp(-0.5 * z * z) / (x * self.sigma * math.sqrt(2.0 * math.pi))


@dataclass(frozen=True)
class GammaDelay:
    shape: float
    scale: float

    def sample(self, rng: np.random.Generator, size: int) -> F64:
        return rng.gamma(self.shape, self.scale, size)

    def cdf(self, x: float) -> float:
        return float(special.gammainc(self.shape, x / self.scale)) if x > 0 else 0.0

    def pdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        k, th = self.shape, self.scale
        return math.exp((k - 1) * math.log(x) - x / th - math.lgamma(k) - k * math.log(th))


@dataclass(frozen=True)
class UniformDelay:
    low: float
    high: float

    def sample(self, rng: np.random.Generator, size: int) -> F64:
        return rng.uniform(self.low, self.high, size)

    def cdf(self, x: float) -> float:
        return float(min(max((x - self.low) / (self.high - self.low), 0.0), 1.0))

    def pdf(self, x: float) -> float:
        return 1.0 / (self.high - self.low) if self.low <= x <= self.high else 0.0


@dataclass(frozen=True)
class ChannelModel:
    """Outcome structure of one channel (see module docstring)."""

    primary: str
    primary_delay: Delay
    gate: str | None = None
    gate_delay: float = 0.0
    secondary: str | None = None
    secondary_delay: Delay | None = None
    side: str | None = None
    side_delay: Delay | None = None
    #: +1: digital channel (likes high digital affinity), -1: personal channel
    digital_sign: float = 1.0


#: one second, in days
_SECOND = 1.0 / 86400.0

CHANNEL_MODELS: dict[str, ChannelModel] = {
    "email": ChannelModel(
        gate="delivered",
        gate_delay=_SECOND,
        primary="opened",
        primary_delay=LogNormalDelay(0.35, 1.6),
        secondary="clicked",
        secondary_delay=LogNormalDelay(0.01, 1.0),
        side="unsubscribed",
        side_delay=LogNormalDelay(0.2, 1.2),
    ),
    "rep_visit": ChannelModel(
        primary="meeting_held", primary_delay=GammaDelay(2.0, 2.5), digital_sign=-1.0
    ),
    "remote_call": ChannelModel(
        primary="call_held", primary_delay=GammaDelay(1.5, 1.5), digital_sign=-1.0
    ),
    "webinar": ChannelModel(
        primary="registered",
        primary_delay=LogNormalDelay(0.5, 1.3),
        secondary="attended",
        secondary_delay=UniformDelay(1.0, 15.0),
    ),
    "portal": ChannelModel(
        primary="visited",
        primary_delay=LogNormalDelay(0.6, 1.5),
        secondary="downloaded",
        secondary_delay=LogNormalDelay(0.005, 1.0),
    ),
}

#: Business value events: type -> delay after the primary event (a sample is asked
#: for at the meeting or within a day; a prescription signal shows in the data a
#: week or so later). Rates per channel are in WorldConfig.
VALUE_EVENTS: dict[str, Delay] = {
    "sample_requested": UniformDelay(0.0, 1.0),
    "rx_signal": GammaDelay(2.0, 3.0),
}

#: outcome states of (primary, secondary) inside the window
BOTH, PRIMARY_ONLY, NEITHER = 0, 1, 2


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class OutcomeProbabilities:
    """Per-entry probabilities of the channel model's events, each shape (m,).

    ``channel`` indexes the catalog's channels. ``gate`` is 1 where the channel
    has no gate; ``secondary`` / ``side`` are 0 where it has none.
    """

    channel: I64
    gate: F64
    primary: F64
    secondary: F64
    side: F64

    def take(self, idx: I64) -> OutcomeProbabilities:
        return OutcomeProbabilities(
            self.channel[idx],
            self.gate[idx],
            self.primary[idx],
            self.secondary[idx],
            self.side[idx],
        )


@dataclass(frozen=True)
class SampledOutcomes:
    """Events drawn for a batch of executed actions.

    Attributes
    ----------
    entry : ndarray of int64, shape (k,)
        Which executed action (row of the sampled batch) each event belongs to.
    type_code : ndarray of int64, shape (k,)
        Index into :attr:`ResponseModel.outcome_types`.
    delay_days : ndarray of float64, shape (k,)
        Time from the decision to the event, in days.
    """

    entry: I64
    type_code: I64
    delay_days: F64


class ResponseModel:
    """Outcome probabilities, sampling and ground truth for one world.

    Parameters
    ----------
    catalog : Catalog
    config : WorldConfig
    reward_definition : RewardDefinition
        Defines the ground truth (its window decides which delays count).
    """

    def __init__(
        self, catalog: Catalog, config: WorldConfig, reward_definition: RewardDefinition
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.reward_definition = reward_definition
        window = float(reward_definition.window_days)
        if window >= config.max_delay_days:
            raise SimulatorConfigError(
                f"WorldConfig: field 'max_delay_days': {config.max_delay_days} must exceed the "
                f"reward window of {reward_definition.id} ({window} days)"
            )
        self.channels = catalog.channels
        unknown = [c for c in self.channels if c not in CHANNEL_MODELS]
        if unknown:
            raise SimulatorConfigError(
                f"{catalog.source}: channel {unknown[0]!r} has no response model in the simulator "
                f"(known: {', '.join(CHANNEL_MODELS)})"
            )
        self.models = [CHANNEL_MODELS[c] for c in self.channels]
        types: list[str] = []
        for m in self.models:
            for t in (m.gate, m.primary, m.secondary, m.side):
                if t is not None and t not in types:
                    types.append(t)
        # business value events with a positive rate on some channel of the catalog
        rates = {"sample_requested": config.sample_request_rate, "rx_signal": config.rx_signal_rate}
        self.value_types: tuple[str, ...] = tuple(
            v for v in VALUE_EVENTS if any(rates[v].get(c, 0.0) > 0 for c in self.channels)
        )
        types.extend(v for v in self.value_types if v not in types)
        #: every outcome type the world can emit
        self.outcome_types: tuple[str, ...] = tuple(types)
        code = {t: i for i, t in enumerate(types)}
        n_c = len(self.channels)
        self.gate_code = np.array([code.get(m.gate or "", -1) for m in self.models])
        self.primary_code = np.array([code[m.primary] for m in self.models])
        self.secondary_code = np.array([code.get(m.secondary or "", -1) for m in self.models])
        self.side_code = np.array([code.get(m.side or "", -1) for m in self.models])
        self.gate_delay = np.array([m.gate_delay for m in self.models])
        self.digital_sign = np.array([m.digital_sign for m in self.models])
        # chance each event lands inside the window, given that it happens
        self.q_primary = np.zeros(n_c)
        self.q_both = np.zeros(n_c)
        self.q_side = np.zeros(n_c)
        for c, m in enumerate(self.models):
            w = window - m.gate_delay
            self.q_primary[c] = m.primary_delay.cdf(w)
            if m.secondary_delay is not None:
                sd = m.secondary_delay
                pd = m.primary_delay
                val, _ = integrate.quad(
                    lambda x, pd=pd, sd=sd, w=w: pd.pdf(x) * sd.cdf(w - x),
                    0.0,
                    w,
                    limit=400,
                    epsabs=1e-12,
                    epsrel=1e-10,
                    points=[min(w, 1.0)],
                )
                self.q_both[c] = val
            if m.side_delay is not None:
                self.q_side[c] = m.side_delay.cdf(w)
        n_v = len(self.value_types)
        #: chance of each value event given the primary, shape (n_channels, n_values)
        self.value_rate = np.array(
            [[rates[v].get(ch, 0.0) for v in self.value_types] for ch in self.channels]
        ).reshape(n_c, n_v)
        self.value_code = np.array([code[v] for v in self.value_types], dtype=np.int64)
        # chance a value event lands in the window given the primary happened
        self.q_value = np.zeros((n_c, n_v))
        for c, m in enumerate(self.models):
            w = window - m.gate_delay
            for j, v in enumerate(self.value_types):
                vd = VALUE_EVENTS[v]
                pd = m.primary_delay
                val, _ = integrate.quad(
                    lambda x, pd=pd, vd=vd, w=w: pd.pdf(x) * vd.cdf(w - x),
                    0.0,
                    w,
                    limit=400,
                    epsabs=1e-12,
                    epsrel=1e-10,
                    points=[min(w, 1.0)],
                )
                self.q_value[c, j] = val
        rd = reward_definition
        self.value_weight = np.array([rd.weights.get(v, 0.0) for v in self.value_types])
        if (
            (rd.aggregation != "sum" or rd.clip is not None)
            and n_v
            and bool(np.any((self.value_weight != 0) & (self.value_rate.sum(axis=0) > 0)))
        ):
            raise SimulatorConfigError(
                f"{rd.id}: weighing {', '.join(self.value_types)} needs aggregation 'sum' "
                "without clip in the simulator (the truth adds their expected weight)"
            )
        #: cost of one executed action per channel, shape (n_channels,)
        self.channel_cost = np.array([rd.cost_of(ch) for ch in self.channels])
        # reward of each in-window combination: [channel, gate passed, state, side]
        self.reward_table = np.zeros((n_c, 2, 3, 2))
        for c, m in enumerate(self.models):
            self.reward_table[c, 0, :, :] = rd.reward_of(())
            for state in (BOTH, PRIMARY_ONLY, NEITHER):
                for s in (0, 1):
                    kinds: list[str | None] = [m.gate]
                    if state in (BOTH, PRIMARY_ONLY):
                        kinds.append(m.primary)
                    if state == BOTH:
                        kinds.append(m.secondary)
                    if s:
                        kinds.append(m.side)
                    self.reward_table[c, 1, state, s] = rd.reward_of(k for k in kinds if k)
        # per-(specialty, channel) primary base logit
        cfg = config
        self._specialty_names: tuple[str, ...] = ()
        self._primary_rate = {c: cfg.primary_rate.get(c, 0.1) for c in self.channels}
        self.secondary_logit = np.array(
            [_logit(cfg.secondary_rate.get(c, 0.2)) for c in self.channels]
        )
        self.has_secondary = np.array([m.secondary is not None for m in self.models])
        self.has_gate = np.array([m.gate is not None for m in self.models])
        self.has_side = np.array([m.side is not None for m in self.models])
        self.fatigue_coef = np.array([cfg.fatigue_coef.get(c, 0.25) for c in self.channels])
        topics = catalog.topics
        #: 1 where a topic suits an adoption stage (nba.topics), shape (n_stages, n_topics)
        self.stage_match = stage_topic_matrix(topics, cfg.stage_topics)
        self.action_channel = catalog.action_channel_index.astype(np.int64)
        self.action_topic = catalog.action_topic_index.astype(np.int64)
        self.action_item = catalog.action_item_index.astype(np.int64)
        self._base_cache: dict[tuple[str, ...], F64] = {}

    def base_logit(self, specialties: tuple[str, ...]) -> F64:
        """Primary-response logit of a neutral HCP, shape (n_specialties, n_channels)."""
        cached = self._base_cache.get(specialties)
        if cached is not None:
            return cached
        out = np.zeros((len(specialties), len(self.channels)))
        for s, spec in enumerate(specialties):
            for c, ch in enumerate(self.channels):
                if ch == "email":
                    out[s, c] = _logit(self.config.specialty_open_rate.get(spec, 0.1))
                else:
                    out[s, c] = _logit(self._primary_rate[ch])
        self._base_cache[specialties] = out
        return out

    # ----------------------------------------------------------- probabilities
    def probabilities(self, pop: Population, hcp: I64, action: I64) -> OutcomeProbabilities:
        """Event probabilities of each (HCP, catalog action) entry given the current state.

        Parameters
        ----------
        pop : Population
        hcp : ndarray of int, shape (m,)
        action : ndarray of int, shape (m,)
            Indices into ``catalog.actions``.
        """
        hcp = np.asarray(hcp, dtype=np.int64)
        return self.batch_probabilities(pop, hcp, np.arange(hcp.shape[0]), action)

    def batch_probabilities(
        self, pop: Population, hcp: I64, seg: I64, action: I64
    ) -> OutcomeProbabilities:
        """As :meth:`probabilities` for a ragged batch: entry ``k`` pairs HCP
        ``hcp[seg[k]]`` with ``action[k]``.

        Parameters
        ----------
        hcp : ndarray of int, shape (n,)
        seg : ndarray of int, shape (m,)
        action : ndarray of int, shape (m,)

        Notes
        -----
        The response logit of HCP ``h`` to action ``a`` (channel ``c``, topic
        ``t``, content item ``i``) is::

            base[specialty(h), c] + channel_affinity[h, c]
            + digital_coef * sign(c) * (digital_affinity[h] - 0.5)
            - fatigue_coef[c] * fatigue[h, c]
            + topic_interest[h, t] + stage_bonus * match(stage(h), t)
            + novelty_coef * (0.5 - knowledge[h, t])
            - repeat_coef * seen[h, i]
            + channel_boost[h, c]   (only while a visit request waits)

        The per-HCP channel part and topic part are computed once per decision
        (shape (n, C) and (n, T)) and gathered per entry.
        """
        cfg = self.config
        c = self.action_channel[action]
        t = self.action_topic[action]
        it = self.action_item[action]
        base = self.base_logit(pop.specialties)
        fatigue = pop.fatigue[hcp]
        chan_part = (
            base[pop.specialty[hcp]]
            + pop.channel_affinity[hcp]
            + cfg.digital_affinity_coef
            * self.digital_sign[None, :]
            * (pop.digital_affinity[hcp] - 0.5)[:, None]
            - self.fatigue_coef[None, :] * fatigue
        )
        if pop.channel_boost is not None:
            chan_part += pop.channel_boost[hcp]
        liking = pop.topic_interest[hcp] + cfg.stage_match_bonus * self.stage_match[pop.stage[hcp]]
        topic_part = liking + cfg.novelty_coef * (0.5 - pop.knowledge[hcp])
        n_c, n_t = chan_part.shape[1], topic_part.shape[1]
        cell_t = seg * n_t + t  # each entry's (HCP, topic) cell, flat
        z = chan_part.ravel().take(seg * n_c + c) + topic_part.ravel().take(cell_t)
        if cfg.repeat_coef:
            seen = pop.seen[hcp]  # (n, n_items): one row gather, then flat takes
            z -= cfg.repeat_coef * seen.ravel().take(seg * seen.shape[1] + it)
        p1 = special.expit(z)
        m = action.shape[0]
        p2 = np.zeros(m)
        sec = np.flatnonzero(self.has_secondary[c])
        if sec.size:
            # flat takes: the same cells as liking[seg[sec], t[sec]], without a 2-d gather
            like = liking.ravel().take(cell_t[sec])
            p2[sec] = special.expit(self.secondary_logit[c[sec]] + 0.5 * like)
        pg = np.where(self.has_gate[c], cfg.delivery_rate, 1.0)
        ps = np.zeros(m)
        side = np.flatnonzero(self.has_side[c])
        if side.size:
            h_side = seg[side]
            ps[side] = np.minimum(
                pop.unsubscribe_hazard[hcp[h_side]]
                * np.exp(cfg.unsubscribe_fatigue * fatigue.ravel().take(h_side * n_c + c[side])),
                0.5,
            )
        return OutcomeProbabilities(c, pg, p1, p2, ps)

    def expected_reward(self, probs: OutcomeProbabilities) -> F64:
        """Exact expected reward of each entry inside the window, shape (m,)."""
        c = probs.channel
        # per-channel constants as flat tables, each gathered with one take (the
        # same values and arithmetic as indexing the 4-d reward table per entry)
        k = self._reward_by_channel()
        p1, p2 = probs.primary, probs.secondary
        both = p1 * p2 * k["q_both"].take(c)
        prim_only = p1 * k["q_primary"].take(c) - both
        neither = 1.0 - both - prim_only
        side = probs.side * k["q_side"].take(c)
        keep = 1 - side
        passed = (
            both * (keep * k["both_0"].take(c) + side * k["both_1"].take(c))
            + prim_only * (keep * k["primary_0"].take(c) + side * k["primary_1"].take(c))
            + neither * (keep * k["neither_0"].take(c) + side * k["neither_1"].take(c))
        )
        out = (1.0 - probs.gate) * k["gated"].take(c) + probs.gate * passed
        if self.value_types:
            # value events follow the primary; their weights add (aggregation sum): the
            # expected weight per channel, taken per entry (no (m, n_values) gathers
            # and matrix product per batch)
            out = out + probs.gate * p1 * k["value"].take(c)
        if self.channel_cost.any():
            out = out - self.channel_cost[c]
        return out

    def _reward_by_channel(self) -> dict[str, F64]:
        """The channel-indexed constants of :meth:`expected_reward`, each shape
        (n_channels,), built once."""
        k: dict[str, F64] | None = getattr(self, "_reward_k", None)
        if k is None:
            rt = self.reward_table
            k = {
                "q_both": self.q_both.copy(),
                "q_primary": self.q_primary.copy(),
                "q_side": self.q_side.copy(),
                "both_0": rt[:, 1, BOTH, 0].copy(),
                "both_1": rt[:, 1, BOTH, 1].copy(),
                "primary_0": rt[:, 1, PRIMARY_ONLY, 0].copy(),
                "primary_1": rt[:, 1, PRIMARY_ONLY, 1].copy(),
                "neither_0": rt[:, 1, NEITHER, 0].copy(),
                "neither_1": rt[:, 1, NEITHER, 1].copy(),
                "gated": rt[:, 0, NEITHER, 0].copy(),
                # expected weight of the value events given the primary: row c of
                # (value_rate * q_value) @ value_weight, as the product of each
                # entry's row gave it
                "value": (self.value_rate * self.q_value) @ self.value_weight,
            }
            self._reward_k = k
        return k

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        probs: OutcomeProbabilities,
        rng: np.random.Generator,
        value_rng: np.random.Generator | None = None,
    ) -> SampledOutcomes:
        """Draw the events of each executed entry, with their delays.

        Delays are capped at ``config.max_delay_days``. Business value events are
        drawn from ``value_rng`` (default: ``rng``, after every other draw), so a
        world that adds them leaves the other events' draws unchanged.
        """
        m = probs.channel.shape[0]
        u = rng.random((4, m))
        gate = u[0] < probs.gate
        prim = gate & (u[1] < probs.primary)
        sec = prim & (u[2] < probs.secondary)
        side = gate & (u[3] < probs.side)
        c = probs.channel
        g_delay = self.gate_delay[c]
        prim_delay = np.zeros(m)
        sec_delay = np.zeros(m)
        side_delay = np.zeros(m)
        for ci, model in enumerate(self.models):
            sel = np.flatnonzero((c == ci) & prim)
            if sel.size:
                prim_delay[sel] = model.primary_delay.sample(rng, sel.size)
            if model.secondary_delay is not None:
                sel2 = np.flatnonzero((c == ci) & sec)
                if sel2.size:
                    sec_delay[sel2] = model.secondary_delay.sample(rng, sel2.size)
            if model.side_delay is not None:
                sel3 = np.flatnonzero((c == ci) & side)
                if sel3.size:
                    side_delay[sel3] = model.side_delay.sample(rng, sel3.size)
        cap = float(self.config.max_delay_days)
        t_prim = np.minimum(g_delay + prim_delay, cap)
        t_sec = np.minimum(t_prim + sec_delay, cap)
        t_side = np.minimum(g_delay + side_delay, cap)
        has_gate = self.has_gate[c]
        parts = [
            (gate & has_gate, self.gate_code[c], g_delay),
            (prim, self.primary_code[c], t_prim),
            (sec, self.secondary_code[c], t_sec),
            (side, self.side_code[c], t_side),
        ]
        entries = []
        codes = []
        delays = []
        for mask, code, delay in parts:
            idx = np.flatnonzero(mask)
            entries.append(idx)
            codes.append(code[idx])
            delays.append(delay[idx])
        if self.value_types:
            vrng = rng if value_rng is None else value_rng
            held = np.flatnonzero(prim)
            u_v = vrng.random((len(self.value_types), held.size))
            for j, v in enumerate(self.value_types):
                hit = held[u_v[j] < self.value_rate[c[held], j]]
                if hit.size:
                    d_v = VALUE_EVENTS[v].sample(vrng, hit.size)
                    entries.append(hit)
                    codes.append(np.full(hit.size, self.value_code[j]))
                    delays.append(np.minimum(t_prim[hit] + d_v, cap))
        entry = np.concatenate(entries).astype(np.int64)
        order = np.argsort(entry, kind="stable")
        return SampledOutcomes(
            entry[order],
            np.concatenate(codes).astype(np.int64)[order],
            np.concatenate(delays)[order],
        )
