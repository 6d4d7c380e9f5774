"""The reference for ``bench/serve.py``: a bare FastAPI app with one no-op route.

No middleware, no API key, no store, no model: one ``POST /v1/decisions`` that
validates the same request body as the decision service's route and answers a
response of the same shape, one ``POST /v1/events/{event_id}/outcomes`` that does
the same for the outcome route (the reference of ``bench/outcomes.py``), and a
``GET /readyz`` to wait on. The route is a
plain ``def`` like the service's (FastAPI runs it in its thread pool), so the
gap measured against it is what the service adds to FastAPI's own cost of
such a route. Run by ``bench/serve.py`` under uvicorn with the same number of
workers as the service.
"""

from __future__ import annotations

from fastapi import FastAPI

from serving.schemas import DecisionRequest, DecisionResponse, OutcomeRequest, OutcomeResponse

app = FastAPI()


@app.post("/v1/decisions", status_code=201, response_model=DecisionResponse)
def noop(body: DecisionRequest) -> DecisionResponse:
    """Answer an empty decision of the service's response shape."""
    return DecisionResponse(
        event_id="00000000000000000000000000",
        model_version="noop",
        policy="noop",
        suggestions=[],
        chosen_action_id=None,
        activated=not body.defer_activation,
    )


@app.post("/v1/events/{event_id}/outcomes", status_code=201, response_model=OutcomeResponse)
def noop_outcome(event_id: str, body: OutcomeRequest) -> OutcomeResponse:
    """Answer an outcome of the service's response shape, stored nowhere."""
    return OutcomeResponse(
        event_id=event_id,
        type=body.type,
        action_id=body.action_id,
        kind="hcp_response",
        stored=True,
        late=False,
    )


@app.get("/readyz")
def readyz() -> dict[str, str]:
    """Ready as soon as the worker runs."""
    return {"status": "ready"}
