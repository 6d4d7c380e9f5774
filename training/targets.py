"""Every kind of target policy as ``action_dist`` over a log's eligible sets.

Baselines and external tables are handled by :mod:`nba.ope.targets`; this
module adds registered models (``models:/nba@challenger``, ``models:/nba/3``,
``runs:/<id>/model``) and model directories, loaded with
:func:`training.registry.load_policy` and scored in bulk with
:meth:`nba.policies.vw.VWPolicy.probabilities_table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nba.catalog import Catalog
from nba.domain import ValidationError
from nba.ope.data import FloatArray
from nba.ope.logs import LoggedLog
from nba.ope.targets import TargetError, TargetSpec, parse_target, target_action_dist


@dataclass(frozen=True)
class ResolvedTarget:
    """A target policy ready for evaluation.

    Attributes
    ----------
    spec : TargetSpec
    action_dist : ndarray of float64, shape (m,)
    version : str
        What the policy is (``nba/3`` for a registered version, the baseline
        name, the table path).
    """

    spec: TargetSpec
    action_dist: FloatArray
    version: str


def model_action_dist(
    uri_or_path: str, log: LoggedLog, tracking_uri: str | None = None
) -> tuple[FloatArray, str]:
    """Probabilities of a VW model over the logged eligible sets, and its version."""
    from training.registry import load_policy

    try:
        policy = load_policy(uri_or_path, tracking_uri)
    except ValidationError as exc:
        raise TargetError(f"policy {uri_or_path!r}: {exc}") from exc
    try:
        flat, offsets = policy.probabilities_table(log.table)
    except ValidationError as exc:
        raise TargetError(f"policy {uri_or_path!r}: cannot score the logs: {exc}") from exc
    finally:
        policy.close()
    if not np.array_equal(offsets, log.offsets):
        raise TargetError(f"policy {uri_or_path!r}: scored sets do not match the logged sets")
    return np.asarray(flat, dtype=np.float64), policy.model_version


def resolve_target(
    spec: str | TargetSpec,
    log: LoggedLog,
    catalog: Catalog | None = None,
    tracking_uri: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> ResolvedTarget:
    """``action_dist`` of any target policy spec on ``log``.

    Parameters
    ----------
    spec : str or TargetSpec
        ``uniform``, ``campaign``, ``segment``, ``table:PATH``, ``models:/...``,
        ``runs:/...`` or a model directory.
    log : LoggedLog
    catalog : Catalog, optional
        The log's catalog (baselines).
    tracking_uri : str, optional
        MLflow store for ``models:/`` and ``runs:/`` URIs.
    params : mapping, optional
        Baseline constructor parameters.
    """
    ts = parse_target(spec) if isinstance(spec, str) else spec
    if ts.kind == "model":
        dist, version = model_action_dist(ts.value, log, tracking_uri)
        return ResolvedTarget(ts, dist, version)
    dist = target_action_dist(ts, log, catalog, params)
    return ResolvedTarget(ts, dist, ts.value)
