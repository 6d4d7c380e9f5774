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

    [costs]                   # optional: cost of one executed contact, per channel
    rep_visit = 120.0

Each outcome type counts once per decision (duplicates are ignored); types
without a weight contribute nothing. A type listed in ``value_types``
contributes ``weight * value`` of its earliest in-window outcome instead of
``weight`` (this is how a numeric reward reported by another system, e.g. a
Personalizer ``reward`` call or an imported DSJSON cost, enters the reward).

``costs`` (optional, default none) gives each channel the cost of one
executed contact; a decision's reward is then the aggregated (and clipped)
outcome part minus the cost of its chosen action's channel. Weights must name
known outcome types (``nba.domain.OUTCOME_TYPES`` and ``reward``) and costs
known channels (``nba.domain.CHANNELS``); an unknown key is refused with its
file and line. The default definition is engagement, without costs; the
packaged ``value`` definition (``nba/data/value.toml``, :meth:`business_value`)
weighs outcomes by what they are worth to the brand and charges each channel.
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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.domain import (
    ACTION_SEPARATOR,
    CHANNELS,
    OUTCOME_TYPES,
    REWARD_TYPE,
    ValidationError,
    read_toml,
)

AGGREGATIONS = ("sum", "max")
DEFAULT_REWARD_FILE = "reward.toml"
VALUE_REWARD_FILE = "value.toml"
#: what ``[weights]`` may name
KNOWN_TYPES: frozenset[str] = OUTCOME_TYPES | {REWARD_TYPE}


