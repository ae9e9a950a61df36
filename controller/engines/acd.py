"""The ACD engine: which waiting caller rings which agent, one event at a time.

Pure: ``on_event(state, event, now, ids, rng=None)`` returns a new :class:`AcdState` and the
commands to run; the state passed in is never changed. No clock (``now`` is given), no I/O,
ids come from ``ids(prefix)``, randomness only from the injected ``rng``.

How it works. After every event the engine *dispatches*: it walks the waiting entries that have
no offer in flight, best first (higher priority first, then FIFO: ``entered_at``, then arrival
``sequence``), and gives each one the agent(s) its queue's strategy picks among the eligible
agents. The agents are moved to ``reserved`` (``AgentStateChanged``) before ``OfferCall`` goes
out, so an agent is never in two offers and never offered while not ``available``. When
dispatch ends, every waiting entry without an offer has no eligible available agent.

Eligible agent for an entry: a member of the entry's queue, ``available``, with a penalty not
above the queue's max penalty, and every required skill at the required level. Both limits come
from the queue's rules at the entry's wait time (``QueueConfig.limits``), so a ``Tick`` can
widen them. Among the eligible agents only the lowest penalty tier is used: a higher tier gets
the call only when no lower-tier agent is available. Within the tier, agents that already
missed this entry are passed over while others remain (so a missed call goes to the next
agent); once the whole tier has been tried the slate is wiped and they are tried again.

Strategies, within that tier (ties always by member order):

- ``ring_all``: every agent of the tier at once (all reserved); the first answer wins, the
  others are cancelled and freed. Agents freed while it rings are not added to it.
- ``longest_idle``: the agent whose last call ended longest ago; never-called agents first.
- ``round_robin``: the next member after the one last offered a call of this queue (by member
  order, wrapping round); the memory is in the state.
- ``fewest_calls``: fewest calls taken today.
- ``least_talk_time``: least talk time today.
- ``random``: uniform among the tier, from ``rng`` (when none is given, a ``random.Random``
  seeded with the call id and ``now``, so a replay gives the same answer).
- ``linear``: member order, always from the first.
- ``skills_based``: best match first (the sum of the agent's levels in the entry's required
  skills), ties by longest idle. Required skills are a hard filter under every strategy.

Offers end in one of three ways. Answered (``OfferAnswered``): the call is connected, the other
agents of a ring-all are cancelled. Failed (``OfferFailed``, for one agent or all of them):
``no_answer`` counts a miss (``max_misses_before_pause`` in a row pauses the agent with reason
"no answer" and emits ``PauseAgent``), ``busy`` frees the agent, ``unreachable`` makes it
``unavailable`` until ``AgentDeviceState(reachable=True)``. Withdrawn: the caller hung up, waited
too long, or the agent logged out, paused or lost its device while ringing (``CancelOffer``).

Device state (``AgentDeviceState``) is remembered per agent even while it is logged out, on a
call, paused or in wrap-up: an agent whose device cannot be reached logs in, unpauses or ends
its wrap-up as ``unavailable`` instead of ``available``, and becomes available when the device
comes back. (``unreachable`` from a failed offer does not change what the device state said.)

Calls the ACD did not route (``AgentCallStarted``: the agent dialed out, or a transfer or a
conference brought it in) keep the agent busy too: an available agent goes ``on_call``, a
reserved one too (its offer is withdrawn, no miss, and moves on); a paused, wrapping-up,
unavailable or logged-out agent stays so but is marked talking, and goes ``on_call`` rather than
``available`` if it becomes ready before the call ends. A talking agent is never offered a call.
The same ``CallEnded`` ends such a call (wrap-up: the queue named in the event, if any).

An agent may be on several calls at once (a click-to-dial while a queue call is still up, the
destination of a consultation while on another call): ``talking`` holds every call of the
agent, each once (an ``AgentCallStarted`` for a call the agent is already on changes nothing, so
a call adopted after a restart may say it again). ``CallEnded`` takes one call off; the agent is
free only when its last call ends, and its wrap-up is then the longest owed by the calls that
ended meanwhile (``pending_wrap_up``).

After a call the agent is in ``wrap_up`` for the queue's ``wrap_up_s`` (emitted in
``AgentStateChanged.wrap_up_s``; the service runs the timer and sends ``WrapUpEnded``), then
``available``, or ``paused`` if a pause was asked for during the call. An agent on a call cannot
log out (the request is ignored); a pause asked for during a call waits for its end.

Overflow: at ``CallQueued``, an unknown queue, or one with no member logged in and reachable
unless it has ``join_when_empty``, gives ``no_agents``, a full queue ``max_length``; at ``Tick``,
an entry that has waited ``max_wait_s`` gives ``max_wait`` (its offer, if any, is withdrawn), and
an entry whose queue has lost every staffed member gives ``no_agents`` when the queue has
``leave_when_empty``. An overflowed entry leaves the ACD; ``Overflow`` names the queue's
destination (another queue, a flow, a mailbox, or hang up), which the service carries out.

Callbacks: ``CallbackRequested`` turns a waiting entry into a callback entry: the caller hangs
up, the entry keeps its place (same rank) under the id of the call that will call it back, and
any offer ringing for it is withdrawn (no miss) and made again. A callback entry is offered like
any other (the agent is dialed first; the service dials the caller once the agent answers); it
does not overflow on max wait or when the queue empties, since nobody is on the line to send
anywhere.

Announcements: on ``Tick``, after dispatch, every caller of a queue with ``announce_every_s``
that waits without an offer ringing gets ``AnnounceWait`` (position in its queue, estimated
wait from the queue's recent handle times, engines/queue_wait.py) once that many seconds have
passed since it entered or was last told.

Moves (``MoveRequested``, a supervisor's): a waiting entry goes to another queue or to one
agent. ``move_refusal`` says why a move cannot be made (the entry is not waiting, the queue or
agent is unknown, the agent is logged out, or the queue has nobody logged in and reachable while
its callers leave it when empty); a refused move changes nothing. Either way an offer ringing
for the entry is withdrawn (no miss) unless it rings exactly the agent the entry now goes to.

- To a queue: the entry leaves its queue and joins the other at the back of its priority: it
  keeps its priority and required skills, its wait in the new queue (wait-time rules, max wait,
  service level) counts from the move, and the agents that missed it are forgotten. The
  new queue's admission limits (max length, join when empty) do not apply: a supervisor put it
  there. Moving it to the queue it is in only takes an agent target away (it keeps its place).
- To an agent: the entry stays in its queue, in its place, and is *targeted*: it is offered to
  that agent alone (member of the queue or not, whatever its skills and penalty), before any
  untargeted caller, as soon as the agent is available; while the agent is busy, paused or
  unreachable the caller waits. The target is dropped, and the entry goes back to its queue's
  strategy, when the agent fails the offer (no answer, busy, unreachable) or logs out. A
  targeted entry does not leave its queue when the queue empties while its agent is logged in
  and reachable; max wait still applies.

Every move (and every target dropped) emits ``CallerMoved``: where the caller waits now, so the
service changes what it hears and its call data.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from controller.domain.agents import (
    HANG_UP,
    Agent,
    AgentState,
    QueueConfig,
    QueueDestination,
    QueueEntry,
    Strategy,
    apply_agent,
)
from controller.engines import queue_wait

log = logging.getLogger(__name__)

Ids = Callable[[str], str]
NO_ANSWER = "no answer"


# --- events (facts in) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallQueued:
    entry: QueueEntry


@dataclass(frozen=True, slots=True)
class CallAbandoned:
    call_id: str


@dataclass(frozen=True, slots=True)
class AgentLoggedIn:
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentLoggedOut:
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentPaused:
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class AgentUnpaused:
    agent_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OfferAnswered:
    offer_id: str
    agent_id: str | None = None  # which agent answered; may be left out when one was offered


class FailReason(StrEnum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class OfferFailed:
    offer_id: str
    reason: FailReason
    agent_id: str | None = None  # None: every agent of the offer


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    agent_id: str
    talk_s: int


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """The agent who answered was gone before its caller could be bridged (it hung up at
    once): the agent's call ends, and ``entry`` (the caller's, from ``ConnectCall``) waits
    again in its old place, for another agent first."""

    call_id: str
    agent_id: str
    entry: QueueEntry


@dataclass(frozen=True, slots=True)
class AgentCallStarted:
    """The agent is on a call the ACD did not route: it dialed out (click-to-dial), or a
    transfer or conference brought it into a call. Its ``CallEnded`` (same ``call_id``) frees
    it; the wrap-up is ``queue``'s, none when empty."""

    agent_id: str
    call_id: str
    queue: str = ""


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentDeviceState:
    agent_id: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: re-apply the queues' wait-time rules and max wait; announcements."""


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """The waiting caller ``call_id`` asked to be called back; ``callback_call_id`` is the call
    that will do it (the entry goes on under that id)."""

    call_id: str
    callback_call_id: str


