"""A hidden no-op route for ``bench/serve.py`` (only with ``NBA_BENCH_ROUTES=true``).

It parses and validates the same request body as ``POST /v1/decisions``, checks
the same API key, and answers a response of the same shape without touching the
store or the model: the reference the decision route is measured against.
"""

from __future__ import annotations

from fastapi import APIRouter

from serving import schemas
from serving.api.deps import DecideKey

router = APIRouter(include_in_schema=False)


@router.post("/v1/_bench/noop", status_code=201, response_model=schemas.DecisionResponse)
def noop(body: schemas.DecisionRequest, who: DecideKey) -> schemas.DecisionResponse:
    return schemas.DecisionResponse(
        event_id="00000000000000000000000000",
        model_version="noop",
        policy="noop",
        suggestions=[],
        chosen_action_id=None,
        activated=not body.defer_activation,
    )
