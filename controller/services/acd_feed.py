"""What the ACD tells the public feed: agent state changes, callers joining and leaving queues,
and each queue's figures.

Pure: the events are built from the ACD state before and after one log entry and the engine's
commands for it. The ACD service (services/acd.py) decides which process publishes each one:
the process that carries the entry out, so that every change is on the feed once although every
process applies every entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.domain.agents import AgentState, QueueEntry
from controller.domain.feed import FeedEvent, Topic
from controller.engines import acd


def member_queues(state: acd.AcdState, agent_id: str) -> tuple[str, ...]:
    """The queues ``agent_id`` is a member of (a supervisor following a queue sees its agents)."""
    return tuple(name for name, queue in state.queues.items()
                 if any(member == agent_id for member, _ in queue.members))


def agent_state_changed(change: acd.AgentStateChanged, old: AgentState | None, before: acd.AcdState,
                        after: acd.AcdState, at: datetime, log_id: str) -> FeedEvent:
    """``agent.state_changed``: ``log_id`` is the ACD log entry that made the change; changes
    published by different processes are ordered by it (and by ``at``, the log's clock)."""
    agent_id = change.agent_id
    data: dict[str, Any] = {
        "agent_id": agent_id,
        "old_state": old.value if old is not None else None,
        "new_state": change.state.value,
        "reason": change.reason,
        "at": at.isoformat(),
        "log_id": log_id,
    }
    if change.state is AgentState.WRAP_UP:
        data["wrap_up_s"] = change.wrap_up_s
    call_id, queue = _call_of(change, before, after)
    if call_id is not None:
        data["call_id"], data["queue"] = call_id, queue
    return FeedEvent(Topic.AGENTS, "agent.state_changed", data, call_id=call_id, agents=(agent_id,),
                     queues=member_queues(after, agent_id))


def _call_of(change: acd.AgentStateChanged, before: acd.AcdState,
             after: acd.AcdState) -> tuple[str | None, str]:
    """The call an agent is reserved for, talks on or wraps up after."""
    agent_id = change.agent_id
    match change.state:
        case AgentState.RESERVED:
            offer = after.offer_for_agent(agent_id)
            if offer is not None:
                return offer.call_id, offer.queue
        case AgentState.ON_CALL:
            # An agent may be on several calls: the newest is the one that made it busy.
            calls = after.calls_of_agent(agent_id) or before.calls_of_agent(agent_id)
            if calls:
                return calls[-1].call_id, calls[-1].queue
        case AgentState.WRAP_UP:
            # The call that ended (the agent's last one).
            still = {busy.call_id for busy in after.calls_of_agent(agent_id)}
            ended = [busy for busy in before.calls_of_agent(agent_id) if busy.call_id not in still]
            if ended:
                return ended[-1].call_id, ended[-1].queue
    return None, ""


def queue_events(before: acd.AcdState, after: acd.AcdState, event: acd.AcdEvent,
                 commands: tuple[acd.AcdCommand, ...], now: datetime) -> list[tuple[str, FeedEvent]]:
    """(call id, event) for every caller that joined or left a queue at this entry:
    ``queue.caller_joined``, ``queue.caller_left`` (answered, or turned into a callback),
    ``queue.caller_abandoned`` (hung up, or its process was lost) and ``queue.caller_overflowed``
    (also a caller refused at the door: a full queue, no agents)."""
    overflows = {cmd.call_id: cmd for cmd in commands if isinstance(cmd, acd.Overflow)}
    answered = {cmd.call_id: cmd.agent_id for cmd in commands if isinstance(cmd, acd.ConnectCall)}
    out: list[tuple[str, FeedEvent]] = []
    for call_id, entry in after.waiting.items():
        if call_id not in before.waiting:
            data = {**_entry(entry, now), "position": acd.position_of(after, call_id),
                    "waiting": _waiting_in(after.waiting, entry.queue)}
            out.append((call_id, _queue_event("queue.caller_joined", entry.queue, call_id, data)))
    for call_id, entry in before.waiting.items():
        if call_id in after.waiting or call_id in overflows:
            continue
        data = {**_entry(entry, now), "waiting": _waiting_in(after.waiting, entry.queue)}
        if call_id in answered:
            data.update(reason="answered", agent_id=answered[call_id])
            out.append((call_id, _queue_event("queue.caller_left", entry.queue, call_id, data,
                                              (answered[call_id],))))
        elif isinstance(event, acd.CallbackRequested) and event.call_id == call_id:
            data.update(reason="callback", callback_call_id=event.callback_call_id)
            out.append((call_id, _queue_event("queue.caller_left", entry.queue, call_id, data)))
        else:
            out.append((call_id, _queue_event("queue.caller_abandoned", entry.queue, call_id, data)))
    for call_id, overflow in overflows.items():
        waited = before.waiting.get(call_id)
        destination = overflow.destination
        data = {**(_entry(waited, now) if waited is not None else {"call_id": call_id}),
                "queue": overflow.queue, "reason": overflow.reason.value,
                "destination": {"kind": destination.kind.value, "target": destination.target},
                "waiting": _waiting_in(after.waiting, overflow.queue)}
        out.append((call_id, _queue_event("queue.caller_overflowed", overflow.queue, call_id, data)))
    return out


def queue_stats(stats: Mapping[str, Any]) -> FeedEvent:
    """``queue.stats``: one queue's live figures (as ``GET /v1/queues/{name}/stats``)."""
    name = str(stats["queue"])
    return FeedEvent(Topic.QUEUES, "queue.stats", dict(stats), queues=(name,))


def _entry(entry: QueueEntry, now: datetime) -> dict[str, Any]:
    return {"call_id": entry.call_id, "queue": entry.queue, "priority": entry.priority,
            "skills": dict(entry.skills), "callback": entry.callback,
            "entered_at": entry.entered_at.isoformat(),
            "waited_s": round(max((now - entry.entered_at).total_seconds(), 0.0), 3)}


def _waiting_in(waiting: Mapping[str, QueueEntry], queue: str) -> int:
    return sum(1 for entry in waiting.values() if entry.queue == queue)


def _queue_event(kind: str, queue: str, call_id: str, data: dict[str, Any],
                 agents: tuple[str, ...] = ()) -> FeedEvent:
    return FeedEvent(Topic.QUEUES, kind, data, call_id=call_id, agents=agents, queues=(queue,))
