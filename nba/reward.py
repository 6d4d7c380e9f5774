"""Reward definitions: how a decision's outcomes become one number.

A definition is a small TOML file::

    name = "engagement"
    version = "1"
    window_days = 14          # outcomes later than ts + window are ignored (and counted)
    aggregation = "sum"       # sum | max
    default = 0.0             # reward of a decision with no outcome in the window
    clip = [-1.0, 1.0]        # optional: bounds applied after aggregation
    value_types = ["reward"]  # optional: types weighed by their outcome value

    [weights]
    opened = 0.2
    clicked = 0.6
    meeting_held = 1.0
    unsubscribed = -1.0

Each outcome type counts once per decision (duplicates are ignored); types
without a weight contribute nothing. A type listed in ``value_types``
contributes ``weight * value`` of its earliest in-window outcome instead of
``weight`` (this is how a numeric reward reported by another system, e.g. a
Personalizer ``reward`` call or an imported DSJSON cost, enters the reward).
``id`` is ``name@version#hash`` so every training and evaluation run can name
exactly what it used.

>>> rd = RewardDefinition.default()
>>> rd.weights["clicked"] > rd.weights["opened"] > 0 > rd.weights["unsubscribed"]
True
>>> rd.reward_of({"opened", "clicked"})
0.8
>>> rd.reward_of({"reward": 0.5})
0.5
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.domain import ValidationError, read_toml

AGGREGATIONS = ("sum", "max")
DEFAULT_REWARD_FILE = "reward.toml"


class RewardDefinitionError(ValidationError):
    """A reward definition is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class RewardDefinition:
    """A versioned mapping from a decision's outcomes to one reward."""

    name: str
    version: str
    weights: Mapping[str, float]
    window_days: float = 14.0
    aggregation: str = "sum"
    default_reward: float = 0.0
    clip: tuple[float, float] | None = None
    value_types: frozenset[str] = frozenset()
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        src = self.source

        def err(fieldname: str, problem: str) -> RewardDefinitionError:
            return RewardDefinitionError(f"{src}: field '{fieldname}': {problem}")

        if not self.name:
            raise err("name", "must not be empty")
        if not self.version:
            raise err("version", "must not be empty")
        if not self.weights:
            raise err("weights", "must give at least one outcome type a weight")
        clean: dict[str, float] = {}
        for k, v in self.weights.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise err(f"weights.{k}", f"must be a finite number, got {v!r}")
            clean[str(k)] = float(v)
        object.__setattr__(self, "weights", dict(sorted(clean.items())))
        if not (isinstance(self.window_days, int | float) and self.window_days > 0):
            raise err("window_days", f"must be a positive number, got {self.window_days!r}")
        if self.aggregation not in AGGREGATIONS:
            raise err("aggregation", f"{self.aggregation!r} is not one of {AGGREGATIONS}")
        if not (
            isinstance(self.default_reward, int | float) and math.isfinite(self.default_reward)
        ):
            raise err("default", f"must be a finite number, got {self.default_reward!r}")
        vt = frozenset(str(t) for t in self.value_types)
        for t in sorted(vt):
            if t not in self.weights:
                raise err("value_types", f"type {t!r} has no weight")
        object.__setattr__(self, "value_types", vt)
        if self.clip is not None:
            lo, hi = self.clip
            if not lo < hi:
                raise err("clip", f"lower bound {lo} is not below upper bound {hi}")
            object.__setattr__(self, "clip", (float(lo), float(hi)))

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> RewardDefinition:
        p = Path(path)
        data = read_toml(p, RewardDefinitionError)
        return cls.from_dict(data, source=str(p))

    @classmethod
    def default(cls) -> RewardDefinition:
        # from __file__, not importlib.resources (see nba.catalog._default_path)
        return cls.load(Path(__file__).resolve().parent / "data" / DEFAULT_REWARD_FILE)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<memory>") -> RewardDefinition:
        known = {
            "name",
            "version",
            "weights",
            "window_days",
            "aggregation",
            "default",
            "clip",
            "value_types",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise RewardDefinitionError(f"{source}: field '{unknown[0]}': unknown field")
        weights = data.get("weights")
        if not isinstance(weights, Mapping):
            raise RewardDefinitionError(f"{source}: field 'weights': must be a table")
        clip = data.get("clip")
        if clip is not None and (not isinstance(clip, list) or len(clip) != 2):
            raise RewardDefinitionError(f"{source}: field 'clip': must be [low, high]")
        value_types = data.get("value_types", [])
        if not isinstance(value_types, list) or not all(isinstance(t, str) for t in value_types):
            raise RewardDefinitionError(f"{source}: field 'value_types': must be a list of types")
        return cls(
            name=str(data.get("name", "")),
            version=str(data.get("version", "")),
            weights=weights,
            window_days=data.get("window_days", 14.0),
            aggregation=str(data.get("aggregation", "sum")),
            default_reward=data.get("default", 0.0),
            clip=None if clip is None else (float(clip[0]), float(clip[1])),
            value_types=frozenset(value_types),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "weights": dict(self.weights),
            "window_days": float(self.window_days),
            "aggregation": self.aggregation,
            "default": float(self.default_reward),
        }
        if self.clip is not None:
            d["clip"] = list(self.clip)
        if self.value_types:
            d["value_types"] = sorted(self.value_types)
        return d

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def id(self) -> str:
        """``name@version#hash``: what training and evaluation record."""
        return f"{self.name}@{self.version}#{self.content_hash}"

    # ------------------------------------------------------------- computing
    def reward_of(self, outcome_types: Iterable[str] | Mapping[str, float]) -> float:
        """Reward of one decision whose in-window outcomes have these types.

        Pass a mapping ``type -> value`` (the earliest in-window outcome's value)
        when some types are in ``value_types``; an iterable of types means every
        value is 1.
        """
        if isinstance(outcome_types, Mapping):
            values = {str(t): float(v) for t, v in outcome_types.items()}
        else:
            values = dict.fromkeys(outcome_types, 1.0)
        if not values:
            return float(self.default_reward)
        vals = [
            self.weights.get(t, 0.0) * (values[t] if t in self.value_types else 1.0)
            for t in sorted(values)
        ]
        r = math.fsum(vals) if self.aggregation == "sum" else max(vals)
        return self._clip(r)

    def _clip(self, r: float) -> float:
        if self.clip is not None:
            r = min(max(r, self.clip[0]), self.clip[1])
        return round(r, 12)

    def expected_reward(
        self, outcome_probabilities: Mapping[str, npt.NDArray[np.float64]]
    ) -> npt.NDArray[np.float64]:
        """Expected reward given independent-by-type outcome probabilities.

        Valid for ``aggregation == "sum"`` without ``clip`` and with
        ``default == 0`` (then reward is linear in the type indicators).
        Simulators with richer outcome structure compute their own truth.

        Parameters
        ----------
        outcome_probabilities : mapping of type -> ndarray, all of one shape
            Probability that each type occurs within the window.

        Returns
        -------
        ndarray of float64, same shape as the inputs
        """
        if self.aggregation != "sum" or self.clip is not None or self.default_reward != 0.0:
            raise RewardDefinitionError(
                f"{self.source}: expected_reward needs aggregation 'sum', no clip, default 0"
            )
        out: npt.NDArray[np.float64] | None = None
        for t, p in outcome_probabilities.items():
            w = self.weights.get(t, 0.0)
            term = w * np.asarray(p, dtype=np.float64)
            out = term if out is None else out + term
        if out is None:
            raise RewardDefinitionError("expected_reward: no outcome probabilities given")
        return out
