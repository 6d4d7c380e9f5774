"""``POST /v1/touches`` and ``POST /v1/touches:import``: contacts that happened outside
nba and interest signals (what an HCP pulled: CLM detail topics, email clicks,
portal views, webinar questions)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, UploadFile

from nba.domain import ValidationError
from serving import schemas
from serving.api.deps import ReportKey, ServicesDep
from serving.errors import ApiError, ErrorBody, invalid
from serving.store import UnknownHCPError
from serving.territory import check_event, check_hcp, check_hcps
from serving.touch_import import read_touches

router = APIRouter(prefix="/v1", tags=["touches"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.post(
    "/touches",
    status_code=201,
    response_model=schemas.TouchResponse,
    responses={404: {"model": ErrorBody}, **ERRORS},
    summary="Record a touch or an interest signal",
)
def add_touch(
    body: schemas.TouchRequest, svc: ServicesDep, who: ReportKey
) -> schemas.TouchResponse:
    """A visit the rep chose, an email from another system, or something the HCP
    pulled (``kind`` other than ``contact``, with the catalog ``topics`` asked for):
    every later decision (history features, frequency caps, minimum gaps) builds on
    it. 422 names the bad field and the allowed values.

    With ``overrides_event_id`` the touch is a rep's override of that decision's
    suggestion (another HCP, channel, topic or content): it counts as a contact like
    any other, is reported by ``GET /v1/reps/{rep_id}/overrides`` and exported with
    the touches, and is never credited to the decision's chosen action (a response or
    acceptance about that action is refused afterwards). 404 for an unknown event;
    422 when the touch is a pull, precedes the decision, does exactly what was
    suggested, or the chosen action already has a response."""
    check_hcp(svc.store, who, body.hcp_id)
    if body.overrides_event_id is not None:
        check_event(svc.store, who, body.overrides_event_id)
    return svc.engine.record_touch(body)


@router.post(
    "/touches:import",
    response_model=schemas.TouchImportResponse,
    responses={413: {"model": ErrorBody}, 415: {"model": ErrorBody}, **ERRORS},
    summary="Record many touches from a CLM/CRM activity file (Parquet or CSV)",
)
async def import_touches(
    file: UploadFile, svc: ServicesDep, who: ReportKey
) -> schemas.TouchImportResponse:
    """Columns: ``hcp_id, ts, channel, content_id`` and optionally ``origin``
    (default external), ``kind`` (default contact), ``topics``, ``content_ids``
    (``;``-separated in CSV), ``dwell_s``. Every HCP must be in the store. All rows
    or none are stored; an error names the row, the column, the value and what is
    allowed."""
    data = await file.read()
    try:
        touches = read_touches(data, file.filename, svc.catalog)
    except ValidationError as exc:
        msg = str(exc)
        if "not a Parquet or CSV" in msg:
            raise ApiError(415, "unsupported_media", msg) from None
        raise invalid(msg) from None
    check_hcps(svc.store, who, sorted({t.hcp_id for t in touches}))
    fmt: Literal["parquet", "csv"] = "parquet" if data[:4] == b"PAR1" else "csv"
    try:
        n = svc.store.add_touches(touches, known_hcps_only=True)
    except UnknownHCPError as exc:
        # "touch N: ..." is row N of the upload
        raise invalid(str(exc).replace("touch ", "row ", 1) + "; import the HCPs first") from None
    return schemas.TouchImportResponse(imported=n, format=fmt)
