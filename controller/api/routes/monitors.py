"""Supervisor monitoring: listen to, whisper to, barge into or take over a call connected to an agent.

Telephony actions answer 202: the supervisor's device is dialed, and the session is arranged
for its mode once the supervisor answers (see controller/domain/monitors.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.domain.monitors import Monitor, MonitorMode, MonitorState
from controller.services.agents import DEVICE_PATTERN

router = APIRouter(tags=["monitoring"])

SUPERVISORS = authorize(Role.ADMIN, Role.SUPERVISOR)
CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
MonitorId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class MonitorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(min_length=3, max_length=232, pattern=DEVICE_PATTERN,
                        description="The Asterisk dial string of the supervisor's phone: no whitespace, "
                                    "control characters, ',' or '&'",
                        examples=["PJSIP/2001"])
    mode: MonitorMode = MonitorMode.LISTEN


class ModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: MonitorMode


class MonitorOut(BaseModel):
    id: str
    call_id: str
    device: str
    mode: MonitorMode
    state: MonitorState
    supervisor_leg_id: str
    snoop_leg_id: str | None
    bridge_id: str = Field(description="The session's own bridge (supervisor and snoop in listen/whisper)")

    @classmethod
    def of(cls, monitor: Monitor) -> MonitorOut:
        return cls(id=monitor.id, call_id=monitor.call_id, device=monitor.device, mode=monitor.mode,
                   state=monitor.state, supervisor_leg_id=monitor.supervisor_leg_id,
                   snoop_leg_id=monitor.snoop_leg_id, bridge_id=monitor.bridge_id)


@router.post("/v1/calls/{call_id}/monitor", status_code=202, response_model=MonitorOut,
             summary="Dial a supervisor into a call with an agent (listen, whisper, barge or takeover)",
             responses=problems(400, 401, 403, 404, 409, 422, 502, 503))
async def start_monitor(call_id: CallId, body: MonitorIn, runtime: Runtime = Depends(get_runtime),
                        _: object = Depends(SUPERVISORS)) -> MonitorOut:
    return MonitorOut.of(await runtime.monitors.start(call_id, body.device, body.mode))


@router.get("/v1/monitors/{monitor_id}", response_model=MonitorOut, summary="One live monitor session",
            responses=problems(401, 403, 404, 422))
async def get_monitor(monitor_id: MonitorId, runtime: Runtime = Depends(get_runtime),
                      _: object = Depends(SUPERVISORS)) -> MonitorOut:
    return MonitorOut.of(runtime.monitors.get(monitor_id))


@router.patch("/v1/monitors/{monitor_id}", status_code=202, response_model=MonitorOut,
              summary="Switch the mode of a monitor session (same supervisor leg); takeover is one-way",
              responses=problems(400, 401, 403, 404, 409, 422, 503))
async def switch_mode(monitor_id: MonitorId, body: ModeIn, runtime: Runtime = Depends(get_runtime),
                      _: object = Depends(SUPERVISORS)) -> MonitorOut:
    return MonitorOut.of(await runtime.monitors.switch_mode(monitor_id, body.mode))


@router.delete("/v1/monitors/{monitor_id}", status_code=202, response_model=MonitorOut,
               summary="End a monitor session: the supervisor and snoop legs hang up, its bridge goes",
               responses=problems(401, 403, 404, 422, 503))
async def stop_monitor(monitor_id: MonitorId, runtime: Runtime = Depends(get_runtime),
                       _: object = Depends(SUPERVISORS)) -> MonitorOut:
    return MonitorOut.of(await runtime.monitors.stop(monitor_id))
