"""Calls and legs as plain data, with their state tables.

A leg's state changes only through :func:`apply_leg`, which checks the transition table and
raises :class:`IllegalTransition` otherwise. A call's state is derived from its legs: it is
answered when its first leg is answered and ends when its last leg ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

log = logging.getLogger(__name__)


class IllegalTransition(Exception):
    def __init__(self, kind: str, entity_id: str, current: str, wanted: str) -> None:
        super().__init__(f"{kind} {entity_id}: {current} -> {wanted} is not allowed")
        self.current = current
        self.wanted = wanted


class LegState(StrEnum):
    RINGING = "ringing"
    UP = "up"
    ENDED = "ended"


class LegRole(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    CUSTOMER = "customer"
    SUPERVISOR = "supervisor"
    SNOOP = "snoop"
    TRANSFER = "transfer"  # the leg a flow's transfer node dials, or a transfer from the API
    CONFERENCE = "conference"  # a third party added to a call


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class CallState(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


LEG_TRANSITIONS: dict[LegState, frozenset[LegState]] = {
    LegState.RINGING: frozenset({LegState.UP, LegState.ENDED}),
    LegState.UP: frozenset({LegState.ENDED}),
    LegState.ENDED: frozenset(),
}


@dataclass(slots=True)
class Leg:
    id: str
    call_id: str
    role: LegRole
    channel_name: str
    created_at: datetime
    state: LegState = LegState.RINGING
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None


@dataclass(slots=True)
class Call:
    id: str
    direction: Direction
    started_at: datetime
    caller_number: str = ""
    caller_name: str = ""
    dialed: str = ""
    state: CallState = CallState.RINGING
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    route_name: str | None = None
    flow_name: str | None = None
    flow_version: int | None = None

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.state is not LegState.ENDED]


def apply_leg(leg: Leg, wanted: LegState, at: datetime, cause: int | None = None,
              cause_text: str | None = None) -> None:
    if wanted not in LEG_TRANSITIONS[leg.state]:
        raise IllegalTransition("leg", leg.id, leg.state, wanted)
    log.info("leg %s %s -> %s", leg.id, leg.state, wanted,
             extra={"leg_id": leg.id, "call_id": leg.call_id, "from": leg.state, "to": wanted})
    leg.state = wanted
    if wanted is LegState.UP:
        leg.answered_at = at
    elif wanted is LegState.ENDED:
        leg.ended_at = at
        leg.hangup_cause = cause
        leg.hangup_cause_text = cause_text


def settle_call(call: Call, at: datetime) -> bool:
    """Bring the call's state in line with its legs. Returns True when it changed."""
    before = call.state
    if call.state is CallState.RINGING and any(
        leg.state is LegState.UP or leg.answered_at for leg in call.legs.values()
    ):
        call.state = CallState.ANSWERED
        call.answered_at = min(leg.answered_at for leg in call.legs.values() if leg.answered_at)
    if call.state is not CallState.ENDED and call.legs and not call.live_legs():
        first_ended = min(call.legs.values(), key=lambda leg: leg.ended_at or at)
        call.state = CallState.ENDED
        call.ended_at = at
        call.hangup_cause = first_ended.hangup_cause
        call.hangup_cause_text = first_ended.hangup_cause_text
    if call.state is not before:
        log.info("call %s %s -> %s", call.id, before, call.state,
                 extra={"call_id": call.id, "from": before, "to": call.state})
    return call.state is not before
