"""The Vowpal Wabbit contextual-bandit policy: the only module that imports
``vowpalwabbit`` (with :mod:`nba.policies.vw_child`, the light entry point of
the child process :class:`NativeLearner` starts).

It owns

- the label: :func:`cb_label` turns (chosen index, reward, probability) into
  VW's (0-based line, cost = -reward, probability), and
  :func:`cb_label_prefixes` does the same for a whole table;
- the command line, built from a typed, frozen :class:`VWConfig` (exploration
  ``epsilon``/``squarecb``/``bag``/``cover``/``softmax`` with their parameters,
  ``cb_type`` ``ips``/``dr``/``mtr``, interactions, learning rate, ``power_t``,
  ``l2``, bits); free-form ``--vw-args`` strings are checked against an
  allow-list before VW sees them (:meth:`VWConfig.from_vw_args`);
- :class:`VWPolicy`: probabilities over the given actions (VW's pmf in the
  given order, renormalised in float64), learning, save/load of the model with
  its configs and catalog, a predict-only copy for serving, batch scoring;
- :func:`train_from_file`: learning with VW's own parser from an example file;
- :class:`RewardRegressor`: a VW squared-loss regression on the same features,
  for reward models (DM/DR).

VW's Python binding holds the GIL: serve with processes, not threads.

>>> cfg = VWConfig.from_vw_args("--squarecb --gamma_scale 20 -q pT")
>>> cfg.exploration, cfg.gamma_scale, cfg.interactions
('squarecb', 20.0, ('pT',))
>>> VWConfig.from_vw_args("--passes 3")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nba.policies.vw.VWConfigError: --vw-args: option '--passes' is not allowed here (allowed: ...)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pylibvw
import vowpalwabbit

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import Action, ValidationError
from nba.features import FeaturizedBatch, Featurizer, FeaturizerConfig
from nba.features.batch import concat_lines
from nba.policies.base import Policy, PolicyError, Probabilities
from nba.policies.registry import register

EXPLORATIONS: tuple[str, ...] = ("epsilon", "squarecb", "bag", "cover", "softmax")
CB_TYPES: tuple[str, ...] = ("ips", "dr", "mtr")
MODEL_FILE = "model.vw"
META_FILE = "policy.json"
CATALOG_FILE = "catalog.json"
FORMAT_VERSION = 1
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class VWConfigError(PolicyError):
    """A VW configuration or ``--vw-args`` string was refused."""


# ------------------------------------------------------------------- labels
@dataclass(frozen=True)
class CBLabel:
    """VW's view of one logged choice.

    Attributes
    ----------
    line : int
        0-based index of the labelled action line (= the chosen index).
    action : int
        1-based action number (DSJSON ``_label_Action``).
    cost : float
        ``-reward``: VW minimises cost.
    probability : float
        The logged propensity, in (0, 1].
    """

    line: int
    action: int
    cost: float
    probability: float


def cb_label(chosen_index: int, reward: float, probability: float, n_actions: int) -> CBLabel:
    """The one place where index bases and the reward/cost sign are decided.

    >>> cb_label(0, 1.0, 0.25, 3)
    CBLabel(line=0, action=1, cost=-1.0, probability=0.25)
    """
    if not 0 <= chosen_index < n_actions:
        raise PolicyError(f"label: chosen index {chosen_index} outside 0..{n_actions - 1}")
    if not (math.isfinite(probability) and 0.0 < probability <= 1.0):
        raise PolicyError(f"label: probability {probability} is outside (0, 1]")
    if not math.isfinite(reward):
        raise PolicyError(f"label: reward {reward} is not finite")
    return CBLabel(chosen_index, chosen_index + 1, -float(reward), float(probability))


def _format_floats(x: npt.NDArray[np.float64]) -> pa.Array:
    """Shortest round-trip decimal text of each float (one formatter for all paths)."""
    return pc.cast(pa.array(np.asarray(x, dtype=np.float64) + 0.0), pa.string())


def cb_label_strings(
    offsets: npt.NDArray[np.int64],
    chosen_index: npt.NDArray[np.integer[Any]],
    reward: npt.NDArray[np.float64],
    propensity: npt.NDArray[np.float64],
    event_ids: Sequence[str] | None = None,
) -> tuple[npt.NDArray[np.int64], pa.Array]:
    """Vectorized :func:`cb_label`: which action line of each decision is labelled,
    and its ``"0:cost:prob "`` prefix.

    Parameters
    ----------
    offsets : ndarray of int64, shape (n + 1,)
        Decision ``i`` owns action lines ``offsets[i]:offsets[i+1]``.
    chosen_index, reward, propensity : ndarray, shape (n,)

    Returns
    -------
    positions : ndarray of int64, shape (n,)
        Flat index of each decision's chosen action line.
    prefixes : pyarrow.StringArray, shape (n,)
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    ci = np.asarray(chosen_index, dtype=np.int64)
    r = np.asarray(reward, dtype=np.float64)
    p = np.asarray(propensity, dtype=np.float64)
    n = len(offsets) - 1
    if not len(ci) == len(r) == len(p) == n:
        raise PolicyError("label: chosen_index, reward and propensity must have n entries")
    sizes = np.diff(offsets)
    for name, bad in (
        ("chosen_index", (ci < 0) | (ci >= sizes)),
        ("propensity", ~np.isfinite(p) | (p <= 0) | (p > 1)),
        ("reward", ~np.isfinite(r)),
    ):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            who = event_ids[i] if event_ids is not None else f"row {i}"
            val = {"chosen_index": ci, "propensity": p, "reward": r}[name][i]
            raise PolicyError(f"label: event {who!r}: {name} {val} is invalid")
    cost = -r  # the sign flip, vectorized (same as cb_label)
    text = pc.binary_join_element_wise("0:", _format_floats(cost), ":", _format_floats(p), " ", "")
    return offsets[:-1] + ci, text


