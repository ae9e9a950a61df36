"""Who may call what: bearer API keys, one role each, checked per route.

    READERS = authorize(Role.ADMIN, Role.SUPERVISOR)

    @router.get("/v1/things", responses=problems(401, 403))
    async def things(principal: Principal = Depends(READERS)) -> ...

``authorize()`` without roles admits any valid key. A missing, malformed, unknown or revoked key
is 401 (with ``WWW-Authenticate: Bearer``); a valid key of another role is 403. The principal is
also left in ``request.state.principal``, where the audit middleware finds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from controller.api.deps import get_runtime
from controller.api.errors import PROBLEM_JSON
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.errors import ControllerError
from controller.services.api_keys import Unauthorized

__all__ = ["Forbidden", "Problem", "Unauthorized", "authorize", "bearer", "problems"]


class Forbidden(ControllerError):
    """This API key's role may not do this."""

    code = "forbidden"
    status = 403


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="ccc_<prefix>_<secret>",
    description="An API key, as created by `POST /v1/api-keys` or `cc-controller create-admin-key`.",
)


def authorize(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys of ``roles`` (of any role if none are given)."""
    allowed = frozenset(roles) or frozenset(Role)
    names = ", ".join(sorted(role.value for role in allowed))

    async def require_key(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        runtime: Runtime = Depends(get_runtime),
    ) -> Principal:
        principal = await runtime.api_keys.authenticate(credentials.credentials if credentials else None)
        request.state.principal = principal
        if principal.role not in allowed:
            raise Forbidden(f"role {principal.role.value} may not do this; allowed: {names}")
        return principal

    return require_key


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
