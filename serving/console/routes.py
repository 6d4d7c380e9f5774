"""The console's pages (``/console``) and ``GET /`` (a redirect to it).

Pages call the library and store functions the ``/v1`` routes call (the rep's
day list, feedback through :meth:`serving.engine.DecisionEngine.record_outcome`,
notifications, the HCP timeline, the rules helpers of
:mod:`serving.api.routes.rules` and the journeys helpers of
:mod:`serving.api.routes.journeys`, the KPIs and the holdout lift), with the same
territory checks (:mod:`serving.territory`). What a user sees follows the key's
scopes: ``decide`` (and rep keys) the rep's pages, ``report`` the marketer's and
the data scientist's pages (read-only), ``admin`` also changes the rules and the
journeys. A rep's key sees only its reps and the HCPs they own today.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from nba.paths import default_tracking_uri
from serving import journeys as journeys_lib
from serving import rep_day, store_rules
from serving import rules as rules_lib
from serving.api.deps import Services
from serving.api.routes import journeys as journeys_routes
from serving.api.routes import kpis as kpi_routes
from serving.api.routes import rules as rules_routes
from serving.auth import ANONYMOUS_ADMIN, Principal
from serving.console import charts, mlflow_view
from serving.console.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionCodec
from serving.errors import ApiError
from serving.schemas import OutcomeRequest
from serving.settings import Settings
from serving.store_kpis import KpiError, kpis
from serving.store_lift import lift
from serving.store_reps import get_rep
from serving.store_triggers import ack, active_suppressions, notifications
from serving.territory import check_event, check_hcp, check_rep

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters["num"] = charts.number
#: dismissal reasons offered by the rep's form (any 1..64-character code is stored)
DISMISS_REASONS: tuple[tuple[str, str], ...] = (
    ("not_relevant", "Not relevant for this HCP"),
    ("already_discussed", "Already discussed"),
    ("hcp_unavailable", "HCP unavailable"),
    ("wrong_timing", "Wrong timing"),
    ("other", "Other"),
)
SNOOZE_DAYS = 7
KPI_DAYS = (7, 14, 30, 60, 90)
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(prefix="/console", include_in_schema=False)
root = APIRouter(include_in_schema=False)


class Stop(Exception):
    """Ends a page early with ``response`` (login redirect, 403 page, ...)."""

    def __init__(self, response: Response) -> None:
        super().__init__("console stop")
        self.response = response


def make_codec(settings: Settings) -> SessionCodec | None:
    """The session codec, or None when the console is off (auth on, no secret)."""
    hours = settings.console_session_hours * 3600
    if settings.console_secret is not None:
        return SessionCodec(settings.console_secret.get_secret_value(), hours)
    if settings.auth_disabled:
        return SessionCodec(secrets.token_urlsafe(32), hours)
    return None


def install(app: FastAPI, settings: Settings) -> None:
    """Add the console's routes, static files and ``GET /`` to ``app``."""
    app.state.console_codec = make_codec(settings)
    app.include_router(router)
    app.include_router(root)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    async def stopped(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Stop)
        return exc.response

    app.add_exception_handler(Stop, stopped)


@root.get("/")
def to_console() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


