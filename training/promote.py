"""The promotion gate: move ``champion`` to the challenger only when the logs say so.

Both registered versions are evaluated on the same logs with the same
estimator and interval. The challenger is promoted when the lower bound of
its interval exceeds the champion's point estimate; with no champion yet,
when it exceeds the logging policy's observed mean reward. Every decision
(promoted or refused), with both estimates, intervals and diagnostics, is
recorded as an MLflow run in experiment ``promote``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from nba.reward import RewardDefinition
from training.evaluate import Evaluation, EvaluationError, evaluate

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
    threshold : float or None
        What the challenger's lower bound had to exceed.
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
    threshold: float | None = None
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


def decide(
    challenger: dict[str, Any], champion: dict[str, Any] | None, logged_value: float
) -> tuple[bool, float, str]:
    """The rule itself: ``(promote?, threshold, reason)``.

    >>> decide({"low": 0.12, "estimate": 0.13}, {"estimate": 0.10}, 0.08)[0]
    True
    >>> decide({"low": 0.09, "estimate": 0.13}, {"estimate": 0.10}, 0.08)[2]
    'challenger lower bound 0.09000 does not exceed the champion estimate 0.10000'
    >>> decide({"low": 0.09, "estimate": 0.13}, None, 0.08)[0]
    True
    """
    low = float(challenger["low"])
    if champion is not None:
        thr = float(champion["estimate"])
        what = "the champion estimate"
    else:
        thr = float(logged_value)
        what = "the logging policy's observed value (no champion yet)"
    if low > thr:
        return True, thr, f"challenger lower bound {low:.5f} exceeds {what} {thr:.5f}"
    return False, thr, f"challenger lower bound {low:.5f} does not exceed {what} {thr:.5f}"


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
    chal_v = _version(registered_name, mlflow_utils.CHALLENGER, tracking_uri)
    champ_v = _version(registered_name, mlflow_utils.CHAMPION, tracking_uri)
    base: dict[str, Any] = {"estimator": estimator, "interval": interval, "alpha": float(alpha)}
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
        as_of=as_of,
    )
    chal_row = ev.row(chal_uri, estimator)
    champ_row = None if champ_uri is None else ev.row(champ_uri, estimator)
    ok, thr, reason = decide(chal_row, champ_row, ev.logged_value)
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
        threshold=thr,
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
            }
        )
        metrics: dict[str, float] = {"promoted": float(decision.promoted)}
        if decision.logged_value is not None:
            metrics["logged_value"] = decision.logged_value
        if decision.threshold is not None:
            metrics["threshold"] = decision.threshold
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


__all__ = ["GateDecision", "decide", "promote"]
