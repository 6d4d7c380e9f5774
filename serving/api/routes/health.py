"""``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (no key needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from serving import schemas
from serving.metrics import ENGAGEMENT_DAYS, engagement_exposition
from serving.store_kpis import kpis

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=schemas.Health, summary="The process is alive")
def healthz() -> schemas.Health:
    return schemas.Health(status="ok")


@router.get(
    "/readyz",
    response_model=schemas.Readiness,
    responses={503: {"model": schemas.Readiness}},
    summary="Ready to decide: store reachable, a model (or the baseline) serving",
)
def readyz(request: Request) -> JSONResponse:
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        body = schemas.Readiness(
            ready=False, model_version="", store="closed", checks={"startup": "not finished"}
        )
        return JSONResponse(body.model_dump(), status_code=503)
    checks: dict[str, str] = {}
    try:
        svc.store.get_hcp("__readiness_probe__")
        checks["store"] = "ok"
    except Exception as exc:  # report, never raise
        checks["store"] = f"error: {type(exc).__name__}"
    m = svc.models.current
    checks["model"] = "baseline" if m.is_baseline else "ok"
    ready = checks["store"] == "ok"
    body = schemas.Readiness(
        ready=ready, model_version=m.version, store=str(svc.settings.store_path.name), checks=checks
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        return Response(b"", media_type="text/plain", status_code=503)
    now = datetime.now(UTC)
    rep = kpis(svc.store, now - timedelta(days=ENGAGEMENT_DAYS), now, "channel", svc.value)
    rates = {g.key: (g.executed, g.engagement_rate) for g in rep.groups if g.decisions}
    body = svc.metrics.render() + engagement_exposition(rates)
    return Response(body, media_type=svc.metrics.content_type)
