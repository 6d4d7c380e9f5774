"""Baseline policies: uniform random, push campaign, segment rules.

Each baseline exists twice, sharing one piece of logic:

- a vectorized *kernel* over a ragged batch of decisions (what the simulator
  calls for thousands of decisions at once), and
- a per-decision :class:`nba.policies.base.Policy` subclass registered under
  ``"uniform"``, ``"campaign"`` and ``"segment"`` (what serving and the
  conformance suite call), which runs the same kernel on a batch of one.

A ragged batch of ``n`` decisions over ``m`` (decision, action) entries is
described by ``offsets`` of shape ``(n + 1,)``: decision ``i`` owns entries
``offsets[i]:offsets[i + 1]``. Every decision has at least one entry.

All three follow the same shape: a set of *preferred* actions per decision
gets ``1 - epsilon`` of the mass, spread evenly, and ``epsilon`` is spread
uniformly over every eligible action, so every action keeps support.

>>> import numpy as np
>>> greedy_probabilities(np.array([0, 2, 4]), np.array([1, 0, 0, 1], bool), 0.2)
array([0.9, 0.1, 0.1, 0.9])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action
from nba.policies.base import Policy, PolicyError, Probabilities
from nba.policies.registry import register

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

#: first Monday of 2026: week 0 of the default campaign timetable
DEFAULT_CAMPAIGN_ANCHOR = date(2026, 1, 5)
SAVE_FORMAT = 1


# --------------------------------------------------------------------- kernels
def segment_ids(offsets: npt.ArrayLike) -> IntArray:
    """Decision index of every entry.

    Parameters
    ----------
    offsets : array of int, shape (n + 1,)

    Returns
    -------
    ndarray of int64, shape (m,)
    """
    off = np.asarray(offsets, dtype=np.int64)
    sizes = np.diff(off)
    return np.repeat(np.arange(sizes.shape[0], dtype=np.int64), sizes)


def check_offsets(offsets: npt.ArrayLike, m: int, who: str = "batch") -> IntArray:
    """Validate ragged ``offsets`` for ``m`` entries; every decision needs one action."""
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.shape[0] < 1 or off[0] != 0 or off[-1] != m:
        raise PolicyError(f"{who}: offsets must start at 0 and end at {m}")
    if np.any(np.diff(off) <= 0):
        bad = int(np.flatnonzero(np.diff(off) <= 0)[0])
        raise PolicyError(f"{who}: decision {bad} has no eligible action")
    return off


def greedy_probabilities(
    offsets: npt.ArrayLike, preferred: BoolArray, epsilon: float
) -> FloatArray:
    """``1 - epsilon`` spread over preferred entries, ``epsilon`` over all entries.

    Parameters
    ----------
    offsets : array of int, shape (n + 1,)
    preferred : ndarray of bool, shape (m,)
        At least one preferred entry per decision.
    epsilon : float in [0, 1]

    Returns
    -------
    ndarray of float64, shape (m,)
        Each decision's entries sum to 1.
    """
    off = check_offsets(offsets, preferred.shape[0])
    if not 0.0 <= epsilon <= 1.0:
        raise PolicyError(f"epsilon must be in [0, 1], got {epsilon}")
    sizes = np.diff(off)
    seg = np.repeat(np.arange(sizes.shape[0]), sizes)
    n_pref = np.add.reduceat(preferred.astype(np.int64), off[:-1])
    if np.any(n_pref == 0):
        raise PolicyError("greedy_probabilities: a decision has no preferred action")
    explore = epsilon / sizes
    exploit = (1.0 - epsilon) / n_pref
    return np.where(preferred, exploit[seg] + explore[seg], explore[seg])


def uniform_probabilities(offsets: npt.ArrayLike) -> FloatArray:
    """Uniform over each decision's entries, shape (m,)."""
    off = np.asarray(offsets, dtype=np.int64)
    m = int(off[-1])
    return greedy_probabilities(off, np.ones(m, dtype=bool), 1.0)


def first_min_mask(offsets: npt.ArrayLike, key: npt.ArrayLike) -> BoolArray:
    """True at the first entry holding each decision's smallest ``key``, shape (m,)."""
    k = np.asarray(key)
    off = check_offsets(offsets, k.shape[0])
    seg = np.repeat(np.arange(off.shape[0] - 1), np.diff(off))
    mins = np.minimum.reduceat(k, off[:-1])
    hit = k == mins[seg]
    pos = np.arange(k.shape[0])
    first = np.minimum.reduceat(np.where(hit, pos, k.shape[0]), off[:-1])
    out = np.zeros(k.shape[0], dtype=bool)
    out[first] = True
    return out


