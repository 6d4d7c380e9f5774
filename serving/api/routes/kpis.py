"""``GET /v1/kpis``: decisions, outcome and engagement rates, suppressions, value
and cost of a period, by channel, content item, market or journey step
(serving/store_kpis.py);
``GET /v1/kpis/lift``: treated vs holdout next to the off-policy estimate
(serving/store_lift.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from nba.policies.base import Policy
from serving.api.deps import AnyKey, Services, ServicesDep
from serving.engine import NO_CONTACT
from serving.errors import ErrorBody, invalid
from serving.store_kpis import KpiError, kpis, parse_bound
from serving.store_lift import lift

router = APIRouter(prefix="/v1", tags=["kpis"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    422: {"model": ErrorBody, "description": "a bad or unknown query parameter, named"},
}
KPI_PARAMS = frozenset({"since", "until", "by"})


def _no_unknown(request: Request, known: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise invalid(
            f"{unknown[0]}: unknown query parameter (expected: {', '.join(sorted(known))})"
        )


@router.get("/kpis", responses=ERRORS, summary="Business KPIs of a period, by group")
async def get_kpis(
    request: Request,
    svc: ServicesDep,
    who: AnyKey,
    since: str = Query(description="First day (YYYY-MM-DD) or time (ISO 8601 with zone)."),
    until: str = Query(description="Last day, inclusive, or an exclusive time."),
    by: str = Query(default="channel", description="channel | content | market | journey"),
) -> dict[str, Any]:
    """Decisions made in the period, executed decisions, holdout decisions, outcome
    and engagement rates (credited outcomes inside the value definition's window),
    suppressions by rule, outcome value, contact cost and net value, per group and
    in total; ``by=journey`` groups by the journey step each decision recorded
    (``none``: no journey step governed it)."""
    _no_unknown(request, KPI_PARAMS)
    try:
        lo = parse_bound(since, "since", end=False)
        hi = parse_bound(until, "until", end=True)
        report = await run_in_threadpool(kpis, svc.store, lo, hi, by, svc.value)
    except KpiError as exc:
        raise invalid(str(exc)) from None
    return report.as_dict()


def holdout_target(svc: Services) -> Policy | str:
    """What the holdout got: the holdout policy, or ``no_contact`` (the lift's baseline)."""
    engine = svc.engine
    return engine.holdout if engine.holdout == NO_CONTACT else engine.holdout_policy


LIFT_PARAMS = frozenset({"since", "until", "alpha"})


@router.get("/kpis/lift", responses=ERRORS, summary="Holdout lift of a period")
async def get_lift(
    request: Request,
    svc: ServicesDep,
    who: AnyKey,
    since: str = Query(description="First day (YYYY-MM-DD) or time (ISO 8601 with zone)."),
    until: str = Query(description="Last day, inclusive, or an exclusive time."),
    alpha: float = Query(default=0.05, gt=0.0, lt=1.0, description="1 - confidence."),
) -> dict[str, Any]:
    """Treated vs holdout mean engagement, value and net value per executed
    decision with HCP-clustered intervals, and the off-policy (SNIPS) estimate of
    the same lift from the period's treated decisions. The holdout got
    ``NBA_HOLDOUT_POLICY`` (uniform, campaign or no_contact)."""
    _no_unknown(request, LIFT_PARAMS)
    target = holdout_target(svc)
    try:
        lo = parse_bound(since, "since", end=False)
        hi = parse_bound(until, "until", end=True)
        report = await run_in_threadpool(lift, svc.store, lo, hi, svc.value, target, alpha)
    except KpiError as exc:
        raise invalid(str(exc)) from None
    return report.as_dict()
