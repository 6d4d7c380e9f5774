"""The rep's co-pilot: ``PUT /v1/reps/{rep_id}``, ``POST /v1/reps:import``,
``GET /v1/reps/{rep_id}/suggestions``, ``GET /v1/reps/{rep_id}/hcps``,
``GET /v1/reps/{rep_id}/overrides``, ``GET /v1/hcps/{hcp_id}/alignment`` and
``GET /v1/hcps/{hcp_id}/timeline``.

A rep's key (scope ``rep:<rep_id>``) reaches only its own rep routes and the HCPs
its rep owns today (:mod:`serving.territory`); 403 names the rep or HCP outside.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, UploadFile

from nba.domain import ValidationError
from serving import rep_day
from serving import schemas_reps as sr
from serving.api.deps import AdminKey, AnyKey, DecideKey, ReportKey, ServicesDep
from serving.auth import Principal
from serving.errors import ApiError, ErrorBody, invalid, unknown_hcp
from serving.rep_import import read_alignment
from serving.store import StoreError
from serving.store_reps import (
    Rep,
    alignment_history,
    get_rep,
    import_alignment,
    owner_on,
    put_rep,
)
from serving.territory import check_hcp, check_rep

router = APIRouter(prefix="/v1", tags=["reps"])

RepId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/@]+$")]
HcpId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/@]+$")]
OVERRIDE_DAYS = 30

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "missing or unknown API key"},
    403: {
        "model": ErrorBody,
        "description": "key lacks the scope, or a rep's key asks outside its territory "
        "(`outside_territory`, naming the rep or HCP)",
    },
    404: {"model": ErrorBody, "description": "unknown rep (`unknown_rep`) or HCP"},
    422: {"model": ErrorBody, "description": "invalid input (`invalid_input`)"},
}


def _today() -> date:
    return datetime.now(UTC).date()


def _rep(svc: ServicesDep, who: Principal, rep_id: str) -> Rep:
    check_rep(who, rep_id)
    rep = get_rep(svc.store, rep_id)
    if rep is None:
        raise ApiError(404, "unknown_rep", f"rep {rep_id!r} is not in the store; PUT it first")
    return rep


@router.put(
    "/reps/{rep_id}",
    response_model=sr.RepUpsertResponse,
    responses={201: {"model": sr.RepUpsertResponse, "description": "created"}, **ERRORS},
    summary="Create or update a rep: daily capacity and whole territory",
)
def put_rep_route(
    rep_id: RepId, body: sr.RepBody, svc: ServicesDep, who: AdminKey, response: Response
) -> sr.RepUpsertResponse:
    """The territory becomes exactly ``hcp_ids`` from ``effective_from`` (default
    today): HCPs the rep loses are released that day, HCPs it gains leave their former
    rep that day; history is kept (``GET /v1/hcps/{hcp_id}/alignment``). 422 names an
    HCP not in the store, listed twice, or whose alignment already starts later."""
    since = body.effective_from or _today()
    try:
        created = put_rep(svc.store, rep_id, body.name, body.capacity_per_day, body.hcp_ids, since)
    except StoreError as exc:
        raise invalid(str(exc)) from None
    response.status_code = 201 if created else 200
    return sr.RepUpsertResponse(rep_id=rep_id, created=created, territory_size=len(body.hcp_ids))


@router.post(
    "/reps:import",
    response_model=sr.RepImportResponse,
    responses={413: {"model": ErrorBody}, 415: {"model": ErrorBody}, **ERRORS},
    summary="Import a territory alignment (rep ↔ HCP) from Parquet or CSV",
)
async def import_reps(file: UploadFile, svc: ServicesDep, who: AdminKey) -> sr.RepImportResponse:
    """Columns ``rep_id, hcp_id`` and optionally ``valid_from``, ``valid_to`` (ISO
    dates), ``name``, ``capacity_per_day``. All rows or none; the error lists every
    bad row, one line each naming the row and the column."""
    data = await file.read()
    try:
        changes, reps = read_alignment(data, file.filename)
        n = import_alignment(svc.store, changes, reps)
    except ValidationError as exc:
        msg = str(exc)
        if "not a Parquet or CSV" in msg:
            raise ApiError(415, "unsupported_media", msg) from None
        raise invalid(msg) from None
    fmt: Literal["parquet", "csv"] = "parquet" if data[:4] == b"PAR1" else "csv"
    return sr.RepImportResponse(imported=n, reps=len(reps), format=fmt)


@router.get(
    "/reps/{rep_id}/suggestions",
    response_model=sr.RepDay,
    responses=ERRORS,
    summary="The rep's suggestions for a day, within capacity, best first",
)
def suggestions(
    rep_id: RepId,
    svc: ServicesDep,
    who: DecideKey,
    day: Annotated[date | None, Query(alias="date", description="Default: today (UTC).")] = None,
) -> sr.RepDay:
    """One decision per HCP of the territory on the rep channels (requester
    ``rep_app``), contact rules applied, ranked by the policy's expected score (the
    HCP's decile when the policy gives no scores), cut at the rep's capacity. Every
    entry is a logged decision: report outcomes and feedback with its ``event_id``.
    HCPs with an open trigger notification come first with the trigger's suggestion
    (``trigger``, ``notification_id``; the first reason names the event).
    The list is stored: asking again for the same day returns it unchanged. Days other
    than today need ``NBA_ALLOW_CLIENT_TIME=true``."""
    rep = _rep(svc, who, rep_id)
    return rep_day.make_day(svc.engine, rep, day or _today())


@router.get(
    "/reps/{rep_id}/hcps",
    response_model=sr.RepTerritory,
    responses=ERRORS,
    summary="The rep's territory: each HCP's last contact and open suggestions",
)
def territory(
    rep_id: RepId,
    svc: ServicesDep,
    who: AnyKey,
    day: Annotated[date | None, Query(alias="date", description="Default: today (UTC).")] = None,
) -> sr.RepTerritory:
    """The HCPs the rep owns on ``date``, by id."""
    rep = _rep(svc, who, rep_id)
    return rep_day.territory_view(svc.engine, rep, day or _today())


@router.get(
    "/reps/{rep_id}/overrides",
    response_model=sr.OverrideReport,
    responses=ERRORS,
    summary="How often the rep did something else than suggested",
)
def overrides(
    rep_id: RepId,
    svc: ServicesDep,
    who: AnyKey,
    since: Annotated[date | None, Query(description="Default: 30 days before until.")] = None,
    until: Annotated[date | None, Query(description="Default: today (UTC).")] = None,
) -> sr.OverrideReport:
    """Entries of the rep's day lists of ``since..until`` (inclusive) that a touch with
    ``overrides_event_id`` overrode: overall, by what the override changed first (HCP,
    channel, topic, content) and by the suggested channel and topic."""
    rep = _rep(svc, who, rep_id)
    end = until or _today()
    return rep_day.override_report(
        svc.engine, rep, since or end - timedelta(days=OVERRIDE_DAYS), end
    )


@router.get(
    "/hcps/{hcp_id}/alignment",
    response_model=sr.HCPAlignment,
    responses=ERRORS,
    summary="Who owned an HCP on a day, and its alignment history",
)
def alignment(
    hcp_id: HcpId,
    svc: ServicesDep,
    who: AnyKey,
    day: Annotated[date | None, Query(alias="date", description="Default: today (UTC).")] = None,
) -> sr.HCPAlignment:
    """``rep_id`` is the owner on ``date`` (null when none); ``history`` lists every
    alignment row, oldest first (``valid_to`` exclusive)."""
    check_hcp(svc.store, who, hcp_id)
    if svc.store.get_hcp(hcp_id) is None:
        raise unknown_hcp(hcp_id)
    on = day or _today()
    return sr.HCPAlignment(
        hcp_id=hcp_id,
        date=on,
        rep_id=owner_on(svc.store, hcp_id, on),
        history=[
            sr.AlignmentPublic(
                rep_id=r.rep_id, hcp_id=r.hcp_id, valid_from=r.valid_from, valid_to=r.valid_to
            )
            for r in alignment_history(svc.store, hcp_id)
        ],
    )


@router.get(
    "/hcps/{hcp_id}/timeline",
    response_model=sr.Timeline,
    responses=ERRORS,
    summary="Everything that happened with an HCP, newest first, paged",
)
def hcp_timeline(
    hcp_id: HcpId,
    svc: ServicesDep,
    who: ReportKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        str | None, Query(max_length=200, description="`next_before` of the previous page.")
    ] = None,
) -> sr.Timeline:
    """Our decisions once activated (with the policy and model version that chose),
    touches (ours or external, with ``origin``; a rep's override names the decision it
    overrode), pulled topics, HCP responses and rep feedback; plus the dismissals and
    snoozes suppressing content now, with their end."""
    check_hcp(svc.store, who, hcp_id)
    if svc.store.get_hcp(hcp_id) is None:
        raise unknown_hcp(hcp_id)
    return rep_day.timeline(svc.engine, hcp_id, limit, before)
