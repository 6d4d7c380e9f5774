"""What the data scientist's page reads from MLflow: registered versions and their
aliases, the promotion gate's decisions (experiment ``promote``, recorded by
:func:`training.promote.promote`) and the latest run of each report experiment
with its plots and markdown.

Read-only; MLflow is imported on first use, never at import of the service.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: experiments whose latest run the page shows, with a heading each
REPORT_EXPERIMENTS: tuple[tuple[str, str], ...] = (
    ("evaluate", "Latest evaluation (nba evaluate)"),
    ("experiments/ope_accuracy", "Latest OPE accuracy study"),
    ("experiments/push_vs_pull", "Latest push-vs-pull experiment"),
)
#: artifact kinds the page shows (plots inline, markdown as text)
SHOWN_SUFFIXES = (".png", ".md")
MAX_MARKDOWN = 200_000


@dataclass(frozen=True)
class ModelVersionRow:
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    created: datetime
    status: str


@dataclass(frozen=True)
class GateRow:
    run_id: str
    at: datetime
    decision: str
    reason: str
    challenger_version: str
    champion_version_before: str
    estimator: str
    interval: str
    alpha: str
    min_lift: str
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    dry_run: bool


@dataclass(frozen=True)
class ReportRun:
    experiment: str
    heading: str
    run_id: str
    at: datetime
    params: dict[str, str]
    plots: tuple[str, ...]
    markdown: dict[str, str] = field(default_factory=dict)


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _when(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC)


def model_versions(tracking_uri: str, name: str) -> list[ModelVersionRow]:
    """Every registered version of ``name``, newest first, with its aliases."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        found = client.search_model_versions(f"name='{name}'")
        # search results may leave aliases out: the registered model has them all
        aliases: dict[str, Any] = dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(str(alias))
    rows = [
        ModelVersionRow(
            version=str(v.version),
            aliases=tuple(sorted(by_version.get(str(v.version), []))),
            run_id=v.run_id,
            created=_when(v.creation_timestamp),
            status=str(v.status),
        )
        for v in found
    ]
    return sorted(rows, key=lambda r: int(r.version) if r.version.isdigit() else 0, reverse=True)


def _runs(tracking_uri: str, experiment: str, limit: int) -> list[Any]:
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return list(
        client.search_runs(
            [exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
        )
    )


def gate_decisions(tracking_uri: str, limit: int = 100) -> list[GateRow]:
    """The promotion gate's decisions, newest first."""
    out = []
    for run in _runs(tracking_uri, "promote", limit):
        p, m, t = run.data.params, run.data.metrics, run.data.tags
        out.append(
            GateRow(
                run_id=run.info.run_id,
                at=_when(run.info.start_time),
                decision=t.get("decision", "?"),
                reason=t.get("reason", ""),
                challenger_version=p.get("challenger_version", ""),
                champion_version_before=p.get("champion_version_before", ""),
                estimator=p.get("estimator", ""),
                interval=p.get("interval", ""),
                alpha=p.get("alpha", ""),
                min_lift=p.get("min_lift", ""),
                difference=m.get("difference"),
                difference_low=m.get("difference_low"),
                difference_high=m.get("difference_high"),
                dry_run=p.get("dry_run") == "True",
            )
        )
    return out


def artifact_names(tracking_uri: str, run_id: str) -> list[str]:
    """Paths of the run's artifacts the page may show (plots and markdown), one
    folder deep."""
    client = _client(tracking_uri)
    names: list[str] = []
    for a in client.list_artifacts(run_id):
        if a.is_dir:
            names.extend(x.path for x in client.list_artifacts(run_id, a.path) if not x.is_dir)
        else:
            names.append(a.path)
    return [n for n in names if n.endswith(SHOWN_SUFFIXES)]


def read_artifact(tracking_uri: str, run_id: str, path: str) -> bytes | None:
    """The bytes of one shown artifact, or None when the run has no such one (only
    names :func:`artifact_names` lists are read)."""
    from mlflow.exceptions import MlflowException

    try:
        if path not in artifact_names(tracking_uri, run_id):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = _client(tracking_uri).download_artifacts(run_id, path, tmp)
            return Path(local).read_bytes()
    except MlflowException:
        return None


def latest_reports(tracking_uri: str) -> list[ReportRun]:
    """The newest run of each report experiment that has one."""
    out = []
    for experiment, heading in REPORT_EXPERIMENTS:
        runs = _runs(tracking_uri, experiment, 1)
        if not runs:
            continue
        run = runs[0]
        names = artifact_names(tracking_uri, run.info.run_id)
        markdown = {}
        for n in names:
            if n.endswith(".md"):
                data = read_artifact(tracking_uri, run.info.run_id, n) or b""
                markdown[n] = data[:MAX_MARKDOWN].decode("utf-8", errors="replace")
        out.append(
            ReportRun(
                experiment=experiment,
                heading=heading,
                run_id=run.info.run_id,
                at=_when(run.info.start_time),
                params=dict(run.data.params),
                plots=tuple(n for n in names if n.endswith(".png")),
                markdown=markdown,
            )
        )
    return out
