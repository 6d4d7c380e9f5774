"""``POST /v1/touches``: contacts that happened outside nba."""

from __future__ import annotations

from fastapi import APIRouter

from serving import schemas
from serving.api.deps import ReportKey, ServicesDep
from serving.errors import ErrorBody

router = APIRouter(prefix="/v1", tags=["touches"])


@router.post(
    "/touches",
    status_code=201,
    response_model=schemas.TouchResponse,
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
    summary="Record a touch that happened outside nba",
)
def add_touch(
    body: schemas.TouchRequest, svc: ServicesDep, who: ReportKey
) -> schemas.TouchResponse:
    """A visit the rep chose, an email from another system: every later decision
    (history features, frequency caps, minimum gaps) builds on it."""
    return svc.engine.record_touch(body)