# ------------------------------------------------------------------ plumbing
@dataclass(frozen=True)
class Ctx:
    """One request's console context: session, user (None before login), services."""

    request: Request
    session: Session
    user: Principal | None
    services: Services | None
    new_cookie: bool

    @property
    def can_rep(self) -> bool:
        return self.user is not None and self.user.allows("decide")

    @property
    def can_report(self) -> bool:
        return self.user is not None and self.user.allows("report") and not self.user.territorial

    @property
    def can_admin(self) -> bool:
        return self.user is not None and self.user.allows("admin")

    @property
    def svc(self) -> Services:
        if self.services is None:
            raise Stop(self.page("message.html", {"title": "Starting"}, 503))
        return self.services

    def page(self, template: str, values: Mapping[str, Any], status: int = 200) -> Response:
        ctx = {
            "request": self.request,
            "user": self.user,
            "csrf": self.session.csrf,
            "csrf_field": CSRF_FIELD,
            "can_rep": self.can_rep,
            "can_report": self.can_report,
            "can_admin": self.can_admin,
            "rep_ids": sorted(self.user.rep_ids) if self.user else [],
            **values,
        }
        resp = TEMPLATES.TemplateResponse(self.request, template, ctx, status_code=status)
        return self.finish(resp)

    def finish(self, resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cache-Control"] = "no-store"
        if self.new_cookie:
            set_cookie(self.request, resp, self.session)
        return resp

    def redirect(self, url: str) -> Response:
        return self.finish(RedirectResponse(url, status_code=303))

    def forbid(self, message: str) -> Stop:
        return Stop(self.page("message.html", {"title": "Not allowed", "message": message}, 403))

    def need_rep(self) -> None:
        if not self.can_rep:
            raise self.forbid(f"key '{self.user_name}' lacks the 'decide' scope for the rep pages")

    def need_report(self) -> None:
        if not self.can_report:
            why = (
                "a rep's key sees only its own territory"
                if self.user is not None and self.user.territorial
                else "it lacks the 'report' scope"
            )
            raise self.forbid(f"key '{self.user_name}' may not open this page: {why}")

    def need_scope(self, scope: str, what: str) -> None:
        if self.user is None or not self.user.allows(scope):
            raise self.forbid(f"key '{self.user_name}' lacks the '{scope}' scope to {what}")

    def need_admin(self) -> None:
        if not self.can_admin:
            raise self.forbid(f"key '{self.user_name}' lacks the 'admin' scope for this change")

    @property
    def user_name(self) -> str:
        return self.user.name if self.user else "?"


def set_cookie(request: Request, resp: Response, session: Session) -> None:
    codec: SessionCodec = request.app.state.console_codec
    resp.set_cookie(
        COOKIE,
        codec.dump(session),
        max_age=int(codec.max_age_s),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _context(request: Request, login: bool = True) -> Ctx:
    """The request's context; redirects to the login page when ``login`` is needed."""
    codec: SessionCodec | None = getattr(request.app.state, "console_codec", None)
    services: Services | None = getattr(request.app.state, "services", None)
    if codec is None:
        resp = TEMPLATES.TemplateResponse(
            request,
            "message.html",
            {
                "request": request,
                "user": None,
                "title": "Console off",
                "message": "The console is off: set NBA_CONSOLE_SECRET (at least 32 random "
                "characters) to sign its session cookies.",
            },
            status_code=503,
        )
        raise Stop(resp)
    loaded = codec.load(request.cookies.get(COOKIE))
    session = loaded or Session.fresh()
    settings: Settings = request.app.state.settings
    user: Principal | None = None
    if settings.auth_disabled:
        user = ANONYMOUS_ADMIN
    elif session.digest is not None:
        user = request.app.state.auth.identify_digest(session.digest)
    ctx = Ctx(request, session, user, services, new_cookie=loaded is None)
    if login and user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Stop(ctx.redirect("/console/login?" + urlencode({"next": target})))
    return ctx


async def _form(ctx: Ctx) -> dict[str, str]:
    """The posted form, after the CSRF check (403 page when the token is wrong)."""
    form = await ctx.request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    token = values.get(CSRF_FIELD) or ctx.request.headers.get(CSRF_HEADER)
    if not ctx.session.csrf_ok(token):
        raise Stop(
            ctx.page(
                "message.html",
                {
                    "title": "Form expired",
                    "message": "The form's security token does not match this session "
                    "(expired or sent from another site). Reload the page and try again.",
                },
                403,
            )
        )
    return values


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/console") and not value.startswith("//"):
        return value
    return "/console"


def _api_error(ctx: Ctx, exc: ApiError) -> Stop:
    title = {403: "Not allowed", 404: "Not found"}.get(exc.status, "Refused")
    return Stop(ctx.page("message.html", {"title": title, "message": exc.message}, exc.status))


def _inline_error(exc: ApiError) -> dict[str, Any]:
    """A refused text's error as a form shows it under the editor (message, line, key)."""
    detail = (exc.details or [{}])[0] if exc.details else {}
    return {"message": exc.message, "line": detail.get("line"), "key": detail.get("loc")}


def _refused(ctx: Ctx, exc: ValidationError) -> Stop:
    """A rollback form's bad field as a 422 page naming it."""
    first = exc.errors()[0]
    return Stop(
        ctx.page(
            "message.html",
            {"title": "Refused", "message": f"{first['loc'][0]}: {first['msg']}"},
            422,
        )
    )


def _today() -> date:
    return datetime.now(UTC).date()


# --------------------------------------------------------------------- login
@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None, out: int = 0) -> Response:
    ctx = _context(request, login=False)
    if ctx.user is not None and not out:
        return ctx.redirect(_safe_next(next))
    return ctx.page("login.html", {"next": _safe_next(next), "logged_out": bool(out)})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    ctx = _context(request, login=False)
    form = await _form(ctx)
    key = form.get("api_key", "").strip()
    nxt = _safe_next(form.get("next"))
    principal = request.app.state.auth.identify(key) if key else None
    if principal is None:
        message = "Enter an API key." if not key else "Unknown API key: check it and try again."
        return ctx.page("login.html", {"next": nxt, "error": message}, 401)
    from serving.settings import hash_key

    session = ctx.session.logged_in(hash_key(key))
    resp = RedirectResponse(nxt, status_code=303)
    set_cookie(request, resp, session)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    ctx = _context(request, login=False)
    await _form(ctx)
    resp = RedirectResponse("/console/login?out=1", status_code=303)
    set_cookie(request, resp, Session.fresh())
    return resp


# ---------------------------------------------------------------------- home
@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    ctx = _context(request)
    assert ctx.user is not None
    if ctx.user.territorial and len(ctx.user.rep_ids) == 1:
        return ctx.redirect(f"/console/reps/{quote(next(iter(ctx.user.rep_ids)))}")
    return ctx.page("home.html", {"title": "Console"})


# ----------------------------------------------------------------------- rep
@router.get("/rep", response_class=HTMLResponse)
def rep_pick(request: Request, rep_id: str | None = None) -> Response:
    ctx = _context(request)
    ctx.need_rep()
    assert ctx.user is not None
    if not rep_id and ctx.user.territorial and len(ctx.user.rep_ids) == 1:
        rep_id = next(iter(ctx.user.rep_ids))
    if rep_id:
        return ctx.redirect(f"/console/reps/{quote(rep_id.strip(), safe='')}")
    return ctx.page("rep_pick.html", {"title": "Rep"})


def _open_rep(ctx: Ctx, rep_id: str) -> Any:
    ctx.need_rep()
    assert ctx.user is not None
    try:
        check_rep(ctx.user, rep_id)
    except ApiError as exc:
        raise _api_error(ctx, exc) from None
    rep = get_rep(ctx.svc.store, rep_id)
    if rep is None:
        raise Stop(
            ctx.page(
                "message.html",
                {"title": "Not found", "message": f"rep {rep_id!r} is not in the store"},
                404,
            )
        )
    return rep


@router.get("/reps/{rep_id}", response_class=HTMLResponse)
async def rep_page(request: Request, rep_id: str, done: str = "", error: str = "") -> Response:
    ctx = _context(request)
    rep = _open_rep(ctx, rep_id)
    svc = ctx.svc
    day = await run_in_threadpool(rep_day.make_day, svc.engine, rep, _today())
    closed = rep_day._closed_events(svc.engine, [s.event_id for s in day.suggestions])
    feed = notifications(svc.store, rep.rep_id, None, None, 20)
    return ctx.page(
        "rep.html",
        {
            "title": f"Rep {rep.name or rep.rep_id}",
            "rep": rep,
            "day": day,
            "open": [s for s in day.suggestions if s.event_id not in closed],
            "closed": [s for s in day.suggestions if s.event_id in closed],
            "notifications": feed,
            "reasons": DISMISS_REASONS,
            "snooze_default": (_today() + timedelta(days=SNOOZE_DAYS)).isoformat(),
            "snooze_min": (_today() + timedelta(days=1)).isoformat(),
            "done": done,
            "error": error,
        },
    )


@router.post("/reps/{rep_id}/feedback")
async def rep_feedback(request: Request, rep_id: str) -> Response:
    ctx = _context(request)
    rep = _open_rep(ctx, rep_id)
    ctx.need_scope("report", "report feedback")  # as POST /v1/events/{id}/outcomes
    form = await _form(ctx)
    assert ctx.user is not None
    back = f"/console/reps/{quote(rep.rep_id, safe='')}"
    event_id = form.get("event_id", "")
    kind = form.get("type", "")
    try:
        check_event(ctx.svc.store, ctx.user, event_id)
        # validated like the JSON body of POST /v1/events/{event_id}/outcomes
        req = OutcomeRequest.model_validate(
            {
                "type": kind,
                "action_id": form.get("action_id") or None,
                "reason_code": (form.get("reason_code") or None) if kind == "dismissed" else None,
                "until": (form.get("until") or None) if kind == "snoozed" else None,
                "source_id": f"console:{ctx.user.name}",
            }
        )
        await run_in_threadpool(ctx.svc.engine.record_outcome, event_id, req)
    except ApiError as exc:
        return ctx.redirect(back + "?" + urlencode({"error": exc.message}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        return ctx.redirect(back + "?" + urlencode({"error": f"{where}: {first['msg']}"}))
    return ctx.redirect(back + "?" + urlencode({"done": kind}))


@router.post("/reps/{rep_id}/notifications/{notification_id}/ack")
async def rep_ack(request: Request, rep_id: str, notification_id: int) -> Response:
    ctx = _context(request)
    rep = _open_rep(ctx, rep_id)
    ctx.need_scope("report", "mark notifications read")  # as the :ack route
    await _form(ctx)
    back = f"/console/reps/{quote(rep.rep_id, safe='')}"
    got = ack(ctx.svc.store, rep.rep_id, notification_id, datetime.now(UTC))
    if got is None:
        msg = f"rep {rep.rep_id!r} has no notification {notification_id}"
        return ctx.redirect(back + "?" + urlencode({"error": msg}))
    return ctx.redirect(back + "?" + urlencode({"done": "read"}))


@router.get("/hcps/{hcp_id}", response_class=HTMLResponse)
async def hcp_page(request: Request, hcp_id: str, before: str | None = None) -> Response:
    ctx = _context(request)
    ctx.need_scope("report", "see HCP timelines")  # as GET /v1/hcps/{id}/timeline
    assert ctx.user is not None
    svc = ctx.svc
    try:
        check_hcp(svc.store, ctx.user, hcp_id)
        hcp = svc.store.get_hcp(hcp_id)
        if hcp is None:
            raise ApiError(404, "unknown_hcp", f"HCP {hcp_id!r} is not in the store")
        tl = await run_in_threadpool(rep_day.timeline, svc.engine, hcp_id, 50, before)
        # as GET /v1/hcps/{id}/journeys, with the same territory check
        journeys = await run_in_threadpool(
            journeys_routes.hcp_journey_states, svc, ctx.user, hcp_id
        )
    except ApiError as exc:
        raise _api_error(ctx, exc) from None
    return ctx.page(
        "hcp.html",
        {
            "title": f"HCP {hcp_id}",
            "hcp": hcp,
            "timeline": tl,
            "journeys": journeys,
            "suppressions": active_suppressions(svc.store, hcp_id, datetime.now(UTC)),
            "titles": {i.id: i.title for i in svc.catalog.items},
        },
    )


# ------------------------------------------------------------------ marketer
def _rules_values(ctx: Ctx, diff_version: int | None) -> dict[str, Any]:
    svc = ctx.svc
    record, policy = svc.rules.snapshot()
    versions = store_rules.history(svc.store, 50)
    shown_diff = None
    if diff_version is not None:
        target = store_rules.get(svc.store, diff_version)
        if target is not None:
            shown_diff = {
                "version": target.version,
                "diff": rules_lib.diff_text(
                    record.text,
                    target.text,
                    f"version {record.version}",
                    f"version {target.version}",
                ),
            }
    return {
        "title": "Contact rules",
        "record": record,
        "policy": policy.describe(),
        "versions": versions,
        "shown_diff": shown_diff,
    }


@router.get("/rules", response_class=HTMLResponse)
def rules_page(request: Request, diff: int | None = None, applied: int | None = None) -> Response:
    ctx = _context(request)
    ctx.need_report()
    values = _rules_values(ctx, diff)
    return ctx.page(
        "rules.html",
        {**values, "text": values["record"].text, "comment": "", "applied": applied},
    )


#: what a console edit form's action does: ``(ctx, action, text, comment, expected
#: version)`` -> the version stored (the page then redirects) or the result to show
EditAction = Callable[[Ctx, str, str, str, int | None], Awaitable[int | dict[str, Any]]]


async def _edit_post(
    request: Request,
    page: str,
    admin_actions: tuple[str, ...],
    act: EditAction,
    values: Callable[[Ctx, int | None], dict[str, Any]],
) -> Response:
    """The rules and journeys edit forms: any marketer may check a text, the actions
    in ``admin_actions`` need an admin; ``act`` runs the action and returns the
    version it stored (an int: redirect to ``/console/<page>?applied=<version>``) or
    the values to show; a refusal (:class:`ApiError`) is shown inline with the text
    kept as typed."""
    ctx = _context(request)
    ctx.need_report()
    form = await _form(ctx)
    action = form.get("action", "")
    text = form.get("text", "").replace("\r\n", "\n")
    comment = form.get("comment", "").strip()
    if action in admin_actions:
        ctx.need_admin()
    assert ctx.user is not None
    expected_text = form.get("expected_version")
    expected = int(expected_text) if expected_text and expected_text.isdigit() else None
    result: dict[str, Any] = {}
    error: dict[str, Any] | None = None
    status = 200
    try:
        done = await act(ctx, action, text, comment, expected)
        if isinstance(done, int):
            return ctx.redirect(f"/console/{page}?applied={done}")
        result = done
    except ApiError as exc:
        status = exc.status
        error = _inline_error(exc)
    return ctx.page(
        f"{page}.html",
        {**values(ctx, None), "text": text, "comment": comment, "error": error, **result},
        status,
    )


def _unknown_action(action: str) -> ApiError:
    return ApiError(422, "invalid_input", f"action: unknown action {action!r}")


async def _rules_action(
    ctx: Ctx, action: str, text: str, comment: str, expected: int | None
) -> int | dict[str, Any]:
    assert ctx.user is not None
    body = rules_routes.RulesText(text=text, comment=comment or None, expected_version=expected)
    if action == "apply":
        stored = await run_in_threadpool(rules_routes.apply_rules, ctx.svc, body, ctx.user.name)
        return int(stored["version"])
    if action == "dry-run":
        return {"dry_run": await run_in_threadpool(rules_routes.dry_run_rules, ctx.svc, body)}
    if action == "diff":
        return {"diff": rules_routes.diff_rules(ctx.svc, text)}
    raise _unknown_action(action)


@router.post("/rules", response_class=HTMLResponse)
async def rules_post(request: Request) -> Response:
    """Diff (any marketer), dry-run or apply (admin) a rules text."""
    return await _edit_post(request, "rules", ("apply", "dry-run"), _rules_action, _rules_values)


async def _rollback(
    request: Request,
    page: str,
    model: type[Any],
    rollback: Callable[[Services, Any, str], Mapping[str, Any]],
) -> Response:
    """Put an earlier rules or journeys version back in force from the console's form
    (admin, comment required): ``model`` validates the form's version and comment,
    ``rollback(svc, body, who)`` stores it; a refusal is shown on ``page``."""
    ctx = _context(request)
    ctx.need_admin()
    form = await _form(ctx)
    assert ctx.user is not None
    try:
        body = model(
            version=int(form.get("version", "0") or 0), comment=form.get("comment", "").strip()
        )
        stored = await run_in_threadpool(rollback, ctx.svc, body, ctx.user.name)
    except ValidationError as exc:
        raise _refused(ctx, exc) from None
    except ApiError as exc:
        raise _api_error(ctx, exc) from None
    return ctx.redirect(f"/console/{page}?applied={stored['version']}")


@router.post("/rules/rollback")
async def rules_rollback(request: Request) -> Response:
    """Put an earlier rules version back in force (admin, comment required)."""
    return await _rollback(
        request, "rules", rules_routes.RollbackRequest, rules_routes.rollback_rules
    )


def _finite(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan


@router.get("/kpis", response_class=HTMLResponse)
async def kpis_page(request: Request, days: int = 14, alpha: float = 0.05) -> Response:
    ctx = _context(request)
    ctx.need_report()
    svc = ctx.svc
    if days not in KPI_DAYS or not 0.0 < alpha < 0.5:
        raise Stop(
            ctx.page(
                "message.html",
                {
                    "title": "Bad request",
                    "message": f"days: one of {', '.join(map(str, KPI_DAYS))}; "
                    "alpha: between 0 and 0.5",
                },
                422,
            )
        )
    end = _today() + timedelta(days=1)
    start = end - timedelta(days=days)

    def at(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    def work() -> tuple[Any, list[Any], Any]:
        period = kpis(svc.store, at(start), at(end), "channel", svc.value)
        daily = [
            kpis(
                svc.store,
                at(start + timedelta(i)),
                at(start + timedelta(i + 1)),
                "channel",
                svc.value,
            )
            for i in range(days)
        ]
        report = lift(
            svc.store, at(start), at(end), svc.value, kpi_routes.holdout_target(svc), alpha
        )
        return period, daily, report

    try:
        period, daily, report = await run_in_threadpool(work)
    except KpiError as exc:
        raise Stop(
            ctx.page("message.html", {"title": "Refused", "message": str(exc)}, 422)
        ) from None
    labels = [(start + timedelta(i)).strftime("%m-%d") for i in range(days)]
    channels = sorted({g.key for r in daily for g in r.groups})
    series = {
        ch: [next((g.engagement_rate for g in r.groups if g.key == ch), None) for r in daily]
        for ch in channels
    }
    lift_rows = [
        (m, _finite(e.difference), _finite(e.low), _finite(e.high))
        for m, e in report.holdout.items()
    ]
    return ctx.page(
        "kpis.html",
        {
            "title": "KPIs",
            "days": days,
            "day_choices": KPI_DAYS,
            "alpha": alpha,
            "period": period,
            "labels": labels,
            "series": series,
            "engagement_chart": charts.line_chart(
                f"Engagement rate by channel per day, last {days} days", labels, series
            ),
            "lift": report,
            "lift_chart": charts.interval_chart(
                f"Holdout lift (treated minus holdout) with {1 - alpha:.0%} intervals",
                lift_rows,
            ),
        },
    )


@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(request: Request, market: str = "") -> Response:
    ctx = _context(request)
    ctx.need_report()
    cat = ctx.svc.catalog
    today = _today()
    soon = today + timedelta(days=30)
    rows = []
    for item in cat.items:
        approvals = [
            {
                "market": a.market,
                "start": a.start,
                "expiry": a.expiry,
                "state": (
                    "expired"
                    if a.expiry <= today
                    else "not yet"
                    if a.start > today
                    else "expiring"
                    if a.expiry <= soon
                    else "active"
                ),
            }
            for a in item.approvals
            if not market or a.market == market
        ]
        if market and not approvals:
            continue
        rows.append({"item": item, "approvals": approvals})
    return ctx.page(
        "catalog.html",
        {
            "title": "Content catalog",
            "catalog": cat,
            "rows": rows,
            "markets": cat.markets,
            "market": market,
            "today": today,
        },
    )


def _journeys_values(ctx: Ctx, diff_version: int | None) -> dict[str, Any]:
    svc = ctx.svc
    record, js = journeys_routes.snapshot(svc)
    versions = journeys_lib.history(svc.store, 50)
    shown_diff = None
    if diff_version is not None and record is not None:
        target = store_rules.get(svc.store, diff_version, table=journeys_lib.TABLE)
        if target is not None:
            shown_diff = {
                "version": target.version,
                "diff": rules_lib.diff_text(
                    record.text,
                    target.text,
                    f"version {record.version}",
                    f"version {target.version}",
                ),
            }
    return {
        "title": "Journeys",
        "record": record,
        "journeys": js.journeys,
        "journeys_hash": js.version,
        "versions": versions,
        "shown_diff": shown_diff,
    }


@router.get("/journeys", response_class=HTMLResponse)
def journeys_page(
    request: Request, diff: int | None = None, applied: int | None = None
) -> Response:
    """The journeys in force (readable, and their TOML), history, diff and rollback."""
    ctx = _context(request)
    ctx.need_report()
    values = _journeys_values(ctx, diff)
    record = values["record"]
    return ctx.page(
        "journeys.html",
        {
            **values,
            "text": "" if record is None else record.text,
            "comment": "",
            "applied": applied,
        },
    )


async def _journeys_action(
    ctx: Ctx, action: str, text: str, comment: str, expected: int | None
) -> int | dict[str, Any]:
    assert ctx.user is not None
    if action == "apply":
        stored = await run_in_threadpool(
            journeys_routes.apply_journeys,
            ctx.svc,
            text,
            comment or None,
            expected,
            ctx.user.name,
        )
        return int(stored["version"])
    if action == "diff":
        return {"diff": journeys_routes.check_journeys(ctx.svc, text)}
    raise _unknown_action(action)


@router.post("/journeys", response_class=HTMLResponse)
async def journeys_post(request: Request) -> Response:
    """Check (validate and diff, any marketer) or apply (admin) a journeys text."""
    return await _edit_post(request, "journeys", ("apply",), _journeys_action, _journeys_values)


@router.post("/journeys/rollback")
async def journeys_rollback(request: Request) -> Response:
    """Put an earlier journeys version back in force (admin, comment required)."""

    def rollback(svc: Services, body: Any, who: str) -> Mapping[str, Any]:
        return journeys_routes.rollback_journeys_to(svc, body.version, body.comment, who)

    return await _rollback(request, "journeys", journeys_routes.JourneysRollback, rollback)


# ------------------------------------------------------------ data scientist
def _tracking(svc: Services) -> str:
    return svc.settings.tracking_uri or default_tracking_uri()


def _registered_name(uri: str) -> str:
    if uri.startswith("models:/"):
        rest = uri[len("models:/") :]
        return rest.split("@", 1)[0].split("/", 1)[0]
    from training.mlflow_utils import REGISTERED_MODEL

    return REGISTERED_MODEL


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request) -> Response:
    ctx = _context(request)
    ctx.need_report()
    svc = ctx.svc
    uri = _tracking(svc)

    def work() -> tuple[str, Any, Any, Any]:
        name = _registered_name(svc.models.uri)
        return (
            name,
            mlflow_view.model_versions(uri, name),
            mlflow_view.gate_decisions(uri),
            mlflow_view.latest_reports(uri),
        )

    name, versions, gates, reports = await run_in_threadpool(work)
    return ctx.page(
        "models.html",
        {
            "title": "Models",
            "current": svc.models.current,
            "following": svc.models.uri,
            "registered": name,
            "versions": versions,
            "gates": gates,
            "reports": reports,
        },
    )


@router.get("/models/runs/{run_id}/artifacts/{path:path}")
async def artifact(request: Request, run_id: str, path: str) -> Response:
    ctx = _context(request)
    ctx.need_report()
    uri = _tracking(ctx.svc)
    data = await run_in_threadpool(mlflow_view.read_artifact, uri, run_id, path)
    if data is None:
        raise Stop(
            ctx.page(
                "message.html",
                {"title": "Not found", "message": f"run {run_id!r} shows no artifact {path!r}"},
                404,
            )
        )
    kind = "image/png" if path.endswith(".png") else "text/plain; charset=utf-8"
    return ctx.finish(Response(data, media_type=kind))
