"""The promotion gate: move ``champion`` to the challenger only when the logs say so.

Both registered versions are evaluated on the same logged decisions with the
same estimator, and the gate is a *paired* test: an interval on the
difference ``challenger - champion`` computed from the same decisions
(:meth:`nba.ope.BaseOffPolicyEstimator.estimate_difference`: the same
bootstrap resamples, or differenced per-decision influence terms). The
challenger is promoted only when the lower bound of that interval exceeds
``min_lift`` (default 0, in reward units). With no champion yet the baseline
is the logging policy's observed value on the same decisions, paired the same
way (its per-decision term is the observed reward). Every decision (promoted
or refused), with both estimates, the difference and its interval, and the
evaluation's warnings, is recorded as an MLflow run in experiment ``promote``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from nba.ope.checks import DEFAULT_MIN_ESS_SHARE, warning_tags
from nba.reward import RewardDefinition
from training.evaluate import Evaluation, EvaluationError, evaluate, make_estimators

PROMOTE_EXPERIMENT = "promote"
GATE_ESTIMATORS: tuple[str, ...] = ("snips", "dr", "sndr", "ips")


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict.

    Attributes
    ----------
    promoted : bool
    reason : str
        One sentence a release manager can read.
    challenger_version : str or None
    champion_version : str or None
        The champion before the decision.
    estimator, interval : str
    alpha : float
    challenger : dict or None
        The challenger's evaluation row (estimate, low, high, diagnostics).
    champion : dict or None
    logged_value : float or None
    baseline : str
        What the challenger was compared with: ``champion`` or ``logging``
        (the logging policy's observed value, when there is no champion).
    difference, difference_low, difference_high : float or None
        Paired estimate of ``challenger - baseline`` on the same decisions and
        its ``1 - alpha`` interval (same estimator and interval kind).
    min_lift : float
        What ``difference_low`` had to exceed (reward units).
    warnings : list of dict
        The evaluation's structured warnings (see :mod:`nba.ope.checks`).
    run_id : str or None
        The MLflow run that records the decision.
    notes : tuple of str
        The evaluation's notes; the first ones state its outcome horizon.
    """

    promoted: bool
    reason: str
    challenger_version: str | None
    champion_version: str | None
    estimator: str
    interval: str
    alpha: float
    challenger: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    logged_value: float | None = None
    baseline: str = "champion"
    difference: float | None = None
    difference_low: float | None = None
    difference_high: float | None = None
    min_lift: float = 0.0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(name: str, alias: str, tracking_uri: str | None) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import mlflow_utils

    client = MlflowClient(tracking_uri=mlflow_utils.configure(tracking_uri))
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def training_last_day(name: str, version: str, tracking_uri: str | None) -> date | None:
    """Last decision day model ``name/version`` learned from, read from the
    training run that logged it (``data_until``, or the day before
    ``holdout_since`` when a holdout was kept); None when the run does not say.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import mlflow_utils

    client = MlflowClient(tracking_uri=mlflow_utils.configure(tracking_uri))
    try:
        run_id = client.get_model_version(name, version).run_id
        params = client.get_run(run_id).data.params if run_id else {}
    except MlflowException:
        return None
    try:
        if params.get("holdout_since"):
            return date.fromisoformat(params["holdout_since"]) - timedelta(days=1)
        if params.get("data_until"):
            return date.fromisoformat(params["data_until"])
    except ValueError:
        return None
    return None


def check_min_lift(min_lift: object) -> float:
    """``min_lift`` as a float, or a one-line error naming it.

    >>> check_min_lift(0.01)
    0.01
    """
    if (
        isinstance(min_lift, bool)
        or not isinstance(min_lift, int | float)
        or not math.isfinite(min_lift)
        or min_lift < 0
    ):
        raise EvaluationError(
            f"--min-lift: must be a finite number >= 0 (reward units), got {min_lift!r}"
        )
    return float(min_lift)


def decide(
    difference: float, low: float, high: float, min_lift: float, baseline: str
) -> tuple[bool, str]:
    """The rule itself: promote iff the paired difference's lower bound exceeds
    ``min_lift``; returns ``(promote?, reason)``.

    >>> decide(0.02, 0.005, 0.035, 0.0, "champion")[0]
    True
    >>> decide(0.0, 0.0, 0.0, 0.0, "champion")[1]
    'challenger - champion = 0.00000 [0.00000, 0.00000]: lower bound 0.00000 does not exceed the minimum lift 0.00000'
    >>> decide(0.02, 0.005, 0.035, 0.01, "logging")[0]
    False
    """  # noqa: E501
    what = (
        "champion"
        if baseline == "champion"
        else "logging policy (observed value on the same decisions; no champion yet)"
    )
    head = f"challenger - {what} = {difference:.5f} [{low:.5f}, {high:.5f}]: lower bound {low:.5f}"
    if low > min_lift:
        return True, f"{head} exceeds the minimum lift {min_lift:.5f}"
    return False, f"{head} does not exceed the minimum lift {min_lift:.5f}"


def promote(
    logs_dir: str | Path,
    reward_def: RewardDefinition,
    estimator: str = "snips",
    alpha: float = 0.05,
    interval: str = "bootstrap",
    since: date | str | None = None,
    until: date | str | None = None,
    n_folds: int = 5,
    fold_by: str = "hcp",
    seed: int = 0,
    n_bootstrap: int = 1000,
    min_lift: float = 0.0,
    min_ess_share: float = DEFAULT_MIN_ESS_SHARE,
    tracking_uri: str | None = None,
    registered_name: str = "nba",
    dry_run: bool = False,
    progress: bool = False,
    as_of: date | datetime | str | None = None,
) -> GateDecision:
    """Evaluate challenger and champion on the same logs and apply the gate.

    Parameters
    ----------
    logs_dir : path
    reward_def : RewardDefinition
    estimator : {"snips", "dr", "sndr", "ips"}
    alpha : float
    interval : {"bootstrap", "gaussian", "bernstein"}
    since, until, n_folds, fold_by, seed, n_bootstrap : see :func:`training.evaluate.evaluate`
    min_lift : float
        The paired difference's lower bound must exceed this (>= 0, reward units).
    min_ess_share : float
        Warn when a policy's effective sample size is below this share of n.
    tracking_uri : str, optional
    registered_name : str
    dry_run : bool
        Decide and record, but do not move the alias.
    progress : bool
    as_of : date, aware datetime or str, optional
        The outcome horizon of the evaluation (see :func:`training.evaluate.evaluate`).

    Returns
    -------
    GateDecision
        ``promoted`` False with the reason when refused (also when there is
        no challenger, or the challenger already is the champion).
    """
    from training import mlflow_utils

    if estimator not in GATE_ESTIMATORS:
        raise EvaluationError(
            f"--estimator {estimator!r}: the gate uses one of {', '.join(GATE_ESTIMATORS)}"
        )
    min_lift = check_min_lift(min_lift)
    chal_v = _version(registered_name, mlflow_utils.CHALLENGER, tracking_uri)
    champ_v = _version(registered_name, mlflow_utils.CHAMPION, tracking_uri)
    base: dict[str, Any] = {
        "estimator": estimator,
        "interval": interval,
        "alpha": float(alpha),
        "min_lift": min_lift,
    }
    if chal_v is None:
        decision = GateDecision(
            False,
            f"no '{mlflow_utils.CHALLENGER}' alias on registered model {registered_name!r}",
            None,
            champ_v,
            **base,
        )
        return _record(decision, None, reward_def, tracking_uri)
    if chal_v == champ_v:
        decision = GateDecision(
            False,
            f"the challenger (version {chal_v}) already is the champion",
            chal_v,
            champ_v,
            **base,
        )
        return _record(decision, None, reward_def, tracking_uri)
    chal_uri = f"models:/{registered_name}/{chal_v}"
    policies = [chal_uri]
    champ_uri = None
    if champ_v is not None:
        champ_uri = f"models:/{registered_name}/{champ_v}"
        policies.append(champ_uri)
    ev = evaluate(
        logs_dir,
        reward_def,
        policies,
        estimators=[estimator],
        intervals=[interval],
        alpha=alpha,
        since=since,
        until=until,
        n_folds=n_folds,
        fold_by=fold_by,
        seed=seed,
        n_bootstrap=n_bootstrap,
        tracking_uri=tracking_uri,
        progress=progress,
        min_ess_share=min_ess_share,
        as_of=as_of,
    )
    chal_row = ev.row(chal_uri, estimator)
    champ_row = None if champ_uri is None else ev.row(champ_uri, estimator)
    # the paired test: both policies on the same decisions, one interval on the difference
    est = make_estimators([estimator])[0]
    diff = est.estimate_difference(
        ev.data[chal_uri],
        None if champ_uri is None else ev.data[champ_uri],
        alpha=float(alpha),
        method=interval,  # type: ignore[arg-type]
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    against = "champion" if champ_uri is not None else "logging"
    ok, reason = decide(diff.estimate, diff.low, diff.high, min_lift, against)
    # An off-policy estimate of a model on the very decisions it learned from
    # is optimistic (it has fitted their noise): such a gate decision is void.
    trained_until = training_last_day(registered_name, chal_v, tracking_uri)
    first_logged = ev.params.get("data_since")
    if trained_until is not None and first_logged:
        first_day = datetime.fromisoformat(str(first_logged).replace("Z", "+00:00")).date()
        if first_day <= trained_until:
            ok = False
            reason = (
                f"refused: the evaluation logs start on {first_day} but challenger version "
                f"{chal_v} was trained on decisions up to {trained_until}; an estimate on its "
                f"own training data is optimistic. Evaluate on later decisions, e.g. "
                f"--since {trained_until + timedelta(days=1)}"
            )
    decision = GateDecision(
        ok,
        reason,
        chal_v,
        champ_v,
        **base,
        challenger=chal_row,
        champion=champ_row,
        logged_value=ev.logged_value,
        baseline=against,
        difference=diff.estimate,
        difference_low=diff.low,
        difference_high=diff.high,
        warnings=[w.to_dict() for w in ev.warnings],
        notes=ev.notes,
    )
    if ok and not dry_run:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=mlflow_utils.configure(tracking_uri)).set_registered_model_alias(
            registered_name, mlflow_utils.CHAMPION, chal_v
        )
    return _record(decision, ev, reward_def, tracking_uri, dry_run=dry_run)


def _record(
    decision: GateDecision,
    ev: Evaluation | None,
    reward_def: RewardDefinition,
    tracking_uri: str | None,
    dry_run: bool = False,
) -> GateDecision:
    import mlflow

    from training import mlflow_utils

    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow_utils.configure(tracking_uri)
        ctx = mlflow.start_run()
    else:
        ctx = mlflow.start_run(
            experiment_id=mlflow_utils.experiment_id(PROMOTE_EXPERIMENT, tracking_uri)
        )
    with ctx as run:
        params: dict[str, Any] = {
            "challenger_version": decision.challenger_version,
            "champion_version_before": decision.champion_version,
            "estimator": decision.estimator,
            "interval": decision.interval,
            "alpha": decision.alpha,
            "min_lift": decision.min_lift,
            "baseline": decision.baseline,
            "reward_definition": reward_def.id,
            "dry_run": dry_run,
        }
        if ev is not None:
            params.update(
                {k: ev.params[k] for k in ("logs_dir", "data_since", "data_until", "seed")}
            )
        mlflow.log_params({k: "" if v is None else str(v)[:500] for k, v in params.items()})
        mlflow.set_tags(
            {
                "decision": "promoted" if decision.promoted else "refused",
                "reason": decision.reason[:5000],
                **warning_tags(decision.warnings),
            }
        )
        metrics: dict[str, float] = {"promoted": float(decision.promoted)}
        if decision.logged_value is not None:
            metrics["logged_value"] = decision.logged_value
        for k in ("difference", "difference_low", "difference_high"):
            v = getattr(decision, k)
            if v is not None:
                metrics[k] = float(v)
        for who, row in (("challenger", decision.challenger), ("champion", decision.champion)):
            if row is None:
                continue
            for k in (
                "estimate",
                "low",
                "high",
                "ess",
                "max_weight",
                "mean_weight",
                "unsupported_share",
                "unlogged_share",
                "truth",
            ):
                v = row.get(k)
                if v is not None:
                    metrics[f"{who}_{k}"] = float(v)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "decision.json"
            blob.write_text(json.dumps(decision.to_dict(), indent=1, default=str))
            mlflow.log_artifact(str(blob))
            if ev is not None:
                for path in ev.write(Path(tmp) / "evaluation").values():
                    mlflow.log_artifact(str(path), artifact_path="evaluation")
        run_id = str(run.info.run_id)
    return GateDecision(**{**decision.to_dict(), "run_id": run_id})


__all__ = ["GateDecision", "check_min_lift", "decide", "promote"]
