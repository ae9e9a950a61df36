"""Agents' live state in the ACD: log in, log out, pause with a reason, unpause, end wrap-up.

An agent key acts for its own agent only; admins and supervisors act for any agent, which is
how a supervisor forces a state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.errors import Forbidden, InvalidRequest, NotFound

router = APIRouter(prefix="/v1/agents", tags=["agents"])

ACTORS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.AGENT)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)

AgentId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("break", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.-]+$",
                        description="A reason code from the configured list (CCC_PAUSE_REASONS; "
                                    "by default break, lunch, training, after-call work, meeting, coaching)")


class AgentStatus(BaseModel):
    id: str
    state: str
    since: datetime | None
    paused_reason: str | None
    calls_taken: int
    missed_in_a_row: int
    device: str | None = Field(description="The device whose state is followed (None: the agent's "
                                           "dial string has no device state)")
    device_state: str | None = Field(description="Its last known state (unavailable and invalid "
                                                 "make the agent unavailable); None: not known")


def _status(runtime: Runtime, agent) -> AgentStatus:
    device_state = runtime.devices.state_of(agent.id)
    return AgentStatus(id=agent.id, state=agent.state.value, since=agent.state_since,
                       paused_reason=agent.paused_reason, calls_taken=agent.calls_taken,
                       missed_in_a_row=agent.missed_in_a_row, device=runtime.devices.device_of(agent.id),
                       device_state=device_state.value if device_state is not None else None)


@router.get("/{agent_id}/status", response_model=AgentStatus, summary="The agent's live ACD state",
            responses=problems(401, 403, 404, 422))
async def agent_status(agent_id: AgentId, runtime: Runtime = Depends(get_runtime),
                       _: object = Depends(READERS)) -> AgentStatus:
    agent = runtime.acd.agent(agent_id)
    if agent is None:
        raise NotFound(f"no agent {agent_id} in the ACD")
    return _status(runtime, agent)


def _check_actor(runtime: Runtime, principal: Principal, agent_id: str) -> None:
    if runtime.acd.agent(agent_id) is None:
        raise NotFound(f"no agent {agent_id} in the ACD")
    if principal.role is Role.AGENT and principal.agent_id != agent_id:
        raise Forbidden("an agent key acts only for its own agent")


async def _act(runtime: Runtime, principal: Principal, agent_id: str, action: str,
               reason: str = "") -> AgentStatus:
    _check_actor(runtime, principal, agent_id)
    return _status(runtime, await runtime.acd.agent_action(agent_id, action, reason))


@router.post("/{agent_id}/login", response_model=AgentStatus, summary="Log the agent in (available)",
             responses=problems(401, 403, 404, 422))
async def login(agent_id: AgentId, runtime: Runtime = Depends(get_runtime),
                principal: Principal = Depends(ACTORS)) -> AgentStatus:
    _check_actor(runtime, principal, agent_id)
    return _status(runtime, await runtime.login_agent(agent_id))


@router.post("/{agent_id}/logout", response_model=AgentStatus, summary="Log the agent out",
             responses=problems(401, 403, 404, 422))
async def logout(agent_id: AgentId, runtime: Runtime = Depends(get_runtime),
                 principal: Principal = Depends(ACTORS)) -> AgentStatus:
    return await _act(runtime, principal, agent_id, "logout")


@router.post("/{agent_id}/pause", response_model=AgentStatus, summary="Pause the agent with a reason",
             responses=problems(401, 403, 404, 422))
async def pause(agent_id: AgentId, body: PauseBody, runtime: Runtime = Depends(get_runtime),
                principal: Principal = Depends(ACTORS)) -> AgentStatus:
    codes = runtime.settings.pause_reason_codes()
    if body.reason not in codes:
        raise InvalidRequest(f"reason {body.reason!r} is not a pause reason code; "
                             f"use one of: {', '.join(codes)}")
    return await _act(runtime, principal, agent_id, "pause", body.reason)


@router.post("/{agent_id}/unpause", response_model=AgentStatus, summary="Make the agent available again",
             responses=problems(401, 403, 404, 422))
async def unpause(agent_id: AgentId, runtime: Runtime = Depends(get_runtime),
                  principal: Principal = Depends(ACTORS)) -> AgentStatus:
    return await _act(runtime, principal, agent_id, "unpause")


@router.post("/{agent_id}/end-wrap-up", response_model=AgentStatus,
             summary="End the agent's wrap-up now (it becomes available, or paused if a pause was asked)",
             responses=problems(401, 403, 404, 422))
async def end_wrap_up(agent_id: AgentId, runtime: Runtime = Depends(get_runtime),
                      principal: Principal = Depends(ACTORS)) -> AgentStatus:
    return await _act(runtime, principal, agent_id, "end_wrap_up")