def cb_label_prefixes(
    offsets: npt.NDArray[np.int64],
    chosen_index: npt.NDArray[np.integer[Any]],
    reward: npt.NDArray[np.float64],
    propensity: npt.NDArray[np.float64],
    event_ids: Sequence[str] | None = None,
) -> pa.Array:
    """Label prefixes for every action line: ``"0:cost:prob "`` on each decision's
    chosen line, null elsewhere; shape (offsets[-1],)."""
    positions, text = cb_label_strings(offsets, chosen_index, reward, propensity, event_ids)
    idx = np.full(int(np.asarray(offsets)[-1]), -1, dtype=np.int64)
    idx[positions] = np.arange(len(positions))
    mask = pa.array(idx < 0)
    return pc.if_else(mask, pa.scalar(None, pa.string()), text.take(pa.array(np.maximum(idx, 0))))


def labelled_text(
    batch: FeaturizedBatch,
    chosen_index: npt.NDArray[np.integer[Any]],
    reward: npt.NDArray[np.float64],
    propensity: npt.NDArray[np.float64],
    event_ids: Sequence[str] | None = None,
) -> bytes:
    """A VW ADF text file of labelled examples, one per row of ``batch``."""
    return labelled_text_buffer(batch, chosen_index, reward, propensity, event_ids).to_pybytes()


def labelled_text_buffer(
    batch: FeaturizedBatch,
    chosen_index: npt.NDArray[np.integer[Any]],
    reward: npt.NDArray[np.float64],
    propensity: npt.NDArray[np.float64],
    event_ids: Sequence[str] | None = None,
) -> pa.Buffer:
    """:func:`labelled_text` as an Arrow buffer, not copied into bytes (files and
    pipes write it as is)."""
    positions, prefixes = cb_label_strings(
        batch.offsets, chosen_index, reward, propensity, event_ids
    )
    return batch.text_buffer(label_positions=positions, label_prefixes=prefixes)


# ------------------------------------------------------------------- config
_ALLOWED = (
    "--epsilon",
    "--squarecb",
    "--gamma_scale",
    "--gamma_exponent",
    "--bag",
    "--cover",
    "--psi",
    "--softmax",
    "--lambda",
    "--cb_type",
    "-q",
    "--quadratic",
    "--interactions",
    "-l",
    "--learning_rate",
    "--power_t",
    "--l2",
    "-b",
    "--bit_precision",
    "--cb_explore_adf",
)
_FLAGS = {"--squarecb", "--softmax", "--cb_explore_adf"}


