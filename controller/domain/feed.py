"""The public event feed: what the controller tells its clients as it happens.

WebSocket and Server-Sent Events clients, webhooks and alarms all read one ordered feed. Every
entry has a sequence number that is the same for every reader and every controller process, so
a client that reconnects with the last number it saw is given what it missed.

Who sees an entry is decided here, from the entry alone: an entry names the agents and queues it
concerns, and an agent key sees only the entries that name its agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from controller.domain.access import Principal, Role


class Topic(StrEnum):
    CALLS = "calls"
    AGENTS = "agents"
    QUEUES = "queues"
    RECORDINGS = "recordings"
    CAMPAIGNS = "campaigns"
    ALARMS = "alarms"
    MONITORS = "monitors"  # supervisors listening to calls: never shown to agent keys


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One thing that happened, before it has its place in the feed.

    ``type`` is dotted, noun first (``call.answered``, ``agent.state_changed``, ``call.offered``).
    ``agents`` and ``queues`` say whom it concerns: they decide what agent keys (and filters)
    see, so a call event names every agent on the call.
    """

    topic: Topic
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    agents: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic.value, "type": self.type, "data": dict(self.data),
                "call_id": self.call_id, "agents": list(self.agents), "queues": list(self.queues)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FeedEvent:
        return cls(Topic(raw["topic"]), str(raw["type"]), dict(raw.get("data") or {}),
                   raw.get("call_id"), tuple(raw.get("agents") or ()), tuple(raw.get("queues") or ()))


class Publish(Protocol):
    """How a service puts an event on the feed (``FeedService.publish``): never blocks."""

    def __call__(self, event: FeedEvent, at: datetime | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """An event with its place in the feed."""

    seq: int
    at: datetime
    node: str
    event: FeedEvent

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": f"evt-{self.seq}", "at": self.at.isoformat(), "node": self.node,
                **self.event.to_json()}


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """What a client asked for: every field left empty matches everything."""

    topics: frozenset[Topic] = frozenset()
    types: frozenset[str] = frozenset()  # exact types, or prefixes ending in '.' ("call.")
    call_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None

    def matches(self, entry: FeedEntry) -> bool:
        event = entry.event
        if self.topics and event.topic not in self.topics:
            return False
        if self.types and not any(event.type == t or (t.endswith(".") and event.type.startswith(t))
                                  for t in self.types):
            return False
        if self.call_id is not None and event.call_id != self.call_id:
            return False
        if self.agent_id is not None and self.agent_id not in event.agents:
            return False
        return self.queue is None or self.queue in event.queues


def parse_topics(names: Iterable[str]) -> frozenset[Topic]:
    """Topics from their names; ValueError names the unknown one."""
    topics = set()
    for name in names:
        try:
            topics.add(Topic(name))
        except ValueError:
            known = ", ".join(t.value for t in Topic)
            raise ValueError(f"unknown topic {name!r}; known: {known}") from None
    return frozenset(topics)


# An event type ("call.offered"), or a prefix of types ending in '.' ("call.").
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?$")
MAX_TYPES = 50


def parse_types(names: Iterable[str]) -> frozenset[str]:
    """Type filters from a client; ValueError names the malformed one."""
    types = frozenset(names)
    if len(types) > MAX_TYPES:
        raise ValueError(f"at most {MAX_TYPES} types")
    for name in types:
        if len(name) > 64 or not TYPE_PATTERN.fullmatch(name):
            raise ValueError(f"malformed type {name[:64]!r}: an event type such as 'call.offered', "
                             "or a prefix ending in '.' such as 'call.'")
    return types


def visible_to(principal: Principal, entry: FeedEntry) -> bool:
    """Role scoping: admins, integrations and supervisors see the floor; an agent key sees only
    entries that name its agent (its calls, its state, its screen pop)."""
    if principal.role is Role.AGENT:
        return principal.agent_id is not None and principal.agent_id in entry.event.agents
    return True
