"""Call detail records: every call with its legs and events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Role

router = APIRouter(prefix="/v1/calls", tags=["calls"])

READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)


class CallStateFilter(StrEnum):
    ringing = "ringing"
    answered = "answered"
    ended = "ended"


class LegOut(BaseModel):
    id: str
    role: str
    channel_name: str
    state: str
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: int | None
    hangup_cause_text: str | None


class CallEventOut(BaseModel):
    leg_id: str | None
    at: datetime
    kind: str
    data: dict[str, Any]


class CallOut(BaseModel):
    id: str
    direction: str
    state: str
    switch: str
    caller_number: str
    caller_name: str
    dialed: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: int | None
    hangup_cause_text: str | None
    data: dict[str, Any]
    route_name: str | None = None
    flow_name: str | None = None
    flow_version: int | None = None


class CallDetailOut(CallOut):
    legs: list[LegOut]
    events: list[CallEventOut]


@router.get("", response_model=list[CallOut], summary="Calls, newest first",
            responses=problems(401, 403, 422, 503))
async def list_calls(
    state: CallStateFilter | None = None,
    since: Timestamp | None = Query(None, description="Calls started at or after this time"),
    before: Timestamp | None = Query(None, description="Calls started before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    _: object = Depends(READERS),
) -> list[dict[str, Any]]:
    return await runtime.call_records.list(
        state=state.value if state else None, since=since, before=before, limit=limit)


@router.get("/{call_id}", response_model=CallDetailOut, summary="One call with its legs and events",
            responses=problems(401, 403, 404, 422, 503))
async def get_call(
    call_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")],
    runtime: Runtime = Depends(get_runtime),
    _: object = Depends(READERS),
) -> dict[str, Any]:
    return await runtime.call_records.get(call_id)


ACTORS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class Accepted(BaseModel):
    call_id: str
    action: str


@router.post("/{call_id}/hangup", status_code=202, response_model=Accepted,
             summary="Hang up every leg of a live call; its end comes as call records",
             responses=problems(401, 403, 404, 422, 503))
async def hang_up(call_id: CallId, runtime: Runtime = Depends(get_runtime),
                  _: object = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.hang_up(call_id)
    return Accepted(call_id=call_id, action="hangup")


@router.post("/{call_id}/hold", status_code=202, response_model=Accepted,
             summary="Put the caller on hold (music on hold)",
             responses=problems(401, 403, 404, 409, 422, 503))
async def hold(call_id: CallId, runtime: Runtime = Depends(get_runtime),
               _: object = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.hold(call_id, on=True)
    return Accepted(call_id=call_id, action="hold")


@router.post("/{call_id}/unhold", status_code=202, response_model=Accepted,
             summary="Take the caller off hold", responses=problems(401, 403, 404, 409, 422, 503))
async def unhold(call_id: CallId, runtime: Runtime = Depends(get_runtime),
                 _: object = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.hold(call_id, on=False)
    return Accepted(call_id=call_id, action="unhold")
