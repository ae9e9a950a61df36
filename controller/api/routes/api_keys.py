"""API keys (admin only): create one (its secret is shown once), list them, revoke one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.destinations import QUEUE_PATTERN
from controller.services.api_keys import NAME_MAX_LENGTH, NAME_PATTERN

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])

ADMIN = authorize(Role.ADMIN)


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN,
                      description="What the key is for; no control characters",
                      examples=["crm-integration"])
    role: Role
    agent_id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
                                 description="For an agent key: the agent it acts for (it may then "
                                             "control that agent's calls, and only those)")
    queues: list[Annotated[str, StringConstraints(pattern=QUEUE_PATTERN)]] = Field(
        default_factory=list, max_length=100,
        description="For a supervisor key: the queues it oversees (recordings of calls in other "
                    "queues are not found for it). Empty or absent: the whole floor")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    role: Role
    prefix: str = Field(description="The public part of the key, `ccc_<prefix>_…`")
    created_at: datetime
    created_by: UUID | None = Field(description="The key that created this one; null if made "
                                                 "from the command line")
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    agent_id: str | None = Field(None, description="The agent an agent key acts for")
    queues: list[str] = Field(default_factory=list,
                              description="The queues a supervisor key oversees; empty: the whole floor")


class CreatedApiKey(ApiKeyOut):
    key: str = Field(description="The API key itself. Shown only in this response: store it now")


@router.post(
    "",
    status_code=201,
    response_model=CreatedApiKey,
    summary="Create an API key (admin); the response is the only time its secret is shown",
    responses=problems(400, 401, 403, 422, 503),
)
async def create_api_key(
    body: NewApiKey,
    response: Response,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(ADMIN),
) -> CreatedApiKey:
    key, plaintext = await runtime.api_keys.create(body.name, body.role, principal.key_id,
                                                      body.agent_id, body.queues)
    response.headers["Cache-Control"] = "no-store"
    return CreatedApiKey(**ApiKeyOut.model_validate(key).model_dump(), key=plaintext)


@router.get(
    "",
    response_model=list[ApiKeyOut],
    summary="All API keys, revoked ones included, newest first (admin); never their secrets",
    responses=problems(401, 403, 503),
)
async def list_api_keys(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(ADMIN),
) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key) for key in await runtime.api_keys.list()]


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key (admin); idempotent. A key cannot revoke itself (409)",
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def revoke_api_key(
    key_id: Annotated[UUID, Path(description="The key's id")],
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(ADMIN),
) -> Response:
    await runtime.api_keys.revoke(key_id, acting_key_id=principal.key_id)
    return Response(status_code=204)
