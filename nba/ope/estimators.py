"""Off-policy estimators with one interface, and their intervals.

Every estimator writes its value in one form,

    V = mean_i(a_i) + sum_i(c_i * y_i) / sum_i(c_i),

a plain mean of per-decision terms ``a`` plus a self-normalised ratio with
non-negative weights ``c`` and targets ``y`` (either part may be absent). This
one form gives every estimator the same three intervals:

* ``bootstrap``: percentile bootstrap over whole decisions. A (B, n) count
  matrix is multiplied with the (n, k) term matrix, so the *denominator* of a
  self-normalised estimator is recomputed on every resample, not just the
  numerator. Seeded per block of resamples and chunked to bound memory; the
  resampled counts depend on the seed only, not on the number of threads or
  the chunk size. The replicates themselves agree across chunk sizes and CPUs
  up to floating-point rounding (relative 1e-12 or better): the count-matrix
  product runs in BLAS, whose summation order varies with the matrix shape
  and the processor's vector width.
* ``gaussian``: CLT interval from per-decision influence terms; for the ratio
  part the delta method, ``psi_i = a_i - mean(a) + c_i (y_i - R) / mean(c)``.
* ``bernstein``: empirical-Bernstein bound (Maurer & Pontil 2009, Thm. 4),
  valid in finite samples for i.i.d. decisions with *bounded* terms. It uses an
  a priori bound on the importance weight (``weight_bound``; by default the
  largest ``action_dist / pscore_all`` over all eligible actions, which is a
  true bound; without ``pscore_all`` the largest observed weight, which is not)
  and on the reward (``LoggedData.reward_range``; by default the observed
  range, again not a true bound). The ratio part is bounded by bounding its
  numerator and denominator means separately (union bound).

>>> import numpy as np
>>> from nba.ope.data import LoggedData
>>> data = LoggedData(offsets=np.array([0, 2, 4]),
...                   action_dist=np.array([1.0, 0.0, 0.5, 0.5]),
...                   reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]),
...                   action=np.array([0, 1]))
>>> IPS().estimate_policy_value(data)
1.0
>>> SNIPS().estimate_policy_value(data)
0.6666666666666666
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from nba.ope.data import FloatArray, LoggedData, OPEInputError, segment_sum

IntervalMethod = Literal["bootstrap", "gaussian", "bernstein"]
Resampling = Literal["multinomial", "poisson"]
INTERVAL_METHODS: tuple[str, ...] = ("bootstrap", "gaussian", "bernstein")

#: target number of count-matrix cells per bootstrap chunk (bounds memory)
_CHUNK_CELLS = 1 << 22
#: bootstrap resamples per seeded block (the unit of parallel work)
_BLOCK = 64


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided ``1 - alpha`` interval.

    Attributes
    ----------
    estimate, low, high : float
    method : str
        ``bootstrap``, ``gaussian`` or ``bernstein``.
    alpha : float
    notes : tuple of str
        Assumptions that were filled in (e.g. a weight bound taken from the data).
    """

    estimate: float
    low: float
    high: float
    method: str
    alpha: float
    notes: tuple[str, ...] = field(default=())

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def covers(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class _Terms:
    """Per-decision terms of ``V = mean(a) + sum(c y) / sum(c)``; shapes (n,)."""

    plain: FloatArray | None
    ratio_weight: FloatArray | None = None
    ratio_target: FloatArray | None = None

    def value(self) -> float:
        v = 0.0
        if self.plain is not None:
            v += float(np.mean(self.plain))
        if self.ratio_weight is not None and self.ratio_target is not None:
            den = float(np.sum(self.ratio_weight))
            if den <= 0.0:
                raise OPEInputError(
                    "self-normalised estimate undefined: the target policy gives zero "
                    "probability to every logged action"
                )
            v += float(np.dot(self.ratio_weight, self.ratio_target)) / den
        return v


@dataclass(frozen=True)
class _Bounds:
    """A priori ranges for the empirical-Bernstein interval."""

    plain: tuple[float, float] | None
    target: tuple[float, float] | None
    weight_max: float


class BaseOffPolicyEstimator(ABC):
    """Shared interface: ``estimate_policy_value`` and ``estimate_interval``.

    Subclasses define ``name`` and ``_terms``; parameters are public attributes
    named as in ``__init__`` and read back by :attr:`params`.
    """

    name: ClassVar[str] = "base"
    needs_reward_model: ClassVar[bool] = False

    @property
    def params(self) -> dict[str, Any]:
        """Constructor parameters, for logging (e.g. ``mlflow.log_params``)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    @abstractmethod
    def _terms(self, data: LoggedData) -> _Terms:
        """Per-decision terms of this estimator."""

    @abstractmethod
    def _bounds(self, data: LoggedData, weight_max: float, rlo: float, rhi: float) -> _Bounds:
        """A priori ranges of the terms, given weight and reward bounds."""

    def estimate_policy_value(self, data: LoggedData) -> float:
        """Estimated value of the target policy in ``data.action_dist``.

        Parameters
        ----------
        data : LoggedData
            ``n`` decisions; ragged arrays as documented there.

        Returns
        -------
        float
        """
        return self._terms(data).value()

    def estimate_interval(
        self,
        data: LoggedData,
        alpha: float = 0.05,
        method: IntervalMethod = "bootstrap",
        n_bootstrap: int = 1000,
        seed: int = 0,
        *,
        resampling: Resampling = "multinomial",
        weight_bound: float | None = None,
        n_jobs: int | None = None,
    ) -> Interval:
        """Point estimate and a two-sided ``1 - alpha`` interval.

        Parameters
        ----------
        data : LoggedData
        alpha : float
            In (0, 1).
        method : {"bootstrap", "gaussian", "bernstein"}
            See the module docstring for what each assumes.
        n_bootstrap : int
            Resamples ``B`` for ``bootstrap``.
        seed : int
            Seed of the bootstrap; the same seed gives the same interval,
            whatever ``n_jobs`` is.
        resampling : {"multinomial", "poisson"}
            ``multinomial``: the classic bootstrap, each resample draws ``n``
            decisions with replacement. ``poisson``: each decision gets an
            independent Poisson(1) count (Hanley & MacGibbon 2006; Chamandy
            et al. 2012), an asymptotically equivalent approximation that
            is several times faster on large logs (see ``bench/ope.py``);
            means are then taken over the resample's own size.
        weight_bound : float, optional
            A priori bound on the importance weight, for ``bernstein``.
        n_jobs : int, optional
            Threads for the bootstrap (default ``min(4, os.cpu_count())``).

        Returns
        -------
        Interval
        """
        alpha = _check_alpha_method(alpha, method)
        terms = self._terms(data)
        est = terms.value()
        if method == "bootstrap":
            _check_bootstrap(n_bootstrap, resampling, n_jobs)
            reps = bootstrap_replicates(terms, n_bootstrap, seed, resampling, n_jobs)
            ok = reps[np.isfinite(reps)]
            notes: tuple[str, ...] = ()
            if ok.size < reps.size:
                notes = (f"{reps.size - ok.size} resample(s) had no weight and were dropped",)
            low, high = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0])
            return Interval(est, float(low), float(high), method, alpha, notes)
        if method == "gaussian":
            half = _norm_quantile(1.0 - alpha / 2.0) * _influence_se(terms, est)
            return Interval(est, est - half, est + half, method, alpha)
        return self._bernstein(data, terms, est, alpha, weight_bound)

    def estimate_difference(
        self,
        data: LoggedData,
        baseline: LoggedData | None = None,
        alpha: float = 0.05,
        method: IntervalMethod = "bootstrap",
        n_bootstrap: int = 1000,
        seed: int = 0,
        *,
        resampling: Resampling = "multinomial",
        weight_bound: float | None = None,
        n_jobs: int | None = None,
    ) -> Interval:
        """Paired estimate and ``1 - alpha`` interval of ``V(data) - V(baseline)``.

        Both policies are evaluated by this estimator on the *same* logged
        decisions (``data`` and ``baseline`` differ only in ``action_dist``), so
        the interval is on the difference itself, not on two separate values:

        * ``bootstrap``: both estimates are recomputed on the same resamples
          (one count matrix) and the percentile interval is taken of their
          difference;
        * ``gaussian``: the per-decision influence terms are subtracted,
          ``psi_i = psi_i(data) - psi_i(baseline)``, and the CLT interval is
          ``D +- z sqrt(var(psi) / n)``;
        * ``bernstein``: an empirical-Bernstein bound on the mean of the
          differences of the plain terms (paired), plus separate bounds on the
          numerator and denominator of each self-normalised part, with a union
          bound over all of them (valid in finite samples, conservative).

        When both policies give identical per-decision terms the difference is
        exactly 0 on every resample and the interval is ``[0, 0]``.

        Parameters
        ----------
        data : LoggedData
            The challenger's probabilities in ``action_dist``.
        baseline : LoggedData, optional
            The same decisions with the baseline's probabilities. ``None``: the
            logging policy's observed value ``mean(reward)``, whose
            per-decision term is ``r_i`` (its weight is 1 by definition).
        alpha, method, n_bootstrap, seed, resampling, weight_bound, n_jobs
            As in :meth:`estimate_interval`; ``weight_bound`` bounds the
            weights of both policies.

        Returns
        -------
        Interval
            ``estimate`` is the difference ``V(data) - V(baseline)``.

        >>> import numpy as np
        >>> log = dict(offsets=np.array([0, 2, 4]), reward=np.array([1.0, 0.0]),
        ...            pscore=np.array([0.5, 0.5]), action=np.array([0, 1]))
        >>> a = LoggedData(action_dist=np.array([1.0, 0.0, 1.0, 0.0]), **log)
        >>> iv = IPS().estimate_difference(a, a, method="gaussian")
        >>> iv.estimate, iv.low, iv.high
        (0.0, 0.0, 0.0)
        >>> IPS().estimate_difference(a, None, method="gaussian").estimate
        0.5
        """
        alpha = _check_alpha_method(alpha, method)
        if baseline is not None:
            _check_same_log(data, baseline, self.needs_reward_model)
        terms_a = self._terms(data)
        terms_b = self._terms(baseline) if baseline is not None else _Terms(plain=data.reward)
        est = terms_a.value() - terms_b.value()
        if _same_terms(terms_a, terms_b):
            note = "identical per-decision terms: the difference is 0 on every resample"
            return Interval(0.0, 0.0, 0.0, method, alpha, (note,))
        if method == "bootstrap":
            _check_bootstrap(n_bootstrap, resampling, n_jobs)
            reps = bootstrap_replicates_joint(
                [terms_a, terms_b], n_bootstrap, seed, resampling, n_jobs
            )
            diff = reps[:, 0] - reps[:, 1]
            ok = diff[np.isfinite(diff)]
            notes: tuple[str, ...] = ()
            if ok.size < diff.size:
                notes = (f"{diff.size - ok.size} resample(s) had no weight and were dropped",)
            low, high = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0])
            return Interval(est, float(low), float(high), method, alpha, notes)
        if method == "gaussian":
            psi = _influence(terms_a) - _influence(terms_b)
            half = _norm_quantile(1.0 - alpha / 2.0) * _se(psi)
            return Interval(est, est - half, est + half, method, alpha)
        return self._bernstein_difference(
            data, baseline, terms_a, terms_b, est, alpha, weight_bound
        )

    # ------------------------------------------------------------- bernstein
    def _bernstein(
        self,
        data: LoggedData,
        terms: _Terms,
        est: float,
        alpha: float,
        weight_bound: float | None,
    ) -> Interval:
        notes: list[str] = []
        w_max = _weight_max(data, weight_bound, notes)
        rlo, rhi = _reward_range(data, notes)
        b = self._bounds(data, w_max, rlo, rhi)
        parts = (terms.plain is not None) + 2 * (terms.ratio_weight is not None)
        delta = alpha / parts  # union bound over the means being bounded
        low = high = 0.0
        if terms.plain is not None and b.plain is not None:
            lo_p, hi_p = _eb_mean(terms.plain, b.plain[1] - b.plain[0], delta)
            low, high = max(lo_p, b.plain[0]), min(hi_p, b.plain[1])
        if terms.ratio_weight is not None and terms.ratio_target is not None:
            r_lo, r_hi = _eb_ratio(terms, b, delta)
            low += r_lo
            high += r_hi
        return Interval(est, low, high, "bernstein", alpha, tuple(notes))

    def _bernstein_difference(
        self,
        data: LoggedData,
        baseline: LoggedData | None,
        terms_a: _Terms,
        terms_b: _Terms,
        est: float,
        alpha: float,
        weight_bound: float | None,
    ) -> Interval:
        notes: list[str] = []
        rlo, rhi = _reward_range(data, notes)
        ba = self._bounds(data, _weight_max(data, weight_bound, notes), rlo, rhi)
        if baseline is None:
            bb = _Bounds((rlo, rhi), None, 1.0)
        else:
            bb = self._bounds(baseline, _weight_max(baseline, weight_bound, notes), rlo, rhi)
        has_plain = terms_a.plain is not None or terms_b.plain is not None
        ratios = [(t, b, sign) for t, b, sign in ((terms_a, ba, 1.0), (terms_b, bb, -1.0))
                  if t.ratio_weight is not None]  # fmt: skip
        delta = alpha / (int(has_plain) + 2 * len(ratios))
        low = high = 0.0
        if has_plain:
            n = data.n_decisions
            pa = terms_a.plain if terms_a.plain is not None else np.zeros(n)
            pb = terms_b.plain if terms_b.plain is not None else np.zeros(n)
            la, ha = ba.plain if terms_a.plain is not None and ba.plain else (0.0, 0.0)
            lb, hb = bb.plain if terms_b.plain is not None and bb.plain else (0.0, 0.0)
            d_lo, d_hi = la - hb, ha - lb
            lo_p, hi_p = _eb_mean(pa - pb, d_hi - d_lo, delta)
            low, high = max(lo_p, d_lo), min(hi_p, d_hi)
        for terms, b, sign in ratios:
            r_lo, r_hi = _eb_ratio(terms, b, delta)
            if sign > 0:
                low, high = low + r_lo, high + r_hi
            else:
                low, high = low - r_hi, high - r_lo
        return Interval(est, low, high, "bernstein", alpha, tuple(dict.fromkeys(notes)))


def _check_alpha_method(alpha: Any, method: Any) -> float:
    if not (isinstance(alpha, float | int) and 0.0 < float(alpha) < 1.0):
        raise OPEInputError(f"alpha: must be in (0, 1), got {alpha!r}")
    if method not in INTERVAL_METHODS:
        raise OPEInputError(f"method: expected one of {INTERVAL_METHODS}, got {method!r}")
    return float(alpha)


def _check_bootstrap(n_bootstrap: Any, resampling: Any, n_jobs: Any) -> None:
    if not (isinstance(n_bootstrap, int) and n_bootstrap >= 10):
        raise OPEInputError(f"n_bootstrap: need an integer >= 10, got {n_bootstrap!r}")
    if resampling not in ("multinomial", "poisson"):
        raise OPEInputError(f"resampling: expected 'multinomial' or 'poisson', got {resampling!r}")
    if n_jobs is not None and not (isinstance(n_jobs, int) and n_jobs >= 1):
        raise OPEInputError(f"n_jobs: need an integer >= 1, got {n_jobs!r}")


def _check_same_log(data: LoggedData, baseline: LoggedData, needs_q: bool) -> None:
    """Refuse a baseline that is not the same logged decisions as ``data``."""
    fields = ["offsets", "reward", "pscore", "action"]
    if needs_q:
        fields.append("estimated_rewards")
    for name in fields:
        a, b = getattr(data, name), getattr(baseline, name)
        if a is None or b is None:
            if a is not b:
                raise OPEInputError(f"baseline: {name} is set on one side only")
            continue
        if a.shape != b.shape or not np.array_equal(a, b):
            raise OPEInputError(
                f"baseline: not the same logged decisions as data ({name} differ); a paired "
                "difference needs both policies evaluated on one log"
            )


def _same_terms(a: _Terms, b: _Terms) -> bool:
    def eq(x: FloatArray | None, y: FloatArray | None) -> bool:
        return (x is None and y is None) or (
            x is not None and y is not None and np.array_equal(x, y)
        )

    return (
        eq(a.plain, b.plain)
        and eq(a.ratio_weight, b.ratio_weight)
        and eq(a.ratio_target, b.ratio_target)
    )


def _weight_max(data: LoggedData, weight_bound: float | None, notes: list[str]) -> float:
    """A priori bound on the importance weight of ``data``'s target policy."""
    if weight_bound is not None:
        if not (math.isfinite(weight_bound) and weight_bound > 0):
            raise OPEInputError(f"weight_bound: must be positive, got {weight_bound!r}")
        if weight_bound < float(np.max(data.importance_weights)):
            raise OPEInputError(
                f"weight_bound: {float(weight_bound)} is below the largest observed weight "
                f"{float(np.max(data.importance_weights))}"
            )
        return float(weight_bound)
    if data.pscore_all is not None:
        ok = data.pscore_all > 0
        return float(np.max(data.action_dist[ok] / data.pscore_all[ok]))
    notes.append("weight bound taken from the observed weights (no pscore_all)")
    return float(np.max(data.importance_weights))


def _reward_range(data: LoggedData, notes: list[str]) -> tuple[float, float]:
    if data.reward_range is not None:
        return data.reward_range
    notes.append("reward range taken from the observed rewards (no reward_range)")
    return float(np.min(data.reward)), float(np.max(data.reward))


def _eb_ratio(terms: _Terms, b: _Bounds, delta: float) -> tuple[float, float]:
    """Bounds on ``sum(c y) / sum(c)`` from separate empirical-Bernstein bounds on the
    means of ``c (y - ylo)`` and ``c`` (each at ``delta``), clipped to the target range."""
    assert b.target is not None and terms.ratio_weight is not None
    assert terms.ratio_target is not None
    ylo, yhi = b.target
    c = terms.ratio_weight
    z = c * (terms.ratio_target - ylo)
    lz, uz = _eb_mean(z, b.weight_max * (yhi - ylo), delta)
    lc, uc = _eb_mean(c, b.weight_max, delta)
    lz, lc = max(lz, 0.0), max(lc, 0.0)
    r_lo = ylo + (lz / uc if uc > 0 else 0.0)
    r_hi = ylo + (uz / lc if lc > 0 else math.inf)
    return max(r_lo, ylo), min(r_hi, yhi)


def _eb_mean(x: FloatArray, value_range: float, delta: float) -> tuple[float, float]:
    """Two-sided empirical-Bernstein interval for the mean of i.i.d. ``x``.

    Each side holds with probability ``1 - delta / 2`` when ``x`` lies in an
    interval of length ``value_range`` (Maurer & Pontil 2009, Thm. 4):
    ``sqrt(2 V log(4/delta) / n) + 7 R log(4/delta) / (3 (n - 1))``.
    """
    n = x.shape[0]
    if n < 2:
        return -math.inf, math.inf
    log_term = math.log(4.0 / delta)
    var = float(np.var(x, ddof=1))
    half = math.sqrt(2.0 * var * log_term / n) + 7.0 * value_range * log_term / (3.0 * (n - 1))
    m = float(np.mean(x))
    return m - half, m + half


def _influence(terms: _Terms) -> FloatArray:
    """Per-decision influence terms, shape (n,) (delta method for the ratio part).

    ``psi_i = a_i - mean(a) + c_i (y_i - R) / mean(c)``; their mean is 0 and
    ``std(psi) / sqrt(n)`` is the estimate's standard error.
    """
    parts = []
    if terms.plain is not None:
        parts.append(terms.plain - np.mean(terms.plain))
    if terms.ratio_weight is not None and terms.ratio_target is not None:
        c = terms.ratio_weight
        ratio = float(np.dot(c, terms.ratio_target) / np.sum(c))
        parts.append(c * (terms.ratio_target - ratio) / np.mean(c))
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def _se(psi: FloatArray) -> float:
    n = psi.shape[0]
    if n < 2:
        return math.inf
    return float(np.std(psi, ddof=1) / math.sqrt(n))


def _influence_se(terms: _Terms, est: float) -> float:
    """Standard error from per-decision influence terms (delta method for ratios)."""
    return _se(_influence(terms))


def _term_matrix(terms: _Terms) -> np.ndarray:
    cols = []
    if terms.plain is not None:
        cols.append(terms.plain)
    if terms.ratio_weight is not None and terms.ratio_target is not None:
        cols.append(terms.ratio_weight * terms.ratio_target)
        cols.append(terms.ratio_weight)
    return np.ascontiguousarray(np.column_stack(cols))


def _norm_quantile(q: float) -> float:
    """The standard normal's ``q`` quantile (scipy.stats is imported on first use:
    importing it costs every process that imports :mod:`nba.ope`, the service's
    among them, over a second of CPU)."""
    from scipy import stats

    return float(stats.norm.ppf(q))


@functools.cache
def _poisson_table() -> np.ndarray:
    """Map a uniform 16-bit integer to a Poisson(1) count (P quantised to 2^-16);
    built on first use."""
    from scipy import stats

    cdf = stats.poisson.cdf(np.arange(16), 1.0)
    cuts = np.round(cdf * 65536.0)
    return np.searchsorted(cuts, np.arange(65536), side="right").astype(np.uint8)


def _counts(rng: np.random.Generator, rows: int, n: int, resampling: str) -> np.ndarray:
    """Next ``rows`` resamples' counts from ``rng``, shape (rows, n), float64.

    Rows are drawn one after the other from the stream, so drawing 2 x 8 rows
    gives the same counts as drawing 16 at once.
    """
    if resampling == "poisson":
        words = (n + 3) // 4  # 64-bit words per row, four 16-bit draws each
        raw = rng.bit_generator.random_raw(rows * words)
        assert isinstance(raw, np.ndarray)
        u16 = raw.view(np.uint16).reshape(rows, 4 * words)[:, :n]
        return np.take(_poisson_table(), u16).astype(np.float64)
    # multinomial: n uniform draws per row, counted per decision (row by row, so
    # the scatter target stays cache-sized; same stream as one (rows, n) draw)
    out = np.empty((rows, n))
    pos = np.empty(n)
    for row in range(rows):
        rng.random(out=pos)
        pos *= n
        out[row] = np.bincount(pos.astype(np.intp), minlength=n)
    return out


def bootstrap_replicates(
    terms: _Terms,
    n_bootstrap: int,
    seed: int,
    resampling: str = "multinomial",
    n_jobs: int | None = None,
) -> np.ndarray:
    """Bootstrap replicates of ``V = mean(a) + sum(c y) / sum(c)``.

    Resamples come in blocks of ``_BLOCK``; block ``j`` draws from its own
    generator (child ``j`` of ``SeedSequence(seed)``), and inside a block rows
    are generated in chunks of at most ``_CHUNK_CELLS`` counts, in order. So
    the resampled counts depend on ``seed`` only, not on ``n_jobs`` or the
    chunk size. Each chunk is a (rows, n) count matrix multiplied with the
    (n, k) term matrix in BLAS, which may sum in another order for another
    chunk shape or processor: replicates then differ in the last few bits
    (relative 1e-12 or less), never more.

    Returns
    -------
    ndarray of float64, shape (n_bootstrap,)
        ``nan`` where a resample has ``sum(c) == 0`` (or is empty).
    """
    return bootstrap_replicates_joint([terms], n_bootstrap, seed, resampling, n_jobs)[:, 0]


def bootstrap_replicates_joint(
    terms: Sequence[_Terms],
    n_bootstrap: int,
    seed: int,
    resampling: str = "multinomial",
    n_jobs: int | None = None,
) -> np.ndarray:
    """Bootstrap replicates of several estimators on the *same* resamples.

    Every entry of ``terms`` is one estimator's per-decision terms on the same
    ``n`` decisions; each resample's counts are drawn once and applied to all
    of them, so column differences are paired bootstrap replicates of the
    difference. Seeding as in :func:`bootstrap_replicates` (whose result is
    the single-column case).

    Returns
    -------
    ndarray of float64, shape (n_bootstrap, len(terms))
    """
    mats = [_term_matrix(t) for t in terms]
    n = mats[0].shape[0]
    if any(m.shape[0] != n for m in mats):
        raise OPEInputError("paired bootstrap: the estimators' terms cover different decisions")
    mat = np.ascontiguousarray(np.hstack(mats))
    layout = []  # (first column, has plain, has ratio) per estimator
    col = 0
    for t, m in zip(terms, mats, strict=True):
        layout.append((col, t.plain is not None, t.ratio_weight is not None))
        col += m.shape[1]
    rows_per_chunk = max(1, min(_BLOCK, _CHUNK_CELLS // max(n, 1)))
    n_blocks = -(-n_bootstrap // _BLOCK)
    children = np.random.SeedSequence(seed).spawn(n_blocks)

    def replicate(cnt: np.ndarray) -> np.ndarray:
        sums = cnt @ mat  # (rows, k)
        out = np.zeros((cnt.shape[0], len(layout)))
        size = cnt.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            for j, (first, has_plain, has_ratio) in enumerate(layout):
                c = first
                if has_plain:
                    out[:, j] += np.where(size > 0, sums[:, c] / size, np.nan)
                    c += 1
                if has_ratio:
                    den = sums[:, c + 1]
                    out[:, j] += np.where(den > 0, sums[:, c] / den, np.nan)
        return out

    def run(j: int) -> np.ndarray:
        rng = np.random.Generator(np.random.SFC64(children[j]))
        todo = min(_BLOCK, n_bootstrap - j * _BLOCK)
        parts = []
        while todo > 0:
            rows = min(rows_per_chunk, todo)
            parts.append(replicate(_counts(rng, rows, n, resampling)))
            todo -= rows
        return np.concatenate(parts)

    workers = n_jobs if n_jobs is not None else min(4, os.cpu_count() or 1)
    if n_jobs is None and n < 20_000:
        workers = 1  # threads cost more than they save on small logs
    if workers <= 1 or n_blocks == 1:
        blocks = [run(j) for j in range(n_blocks)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            blocks = list(pool.map(run, range(n_blocks)))
    return np.concatenate(blocks)


# ------------------------------------------------------------------ estimators
def _dm_terms(data: LoggedData, q: FloatArray) -> FloatArray:
    return segment_sum(data.action_dist * q, data.offsets)


def _q_range(q: FloatArray) -> tuple[float, float]:
    return float(np.min(q)), float(np.max(q))


class IPS(BaseOffPolicyEstimator):
    r"""Inverse propensity scoring.

    ``V = (1/n) sum_i w_i r_i`` with ``w_i = pi(a_i|x_i) / pscore_i``.
    Unbiased when the logging policy covers the target's support and the
    propensities are right.
    """

    name = "ips"

    def _terms(self, data: LoggedData) -> _Terms:
        return _Terms(plain=data.importance_weights * data.reward)

    def _bounds(self, data: LoggedData, weight_max: float, rlo: float, rhi: float) -> _Bounds:
        return _Bounds((weight_max * min(rlo, 0.0), weight_max * max(rhi, 0.0)), None, weight_max)


class SNIPS(BaseOffPolicyEstimator):
    r"""Self-normalised IPS.

    ``V = sum_i w_i r_i / sum_i w_i``. Slightly biased, always inside the
    range of observed rewards, much lower variance than IPS with heavy weights.
    """

    name = "snips"

    def _terms(self, data: LoggedData) -> _Terms:
        return _Terms(None, data.importance_weights, data.reward)

    def _bounds(self, data: LoggedData, weight_max: float, rlo: float, rhi: float) -> _Bounds:
        return _Bounds(None, (rlo, rhi), weight_max)


class DM(BaseOffPolicyEstimator):
    r"""Direct method.

    ``V = (1/n) sum_i sum_a pi(a|x_i) q(x_i, a)`` with ``q = estimated_rewards``.
    Its intervals cover only the sampling of contexts for a fixed reward model;
    the model's bias is not in them.
    """

    name = "dm"
    needs_reward_model = True

    def _terms(self, data: LoggedData) -> _Terms:
        q = data.require_estimated_rewards(self.name)
        return _Terms(plain=_dm_terms(data, q))

    def _bounds(self, data: LoggedData, weight_max: float, rlo: float, rhi: float) -> _Bounds:
        q = data.require_estimated_rewards(self.name)
        return _Bounds(_q_range(q), None, weight_max)


class DR(BaseOffPolicyEstimator):
    r"""Doubly robust.

    ``V = (1/n) sum_i [ sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]``.
    Unbiased if either the propensities or the reward model are right.
    """

    name = "dr"
    needs_reward_model = True

    def _correction_weights(self, data: LoggedData) -> FloatArray:
        return data.importance_weights

    def _weight_cap(self, weight_max: float) -> float:
        return weight_max

    def _terms(self, data: LoggedData) -> _Terms:
        q = data.require_estimated_rewards(self.name)
        resid = data.reward - q[data.chosen_flat]
        return _Terms(plain=_dm_terms(data, q) + self._correction_weights(data) * resid)

    def _bounds(self, data: LoggedData, weight_max: float, rlo: float, rhi: float) -> _Bounds:
        q = data.require_estimated_rewards(self.name)
        qlo, qhi = _q_range(q)
        w = self._weight_cap(weight_max)
        return _Bounds(
            (qlo + w * min(0.0, rlo - qhi), qhi + w * max(0.0, rhi - qlo)), None, weight_max
        )


class SNDR(BaseOffPolicyEstimator):
    r"""Self-normalised doubly robust.

    ``V = (1/n) sum_i sum_a pi(a|x_i) q(x_i, a)
    + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``.
    """

    name = "sndr"
    needs_reward_model = True

    def _terms(self, data: LoggedData) -> _Terms:
        q = data.require_estimated_rewards(self.name)
        resid = data.reward - q[data.chosen_flat]
        return _Terms(_dm_terms(data, q), data.importance_weights, resid)

    def _bounds(self, data: LoggedData, weight_max: float, rlo: float, rhi: float) -> _Bounds:
        q = data.require_estimated_rewards(self.name)
        qlo, qhi = _q_range(q)
        return _Bounds((qlo, qhi), (rlo - qhi, rhi - qlo), weight_max)


class SwitchDR(DR):
    r"""SWITCH doubly robust (Wang, Agarwal & Dudik 2017, as in Open Bandit Pipeline).

    ``V = (1/n) sum_i [ sum_a pi(a|x_i) q(x_i, a)
    + 1{w_i <= threshold} w_i (r_i - q(x_i, a_i)) ]``.
    ``threshold = inf`` is DR; ``threshold = 0`` is DM.

    Parameters
    ----------
    threshold : float
        Largest importance weight whose correction is kept; >= 0.
    """

    name = "switch_dr"

    def __init__(self, threshold: float = 50.0) -> None:
        if not (isinstance(threshold, float | int) and threshold >= 0):
            raise OPEInputError(f"threshold: must be a number >= 0, got {threshold!r}")
        self.threshold = float(threshold)

    @property
    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def _correction_weights(self, data: LoggedData) -> FloatArray:
        w = data.importance_weights
        return np.where(w <= self.threshold, w, 0.0)

    def _weight_cap(self, weight_max: float) -> float:
        return min(weight_max, self.threshold)


class ClippedDR(DR):
    r"""Doubly robust with clipped importance weights.

    ``V = (1/n) sum_i [ sum_a pi(a|x_i) q(x_i, a) + min(w_i, clip) (r_i - q(x_i, a_i)) ]``.

    Parameters
    ----------
    clip : float
        Weight cap; > 0.
    """

    name = "clipped_dr"

    def __init__(self, clip: float = 50.0) -> None:
        if not (isinstance(clip, float | int) and clip > 0):
            raise OPEInputError(f"clip: must be a number > 0, got {clip!r}")
        self.clip = float(clip)

    @property
    def params(self) -> dict[str, Any]:
        return {"clip": self.clip}

    def _correction_weights(self, data: LoggedData) -> FloatArray:
        return np.minimum(data.importance_weights, self.clip)

    def _weight_cap(self, weight_max: float) -> float:
        return min(weight_max, self.clip)


ESTIMATORS: dict[str, type[BaseOffPolicyEstimator]] = {
    cls.name: cls for cls in (IPS, SNIPS, DM, DR, SNDR, SwitchDR, ClippedDR)
}


def make_estimator(name: str, **params: Any) -> BaseOffPolicyEstimator:
    """Build an estimator by its ``name`` (``ips``, ``snips``, ``dm``, ``dr``, ...).

    >>> make_estimator("switch_dr", threshold=10).params
    {'threshold': 10.0}
    """
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        raise OPEInputError(
            f"estimator: unknown name {name!r}; known: {', '.join(ESTIMATORS)}"
        ) from None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind in kinds and p.name != "self"
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise OPEInputError(
            f"estimator {name!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"accepts: {', '.join(accepted) or 'none'}"
        )
    return cls(**params)
