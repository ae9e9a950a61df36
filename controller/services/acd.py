"""The live ACD, shared by every controller process through a log in Redis.

The pure engine (engines/acd.py) decides; this service feeds it. Every process appends the
ACD events of its own calls and agents (a caller queued, an agent's phone answered or not, a
call ended, login, logout, pause) to one Redis stream (storage/acd_log.py) and applies the
whole stream, in the stream's order, to its own copy of the state. All copies are the same,
because the engine is a function of the events: the time of an event is the stream's clock
(its entry id), ids are made from the entry id, and configuration changes travel in the
stream too. The stream's order is what makes reservations atomic across processes.

Of the engine's commands each process carries out only its own: offers, connections and
overflows of the calls it holds (the process that queued the caller), and the agent state log
of the events it appended. What the public feed is told follows the same rule
(services/acd_feed.py): an agent's state change is published with its state log row, by the process that
appended the entry; a caller joining or leaving a queue by the process that holds the caller;
each queue's figures (``queue.stats``) every few seconds by the leader. So each change is on the
feed once, although every process applies every entry.

The leader (a lease in Redis) appends the clock ticks (wait-time rules, max wait), ends
wrap-ups whose timer died with their process, writes snapshots and the day's queue figures, and
declares a process lost when its heartbeat key has expired: the callers that process held leave
the queues and the agents it had ringing are freed.

While Redis is away, events wait in memory (in order) and nothing is routed; callers stay on
hold. Routing resumes where it stopped when Redis returns.

A supervisor's move of a waiting caller (``move``) may be asked of any process: it goes through
the log like every other event, the engine decides it against the state at that point of the
log (engines/acd.py, "Moves"), and the process that asked reads the verdict from the same point
(``move_refusal`` on the state before the entry), so it answers with what really happened. The
process holding the caller carries out the ``CallerMoved`` that follows (music, call data).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from controller.backoff import Backoff, stop_task
from controller.domain.agents import Agent, AgentState, QueueConfig, QueueDestination, QueueEntry
from controller.domain.errors import Conflict, InvalidRequest, NotFound, StorageUnavailable
from controller.domain.feed import Publish
from controller.engines import acd
from controller.services import acd_feed
from controller.storage.acd import AgentStateRow
from controller.storage.acd_log import AcdLog, stream_position
from controller.storage.codec import DecodeError, decode, encode

log = logging.getLogger(__name__)

TICK_S = 1.0
LEASE_MS = 3_000
HEARTBEAT_MS = 5_000
SNAPSHOT_EVERY_S = 5.0
READ_BLOCK_MS = 1_000
QUEUE_STATS_EVERY_S = 5.0
# A wrap-up is ended by the leader when its own timer has not done it this long after its end.
WRAP_UP_GRACE = timedelta(seconds=2)

_EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in acd.AcdEvent.__args__}  # type: ignore[attr-defined]


class CallLegs(Protocol):
    """What the ACD needs from the call service."""

    async def offer(self, call_id: str, offer_id: str, agent_id: str, device: str,
                    timeout_s: int) -> None: ...

    async def withdraw(self, offer_id: str, agent_id: str) -> None: ...

    async def connect(self, call_id: str, offer_id: str, agent_id: str,
                      entry: QueueEntry | None = None) -> None: ...

    async def overflow(self, call_id: str, reason: str, queue: str,
                       destination: QueueDestination) -> None: ...

    async def announce(self, call_id: str, queue: str, position: int, eta_s: int | None) -> None: ...

    async def moved(self, call_id: str, queue: str, from_queue: str, agent_id: str,
                    entered_at: datetime) -> None: ...


# Where agent state changes are written (the record writer: durable through outages).
StateLog = Callable[[AgentStateRow], None]


@dataclass(slots=True)
class QueueCounters:
    """One queue's figures for one day (UTC)."""

    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0
    wait_answered_s: float = 0.0
    moved_out: int = 0  # callers a supervisor moved to another queue


@dataclass(slots=True)
class Replica:
    """Everything applying the log builds: the same in every process at the same entry."""

    state: acd.AcdState = field(default_factory=acd.AcdState)
    counters: dict[str, QueueCounters] = field(default_factory=dict)
    day: str = ""
    owners: dict[str, str] = field(default_factory=dict)  # call id -> process holding the call


