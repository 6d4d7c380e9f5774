"""``POST /v1/decisions`` and ``POST /v1/decisions:batch``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving import schemas
from serving.api.deps import DecideKey, ServicesDep, json_response
from serving.errors import ErrorBody
from serving.territory import check_hcp, check_hcps

router = APIRouter(prefix="/v1", tags=["decisions"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "missing or unknown API key"},
    403: {"model": ErrorBody, "description": "key lacks the `decide` scope"},
    404: {"model": ErrorBody, "description": "unknown HCP (`unknown_hcp`)"},
    409: {"model": ErrorBody, "description": "event id already used (`event_id_conflict`)"},
    413: {"model": ErrorBody, "description": "body too large"},
    422: {"model": ErrorBody, "description": "invalid input (`invalid_input`)"},
}


@router.post(
    "/decisions",
    status_code=201,
    response_model=schemas.DecisionResponse,
    responses={
        200: {
            "model": schemas.DecisionResponse,
            "description": "The contact policy left nothing to offer: no suggestions, the "
            "blocking rules in `suppressed`; nothing is stored.",
        },
        **ERRORS,
    },
    summary="Decide what to offer one HCP next",
)
def decide(body: schemas.DecisionRequest, svc: ServicesDep, who: DecideKey) -> Response:
    """The chosen action is sampled from the served probabilities (the logged
    propensity is its probability); the other suggestions are drawn without
    replacement from the same probabilities, each shown with its ``slot`` and
    ``slot_probability`` and logged in the decision's slate. The decision
    is durable in the event store before this answer is sent."""
    check_hcp(svc.store, who, body.hcp_id)
    status, out = svc.engine.decide(body, who.name)
    return json_response(out, status)


@router.post(
    "/decisions:batch",
    status_code=201,
    response_model=schemas.BatchResponse,
    responses=ERRORS,
    summary="One decision per HCP for many HCPs (e.g. the nightly email run)",
)
def decide_batch(body: schemas.BatchDecisionRequest, svc: ServicesDep, who: DecideKey) -> Response:
    """Up to ``NBA_MAX_BATCH`` (default 10,000) HCPs, one event each, stored in one
    transaction. Unknown HCPs are listed in ``unknown_hcp_ids``; HCPs the contact
    policy blocks get no event and list the rules in ``blocked_by``."""
    check_hcps(svc.store, who, body.hcp_ids)
    # written once as JSON, without a model per item (FastAPI would also validate the
    # thousands of items a second time)
    answer = svc.engine.decide_batch_json(body, who.name, svc.settings.max_batch)
    return Response(answer, status_code=201, media_type="application/json")