def max_mask(offsets: npt.ArrayLike, score: npt.ArrayLike) -> BoolArray:
    """True at every entry holding its decision's largest ``score`` (ties kept), shape (m,)."""
    s = np.asarray(score)
    off = check_offsets(offsets, s.shape[0])
    seg = np.repeat(np.arange(off.shape[0] - 1), np.diff(off))
    return s == np.maximum.reduceat(s, off[:-1])[seg]


def campaign_keys(
    topic_position: npt.ArrayLike,
    catalog_position: npt.ArrayLike,
    week: npt.ArrayLike,
    n_topics: int,
) -> IntArray:
    """Sort key of each entry under the campaign timetable (smaller is preferred).

    The campaign's topic of week ``w`` is ``sequence[w % L]``; an action whose
    topic comes ``r`` places later in the (cyclic) sequence has rank ``r``,
    actions on topics outside the sequence rank last; ties go to catalog order.

    Parameters
    ----------
    topic_position : array of int, shape (m,)
        Position of each action's topic in the sequence, ``-1`` if absent.
    catalog_position : array of int, shape (m,)
        Position of each action in the catalog (or in the given list).
    week : array of int, shape (m,)
        Campaign week of each entry's decision.
    n_topics : int
        Length ``L`` of the sequence.
    """
    tp = np.asarray(topic_position, dtype=np.int64)
    rank = np.where(tp >= 0, (tp - np.asarray(week, dtype=np.int64)) % max(n_topics, 1), n_topics)
    return rank * (1 << 32) + np.asarray(catalog_position, dtype=np.int64)


@dataclass(frozen=True)
class SegmentRule:
    """One readable targeting rule.

    The rule applies to HCPs whose specialty is in ``specialties`` (empty: any)
    and whose decile lies in ``[min_decile, max_decile]``; for them every
    action on one of ``topics`` scores a point and every action on one of
    ``channels`` scores a point.
    """

    name: str
    specialties: tuple[str, ...] = ()
    min_decile: int = 1
    max_decile: int = 10
    topics: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def applies(self, specialty: str, decile: int) -> bool:
        return (not self.specialties or specialty in self.specialties) and (
            self.min_decile <= decile <= self.max_decile
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "specialties": list(self.specialties),
            "min_decile": self.min_decile,
            "max_decile": self.max_decile,
            "topics": list(self.topics),
            "channels": list(self.channels),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SegmentRule:
        return cls(
            name=str(d["name"]),
            specialties=tuple(d.get("specialties", ())),
            min_decile=int(d.get("min_decile", 1)),
            max_decile=int(d.get("max_decile", 10)),
            topics=tuple(d.get("topics", ())),
            channels=tuple(d.get("channels", ())),
        )


#: The hand-written rules a brand team would start from.
DEFAULT_SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule(
        "high-decile specialists: clinical depth, in person",
        specialties=("cardiology", "endocrinology", "lipidology"),
        min_decile=7,
        topics=("clinical_data", "efficacy", "real_world_evidence"),
        channels=("rep_visit", "webinar"),
    ),
    SegmentRule(
        "primary care: practical content",
        specialties=("general_practice", "internal_medicine", "nurse_practitioner"),
        topics=("dosing", "cost_savings", "access_coverage", "patient_support"),
    ),
    SegmentRule("low deciles: digital self-service", max_decile=4, channels=("portal",)),
    SegmentRule(
        "everyone: safety and guidelines, face to face where possible",
        topics=("safety", "guidelines"),
        channels=("rep_visit", "webinar"),
    ),
)


def segment_score(
    rules: Sequence[SegmentRule], specialty: str, decile: int, topic: str | None, channel: str
) -> int:
    """Points an action earns under ``rules`` for one HCP (the one scoring function)."""
    score = 0
    for rule in rules:
        if rule.applies(specialty, decile):
            score += int(topic is not None and topic in rule.topics)
            score += int(channel in rule.channels)
    return score


