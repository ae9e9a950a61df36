"""The live ACD: one task runs the pure engine (engines/acd.py) over a queue of events.

Events come from the call service (a caller queued, an agent's phone answered or not, a call
ended), from the API (login, logout, pause) and from a one-second tick (wait-time rules and
max wait). The engine's commands go back out: offers and connections to the call service,
agent state changes to the state log and the wrap-up timer.

State is held by this process, so one controller process runs the ACD for its calls; sharing
agents between processes (atomic reservation in Redis) is the next step of issue 5.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from controller.backoff import stop_task
from controller.domain.agents import Agent, AgentState, QueueConfig, QueueDestination
from controller.domain.errors import NotFound
from controller.engines import acd
from controller.storage.acd import AgentStateRow

log = logging.getLogger(__name__)

TICK_S = 1.0


class CallLegs(Protocol):
    """What the ACD needs from the call service."""

    async def offer(self, call_id: str, offer_id: str, agent_id: str, device: str,
                    timeout_s: int) -> None: ...

    async def withdraw(self, offer_id: str, agent_id: str) -> None: ...

    async def connect(self, call_id: str, offer_id: str, agent_id: str) -> None: ...

    async def overflow(self, call_id: str, reason: str, queue: str,
                       destination: QueueDestination) -> None: ...

    async def announce(self, call_id: str, queue: str, position: int, eta_s: int | None) -> None: ...


# Where agent state changes are written (the record writer: durable through outages).
StateLog = Callable[[AgentStateRow], None]


@dataclass(slots=True)
class QueueCounters:
    """Since the process started (daily roll-ups and history come with the reports issue)."""

    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0
    wait_answered_s: float = 0.0


class AcdService:
    def __init__(self, state_log: StateLog | None = None) -> None:
        self.state = acd.AcdState()
        self.counters: dict[str, QueueCounters] = {}
        self.legs: CallLegs | None = None
        self._state_log = state_log
        self._events: asyncio.Queue[acd.AcdEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._wrap_ups: dict[str, asyncio.TimerHandle] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- configuration and life cycle ------------------------------------------------

    def configure(self, agents: list[Agent], queues: list[QueueConfig]) -> None:
        """Take the configured agents and queues; live state of known agents is kept."""
        kept = {}
        for agent in agents:
            live = self.state.agents.get(agent.id)
            if live is not None:
                agent.state, agent.state_since = live.state, live.state_since
                agent.last_call_ended_at, agent.calls_taken = live.last_call_ended_at, live.calls_taken
                agent.talk_seconds, agent.missed_in_a_row = live.talk_seconds, live.missed_in_a_row
                agent.paused_reason, agent.wrap_up_until = live.paused_reason, live.wrap_up_until
            kept[agent.id] = agent
        self.state.agents = kept
        self.state.queues = {q.name: q for q in queues}

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="acd")
            self._ticker = asyncio.create_task(self._tick(), name="acd-tick")

    async def close(self) -> None:
        await stop_task(self._ticker)
        await stop_task(self._task)
        self._task = self._ticker = None
        for timer in self._wrap_ups.values():
            timer.cancel()

    def submit(self, event: acd.AcdEvent) -> None:
        self._idle.clear()
        self._events.put_nowait(event)

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until every event submitted so far has been handled (for tests and tools)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    def agent(self, agent_id: str) -> Agent | None:
        return self.state.agents.get(agent_id)

    async def agent_action(self, agent_id: str, action: str, reason: str = "") -> Agent:
        """Log in, log out, pause or unpause an agent; returns its state once applied."""
        if agent_id not in self.state.agents:
            raise NotFound(f"no agent {agent_id} (or it is not loaded in the ACD)")
        event: acd.AcdEvent = {
            "login": lambda: acd.AgentLoggedIn(agent_id),
            "logout": lambda: acd.AgentLoggedOut(agent_id),
            "pause": lambda: acd.AgentPaused(agent_id, reason or "break"),
            "unpause": lambda: acd.AgentUnpaused(agent_id, reason),
        }[action]()
        self.submit(event)
        await self.settled()
        return self.state.agents[agent_id]

    # ---- the loop ---------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.state.waiting:
                self.submit(acd.Tick())

    async def _run(self) -> None:
        while True:
            if self._events.empty():
                self._idle.set()
            event = await self._events.get()
            now = datetime.now(UTC)
            before = self.state
            try:
                decision = acd.on_event(self.state, event, now, _new_id)
            except Exception:
                log.exception("ACD engine failed on %r", event)
                continue
            self.state = decision.state
            self._count(before, event, decision.commands, now)
            for command in decision.commands:
                try:
                    await self._execute(command, now)
                except Exception:
                    log.exception("ACD command failed: %r", command)

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
            case acd.ConnectCall(call_id=call_id, agent_id=agent_id, offer_id=offer_id):
                if legs is not None:
                    await legs.connect(call_id, offer_id, agent_id)
            case acd.Overflow(call_id=call_id, reason=reason, queue=queue, destination=destination):
                if legs is not None:
                    await legs.overflow(call_id, reason.value, queue, destination)
            case acd.AnnounceWait(call_id=call_id, queue=queue, position=position, eta_s=eta_s):
                if legs is not None:
                    await legs.announce(call_id, queue, position, eta_s)
            case acd.AgentStateChanged(agent_id=agent_id, state=state, reason=reason, wrap_up_s=wrap_up_s):
                log.info("agent %s is %s %s", agent_id, state.value, reason or "",
                         extra={"agent_id": agent_id, "state": state.value})
                if self._state_log is not None:
                    talking = self.state.talking.get(agent_id)
                    self._state_log(AgentStateRow(agent_id, now, state.value, reason or "",
                                                  talking[1] if talking else None,
                                                  talking[0] if talking else None))
                if state is AgentState.WRAP_UP:
                    self._arm_wrap_up(agent_id, wrap_up_s)
            case acd.PauseAgent():
                pass  # the engine has already moved the agent; its AgentStateChanged is logged

    def _count(self, before: acd.AcdState, event: acd.AcdEvent, commands: tuple[acd.AcdCommand, ...],
               now: datetime) -> None:
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
                 "ringing": list(ringing[e.call_id].agent_ids) if e.call_id in ringing else []}
                for i, e in enumerate(entries)]

    def _arm_wrap_up(self, agent_id: str, seconds: int) -> None:
        old = self._wrap_ups.pop(agent_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._wrap_ups[agent_id] = loop.call_later(
            max(seconds, 0), lambda: self.submit(acd.WrapUpEnded(agent_id)))


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"
