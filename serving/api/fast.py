"""The two hot routes served below FastAPI's routing and dependency solving.

``POST /v1/decisions`` and ``POST /v1/events/{event_id}/outcomes`` are what the
rep app and the email platform call for every HCP and every response. Through
FastAPI each request pays for route matching over every route of the app, the
exception wrappers, the dependency solver (its bookkeeping for two
dependencies), parsing the body to Python objects and validating them, the
thread-pool hand-over through anyio, and a ``Response`` object; together several
times the decision's own HTTP work (docs/performance.md, "The hot routes below
FastAPI").

:class:`FastRoutes` is an ASGI middleware that sits inside ``LimitsAndMetrics``
(so body limits, the latency histogram and the access log are the same) and in
front of FastAPI's router. For exactly these two routes it:

1. reads the body (declared ``Content-Length`` only) and validates it with one
   ``model_validate_json`` call of the route's request model;
2. checks the API key with the app's own :class:`~serving.auth.Authenticator`;
3. hands the route's work (the same calls the FastAPI route makes: the
   territory check, then the engine) to a thread pool once, and sends the
   answer serialized once by pydantic, with the headers FastAPI would send.
   A decision is computed in a small pool of its own
   (:data:`DECIDE_THREADS`) and handed to the group committer from there; its
   commit is awaited on the event loop, so no thread waits for the fsync and
   the few threads that hold the GIL do not hand it over to a dozen others
   (docs/performance.md, "Where the decision's CPU goes in the server"). It is
   answered, as before, only once its decision is committed. An outcome is
   checked against its decision in a small pool of its own
   (:data:`OUTCOME_THREADS`, one read: :meth:`EventStore.outcome_target`) and
   handed to the outcome committer from there; the event loop awaits one future,
   settled by the pool thread on an error or by the committer once the outcome
   is committed (docs/performance.md, "Sixth pass: no thread waits for an
   outcome's commit").

Every request it is not sure to answer exactly as FastAPI would goes to FastAPI
unchanged, with the body it already read replayed: another method or path, a
``root_path``, a body without a declared length or not declared as JSON, a body
that does not validate, a missing or refused key, a service still starting,
dependency overrides (tests), an event id outside the path's limits. So every
error of validation, authentication and readiness is FastAPI's own answer, and
the routes stay in FastAPI's OpenAPI document. An error the work raises
(unknown HCP, event id conflict, a rep key outside its territory, ...) is
answered by the app's exception handler for it, as FastAPI's exception
middleware does; an unexpected one propagates to the server-error handler, as
from the FastAPI route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from serving import schemas
from serving.api.deps import Services
from serving.auth import KEY_HEADERS, Principal
from serving.engine import DecisionWork, event_id_conflict
from serving.errors import ApiError
from serving.store import DuplicateEventError
from serving.territory import check_event, check_hcp
from serving.threads import name_native_thread

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("nba.serving.fast")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DECISIONS = "/v1/decisions"
EVENTS_PREFIX = "/v1/events/"
OUTCOMES_SUFFIX = "/outcomes"
#: the outcome route's template, as FastAPI's route (and the metrics) name it
OUTCOMES = EVENTS_PREFIX + "{event_id}" + OUTCOMES_SUFFIX
#: the length limits of the outcome route's ``event_id`` path parameter
EVENT_ID_MAX = 128
#: threads of the hand-over pool: as many as anyio's default limiter lets FastAPI
#: run, since a request waiting for its group commit holds its thread
THREADS = 40

#: threads of the decision pool: a decision's work (the store's reads, the policy)
#: holds the GIL but for SQLite's statements, so more threads than cores only add
#: GIL hand-overs; its commit is awaited on the loop, holding no thread
DECIDE_THREADS = 2

#: threads of the outcome pool: an outcome's reads before its write are short and
#: hold the GIL but for SQLite's statements; its commit is awaited on the loop
OUTCOME_THREADS = 2

_KEY_HEADERS_RAW = frozenset(h.encode("latin-1") for h in KEY_HEADERS)
_JSON = b"application/json"
_CONTENT_TYPE = (b"content-type", b"application/json")


def is_json_media(value: bytes) -> bool:
    """Whether a ``Content-Type`` value is one FastAPI surely reads as JSON.

    Only ``application/json`` (any case) with or without parameters; FastAPI
    reads more (``application/*+json``), which then goes to FastAPI.

    >>> is_json_media(b"application/json"), is_json_media(b"Application/JSON; charset=utf-8")
    (True, True)
    >>> is_json_media(b"text/plain"), is_json_media(b"application/jsonx")
    (False, False)
    """
    v = value.lower()
    return v == _JSON or (v.startswith(_JSON) and v[len(_JSON) : len(_JSON) + 1] == b";")


def outcome_event_id(path: str) -> str | None:
    """The event id of an outcome route's path, or None when the path is not one
    whose id FastAPI's route would accept as it is.

    >>> outcome_event_id("/v1/events/E1/outcomes")
    'E1'
    >>> [outcome_event_id(p) for p in ("/v1/events/outcomes", "/v1/events/a/b/outcomes")]
    [None, None]
    """
    if not (path.startswith(EVENTS_PREFIX) and path.endswith(OUTCOMES_SUFFIX)):
        return None
    event_id = path[len(EVENTS_PREFIX) : len(path) - len(OUTCOMES_SUFFIX)]
    if (
        len(path) <= len(EVENTS_PREFIX) + len(OUTCOMES_SUFFIX)
        or not event_id
        or "/" in event_id
        or len(event_id) > EVENT_ID_MAX
    ):
        return None
    return event_id


class FastRoutes:
    """ASGI middleware answering the two hot routes without FastAPI's request
    machinery, and passing everything else to it (see the module docstring).

    Parameters
    ----------
    app : ASGI app
        The rest of the middleware stack (FastAPI's exception middleware and router).
    fastapi_app : FastAPI
        The application: its ``state`` (services, authenticator), its dependency
        overrides, its routes (for the metrics' route template) and its exception
        handlers.

    The routes' work runs in the thread pools ``fastapi_app.state.fast_executor``
    and (decisions) ``fastapi_app.state.decide_executor``, opened and closed with
    the services in ``lifespan``: it reads the store and may wait on it, so never
    on the event loop. A decision's commit is awaited on the loop.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._routes: dict[str, Any] | None = None

    def _route(self, template: str) -> Any:
        """FastAPI's route object of ``template``: what its router puts in
        ``scope["route"]`` (the metrics and the access log read its ``path``)."""
        if self._routes is None:
            from serving.api.routes import decisions, events

            self._routes = {
                r.path: r
                for r in (*decisions.router.routes, *events.router.routes)
                if isinstance(r, APIRoute)
                and "POST" in (r.methods or ())
                and r.path in (DECISIONS, OUTCOMES)
            }
        return self._routes.get(template)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        event_id: str | None = None
        if path == DECISIONS:
            template = DECISIONS
        else:
            event_id = outcome_event_id(path)
            if event_id is None:
                await self.app(scope, receive, send)
                return
            template = OUTCOMES
        app = self.fastapi_app
        services: Services | None = getattr(app.state, "services", None)
        executor: ThreadPoolExecutor | None = getattr(app.state, "fast_executor", None)
        route = self._route(template)
        if services is None or executor is None or app.dependency_overrides or route is None:
            await self.app(scope, receive, send)
            return
        # one pass over the raw headers: the body's framing and type, the key
        json_body = declared = False
        keys: dict[str, str] = {}
        authorization: str | None = None
        content_type_seen = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                if not content_type_seen:  # FastAPI reads the first one
                    content_type_seen = True
                    json_body = is_json_media(value)
            elif name == b"content-length":
                declared = True
            elif name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name in _KEY_HEADERS_RAW:
                keys[name.decode("latin-1")] = value.decode("latin-1")
        if not (json_body and declared):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":  # the client left: FastAPI's answer
                await self._delegate(scope, receive, send, received)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        model = schemas.DecisionRequest if event_id is None else schemas.OutcomeRequest
        try:
            request: Any = model.model_validate_json(body)
        except ValidationError:
            await self._delegate(scope, receive, send, received)
            return
        auth = getattr(app.state, "auth", None)
        if auth is None:
            await self._delegate(scope, receive, send, received)
            return
        try:
            who: Principal = auth.check(
                keys, authorization, "decide" if event_id is None else "report"
            )
        except ApiError:  # 401 or 403: FastAPI's dependency answers it
            await self._delegate(scope, receive, send, received)
            return
        scope["route"] = route  # the metrics and the access log name the template
        loop = asyncio.get_running_loop()
        try:
            if event_id is None:
                status, out = await self._decide(loop, executor, services, who, request)
            else:
                status, out = await self._outcome(loop, executor, services, who, event_id, request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to the server-error handler, as from the FastAPI route
            conn = Request(scope, receive)
            response = await handler(conn, exc)
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(out)).encode("latin-1")), _CONTENT_TYPE],
            }
        )
        await send({"type": "http.response.body", "body": out})

    async def _decide(
        self,
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor,
        svc: Services,
        who: Principal,
        req: schemas.DecisionRequest,
    ) -> tuple[int, bytes]:
        """``POST /v1/decisions``'s work: computed in the decision pool, then its
        commit awaited here on the loop (no thread is held while the group commits)."""
        engine = svc.engine
        pool: ThreadPoolExecutor = (
            getattr(self.fastapi_app.state, "decide_executor", None) or executor
        )
        work, out = await loop.run_in_executor(pool, _decide, svc, who, req)
        if work.no_contact:
            await loop.run_in_executor(executor, engine.record_no_contact_of, work)
        decision = work.prepared.decision
        if decision is not None:
            stored = engine.submit_decision(work)
            try:
                if stored is None:  # no group committer: stored (and waited for) in the pool
                    await loop.run_in_executor(
                        executor, engine.store_decisions, [decision], work.deferred
                    )
                else:
                    await asyncio.wrap_future(stored, loop=loop)
            except DuplicateEventError:
                raise event_id_conflict(decision.event_id) from None
            engine.decision_stored(work)
        return work.status, out

    async def _outcome(
        self,
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor,
        svc: Services,
        who: Principal,
        event_id: str,
        req: schemas.OutcomeRequest,
    ) -> tuple[int, bytes]:
        """``POST /v1/events/{event_id}/outcomes``'s work: checked against its decision
        in the outcome pool, then its commit awaited here on the loop (no thread is
        held while the group commits), then answered."""
        engine = svc.engine
        pool: ThreadPoolExecutor = (
            getattr(self.fastapi_app.state, "outcome_executor", None) or executor
        )
        # one future the pool thread (or, once it has handed the outcome over, the
        # committer) settles: the loop is woken once per outcome, for its answer
        settled: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        pool.submit(_start_outcome, loop, settled, svc, who, event_id, req)
        pending, result = await settled
        if result is _IN_PLACE:  # no group committer: stored (and waited for) in the pool
            (result,) = await loop.run_in_executor(
                executor, engine.commit_outcomes, [pending.write]
            )
        status, answer = engine.finish_outcome(pending, result)
        return status, _json(answer)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The app's handler for ``exc`` as FastAPI's exception middleware finds it
        (by the exception's classes; ``Exception`` itself belongs to the
        server-error handler)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None

    async def _delegate(
        self, scope: Scope, receive: Receive, send: Send, received: list[Message]
    ) -> None:
        """Pass the request to FastAPI, replaying the messages already read."""
        pending = list(received)

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def open_executor() -> ThreadPoolExecutor:
    """The hand-over pool of :class:`FastRoutes` (one per worker process)."""
    return ThreadPoolExecutor(
        max_workers=THREADS, thread_name_prefix="nba-fast", initializer=name_native_thread
    )


def open_decide_executor() -> ThreadPoolExecutor:
    """The decision pool of :class:`FastRoutes` (one per worker process): the
    decisions' CPU-bound work, :data:`DECIDE_THREADS` at a time."""
    return ThreadPoolExecutor(
        max_workers=DECIDE_THREADS, thread_name_prefix="nba-decide", initializer=name_native_thread
    )


def open_outcome_executor() -> ThreadPoolExecutor:
    """The outcome pool of :class:`FastRoutes` (one per worker process): an
    outcome's checks against its decision, :data:`OUTCOME_THREADS` at a time (its
    commit is awaited on the loop, holding no thread)."""
    return ThreadPoolExecutor(
        max_workers=OUTCOME_THREADS,
        thread_name_prefix="nba-outcome",
        initializer=name_native_thread,
    )


def _json(model: BaseModel) -> bytes:
    """``model`` serialized by pydantic: the bytes of ``model.model_dump_json()``."""
    return model.__pydantic_serializer__.to_json(model)


def _decide(
    svc: Services, who: Principal, req: schemas.DecisionRequest
) -> tuple[DecisionWork, bytes]:
    """``POST /v1/decisions``'s work before its writes, as the FastAPI route does it
    (in the decision pool): the territory check, the engine's decision, and its
    answer serialized (off the event loop; sent only once the decision is stored)."""
    check_hcp(svc.store, who, req.hcp_id)
    work = svc.engine.start_decision(req, who.name)
    return work, _json(work.response)


#: what :func:`_start_outcome` settles its future with when no group committer is
#: attached: the loop then stores the outcome in the hand-over pool
_IN_PLACE = object()


def _start_outcome(
    loop: asyncio.AbstractEventLoop,
    settled: asyncio.Future[tuple[Any, Any]],
    svc: Services,
    who: Principal,
    event_id: str,
    req: schemas.OutcomeRequest,
) -> None:
    """``POST /v1/events/{event_id}/outcomes``'s work before its write, as the
    FastAPI route does it (in the outcome pool): the territory check, the outcome
    checked against its decision (:meth:`DecisionEngine.start_outcome`), then
    handed to the outcome committer. ``settled`` (on ``loop``) gets the pending
    outcome and its write's result once committed, or the error of a step."""
    try:
        check_event(svc.store, who, event_id)
        pending = svc.engine.start_outcome(event_id, req)
        written = svc.engine.submit_outcome(pending)
    except BaseException as exc:  # the route's error (404, 422, ...): the loop raises it
        _call_on(loop, _settle, settled, None, exc)
        return
    if written is None:
        _call_on(loop, _settle, settled, (pending, _IN_PLACE), None)
        return

    def committed(f: Future[list[bool | Exception]]) -> None:  # in the committer's thread
        exc = f.exception()
        _call_on(loop, _settle, settled, None if exc else (pending, f.result()[0]), exc)

    written.add_done_callback(committed)


def _settle(
    settled: asyncio.Future[tuple[Any, Any]],
    value: tuple[Any, Any] | None,
    exc: BaseException | None,
) -> None:
    """Settle ``settled`` (on its loop) unless its request was cancelled meanwhile."""
    if settled.done():
        return
    if exc is not None:
        settled.set_exception(exc)
    else:
        settled.set_result(value)  # type: ignore[arg-type]


def _call_on(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """``fn(*args)`` on ``loop`` from another thread; nothing when the loop is closed
    (the server stopped while the outcome was being written)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # closed
        log.warning("an outcome was settled after its event loop closed")
