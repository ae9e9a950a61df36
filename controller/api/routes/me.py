"""Who am I: the API key a request is made with."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from controller.api.auth import authorize
from controller.api.errors import problems
from controller.domain.access import Principal, Role

router = APIRouter(prefix="/v1", tags=["me"])

ANY_ROLE = authorize()


class Me(BaseModel):
    key_id: UUID
    name: str
    role: Role
    agent_id: str | None = None
    queues: list[str] = []  # a supervisor key's queues; empty: the whole floor


@router.get(
    "/me",
    response_model=Me,
    summary="The caller's API key: id, name and role (any role)",
    responses=problems(401, 503),
)
async def me(principal: Principal = Depends(ANY_ROLE)) -> Me:
    return Me(key_id=principal.key_id, name=principal.key_name, role=principal.role,
              agent_id=principal.agent_id, queues=list(principal.queues))
