"""Azure AI Personalizer v1.0 compatible routes (see :mod:`serving.personalizer`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from serving import personalizer, schemas
from serving.api.deps import DecideKey, ReportKey, ServicesDep
from serving.errors import ErrorBody
from serving.territory import forbid_territorial

router = APIRouter(prefix="/personalizer/v1.0", tags=["personalizer"])

EventId = Annotated[str, Path(min_length=1, max_length=256)]
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.post(
    "/rank",
    status_code=201,
    response_model=schemas.PzRankResponse,
    responses={409: {"model": ErrorBody}, **ERRORS},
    summary="Personalizer Rank",
)
def rank(
    body: schemas.PzRankRequest, svc: ServicesDep, who: DecideKey, response: Response
) -> schemas.PzRankResponse:
    """The original RankRequest / RankResponse shapes; the HCP is the
    ``hcp_id`` context feature and action ids are catalog action ids."""
    forbid_territorial(who, "the Personalizer-compatible routes")
    status, out = personalizer.rank(svc.engine, body, who.name)
    response.status_code = status
    return out


@router.post(
    "/events/{eventId}/reward",
    status_code=204,
    response_class=Response,
    responses=ERRORS,
    summary="Personalizer Reward",
)
def reward(
    eventId: EventId, body: schemas.PzRewardRequest, svc: ServicesDep, who: ReportKey
) -> Response:
    forbid_territorial(who, "the Personalizer-compatible routes")
    personalizer.reward(svc.engine, eventId, body.value)
    return Response(status_code=204)


@router.post(
    "/events/{eventId}/activate",
    status_code=204,
    response_class=Response,
    responses=ERRORS,
    summary="Personalizer Activate",
)
def activate(eventId: EventId, svc: ServicesDep, who: DecideKey) -> Response:
    forbid_territorial(who, "the Personalizer-compatible routes")
    personalizer.activate(svc.engine, eventId)
    return Response(status_code=204)
