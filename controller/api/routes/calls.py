"""Calls: the call detail records (every call with its legs, events and disposition), and
call control for agents and CRMs (click-to-dial, hangup, hold, transfer, conference, DTMF,
dispositions).

Telephony actions answer 202 with the call's id; what happens next comes as call events. An
agent key reads and acts on its own agent's calls only (services/call_records.py and
services/call_control.py check); other roles that may act, on any call."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.destinations import (
    AGENT_ID_PATTERN,
    DTMF_PATTERN,
    ENDPOINT_PATTERN,
    EXTENSION_PATTERN,
    NUMBER_PATTERN,
    QUEUE_PATTERN,
    Destination,
    DestinationKind,
)
from controller.services.call_control import DialRequest
from controller.services.queue_moves import MovedCall

router = APIRouter(prefix="/v1/calls", tags=["calls"])

# An agent key reads its own agent's calls only (services/call_records.py); others read all.
CALL_READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)


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


class DispositionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    call_id: str
    code: str
    notes: str
    follow_up: bool
    agent_id: str | None
    created_at: datetime
    updated_at: datetime


class CallDetailOut(CallOut):
    legs: list[LegOut]
    events: list[CallEventOut]
    disposition: DispositionOut | None = None


@router.get("", response_model=list[CallOut], summary="Calls, newest first (an agent key: its agent's)",
            responses=problems(401, 403, 422, 503))
async def list_calls(
    state: CallStateFilter | None = None,
    since: Timestamp | None = Query(None, description="Calls started at or after this time"),
    before: Timestamp | None = Query(None, description="Calls started before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(CALL_READERS),
) -> list[dict[str, Any]]:
    return await runtime.call_records.list(
        state=state.value if state else None, since=since, before=before, limit=limit, reader=principal)


@router.get("/{call_id}", response_model=CallDetailOut, summary="One call with its legs and events",
            responses=problems(401, 403, 404, 422, 503))
async def get_call(
    call_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")],
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(CALL_READERS),
) -> dict[str, Any]:
    return await runtime.call_records.get(call_id, principal)


ACTORS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)
CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ACTION_PROBLEMS = problems(400, 401, 403, 404, 409, 422, 503)

# Free text that is stored (never sent to the switch): no NUL or other C0 controls but tab and
# newline, and encodable (a lone surrogate from a JSON escape is not).
_TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
_LINE = r"^[^\x00-\x1f\x7f]*$"


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("not valid UTF-8 text") from exc
    return value


class DestinationIn(BaseModel):
    """Exactly one of: an agent (its device), a queue (transfers only), an extension, a number
    (through the outbound trunk) or an endpoint (an Asterisk dial string)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1})

    agent: str = Field(None, pattern=AGENT_ID_PATTERN, examples=["alice"])  # type: ignore[assignment]
    queue: str = Field(None, pattern=QUEUE_PATTERN)  # type: ignore[assignment]
    extension: str = Field(None, pattern=EXTENSION_PATTERN, examples=["1001"])  # type: ignore[assignment]
    number: str = Field(None, pattern=NUMBER_PATTERN, examples=["+15550100"])  # type: ignore[assignment]
    endpoint: str = Field(None, pattern=ENDPOINT_PATTERN, examples=["PJSIP/1001"])  # type: ignore[assignment]

    @model_validator(mode="after")
    def _exactly_one(self) -> DestinationIn:
        if len(self.model_fields_set) != 1 or None in (getattr(self, k) for k in self.model_fields_set):
            raise ValueError("name exactly one of agent, queue, extension, number, endpoint")
        return self

    def to_domain(self) -> Destination:
        (kind,) = self.model_fields_set
        return Destination(DestinationKind(kind), getattr(self, kind))


class DialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: DestinationIn = Field(description="The customer: an extension, a number, an endpoint or an agent")
    agent_id: str | None = Field(None, pattern=AGENT_ID_PATTERN,
                                 description="The agent whose device rings first (an agent key: its own)")
    endpoint: str | None = Field(None, pattern=ENDPOINT_PATTERN,
                                 description="Instead of an agent: the dial string that rings first")
    extension: str | None = Field(None, pattern=EXTENSION_PATTERN,
                                  description="Instead of an agent: the extension that rings first")
    reference: str = Field("", max_length=128, pattern=_LINE,
                           description="The CRM's or campaign's reference, kept in the call data")
    data: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
               Annotated[str, Field(max_length=256, pattern=_LINE)]] = Field(
        default_factory=dict, max_length=20, description="More call data, kept with the call")

    @field_validator("reference")
    @classmethod
    def _reference_utf8(cls, value: str) -> str:
        return _utf8(value)

    @field_validator("data")
    @classmethod
    def _data_utf8(cls, value: dict[str, str]) -> dict[str, str]:
        for item in value.values():
            _utf8(item)
        return value

    @model_validator(mode="after")
    def _one_agent_side(self) -> DialIn:
        if sum(x is not None for x in (self.agent_id, self.endpoint, self.extension)) > 1:
            raise ValueError("name at most one of agent_id, endpoint, extension")
        return self

    def to_domain(self) -> DialRequest:
        endpoint = f"PJSIP/{self.extension}" if self.extension else self.endpoint
        return DialRequest(to=self.to.to_domain(), agent_id=self.agent_id, endpoint=endpoint,
                           reference=self.reference, data=dict(self.data))


class TransferMode(StrEnum):
    blind = "blind"
    attended = "attended"


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: TransferMode = TransferMode.blind
    to: DestinationIn


class ConferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: DestinationIn


class DtmfIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digits: str = Field(pattern=DTMF_PATTERN, description="0-9, *, #, A-D; at most 32", examples=["12#"])
    leg: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:;-]{0,127}$",
                            description="The leg to send on; by default the caller or customer")


class DispositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["sale"])
    notes: str = Field("", max_length=4000, pattern=_TEXT)
    follow_up: bool = False

    @field_validator("notes")
    @classmethod
    def _notes_utf8(cls, value: str) -> str:
        return _utf8(value)


class Accepted(BaseModel):
    call_id: str
    action: str


