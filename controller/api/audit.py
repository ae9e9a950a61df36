"""Every write request under /v1 leaves an audit entry, whatever its outcome.

A plain ASGI middleware (no body buffering): it gives each request an id (a sane
``X-Request-ID`` from the caller, else a new UUID) and echoes it in the response; after a
POST, PUT, PATCH or DELETE under /v1, and after every GET of a recording's audio, it records
who (the principal that ``authorize`` left in ``request.state``), what (route name, path, path
parameters), the status and the client address. Request bodies are never recorded, so no secret
reaches the log. Entries go through the buffered record writer, so an outage of Postgres loses none.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.domain.access import Principal
from controller.storage.records import AuditRow

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reads that are audited too: listening to a call recording (whatever the outcome).
AUDITED_READS = re.compile(r"/v1/recordings/[^/]+/audio")
REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TEXT = 512


def install_audit(app: FastAPI) -> None:
    app.add_middleware(AuditMiddleware)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # No status yet means an unhandled error: the outer error middleware answers 500.
            if _audited(scope):
                _record(scope, status or 500, request_id)


def _audited(scope: Scope) -> bool:
    path: str = scope["path"]
    if scope["method"] in ("GET", "HEAD") and AUDITED_READS.fullmatch(path):
        return True
    return scope["method"] in WRITE_METHODS and (path == "/v1" or path.startswith("/v1/"))


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return str(uuid.uuid4())


def _record(scope: Scope, status: int, request_id: str) -> None:
    state: dict[str, Any] = scope.get("state", {})
    principal: Principal | None = state.get("principal")
    method: str = scope["method"]
    route = scope.get("route")
    path_params: dict[str, Any] = scope.get("path_params") or {}
    if route is not None and method in (getattr(route, "methods", None) or ()):
        action = route.name
        target = "/".join(str(value) for value in path_params.values()) or None
    else:  # no route for this method and path (404, 405): no name, no parameters
        action = f"{method} {scope['path']}"
        target = None
    client = scope.get("client")
    row = AuditRow(
        at=datetime.now(UTC),
        key_id=principal.key_id if principal else None,
        key_name=principal.key_name if principal else None,
        role=principal.role.value if principal else None,
        method=method,
        path=_clean(scope["path"]),
        action=_clean(action),
        target=_clean(target) if target is not None else None,
        status=status,
        client_ip=_clean(client[0]) if client else None,
        request_id=request_id,
        detail={},
    )
    scope["app"].state.runtime.audit.record(row)


def _clean(text: str) -> str:
    """Printable, storable (no NUL, no lone surrogate) and bounded: paths come from anyone."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("\ufffd", text)[:MAX_TEXT]
