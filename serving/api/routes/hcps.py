"""``PUT /v1/hcps/{hcp_id}``, ``POST /v1/hcps:import``, ``GET /v1/hcps/{hcp_id}``,
``POST /v1/hcps/{hcp_id}/stated-preferences``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response, UploadFile

from nba.domain import HCPProfile, StatedPreference, ValidationError
from serving import schemas
from serving.api.deps import ReportKey, ServicesDep
from serving.errors import ApiError, ErrorBody, invalid, unknown_hcp
from serving.hcp_import import read_hcps
from serving.store import UnknownHCPError
from serving.territory import check_hcp, forbid_territorial

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
    """201 when the HCP is new, 200 when its profile was replaced (attributes too).
    Specialty and market must be in the features config's vocabularies, consents
    among the catalog's channels, attributes declared there; 422 names the field,
    the value and what is allowed."""
    check_hcp(svc.store, who, hcp_id)
    fields = body.model_dump()
    try:
        attributes = svc.features.check_attributes(fields.pop("attributes"), svc.catalog)
        profile = HCPProfile(hcp_id=hcp_id, **fields)
        svc.features.check_profile(profile, svc.catalog)
    except ValidationError as exc:
        raise invalid(str(exc)) from None
    created = svc.store.get_hcp(hcp_id) is None
    svc.store.upsert_hcp(profile, attributes)
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
    (``;``-separated in CSV), optionally ``no_see, digital_affinity``, and one column
    per declared attribute; any other column is refused. All rows or none are
    stored; an error names the row, the column, the value and what is allowed."""
    forbid_territorial(who, "POST /v1/hcps:import")
    data = await file.read()
    try:
        rows = read_hcps(data, file.filename, svc.features, svc.catalog)
    except ValidationError as exc:
        msg = str(exc)
        if "not a Parquet or CSV" in msg:
            raise ApiError(415, "unsupported_media", msg) from None
        raise invalid(msg) from None
    fmt: Literal["parquet", "csv"] = "parquet" if data[:4] == b"PAR1" else "csv"
    n = svc.store.upsert_hcps([p for p, _ in rows], [a for _, a in rows])
    return schemas.ImportResponse(imported=n, format=fmt)


@router.get(
    "/hcps/{hcp_id}",
    response_model=schemas.HCPDetail,
    responses={404: {"model": ErrorBody}, **ERRORS},
    summary="An HCP's profile, consents, recent touches and outcomes",
)
def get_hcp(hcp_id: HcpId, svc: ServicesDep, who: ReportKey) -> schemas.HCPDetail:
    """Touches and outcomes of the last 90 days, oldest first."""
    check_hcp(svc.store, who, hcp_id)
    hcp = svc.store.get_hcp(hcp_id)
    if hcp is None:
        raise unknown_hcp(hcp_id)
    since = datetime.now(UTC) - timedelta(days=RECENT_DAYS)
    touches = svc.store.recent_touches(hcp_id, since)
    outcomes = svc.store.recent_outcomes(hcp_id, since)
    attributes = svc.store.get_hcp_attributes(hcp_id) or {}
    return schemas.HCPDetail(
        profile=schemas.HCPPublic(**hcp.to_dict(), attributes=attributes),
        recent_touches=[
            schemas.TouchPublic(
                ts=t.ts,
                channel=t.channel,
                content_id=t.content_id,
                origin=t.origin,
                kind=t.kind,
                topics=list(t.topics),
                content_ids=list(t.content_ids),
                dwell_s=t.dwell_s,
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
        stated_preferences=[_public_preference(p) for p in svc.store.stated_preferences(hcp_id)],
    )


def _public_preference(p: StatedPreference) -> schemas.StatedPreferencePublic:
    return schemas.StatedPreferencePublic(
        hcp_id=p.hcp_id,
        ts=p.ts,
        recorded_by=p.recorded_by,
        topics=list(p.topics),
        channels=list(p.channels),
    )


@router.post(
    "/hcps/{hcp_id}/stated-preferences",
    status_code=201,
    response_model=schemas.StatedPreferencePublic,
    responses={404: {"model": ErrorBody}, **ERRORS},
    summary="Record what an HCP said they want (topics, channels)",
)
def add_stated_preference(
    hcp_id: HcpId, body: schemas.StatedPreferenceRequest, svc: ServicesDep, who: ReportKey
) -> schemas.StatedPreferencePublic:
    """A statement, kept apart from observed behaviour: it is not a touch and counts
    for no cap, gap or history feature. Topics and channels must be the catalog's;
    at least one of them is required. Returned by ``GET /v1/hcps/{hcp_id}``."""
    check_hcp(svc.store, who, hcp_id)
    try:
        pref = StatedPreference(
            hcp_id,
            (body.ts or datetime.now(UTC)).astimezone(UTC),
            body.recorded_by,
            tuple(body.topics),
            tuple(body.channels),
        )
        svc.catalog.check_terms("topics", pref.topics, "topics")
        svc.catalog.check_terms("channels", pref.channels, "channels")
    except ValidationError as exc:
        raise invalid(str(exc)) from None
    try:
        svc.store.add_stated_preference(pref)
    except UnknownHCPError:
        raise unknown_hcp(hcp_id) from None
    return _public_preference(pref)
