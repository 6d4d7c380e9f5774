"""``GET /v1/models/current``, ``POST /v1/models/reload`` (admin); the contact rules
routes are in :mod:`serving.api.routes.rules`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serving import schemas
from serving.api.deps import AdminKey, AnyKey, ServicesDep
from serving.errors import ApiError, ErrorBody

router = APIRouter(prefix="/v1", tags=["models"])

AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
}


@router.get(
    "/models/current",
    response_model=schemas.ModelInfo,
    responses=AUTH_ERRORS,
    summary="The model serving now",
)
def current_model(svc: ServicesDep, who: AnyKey) -> schemas.ModelInfo:
    """With no trained model, ``is_baseline`` is true and ``note`` says why."""
    m = svc.models.current
    return schemas.ModelInfo(
        model_version=m.version,
        policy=m.policy.name,
        source=m.source,
        loaded_at=m.loaded_at,
        is_baseline=m.is_baseline,
        note=m.note,
        following=svc.models.uri,
    )


@router.post(
    "/models/reload",
    response_model=schemas.ReloadResponse,
    responses={
        409: {"model": ErrorBody, "description": "the model was refused; the old one serves"},
        **AUTH_ERRORS,
    },
    summary="Load the model now (admin)",
)
async def reload_model(
    svc: ServicesDep, who: AdminKey, body: schemas.ReloadRequest | None = None
) -> schemas.ReloadResponse:
    """Loads the followed URI (or ``uri`` from the body, which is then followed),
    scores it on canary requests and swaps it in. A model that fails to load or to
    score is refused (409) and the current one keeps serving. Each worker process
    loads on its own; the others pick the change up at their next alias check."""
    uri = body.uri if body is not None else None
    result = await run_in_threadpool(svc.models.load, uri)
    if not result.swapped:
        raise ApiError(409, "model_refused", result.message)
    svc.metrics.set_model(result.version)
    return schemas.ReloadResponse(
        swapped=True, model_version=result.version, message=result.message
    )
