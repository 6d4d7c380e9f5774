"""``POST /v1/outcomes:batch``: outcomes delivered in bulk.

An email platform's event webhook posts its events in arrays; one request per
outcome would cost a request each. Each item is validated, authorised and
stored exactly as ``POST /v1/events/{event_id}/outcomes`` would do it, and gets
that route's answer or error in ``results``; the valid items share one group
commit and are stored whatever happens to the others.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError

from serving import schemas
from serving.api.deps import ReportKey, ServicesDep, json_response
from serving.errors import ApiError, ErrorBody, describe_invalid, invalid
from serving.territory import check_event

router = APIRouter(prefix="/v1", tags=["events"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "missing or unknown API key"},
    403: {"model": ErrorBody, "description": "key lacks the `report` scope"},
    413: {"model": ErrorBody, "description": "body too large (`NBA_MAX_BODY_BYTES`)"},
    422: {
        "model": ErrorBody,
        "description": "not a batch (`outcomes` missing, empty or not a list) or more "
        "items than `NBA_MAX_OUTCOME_BATCH`; nothing is stored",
    },
}


def _item(
    raw: Any, index: int, svc: Any, who: Any
) -> tuple[str, schemas.OutcomeRequest] | ApiError:
    """One item validated and authorised, or the error the single route would give."""
    try:
        item = schemas.OutcomeBatchItem.model_validate(raw)
    except ValidationError as exc:
        message, details = describe_invalid(list(exc.errors()), f"outcomes.{index}")
        return ApiError(422, "invalid_input", message, details)
    try:
        check_event(svc.store, who, item.event_id)
    except ApiError as exc:
        return exc
    return item.event_id, item


def _result(
    index: int, raw: Any, res: schemas.OutcomeResponse | ApiError
) -> schemas.OutcomeBatchResult:
    if isinstance(res, ApiError):
        eid = raw.get("event_id") if isinstance(raw, dict) else None
        return schemas.OutcomeBatchResult(
            index=index,
            event_id=eid if isinstance(eid, str) else None,
            status="error",
            error=schemas.OutcomeBatchError(
                status=res.status, code=res.code, message=res.message, details=res.details
            ),
        )
    return schemas.OutcomeBatchResult(
        index=index,
        event_id=res.event_id,
        status="stored" if res.stored else "repeat",
        outcome=res,
    )


@router.post(
    "/outcomes:batch",
    status_code=200,
    response_model=schemas.OutcomeBatchResponse,
    responses=ERRORS,
    summary="Report many outcomes at once (e.g. an email platform's event webhook)",
)
def add_outcomes(body: schemas.OutcomeBatchRequest, svc: ServicesDep, who: ReportKey) -> Response:
    """Up to ``NBA_MAX_OUTCOME_BATCH`` (default 1,000) outcomes, each with its
    ``event_id``. Answers 200 whenever the batch could be read; each item's fate
    is in ``results``, in request order: ``stored`` (new), ``repeat`` (this event,
    type and source_id was already stored, also earlier in the same batch) or
    ``error`` with the status, code and message the single route would answer
    (422 invalid, 404 unknown event, 403 outside a rep key's territory). The
    valid items are committed together (one group commit) and stay stored
    whatever happens to the others; resending the batch is harmless (repeats)."""
    limit = svc.settings.max_outcome_batch
    if len(body.outcomes) > limit:
        raise invalid(
            f"outcomes: {len(body.outcomes)} items; at most {limit} per batch "
            "(NBA_MAX_OUTCOME_BATCH): split it"
        )
    items = [_item(raw, i, svc, who) for i, raw in enumerate(body.outcomes)]
    results = [
        _result(i, raw, res)
        for i, (raw, res) in enumerate(
            zip(body.outcomes, svc.engine.record_outcomes(items), strict=True)
        )
    ]
    out = schemas.OutcomeBatchResponse(
        n_stored=sum(r.status == "stored" for r in results),
        n_repeats=sum(r.status == "repeat" for r in results),
        n_errors=sum(r.status == "error" for r in results),
        results=results,
    )
    return json_response(out, 200)
