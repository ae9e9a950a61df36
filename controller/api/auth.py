"""Who may call what: bearer API keys, one role each, checked per route.

    READERS = authorize(Role.ADMIN, Role.SUPERVISOR)

    @router.get("/v1/things", responses=problems(401, 403))   # problems: controller.api.errors
    async def things(principal: Principal = Depends(READERS)) -> ...

``authorize()`` without roles admits any valid key. A missing, malformed, unknown or revoked key
is 401 (with ``WWW-Authenticate: Bearer``); a valid key of another role is 403. The principal is
also left in ``request.state.principal``, where the audit middleware finds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api.deps import get_runtime
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.errors import Forbidden
from controller.services.api_keys import Unauthorized

__all__ = ["Forbidden", "Unauthorized", "authorize", "bearer"]


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
