"""A live call as plain JSON for Redis, and back: what a restarted controller needs to adopt
a call it did not start (see CallRecovery.reconcile, services/call_recovery.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.domain.calls import Call, CallState, Direction, Leg, LegRole, LegState
from controller.services.drivers import Driver


@dataclass(slots=True)
class Connection:
    """Who a call connects, beyond its legs: what an adopted call needs to go on and end as
    it would have (its bridge torn down, the agents on it kept busy in the ACD, then freed).
    Call control's hooks (a consultation or conference in progress) are not in it."""

    bridge_id: str | None = None
    agent_id: str | None = None  # the agent the ACD connected
    offers: dict[str, tuple[str, str]] = field(default_factory=dict)  # agent leg -> (offer id, agent id)
    busy_agents: dict[str, str] = field(default_factory=dict)  # leg -> agent, not routed by the ACD
    released: frozenset[str] = frozenset()  # legs that left on purpose

    def to_dict(self) -> dict[str, Any]:
        return {"bridge_id": self.bridge_id, "agent_id": self.agent_id,
                "offers": {leg: list(offer) for leg, offer in self.offers.items()},
                "busy_agents": dict(self.busy_agents), "released": sorted(self.released)}

    @classmethod
    def from_dict(cls, saved: dict[str, Any] | None) -> Connection:
        if not saved:
            return cls()
        return cls(bridge_id=saved.get("bridge_id"), agent_id=saved.get("agent_id"),
                   offers={leg: (str(offer[0]), str(offer[1]))
                           for leg, offer in saved.get("offers", {}).items()},
                   busy_agents={str(leg): str(agent) for leg, agent in saved.get("busy_agents", {}).items()},
                   released=frozenset(saved.get("released", ())))


def snapshot(call: Call, driver: Driver | None = None,
             connection: Connection | None = None) -> dict[str, Any]:
    return {
        "driver": driver.to_dict() if driver is not None else None,
        "connection": connection.to_dict() if connection is not None else None,
        "route_name": call.route_name,
        "flow_name": call.flow_name,
        "flow_version": call.flow_version,
        "id": call.id,
        "direction": call.direction.value,
        "state": call.state.value,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "dialed": call.dialed,
        "started_at": call.started_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "data": call.data,
        "legs": {
            leg.id: {
                "role": leg.role.value,
                "channel_name": leg.channel_name,
                "state": leg.state.value,
                "created_at": leg.created_at.isoformat(),
                "answered_at": leg.answered_at.isoformat() if leg.answered_at else None,
            }
            for leg in call.legs.values()
        },
    }


def restore(saved: dict[str, Any]) -> Call:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    call = Call(
        id=saved["id"],
        direction=Direction(saved["direction"]),
        started_at=datetime.fromisoformat(saved["started_at"]),
        caller_number=saved["caller_number"],
        caller_name=saved["caller_name"],
        dialed=saved["dialed"],
        state=CallState(saved["state"]),
        answered_at=when(saved["answered_at"]),
        data=dict(saved.get("data") or {}),
        route_name=saved.get("route_name"),
        flow_name=saved.get("flow_name"),
        flow_version=saved.get("flow_version"),
    )
    for leg_id, leg in saved["legs"].items():
        call.legs[leg_id] = Leg(
            id=leg_id, call_id=call.id, role=LegRole(leg["role"]), channel_name=leg["channel_name"],
            created_at=datetime.fromisoformat(leg["created_at"]), state=LegState(leg["state"]),
            answered_at=when(leg["answered_at"]),
        )
    return call