@dataclass(frozen=True, slots=True)
class MoveRequested:
    """A supervisor moves the waiting caller ``call_id`` to ``queue`` or to the agent
    ``agent_id`` (exactly one is given). ``move_id`` names the request, so the process that
    made it can read the verdict (``move_refusal``); the engine does not use it."""

    call_id: str
    queue: str = ""
    agent_id: str = ""
    move_id: str = ""


AcdEvent = (
    CallQueued
    | CallAbandoned
    | AgentLoggedIn
    | AgentLoggedOut
    | AgentPaused
    | AgentUnpaused
    | OfferAnswered
    | OfferFailed
    | CallEnded
    | ConnectFailed
    | AgentCallStarted
    | WrapUpEnded
    | AgentDeviceState
    | Tick
    | CallbackRequested
    | MoveRequested
)


# --- commands (intentions out) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferCall:
    """Ring these agents' devices for the call; report ``OfferAnswered``/``OfferFailed``."""

    offer_id: str
    call_id: str
    agent_ids: tuple[str, ...]  # one, or several for ring_all
    timeout_s: int
    queue: str = ""


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Stop ringing these agents for this offer (idempotent: a leg already gone is fine)."""

    offer_id: str
    agent_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConnectCall:
    call_id: str
    agent_id: str
    offer_id: str = ""
    # The caller's queue entry, handed back in ``ConnectFailed`` if the agent is gone.
    entry: QueueEntry | None = None


class OverflowReason(StrEnum):
    MAX_WAIT = "max_wait"
    MAX_LENGTH = "max_length"
    NO_AGENTS = "no_agents"


@dataclass(frozen=True, slots=True)
class Overflow:
    """The call leaves the ACD; the service sends it to ``destination`` (the queue's)."""

    call_id: str
    reason: OverflowReason
    queue: str = ""
    destination: QueueDestination = HANG_UP


@dataclass(frozen=True, slots=True)
class AnnounceWait:
    """Tell the waiting caller its position (1 = next) and estimated wait (None: unknown)."""

    call_id: str
    queue: str
    position: int
    eta_s: int | None


@dataclass(frozen=True, slots=True)
class CallerMoved:
    """The waiting caller now waits in ``queue`` (it waited in ``from_queue``, the same queue
    when only its target changed), offered only to ``agent_id`` when one is named. The service
    changes what the caller hears and its call data; ``entered_at`` is when it joined
    ``from_queue``."""

    call_id: str
    queue: str
    from_queue: str
    entered_at: datetime
    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    agent_id: str
    state: AgentState
    reason: str = ""
    wrap_up_s: int = 0  # with state wrap_up: how long; the service sends WrapUpEnded after it


@dataclass(frozen=True, slots=True)
class PauseAgent:
    """Tell the agent (and supervisors) that the ACD paused it."""

    agent_id: str
    reason: str = NO_ANSWER


AcdCommand = (
    OfferCall | CancelOffer | ConnectCall | Overflow | AgentStateChanged | PauseAgent | AnnounceWait
    | CallerMoved
)


# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    call_id: str
    queue: str
    agent_ids: tuple[str, ...]
    made_at: datetime


@dataclass(frozen=True, slots=True)
class BusyCall:
    """A call an agent is on; ``queue``'s wrap-up follows it ('' for none)."""

    call_id: str
    queue: str = ""


@dataclass(slots=True)
class AcdState:
    agents: dict[str, Agent] = field(default_factory=dict)
    queues: dict[str, QueueConfig] = field(default_factory=dict)
    waiting: dict[str, QueueEntry] = field(default_factory=dict)  # call_id -> entry
    offers: dict[str, Offer] = field(default_factory=dict)  # offer_id -> offer in flight
    tried: dict[str, frozenset[str]] = field(default_factory=dict)  # call_id -> agents that missed it
    # agent_id -> the calls the agent is on, oldest first (each once)
    talking: dict[str, tuple[BusyCall, ...]] = field(default_factory=dict)
    # agent_id -> the queue whose wrap-up follows the agent's last call (of its calls that ended
    # while another went on, the one with the longest wrap-up)
    pending_wrap_up: dict[str, str] = field(default_factory=dict)
    last_offered: dict[str, str] = field(default_factory=dict)  # queue -> agent (round-robin memory)
    handle_times: dict[str, tuple[float, ...]] = field(default_factory=dict)  # queue -> recent, seconds
    next_sequence: int = 1

    def copy(self) -> AcdState:
        return AcdState(
            agents={agent_id: replace(agent) for agent_id, agent in self.agents.items()},
            queues=dict(self.queues),
            waiting=dict(self.waiting),
            offers=dict(self.offers),
            tried=dict(self.tried),
            talking=dict(self.talking),
            pending_wrap_up=dict(self.pending_wrap_up),
            last_offered=dict(self.last_offered),
            handle_times=dict(self.handle_times),
            next_sequence=self.next_sequence,
        )

    def offer_for_call(self, call_id: str) -> Offer | None:
        return next((o for o in self.offers.values() if o.call_id == call_id), None)

    def offer_for_agent(self, agent_id: str) -> Offer | None:
        return next((o for o in self.offers.values() if agent_id in o.agent_ids), None)

    def calls_of_agent(self, agent_id: str) -> tuple[BusyCall, ...]:
        return self.talking.get(agent_id, ())

    def is_talking_on(self, call_id: str) -> bool:
        """Whether some agent is on ``call_id``."""
        return any(busy.call_id == call_id for calls in self.talking.values() for busy in calls)

    def ordered_waiting(self) -> list[QueueEntry]:
        """Waiting entries, best first: higher priority, then FIFO."""
        return sorted(self.waiting.values(), key=QueueEntry.rank)


@dataclass(frozen=True, slots=True)
class AcdDecision:
    state: AcdState
    commands: tuple[AcdCommand, ...] = ()


def on_event(
    state: AcdState, event: AcdEvent, now: datetime, ids: Ids, *, rng: random.Random | None = None
) -> AcdDecision:
    run = _Run(state.copy(), now, ids, rng)
    match event:
        case CallQueued():
            _queued(run, event.entry)
        case CallAbandoned():
            _leave(run, event.call_id, "caller left")
        case AgentLoggedIn():
            _logged_in(run, event.agent_id)
        case AgentLoggedOut():
            _logged_out(run, event.agent_id)
        case AgentPaused():
            _paused(run, event.agent_id, event.reason or "unspecified")
        case AgentUnpaused():
            _unpaused(run, event.agent_id)
        case OfferAnswered():
            _answered(run, event.offer_id, event.agent_id)
        case OfferFailed():
            _failed(run, event.offer_id, FailReason(event.reason), event.agent_id)
        case CallEnded():
            _call_ended(run, event.call_id, event.agent_id, event.talk_s)
        case ConnectFailed():
            _connect_failed(run, event)
        case AgentCallStarted():
            _call_started(run, event.agent_id, event.call_id, event.queue)
        case WrapUpEnded():
            agent = run.state.agents.get(event.agent_id)
            if agent is not None and agent.state is AgentState.WRAP_UP:
                _back_to_work(run, agent, "wrap-up ended")
        case AgentDeviceState():
            _device(run, event.agent_id, event.reachable)
        case Tick():
            _tick(run)
        case CallbackRequested():
            _callback(run, event.call_id, event.callback_call_id)
        case MoveRequested():
            _move(run, event)
    _dispatch(run)
    if isinstance(event, Tick):
        _announce(run)
    return AcdDecision(run.state, tuple(run.commands))


def position_of(state: AcdState, call_id: str) -> int | None:
    """The entry's place in its queue (1 = next), by rank; None if it is not waiting."""
    entry = state.waiting.get(call_id)
    if entry is None:
        return None
    return 1 + sum(1 for other in state.waiting.values()
                   if other.queue == entry.queue and other.rank() < entry.rank())


class MoveProblem(StrEnum):
    INVALID = "invalid"  # neither or both of queue and agent
    NOT_WAITING = "not_waiting"
    NO_QUEUE = "no_queue"
    QUEUE_EMPTY = "queue_empty"
    NO_AGENT = "no_agent"
    AGENT_LOGGED_OUT = "agent_logged_out"


@dataclass(frozen=True, slots=True)
class MoveRefusal:
    problem: MoveProblem
    detail: str


def move_refusal(state: AcdState, move: MoveRequested) -> MoveRefusal | None:
    """Why ``move`` cannot be made in ``state`` (None: it can)."""
    if bool(move.queue) == bool(move.agent_id):
        return MoveRefusal(MoveProblem.INVALID, "name exactly one of queue, agent")
    entry = state.waiting.get(move.call_id)
    if entry is None:
        return MoveRefusal(MoveProblem.NOT_WAITING, f"call {move.call_id} is not waiting in a queue")
    if move.queue:
        queue = state.queues.get(move.queue)
        if queue is None:
            return MoveRefusal(MoveProblem.NO_QUEUE, f"no queue {move.queue}")
        if (queue.name != entry.queue and queue.leave_when_empty and not entry.callback
                and not _staffed(state, queue)):
            return MoveRefusal(MoveProblem.QUEUE_EMPTY,
                               f"queue {queue.name} has no agent logged in and reachable, and its callers "
                               "leave it when it is empty")
        return None
    agent = state.agents.get(move.agent_id)
    if agent is None:
        return MoveRefusal(MoveProblem.NO_AGENT, f"no agent {move.agent_id}")
    if agent.state is AgentState.LOGGED_OUT:
        return MoveRefusal(MoveProblem.AGENT_LOGGED_OUT, f"agent {move.agent_id} is logged out")
    return None


def working_members(state: AcdState, queue: QueueConfig) -> int:
    """Members who will take calls in turn: available, ringing, on a call or in wrap-up."""
    working = (AgentState.AVAILABLE, AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP)
    return sum(1 for agent_id, _ in queue.members
               if (agent := state.agents.get(agent_id)) is not None and agent.state in working)


def eligible_agents(state: AcdState, entry: QueueEntry, now: datetime) -> list[tuple[Agent, int]]:
    """Available agents that may take ``entry`` now, with their penalty, in member order."""
    queue = state.queues.get(entry.queue)
    if queue is None:
        return []
    max_penalty, required = queue.limits((now - entry.entered_at).total_seconds(), entry.skills)
    out: list[tuple[Agent, int]] = []
    for agent_id, penalty in queue.members:
        agent = state.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.AVAILABLE or agent_id in state.talking:
            continue
        if max_penalty is not None and penalty > max_penalty:
            continue
        if agent.has_skills(required):
            out.append((agent, penalty))
    return out


def pick_agents(
    state: AcdState, entry: QueueEntry, now: datetime, rng: random.Random | None = None
) -> list[str]:
    """The agent(s) the entry's queue strategy would offer it to now (empty: nobody)."""
    queue = state.queues.get(entry.queue)
    candidates = eligible_agents(state, entry, now)
    if queue is None or not candidates:
        return []
    tier = min(penalty for _, penalty in candidates)
    agents = [agent for agent, penalty in candidates if penalty == tier]
    if queue.strategy is Strategy.RING_ALL:
        return [agent.id for agent in agents]
    tried = state.tried.get(entry.call_id, frozenset())
    agents = [agent for agent in agents if agent.id not in tried] or agents
    order = {agent_id: i for i, (agent_id, _) in enumerate(queue.members)}

    def idle(agent: Agent) -> tuple[bool, float, int]:
        ended = agent.last_call_ended_at
        return (ended is not None, ended.timestamp() if ended else 0.0, order[agent.id])

    match queue.strategy:
        case Strategy.LONGEST_IDLE:
            best = min(agents, key=idle)
        case Strategy.ROUND_ROBIN:
            last = state.last_offered.get(queue.name)
            start = order[last] + 1 if last in order else 0
            best = min(agents, key=lambda a: (order[a.id] - start) % len(order))
        case Strategy.FEWEST_CALLS:
            best = min(agents, key=lambda a: (a.calls_taken, order[a.id]))
        case Strategy.LEAST_TALK_TIME:
            best = min(agents, key=lambda a: (a.talk_seconds, order[a.id]))
        case Strategy.RANDOM:
            chooser = rng if rng is not None else random.Random(f"{entry.call_id}|{now.isoformat()}")
            best = chooser.choice(agents)
        case Strategy.SKILLS_BASED:
            best = min(agents, key=lambda a: (-sum(a.skills.get(s, 0) for s in entry.skills), idle(a)))
        case _:  # LINEAR
            best = agents[0]
    return [best.id]


# --- the steps ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    state: AcdState
    now: datetime
    ids: Ids
    rng: random.Random | None
    commands: list[AcdCommand] = field(default_factory=list)

    def emit(self, *commands: AcdCommand) -> None:
        self.commands.extend(commands)

    def move(self, agent: Agent, wanted: AgentState, reason: str, *, wrap_up_s: int = 0) -> None:
        until = self.now + timedelta(seconds=wrap_up_s) if wanted is AgentState.WRAP_UP else None
        apply_agent(agent, wanted, self.now, reason=reason, until=until)
        self.emit(AgentStateChanged(agent.id, wanted, reason, wrap_up_s))

    def make_ready(self, agent: Agent, reason: str) -> None:
        """Move a ready agent to available (unavailable without its device), and on to
        ``on_call`` if it is on a call of its own meanwhile (AgentCallStarted)."""
        self.move(agent, _ready(agent), reason)
        calls = self.state.calls_of_agent(agent.id)
        if calls and agent.state is AgentState.AVAILABLE:
            self.move(agent, AgentState.ON_CALL, f"on call {calls[-1].call_id}")


def _staffed(state: AcdState, queue: QueueConfig) -> bool:
    """Whether some member is logged in with a reachable device (paused or busy counts)."""
    gone = (AgentState.LOGGED_OUT, AgentState.UNAVAILABLE)
    return any(
        (agent := state.agents.get(agent_id)) is not None and agent.state not in gone
        for agent_id, _ in queue.members
    )


def _queued(run: _Run, entry: QueueEntry) -> None:
    s = run.state
    if entry.call_id in s.waiting or s.is_talking_on(entry.call_id):
        return  # a repeat
    queue = s.queues.get(entry.queue)
    if queue is None:
        run.emit(Overflow(entry.call_id, OverflowReason.NO_AGENTS, entry.queue))
        return
    if not queue.join_when_empty and not _staffed(s, queue):
        run.emit(Overflow(entry.call_id, OverflowReason.NO_AGENTS, entry.queue, queue.overflow))
        return
    if queue.max_length is not None:
        length = sum(1 for waiting in s.waiting.values() if waiting.queue == queue.name)
        if length >= queue.max_length:
            run.emit(Overflow(entry.call_id, OverflowReason.MAX_LENGTH, entry.queue, queue.overflow))
            return
    s.waiting[entry.call_id] = replace(entry, sequence=s.next_sequence)
    s.next_sequence += 1


def _leave(run: _Run, call_id: str, reason: str) -> QueueEntry | None:
    """Take the entry out of the ACD, withdrawing its offer. Returns the entry, if it waited."""
    s = run.state
    entry = s.waiting.pop(call_id, None)
    s.tried.pop(call_id, None)
    offer = s.offer_for_call(call_id)
    if offer is not None:
        _withdraw(run, offer, reason)
    return entry


def _withdraw(run: _Run, offer: Offer, reason: str) -> None:
    """End an offer that nobody answered or failed: its agents are free again, no miss."""
    s = run.state
    del s.offers[offer.offer_id]
    run.emit(CancelOffer(offer.offer_id, offer.agent_ids))
    for agent_id in offer.agent_ids:
        run.move(s.agents[agent_id], AgentState.AVAILABLE, reason)


def _release(run: _Run, agent_id: str, *, cancel: bool, missed: bool) -> Offer | None:
    """Take the agent out of its offer (the offer ends when no agent is left in it)."""
    s = run.state
    offer = s.offer_for_agent(agent_id)
    if offer is None:
        return None
    rest = tuple(a for a in offer.agent_ids if a != agent_id)
    if rest:
        s.offers[offer.offer_id] = replace(offer, agent_ids=rest)
    else:
        del s.offers[offer.offer_id]
    if cancel:
        run.emit(CancelOffer(offer.offer_id, (agent_id,)))
    if missed and offer.call_id in s.waiting:
        s.tried[offer.call_id] = s.tried.get(offer.call_id, frozenset()) | {agent_id}
    return offer


def _ready(agent: Agent) -> AgentState:
    """Where an agent goes when it is ready for calls: available, unless its device is lost."""
    return AgentState.AVAILABLE if agent.device_reachable else AgentState.UNAVAILABLE


def _logged_in(run: _Run, agent_id: str) -> None:
    agent = run.state.agents.get(agent_id)
    if agent is not None and agent.state is AgentState.LOGGED_OUT:
        agent.missed_in_a_row = 0
        run.make_ready(agent, "logged in" if agent.device_reachable else "logged in, unreachable")


def _logged_out(run: _Run, agent_id: str) -> None:
    agent = run.state.agents.get(agent_id)
    if agent is None or agent.state in (AgentState.LOGGED_OUT, AgentState.ON_CALL):
        if agent is not None and agent.state is AgentState.ON_CALL:
            log.info("agent %s on a call: logout refused", agent_id, extra={"agent_id": agent_id})
        return
    if agent.state is AgentState.RESERVED:
        _release(run, agent_id, cancel=True, missed=False)
    agent.pause_requested = None
    run.move(agent, AgentState.LOGGED_OUT, "logged out")


def _paused(run: _Run, agent_id: str, reason: str) -> None:
    agent = run.state.agents.get(agent_id)
    if agent is None:
        return
    match agent.state:
        case AgentState.ON_CALL:
            agent.pause_requested = reason
        case AgentState.RESERVED:
            _release(run, agent_id, cancel=True, missed=False)
            run.move(agent, AgentState.PAUSED, reason)
        case AgentState.AVAILABLE | AgentState.WRAP_UP | AgentState.UNAVAILABLE:
            run.move(agent, AgentState.PAUSED, reason)


def _unpaused(run: _Run, agent_id: str) -> None:
    agent = run.state.agents.get(agent_id)
    if agent is None:
        return
    agent.pause_requested = None
    if agent.state is AgentState.PAUSED:
        agent.missed_in_a_row = 0
        run.make_ready(agent, "unpaused")


def _answered(run: _Run, offer_id: str, agent_id: str | None) -> None:
    s = run.state
    offer = s.offers.get(offer_id)
    if offer is None:
        return  # stale: withdrawn or already answered
    if agent_id is None and len(offer.agent_ids) == 1:
        agent_id = offer.agent_ids[0]
    if agent_id not in offer.agent_ids:
        return
    del s.offers[offer_id]
    entry = s.waiting.pop(offer.call_id, None)
    s.tried.pop(offer.call_id, None)
    agent = s.agents[agent_id]
    run.move(agent, AgentState.ON_CALL, f"answered {offer.call_id}")
    agent.calls_taken += 1  # misses in a row are forgiven when the call ends (it may not connect)
    s.talking[agent_id] = (*s.calls_of_agent(agent_id), BusyCall(offer.call_id, offer.queue))
    run.emit(ConnectCall(offer.call_id, agent_id, offer_id, entry))
    others = tuple(a for a in offer.agent_ids if a != agent_id)
    if others:
        run.emit(CancelOffer(offer_id, others))
        for other in others:
            run.move(s.agents[other], AgentState.AVAILABLE, "answered elsewhere")


def _failed(run: _Run, offer_id: str, reason: FailReason, agent_id: str | None) -> None:
    s = run.state
    offer = s.offers.get(offer_id)
    if offer is None:
        return
    if agent_id is None:
        failing = offer.agent_ids
    elif agent_id in offer.agent_ids:
        failing = (agent_id,)
    else:
        return
    queue = s.queues.get(offer.queue)
    max_misses = queue.max_misses_before_pause if queue is not None else 0
    entry = s.waiting.get(offer.call_id)
    if entry is not None and entry.target_agent in failing:
        _untarget(run, entry)  # the agent it was moved to did not take it: back to its queue
    for failed_id in failing:
        _release(run, failed_id, cancel=False, missed=True)
        agent = s.agents[failed_id]
        if reason is FailReason.UNREACHABLE:
            run.move(agent, AgentState.UNAVAILABLE, "unreachable")
        elif reason is FailReason.BUSY:
            run.move(agent, AgentState.AVAILABLE, "busy")
        else:
            agent.missed_in_a_row += 1
            if max_misses and agent.missed_in_a_row >= max_misses:
                run.move(agent, AgentState.PAUSED, NO_ANSWER)
                run.emit(PauseAgent(failed_id, NO_ANSWER))
            else:
                run.move(agent, AgentState.AVAILABLE, NO_ANSWER)


def _connect_failed(run: _Run, event: ConnectFailed) -> None:
    s = run.state
    agent = s.agents.get(event.agent_id)
    if agent is None or not any(busy.call_id == event.call_id for busy in s.calls_of_agent(agent.id)):
        return  # already ended
    agent.calls_taken = max(0, agent.calls_taken - 1)  # never talked
    _call_ended(run, event.call_id, agent.id, 0, handled=False)
    # A miss like an offer not answered: a phone that answers and drops every call is paused
    # after the queue's misses in a row, not offered the caller again and again.
    agent.missed_in_a_row += 1
    queue = s.queues.get(event.entry.queue)
    max_misses = queue.max_misses_before_pause if queue is not None else 0
    if max_misses and agent.missed_in_a_row >= max_misses and agent.state is AgentState.AVAILABLE:
        run.move(agent, AgentState.PAUSED, NO_ANSWER)
        run.emit(PauseAgent(agent.id, NO_ANSWER))
    entry = event.entry
    if entry.call_id in s.waiting or entry.queue not in s.queues:
        return
    s.waiting[entry.call_id] = entry  # its old place: entered_at and sequence as they were
    s.tried[entry.call_id] = frozenset({agent.id})


def _call_ended(run: _Run, call_id: str, agent_id: str, talk_s: int, handled: bool = True) -> None:
    s = run.state
    calls = s.calls_of_agent(agent_id)
    ended = next((busy for busy in calls if busy.call_id == call_id), None)
    agent = s.agents.get(agent_id)
    if ended is None or agent is None:
        return
    agent.talk_seconds += max(0, talk_s)
    if handled:
        agent.missed_in_a_row = 0
    queue = s.queues.get(ended.queue)
    if queue is not None and handled:
        s.handle_times[queue.name] = queue_wait.remember(s.handle_times.get(queue.name, ()),
                                                         max(0, talk_s) + queue.wrap_up_s)
    # A call never handled (ConnectFailed) owes no wrap-up of its own.
    owed = _longer_wrap_up(s, s.pending_wrap_up.pop(agent_id, ""), ended.queue if handled else "")
    rest = tuple(busy for busy in calls if busy is not ended)
    if rest:  # still on another call: busy until the last one ends
        s.talking[agent_id] = rest
        if owed:
            s.pending_wrap_up[agent_id] = owed
        return
    del s.talking[agent_id]
    agent.last_call_ended_at = run.now
    owed_queue = s.queues.get(owed)
    wrap_up_s = owed_queue.wrap_up_s if owed_queue is not None else 0
    if agent.state is not AgentState.ON_CALL:
        return
    if wrap_up_s > 0:
        run.move(agent, AgentState.WRAP_UP, "call ended", wrap_up_s=wrap_up_s)
    else:
        _back_to_work(run, agent, "call ended")


def _longer_wrap_up(state: AcdState, first: str, second: str) -> str:
    """Of two queues (by name, '' for none), the one with the longer wrap-up ('' if neither has one)."""
    def wrap_up(name: str) -> int:
        queue = state.queues.get(name)
        return queue.wrap_up_s if queue is not None else 0
    best = max((first, second), key=wrap_up)
    return best if wrap_up(best) > 0 else ""


def _call_started(run: _Run, agent_id: str, call_id: str, queue: str) -> None:
    s = run.state
    agent = s.agents.get(agent_id)
    calls = s.calls_of_agent(agent_id)
    if agent is None or any(busy.call_id == call_id for busy in calls):
        return  # unknown, or already on this call (said again, e.g. by a call adopted after a restart)
    s.talking[agent_id] = (*calls, BusyCall(call_id, queue))
    match agent.state:
        case AgentState.RESERVED:
            _release(run, agent_id, cancel=True, missed=False)  # the offer moves on, no miss
            run.move(agent, AgentState.ON_CALL, f"on call {call_id}")
        case AgentState.AVAILABLE:
            run.move(agent, AgentState.ON_CALL, f"on call {call_id}")
        # On call already, paused, in wrap-up, unavailable or logged out: it stays so, marked
        # talking; when it becomes ready before its calls end it goes on call (_Run.make_ready).


def _back_to_work(run: _Run, agent: Agent, reason: str) -> None:
    if agent.pause_requested:
        pause, agent.pause_requested = agent.pause_requested, None
        run.move(agent, AgentState.PAUSED, pause)
    else:
        run.make_ready(agent, reason)


def _device(run: _Run, agent_id: str, reachable: bool) -> None:
    agent = run.state.agents.get(agent_id)
    if agent is None:
        return
    agent.device_reachable = reachable
    if reachable:
        if agent.state is AgentState.UNAVAILABLE:
            run.make_ready(agent, "reachable")
        return
    if agent.state is AgentState.RESERVED:
        _release(run, agent_id, cancel=True, missed=True)
    if agent.state in (AgentState.AVAILABLE, AgentState.RESERVED):
        run.move(agent, AgentState.UNAVAILABLE, "unreachable")


def _tick(run: _Run) -> None:
    s = run.state
    for entry in s.ordered_waiting():
        queue = s.queues.get(entry.queue)
        waited = run.now - entry.entered_at
        if queue is None:
            _leave(run, entry.call_id, "overflow")
            run.emit(Overflow(entry.call_id, OverflowReason.NO_AGENTS, entry.queue))
        elif entry.callback:
            continue  # nobody on the line to send anywhere: it waits for an agent
        elif queue.leave_when_empty and not _staffed(s, queue) and not _target_present(s, entry):
            _leave(run, entry.call_id, "overflow")
            run.emit(Overflow(entry.call_id, OverflowReason.NO_AGENTS, entry.queue, queue.overflow))
        elif queue.max_wait_s is not None and waited >= timedelta(seconds=queue.max_wait_s):
            _leave(run, entry.call_id, "overflow")
            run.emit(Overflow(entry.call_id, OverflowReason.MAX_WAIT, entry.queue, queue.overflow))


def _target_present(state: AcdState, entry: QueueEntry) -> bool:
    """Whether the entry has an agent target that is logged in with a reachable device."""
    agent = state.agents.get(entry.target_agent) if entry.target_agent else None
    return agent is not None and agent.state not in (AgentState.LOGGED_OUT, AgentState.UNAVAILABLE)


def _move(run: _Run, move: MoveRequested) -> None:
    s = run.state
    refusal = move_refusal(s, move)
    if refusal is not None:
        log.info("move of call %s refused: %s", move.call_id, refusal.detail,
                 extra={"call_id": move.call_id})
        return
    entry = s.waiting[move.call_id]
    if move.queue and move.queue != entry.queue:
        moved = replace(entry, queue=move.queue, entered_at=run.now, sequence=s.next_sequence,
                        announced_at=None, target_agent=None)
        s.next_sequence += 1
        s.tried.pop(entry.call_id, None)
    elif move.queue:
        moved = replace(entry, target_agent=None)
    else:
        moved = replace(entry, target_agent=move.agent_id)
    s.waiting[entry.call_id] = moved
    offer = s.offer_for_call(entry.call_id)
    keep = offer is not None and moved.queue == entry.queue and (
        moved.target_agent is None or offer.agent_ids == (moved.target_agent,))
    if offer is not None and not keep:
        _withdraw(run, offer, "call moved")
    run.emit(CallerMoved(entry.call_id, moved.queue, entry.queue, entry.entered_at,
                         moved.target_agent or ""))


def _untarget(run: _Run, entry: QueueEntry) -> None:
    run.state.waiting[entry.call_id] = replace(entry, target_agent=None)
    run.emit(CallerMoved(entry.call_id, entry.queue, entry.queue, entry.entered_at))


def _callback(run: _Run, call_id: str, callback_call_id: str) -> None:
    s = run.state
    entry = s.waiting.get(call_id)
    if entry is None or entry.callback or callback_call_id in s.waiting:
        return
    tried = s.tried.get(call_id)
    _leave(run, call_id, "caller asked for a callback")  # withdraws a ringing offer, no miss
    s.waiting[callback_call_id] = replace(entry, call_id=callback_call_id, callback=True)
    if tried:
        s.tried[callback_call_id] = tried


def _announce(run: _Run) -> None:
    s = run.state
    offered = {offer.call_id for offer in s.offers.values()}
    for entry in s.ordered_waiting():
        queue = s.queues.get(entry.queue)
        if queue is None or queue.announce_every_s <= 0 or entry.callback or entry.call_id in offered:
            continue
        since = entry.announced_at or entry.entered_at
        if run.now - since < timedelta(seconds=queue.announce_every_s):
            continue
        position = position_of(s, entry.call_id)
        assert position is not None
        eta = queue_wait.estimate_wait_s(position, s.handle_times.get(queue.name, ()),
                                         working_members(s, queue))
        s.waiting[entry.call_id] = replace(entry, announced_at=run.now)
        run.emit(AnnounceWait(entry.call_id, queue.name, position, eta))


def _dispatch(run: _Run) -> None:
    s = run.state
    offered = {offer.call_id for offer in s.offers.values()}
    # Callers moved to an agent come first for that agent, and go to nobody else.
    targeted = sorted((e for e in s.waiting.values() if e.target_agent is not None), key=QueueEntry.rank)
    for entry in targeted:
        if entry.call_id in offered:
            continue
        target = s.agents.get(entry.target_agent or "")
        if target is None or target.state is AgentState.LOGGED_OUT:
            _untarget(run, entry)  # the agent left: back to its queue's strategy, below
            continue
        queue = s.queues.get(entry.queue)
        if queue is None or target.state is not AgentState.AVAILABLE or target.id in s.talking:
            continue
        _offer(run, entry, queue, (target.id,))
        offered.add(entry.call_id)
    for entry in s.ordered_waiting():
        if entry.call_id in offered or entry.target_agent is not None:
            continue
        agent_ids = pick_agents(s, entry, run.now, run.rng)
        if not agent_ids:
            continue
        queue = s.queues[entry.queue]
        if set(agent_ids) <= s.tried.get(entry.call_id, frozenset()):
            s.tried.pop(entry.call_id, None)  # the whole tier missed it: start a new round
        _offer(run, entry, queue, tuple(agent_ids))
        s.last_offered[queue.name] = agent_ids[0]


def _offer(run: _Run, entry: QueueEntry, queue: QueueConfig, agent_ids: tuple[str, ...]) -> None:
    """Reserve the agents, then ring them: an agent is never in two offers."""
    s = run.state
    offer_id = run.ids("offer")
    for agent_id in agent_ids:
        run.move(s.agents[agent_id], AgentState.RESERVED, f"offer {offer_id}")
    s.offers[offer_id] = Offer(offer_id, entry.call_id, queue.name, agent_ids, run.now)
    run.emit(OfferCall(offer_id, entry.call_id, agent_ids, queue.ring_timeout_s, queue.name))