def key_lines(text: str) -> dict[str, int]:
    """Line (1-based) of each ``key = ...`` of a flat TOML file, by ``table.key``.

    Only what reward definitions use: top-level keys and one level of ``[table]``.

    >>> key_lines('name = "x"\\n[weights]\\nopened = 0.2\\n"clicked" = 1')
    {'name': 1, 'weights': 2, 'weights.opened': 3, 'weights.clicked': 4}
    """
    out: dict[str, int] = {}
    table = ""
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        m = re.match(r"^\[\s*([A-Za-z0-9_\-]+)\s*\]", line)
        if m:
            table = m.group(1)
            out.setdefault(table, no)
            continue
        m = re.match(r"""^(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_\-]+))\s*=""", line)
        if m:
            key = m.group(1) or m.group(2) or m.group(3)
            out.setdefault(f"{table}.{key}" if table else key, no)
    return out


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
    costs: Mapping[str, float] = field(default_factory=dict)
    source: str = field(default="<memory>", compare=False)
    #: line of each ``table.key`` in the source file (for error messages)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        src = self.source
        lines = self.lines

        def err(fieldname: str, problem: str) -> RewardDefinitionError:
            line = lines.get(fieldname)
            where = f"{src}:{line}" if line is not None else src
            return RewardDefinitionError(f"{where}: field '{fieldname}': {problem}")

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
        for k in clean:
            if k not in KNOWN_TYPES:
                raise err(
                    f"weights.{k}",
                    f"unknown outcome type {k!r} (known: {', '.join(sorted(KNOWN_TYPES))})",
                )
        object.__setattr__(self, "weights", dict(sorted(clean.items())))
        costs: dict[str, float] = {}
        for k, v in self.costs.items():
            if k not in CHANNELS:
                raise err(f"costs.{k}", f"unknown channel {k!r} (known: {', '.join(CHANNELS)})")
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise err(f"costs.{k}", f"must be a finite number, got {v!r}")
            if v < 0:
                raise err(f"costs.{k}", f"must not be negative, got {v!r}")
            costs[str(k)] = float(v)
        object.__setattr__(self, "costs", dict(sorted(costs.items())))
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
        lines = key_lines(p.read_text(encoding="utf-8"))
        return cls.from_dict(data, source=str(p), lines=lines)

    @classmethod
    def default(cls) -> RewardDefinition:
        """The engagement definition every command uses unless told otherwise."""
        # from __file__, not importlib.resources (see nba.catalog._default_path)
        return cls.load(Path(__file__).resolve().parent / "data" / DEFAULT_REWARD_FILE)

    @classmethod
    def business_value(cls) -> RewardDefinition:
        """The packaged ``value`` definition: outcome values minus channel costs."""
        return cls.load(Path(__file__).resolve().parent / "data" / VALUE_REWARD_FILE)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        source: str = "<memory>",
        lines: Mapping[str, int] | None = None,
    ) -> RewardDefinition:
        lines = dict(lines or {})

        def where(key: str) -> str:
            line = lines.get(key)
            return f"{source}:{line}" if line is not None else source

        known = {
            "name",
            "version",
            "weights",
            "window_days",
            "aggregation",
            "default",
            "clip",
            "value_types",
            "costs",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise RewardDefinitionError(f"{where(unknown[0])}: field '{unknown[0]}': unknown field")
        weights = data.get("weights")
        if not isinstance(weights, Mapping):
            raise RewardDefinitionError(f"{where('weights')}: field 'weights': must be a table")
        costs = data.get("costs", {})
        if not isinstance(costs, Mapping):
            raise RewardDefinitionError(f"{where('costs')}: field 'costs': must be a table")
        clip = data.get("clip")
        if clip is not None and (not isinstance(clip, list) or len(clip) != 2):
            raise RewardDefinitionError(f"{where('clip')}: field 'clip': must be [low, high]")
        value_types = data.get("value_types", [])
        if not isinstance(value_types, list) or not all(isinstance(t, str) for t in value_types):
            raise RewardDefinitionError(
                f"{where('value_types')}: field 'value_types': must be a list of types"
            )
        return cls(
            name=str(data.get("name", "")),
            version=str(data.get("version", "")),
            weights=weights,
            window_days=data.get("window_days", 14.0),
            aggregation=str(data.get("aggregation", "sum")),
            default_reward=data.get("default", 0.0),
            clip=None if clip is None else (float(clip[0]), float(clip[1])),
            value_types=frozenset(value_types),
            costs=costs,
            source=source,
            lines=lines,
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
        if self.costs:
            # only when given, so definitions without costs keep their hash
            d["costs"] = dict(self.costs)
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
    def reward_of(
        self,
        outcome_types: Iterable[str] | Mapping[str, float],
        action_id: str | None = None,
    ) -> float:
        """Reward of one decision whose in-window outcomes have these types.

        Pass a mapping ``type -> value`` (the earliest in-window outcome's value)
        when some types are in ``value_types``; an iterable of types means every
        value is 1. With ``action_id`` (``content@channel``, or a bare channel) the
        channel's cost is subtracted after aggregation and clipping.
        """
        cost = 0.0 if action_id is None else self.cost_of(action_id)
        if isinstance(outcome_types, Mapping):
            values = {str(t): float(v) for t, v in outcome_types.items()}
        else:
            values = dict.fromkeys(outcome_types, 1.0)
        if not values:
            return round(float(self.default_reward) - cost, 12)
        vals = [
            self.weights.get(t, 0.0) * (values[t] if t in self.value_types else 1.0)
            for t in sorted(values)
        ]
        r = math.fsum(vals) if self.aggregation == "sum" else max(vals)
        return round(self._clip(r) - cost, 12)

    def cost_of(self, action_or_channel: str) -> float:
        """Cost of one executed contact on a channel (or an action ``content@channel``).

        Channels without a cost (and every channel when ``costs`` is empty) cost 0.

        >>> RewardDefinition("v", "1", {"meeting_held": 150.0}, costs={"rep_visit": 90}).cost_of(
        ...     "c1@rep_visit")
        90.0
        """
        channel = action_or_channel.rpartition(ACTION_SEPARATOR)[2]
        return float(self.costs.get(channel, 0.0))

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
