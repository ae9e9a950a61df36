"""Agents: who takes queue calls, on which device, with which skills, and their state log.
Admins and supervisors write; integrations read. Agents may read the agents too (until keys
carry an agent identity, an agent key reads every agent, not only its own)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.agents import MAX_SKILL_LEVEL, MIN_SKILL_LEVEL, AgentState
from controller.services.agents import (
    DEVICE_PATTERN,
    ID_PATTERN,
    LABEL_PATTERN,
    MAX_GROUPS,
    MAX_SKILLS,
    NAME_MAX_LENGTH,
    STATE_DEVICE_PATTERN,
    STATE_LOG_LIMIT,
    TEXT_PATTERN,
    AgentSpec,
)
from controller.storage.acd import AgentRecord, AgentStateRow

router = APIRouter(prefix="/v1/agents", tags=["agents"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
AGENT_READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)

AgentId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN,
                              description="The agent's id")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=LABEL_PATTERN)]
Level = Annotated[int, Field(ge=MIN_SKILL_LEVEL, le=MAX_SKILL_LEVEL)]


class AgentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=TEXT_PATTERN,
                      description="Shown to supervisors", examples=["Alice Martin"])
    device: str = Field(min_length=3, max_length=232, pattern=DEVICE_PATTERN,
                        description="The Asterisk dial string that rings the agent: no whitespace, "
                                    "control characters, ',' or '&'",
                        examples=["PJSIP/1001"])
    skills: dict[Label, Level] = Field(default_factory=dict, max_length=MAX_SKILLS,
                                       description="Skill name → level, 1 to 10",
                                       examples=[{"french": 8, "billing": 3}])
    groups: list[Label] = Field(default_factory=list, max_length=MAX_GROUPS,
                                description="Groups the agent belongs to (for reports)")
    state_device: str | None = Field(
        None, min_length=3, max_length=233, pattern=STATE_DEVICE_PATTERN,
        description="The device whose state says whether the agent can be reached, when the dial "
                    "string has none of its own (Local/..., a number through a trunk): e.g. "
                    "Custom:agent7 or PJSIP/1001. Unset: the device's own state, if it has one.",
        examples=["Custom:alice"])

    def spec(self) -> AgentSpec:
        return AgentSpec(name=self.name, device=self.device, skills=dict(self.skills),
                         groups=tuple(self.groups), state_device=self.state_device)


class NewAgent(AgentBody):
    id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["alice"])


class AgentOut(BaseModel):
    id: str
    name: str
    device: str
    skills: dict[str, int]
    groups: list[str]
    state_device: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: AgentRecord) -> AgentOut:
        return cls.model_validate({
            "id": record.id, "name": record.name, "device": record.device,
            "skills": record.skills, "groups": list(record.groups), "state_device": record.state_device,
            "created_at": record.created_at, "updated_at": record.updated_at,
        })


class AgentStateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agent_id: str
    at: datetime
    state: AgentState
    reason: str = Field(description="Why (a pause's reason code), or empty")
    queue: str | None
    call_id: str | None

    @classmethod
    def of(cls, row: AgentStateRow) -> AgentStateOut:
        return cls.model_validate(row)


@router.post("", status_code=201, response_model=AgentOut,
             summary="Create an agent (admin, supervisor)",
             responses=problems(400, 401, 403, 409, 422, 503))
async def create_agent(
    body: NewAgent,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> AgentOut:
    return AgentOut.of(await runtime.agents.create(body.id, body.spec()))


@router.get("", response_model=list[AgentOut], summary="Every agent, by id",
            responses=problems(401, 403, 503))
async def list_agents(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(AGENT_READERS),
) -> list[AgentOut]:
    return [AgentOut.of(record) for record in await runtime.agents.list()]


@router.get("/{agent_id}", response_model=AgentOut, summary="One agent",
            responses=problems(401, 403, 404, 422, 503))
async def get_agent(
    agent_id: AgentId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(AGENT_READERS),
) -> AgentOut:
    return AgentOut.of(await runtime.agents.get(agent_id))


@router.put("/{agent_id}", response_model=AgentOut, summary="Replace an agent (admin, supervisor)",
            responses=problems(400, 401, 403, 404, 422, 503))
async def update_agent(
    agent_id: AgentId,
    body: AgentBody,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> AgentOut:
    return AgentOut.of(await runtime.agents.update(agent_id, body.spec()))


@router.delete("/{agent_id}", status_code=204, response_class=Response,
               summary="Delete an agent (admin, supervisor); 409 while it is a queue member",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_agent(
    agent_id: AgentId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.agents.delete(agent_id)
    return Response(status_code=204)


@router.get("/{agent_id}/states", response_model=list[AgentStateOut],
            summary="The agent's state changes, oldest first (deleted agents' too)",
            responses=problems(401, 403, 404, 422, 503))
async def agent_states(
    agent_id: AgentId,
    since: Timestamp | None = Query(None, description="Changes at or after this time"),
    until: Timestamp | None = Query(None, description="Changes before this time"),
    limit: int = Query(STATE_LOG_LIMIT, ge=1, le=STATE_LOG_LIMIT),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[AgentStateOut]:
    return [AgentStateOut.of(row) for row in await runtime.agents.state_log(agent_id, since, until, limit)]
