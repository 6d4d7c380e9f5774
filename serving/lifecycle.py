"""Model lifecycle: load by MLflow alias or path, canary, atomic swap, follow the alias.

:class:`ModelManager` holds the model serving now as one immutable
:class:`ServedModel`; replacing that reference is the swap, so a request sees
either the old model or the new one, never a mix. A candidate is loaded
(``training.registry.load_policy``), then scored on canary requests built from
the catalog (one synthetic HCP per market, every approved action); a candidate
that fails to load or to score is refused, logged, counted, and the old model
keeps serving.

With no trained model at the configured URI the service still starts and serves
the uniform baseline, and says so in ``note`` and in ``model_version``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from nba.catalog import Catalog
from nba.context import DecisionContext
from nba.domain import ADOPTION_STAGES, HCPProfile
from nba.policies.base import Policy, check_probabilities

log = logging.getLogger("nba.serving.model")

BASELINE_POLICY = "uniform"

PolicyLoader = Callable[[str], Policy]


@dataclass(frozen=True)
class ServedModel:
    """The model serving now (replaced as a whole on a swap)."""

    policy: Policy
    version: str
    source: str
    loaded_at: datetime
    is_baseline: bool
    note: str = ""


@dataclass(frozen=True)
class SwapResult:
    """What a load attempt did."""

    swapped: bool
    version: str
    message: str


class ModelRefused(Exception):
    """A candidate model failed to load or to score the canary requests."""


def default_loader(uri: str, tracking_uri: str | None = None) -> Policy:
    """Load a policy through the MLflow registry loader of the training layer
    (``training.registry.load_policy``); without it, a local path is loaded as a
    saved VW policy (predict-only)."""
    if not uri.startswith(("models:/", "runs:/")) and not Path(uri).exists():
        raise ModelRefused(f"no model at {uri}")
    try:
        from training.registry import load_policy
    except ModuleNotFoundError as exc:
        if exc.name not in ("training.registry", "training"):
            raise
        if uri.startswith("models:/"):
            raise ModelRefused(
                "the MLflow registry loader (training.registry) is missing"
            ) from None
        from nba.policies.vw import VWPolicy

        return VWPolicy.load(uri, predict_only=True)
    return load_policy(uri, tracking_uri=tracking_uri)


def version_of(policy: Policy) -> str:
    """The version decisions log: the policy's own, made unique by the model digest
    when it is only the policy's generic name."""
    version = str(policy.model_version)
    digest = getattr(policy, "model_digest", None)
    if version == policy.name and callable(digest):
        version = f"{version}:{digest()}"
    return version


def baseline_policy(seed: int) -> Policy:
    from nba.policies.registry import create

    return create(BASELINE_POLICY, seed=seed)


def canary_contexts(catalog: Catalog, n: int, day: date) -> list[tuple[DecisionContext, list]]:
    """``n`` synthetic decisions covering every market and channel of the catalog."""
    out: list[tuple[DecisionContext, list]] = []
    markets = catalog.markets
    for i in range(n):
        market = markets[i % len(markets)]
        hcp = HCPProfile(
            hcp_id=f"canary-{i}",
            specialty="cardiology",
            decile=1 + i % 10,
            market=market,
            adoption_stage=ADOPTION_STAGES[i % len(ADOPTION_STAGES)],
            consents=frozenset(catalog.channels),
            digital_affinity=(i % 5) / 4,
        )
        actions = list(catalog.eligible_actions(market, day))
        if actions:
            out.append(
                (DecisionContext(hcp=hcp, day=day, request={"requester": "canary"}), actions)
            )
    return out


def _fingerprint(uri: str, tracking_uri: str | None) -> str | None:
    """Something that changes when the model behind ``uri`` changes (None: unknown)."""
    if uri.startswith("models:/"):
        if "@" not in uri:
            return uri  # a fixed version never changes
        from training.registry import resolve_version

        name, version = resolve_version(uri, tracking_uri)
        return f"{name}/{version}"
    p = Path(uri)
    if not p.exists():
        return None
    st = max((q.stat().st_mtime_ns for q in [p, *p.rglob("*")]), default=0)
    return f"{p}:{st}"


