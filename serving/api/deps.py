"""Typed dependencies: the services opened in ``lifespan`` and the caller's key.

Routes declare what they need with ``Annotated`` aliases::

    def route(svc: ServicesDep, who: DecideKey) -> ...

Tests replace :func:`get_services` (or the key checks) through
``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Response
from pydantic import BaseModel

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


# The dependencies are ``async def`` although they never wait: FastAPI runs a plain
# ``def`` dependency in its thread pool, one thread hand-over per dependency and
# request, which cost more than the dependency itself (docs/performance.md).
async def get_services(request: Request) -> Services:
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None:
        raise ApiError(503, "not_ready", "the service is starting; retry shortly")
    return svc


ServicesDep = Annotated[Services, Depends(get_services)]

_KEY_HEADERS_RAW = frozenset(h.encode("latin-1") for h in KEY_HEADERS)


def _presented(request: Request) -> tuple[dict[str, str], str | None]:
    """The key headers (the last of each name) and the first ``Authorization``
    header, read in one pass over the raw headers."""
    keys: dict[str, str] = {}
    authorization: str | None = None
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name in _KEY_HEADERS_RAW:
            keys[name.decode("latin-1")] = value.decode("latin-1")
    return keys, authorization


def _check(request: Request, scope: str | None) -> Principal:
    auth: Authenticator | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise ApiError(503, "not_ready", "the service is starting; retry shortly")
    keys, authorization = _presented(request)
    return auth.check(keys, authorization, scope)


async def require_decide(request: Request) -> Principal:
    return _check(request, "decide")


async def require_report(request: Request) -> Principal:
    return _check(request, "report")


async def require_admin(request: Request) -> Principal:
    return _check(request, "admin")


async def require_any(request: Request) -> Principal:
    """Any valid key, whatever its scope (read-only routes)."""
    return _check(request, None)


DecideKey = Annotated[Principal, Depends(require_decide)]
ReportKey = Annotated[Principal, Depends(require_report)]
AdminKey = Annotated[Principal, Depends(require_admin)]
AnyKey = Annotated[Principal, Depends(require_any)]


def json_response(model: BaseModel, status: int) -> Response:
    """``model`` as a JSON response, serialized once by pydantic's own serializer.

    A route that returns this skips FastAPI's response handling, which validates
    the returned model against ``response_model`` a second time (in the thread
    pool, for a plain ``def`` route) before serializing it the same way; the
    route keeps ``response_model`` for its OpenAPI schema.
    """
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")
