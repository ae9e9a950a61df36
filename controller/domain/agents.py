"""Agents, queues and queue entries as plain data, with the agent state table.

An agent's availability is its own state machine, separate from the state of any call leg: the
ACD reserves an agent (``reserved``) *before* its phone rings, so one agent is never offered two
calls at once. The state changes only through :func:`apply_agent`, which checks
:data:`AGENT_TRANSITIONS` and raises :class:`IllegalTransition` otherwise, and logs one
structured line per transition.

Vocabulary: a *queue entry* is one caller waiting in a queue; an *offer* (engines/acd.py) is
that entry ringing one agent (or several, for ring-all).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.domain.calls import IllegalTransition

__all__ = [
    "AGENT_TRANSITIONS",
    "HANG_UP",
    "Agent",
    "AgentState",
    "DestinationKind",
    "ExitAction",
    "IllegalTransition",
    "MemberKind",
    "QueueConfig",
    "QueueDestination",
    "QueueEntry",
    "QueueMember",
    "QueueRule",
    "Strategy",
    "apply_agent",
    "can_transition",
]

log = logging.getLogger(__name__)

MIN_SKILL_LEVEL = 1
MAX_SKILL_LEVEL = 10


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # an offer is ringing the agent's device
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after-call work; no offer until it ends
    PAUSED = "paused"  # with a reason code
    UNAVAILABLE = "unavailable"  # logged in, but the device cannot be reached


_S = AgentState
AGENT_TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    # Unavailable straight away when the agent logs in from a device that cannot be reached.
    _S.LOGGED_OUT: frozenset({_S.AVAILABLE, _S.PAUSED, _S.UNAVAILABLE}),
    # On a call straight away when the agent dials out or is brought into a call (not routed).
    _S.AVAILABLE: frozenset({_S.RESERVED, _S.ON_CALL, _S.PAUSED, _S.UNAVAILABLE, _S.LOGGED_OUT}),
    # An offer is answered, missed, withdrawn, or the agent leaves while it rings.
    _S.RESERVED: frozenset({_S.ON_CALL, _S.AVAILABLE, _S.PAUSED, _S.UNAVAILABLE, _S.LOGGED_OUT}),
    # Paused straight after a call when a pause was asked for during it and there is no wrap-up;
    # unavailable when the device was lost meanwhile (so too after wrap-up and a pause).
    _S.ON_CALL: frozenset({_S.WRAP_UP, _S.AVAILABLE, _S.PAUSED, _S.UNAVAILABLE}),
    _S.WRAP_UP: frozenset({_S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT, _S.UNAVAILABLE}),
    _S.PAUSED: frozenset({_S.AVAILABLE, _S.LOGGED_OUT, _S.UNAVAILABLE}),
    # A pause (lunch) may start while the phone is away; unpausing then gives unavailable again.
    _S.UNAVAILABLE: frozenset({_S.AVAILABLE, _S.LOGGED_OUT, _S.PAUSED}),
}


def can_transition(current: AgentState, wanted: AgentState) -> bool:
    return wanted in AGENT_TRANSITIONS[current]


@dataclass(slots=True)
class Agent:
    id: str
    name: str
    device: str  # dial string, e.g. ``PJSIP/1001``
    skills: dict[str, int] = field(default_factory=dict)  # name -> level 1..10
    state: AgentState = AgentState.LOGGED_OUT
    state_since: datetime | None = None
    last_call_ended_at: datetime | None = None  # for longest-idle; None = no call yet
    calls_taken: int = 0  # today
    talk_seconds: int = 0  # today
    missed_in_a_row: int = 0  # offers not answered since the last answered one
    paused_reason: str | None = None  # set while paused
    wrap_up_until: datetime | None = None  # set while in wrap-up
    pause_requested: str | None = None  # a pause asked for during a call, taken when it ends
    # The last device state said the device can take calls (kept while logged out, so a login
    # from an unregistered phone gives ``unavailable``). True until told otherwise.
    device_reachable: bool = True
    state_device: str | None = None  # whose device state to follow when not the device's own

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            if not MIN_SKILL_LEVEL <= level <= MAX_SKILL_LEVEL:
                raise ValueError(f"agent {self.id}: skill {skill} level {level} is not in 1..10")

    def has_skills(self, required: dict[str, int]) -> bool:
        return all(self.skills.get(skill, 0) >= level for skill, level in required.items())


def apply_agent(
    agent: Agent,
    wanted: AgentState,
    at: datetime,
    *,
    reason: str | None = None,
    until: datetime | None = None,
) -> None:
    """Move ``agent`` to ``wanted`` at ``at``. A pause needs a reason code; ``until`` is the end
    of a wrap-up (the service runs the timer)."""
    if not can_transition(agent.state, wanted):
        raise IllegalTransition("agent", agent.id, agent.state, wanted)
    if wanted is AgentState.PAUSED and not reason:
        raise ValueError(f"agent {agent.id}: a pause needs a reason code")
    log.info(
        "agent %s %s -> %s",
        agent.id,
        agent.state,
        wanted,
        extra={"agent_id": agent.id, "from": agent.state, "to": wanted, "reason": reason},
    )
    agent.state = wanted
    agent.state_since = at
    agent.paused_reason = reason if wanted is AgentState.PAUSED else None
    agent.wrap_up_until = until if wanted is AgentState.WRAP_UP else None


class Strategy(StrEnum):
    RING_ALL = "ring_all"
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"
    LEAST_TALK_TIME = "least_talk_time"
    RANDOM = "random"
    LINEAR = "linear"
    SKILLS_BASED = "skills_based"


class MemberKind(StrEnum):
    AGENT = "agent"
    GROUP = "group"  # every agent whose ``groups`` name it


@dataclass(frozen=True, slots=True)
class QueueMember:
    """One member of a queue as configured: an agent, or a group of agents, with a penalty.
    Which agents a queue's members come to is ``engines/membership.py``'s business."""

    kind: MemberKind
    name: str  # the agent's id, or the group's name
    penalty: int = 0

    @classmethod
    def agent(cls, agent_id: str, penalty: int = 0) -> QueueMember:
        return cls(MemberKind.AGENT, agent_id, penalty)

    @classmethod
    def group(cls, group: str, penalty: int = 0) -> QueueMember:
        return cls(MemberKind.GROUP, group, penalty)


@dataclass(frozen=True, slots=True)
class QueueRule:
    """From ``after_wait_s`` of waiting on, the entry may go to members up to ``max_penalty``
    and needs each required skill only at ``min(required, min_skill_level)``. ``None`` leaves
    that limit as it was. For each limit, the last rule reached wins."""

    after_wait_s: int
    max_penalty: int | None = None
    min_skill_level: int | None = None


class DestinationKind(StrEnum):
    HANGUP = "hangup"
    QUEUE = "queue"  # target: a queue's name
    FLOW = "flow"  # target: a flow's name; the caller's flow continues there
    VOICEMAIL = "voicemail"  # target: a mailbox


@dataclass(frozen=True, slots=True)
class QueueDestination:
    """Where a caller goes when it leaves a queue without an agent (overflow)."""

    kind: DestinationKind = DestinationKind.HANGUP
    target: str = ""

    def __post_init__(self) -> None:
        if (self.kind is DestinationKind.HANGUP) != (not self.target):
            raise ValueError(f"destination {self.kind.value}: a target is needed, and only then")


HANG_UP = QueueDestination()


class ExitAction(StrEnum):
    VOICEMAIL = "voicemail"  # the caller leaves the queue and records a message (exit_mailbox)
    CALLBACK = "callback"  # the caller hangs up; its place is kept and it is called back


DTMF_KEYS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    # The agents the ACD offers calls to: (agent_id, penalty), in member order. Groups are
    # resolved into agents before a queue reaches the ACD (engines/membership.py).
    members: tuple[tuple[str, int], ...] = ()
    ring_timeout_s: int = 20
    wrap_up_s: int = 0
    max_misses_before_pause: int = 3  # 0: never pause an agent for missed offers
    service_level_s: int = 20  # for stats; the ACD does not use it
    max_wait_s: int | None = None  # None: no limit
    max_length: int | None = None  # waiting entries; None: no limit
    max_penalty: int | None = None  # before any rule; None: every member
    rules: tuple[QueueRule, ...] = ()
    overflow: QueueDestination = HANG_UP  # for max wait, a full queue, and no agents
    join_when_empty: bool = False  # may a caller join while no member is logged in and reachable
    leave_when_empty: bool = True  # do waiting callers leave when the last such member goes
    announce_every_s: int = 0  # position and estimated wait, every so often; 0: never
    exit_key: str | None = None  # one DTMF key that takes the caller out of the queue
    exit_action: ExitAction | None = None
    exit_mailbox: str | None = None  # with exit_action voicemail
    moh_class: str = "default"

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple((str(a), int(p)) for a, p in self.members))
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda r: r.after_wait_s)))
        ids = [agent_id for agent_id, _ in self.members]
        if len(ids) != len(set(ids)):
            raise ValueError(f"queue {self.name}: an agent is listed twice")
        if any(penalty < 0 for _, penalty in self.members):
            raise ValueError(f"queue {self.name}: penalties are >= 0")
        if self.ring_timeout_s <= 0 or self.wrap_up_s < 0 or self.max_misses_before_pause < 0:
            raise ValueError(f"queue {self.name}: bad timeouts")
        if self.announce_every_s < 0:
            raise ValueError(f"queue {self.name}: announce_every_s is >= 0")
        if (self.exit_key is None) != (self.exit_action is None):
            raise ValueError(f"queue {self.name}: an exit key needs an exit action, and only then")
        if self.exit_key is not None and self.exit_key not in DTMF_KEYS:
            raise ValueError(f"queue {self.name}: the exit key is one DTMF key")
        if (self.exit_action is ExitAction.VOICEMAIL) != bool(self.exit_mailbox):
            raise ValueError(f"queue {self.name}: exit to voicemail needs a mailbox, and only it")
        if self.overflow.kind is DestinationKind.QUEUE and self.overflow.target == self.name:
            raise ValueError(f"queue {self.name}: a queue cannot overflow to itself")

    def penalty_of(self, agent_id: str) -> int | None:
        for member, penalty in self.members:
            if member == agent_id:
                return penalty
        return None

    def limits(self, waited_s: float, required: dict[str, int]) -> tuple[int | None, dict[str, int]]:
        """The max penalty and the required skill levels after ``waited_s`` of waiting."""
        max_penalty = self.max_penalty
        cap: int | None = None
        for rule in self.rules:
            if waited_s < rule.after_wait_s:
                break
            if rule.max_penalty is not None:
                max_penalty = rule.max_penalty
            if rule.min_skill_level is not None:
                cap = rule.min_skill_level
        if cap is None:
            return max_penalty, dict(required)
        return max_penalty, {skill: min(level, cap) for skill, level in required.items()}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One caller waiting in a queue. Higher ``priority`` first; FIFO within a priority by
    ``entered_at``, then ``sequence`` (the ACD numbers entries as they arrive)."""

    call_id: str
    queue: str
    entered_at: datetime
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)  # name -> minimum level
    sequence: int = 0
    # The caller hung up to be called back: the entry keeps its place, the agent is dialed
    # first, then the caller's number (``call_id`` is then the callback call's id).
    callback: bool = False
    announced_at: datetime | None = None  # the last position/wait announcement
    # A supervisor moved the caller to this agent: offered to it alone, as soon as it is
    # available (engines/acd.py, "Moves"). None: the queue's strategy picks.
    target_agent: str | None = None

    def rank(self) -> tuple[int, datetime, int]:
        return (-self.priority, self.entered_at, self.sequence)
