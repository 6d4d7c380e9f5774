"""Journeys over HTTP: the journeys in force, changing them, and where an HCP stands.

``GET`` routes take any key; changing the journeys takes ``admin``. ``PUT
/v1/journeys`` takes the TOML text raw (``Content-Type: application/toml``, the
comment as a query parameter) or as JSON (``{"text": ..., "comment": ...}``),
like ``PUT /v1/rules``. The logic is :mod:`serving.journeys`; the route bodies
are the functions :func:`apply_journeys`, :func:`rollback_journeys_to`,
:func:`check_journeys` and :func:`hcp_journey_states`, which the console
(:mod:`serving.console.routes`) calls too.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from nba.journeys import JourneysError, JourneySet
from serving import journeys as journeys_lib
from serving import store_rules
from serving.api.deps import AdminKey, AnyKey, Services, ServicesDep
from serving.api.routes.rules import TOML_BODY, _read
from serving.auth import Principal
from serving.errors import ApiError, ErrorBody, unknown_hcp
from serving.rules import RulesChangeError, diff_text
from serving.territory import check_hcp

router = APIRouter(prefix="/v1", tags=["journeys"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody, "description": "unchanged, or another change came first"},
    422: {"model": ErrorBody, "description": "invalid journeys (details: key and line)"},
}


class JourneysRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    comment: str = Field(description="Why (required).")


def snapshot(svc: Services) -> tuple[store_rules.RulesVersion | None, JourneySet]:
    """(stored version in force or None, journeys; an empty set when none)."""
    if svc.journeys is None:
        return None, JourneySet.empty()
    return svc.journeys.snapshot()


def _change_error(exc: Exception) -> ApiError:
    if isinstance(exc, JourneysError):
        return ApiError(
            422,
            "invalid_journeys",
            str(exc),
            details=[{"loc": exc.key or "text", "line": exc.line, "msg": str(exc)}],
        )
    if isinstance(exc, RulesChangeError):
        return ApiError(exc.status, exc.code, str(exc))
    if isinstance(exc, store_rules.RulesConflictError):
        return ApiError(409, "journeys_conflict", str(exc))
    raise exc


@router.get("/journeys", responses=ERRORS, summary="The journeys in force")
def get_journeys(svc: ServicesDep, who: AnyKey) -> dict[str, Any]:
    """Every journey in force, highest priority first (entry, exit, exclusions,
    steps), the stored version (``version``; ``journeys_hash`` is what changes
    with the content), who applied it and why, and its TOML ``text``; ``version``
    null and no journeys when none was ever applied."""
    record, js = snapshot(svc)
    return {**journeys_lib.describe_version(record, js), "worker": os.getpid()}


@router.put(
    "/journeys",
    responses=ERRORS,
    summary="Apply new journeys (admin)",
    openapi_extra=TOML_BODY,
)
async def put_journeys(request: Request, svc: ServicesDep, who: AdminKey) -> dict[str, Any]:
    """Validates the text (422 naming the key and the line; the journeys in force
    stay), stores it as a new version with who, when, the diff and the required
    ``comment``, and puts it in force in every worker."""
    body = await _read(request)
    return await run_in_threadpool(
        apply_journeys, svc, body.text, body.comment, body.expected_version, who.name
    )


@router.get("/journeys/history", responses=ERRORS, summary="Every journeys version")
def journeys_history(
    svc: ServicesDep, who: AnyKey, limit: int = Query(default=100, ge=1, le=10_000)
) -> dict[str, Any]:
    """Newest first: version, hash, who, when, action, comment and the diff."""
    record, _ = snapshot(svc)
    return {
        "in_force": None if record is None else record.version,
        "versions": [v.summary() for v in journeys_lib.history(svc.store, limit)],
    }


@router.post(
    "/journeys:rollback", responses=ERRORS, summary="Put an earlier journeys version back (admin)"
)
def rollback_journeys(body: JourneysRollback, svc: ServicesDep, who: AdminKey) -> dict[str, Any]:
    """Stores the text of ``version`` as a new version in force (history is kept)."""
    return rollback_journeys_to(svc, body.version, body.comment, who.name)


@router.get(
    "/hcps/{hcp_id}/journeys", responses=ERRORS, summary="Where an HCP stands in each journey"
)
def hcp_journeys(
    hcp_id: str,
    svc: ServicesDep,
    who: AnyKey,
    as_of: Annotated[
        AwareDatetime | None,
        Query(description="Time to answer for (needs NBA_ALLOW_CLIENT_TIME=true)."),
    ] = None,
) -> dict[str, Any]:
    """For every journey in force, highest priority first: its status (``due``,
    ``waiting``, ``completed``, ``ended``, ``not_entered``, ``excluded``), the
    current step and its window, and why; ``governs`` names the due step that a
    decision on its channels would follow (the highest priority)."""
    return hcp_journey_states(svc, who, hcp_id, as_of)


# ------------------------------------------------- shared with the console
def apply_journeys(
    svc: Services, text: str, comment: str | None, expected_version: int | None, who: str
) -> dict[str, Any]:
    """Validate ``text``, store it as the journeys in force and refresh this worker.

    Raises
    ------
    ApiError
        422 naming the key and the line (``details``), 422 without a comment,
        409 unchanged or when ``expected_version`` is no longer in force.
    """
    try:
        stored, js = journeys_lib.apply(
            svc.store,
            text,
            who=who,
            comment=comment,
            topics=svc.catalog.topics,
            expected_version=expected_version,
        )
    except (JourneysError, RulesChangeError, store_rules.RulesConflictError) as exc:
        raise _change_error(exc) from None
    if svc.journeys is not None:
        svc.journeys.refresh()
    return {"applied": True, "journeys_hash": js.version, **stored.summary()}


def rollback_journeys_to(
    svc: Services, version: int, comment: str | None, who: str
) -> dict[str, Any]:
    """Put the text of ``version`` back in force as a new version (see :func:`apply_journeys`
    for the errors; 404 for an unknown version)."""
    try:
        stored, js = journeys_lib.rollback(
            svc.store, version, who=who, comment=comment, topics=svc.catalog.topics
        )
    except (JourneysError, RulesChangeError, store_rules.RulesConflictError) as exc:
        raise _change_error(exc) from None
    if svc.journeys is not None:
        svc.journeys.refresh()
    return {"applied": True, "journeys_hash": js.version, **stored.summary()}


def check_journeys(svc: Services, text: str) -> dict[str, Any]:
    """Validate ``text`` (422 naming the key and line) and diff it against the version
    in force: ``in_force`` (None when none), ``changes_journeys``, ``diff``."""
    try:
        proposed = journeys_lib.validate(text, svc.catalog.topics)
    except JourneysError as exc:
        raise _change_error(exc) from None
    record, current = snapshot(svc)
    return {
        "in_force": None if record is None else record.version,
        "changes_journeys": record is None or proposed.version != current.version,
        "diff": diff_text(
            "" if record is None else record.text,
            text,
            "(none)" if record is None else f"version {record.version}",
            "proposed",
        ),
    }


def hcp_journey_states(
    svc: Services, who: Principal, hcp_id: str, as_of: datetime | None = None
) -> dict[str, Any]:
    """Body of ``GET /v1/hcps/{hcp_id}/journeys``, after the territory check (403 for a
    rep's key outside its territory, 404 for an unknown HCP)."""
    check_hcp(svc.store, who, hcp_id)  # a rep's key: only HCPs of its territory
    hcp = svc.store.get_hcp(hcp_id)
    if hcp is None:
        raise unknown_hcp(hcp_id)
    now = svc.engine.decision_time(as_of)
    _, js = snapshot(svc)
    states = svc.engine.journey_states(hcp, now, js) if js else []
    due = [s for s in states if s.status == "due"]
    return {
        "hcp_id": hcp_id,
        "as_of": now.isoformat(),
        "journeys_hash": js.version,
        "governs": due[0].label if due else None,
        "journeys": [s.to_dict() for s in states],
    }