@dataclass(frozen=True)
class VWConfig:
    """Typed VW contextual-bandit settings; :meth:`args` is the command line.

    Parameters
    ----------
    exploration : {"epsilon", "squarecb", "bag", "cover", "softmax"}
    epsilon : float
        Uniform exploration share, in [0, 1] (epsilon, bag, cover).
    gamma_scale, gamma_exponent : float
        SquareCB's learning-rate schedule.
    bag : int
        Number of bootstrapped policies (bag).
    cover : int
        Number of policies in the cover (cover); ``psi`` its diversity weight.
    lambda_ : float
        Softmax inverse temperature (softmax).
    cb_type : {"ips", "dr", "mtr"}
        How costs are estimated; ``squarecb`` needs ``mtr``.
    interactions : tuple of str, optional
        ``-q`` pairs; ``None`` uses the featurizer's.
    learning_rate, power_t, l2 : float
    bits : int
        Hash table size is ``2**bits`` (1-30).
    """

    exploration: str = "epsilon"
    epsilon: float = 0.05
    gamma_scale: float = 10.0
    gamma_exponent: float = 0.5
    bag: int = 5
    cover: int = 3
    psi: float = 1.0
    lambda_: float = 10.0
    cb_type: str = "mtr"
    interactions: tuple[str, ...] | None = None
    learning_rate: float = 0.5
    power_t: float = 0.5
    l2: float = 0.0
    bits: int = 18

    def __post_init__(self) -> None:
        def err(fieldname: str, problem: str) -> VWConfigError:
            return VWConfigError(f"VWConfig: field '{fieldname}': {problem}")

        if self.exploration not in EXPLORATIONS:
            raise err(
                "exploration", f"{self.exploration!r} is not one of {', '.join(EXPLORATIONS)}"
            )
        if self.cb_type not in CB_TYPES:
            raise err("cb_type", f"{self.cb_type!r} is not one of {', '.join(CB_TYPES)}")
        if self.exploration == "squarecb" and self.cb_type != "mtr":
            raise err("cb_type", f"squarecb needs cb_type 'mtr', not {self.cb_type!r}")
        for name in (
            "epsilon",
            "gamma_scale",
            "gamma_exponent",
            "psi",
            "lambda_",
            "learning_rate",
            "power_t",
            "l2",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise err(name, f"must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not 0.0 <= self.epsilon <= 1.0:
            raise err("epsilon", f"must be in [0, 1], got {self.epsilon}")
        for name in ("gamma_scale", "learning_rate", "lambda_"):
            if getattr(self, name) <= 0:
                raise err(name, f"must be positive, got {getattr(self, name)}")
        for name in ("gamma_exponent", "power_t", "l2", "psi"):
            if getattr(self, name) < 0:
                raise err(name, f"must not be negative, got {getattr(self, name)}")
        for name, lo, hi in (("bag", 1, 1000), ("cover", 1, 1000), ("bits", 1, 30)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise err(name, f"must be an integer in {lo}..{hi}, got {v!r}")
        if self.interactions is not None:
            pairs = tuple(self.interactions)
            for q in pairs:
                if not isinstance(q, str) or len(q) != 2 or not q.isalnum():
                    raise err("interactions", f"{q!r} is not a pair of namespace letters")
            object.__setattr__(self, "interactions", pairs)

    # --------------------------------------------------------------- views
    def args(self, interactions: Sequence[str] = ()) -> list[str]:
        """VW command-line tokens (without data, model or seed options)."""
        out = ["--cb_explore_adf", "--cb_type", self.cb_type]
        e = self.exploration
        if e == "epsilon":
            out += ["--epsilon", repr(self.epsilon)]
        elif e == "squarecb":
            out += [
                "--squarecb",
                "--gamma_scale",
                repr(self.gamma_scale),
                "--gamma_exponent",
                repr(self.gamma_exponent),
            ]
        elif e == "bag":
            out += ["--bag", str(self.bag), "--epsilon", repr(self.epsilon)]
        elif e == "cover":
            out += [
                "--cover",
                str(self.cover),
                "--psi",
                repr(self.psi),
                "--epsilon",
                repr(self.epsilon),
            ]
        else:
            out += ["--softmax", "--lambda", repr(self.lambda_)]
        pairs = self.interactions if self.interactions is not None else tuple(interactions)
        for q in pairs:
            out += ["-q", q]
        out += [
            "-l",
            repr(self.learning_rate),
            "--power_t",
            repr(self.power_t),
            "--l2",
            repr(self.l2),
            "-b",
            str(self.bits),
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interactions"] = None if self.interactions is None else list(self.interactions)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> VWConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VWConfigError(
                f"{source}: field '{unknown[0]}': unknown VW setting "
                f"(known: {', '.join(sorted(known))})"
            )
        kw = dict(d)
        if kw.get("interactions") is not None:
            kw["interactions"] = tuple(kw["interactions"])
        return cls(**kw)

    @classmethod
    def from_vw_args(cls, text: str, base: VWConfig | None = None) -> VWConfig:
        """Parse a free-form VW option string, refusing anything not allow-listed.

        Options not given keep the value of ``base`` (default: the defaults).
        """
        try:
            toks = shlex.split(text)
        except ValueError as exc:
            raise VWConfigError(f"--vw-args: cannot split {text!r}: {exc}") from exc
        values: dict[str, str | None] = {}
        pairs: list[str] = []
        i = 0
        while i < len(toks):
            tok = toks[i]
            opt, eq, inline = tok.partition("=")
            if opt not in _ALLOWED:
                raise VWConfigError(
                    f"--vw-args: option '{opt}' is not allowed here (allowed: "
                    f"{', '.join(_ALLOWED)})"
                )
            if opt in _FLAGS:
                if eq:
                    raise VWConfigError(f"--vw-args: option '{opt}' takes no value")
                values[opt] = None
                i += 1
                continue
            if eq:
                val = inline
                i += 1
            else:
                if i + 1 >= len(toks):
                    raise VWConfigError(f"--vw-args: option '{opt}' needs a value")
                val = toks[i + 1]
                i += 2
            if opt in ("-q", "--quadratic", "--interactions"):
                pairs.append(val)
                continue
            if opt in values:
                raise VWConfigError(f"--vw-args: option '{opt}' given twice")
            values[opt] = val
        alias = {"-l": "--learning_rate", "-b": "--bit_precision"}
        for short, long in alias.items():
            if short in values:
                if long in values:
                    raise VWConfigError(f"--vw-args: both '{short}' and '{long}' given")
                values[long] = values.pop(short)
        values.pop("--cb_explore_adf", None)
        explorers = [o for o in ("--squarecb", "--bag", "--cover", "--softmax") if o in values]
        if len(explorers) > 1:
            raise VWConfigError(
                f"--vw-args: conflicting exploration options {' and '.join(explorers)}; "
                "choose one of --epsilon, --squarecb, --bag, --cover, --softmax"
            )
        exploration = (
            explorers[0][2:]
            if explorers
            else ("epsilon" if "--epsilon" in values else (base.exploration if base else "epsilon"))
        )
        if "--epsilon" in values and exploration in ("squarecb", "softmax"):
            raise VWConfigError(
                f"--vw-args: conflicting exploration options --epsilon and --{exploration}"
            )
        owners = {
            "--gamma_scale": "squarecb",
            "--gamma_exponent": "squarecb",
            "--psi": "cover",
            "--lambda": "softmax",
        }
        for opt, owner in owners.items():
            if opt in values and exploration != owner:
                raise VWConfigError(
                    f"--vw-args: option '{opt}' belongs to --{owner}, but exploration is "
                    f"{exploration}"
                )

        def num(opt: str, kind: type) -> Any:
            raw = values[opt]
            try:
                return kind(raw)
            except (TypeError, ValueError):
                raise VWConfigError(
                    f"--vw-args: option '{opt}' needs {'an integer' if kind is int else 'a number'}"
                    f", got {raw!r}"
                ) from None

        cfg = base or cls()
        kw: dict[str, Any] = {"exploration": exploration}
        mapping: dict[str, tuple[str, type]] = {
            "--epsilon": ("epsilon", float),
            "--gamma_scale": ("gamma_scale", float),
            "--gamma_exponent": ("gamma_exponent", float),
            "--bag": ("bag", int),
            "--cover": ("cover", int),
            "--psi": ("psi", float),
            "--lambda": ("lambda_", float),
            "--learning_rate": ("learning_rate", float),
            "--power_t": ("power_t", float),
            "--l2": ("l2", float),
            "--bit_precision": ("bits", int),
        }
        for opt, (name, kind) in mapping.items():
            if opt in values:
                kw[name] = num(opt, kind)
        if "--cb_type" in values:
            kw["cb_type"] = values["--cb_type"]
        elif exploration == "squarecb":
            kw["cb_type"] = "mtr"
        if pairs:
            kw["interactions"] = tuple(pairs)
        try:
            return replace(cfg, **kw)
        except VWConfigError as exc:
            raise VWConfigError(f"--vw-args {text!r}: {exc}") from exc


# ------------------------------------------------------------------- policy
def _workspace(args: Sequence[str]) -> vowpalwabbit.Workspace:
    try:
        return vowpalwabbit.Workspace(arg_list=[*args, "--quiet"])
    except Exception as exc:  # VW raises plain RuntimeError/Exception types
        raise PolicyError(f"VW refused the command line {' '.join(args)!r}: {exc}") from exc


def _normalized(raw: list[float], n: int) -> Probabilities:
    """VW's ``n`` scores as probabilities: non-finite and non-positive entries set to
    0, the rest divided by their exact sum (uniform when nothing is left).

    The same vector as the numpy steps of :meth:`VWPolicy._pmf` (``np.where`` on
    ``isfinite & > 0``, ``math.fsum``, one division per entry), on a Python list:
    numpy's per-call overhead on a dozen entries cost more than the arithmetic.

    >>> _normalized([0.5, float("nan"), -1.0, 1.5], 4).tolist()
    [0.25, 0.0, 0.0, 0.75]
    """
    kept = [x if 0.0 < x < math.inf else 0.0 for x in map(float, raw)]
    total = math.fsum(kept)
    if total <= 0:
        return np.full(n, 1.0 / n)
    return np.array(kept, dtype=np.float64) / total


@register
class VWPolicy(Policy):
    """A Vowpal Wabbit ``--cb_explore_adf`` policy over catalog actions.

    Parameters
    ----------
    config : VWConfig, optional
    featurizer_config : FeaturizerConfig, optional
    catalog : Catalog, optional
        Source of action topics and formats (default: the shipped catalog).
    seed : int
        VW's ``--random_seed`` and the sampling seed of :meth:`decide`.
    model_version : str
        What decisions log as ``model_version``.

    Examples
    --------
    >>> from datetime import date
    >>> from nba.context import DecisionContext
    >>> from nba.domain import HCPProfile
    >>> pol = VWPolicy(VWConfig(epsilon=0.2), seed=1)
    >>> ctx = DecisionContext(HCPProfile("h", "cardiology", 5, "US", "aware",
    ...                                  frozenset({"email"})), date(2026, 1, 5))
    >>> acts = pol.catalog.eligible_actions("US", date(2026, 1, 5), ["email"])[:3]
    >>> p = pol.probabilities(ctx, acts)
    >>> p.shape, float(p.sum())
    ((3,), 1.0)
    """

    name: ClassVar[str] = "vw"
    learns: ClassVar[bool] = True

    def __init__(
        self,
        config: VWConfig | None = None,
        featurizer_config: FeaturizerConfig | None = None,
        catalog: Catalog | None = None,
        seed: int = 0,
        model_version: str = "vw",
        *,
        _model_file: str | Path | None = None,
        _predict_only: bool = False,
    ) -> None:
        self.config = config or VWConfig()
        self.featurizer_config = featurizer_config or FeaturizerConfig()
        self.catalog = catalog or Catalog.default()
        self.seed = int(seed)
        self.version = model_version
        self.featurizer = Featurizer(self.catalog, self.featurizer_config)
        self.predict_only_ = bool(_predict_only)
        args = self.vw_args()
        if _model_file is not None:
            # the model file carries VW's own (possibly advanced) random seed
            args = [*self.config.args(self.featurizer_config.interactions), "-i", str(_model_file)]
        if _predict_only:
            args += ["--testonly"]
        self._ws = _workspace(args)
        # what :meth:`_predict` needs to score through VW's binding directly
        self._scores_predicted = self._ws.get_prediction_type() in (
            vowpalwabbit.PredictionType.ACTION_PROBS,
            vowpalwabbit.PredictionType.ACTION_SCORES,
        )

    # ------------------------------------------------------------ identity
    @property
    def model_version(self) -> str:
        return self.version

    def vw_args(self) -> list[str]:
        """The full command line this policy's workspace is built with."""
        return [
            *self.config.args(self.featurizer_config.interactions),
            "--random_seed",
            str(self.seed),
        ]

    @property
    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.name, "seed": self.seed}
        for k, v in self.config.to_dict().items():
            out[f"vw.{k}"] = (
                "featurizer"
                if v is None and k == "interactions"
                else (",".join(v) if isinstance(v, list) else v)
            )
        out["vw_command"] = " ".join(self.config.args(self.featurizer_config.interactions))
        out["featurizer_hash"] = self.featurizer_config.content_hash
        out["featurizer_interactions"] = ",".join(self.featurizer_config.interactions)
        out["catalog_version"] = self.catalog.version
        return out

    # ------------------------------------------------------------- scoring
    def _predict(self, text: str) -> Any:
        """VW's prediction for one multi-line example (what ``Workspace.predict`` gives).

        For an action-probability (or score) learner, the same calls as
        ``Workspace.predict`` makes -- parse, predict, read the first example's
        action scores, give the examples back -- without wrapping every line in a
        Python ``Example`` (label and prediction types looked up per line), which
        cost about as much as VW's own parsing and prediction of a decision. The
        parsed examples go to VW as the parser gives them: the binding's
        ``example(ws, label_type, existing)`` that ``pyvw`` wraps each one with
        returns the same example (VW 9's ``my_existing_example``), so wrapping
        them was a Python object per line for nothing.
        """
        ws = self._ws
        if not self._scores_predicted:
            return ws.predict(text)
        examples = pylibvw.vw._parse(ws, text.replace("\r", "").strip())
        try:
            pylibvw.vw.predict_multi(ws, examples)
            return examples[0].get_action_scores()
        finally:
            pylibvw.vw._finish_example_multi_ex(ws, examples)

    def _pmf(self, lines: list[str], n: int) -> Probabilities:
        raw = self._predict("\n".join(lines))
        if type(raw) is list and len(raw) == n:
            return _normalized(raw, n)
        p = np.asarray(raw, dtype=np.float64)
        if p.shape != (n,):
            raise PolicyError(f"vw: VW returned {p.shape[0]} probabilities for {n} actions")
        p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
        total = math.fsum(p.tolist())
        if total <= 0:
            return np.full(n, 1.0 / n)
        return p / total

    def probabilities(self, context: DecisionContext, actions: Sequence[Action]) -> Probabilities:
        if not actions:
            raise PolicyError("vw: no eligible actions")
        return self._pmf(self.featurizer.featurize_one(context, actions), len(actions))

    def probabilities_json(self, context_json: str, action_ids: Sequence[str]) -> Probabilities:
        """Probabilities for a logged ``context`` value (native or imported DSJSON)."""
        return self._pmf(self.featurizer.featurize_json(context_json, action_ids), len(action_ids))

    def probabilities_batch(
        self, contexts: Sequence[DecisionContext], actions: Sequence[Sequence[Action]]
    ) -> list[Probabilities]:
        """Probabilities for many decisions (one VW call each, no per-call overhead
        beyond featurizing). Returns one vector per decision, in order."""
        if len(contexts) != len(actions):
            raise PolicyError(f"vw: {len(contexts)} contexts but {len(actions)} action lists")
        return [self.probabilities(c, a) for c, a in zip(contexts, actions, strict=True)]

    def probabilities_table(self, table: pa.Table) -> tuple[Probabilities, npt.NDArray[np.int64]]:
        """Probabilities for every decision of a log table, featurized in bulk.

        Returns
        -------
        probabilities : ndarray of float64, shape (n_action_lines,)
            Flat, in each row's ``action_ids`` order.
        offsets : ndarray of int64, shape (n_rows + 1,)
            Row ``i`` owns ``probabilities[offsets[i]:offsets[i+1]]``.
        """
        batch = self.featurizer.featurize_table(table)
        return self.probabilities_featurized(batch), batch.offsets

    def probabilities_featurized(self, batch: FeaturizedBatch) -> Probabilities:
        """Flat probabilities of an already featurized batch (see ``probabilities_table``)."""
        out = np.empty(int(batch.offsets[-1]), dtype=np.float64)
        shared = batch.shared.to_pylist()
        acts = batch.actions.to_pylist()
        off = batch.offsets
        for i, s in enumerate(shared):
            lo, hi = int(off[i]), int(off[i + 1])
            out[lo:hi] = self._pmf([s, *acts[lo:hi]], hi - lo)
        return out

    def _ragged_table(
        self,
        contexts: Sequence[str],
        offsets: npt.NDArray[np.integer[Any]],
        action_index: npt.NDArray[np.integer[Any]],
        event_ids: Sequence[str] | None = None,
    ) -> pa.Table:
        off = np.asarray(offsets, dtype=np.int64)
        idx = np.asarray(action_index, dtype=np.int64)
        n = len(off) - 1
        if len(contexts) != n or off[0] != 0 or int(off[-1]) != len(idx):
            raise PolicyError(
                f"vw: ragged batch is inconsistent ({len(contexts)} contexts, "
                f"{n} decisions in offsets, {len(idx)} actions)"
            )
        n_cat = len(self.catalog.action_ids)
        if len(idx) and (idx.min() < 0 or idx.max() >= n_cat):
            raise PolicyError(f"vw: action_index must be in 0..{n_cat - 1}")
        ids = pa.array(list(self.catalog.action_ids), pa.string()).take(pa.array(idx))
        lists = pa.ListArray.from_arrays(pa.array(off.astype(np.int32)), ids)
        cols: dict[str, Any] = {
            "context": pa.array(list(contexts), pa.string()),
            "action_ids": lists,
        }
        if event_ids is not None:
            cols["event_id"] = pa.array([str(e) for e in event_ids], pa.string())
        return pa.table(cols)

    def probabilities_ragged(
        self,
        contexts: Sequence[str],
        offsets: npt.NDArray[np.integer[Any]],
        action_index: npt.NDArray[np.integer[Any]],
    ) -> Probabilities:
        """Probabilities for a ragged batch (what a simulator's batch policy needs).

        Parameters
        ----------
        contexts : sequence of str, length n
            Logged context JSON of each decision.
        offsets : ndarray of int, shape (n + 1,)
        action_index : ndarray of int, shape (m,)
            Index into ``catalog.actions`` of each eligible action.

        Returns
        -------
        ndarray of float64, shape (m,)
        """
        table = self._ragged_table(contexts, offsets, action_index)
        return self.probabilities_featurized(self.featurizer.featurize_table(table))

    def learn_ragged(
        self,
        contexts: Sequence[str],
        offsets: npt.NDArray[np.integer[Any]],
        action_index: npt.NDArray[np.integer[Any]],
        chosen: npt.NDArray[np.integer[Any]],
        reward: npt.NDArray[np.float64],
        propensity: npt.NDArray[np.float64],
        event_ids: Sequence[str] | None = None,
    ) -> int:
        """Learn from a ragged batch of logged decisions (featurized and labelled in
        bulk, then one VW update per decision, in order); returns the count."""
        table = self._ragged_table(contexts, offsets, action_index, event_ids)
        batch = self.featurizer.featurize_table(table)
        return self.learn_text(labelled_text(batch, chosen, reward, propensity, event_ids))

    # ------------------------------------------------------------ learning
    def learn(
        self,
        context: DecisionContext,
        actions: Sequence[Action],
        chosen_index: int,
        reward: float,
        propensity: float,
    ) -> None:
        if self.predict_only_:
            raise PolicyError("vw: this is a predict-only copy; it cannot learn")
        lab = cb_label(chosen_index, reward, propensity, len(actions))
        lines = self.featurizer.featurize_one(context, actions)
        prefix = cb_label_prefixes(
            np.array([0, len(actions)]),
            np.array([lab.line]),
            np.array([-lab.cost]),
            np.array([lab.probability]),
        )[lab.line].as_py()
        lines[1 + lab.line] = prefix + lines[1 + lab.line]
        self._ws.learn("\n".join(lines))

    def learn_text(self, text: bytes | str) -> int:
        """Learn from labelled VW ADF text (examples separated by blank lines);
        returns the number of examples."""
        if self.predict_only_:
            raise PolicyError("vw: this is a predict-only copy; it cannot learn")
        s = text.decode() if isinstance(text, bytes) else text
        n = 0
        for ex in s.split("\n\n"):
            if ex.strip():
                self._ws.learn(ex)
                n += 1
        return n

    # ---------------------------------------------------------- persistence
    def model_bytes(self) -> bytes:
        """VW's serialized model."""
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / MODEL_FILE
            self._ws.save(str(path))
            return path.read_bytes()

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "policy": self.name,
            "vw_config": self.config.to_dict(),
            "featurizer_config": self.featurizer_config.to_dict(),
            "featurizer_hash": self.featurizer_config.content_hash,
            "catalog_version": self.catalog.version,
            "seed": self.seed,
            "model_version": self.version,
            "vw_version": vowpalwabbit.__version__,
        }

    def save(self, path: str | Path) -> None:
        """Write ``path/`` with ``model.vw``, ``policy.json`` and ``catalog.json``."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        (tmp / MODEL_FILE).write_bytes(self.model_bytes())
        (tmp / META_FILE).write_text(json.dumps(self.meta(), indent=1, sort_keys=True))
        (tmp / CATALOG_FILE).write_text(self.catalog.snapshot_json())
        if p.exists():
            shutil.rmtree(p)
        os.replace(tmp, p)

    @classmethod
    def load(
        cls, path: str | Path, predict_only: bool = False, model_version: str | None = None
    ) -> VWPolicy:
        """Load a policy written by :meth:`save` (``predict_only``: VW ``--testonly``)."""
        p = Path(path)
        try:
            meta = json.loads((p / META_FILE).read_text())
            catalog_data = json.loads((p / CATALOG_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PolicyError(f"{p}: not a saved VW policy: {exc}") from exc
        if not (p / MODEL_FILE).is_file():
            raise PolicyError(f"{p}: not a saved VW policy: {MODEL_FILE} is missing")
        if meta.get("format") != FORMAT_VERSION or meta.get("policy") != cls.name:
            raise PolicyError(f"{p}: unsupported saved policy format {meta.get('format')!r}")
        try:
            catalog = Catalog.from_dict(catalog_data, source=str(p / CATALOG_FILE))
            config = VWConfig.from_dict(meta["vw_config"], source=str(p / META_FILE))
            fcfg = FeaturizerConfig.from_dict(meta["featurizer_config"])
        except (KeyError, ValidationError) as exc:
            raise PolicyError(f"{p}: saved policy metadata is invalid: {exc}") from exc
        if catalog.version != meta.get("catalog_version"):
            raise PolicyError(f"{p}: catalog snapshot does not match its recorded version")
        return cls(
            config,
            fcfg,
            catalog,
            seed=int(meta.get("seed", 0)),
            model_version=model_version or str(meta.get("model_version", "vw")),
            _model_file=p / MODEL_FILE,
            _predict_only=predict_only,
        )

    def predict_only(self) -> VWPolicy:
        """A serving copy of the current model, loaded with VW ``--testonly``."""
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / MODEL_FILE
            self._ws.save(str(path))
            return VWPolicy(
                self.config,
                self.featurizer_config,
                self.catalog,
                self.seed,
                self.version,
                _model_file=path,
                _predict_only=True,
            )

    def model_digest(self) -> str:
        """SHA-256 (first 16 hex digits) of the model bytes."""
        return hashlib.sha256(self.model_bytes()).hexdigest()[:16]

    def close(self) -> None:
        """Release the VW workspace."""
        self._ws.finish()


# ---------------------------------------------------------------- training
@dataclass(frozen=True)
class FileTrainResult:
    """What learning from a file reports.

    Attributes
    ----------
    policy : VWPolicy
    n_examples : int
        Examples VW saw (over all passes).
    average_loss : float
        VW's progressive-validation average loss (sum loss / weighted examples).
    """

    policy: VWPolicy
    n_examples: int
    average_loss: float


def train_from_file(
    data_file: str | Path,
    config: VWConfig | None = None,
    featurizer_config: FeaturizerConfig | None = None,
    catalog: Catalog | None = None,
    seed: int = 0,
    passes: int = 1,
    model_version: str = "vw",
) -> FileTrainResult:
    """Learn with VW's native parser from a labelled ADF text file.

    With ``passes > 1`` VW builds a cache next to ``data_file`` and holdout is
    off (every example trains), so the result is deterministic.
    """
    if not isinstance(passes, int) or passes < 1:
        raise PolicyError(f"train: passes must be a positive integer, got {passes!r}")
    data = Path(data_file)
    if not data.is_file():
        raise PolicyError(f"train: data file {data} does not exist")
    pol_args = VWPolicy(config, featurizer_config, catalog, seed)  # validates configs
    args = pol_args.vw_args()
    pol_args.close()
    run = [*args, "-d", str(data), "--holdout_off"]
    cache = data.with_suffix(data.suffix + ".cache")
    if passes > 1:
        if cache.exists():
            cache.unlink()
        run += ["--passes", str(passes), "--cache_file", str(cache), "-k"]
    ws = _workspace(run)
    n = float(ws.get_weighted_examples())
    loss = float(ws.get_sum_loss()) / n if n else float("nan")
    with tempfile.TemporaryDirectory() as d:
        model = Path(d) / MODEL_FILE
        ws.save(str(model))
        ws.finish()
        if cache.exists():
            cache.unlink()
        policy = VWPolicy(
            config, featurizer_config, catalog, seed, model_version, _model_file=model
        )
    return FileTrainResult(policy, int(n), loss)


class NativeLearner:
    """VW's native parser in a child process, fed labelled ADF text through a pipe.

    The caller writes example text chunk by chunk (:meth:`write`) while VW parses
    and learns in parallel; :meth:`finish` closes the stream and loads the model.
    VW reads exactly the bytes it would read from a file of the concatenated
    chunks, so the model is byte-identical to :func:`train_from_file` on that file.
    (The child reads ``/dev/stdin``: Linux and macOS.)

    Parameters
    ----------
    config, featurizer_config, catalog, seed, passes : as :func:`train_from_file`
    work_dir : path
        Where the VW cache (passes > 1), the model and the child's log go.
    initial_model : path, optional
        A VW model file (``model.vw`` of a saved policy with the same
        configuration) to continue learning from (VW's ``-i``): a warm start.
    """

    def __init__(
        self,
        config: VWConfig | None,
        featurizer_config: FeaturizerConfig | None,
        catalog: Catalog | None,
        seed: int,
        passes: int,
        work_dir: str | Path,
        initial_model: str | Path | None = None,
    ) -> None:
        if not isinstance(passes, int) or passes < 1:
            raise PolicyError(f"train: passes must be a positive integer, got {passes!r}")
        self.config = config or VWConfig()
        self.featurizer_config = featurizer_config or FeaturizerConfig()
        self.catalog = catalog or Catalog.default()
        self.seed = int(seed)
        self.passes = passes
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *self.config.args(self.featurizer_config.interactions),
            "--random_seed",
            str(self.seed),
            "-d",
            "/dev/stdin",
            "--holdout_off",
        ]
        if initial_model is not None:
            if not Path(initial_model).is_file():
                raise PolicyError(f"warm start: no VW model file at {initial_model}")
            args += ["-i", str(initial_model)]
        if passes > 1:
            args += [
                "--passes",
                str(passes),
                "--cache_file",
                str(self.work_dir / "native.cache"),
                "-k",
            ]
        self._model = self.work_dir / "native-model.vw"
        self._stats = self.work_dir / "native-stats.json"
        self._log = open(self.work_dir / "native-vw.log", "w+b")
        spec = json.dumps({"args": args, "model": str(self._model), "stats": str(self._stats)})
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        self._proc = subprocess.Popen(
            # its own light entry point: the imports of this module cost CPU
            [sys.executable, "-m", "nba.policies.vw_child", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
        )
        _widen_pipe(self._proc.stdin)

    def _child_error(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-2000:]

    def write(self, text: bytes | pa.Buffer) -> None:
        """Feed labelled examples (whole examples, each ending with a blank line)."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(text)
        except BrokenPipeError:
            self._proc.wait()
            raise PolicyError(f"VW stopped reading its input: {self._child_error()}") from None

    def abort(self) -> None:
        """Stop the child without a model."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._log.close()

    def finish(self, model_version: str = "vw") -> FileTrainResult:
        """Close the stream, wait for VW, and load the trained policy."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self._proc.wait()
        if code != 0 or not self._model.is_file():
            msg = self._child_error()
            self._log.close()
            raise PolicyError(f"VW learning failed (exit {code}): {msg}")
        self._log.close()
        stats = json.loads(self._stats.read_text())
        policy = VWPolicy(
            self.config,
            self.featurizer_config,
            self.catalog,
            self.seed,
            model_version,
            _model_file=self._model,
        )
        n = float(stats["weighted_examples"])
        loss = float(stats["sum_loss"]) / n if n else float("nan")
        return FileTrainResult(policy, int(n), loss)


#: pipe buffer asked for on Linux (its default is 64 KiB; 1 MiB is the usual
#: unprivileged maximum): fewer wake-ups of VW's reader per megabyte
_PIPE_BYTES = 1 << 20


def _widen_pipe(stream: Any) -> None:
    """Ask for a larger pipe buffer where the platform has ``F_SETPIPE_SZ``; a
    refusal leaves the default (only speed depends on it)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    op = getattr(fcntl, "F_SETPIPE_SZ", None)
    if op is None or stream is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), op, _PIPE_BYTES)
    except OSError:
        pass


# --------------------------------------------------------- reward regression
class RewardRegressor:
    """Squared-loss VW regression of reward on (context, action) features.

    Each (decision, action) pair becomes one line holding the decision's shared
    namespaces and the action's namespaces, so a reward model (for DM/DR) sees
    exactly the policy's features.

    Parameters
    ----------
    featurizer : Featurizer
    interactions : sequence of str, optional
        ``-q`` pairs (default: the featurizer's).
    passes : int
    bits : int
    seed : int
    """

    def __init__(
        self,
        featurizer: Featurizer,
        interactions: Sequence[str] | None = None,
        passes: int = 1,
        bits: int = 18,
        seed: int = 0,
    ) -> None:
        self.featurizer = featurizer
        self.interactions = tuple(featurizer.interactions if interactions is None else interactions)
        self.passes = int(passes)
        self.bits = int(bits)
        self.seed = int(seed)
        self._ws: vowpalwabbit.Workspace | None = None

    def _args(self) -> list[str]:
        out = ["--loss_function", "squared", "-b", str(self.bits), "--random_seed", str(self.seed)]
        for q in self.interactions:
            out += ["-q", q]
        return out

    @staticmethod
    def _pair_lines(batch: FeaturizedBatch) -> pa.Array:
        sizes = np.diff(batch.offsets)
        shared_body = pc.utf8_slice_codeunits(batch.shared, len("shared "))
        rep = shared_body.take(pa.array(np.repeat(np.arange(len(batch)), sizes)))
        return pc.binary_join_element_wise(rep, batch.actions, " ")

    def fit(
        self,
        batch: FeaturizedBatch,
        lines: npt.NDArray[np.integer[Any]],
        reward: npt.NDArray[np.float64],
    ) -> RewardRegressor:
        """Fit on the given action lines of ``batch`` (usually the logged choices).

        Parameters
        ----------
        batch : FeaturizedBatch
        lines : ndarray of int, shape (m,)
            Flat indices into ``batch.actions`` of the observed (decision, action)
            pairs, e.g. ``batch.offsets[:-1] + chosen_index``.
        reward : ndarray of float64, shape (m,)
            Observed reward of each of those pairs.
        """
        idx = np.asarray(lines, dtype=np.int64)
        r = np.asarray(reward, dtype=np.float64)
        if idx.ndim != 1 or r.shape != idx.shape:
            raise PolicyError(f"reward model: {r.shape} targets for {idx.shape} lines")
        total = int(batch.offsets[-1])
        if len(idx) and (idx.min() < 0 or idx.max() >= total):
            raise PolicyError(f"reward model: line indices must be in 0..{total - 1}")
        if not np.all(np.isfinite(r)):
            raise PolicyError("reward model: targets must be finite")
        pairs = self._pair_lines(batch).take(pa.array(idx))
        text = concat_lines(pc.binary_join_element_wise(_format_floats(r), " ", pairs, ""))
        with tempfile.TemporaryDirectory() as d:
            data = Path(d) / "reg.txt"
            data.write_bytes(text)
            args = [*self._args(), "-d", str(data), "--holdout_off"]
            if self.passes > 1:
                args += ["--passes", str(self.passes), "--cache_file", str(data) + ".cache", "-k"]
            ws = _workspace(args)
            model = Path(d) / "reg.vw"
            ws.save(str(model))
            ws.finish()
            self._ws = _workspace([*self._args(), "-i", str(model), "--testonly"])
        return self

    def predict(self, batch: FeaturizedBatch) -> npt.NDArray[np.float64]:
        """Predicted reward per action line, shape (batch.offsets[-1],)."""
        if self._ws is None:
            raise PolicyError("reward model: call fit() before predict()")
        ws = self._ws
        return np.array(
            [float(ws.predict(line)) for line in self._pair_lines(batch).to_pylist()],
            dtype=np.float64,
        )
