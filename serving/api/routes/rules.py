"""Contact rules over HTTP: read, diff, dry-run, apply, history, rollback.

``GET`` routes take any key; changing the rules and dry runs take ``admin``.
``PUT /v1/rules``, ``POST /v1/rules:dry-run`` and ``POST /v1/rules/diff`` take the
TOML text either raw (``Content-Type: application/toml`` or ``text/plain``, the
comment and options as query parameters) or as JSON (``{"text": ..., "comment":
...}``). The logic is :mod:`serving.rules`, shared with ``nba rules``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from nba.contact import RulesError
from serving import rules as rules_lib
from serving import store_rules
from serving.api.deps import AdminKey, AnyKey, Services, ServicesDep
from serving.errors import ApiError, ErrorBody, invalid

router = APIRouter(prefix="/v1", tags=["rules"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    409: {"model": ErrorBody, "description": "unchanged, or another change came first"},
    422: {"model": ErrorBody, "description": "invalid rules (details: key and line)"},
}


class RulesText(BaseModel):
    """A rules text with what a change needs."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The whole contact rules file, TOML.")
    comment: str | None = Field(default=None, description="Why (required to apply).")
    expected_version: int | None = Field(
        default=None, description="Refuse (409) unless this version is still in force."
    )
    days: float | None = Field(default=None, gt=0, description="Dry run: days to replay.")
    until: AwareDatetime | None = Field(
        default=None, description="Dry run: end of the replayed window (default: now)."
    )


#: the body of the routes that take a rules text: raw TOML, or JSON
TOML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/toml": {"schema": {"type": "string"}},
            "application/json": {"schema": RulesText.model_json_schema()},
        },
    }
}


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    comment: str = Field(description="Why (required).")


