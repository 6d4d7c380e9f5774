"""MLflow tracking and registry for training runs (docs/DESIGN.md, "MLflow").

- One tracking store: :func:`nba.paths.default_tracking_uri` (an SQLite file in
  the data directory) unless ``MLFLOW_TRACKING_URI`` says otherwise, e.g. an
  MLflow tracking server ``http://host:port`` with a PostgreSQL backend store
  (docs/deploy.md). :func:`check_tracking` fails fast, naming the URI, when such
  a server cannot be reached, before any work is done.
- Nothing is sent anywhere: importing :mod:`training` switches MLflow's
  telemetry off (``MLFLOW_DISABLE_TELEMETRY`` and ``DO_NOT_TRACK``) before MLflow
  is imported, unless the environment already decided.
- Artifacts of an SQLite store live next to the database (``mlartifacts/``),
  never in the current directory.
- A trained policy is logged as an ``mlflow.pyfunc`` model
  (:class:`training.pyfunc_model.NBAPyfuncModel`), registered as ``nba`` with
  the alias ``challenger``.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
from mlflow import MlflowClient

from nba.paths import default_tracking_uri
from training.pyfunc_model import POLICY_ARTIFACT, NBAPyfuncModel
from training.tracking import TrackingUnavailable as TrackingUnavailable
from training.tracking import check_server

REGISTERED_MODEL = "nba"
CHALLENGER = "challenger"
CHAMPION = "champion"
TRAIN_EXPERIMENT = "train"
MAX_PARAM_LEN = 500


@dataclass(frozen=True)
class LoggedModel:
    """Where a training run went.

    Attributes
    ----------
    run_id : str
    model_uri : str
        ``runs:/<run_id>/model``.
    version : str or None
        Registered version of ``nba`` (None with ``register=False``).
    """

    run_id: str
    model_uri: str
    version: str | None


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (default: the project's store); returns it."""
    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def check_tracking(
    tracking_uri: str | None = None, connect_timeout: float = 10.0, read_timeout: float = 120.0
) -> str:
    """Point MLflow at ``tracking_uri`` (default: the project's store) and, for an
    ``http(s)://`` tracking server, check that it answers as one; returns the URI
    (:func:`training.tracking.check_server`, which the commands call before they
    import MLflow).

    Raises
    ------
    TrackingUnavailable
        The server refuses connections, times out, rejects the credentials, or
        answers something that is not the MLflow REST API.
    """
    return check_server(configure(tracking_uri), connect_timeout, read_timeout)


def _artifact_root(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db = Path(unquote(uri[len("sqlite:///") :]))
        return db.parent / "mlartifacts"
    return None


def experiment_id(name: str, tracking_uri: str | None = None) -> str:
    """Id of experiment ``name``, created (with artifacts beside an SQLite store)
    if it does not exist."""
    uri = configure(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    root = _artifact_root(uri)
    location = None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        location = (root / name.replace("/", "_")).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _clean_params(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in params.items():
        s = "" if v is None else str(v)
        out[str(k)] = s if len(s) <= MAX_PARAM_LEN else s[: MAX_PARAM_LEN - 3] + "..."
    return out


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc model needs (no inference, no network)."""
    out = []
    for dist in ("vowpalwabbit", "numpy", "pandas", "pyarrow", "mlflow"):
        try:
            out.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(dist)
    return out


def log_policy_model(
    policy: Any,
    register: bool = True,
    registered_name: str = REGISTERED_MODEL,
    alias: str | None = CHALLENGER,
) -> LoggedModel:
    """Log ``policy`` (a VWPolicy) as the pyfunc model ``model`` of the active run,
    optionally register it and point ``alias`` at the new version."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_policy_model needs an active MLflow run")
    with tempfile.TemporaryDirectory() as tmp:
        pdir = Path(tmp) / POLICY_ARTIFACT
        policy.save(pdir)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=NBAPyfuncModel(),
            artifacts={POLICY_ARTIFACT: str(pdir)},
            pip_requirements=pip_requirements(),
            registered_model_name=registered_name if register else None,
            metadata={
                "catalog_version": policy.catalog.version,
                "featurizer_hash": policy.featurizer_config.content_hash,
                "vw_args": " ".join(policy.vw_args()),
            },
        )
    version = None
    if register:
        version = str(info.registered_model_version)
        if alias:
            uri = mlflow.get_registry_uri()
            MlflowClient(registry_uri=uri).set_registered_model_alias(
                registered_name, alias, version
            )
    return LoggedModel(run.info.run_id, f"runs:/{run.info.run_id}/model", version)


def log_training_run(
    result: Any,
    register: bool = True,
    experiment: str = TRAIN_EXPERIMENT,
    tracking_uri: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
) -> LoggedModel:
    """Record a :class:`training.train.TrainResult`: params, metrics, the summary,
    the model (pyfunc), and the registry entry with alias ``challenger``."""
    if os.environ.get("MLFLOW_RUN_ID"):
        # launched by ``mlflow run``: record into the run the project created
        configure(tracking_uri)
        ctx = mlflow.start_run()
    else:
        ctx = mlflow.start_run(experiment_id=experiment_id(experiment, tracking_uri))
    with ctx:
        params = dict(result.params)
        params.update(extra_params or {})
        mlflow.log_params(_clean_params(params))
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items()})
        mlflow.log_text(result.summary() + "\n", "summary.txt")
        if result.holdout is not None:
            from nba.ope.checks import warning_tags

            mlflow.set_tags(
                {f"holdout_{k}": v for k, v in warning_tags(result.holdout.warnings).items()}
            )
        mlflow.log_dict(result.join_counts, "join_counts.json")
        for name, path in (artifacts or {}).items():
            mlflow.log_artifact(str(path), artifact_path=name)
        return log_policy_model(result.policy, register=register)
