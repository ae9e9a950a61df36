"""Every error leaves the API as RFC 9457 problem+json with a stable ``type``."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from controller.domain.errors import ControllerError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://cc-controller.dev/problems/"


class ProblemFieldError(BaseModel):
    location: list[str] = Field(description="Where the invalid value is, e.g. [body, name]")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A stable URI naming the kind of problem; branch on this")
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] = Field(
        default_factory=list, description="Validation errors, one per invalid value (422 only)")


_DESCRIPTIONS = {
    400: "The body could not be read (not UTF-8 JSON)",
    401: "No valid API key (missing, malformed, unknown or revoked)",
    403: "The API key's role may not do this",
    404: "No such resource",
    409: "Conflicts with the resource's current state",
    422: "Invalid request: `detail` names the first invalid field, `errors` lists them all",
    503: "A storage backend is unavailable; retry later",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries for error statuses a route can answer, as problem+json."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _http_code(status: int) -> str:
    return {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        406: "not-acceptable",
        409: "conflict",
        413: "payload-too-large",
        415: "unsupported-media-type",
        422: "validation-error",
        503: "service-unavailable",
    }.get(status, "http-error")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        errors.append({
            "location": [str(part) for part in error.get("loc", ())],
            "message": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        })
    return errors


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ControllerError)
    async def controller_error(request: Request, exc: ControllerError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("request %s %s failed: %s", request.method, request.url.path, exc.detail)
        return problem(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        where = ".".join(first["location"])
        return problem(422, "validation-error", f"{where}: {first['message']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route on this path; GET and POST are two routes.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem(exc.status_code, _http_code(exc.status_code), str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal-error", "internal error; see the controller's log")
