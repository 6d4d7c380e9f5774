"""A Vowpal Wabbit contextual bandit learning inside the simulated world.

:class:`VWBatchPolicy` is a :class:`~simulators.hcp.policies.BatchPolicy`
that wraps :class:`nba.policies.vw.VWPolicy`:

- **deciding**: each day, for every decision of a requester, the current model
  scores the ragged eligible set (the logged context JSON, featurized by the
  one featurizer in :mod:`nba.features`), returns VW's full probability vector
  and samples the chosen action with the policy's own generator; the world
  logs that vector, so the logged propensity is exactly the served entry;
- **learning online**: the world calls :meth:`VWBatchPolicy.learn_batch` once a
  day with every decision whose reward window has closed (lag
  ``ceil(window) + 1`` days, 15 with the default 14-day window); each of those
  decisions becomes one incremental VW update (``learn`` on the labelled ADF
  example, cost = -reward, probability = the logged propensity), in decision
  order. The model is never retrained from scratch and never sees an outcome
  before its window closed.
- **learning as outcomes arrive** (``vw:CONFIG@Nd``, ``release_after_days=N``):
  each decision is learned once, ``N`` days after its day, with the
  delay-corrected label of :class:`nba.delay.DelayCorrection` (the expected
  final reward given its channel and the reward observed by then, estimated
  from the decisions whose windows have closed). At window close the world's
  batch only updates that estimate (and the measured label error); VW does
  not learn the decision a second time.

Configurations come from :data:`PRESETS` (``epsilon``, ``squarecb``, ``bag``,
``cover``, ``softmax``) or from a TOML/JSON file (:func:`load_vw_spec`): the
``CONFIG`` of ``nba simulate --policy vw:CONFIG[@Nd]``.

>>> pol = VWBatchPolicy.from_spec("vw:squarecb", seed=3)
>>> pol.name, pol.config.exploration, pol.learned_
('vw:squarecb', 'squarecb', 0)
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.catalog import Catalog
from nba.delay import DelayCorrection
from nba.domain import ValidationError
from nba.features import FeaturizerConfig
from nba.policies.base import PolicyError
from nba.policies.vw import VWConfig, VWConfigError, VWPolicy
from simulators.hcp.policies import DecisionBatch, LearnBatch, sample_positions

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: how the learner learns (printed by ``nba simulate`` and written in reports)
LEARNING_MODE = (
    "online: one incremental VW update per decision, fed once a day with the "
    "decisions whose reward window closed (lag = ceil(window) + 1 days)"
)

#: interactions used by the presets (the featurizer's defaults)
PRESET_INTERACTIONS: tuple[str, ...] = ("pT", "pK", "pF", "hT", "hK", "cK", "rK")

_COMMON: dict[str, Any] = {
    "cb_type": "mtr",
    "interactions": PRESET_INTERACTIONS,
    "learning_rate": 0.05,
    "power_t": 0.0,
    "bits": 20,
}

#: named configurations of ``--policy vw:NAME`` (tuned on the VW side only)
PRESETS: Mapping[str, VWConfig] = {
    "epsilon": VWConfig(exploration="epsilon", epsilon=0.05, **_COMMON),
    "squarecb": VWConfig(exploration="squarecb", gamma_scale=10.0, gamma_exponent=0.5, **_COMMON),
    "bag": VWConfig(exploration="bag", bag=5, epsilon=0.02, **_COMMON),
    "cover": VWConfig(exploration="cover", cover=3, psi=0.1, epsilon=0.02, **_COMMON),
    "softmax": VWConfig(exploration="softmax", lambda_=10.0, **_COMMON),
}

DEFAULT_PRESET = "epsilon"

#: how the learner learns with early release (``@Nd``)
EARLY_LEARNING_MODE = (
    "as outcomes arrive: one VW update per decision {days} day(s) after it, with the "
    "delay-corrected label E[final reward | channel, reward observed by then] estimated "
    "from closed windows"
)


class LearningConfigError(ValidationError):
    """A ``vw[:CONFIG]`` policy spec or config file was refused; the message says
    which file, key or name was wrong."""


def load_vw_spec(spec: str) -> tuple[str, VWConfig]:
    """Resolve ``vw``, ``vw:PRESET`` or ``vw:PATH`` (TOML or JSON) to a config.

    A config file holds :class:`~nba.policies.vw.VWConfig` fields at top level,
    optionally ``preset = "NAME"`` (the base the fields override, default
    ``epsilon``) and ``vw_args = "..."`` (an allow-listed VW option string
    applied on that base before the fields).

    Returns
    -------
    name : str
        What decisions log as ``policy`` (``vw:<preset>`` or ``vw:<file stem>``).
    config : VWConfig

    >>> load_vw_spec("vw")[0]
    'vw:epsilon'
    >>> load_vw_spec("vw:nonsense")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simulators.hcp.learning.LearningConfigError: --policy vw:nonsense: ...
    """
    if not isinstance(spec, str) or not (spec == "vw" or spec.startswith("vw:")):
        raise LearningConfigError(f"policy spec {spec!r} is not 'vw' or 'vw:CONFIG'")
    rest = spec[3:]
    if rest == "":
        return f"vw:{DEFAULT_PRESET}", PRESETS[DEFAULT_PRESET]
    if rest in PRESETS:
        return f"vw:{rest}", PRESETS[rest]
    path = Path(rest)
    if path.suffix.lower() not in (".toml", ".json"):
        raise LearningConfigError(
            f"--policy {spec}: {rest!r} is neither a preset ({', '.join(PRESETS)}) "
            "nor a .toml/.json config file"
        )
    if not path.is_file():
        raise LearningConfigError(f"--policy {spec}: config file {path} does not exist")
    return f"vw:{path.stem}", load_vw_config(path)


def split_release(spec: str) -> tuple[str, int | None]:
    """Split ``vw[:CONFIG]@Nd`` into ``vw[:CONFIG]`` and ``N`` (None without ``@``).

    >>> split_release("vw:squarecb@1d"), split_release("vw")
    (('vw:squarecb', 1), ('vw', None))
    >>> split_release("vw@0d")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simulators.hcp.learning.LearningConfigError: policy spec 'vw@0d': ...
    """
    if not isinstance(spec, str) or "@" not in spec:
        return spec, None
    base, _, rel = spec.rpartition("@")
    days = rel[:-1] if rel.endswith("d") else ""
    if not days.isdigit() or int(days) < 1:
        raise LearningConfigError(
            f"policy spec {spec!r}: early release must be written @Nd with N >= 1 whole days "
            f"(e.g. @1d), got @{rel}"
        )
    return base, int(days)


def load_vw_config(path: str | Path) -> VWConfig:
    """Read a VW config file (TOML or JSON); see :func:`load_vw_spec`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LearningConfigError(f"{p}: cannot read: {exc}") from exc
    try:
        raw = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LearningConfigError(f"{p}: not valid {p.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(raw, dict):
        raise LearningConfigError(f"{p}: expected a table of VW settings at top level")
    return config_from_mapping(raw, source=str(p))


def config_from_mapping(raw: Mapping[str, Any], source: str = "config") -> VWConfig:
    """A :class:`VWConfig` from ``preset`` / ``vw_args`` / field keys (see
    :func:`load_vw_spec`); errors name ``source`` and the key."""
    d = dict(raw)
    preset = d.pop("preset", DEFAULT_PRESET)
    if not isinstance(preset, str) or preset not in PRESETS:
        raise LearningConfigError(
            f"{source}: key 'preset': {preset!r} is not one of {', '.join(PRESETS)}"
        )
    base = PRESETS[preset]
    vw_args = d.pop("vw_args", None)
    try:
        if vw_args is not None:
            if not isinstance(vw_args, str):
                raise LearningConfigError(f"{source}: key 'vw_args' must be a string")
            base = VWConfig.from_vw_args(vw_args, base=base)
        if not d:
            return base
        merged = {**base.to_dict(), **d}
        return VWConfig.from_dict(merged, source=source)
    except VWConfigError as exc:
        msg = str(exc)
        raise LearningConfigError(msg if msg.startswith(source) else f"{source}: {msg}") from exc
    except TypeError as exc:  # e.g. interactions given as a number
        raise LearningConfigError(f"{source}: {exc}") from exc


def _subset(batch: LearnBatch, keep: npt.NDArray[np.bool_]) -> LearnBatch:
    """The decisions of ``batch`` where ``keep`` (shape (n,)) is true, in order."""
    sizes = np.diff(batch.offsets)
    ent = np.repeat(keep, sizes)
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(sizes[keep], out=offsets[1:])
    return LearnBatch(
        event_ids=batch.event_ids[keep],
        contexts=batch.contexts[keep],
        offsets=offsets,
        action_index=batch.action_index[ent],
        probabilities=batch.probabilities[ent],
        chosen=batch.chosen[keep],
        propensity=batch.propensity[keep],
        reward=batch.reward[keep],
        channel=None if batch.channel is None else batch.channel[keep],
        partial_reward=None if batch.partial_reward is None else batch.partial_reward[keep],
    )


class VWBatchPolicy:
    """A VW contextual bandit deciding and learning inside the world.

    Parameters
    ----------
    config : VWConfig, optional
        Default: ``PRESETS["epsilon"]``.
    featurizer_config : FeaturizerConfig, optional
    catalog : Catalog, optional
        Must be the world's catalog (checked on every batch).
    seed : int
        Seeds both VW (``--random_seed``) and this object's sampling generator.
    name : str
        Logged in ``decisions.policy``.
    release_after_days : int, optional
        Learn each decision this many days after its day, with a delay-corrected
        label, instead of when its window closes.
    delay_prior_weight : float
        Shrinkage of the delay correction (:class:`nba.delay.DelayCorrection`).
    delay_warmup : int
        Closed decisions the correction must have seen before early labels are
        used; decisions released earlier are learned at window close instead,
        with their final reward.

    Attributes
    ----------
    policy : VWPolicy
        The model (its ``params`` go into the simulator's manifest).
    learned_ : int
        Decisions learned so far.
    learn_calls_ : int
        Batches of closed windows the world fed (one per requester and day).
    decided_ : int
        Decisions made so far.
    delay_ : DelayCorrection or None
        The label correction (early release only).
    label_error_ : dict
        Early release only, over the decisions whose windows have closed and
        that were labelled once the correction had closed windows to learn
        from: ``n`` and the sums of (label - final reward) and of (partial
        reward - final reward), i.e. the bias of the labels learned and of the
        partial rewards they corrected; ``n_cold`` counts decisions released
        during the warm-up (learned at window close with their final reward).
    """

    uses_ground_truth = False
    learning_mode = LEARNING_MODE

    def __init__(
        self,
        config: VWConfig | None = None,
        featurizer_config: FeaturizerConfig | None = None,
        catalog: Catalog | None = None,
        seed: int = 0,
        name: str = "vw",
        release_after_days: int | None = None,
        delay_prior_weight: float = 1.0,
        delay_warmup: int = 1000,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PolicyError(f"vw batch policy: seed must be a non-negative integer, got {seed!r}")
        if release_after_days is not None and (
            isinstance(release_after_days, bool)
            or not isinstance(release_after_days, int)
            or release_after_days < 1
        ):
            raise PolicyError(
                "vw batch policy: release_after_days must be an integer >= 1 or None, "
                f"got {release_after_days!r}"
            )
        self.config = config or PRESETS[DEFAULT_PRESET]
        self.featurizer_config = featurizer_config or FeaturizerConfig()
        self.catalog = catalog or Catalog.default()
        self.seed = seed
        self.name = name
        self.policy = VWPolicy(self.config, self.featurizer_config, self.catalog, seed, name)
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
        self.release_after_days = release_after_days
        self.delay_prior_weight = delay_prior_weight
        if isinstance(delay_warmup, bool) or not isinstance(delay_warmup, int) or delay_warmup < 0:
            raise PolicyError(
                f"vw batch policy: delay_warmup must be an integer >= 0, got {delay_warmup!r}"
            )
        self.delay_warmup = delay_warmup
        self._deferred: set[str] = set()
        self.learned_ = 0
        self.learn_calls_ = 0
        self.decided_ = 0
        self.reward_learned_ = 0.0
        self.delay_: DelayCorrection | None = None
        if release_after_days is not None:
            self.delay_ = DelayCorrection(self.catalog.channels, delay_prior_weight)
        self._labels: dict[str, float] = {}
        self.label_error_: dict[str, float] = {
            "n": 0,
            "label_minus_final": 0.0,
            "partial_minus_final": 0.0,
            "n_cold": 0,
        }

    @classmethod
    def from_spec(
        cls,
        spec: str,
        catalog: Catalog | None = None,
        seed: int = 0,
        featurizer_config: FeaturizerConfig | None = None,
    ) -> VWBatchPolicy:
        """Build from ``vw``, ``vw:PRESET`` or ``vw:PATH`` (see :func:`load_vw_spec`),
        each optionally followed by ``@Nd`` (learn as outcomes arrive, ``N`` days
        after each decision)."""
        base, days = split_release(spec)
        name, cfg = load_vw_spec(base)
        if days is not None:
            name = f"{name}@{days}d"
        return cls(cfg, featurizer_config, catalog, seed, name, release_after_days=days)

    @property
    def model_version(self) -> str:
        """``<name>+<decisions learned>``: which model state served a decision."""
        return f"{self.name}+{self.learned_}"

    @property
    def params(self) -> dict[str, Any]:
        """Flat parameters for ``mlflow.log_params`` and the manifest."""
        out = dict(self.policy.params)
        out["policy"] = self.name
        out["learning"] = "online" if self.release_after_days is None else "online-early"
        if self.delay_ is not None:
            out["release_after_days"] = self.release_after_days
            out["delay_warmup"] = self.delay_warmup
            out.update(self.delay_.params)
        return out

    @property
    def deferred_(self) -> int:
        """Decisions released during the warm-up, waiting for their window to close."""
        return len(self._deferred)

    def _check_catalog(self, catalog: Catalog) -> None:
        if catalog.version != self.catalog.version:
            raise PolicyError(
                f"{self.name}: the world uses catalog {catalog.version!r}, "
                f"the policy {self.catalog.version!r}"
            )

    def decide_batch(self, batch: DecisionBatch) -> tuple[F64, I64]:
        """Score every decision of ``batch`` with the current model and sample.

        Returns
        -------
        probabilities : ndarray of float64, shape (m,)
            VW's probability vector of each decision (each slice sums to 1).
        chosen : ndarray of int64, shape (n,)
            Position of the sampled action within each decision.
        """
        self._check_catalog(batch.catalog)
        p = self.policy.probabilities_ragged(
            list(batch.contexts), batch.offsets, batch.action_index
        )
        # renormalise each slice in float64 (VW's pmf is float32 inside)
        sums = np.add.reduceat(p, batch.offsets[:-1])
        p = p / np.repeat(sums, np.diff(batch.offsets))
        chosen = sample_positions(batch.offsets, p, self.rng.random(batch.n))
        self.decided_ += batch.n
        return p, chosen

    def learn_batch(self, batch: LearnBatch) -> None:
        """Decisions whose window closed: one incremental VW update per decision,
        in order; with early release, only the delay correction learns from them
        (VW learned each of them once already, in :meth:`learn_early`)."""
        if batch.n == 0:
            return
        if self.delay_ is not None:
            self._observe_closed(batch)
            return
        self._learn(batch, batch.reward)

    def learn_early(self, batch: LearnBatch) -> None:
        """Decisions ``release_after_days`` old: learn each once with its
        delay-corrected label (``batch.partial_reward`` is what was observed)."""
        if self.delay_ is None:
            raise PolicyError(f"{self.name}: learn_early needs release_after_days")
        if batch.n == 0:
            return
        if batch.partial_reward is None or batch.channel is None:
            raise PolicyError(f"{self.name}: an early batch needs partial_reward and channel")
        if self.delay_.n_observed_ < self.delay_warmup:
            # too few closed windows to correct with: learn these at window close
            self.label_error_["n_cold"] += batch.n
            self._deferred.update(str(e) for e in batch.event_ids)
            return
        labels = self.delay_.label(batch.channel, batch.partial_reward)
        for e, lab in zip(batch.event_ids, labels, strict=True):
            self._labels[str(e)] = float(lab)
        self._learn(batch, labels)

    def _observe_closed(self, batch: LearnBatch) -> None:
        assert self.delay_ is not None
        if batch.partial_reward is None or batch.channel is None:
            raise PolicyError(f"{self.name}: a closed batch needs partial_reward and channel")
        self.delay_.observe(batch.channel, batch.partial_reward, batch.reward)
        if self._deferred:
            late = np.array([str(e) in self._deferred for e in batch.event_ids], dtype=bool)
            if late.any():
                self._deferred.difference_update(str(e) for e in batch.event_ids[late])
                sub = _subset(batch, late)
                self._learn(sub, sub.reward)
        labels = np.array([self._labels.pop(str(e), np.nan) for e in batch.event_ids])
        known = ~np.isnan(labels)
        err = self.label_error_
        err["n"] += int(known.sum())
        err["label_minus_final"] += float(np.sum(labels[known] - batch.reward[known]))
        err["partial_minus_final"] += float(
            np.sum(batch.partial_reward[known] - batch.reward[known])
        )

    def _learn(self, batch: LearnBatch, reward: F64) -> None:
        n = self.policy.learn_ragged(
            list(batch.contexts),
            batch.offsets,
            batch.action_index,
            batch.chosen,
            reward,
            batch.propensity,
            event_ids=[str(e) for e in batch.event_ids],
        )
        self.learned_ += n
        self.learn_calls_ += 1
        self.reward_learned_ += float(np.sum(reward))

    def describe(self) -> str:
        """One line for summaries: name, VW command line and how it learns."""
        mode = (
            LEARNING_MODE
            if self.release_after_days is None
            else EARLY_LEARNING_MODE.format(days=self.release_after_days)
        )
        text = (
            f"{self.name}: vw {' '.join(self.policy.vw_args())}; learning {mode}; "
            f"learned {self.learned_} decisions from {self.learn_calls_} released batches"
        )
        n = int(self.label_error_["n"])
        if self.delay_ is not None and n:
            text += (
                f"; label bias over {n} closed decisions: "
                f"{self.label_error_['label_minus_final'] / n:+.4f} "
                f"(partial reward alone: {self.label_error_['partial_minus_final'] / n:+.4f})"
            )
        return text

    def close(self) -> None:
        """Release the VW workspace."""
        self.policy.close()


__all__ = [
    "DEFAULT_PRESET",
    "EARLY_LEARNING_MODE",
    "LEARNING_MODE",
    "PRESETS",
    "PRESET_INTERACTIONS",
    "LearningConfigError",
    "VWBatchPolicy",
    "config_from_mapping",
    "load_vw_config",
    "load_vw_spec",
    "split_release",
]