class ModelManager:
    """Holds the serving model; loads, canaries and swaps candidates.

    Parameters
    ----------
    uri : str
        ``models:/name@alias``, ``models:/name/version`` or a local path.
    catalog : Catalog
        Used to build canary requests.
    seed : int
        Sampling seed given to the baseline policy.
    canary_requests : int
    tracking_uri : str or None
    loader : callable, optional
        ``uri -> Policy``; default :func:`default_loader`.
    on_swap : callable, optional
        Called with ``(result_label, version)`` after each attempt (metrics).
    """

    def __init__(
        self,
        uri: str,
        catalog: Catalog,
        seed: int = 0,
        canary_requests: int = 8,
        tracking_uri: str | None = None,
        loader: PolicyLoader | None = None,
        on_swap: Callable[[str, str], None] | None = None,
    ) -> None:
        self.uri = uri
        self.catalog = catalog
        self.seed = seed
        self.canary_requests = canary_requests
        self.tracking_uri = tracking_uri
        self.loader: PolicyLoader = loader or (lambda u: default_loader(u, tracking_uri))
        self.on_swap = on_swap
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self._current = self._baseline(f"not loaded yet from {uri}")

    # ----------------------------------------------------------- the model
    @property
    def current(self) -> ServedModel:
        return self._current

    def _baseline(self, why: str) -> ServedModel:
        policy = baseline_policy(self.seed)
        return ServedModel(
            policy=policy,
            version=f"baseline:{policy.name}",
            source="builtin",
            loaded_at=datetime.now(UTC),
            is_baseline=True,
            note=f"no trained model serving ({why}); decisions come from the {policy.name} "
            "baseline",
        )

    def canary(self, policy: Policy) -> None:
        """Score the canary requests; raise :class:`ModelRefused` on any failure."""
        day = datetime.now(UTC).date()
        cases = canary_contexts(self.catalog, self.canary_requests, day)
        if not cases:
            raise ModelRefused("no canary request could be built from the catalog")
        for i, (ctx, actions) in enumerate(cases):
            try:
                p = policy.probabilities(ctx, actions)
                check_probabilities(p, len(actions), policy.name)
                policy.decide(ctx, actions, event_id=f"canary-{i:04d}")
            except Exception as exc:  # any failure refuses the candidate
                raise ModelRefused(
                    f"canary request {i} failed: {type(exc).__name__}: {exc}"
                ) from exc

    # ------------------------------------------------------------- loading
    def load(self, uri: str | None = None) -> SwapResult:
        """Load ``uri`` (default: the configured one), canary it, swap it in."""
        target = uri or self.uri
        with self._lock:
            try:
                fp = _fingerprint(target, self.tracking_uri)
            except Exception as exc:
                fp = None
                log.info("cannot resolve %s: %s", target, exc)
            try:
                policy = self.loader(target)
            except Exception as exc:
                return self._refused(target, f"failed to load: {type(exc).__name__}: {exc}")
            try:
                self.canary(policy)
            except ModelRefused as exc:
                return self._refused(target, str(exc))
            new = ServedModel(
                policy=policy,
                version=version_of(policy),
                source=target,
                loaded_at=datetime.now(UTC),
                is_baseline=False,
            )
            old = self._current
            self._current = new  # the swap: one reference assignment
            self._fingerprint = fp
            if uri is not None:
                self.uri = uri
        log.info("model %s from %s now serving (was %s)", new.version, target, old.version)
        if self.on_swap:
            self.on_swap("swapped", new.version)
        return SwapResult(True, new.version, f"model {new.version} from {target} is serving")

    def _refused(self, target: str, why: str) -> SwapResult:
        cur = self._current
        log.warning("model from %s refused: %s; %s keeps serving", target, why, cur.version)
        if self.on_swap:
            self.on_swap("refused", cur.version)
        return SwapResult(False, cur.version, f"model from {target} refused: {why}")

    def start(self) -> SwapResult:
        """First load at start-up: the configured model, or the baseline with a note."""
        result = self.load()
        if not result.swapped:
            self._current = self._baseline(result.message)
            if self.on_swap:
                self.on_swap("baseline", self._current.version)
        return result

    def poll(self) -> SwapResult | None:
        """Follow the alias: load when what it points to changed; None when unchanged."""
        try:
            fp = _fingerprint(self.uri, self.tracking_uri)
        except Exception as exc:
            log.debug("alias check of %s failed: %s", self.uri, exc)
            return None
        if fp is None or fp == self._fingerprint:
            return None
        result = self.load()
        if not result.swapped:
            # do not retry the same broken version on every poll
            self._fingerprint = fp
        return result