class AcdService:
    def __init__(self, acd_log: AcdLog, node: str, state_log: StateLog | None = None, *,
                 tick_s: float = TICK_S, heartbeat_ms: int = HEARTBEAT_MS, publish: Publish | None = None,
                 queue_stats_every_s: float = QUEUE_STATS_EVERY_S) -> None:
        self.node = node
        self.legs: CallLegs | None = None
        self._log = acd_log
        self._state_log = state_log
        self._feed = publish  # the public event feed (services/feed.py)
        self._queue_stats_every_s = queue_stats_every_s
        self._queue_stats_at = 0.0
        self._tick_s = tick_s
        self._heartbeat_ms = heartbeat_ms
        self._replica = Replica()
        self.applied_id = "0-0"
        self._outgoing: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._last_appended = "0-0"
        self._applied = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._wrap_ups: dict[str, asyncio.TimerHandle] = {}
        self._declared_lost: set[str] = set()
        self.is_leader = False
        self._stopping = False
        self._stop = asyncio.Event()
        self._snapshot_id = ""
        self._snapshot_at = 0.0
        self._moves: dict[str, asyncio.Future[acd.MoveRefusal | None]] = {}  # move id -> verdict

    @property
    def state(self) -> acd.AcdState:
        return self._replica.state

    @property
    def counters(self) -> dict[str, QueueCounters]:
        return self._replica.counters

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    # ---- configuration and life cycle ------------------------------------------------

    async def configure(self, agents: list[Agent], queues: list[QueueConfig]) -> None:
        """Take the configured agents and queues (in every process); live state of known
        agents is kept."""
        if not self.started:
            _configure(self._replica.state, agents, queues)
            return
        self._append({"kind": "configure", "agents": encode(agents), "queues": encode(queues)})
        await self.settled()

    async def start(self) -> None:
        if self.started:
            return
        self._stopping = False
        self._stop = asyncio.Event()
        try:
            saved = await self._log.load_snapshot()
        except StorageUnavailable as exc:
            log.error("ACD snapshot not read (%s); the log is read from its start", exc.detail)
            saved = None
        if saved is not None:
            last_id, state = saved
            try:
                self._replica = _restore(state)
                self.applied_id = last_id
            except (DecodeError, KeyError) as exc:
                log.error("ACD snapshot unreadable (%s); the log is read from its start", exc)
        self._tasks = [asyncio.create_task(self._publish(), name="acd-publish"),
                       asyncio.create_task(self._consume(), name="acd-consume"),
                       asyncio.create_task(self._keep_time(), name="acd-lead")]
        log.info("ACD started as %s from log entry %s", self.node, self.applied_id)

    async def close(self) -> None:
        # The loops are told to stop and end between two Redis commands: cancelling redis-py
        # in the middle of one (a blocking XREAD above all) can hang. Events still waiting to
        # be written are written first, within the same bound.
        self._stopping = True
        self._stop.set()
        self._outgoing.put_nowait(None)
        for task in self._tasks:
            try:
                async with asyncio.timeout(READ_BLOCK_MS / 1000 + 2):
                    await asyncio.shield(task)
            except TimeoutError:
                log.error("ACD task %s did not stop; cancelling it", task.get_name())
                await stop_task(task)
            except Exception:
                log.exception("ACD task %s failed", task.get_name())
        self._tasks = []
        for timer in self._wrap_ups.values():
            timer.cancel()
        if self.is_leader:
            try:
                await self._log.resign(self.node)
            except StorageUnavailable:
                pass
            self.is_leader = False

    def submit(self, event: acd.AcdEvent) -> None:
        """Append an event to the shared log (never blocks; written in order)."""
        self._append({"kind": "event", "event": {"type": type(event).__name__, **encode(event)}})

    def _append(self, entry: dict[str, Any]) -> None:
        entry["node"] = self.node
        self._outgoing.put_nowait(entry)

    async def settled(self, timeout: float = 15.0) -> None:
        """Wait until every event this process submitted so far has been applied here.

        The bound is generous: on a loaded host (two controllers, Asterisk with a hundred
        channels and a test suite on two cores) one log round trip has taken over 5 s."""
        async with asyncio.timeout(timeout):
            await self._outgoing.join()
            target = stream_position(self._last_appended)
            async with self._applied:
                await self._applied.wait_for(lambda: stream_position(self.applied_id) >= target)

    def agent(self, agent_id: str) -> Agent | None:
        return self.state.agents.get(agent_id)

    async def agent_action(self, agent_id: str, action: str, reason: str = "") -> Agent:
        """Log in, log out, pause, unpause or end the wrap-up of an agent; returns its state
        once applied (an action that does not fit the agent's state changes nothing)."""
        if agent_id not in self.state.agents:
            raise NotFound(f"no agent {agent_id} (or it is not loaded in the ACD)")
        event: acd.AcdEvent = {
            "login": lambda: acd.AgentLoggedIn(agent_id),
            "logout": lambda: acd.AgentLoggedOut(agent_id),
            "pause": lambda: acd.AgentPaused(agent_id, reason or "break"),
            "unpause": lambda: acd.AgentUnpaused(agent_id, reason),
            "end_wrap_up": lambda: acd.WrapUpEnded(agent_id),
        }[action]()
        self.submit(event)
        await self.settled()
        return self.state.agents[agent_id]

    async def move(self, call_id: str, *, queue: str = "", agent_id: str = "",
                   timeout: float = 5.0) -> QueueEntry:
        """Move a waiting caller to ``queue`` or to the agent ``agent_id`` (a supervisor's
        action); returns its entry once moved. Conflict when it is not waiting, the agent is
        logged out or the queue is empty and sheds its callers; InvalidRequest for an unknown
        queue or agent."""
        move = acd.MoveRequested(call_id, queue, agent_id, uuid.uuid4().hex)
        refusal = acd.move_refusal(self.state, move)  # what this copy says now: fail fast
        if refusal is not None:
            raise _refused(refusal)
        verdict: asyncio.Future[acd.MoveRefusal | None] = asyncio.get_running_loop().create_future()
        self._moves[move.move_id] = verdict
        self.submit(move)
        try:
            async with asyncio.timeout(timeout):
                refusal = await verdict
        except TimeoutError as exc:
            raise StorageUnavailable("the ACD's log in Redis did not answer in time; the move may "
                                     "still be made") from exc
        finally:
            self._moves.pop(move.move_id, None)
        if refusal is not None:
            raise _refused(refusal)
        entry = self.state.waiting.get(call_id)
        if entry is None:  # answered, abandoned or overflowed just after the move
            raise Conflict(f"call {call_id} was moved, and is no longer waiting")
        return entry

    # ---- writing to the log ---------------------------------------------------------------

    async def _publish(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            entry = await self._outgoing.get()
            if entry is None:  # close(): everything before it has been written (or given up)
                self._outgoing.task_done()
                return
            while True:
                try:
                    self._last_appended = await self._log.append(entry)
                    backoff.reset()
                    break
                except StorageUnavailable as exc:
                    if self._stopping:
                        log.error("ACD event lost at shutdown, Redis is away: %r", entry)
                        break
                    log.warning("ACD log not written (%s); %d events wait, retrying in %.1f s",
                                exc.detail, self._outgoing.qsize() + 1, backoff.delay)
                    await self._pause(backoff)
            self._outgoing.task_done()

    # ---- reading the log: every process applies every entry, in order ----------------------

    async def _consume(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while not self._stopping:
            try:
                entries = await self._log.read(self.applied_id, READ_BLOCK_MS)
                backoff.reset()
            except StorageUnavailable as exc:
                log.warning("ACD log not read (%s); routing waits, retrying in %.1f s",
                            exc.detail, backoff.delay)
                await self._pause(backoff)
                continue
            for entry_id, entry in entries:
                try:
                    await self._apply(entry_id, entry)
                except Exception:
                    log.exception("ACD log entry %s not applied: %r", entry_id, entry)
                self.applied_id = entry_id
            if entries:
                async with self._applied:
                    self._applied.notify_all()

    async def _apply(self, entry_id: str, entry: dict[str, Any]) -> None:
        millis, _ = stream_position(entry_id)
        now = datetime.fromtimestamp(millis / 1000, UTC)
        publisher = str(entry.get("node", ""))
        numbers = itertools.count(1)

        def ids(prefix: str) -> str:
            return f"{prefix}-{entry_id}-{next(numbers)}"

        match entry.get("kind"):
            case "configure":
                _configure(self.state, decode(list[Agent], entry["agents"]),
                           decode(list[QueueConfig], entry["queues"]))
            case "event":
                fields = dict(entry["event"])
                kind = _EVENT_TYPES[fields.pop("type")]
                event = decode(kind, fields)
                if isinstance(event, acd.CallQueued):
                    # Waits are counted from the log's clock, so callers held by different
                    # processes are first-in-first-out in the order the log got them.
                    event = acd.CallQueued(replace(event.entry, entered_at=now))
                    self._replica.owners[event.entry.call_id] = publisher
                elif isinstance(event, acd.ConnectFailed):
                    self._replica.owners[event.call_id] = publisher  # it waits again, held there
                elif isinstance(event, acd.CallbackRequested):
                    # The callback call is held (and dialed) by the process that asked for it.
                    self._replica.owners[event.callback_call_id] = publisher
                await self._decide(event, now, ids, publisher, entry_id)
            case "lost":
                lost = str(entry["lost"])
                log.warning("process %s is lost: its queued callers leave and its offers end", lost)
                for queued in self.state.ordered_waiting():
                    if self._replica.owners.get(queued.call_id) == lost:
                        # The process that declared it carries out (and tells) what follows.
                        self._replica.owners[queued.call_id] = publisher
                        await self._decide(acd.CallAbandoned(queued.call_id), now, ids, publisher, entry_id)
            case other:
                log.error("ACD log entry %s of unknown kind %r skipped", entry_id, other)

    async def _decide(self, event: acd.AcdEvent, now: datetime, ids: acd.Ids, publisher: str,
                      entry_id: str) -> None:
        before = self.state
        decision = acd.on_event(before, event, now, ids)
        self._replica.state = decision.state
        if isinstance(event, acd.MoveRequested) and publisher == self.node:
            verdict = self._moves.get(event.move_id)
            if verdict is not None and not verdict.done():
                verdict.set_result(acd.move_refusal(before, event))
        self._count(before, event, decision.commands, now)
        owners = self._replica.owners

        def mine(call_id: str | None) -> bool:
            return (owners.get(call_id) == self.node) if call_id else (publisher == self.node)

        if self._feed is not None:
            # Callers joining and leaving come first: a caller joins before it rings an agent.
            for call_id, told in acd_feed.queue_events(before, self.state, event, decision.commands, now):
                if mine(call_id):
                    self._feed(told, now)
        # Each agent's state as the commands go (one entry may move an agent twice).
        states = {agent_id: agent.state for agent_id, agent in before.agents.items()}
        for command in decision.commands:
            call_id = getattr(command, "call_id", None)
            if isinstance(command, acd.CancelOffer):
                offer = before.offers.get(command.offer_id)
                call_id = offer.call_id if offer else None
            if isinstance(command, acd.AgentStateChanged):
                old, states[command.agent_id] = states.get(command.agent_id), command.state
                if mine(call_id) and self._feed is not None:
                    told = acd_feed.agent_state_changed(command, old, before, self.state, now, entry_id)
                    self._feed(told, now)
            if mine(call_id):
                try:
                    await self._execute(command, now)
                except Exception:
                    log.exception("ACD command failed: %r", command)
        state = self._replica.state
        talking = {busy.call_id for calls in state.talking.values() for busy in calls}
        for call_id in [c for c in owners if c not in state.waiting and c not in talking]:
            del owners[call_id]

    async def _execute(self, command: acd.AcdCommand, now: datetime) -> None:
        legs = self.legs
        match command:
            case acd.OfferCall(offer_id=offer_id, call_id=call_id, agent_ids=agent_ids, timeout_s=timeout):
                for agent_id in agent_ids:
                    agent = self.state.agents[agent_id]
                    if legs is not None:
                        await legs.offer(call_id, offer_id, agent_id, agent.device, timeout)
            case acd.CancelOffer(offer_id=offer_id, agent_ids=agent_ids):
                for agent_id in agent_ids:
                    if legs is not None:
                        await legs.withdraw(offer_id, agent_id)
            case acd.ConnectCall(call_id=call_id, agent_id=agent_id, offer_id=offer_id, entry=entry):
                if legs is not None:
                    await legs.connect(call_id, offer_id, agent_id, entry)
            case acd.Overflow(call_id=call_id, reason=reason, queue=queue, destination=destination):
                if legs is not None:
                    await legs.overflow(call_id, reason.value, queue, destination)
            case acd.AnnounceWait(call_id=call_id, queue=queue, position=position, eta_s=eta_s):
                if legs is not None:
                    await legs.announce(call_id, queue, position, eta_s)
            case acd.CallerMoved(call_id=call_id, queue=queue, from_queue=from_queue, agent_id=agent_id,
                                 entered_at=entered_at):
                log.info("call %s moved from queue %s to queue %s%s", call_id, from_queue, queue,
                         f", for agent {agent_id}" if agent_id else "", extra={"call_id": call_id})
                if legs is not None:
                    await legs.moved(call_id, queue, from_queue, agent_id, entered_at)
            case acd.AgentStateChanged(agent_id=agent_id, state=state, reason=reason, wrap_up_s=wrap_up_s):
                log.info("agent %s is %s %s", agent_id, state.value, reason or "",
                         extra={"agent_id": agent_id, "state": state.value})
                if self._state_log is not None:
                    calls = self.state.calls_of_agent(agent_id)  # the latest is what changed it
                    self._state_log(AgentStateRow(agent_id, now, state.value, reason or "",
                                                  calls[-1].queue if calls else None,
                                                  calls[-1].call_id if calls else None))
                if state is AgentState.WRAP_UP:
                    self._arm_wrap_up(agent_id, wrap_up_s)
            case acd.PauseAgent():
                pass  # the engine has already moved the agent; its AgentStateChanged is logged

    # ---- the leader's clock, snapshots and lost processes ----------------------------------

    async def _pause(self, backoff: Backoff) -> None:
        """Back off, or less when the service is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(backoff.delay):
                await self._stop.wait()
        backoff.delay = min(backoff.delay * 2, backoff.maximum)

    async def _keep_time(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                await self._log.heartbeat(self.node, self._heartbeat_ms)
                leading = await self._log.lead(self.node, LEASE_MS)
                if leading != self.is_leader:
                    log.info("ACD leader: %s %s", self.node, "takes the lead" if leading else "lost the lead")
                    self.is_leader = leading
                if leading:
                    await self._lead(loop.time())
            except StorageUnavailable as exc:
                if self.is_leader:
                    log.warning("ACD leader lease not renewed: %s", exc.detail)
                self.is_leader = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_s):
                    await self._stop.wait()

    async def _lead(self, clock: float) -> None:
        state = self.state
        if state.waiting:
            self._append({"kind": "event", "event": {"type": "Tick"}})
        overdue = datetime.now(UTC) - WRAP_UP_GRACE
        for agent in state.agents.values():
            if agent.state is AgentState.WRAP_UP and agent.wrap_up_until and agent.wrap_up_until < overdue:
                self.submit(acd.WrapUpEnded(agent.id))
        holders = set(self._replica.owners.values()) - {self.node}
        alive = await self._log.alive(holders)
        self._declared_lost &= holders - alive
        for lost in sorted(holders - alive - self._declared_lost):
            self._declared_lost.add(lost)
            self._append({"kind": "lost", "lost": lost})
        if self._feed is not None and clock - self._queue_stats_at >= self._queue_stats_every_s:
            self._queue_stats_at = clock
            at = datetime.now(UTC)
            for name in sorted(state.queues):
                self._feed(acd_feed.queue_stats(self.queue_stats(name, at)), at)
        if self.applied_id != self._snapshot_id and clock - self._snapshot_at >= SNAPSHOT_EVERY_S:
            self._snapshot_id, self._snapshot_at = self.applied_id, clock
            await self._log.save_snapshot(self.applied_id, encode(self._replica))
            await self._log.save_queue_figures(self._replica.day, {
                name: self.queue_stats(name, datetime.now(UTC)) for name in state.queues})

    def _count(self, before: acd.AcdState, event: acd.AcdEvent, commands: tuple[acd.AcdCommand, ...],
               now: datetime) -> None:
        day = now.date().isoformat()
        if day != self._replica.day:
            self._replica.day, self._replica.counters = day, {}
        if isinstance(event, acd.CallAbandoned) and event.call_id in before.waiting:
            self._counters(before.waiting[event.call_id].queue).abandoned += 1
        for command in commands:
            entry = before.waiting.get(getattr(command, "call_id", ""))
            if entry is None:
                continue
            counters = self._counters(entry.queue)
            if isinstance(command, acd.ConnectCall):
                waited = (now - entry.entered_at).total_seconds()
                counters.answered += 1
                counters.wait_answered_s += waited
                queue = self.state.queues.get(entry.queue)
                if queue is not None and waited <= queue.service_level_s:
                    counters.answered_within_sl += 1
            elif isinstance(command, acd.Overflow):
                counters.overflowed += 1
            elif isinstance(command, acd.CallerMoved) and command.queue != command.from_queue:
                counters.moved_out += 1

    def _counters(self, queue: str) -> QueueCounters:
        return self.counters.setdefault(queue, QueueCounters())

    def queue_stats(self, name: str, now: datetime) -> dict[str, object]:
        """Live figures of one queue: who waits, how long, agents by state, service level."""
        queue = self.state.queues.get(name)
        if queue is None:
            raise NotFound(f"no queue {name} in the ACD")
        waiting = [e for e in self.state.waiting.values() if e.queue == name]
        members = [self.state.agents[a] for a, _ in queue.members if a in self.state.agents]
        by_state: dict[str, int] = {}
        for agent in members:
            by_state[agent.state.value] = by_state.get(agent.state.value, 0) + 1
        counters = self._counters(name)
        handled = counters.answered + counters.abandoned
        return {
            "queue": name,
            "waiting": len(waiting),
            "longest_wait_s": max(((now - e.entered_at).total_seconds() for e in waiting), default=0.0),
            "agents": by_state,
            "answered": counters.answered,
            "abandoned": counters.abandoned,
            "overflowed": counters.overflowed,
            "moved_out": counters.moved_out,
            "average_wait_answered_s": (counters.wait_answered_s / counters.answered
                                        if counters.answered else None),
            "service_level_s": queue.service_level_s,
            "service_level": counters.answered_within_sl / handled if handled else None,
        }

    def queue_calls(self, name: str, now: datetime) -> list[dict[str, object]]:
        if name not in self.state.queues:
            raise NotFound(f"no queue {name} in the ACD")
        ringing = {o.call_id: o for o in self.state.offers.values()}
        entries = sorted((e for e in self.state.waiting.values() if e.queue == name), key=lambda e: e.rank())
        return [{"call_id": e.call_id, "position": i + 1, "priority": e.priority,
                 "waited_s": (now - e.entered_at).total_seconds(), "skills": e.skills,
                 "ringing": list(ringing[e.call_id].agent_ids) if e.call_id in ringing else [],
                 "target_agent": e.target_agent}
                for i, e in enumerate(entries)]

    def _arm_wrap_up(self, agent_id: str, seconds: int) -> None:
        old = self._wrap_ups.pop(agent_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._wrap_ups[agent_id] = loop.call_later(
            max(seconds, 0), lambda: self.submit(acd.WrapUpEnded(agent_id)))


def _configure(state: acd.AcdState, agents: list[Agent], queues: list[QueueConfig]) -> None:
    kept = {}
    for agent in agents:
        live = state.agents.get(agent.id)
        if live is not None:
            agent.state, agent.state_since = live.state, live.state_since
            agent.last_call_ended_at, agent.calls_taken = live.last_call_ended_at, live.calls_taken
            agent.talk_seconds, agent.missed_in_a_row = live.talk_seconds, live.missed_in_a_row
            agent.paused_reason, agent.wrap_up_until = live.paused_reason, live.wrap_up_until
            agent.pause_requested, agent.device_reachable = live.pause_requested, live.device_reachable
        kept[agent.id] = agent
    state.agents = kept
    state.queues = {q.name: q for q in queues}


def _refused(refusal: acd.MoveRefusal) -> Exception:
    if refusal.problem in (acd.MoveProblem.INVALID, acd.MoveProblem.NO_QUEUE, acd.MoveProblem.NO_AGENT):
        return InvalidRequest(refusal.detail)
    return Conflict(refusal.detail)


def _restore(saved: dict[str, Any]) -> Replica:
    state = saved.get("state")
    if isinstance(state, dict) and isinstance(state.get("talking"), dict):
        # Snapshots written before an agent could be on several calls held one
        # ``[call_id, queue]`` pair per agent.
        state["talking"] = {
            agent_id: [{"call_id": calls[0], "queue": calls[1]}]
            if len(calls) == 2 and all(isinstance(x, str) for x in calls) else calls
            for agent_id, calls in state["talking"].items()}
    return decode(Replica, saved)