def segment_score_table(
    rules: Sequence[SegmentRule], specialties: Sequence[str], catalog: Catalog
) -> npt.NDArray[np.int16]:
    """:func:`segment_score` for every (specialty, decile, catalog action).

    Returns
    -------
    ndarray of int16, shape (len(specialties), 11, n_actions)
        Index ``[s, decile, a]``; decile row 0 is unused.
    """
    table = np.zeros((len(specialties), 11, len(catalog.actions)), dtype=np.int16)
    topics = [catalog.by_id[a.content_id].topic for a in catalog.actions]
    for s, spec in enumerate(specialties):
        for dec in range(1, 11):
            for j, a in enumerate(catalog.actions):
                table[s, dec, j] = segment_score(rules, spec, dec, topics[j], a.channel)
    return table


# --------------------------------------------------------------- the policies
def _catalog_arg(catalog: Catalog | str | Path | None) -> Catalog:
    if catalog is None:
        return Catalog.default()
    if isinstance(catalog, Catalog):
        return catalog
    return Catalog.load(catalog)


class _Baseline(Policy):
    """Shared parameter handling and JSON save/load of the baselines."""

    catalog: Catalog

    def _extra_params(self) -> dict[str, Any]:
        return {}

    @property
    def params(self) -> dict[str, Any]:
        return {"policy": self.name, "seed": self.seed, **self._extra_params()}

    @property
    def model_version(self) -> str:
        return self.name

    def _topic(self, action: Action) -> str | None:
        item = self.catalog.by_id.get(action.content_id)
        return None if item is None else item.topic

    def save(self, path: str | Path) -> None:
        """Write the parameters (and a non-default catalog) as a small JSON file."""
        cat = self.catalog
        blob = {
            "format": SAVE_FORMAT,
            "policy": self.name,
            "params": self.params,
            "catalog": None if cat.version == Catalog.default().version else dict(cat.raw),
        }
        Path(path).write_text(json.dumps(blob, sort_keys=True, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> _Baseline:
        """Rebuild a baseline written by :meth:`save`."""
        p = Path(path)
        try:
            blob = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PolicyError(f"{p}: cannot read saved policy: {exc}") from exc
        if not isinstance(blob, dict) or blob.get("format") != SAVE_FORMAT:
            raise PolicyError(f"{p}: not a saved baseline policy (format {SAVE_FORMAT})")
        if blob.get("policy") != cls.name:
            raise PolicyError(f"{p}: holds policy {blob.get('policy')!r}, not {cls.name!r}")
        params = dict(blob["params"])
        params.pop("policy", None)
        cat = None if blob.get("catalog") is None else Catalog.from_dict(blob["catalog"], str(p))
        factory: Any = cls
        built: _Baseline = factory(catalog=cat, **params)
        return built


def _check_epsilon(name: str, epsilon: float) -> float:
    eps = float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise PolicyError(f"{name}: epsilon must be in [0, 1], got {epsilon!r}")
    return eps


@register
class UniformPolicy(_Baseline):
    """Uniform random over the eligible actions.

    >>> from nba.domain import HCPProfile
    >>> ctx = DecisionContext(HCPProfile("h1", "cardiology", 7, "US", "aware", frozenset()),
    ...                       date(2026, 1, 5))
    >>> UniformPolicy().probabilities(ctx, [Action("a", "email"), Action("b", "email")])
    array([0.5, 0.5])
    """

    name: ClassVar[str] = "uniform"

    def __init__(self, seed: int = 0, catalog: Catalog | str | Path | None = None) -> None:
        self.seed = int(seed)
        self.catalog = _catalog_arg(catalog)

    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        if not actions:
            raise PolicyError("uniform: no eligible actions")
        # uniform_probabilities of one decision, without its vectorized set-up: every
        # entry is 0.0 + 1.0 / n there, which is 1.0 / n (the tests hold the two together)
        return np.full(len(actions), 1.0 / len(actions))


@register
class CampaignPolicy(_Baseline):
    """The push campaign ("train driver"): one message sequence for everyone.

    Week ``w`` (counted in ``period_days`` from ``anchor``) pushes topic
    ``topic_sequence[w % L]``; among the eligible actions the campaign picks the
    first (catalog order) on that topic, else on the next topic of the sequence.
    ``epsilon`` of the mass is spread uniformly so off-policy evaluation has
    support.

    Parameters
    ----------
    seed : int
    epsilon : float
    topic_sequence : sequence of str, optional
        Default: the catalog's topics in file order.
    period_days : int
    anchor : date or ISO string
    catalog : Catalog, path or None (the default catalog)
    """

    name: ClassVar[str] = "campaign"

    def __init__(
        self,
        seed: int = 0,
        epsilon: float = 0.1,
        topic_sequence: Sequence[str] | None = None,
        period_days: int = 7,
        anchor: date | str = DEFAULT_CAMPAIGN_ANCHOR,
        catalog: Catalog | str | Path | None = None,
    ) -> None:
        self.seed = int(seed)
        self.epsilon = _check_epsilon(self.name, epsilon)
        self.catalog = _catalog_arg(catalog)
        self.topic_sequence = tuple(topic_sequence or self.catalog.topics)
        if len(set(self.topic_sequence)) != len(self.topic_sequence):
            raise PolicyError("campaign: topic_sequence lists a topic twice")
        if int(period_days) < 1:
            raise PolicyError(f"campaign: period_days must be >= 1, got {period_days!r}")
        self.period_days = int(period_days)
        self.anchor = date.fromisoformat(anchor) if isinstance(anchor, str) else anchor
        self._topic_pos = {t: i for i, t in enumerate(self.topic_sequence)}

    def _extra_params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "topic_sequence": list(self.topic_sequence),
            "period_days": self.period_days,
            "anchor": self.anchor.isoformat(),
        }

    def week(self, day: date) -> int:
        """Campaign week of ``day`` (floor division, so days before the anchor work)."""
        return (day - self.anchor).days // self.period_days

    def topic_positions(self) -> npt.NDArray[np.int64]:
        """Sequence position of each catalog action's topic (-1: absent), shape (n_actions,)."""
        return np.array(
            [
                self._topic_pos.get(self.catalog.by_id[a.content_id].topic, -1)
                for a in self.catalog.actions
            ],
            dtype=np.int64,
        )

    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        if not actions:
            raise PolicyError("campaign: no eligible actions")
        big = len(self.catalog.actions)
        tpos = []
        cpos = []
        for i, a in enumerate(actions):
            topic = self._topic(a)
            tpos.append(-1 if topic is None else self._topic_pos.get(topic, -1))
            cpos.append(self.catalog.action_index.get(a.action_id, big + i))
        keys = campaign_keys(
            tpos, cpos, np.full(len(actions), self.week(context.day)), len(self.topic_sequence)
        )
        off = np.array([0, len(actions)])
        return greedy_probabilities(off, first_min_mask(off, keys), self.epsilon)


@register
class SegmentPolicy(_Baseline):
    """Hand-written segment rules by specialty and decile.

    Each action scores a point per applicable rule that names its topic and a
    point per rule that names its channel; ``1 - epsilon`` goes to the
    top-scoring actions (evenly), ``epsilon`` uniformly to all.

    Parameters
    ----------
    seed : int
    epsilon : float
    rules : sequence of SegmentRule or of their dicts, optional
    catalog : Catalog, path or None
    """

    name: ClassVar[str] = "segment"

    def __init__(
        self,
        seed: int = 0,
        epsilon: float = 0.1,
        rules: Sequence[SegmentRule | Mapping[str, Any]] | None = None,
        catalog: Catalog | str | Path | None = None,
    ) -> None:
        self.seed = int(seed)
        self.epsilon = _check_epsilon(self.name, epsilon)
        self.catalog = _catalog_arg(catalog)
        raw = DEFAULT_SEGMENT_RULES if rules is None else rules
        self.rules = tuple(
            r if isinstance(r, SegmentRule) else SegmentRule.from_dict(r) for r in raw
        )

    def _extra_params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "rules": [r.to_dict() for r in self.rules]}

    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        if not actions:
            raise PolicyError("segment: no eligible actions")
        hcp = context.hcp
        scores = np.array(
            [
                segment_score(self.rules, hcp.specialty, hcp.decile, self._topic(a), a.channel)
                for a in actions
            ]
        )
        off = np.array([0, len(actions)])
        return greedy_probabilities(off, max_mask(off, scores), self.epsilon)


BASELINES: dict[str, type[_Baseline]] = {
    "uniform": UniformPolicy,
    "campaign": CampaignPolicy,
    "segment": SegmentPolicy,
}


def load_baseline(path: str | Path) -> _Baseline:
    """Load any saved baseline, dispatching on the name stored in the file."""
    p = Path(path)
    try:
        name = json.loads(p.read_text(encoding="utf-8")).get("policy")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise PolicyError(f"{p}: cannot read saved policy: {exc}") from exc
    if name not in BASELINES:
        raise PolicyError(f"{p}: unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return BASELINES[name].load(p)