async def _read(request: Request) -> RulesText:
    """The body as :class:`RulesText`: JSON, or raw TOML with query parameters."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(raw or b"null")
        except ValueError as exc:
            raise invalid(f"body: not valid JSON: {exc}") from None
        try:
            return RulesText.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "body"
            raise invalid(f"body: {loc}: {first['msg']}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("body: the rules text must be UTF-8") from None
    q = request.query_params
    unknown = sorted(set(q) - {"comment", "expected_version", "days", "until"})
    if unknown:
        raise invalid(f"query: unknown parameter {unknown[0]!r}")
    try:
        return RulesText.model_validate({"text": text, **dict(q)})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise invalid(f"query: {loc}: {first['msg']}") from None


def _rules_error(exc: RulesError) -> ApiError:
    return ApiError(
        422,
        "invalid_rules",
        str(exc),
        details=[{"loc": exc.key or "text", "line": exc.line, "msg": str(exc)}],
    )


def _change_error(exc: Exception) -> ApiError:
    if isinstance(exc, RulesError):
        return _rules_error(exc)
    if isinstance(exc, rules_lib.RulesChangeError):
        return ApiError(exc.status, exc.code, str(exc))
    if isinstance(exc, store_rules.RulesConflictError):
        return ApiError(409, "rules_conflict", str(exc))
    raise exc


def _in_force(svc: Services) -> dict[str, Any]:
    record, policy = svc.rules.snapshot()
    return {
        **policy.describe(),
        "store_version": record.version,
        "applied": {
            "who": record.who,
            "at": record.created.isoformat(),
            "action": record.action,
            "comment": record.comment,
        },
        "text": record.text,
        # each worker process reloads on its own: which one answered
        "worker": os.getpid(),
    }


@router.get("/rules", responses=ERRORS, summary="The contact rules in force")
def get_rules(svc: ServicesDep, who: AnyKey) -> dict[str, Any]:
    """Every rule with its parameters, the order in which they are checked, the
    name that suppressed actions carry, each market section's own rules, the
    stored version in force (``store_version``; ``version`` is its hash, what
    decisions record), who applied it and why, and its TOML ``text``."""
    return _in_force(svc)


@router.put(
    "/rules", responses=ERRORS, summary="Apply new contact rules (admin)", openapi_extra=TOML_BODY
)
async def put_rules(request: Request, svc: ServicesDep, who: AdminKey) -> dict[str, Any]:
    """Validates the text (422 naming the key and line; the rules in force stay),
    stores it as a new version with the audit record (who = the key's name, when,
    the diff, the required ``comment``) and puts it in force in every worker
    (each checks the store's version at most every ``NBA_RULES_CHECK_MS``)."""
    body = await _read(request)
    return await run_in_threadpool(apply_rules, svc, body, who.name)


def apply_rules(svc: Services, body: RulesText, who: str) -> dict[str, Any]:
    """Apply ``body.text`` as ``who`` and put it in force (``PUT /v1/rules``, the
    console); :class:`ApiError` 409/422 when refused."""
    try:
        stored, _ = rules_lib.apply(
            svc.store,
            body.text,
            who=who,
            comment=body.comment,
            markets=svc.features.markets,
            expected_version=body.expected_version,
        )
    except (RulesError, rules_lib.RulesChangeError, store_rules.RulesConflictError) as exc:
        raise _change_error(exc) from None
    svc.rules.refresh()
    return {"applied": True, **stored.summary()}


@router.post(
    "/rules:dry-run",
    responses=ERRORS,
    summary="How many recent decisions proposed rules would change (admin)",
    openapi_extra=TOML_BODY,
)
async def dry_run(request: Request, svc: ServicesDep, who: AdminKey) -> dict[str, Any]:
    """Replays the stored decisions of the ``days`` days (default 7) before ``until``
    (default now) under the
    rules in force and under the proposed text, and counts the decisions whose
    allowed actions differ (see :func:`serving.rules.dry_run`). Nothing is stored."""
    body = await _read(request)
    return await run_in_threadpool(dry_run_rules, svc, body)


def dry_run_rules(svc: Services, body: RulesText) -> dict[str, Any]:
    """The dry-run report of ``body`` (``POST /v1/rules:dry-run``, the console)."""
    try:
        proposed = rules_lib.validate(body.text, svc.features.markets)
    except RulesError as exc:
        raise _rules_error(exc) from None
    record, current = svc.rules.snapshot()
    report = rules_lib.dry_run(
        svc.store,
        current,
        proposed,
        now=(body.until or datetime.now(UTC)).astimezone(UTC),
        days=body.days or 7.0,
        catalog=svc.catalog,
        history_days=svc.settings.history_days,
        current_version=record.version,
    )
    return report.to_dict()


@router.post(
    "/rules/diff",
    responses=ERRORS,
    summary="Diff of a proposed rules text against the version in force",
    openapi_extra=TOML_BODY,
)
async def diff_proposed(request: Request, svc: ServicesDep, who: AnyKey) -> dict[str, Any]:
    """Validates the text first (422 naming key and line), then answers the unified
    diff from the version in force to it and whether the rules differ at all."""
    body = await _read(request)
    return diff_rules(svc, body.text)


def diff_rules(svc: Services, text: str) -> dict[str, Any]:
    """Validate ``text``, then its diff from the version in force (the console too)."""
    try:
        proposed = rules_lib.validate(text, svc.features.markets)
    except RulesError as exc:
        raise _rules_error(exc) from None
    record, current = svc.rules.snapshot()
    return {
        "in_force": record.version,
        "changes_rules": proposed.version != current.version,
        "diff": rules_lib.diff_text(record.text, text, f"version {record.version}", "proposed"),
    }


@router.get(
    "/rules/diff", responses=ERRORS, summary="Diff of a stored version against the one in force"
)
def diff_version(
    svc: ServicesDep,
    who: AnyKey,
    version: int | None = Query(
        default=None,
        ge=1,
        description="Stored version (default: the one before the version in force).",
    ),
) -> dict[str, Any]:
    """The unified diff from the version in force to ``version``: what a rollback to it
    would change."""
    record, _ = svc.rules.snapshot()
    target_no = version if version is not None else record.version - 1
    target = store_rules.get(svc.store, target_no) if target_no >= 1 else None
    if target is None:
        raise ApiError(
            404, "unknown_rules_version", f"version: no rules version {target_no} is stored"
        )
    return {
        "in_force": record.version,
        "version": target.version,
        "diff": rules_lib.diff_text(
            record.text, target.text, f"version {record.version}", f"version {target.version}"
        ),
    }


@router.get("/rules/history", responses=ERRORS, summary="Every rules version with its audit record")
def history(
    svc: ServicesDep,
    who: AnyKey,
    limit: int = Query(default=100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Newest first: version, hash, who, when, action, comment and the diff."""
    record, _ = svc.rules.snapshot()
    return {
        "in_force": record.version,
        "versions": [v.summary() for v in store_rules.history(svc.store, limit)],
    }


@router.post(
    "/rules:rollback", responses=ERRORS, summary="Put an earlier rules version back (admin)"
)
def rollback(body: RollbackRequest, svc: ServicesDep, who: AdminKey) -> dict[str, Any]:
    """Stores the text of ``version`` as a new version in force (history is kept),
    with the audit record; refused when it has the rules in force already."""
    return rollback_rules(svc, body, who.name)


def rollback_rules(svc: Services, body: RollbackRequest, who: str) -> dict[str, Any]:
    """Put ``body.version`` back as ``who`` (``POST /v1/rules:rollback``, the console)."""
    try:
        stored, _ = rules_lib.rollback(
            svc.store,
            body.version,
            who=who,
            comment=body.comment,
            markets=svc.features.markets,
        )
    except (RulesError, rules_lib.RulesChangeError, store_rules.RulesConflictError) as exc:
        raise _change_error(exc) from None
    svc.rules.refresh()
    return {"applied": True, **stored.summary()}
