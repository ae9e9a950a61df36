"""What the public feed is told about calls, and the screen pop an agent gets with an offer.

Pure: built from the call (and its driver) by the call service (services/calls.py) and call
control, which publish them. Only the process that holds a call publishes its events, so each
is on the feed once.

Every call event names the agents concerned (offered the call, connected to it, dialed into it
by call control), which is what an agent key sees, and the call's queue.

The screen pop (``call.offered``) carries what the caller gave before reaching the agent: the
caller ID, the route and the IVR flow it ran with the nodes it went through, the digits it
entered (collect nodes) and what lookups answered, the queue and how long it waited, the whole
call data, and a campaign's lead: a call placed for a campaign carries ``campaign`` (or
``campaign_id``) and its lead's fields as ``lead`` (a JSON object) or ``lead_<field>`` keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from controller.domain.calls import Call
from controller.domain.feed import FeedEvent, Topic
from controller.services.drivers import Driver, IvrDriver


def call_event(kind: str, call: Call, agents: Iterable[str], data: Mapping[str, Any] | None = None,
               ) -> FeedEvent:
    """A ``call.*`` event about ``call``, for the agents concerned and its queue."""
    queue = call.data.get("queue")
    return FeedEvent(Topic.CALLS, kind, {"call_id": call.id, **(data or {})}, call_id=call.id,
                     agents=tuple(dict.fromkeys(a for a in agents if a)), queues=(queue,) if queue else ())


def started(call: Call) -> dict[str, Any]:
    """``call.started``: who calls whom."""
    return {"direction": call.direction.value, "caller": _caller(call), "dialed": call.dialed,
            "started_at": call.started_at.isoformat(),
            **({"callback_of": call.data["callback_of"]} if "callback_of" in call.data else {})}


def answered(call: Call) -> dict[str, Any]:
    return {"answered_at": _iso(call.answered_at), "caller": _caller(call), "dialed": call.dialed}


def ended(call: Call, queued_at: datetime | None, connected_at: datetime | None) -> dict[str, Any]:
    """``call.ended``: how it ended (the first leg's hang-up cause) and how long each part took:
    ``duration_s`` start to end, ``answered_s`` answer to end, ``queue_wait_s`` from the last
    queue entry to the agent (or to the end when no agent took it), ``talk_s`` with the agent."""
    end = call.ended_at or call.started_at
    wait_until = connected_at or end
    return {
        "direction": call.direction.value,
        "caller": _caller(call),
        "dialed": call.dialed,
        "cause": call.hangup_cause,
        "cause_text": call.hangup_cause_text,
        "started_at": call.started_at.isoformat(),
        "answered_at": _iso(call.answered_at),
        "ended_at": _iso(call.ended_at),
        "duration_s": _seconds(call.started_at, end),
        "answered_s": _seconds(call.answered_at, end) if call.answered_at else None,
        "queue_wait_s": _seconds(queued_at, wait_until) if queued_at else None,
        "talk_s": _seconds(connected_at, end) if connected_at else None,
        "agent_id": call.data.get("agent_id"),
        "queue": call.data.get("queue"),
        "flow_outcome": call.data.get("flow_outcome"),
        "queue_overflow": call.data.get("queue_overflow"),
    }


def screen_pop(call: Call, driver: Driver | None, *, agent_id: str, offer_id: str, queue: str | None,
               waited_s: float | None, ring_timeout_s: int) -> dict[str, Any]:
    """``call.offered``: everything the agent's desktop shows while its phone rings."""
    return {
        "agent_id": agent_id,
        "offer_id": offer_id,
        "queue": queue,
        "waited_s": round(waited_s, 3) if waited_s is not None else None,
        "ring_timeout_s": ring_timeout_s,
        "caller": _caller(call),
        "dialed": call.dialed,
        "direction": call.direction.value,
        "started_at": call.started_at.isoformat(),
        "route": call.route_name,
        "ivr": ivr_summary(call, driver),
        "campaign": call.data.get("campaign") or call.data.get("campaign_id"),
        "lead": lead_fields(call.data),
        "data": dict(call.data),
    }


def ivr_summary(call: Call, driver: Driver | None) -> dict[str, Any] | None:
    """The flow the caller ran: its nodes in order, the digits it entered, what lookups gave."""
    if isinstance(driver, IvrDriver):
        state = driver.state
        return {"flow": driver.flow_name, "version": driver.version, "path": list(state.path),
                "digits": {name: call.data[name] for name in state.collected if name in call.data},
                "lookup": {name: call.data[name] for name in state.looked_up if name in call.data},
                "outcome": state.outcome or None}
    if call.flow_name:  # adopted after a restart without its driver
        return {"flow": call.flow_name, "version": call.flow_version, "path": [], "digits": {},
                "lookup": {}, "outcome": call.data.get("flow_outcome")}
    return None


def lead_fields(data: Mapping[str, str]) -> dict[str, str] | None:
    """A campaign lead's fields from call data: ``lead`` as a JSON object, and ``lead_<field>``
    keys (these win). None when the call has none."""
    fields: dict[str, str] = {}
    raw = data.get("lead")
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            fields.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()})
        else:
            fields["lead"] = raw
    for key, value in data.items():
        if key.startswith("lead_") and len(key) > 5:
            fields[key[5:]] = value
    return fields or None


def _caller(call: Call) -> dict[str, str]:
    return {"number": call.caller_number, "name": call.caller_name}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _seconds(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)
