"""``PUT /v1/hcps/{hcp_id}``, ``POST /v1/hcps:import``, ``GET /v1/hcps/{hcp_id}``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response, UploadFile

from nba.domain import HCPProfile, ValidationError
from serving import schemas
from serving.api.deps import ReportKey, ServicesDep
from serving.errors import ApiError, ErrorBody, invalid, unknown_hcp
from serving.hcp_import import read_profiles

router = APIRouter(prefix="/v1", tags=["hcps"])

HcpId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/@]+$")]
RECENT_DAYS = 90

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.put(
    "/hcps/{hcp_id}",
    response_model=schemas.HCPUpsertResponse,
    status_code=200,
    responses={201: {"model": schemas.HCPUpsertResponse, "description": "created"}, **ERRORS},
    summary="Create or replace an HCP profile",
)
def put_hcp(
    hcp_id: HcpId,
    body: schemas.HCPBody,
    svc: ServicesDep,
    who: ReportKey,
    response: Response,
) -> schemas.HCPUpsertResponse:
    """201 when the HCP is new, 200 when its profile was replaced."""
    try:
        profile = HCPProfile(hcp_id=hcp_id, **body.model_dump())
    except ValidationError as exc:
        raise invalid(str(exc)) from None
    created = svc.store.get_hcp(hcp_id) is None
    svc.store.upsert_hcp(profile)
    response.status_code = 201 if created else 200
    return schemas.HCPUpsertResponse(hcp_id=hcp_id, created=created)


@router.post(
    "/hcps:import",
    response_model=schemas.ImportResponse,
    responses={413: {"model": ErrorBody}, 415: {"model": ErrorBody}, **ERRORS},
    summary="Create or replace many HCP profiles from a Parquet or CSV upload",
)
async def import_hcps(file: UploadFile, svc: ServicesDep, who: ReportKey) -> schemas.ImportResponse:
    """Columns: ``hcp_id, specialty, decile, market, adoption_stage, consents``
    (``;``-separated in CSV) and optionally ``no_see, digital_affinity``. All rows
    or none are stored; an error names the row and the column."""
    data = await file.read()
    try:
        profiles = read_profiles(data, file.filename)
    except ValidationError as exc:
        msg = str(exc)
        if "not a Parquet or CSV" in msg:
            raise ApiError(415, "unsupported_media", msg) from None
        raise invalid(msg) from None
    fmt: Literal["parquet", "csv"] = "parquet" if data[:4] == b"PAR1" else "csv"
    n = svc.store.upsert_hcps(profiles)
    return schemas.ImportResponse(imported=n, format=fmt)


@router.get(
    "/hcps/{hcp_id}",
    response_model=schemas.HCPDetail,
    responses={404: {"model": ErrorBody}, **ERRORS},
    summary="An HCP's profile, consents, recent touches and outcomes",
)
def get_hcp(hcp_id: HcpId, svc: ServicesDep, who: ReportKey) -> schemas.HCPDetail:
    """Touches and outcomes of the last 90 days, oldest first."""
    hcp = svc.store.get_hcp(hcp_id)
    if hcp is None:
        raise unknown_hcp(hcp_id)
    since = datetime.now(UTC) - timedelta(days=RECENT_DAYS)
    touches = svc.store.recent_touches(hcp_id, since)
    outcomes = svc.store.recent_outcomes(hcp_id, since)
    return schemas.HCPDetail(
        profile=schemas.HCPPublic(**hcp.to_dict()),
        recent_touches=[
            schemas.TouchPublic(
                ts=t.ts, channel=t.channel, content_id=t.content_id, origin=t.origin
            )
            for t in touches
        ],
        recent_outcomes=[
            schemas.OutcomePublic(
                event_id=o.outcome.event_id,
                ts=o.outcome.ts,
                type=o.outcome.type,
                value=o.outcome.value,
                source=o.outcome.source,
                action_id=o.outcome.action_id,
            )
            for o in outcomes
        ],
    )
