"""``POST /v1/events/{event_id}/outcomes`` and ``POST /v1/events/{event_id}/activate``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from serving import schemas
from serving.api.deps import DecideKey, ReportKey, ServicesDep, json_response
from serving.errors import ErrorBody
from serving.territory import check_event

router = APIRouter(prefix="/v1/events", tags=["events"])

EventId = Annotated[str, Path(min_length=1, max_length=128)]

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody, "description": "unknown event (`unknown_event`)"},
    422: {"model": ErrorBody},
}


@router.post(
    "/{event_id}/outcomes",
    status_code=201,
    response_model=schemas.OutcomeResponse,
    responses={
        200: {"model": schemas.OutcomeResponse, "description": "already stored (idempotent)"},
        **ERRORS,
    },
    summary="Report an HCP response or a rep's feedback on a decision",
)
def add_outcome(
    event_id: EventId, body: schemas.OutcomeRequest, svc: ServicesDep, who: ReportKey
) -> Response:
    """Idempotent on (event, type, source_id): a repeat answers 200 with
    ``stored: false``. Outcomes after the reward window are stored and flagged
    ``late``. Rep feedback (``accepted``, ``dismissed`` with ``reason_code``,
    ``snoozed`` with ``until``) is kept apart from HCP responses; dismissals and
    snoozes change what the same HCP is offered next. ``action_id`` names the
    suggestion the outcome concerns (default: the chosen one); only outcomes
    about the chosen action count toward its reward. 422 when ``action_id`` is
    not one of the decision's actions, or when the type cannot happen on that
    action's channel (an email ``opened`` on a ``rep_visit``)."""
    # one thread-pool hand-over (this plain ``def``; the dependencies are async) and
    # one serialization (json_response skips FastAPI's second validation)
    check_event(svc.store, who, event_id)
    status, out = svc.engine.record_outcome(event_id, body)
    return json_response(out, status)


@router.post(
    "/{event_id}/activate",
    response_model=schemas.ActivateResponse,
    responses=ERRORS,
    summary="Activate a decision made with defer_activation",
)
def activate(event_id: EventId, svc: ServicesDep, who: DecideKey) -> schemas.ActivateResponse:
    """A deferred decision teaches the model only once activated (the rep really
    showed it). Activating twice is harmless (``already_active: true``)."""
    check_event(svc.store, who, event_id)
    return svc.engine.activate(event_id)