class MoveIn(BaseModel):
    """Exactly one of: a queue (the caller leaves its queue and joins this one, keeping its
    priority; its wait there counts from the move) or an agent (the caller keeps its place and
    is offered to that agent alone, as soon as the agent is available)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1})

    queue: str = Field(None, pattern=QUEUE_PATTERN, examples=["billing"])  # type: ignore[assignment]
    agent: str = Field(None, pattern=AGENT_ID_PATTERN, examples=["alice"])  # type: ignore[assignment]

    @model_validator(mode="after")
    def _exactly_one(self) -> MoveIn:
        if len(self.model_fields_set) != 1 or None in (getattr(self, k) for k in self.model_fields_set):
            raise ValueError("name exactly one of queue, agent")
        return self


class MovedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    call_id: str
    queue: str = Field(description="The queue the caller waits in now")
    target_agent: str | None = Field(description="The one agent the caller is offered to, if it was moved "
                                                 "to an agent")
    position: int = Field(description="Its place in the queue, 1 = next")
    priority: int
    waited_s: float = Field(description="Its wait in this queue (from the move, when it changed queues)")


SUPERVISORS = authorize(Role.ADMIN, Role.SUPERVISOR)


@router.post("/{call_id}/move", response_model=MovedOut, responses=ACTION_PROBLEMS,
             summary="Move a waiting caller to another queue or to one agent (admin, supervisor); "
                     "409 when it is not waiting or the agent is logged out")
async def move(call_id: CallId, body: MoveIn, runtime: Runtime = Depends(get_runtime),
               _: Principal = Depends(SUPERVISORS)) -> MovedCall:
    return await runtime.queue_moves.move(call_id, queue=body.queue, agent_id=body.agent)


@router.post("", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Click-to-dial: ring the agent's device, then the customer, and bridge them")
async def dial(body: DialIn, runtime: Runtime = Depends(get_runtime),
               actor: Principal = Depends(ACTORS)) -> Accepted:
    call_id = await runtime.call_control.dial(actor, body.to_domain())
    return Accepted(call_id=call_id, action="dial")


@router.post("/{call_id}/hangup", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Hang up every leg of a live call; its end comes as call records")
async def hang_up(call_id: CallId, runtime: Runtime = Depends(get_runtime),
                  actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.hang_up(actor, call_id)
    return Accepted(call_id=call_id, action="hangup")


@router.post("/{call_id}/hold", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Put the caller or customer on hold (music on hold)")
async def hold(call_id: CallId, runtime: Runtime = Depends(get_runtime),
               actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.hold(actor, call_id, on=True)
    return Accepted(call_id=call_id, action="hold")


@router.post("/{call_id}/unhold", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Take the caller or customer off hold")
async def unhold(call_id: CallId, runtime: Runtime = Depends(get_runtime),
                 actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.hold(actor, call_id, on=False)
    return Accepted(call_id=call_id, action="unhold")


@router.post("/{call_id}/transfer", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Blind transfer (the agent leaves) or attended (consult first, then complete "
                     "or cancel)")
async def transfer(call_id: CallId, body: TransferIn, runtime: Runtime = Depends(get_runtime),
                   actor: Principal = Depends(ACTORS)) -> Accepted:
    attended = body.mode is TransferMode.attended
    await runtime.call_control.transfer(actor, call_id, body.to.to_domain(), attended=attended)
    return Accepted(call_id=call_id, action=f"transfer-{body.mode.value}")


@router.post("/{call_id}/transfer/complete", status_code=202, response_model=Accepted,
             responses=ACTION_PROBLEMS,
             summary="Attended transfer: bridge the caller with the consulted party; the agent leaves")
async def complete_transfer(call_id: CallId, runtime: Runtime = Depends(get_runtime),
                            actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.complete_transfer(actor, call_id)
    return Accepted(call_id=call_id, action="transfer-complete")


@router.post("/{call_id}/transfer/cancel", status_code=202, response_model=Accepted,
             responses=ACTION_PROBLEMS,
             summary="Attended transfer: hang up the consulted party; the agent is back with the caller")
async def cancel_transfer(call_id: CallId, runtime: Runtime = Depends(get_runtime),
                          actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.cancel_transfer(actor, call_id)
    return Accepted(call_id=call_id, action="transfer-cancel")


@router.post("/{call_id}/conference", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Three-way conference: dial a third party into the call")
async def conference(call_id: CallId, body: ConferenceIn, runtime: Runtime = Depends(get_runtime),
                     actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.conference(actor, call_id, body.to.to_domain())
    return Accepted(call_id=call_id, action="conference")


@router.post("/{call_id}/dtmf", status_code=202, response_model=Accepted, responses=ACTION_PROBLEMS,
             summary="Send DTMF digits on a leg of the call")
async def send_dtmf(call_id: CallId, body: DtmfIn, runtime: Runtime = Depends(get_runtime),
                    actor: Principal = Depends(ACTORS)) -> Accepted:
    await runtime.call_control.send_dtmf(actor, call_id, body.digits, body.leg)
    return Accepted(call_id=call_id, action="dtmf")


@router.post("/{call_id}/disposition", response_model=DispositionOut,
             responses=problems(400, 401, 403, 404, 422, 503),
             summary="Record how a live or ended call went (a new one replaces the last)")
async def dispose(call_id: CallId, body: DispositionIn, runtime: Runtime = Depends(get_runtime),
                  actor: Principal = Depends(ACTORS)) -> DispositionOut:
    disposition = await runtime.call_control.dispose(actor, call_id, body.code, body.notes, body.follow_up)
    return DispositionOut.model_validate(disposition)
