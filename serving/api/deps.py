"""Typed dependencies: the services opened in ``lifespan`` and the caller's key.

Routes declare what they need with ``Annotated`` aliases::

    def route(svc: ServicesDep, who: DecideKey) -> ...

Tests replace :func:`get_services` (or the key checks) through
``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from nba.catalog import Catalog
from nba.contact import ContactPolicy
from nba.hcp_features import HCPFeatures
from nba.reward import RewardDefinition
from serving.auth import KEY_HEADERS, Authenticator, Principal
from serving.engine import DecisionEngine
from serving.errors import ApiError
from serving.journeys import JourneysKeeper
from serving.lifecycle import ModelManager
from serving.metrics import ServiceMetrics
from serving.rules import RulesKeeper
from serving.settings import Settings
from serving.store import EventStore


@dataclass
class Services:
    """Long-lived objects of one worker process, opened in ``lifespan``."""

    settings: Settings
    store: EventStore
    catalog: Catalog
    rules: RulesKeeper
    models: ModelManager
    metrics: ServiceMetrics
    engine: DecisionEngine
    auth: Authenticator
    features: HCPFeatures
    #: business value definition of the KPIs and the holdout lift
    value: RewardDefinition = field(default_factory=RewardDefinition.business_value)
    #: the journeys in force (serving/journeys.py); an empty set when none is stored
    journeys: JourneysKeeper | None = None

    @property
    def contact(self) -> ContactPolicy:
        """The contact rules in force (reloaded when the store's version moves)."""
        return self.rules.current()


def get_services(request: Request) -> Services:
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None:
        raise ApiError(503, "not_ready", "the service is starting; retry shortly")
    return svc


ServicesDep = Annotated[Services, Depends(get_services)]


def _key_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k in KEY_HEADERS}


def _auth(request: Request) -> Authenticator:
    auth: Authenticator | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise ApiError(503, "not_ready", "the service is starting; retry shortly")
    return auth


def require_decide(request: Request) -> Principal:
    return _auth(request).check(
        _key_headers(request), request.headers.get("authorization"), "decide"
    )


def require_report(request: Request) -> Principal:
    return _auth(request).check(
        _key_headers(request), request.headers.get("authorization"), "report"
    )


def require_admin(request: Request) -> Principal:
    return _auth(request).check(
        _key_headers(request), request.headers.get("authorization"), "admin"
    )


def require_any(request: Request) -> Principal:
    """Any valid key, whatever its scope (read-only routes)."""
    return _auth(request).check(_key_headers(request), request.headers.get("authorization"), None)


DecideKey = Annotated[Principal, Depends(require_decide)]
ReportKey = Annotated[Principal, Depends(require_report)]
AdminKey = Annotated[Principal, Depends(require_admin)]
AnyKey = Annotated[Principal, Depends(require_any)]
