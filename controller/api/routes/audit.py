"""The audit log of writes through the API (admin only), newest first."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.storage.audit import AuditFilter

router = APIRouter(prefix="/v1/audit", tags=["audit"])

ADMIN = authorize(Role.ADMIN)

BIGINT_MAX = 2**63 - 1


class WriteMethod(StrEnum):
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    key_id: UUID | None
    key_name: str | None
    role: str | None
    method: str
    path: str
    action: str
    target: str | None
    status: int
    client_ip: str | None
    request_id: str | None
    detail: dict[str, Any]


@router.get(
    "",
    response_model=list[AuditEntryOut],
    summary="Audit entries, newest first (admin). Page with before_id = the last id received",
    responses=problems(401, 403, 422, 503),
)
async def list_audit(
    since: Timestamp | None = Query(None, description="Entries at or after this time"),
    until: Timestamp | None = Query(None, description="Entries before this time"),
    key_id: UUID | None = Query(None, description="Entries made with this API key"),
    method: WriteMethod | None = Query(None),
    path_prefix: str | None = Query(None, max_length=200, pattern=r"^/[^\x00-\x1f\x7f-\x9f]*$",
                                    description="Entries whose path starts with this"),
    before_id: int | None = Query(None, ge=1, le=BIGINT_MAX,
                                  description="Entries older than this id (the next page)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(ADMIN),
) -> list[AuditEntryOut]:
    filters = AuditFilter(since=since, until=until, key_id=key_id,
                          method=method.value if method else None, path_prefix=path_prefix,
                          before_id=before_id, limit=limit)
    return [AuditEntryOut.model_validate(entry) for entry in await runtime.audit.list(filters)]
