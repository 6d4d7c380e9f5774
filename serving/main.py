"""The FastAPI application: :func:`create_app` builds it and includes the routers.

Nothing heavy happens at import or in :func:`create_app`: the catalog, the
contact rules, the reward definition, the event store and the model are opened
in ``lifespan`` (once per worker process), and a background task follows the
model alias from there.

``uvicorn --factory serving.main:create_app`` (what ``nba serve`` runs) reads
every setting from the environment (``NBA_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from nba.catalog import Catalog
from nba.hcp_features import HCPFeatures
from nba.paths import default_tracking_uri
from nba.reward import RewardDefinition
from nba.triggers import TriggerSet
from serving import errors
from serving import journeys as journeys_lib
from serving.api import fast
from serving.api.deps import Services
from serving.api.routes import (
    bench,
    decisions,
    events,
    hcps,
    health,
    journeys,
    kpis,
    models,
    notifications,
    outcomes,
    personalizer,
    reps,
    rules,
    touches,
)
from serving.auth import Authenticator
from serving.commit import GroupCommitter
from serving.commit_outcomes import OutcomeCommitter
from serving.console import routes as console
from serving.engine import DecisionEngine
from serving.lifecycle import ModelManager, PolicyLoader
from serving.metrics import ServiceMetrics, multiprocess_dir
from serving.rules import RulesKeeper
from serving.rules import file_text as rules_file_text
from serving.rules import seed as seed_rules
from serving.settings import Settings
from serving.store import EventStore

log = logging.getLogger("nba.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_PATHS = frozenset({"/v1/hcps:import", "/v1/touches:import"})

DESCRIPTION = """\
Next-best-action decisions for HCP engagement: per HCP, which approved content to
offer next on which channel, chosen by a contextual bandit among the actions the
contact policy allows. Every decision is stored (with its full probability vector
and propensity) before it is answered, so its outcome can teach the model and
evaluate it off-policy.

