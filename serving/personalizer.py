"""Azure AI Personalizer v1.0 compatibility, for teams migrating off it.

``POST /personalizer/v1.0/rank`` takes the original ``RankRequest``
(``contextFeatures``, ``actions`` with ``id`` and ``features``,
``excludedActions``, ``eventId``, ``deferActivation``) and answers the original
``RankResponse`` (``ranking`` of ``{id, probability}``, ``eventId``,
``rewardActionId``). It runs the same engine as ``/v1/decisions``:

- the HCP is named by an ``hcp_id`` (or ``hcpId``) entry in one of the
  ``contextFeatures`` objects; the other context features become the request
  features (nested objects flattened with dots), so they are logged and
  featurized like any request context;
- action ids must be catalog action ids (``content@channel``); their
  ``features`` are accepted and ignored, because the catalog already describes
  every action (topic, format, channel) the same way for training and serving;
- the contact policy applies as everywhere; excluded and suppressed actions are
  ranked last with probability 0, as Personalizer ranks excluded actions.

``/events/{eventId}/reward`` stores an outcome of type ``reward`` with the
given value; ``/events/{eventId}/activate`` activates a deferred event. Both
answer 204 like the original.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nba.domain import Action, Outcome, ValidationError
from serving import schemas
from serving.engine import DecisionEngine
from serving.errors import ApiError, invalid, unknown_event, unknown_hcp
from serving.store import DuplicateEventError, StoreError, UnknownEventError

HCP_KEYS = ("hcp_id", "hcpId", "HcpId", "hcpid")
MAX_FEATURES = 64
REWARD_TYPE = "reward"


def flatten_features(features: list[dict[str, Any]]) -> dict[str, str | int | float | bool]:
    """Personalizer context features (a list of objects) as one flat mapping.

    >>> flatten_features([{"user": {"tier": "gold", "visits": 3}}, {"device": "ipad"}])
    {'user.tier': 'gold', 'user.visits': 3, 'device': 'ipad'}
    """
    out: dict[str, str | int | float | bool] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if depth > 4:
            raise invalid(f"contextFeatures: '{prefix}' is nested deeper than 4 levels")
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v, depth + 1)
        elif value is None:
            return
        elif isinstance(value, bool | int | str):
            out[prefix] = value if not isinstance(value, str) else value[:256]
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise invalid(f"contextFeatures: '{prefix}' is not a finite number")
            out[prefix] = value
        else:
            raise invalid(f"contextFeatures: '{prefix}' has an unsupported value")
        if len(out) > MAX_FEATURES:
            raise invalid(f"contextFeatures: more than {MAX_FEATURES} features")

    for i, obj in enumerate(features):
        if not isinstance(obj, Mapping):
            raise invalid(f"contextFeatures[{i}]: must be an object")
        walk("", obj, 0)
    return out


def rank(
    engine: DecisionEngine, req: schemas.PzRankRequest, principal: str
) -> tuple[int, schemas.PzRankResponse]:
    """Rank the request's actions for the HCP named in its context; store the event.

    Returns (201, response) when an event was stored, (200, response) with every
    probability 0 and no ``rewardActionId`` when the contact policy allowed nothing.
    """
    request = flatten_features(req.contextFeatures)
    hcp_id = next((str(request.pop(k)) for k in HCP_KEYS if k in request), None)
    if not hcp_id:
        raise invalid("contextFeatures: one object must carry the HCP as 'hcp_id'")
    ids = [a.id for a in req.actions]
    if len(set(ids)) != len(ids):
        raise invalid("actions: an action id is listed twice")
    actions: list[Action] = []
    for i, aid in enumerate(ids):
        try:
            a = Action.parse(aid)
        except ValidationError:
            raise invalid(
                f"actions[{i}].id: {aid!r} is not a catalog action 'content@channel'"
            ) from None
        item = engine.catalog.by_id.get(a.content_id)
        if item is None or a.channel not in item.channels:
            raise invalid(f"actions[{i}].id: {aid!r} is not an action of the catalog")
        actions.append(a)
    unknown_ex = [x for x in req.excludedActions if x not in ids]
    if unknown_ex:
        raise invalid(f"excludedActions: {unknown_ex[0]!r} is not one of the actions")
    hcp = engine.store.get_hcp(hcp_id)
    if hcp is None:
        raise unknown_hcp(hcp_id)
    channels = tuple(dict.fromkeys(a.channel for a in actions))
    now = datetime.now(UTC)
    pr = engine.prepare(
        hcp,
        now=now,
        channels=channels,
        k=len(actions),
        request=request,
        requester=str(request.get("requester", principal)),
        exclude=[Action.parse(x) for x in req.excludedActions],
        event_id=req.eventId,
        defer_activation=req.deferActivation,
        explain=False,
        candidates=actions,
        ranked_rest=True,
    )
    ranked = [
        schemas.PzRankedAction(id=s.action_id, probability=s.probability) for s in pr.suggestions
    ]
    served = {r.id for r in ranked}
    ranked += [schemas.PzRankedAction(id=aid, probability=0.0) for aid in ids if aid not in served]
    if pr.decision is None:
        return 200, schemas.PzRankResponse(
            ranking=ranked, eventId=req.eventId or "", rewardActionId=None
        )
    try:
        engine.store_decisions([pr.decision], req.deferActivation)
    except DuplicateEventError:
        raise ApiError(
            409, "event_id_conflict", f"eventId {pr.decision.event_id!r} is already used"
        ) from None
    engine._count([pr])
    return 201, schemas.PzRankResponse(
        ranking=ranked, eventId=pr.decision.event_id, rewardActionId=pr.decision.chosen_action_id
    )


def reward(engine: DecisionEngine, event_id: str, value: float) -> None:
    """Store the reward as an outcome of type ``reward`` (first one wins)."""
    try:
        stored = engine.store.add_outcome(
            Outcome(event_id, datetime.now(UTC), REWARD_TYPE, float(value), "personalizer", "")
        )
    except UnknownEventError:
        raise unknown_event(event_id) from None
    except StoreError as exc:
        raise invalid(str(exc)) from None
    if stored:
        engine.metrics.outcomes.labels(type=REWARD_TYPE, late="false").inc()


def activate(engine: DecisionEngine, event_id: str) -> None:
    engine.activate(event_id)
