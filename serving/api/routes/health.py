"""``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from serving import schemas

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
    return Response(svc.metrics.render(), media_type=svc.metrics.content_type)
