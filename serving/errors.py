"""JSON errors with a stable ``code`` and a readable ``message``.

Every error the service sends has the body ``{"code": ..., "message": ...}``
(plus ``details`` for invalid input). Codes are part of the API and never change
meaning:

=====================  ======  ==========================================
code                   status  when
=====================  ======  ==========================================
invalid_input          422     a body, path or query value is wrong
unknown_hcp            404     the HCP id is not in the store
unknown_event          404     the event id is not in the store
not_found              404     no such route
method_not_allowed     405     the route exists, the method does not
event_id_conflict      409     an event id is reused
model_refused          409     a model failed to load or to score canaries
invalid_rules          422     a contact rules text is invalid (``details``: key, line)
rules_unchanged        409     the rules text equals the version in force
rules_conflict         409     another rules version was applied meanwhile
unknown_rules_version  404     no such stored contact rules version
unauthenticated        401     no API key or an unknown one
forbidden              403     the key lacks the route's scope
body_too_large         413     the body exceeds the size limit
unsupported_media      415     an upload is neither Parquet nor CSV
not_ready              503     the service is starting or lost its store
internal               500     a bug; never expected
=====================  ======  ==========================================
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("nba.serving")


class ErrorBody(BaseModel):
    """What every error response carries."""

    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ApiError(Exception):
    """Raised by routes and services; turned into a JSON error response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def unknown_hcp(hcp_id: str) -> ApiError:
    return ApiError(404, "unknown_hcp", f"HCP {hcp_id!r} is not in the store; PUT it first")


def unknown_event(event_id: str) -> ApiError:
    return ApiError(404, "unknown_event", f"event {event_id!r} is not in the store")


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_input", message)


_STATUS_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media",
    422: "invalid_input",
    503: "not_ready",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _clean(err: dict[str, Any]) -> dict[str, Any]:
    # errors may carry the raw input (possibly an HCP id) and exception objects:
    # keep only where and what
    return {
        "loc": _loc(err.get("loc", ())),
        "msg": str(err.get("msg", "")),
        "type": err.get("type"),
    }


def describe_invalid(errs: list[Any], where: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The message and ``details`` of an ``invalid_input`` error from pydantic's
    ``errors()``: where (prefixed by ``where``) and what, without the input values."""
    errors = [_clean(e) for e in errs]
    for e in errors:
        if where:
            e["loc"] = where if e["loc"] == "body" else f"{where}.{e['loc']}"
    first = errors[0] if errors else {"loc": where or "body", "msg": "invalid"}
    message = f"{first['loc']}: {first['msg']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return message, errors


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the ``{code, message}`` shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, errors = describe_invalid(list(exc.errors()))
        return error_response(422, "invalid_input", message, details=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.scope.get("route_path", "?"))
        return error_response(500, "internal", "internal error; it has been logged")