Errors are JSON `{code, message}` with stable codes. Authenticate with
`Authorization: Bearer <key>` (or `X-API-Key`); scopes `decide`, `report`, `admin`.
"""


class LimitsAndMetrics:
    """Body-size limits (413), per-route latency histogram, access log by route template.

    The access log names the route template (``/v1/hcps/{hcp_id}``), never the
    raw path, so HCP ids are not written to logs.
    """

    def __init__(self, app: ASGIApp, get_state: Callable[[], Any]) -> None:
        self.app = app
        self.get_state = get_state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.get_state()
        settings: Settings | None = getattr(state, "settings", None)
        upload = scope.get("path", "") in UPLOAD_PATHS
        limit = (
            (settings.max_upload_bytes if upload else settings.max_body_bytes)
            if settings is not None
            else 2_000_000
        )
        declared = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size > limit or size < 0:
                    await _send_error(send, 413, "body_too_large", limit, size)
                    return
                declared = True
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, f"request body exceeds {limit} bytes")
            return message

        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            # a body whose length is declared (and within the limit) is framed by the
            # server's HTTP parser to exactly that length: only a chunked body, of
            # unknown length, needs counting as it arrives
            await self.app(scope, receive if declared else limited_receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            services: Services | None = getattr(state, "services", None)
            if services is not None:
                services.metrics.observe_request(
                    template, scope.get("method", ""), int(status), elapsed
                )
            log.info("%s %s %d %.1fms", scope.get("method"), template, status, elapsed * 1e3)


async def _send_error(send: Send, status: int, code: str, limit: int, size: int) -> None:
    import json

    message = (
        f"request body of {size} bytes exceeds the limit of {limit} bytes"
        if size >= 0
        else "invalid Content-Length header"
    )
    body = json.dumps({"code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def open_services(settings: Settings, loader: PolicyLoader | None = None) -> Services:
    """Open everything a worker needs (catalog, rules, reward, store, model)."""
    catalog = Catalog.load(settings.catalog_path) if settings.catalog_path else Catalog.default()
    features = (
        HCPFeatures.load(settings.features_path)
        if settings.features_path
        else HCPFeatures.default()
    )
    # the startup file is checked even when the store already holds rules
    rules_text, rules_source = rules_file_text(settings.rules_path, features.markets)
    reward = (
        RewardDefinition.load(settings.reward_path)
        if settings.reward_path
        else RewardDefinition.default()
    )
    value = (
        RewardDefinition.load(settings.value_path)
        if settings.value_path
        else RewardDefinition.business_value()
    )
    if settings.triggers_path:
        triggers = TriggerSet.load(settings.triggers_path, catalog)
    elif settings.catalog_path is None:
        triggers = TriggerSet.default(catalog)
    else:
        # the packaged triggers name packaged content: with another catalog, a
        # deployment brings its own trigger file
        triggers = TriggerSet(())
        log.warning("no NBA_TRIGGERS_PATH with a custom catalog: no event triggers")
    store = EventStore(
        settings.store_location,
        reward_window_days=float(reward.window_days),
        synchronous=settings.store_synchronous,
    )
    store.add_catalog(catalog)
    # the rules in force live in the store: the startup file only seeds an empty store
    in_force = seed_rules(
        store,
        rules_text,
        who="service start",
        comment=f"loaded from {rules_source} at the first service start",
        markets=features.markets,
    )
    if in_force.text != rules_text:
        log.warning(
            "contact rules version %d from the store are in force; %s differs from them "
            "and is not applied (change rules with PUT /v1/rules or `nba rules apply`)",
            in_force.version,
            rules_source,
        )
    keeper = RulesKeeper(store, features.markets, check_ms=settings.rules_check_ms)
    if settings.journeys_path is not None:
        # refused here, before anything is stored, when the file is invalid
        journeys_text = journeys_lib.file_text(settings.journeys_path, catalog.topics)
        in_force_j = journeys_lib.seed(
            store,
            journeys_text,
            who="service start",
            comment=f"loaded from {settings.journeys_path} at the first service start",
            topics=catalog.topics,
        )
        if in_force_j.text != journeys_text:
            log.warning(
                "journeys version %d from the store are in force; %s differs from them and "
                "is not applied (change journeys with PUT /v1/journeys or `nba journeys apply`)",
                in_force_j.version,
                settings.journeys_path,
            )
    journeys_keeper = journeys_lib.JourneysKeeper(
        store, catalog.topics, check_ms=settings.rules_check_ms
    )
    contact = keeper.current()
    metrics = ServiceMetrics()
    tracking = settings.tracking_uri or default_tracking_uri()
    models = ModelManager(
        settings.model_uri,
        catalog,
        seed=settings.policy_seed,
        canary_requests=settings.canary_requests,
        tracking_uri=tracking,
        loader=loader,
        on_swap=lambda result, _v: metrics.model_swaps.labels(result=result).inc(),
    )
    if settings.tracking_uri:
        os.environ.setdefault("MLFLOW_TRACKING_URI", settings.tracking_uri)
    if tracking.startswith(("http://", "https://")):
        # MLflow's client retries an unreachable tracking server for about four minutes
        # per call; a replica starting or checking its alias while the server is down
        # should fall back (baseline, or the model it has) within seconds instead
        for var, default in SERVER_CLIENT_DEFAULTS.items():
            os.environ.setdefault(var, default)
    result = models.start()
    metrics.set_model(models.current.version)
    if models.current.is_baseline:
        log.warning("%s", models.current.note)
    else:
        log.info("%s", result.message)
    engine = DecisionEngine(
        store=store,
        catalog=catalog,
        contact=contact,
        models=models,
        reward=reward,
        metrics=metrics,
        seed=settings.policy_seed,
        history_days=settings.history_days,
        allow_client_time=settings.allow_client_time,
        features=features,
        holdout=settings.holdout_policy,
        triggers=triggers,
        webhook=settings.webhook_url is not None,
    )
    engine.rules = keeper
    engine.journeys = journeys_keeper
    if settings.group_commit:
        engine.committer = GroupCommitter(store)
        engine.outcome_committer = OutcomeCommitter(store)
    return Services(
        settings=settings,
        store=store,
        catalog=catalog,
        rules=keeper,
        models=models,
        metrics=metrics,
        engine=engine,
        auth=Authenticator(settings),
        features=features,
        value=value,
        journeys=journeys_keeper,
    )


#: MLflow client settings of the service against a tracking server (each only when the
#: environment does not set it): docs/deploy.md, "When the tracking server is down"
SERVER_CLIENT_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


async def _deliver_webhooks(services: Services) -> None:
    """The background deliverer of rep notifications (serving/webhook.py)."""
    from serving.webhook import Deliverer

    cfg = services.settings
    assert cfg.webhook_url is not None and cfg.webhook_secret is not None
    deliverer = Deliverer(
        services.store,
        cfg.webhook_url,
        cfg.webhook_secret.get_secret_value().encode("utf-8"),
        max_attempts=cfg.webhook_max_attempts,
        backoff_s=cfg.webhook_backoff_s,
        timeout_s=cfg.webhook_timeout_s,
    )
    while True:
        try:
            await asyncio.to_thread(deliverer.run_once)
        except Exception:  # the deliverer must never stop
            log.exception("webhook delivery failed")
        await asyncio.sleep(cfg.webhook_poll_s)


async def _follow_alias(app: FastAPI, services: Services) -> None:
    interval = services.settings.model_poll_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            result = await asyncio.to_thread(services.models.poll)
        except Exception:  # the check must never stop
            log.exception("model alias check failed")
            continue
        if result is not None and result.swapped:
            services.metrics.set_model(result.version)


def create_app(settings: Settings | None = None, loader: PolicyLoader | None = None) -> FastAPI:
    """Build the app. ``settings`` default: read from the environment (``NBA_*``).

    Parameters
    ----------
    settings : Settings, optional
    loader : callable, optional
        ``uri -> Policy`` used to load models (default: the MLflow registry loader).
    """
    cfg = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cfg.auth_disabled:
            log.warning(
                "AUTH IS DISABLED (NBA_AUTH_DISABLED=true): every caller has every scope; "
                "use this for local demos only"
            )
        if cfg.allow_client_time:
            log.warning(
                "CLIENT TIME IS ALLOWED (NBA_ALLOW_CLIENT_TIME=true): decision requests may "
                "set their own time with `as_of`; use this for simulation or replay only"
            )
        services = await asyncio.to_thread(open_services, cfg, loader)
        if cfg.fast_routes:
            app.state.fast_executor = fast.open_executor()
            app.state.decide_executor = fast.open_decide_executor()
            app.state.outcome_executor = fast.open_outcome_executor()
        app.state.services = services
        if cfg.gc_freeze:
            # what the worker holds for its lifetime is left out of every collection
            gc.freeze()
        follower = None
        if cfg.model_poll_seconds > 0:
            follower = asyncio.create_task(_follow_alias(app, services))
        webhook = None
        if cfg.webhook_url:
            webhook = asyncio.create_task(_deliver_webhooks(services))
        try:
            yield
        finally:
            for task in (follower, webhook):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            app.state.services = None
            executor = app.state.fast_executor
            app.state.fast_executor = None
            if executor is not None:
                executor.shutdown(wait=True)
            decide_executor = app.state.decide_executor
            app.state.decide_executor = None
            if decide_executor is not None:
                decide_executor.shutdown(wait=True)
            outcome_executor = app.state.outcome_executor
            app.state.outcome_executor = None
            if outcome_executor is not None:
                outcome_executor.shutdown(wait=True)
            if services.engine.committer is not None:
                services.engine.committer.close()
            if services.engine.outcome_committer is not None:
                services.engine.outcome_committer.close()
            services.store.close()
            if multiprocess_dir():
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="nba decision service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = cfg
    app.state.auth = Authenticator(cfg)
    app.state.services = None
    app.state.fast_executor = None
    app.state.decide_executor = None
    app.state.outcome_executor = None
    errors.install(app)
    for module in (
        decisions,
        events,
        touches,
        hcps,
        models,
        personalizer,
        health,
        reps,
        kpis,
        rules,
        journeys,
        outcomes,
    ):
        app.include_router(module.router)
    app.include_router(notifications.router)
    if cfg.bench_routes:
        app.include_router(bench.router)
    console.install(app, cfg)
    if cfg.fast_routes:
        # inside LimitsAndMetrics (added last, so outermost): same limits, metrics, log
        app.add_middleware(fast.FastRoutes, fastapi_app=app)
    app.add_middleware(LimitsAndMetrics, get_state=lambda: app.state)
    return app
