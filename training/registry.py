"""Load a trained policy from the MLflow registry or from a path.

``load_policy("models:/nba@champion")``, ``load_policy("models:/nba/3")``,
``load_policy("runs:/<id>/model")`` or ``load_policy("/path/to/policy")`` (a
directory written by :meth:`nba.policies.vw.VWPolicy.save`, or a downloaded
MLflow model directory) return a predict-only
:class:`nba.policies.vw.VWPolicy` whose ``model_version`` says where it came
from (``nba/3`` for a registered version).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from nba.paths import default_tracking_uri
from nba.policies.base import PolicyError
from nba.policies.vw import META_FILE, VWPolicy

#: MLflow error codes meaning "there is no such model, version or alias"
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})

_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def resolve_version(uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """``(name, version)`` of a ``models:/name@alias`` or ``models:/name/N`` URI."""
    m = _MODELS.match(uri)
    if not m:
        raise PolicyError(f"{uri!r} is not 'models:/<name>@<alias>' or 'models:/<name>/<version>'")
    _refuse_missing_store(m.group(0), tracking_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import mlflow_utils

    uri = mlflow_utils.configure(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = m.group("name")
    try:
        if m.group("alias"):
            mv = client.get_model_version_by_alias(name, m.group("alias"))
        else:
            mv = client.get_model_version(name, m.group("version"))
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            raise PolicyError(f"{uri}: no such registered model version ({exc.message})") from exc
        # e.g. a tracking server that is down: not a statement about the model
        raise PolicyError(
            f"{uri}: the model registry did not answer for {m.group(0)} ({exc.message})"
        ) from exc
    return name, str(mv.version)


def _refuse_missing_store(model_uri: str, tracking_uri: str | None) -> None:
    """Raise :class:`PolicyError` when the tracking store (``tracking_uri``, default
    :func:`nba.paths.default_tracking_uri`) is an SQLite file that does not exist:
    looking a model up must not create (and migrate) an empty store. Checked before
    MLflow is imported, so that a service started before any training (which then
    serves its baseline) does not pay MLflow's import for nothing."""
    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise PolicyError(f"{uri}: no MLflow tracking store there yet, so no {model_uri}")


def _policy_dir(root: Path) -> Path:
    from training.pyfunc_model import POLICY_ARTIFACT

    for cand in (root, root / "artifacts" / POLICY_ARTIFACT, root / POLICY_ARTIFACT):
        if (cand / META_FILE).is_file():
            return cand
    raise PolicyError(f"{root}: neither a saved VW policy nor an nba MLflow model directory")


def load_policy(uri_or_path: str | Path, tracking_uri: str | None = None) -> VWPolicy:
    """A predict-only policy from a registry URI, a run URI or a local path."""
    s = str(uri_or_path)
    if s.startswith("models:/") or s.startswith("runs:/"):
        if s.startswith("models:/") and _MODELS.match(s):
            _refuse_missing_store(s, tracking_uri)
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        from training import mlflow_utils

        uri = mlflow_utils.configure(tracking_uri)
        if s.startswith("models:/"):
            name, version = resolve_version(s, uri)
            source, label = f"models:/{name}/{version}", f"{name}/{version}"
        else:
            source, label = s, s
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=tmp, tracking_uri=uri
                )
            except MlflowException as exc:
                raise PolicyError(f"{s}: cannot download the model: {exc.message}") from exc
            return VWPolicy.load(_policy_dir(Path(local)), predict_only=True, model_version=label)
    path = Path(s)
    if not path.exists():
        raise PolicyError(f"{path}: no such model path")
    return VWPolicy.load(_policy_dir(path), predict_only=True)


def model_version(uri_or_path: str | Path, tracking_uri: str | None = None) -> str:
    """The version string a policy loaded from ``uri_or_path`` would log."""
    s = str(uri_or_path)
    if s.startswith("models:/"):
        name, version = resolve_version(s, tracking_uri)
        return f"{name}/{version}"
    return load_policy(s, tracking_uri).model_version
