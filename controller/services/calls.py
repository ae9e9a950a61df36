"""Calls in progress: switch events in, engine decisions out, records kept.

Each call gets its own queue and task, so events of one call are handled in order and a
slow call never delays another. For each event the service updates the call model,
asks the flow engine what to do, writes the call records (through the record writer, which
survives a Postgres outage), mirrors the live call to Redis, and executes the commands.

After every (re)connect to the switch, services/call_recovery.py brings the tracked calls in
line with what the switch holds (legs that vanished end, calls of a previous run are adopted).

What happens to a call is told to the public event feed (services/call_feed.py) from here, by
the process that holds the call: started, answered, queued, offered (the agent's screen pop),
connected and ended; call control adds holds and transfers through :meth:`CallService.tell`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.agents import QueueDestination, QueueEntry
from controller.domain.calls import (
    Call,
    CallState,
    Direction,
    IllegalTransition,
    Leg,
    LegRole,
    LegState,
    apply_leg,
    settle_call,
)
from controller.domain.errors import (
    Conflict,
    ControllerError,
    LegGone,
    NotFound,
)
from controller.domain.feed import Publish
from controller.engines import acd as acd_engine
from controller.services import call_feed
from controller.services.acd import AcdService
from controller.services.call_snapshot import Connection, snapshot
from controller.services.drivers import Driver, GreetingDriver
from controller.services.lookups import Lookups
from controller.services.queue_caller import QueueCaller
from controller.services.recordings import LiveCall
from controller.storage.live import LiveStore
from controller.storage.outbox import RecordWriter
from controller.storage.records import CallEventRow, CallRow, LegRow

log = logging.getLogger(__name__)


class Switch(Protocol):
    name: str

    async def execute(self, command: c.Command) -> None: ...

    async def playback_active(self, playback_id: str) -> bool: ...


class Inbound(Protocol):
    """Which driver a new inbound call gets (see services/inbound.py)."""

    async def admit(self, call_id: str, leg_id: str, dialed: str, data: dict[str, str],
                    answered: bool, now: datetime, default_prompt: str) -> Any: ...

    async def release(self, route: str, call_id: str) -> None: ...

    async def resume(self, saved: dict[str, Any]) -> Driver: ...


class Voicemails(Protocol):
    async def store(self, mailbox: str, call_id: str, caller_number: str, caller_name: str,
                    recording_name: str, duration_s: float | None) -> Any: ...


class Recordings(Protocol):
    def call_connected(self, call: LiveCall) -> None: ...


# After its last leg ends, a call waits this long for its flow's last events (a voicemail
# recording is finished by the caller hanging up; its RecordingFinished comes just after).
AFTER_HANGUP_GRACE_S = 5.0
ENDED_REMEMBERED = 10_000  # call ids (see CallService._ended_recently)


# What call control (services/call_control.py) does when one of its legs answers or ends.
# An answer hook returns the commands to carry out; an end hook too, or None for the default
# (a bridged party leaving ends the call).
AnswerHook = Callable[["CallSession", Leg], tuple[c.FlowCommand, ...]]
EndHook = Callable[["CallSession", Leg], tuple[c.FlowCommand, ...] | None]


@dataclass(frozen=True, slots=True)
class CallAction:
    """Work from the API, run on the call's own task between two events (see CallService.act)."""

    run: Callable[[CallSession], Awaitable[Any]]
    done: asyncio.Future[Any]


@dataclass(slots=True)
class CallSession:
    call: Call
    driver: Driver | None = None
    limited_route: str | None = None
    queue: asyncio.Queue[e.Event | CallAction] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    bridge_id: str | None = None
    queued: str | None = None  # the ACD queue the caller waits in
    offers: dict[str, tuple[str, str]] = field(default_factory=dict)  # leg id -> (offer id, agent id)
    agent_id: str | None = None  # the agent the call is connected to
    # Agents on the call that the ACD did not route (click-to-dial, transfer, conference):
    # leg id -> agent id. The ACD holds them busy until their leg ends or is let go.
    busy_agents: dict[str, str] = field(default_factory=dict)
    on_answer: dict[str, AnswerHook] = field(default_factory=dict)  # leg id -> call control's hook
    on_end: dict[str, EndHook] = field(default_factory=dict)  # leg id -> call control's hook
    released: set[str] = field(default_factory=set)  # legs that left on purpose: their end ends nothing
    consult: str | None = None  # the consult leg of an attended transfer in progress
    conference: str | None = None  # the third party's leg of a conference
    # Every agent offered the call, connected to it or dialed into it: whom its events concern.
    agents_involved: list[str] = field(default_factory=list)
    queued_at: datetime | None = None  # when the caller last entered a queue
    connected_at: datetime | None = None  # when the caller was last bridged with an agent
    # The caller takes no agent any more (a campaign call given the safe-harbor message): an
    # agent who answers its offer now is let go, never bridged (services/dialer.py).
    no_agent: bool = False

    def connection(self) -> Connection:
        """What Redis keeps of who the call connects (see call_snapshot.py)."""
        return Connection(self.bridge_id, self.agent_id, dict(self.offers), dict(self.busy_agents),
                          frozenset(self.released))

    def reconnect(self, saved: Connection) -> None:
        """A call adopted after a restart takes back who it connected."""
        self.bridge_id, self.agent_id = saved.bridge_id, saved.agent_id
        self.offers, self.busy_agents = dict(saved.offers), dict(saved.busy_agents)
        self.released = set(saved.released)

    def on_call(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is still on this call (connected by the ACD, or on a leg of its own)."""
        return self.agent_id == agent_id or agent_id in self.busy_agents.values()


class CallService:
    def __init__(self, switch: Switch, records: RecordWriter, live: LiveStore,
                 default_prompt: str, inbound: Inbound | None = None,
                 voicemails: Voicemails | None = None, lookups: Lookups | None = None,
                 acd: AcdService | None = None, queue_caller: QueueCaller | None = None,
                 feed: Publish | None = None) -> None:
        self._switch = switch
        self.feed = feed  # the public event feed (services/feed.py)
        self._records = records
        self._live = live
        self.default_prompt = default_prompt
        self._inbound = inbound
        self._voicemails = voicemails
        self._lookups = lookups or Lookups()
        self._acd = acd
        # The waiting caller's side of queues (services/queue_caller.py).
        self._waiting = queue_caller or QueueCaller(
            acd, lambda name: acd.state.queues.get(name) if acd is not None else None, records.put,
            switch.name)
        self._waiting.open_call = self._open_callback
        self.recordings: Recordings | None = None  # recording by policy (services/recordings.py)
        self._sessions: dict[str, CallSession] = {}
        # Calls this process ended lately (bounded): an ACD connection that comes after its call
        # ended must free the agent, while one for a call not (yet) known here, replayed from
        # the log after a restart, must not.
        self._ended_recently: OrderedDict[str, None] = OrderedDict()
        self._call_of_leg: dict[str, str] = {}
        self._finished = asyncio.Condition()

    # ---- reading --------------------------------------------------------------------

    def live_calls(self) -> list[Call]:
        return [s.call for s in self._sessions.values()]

    def sessions(self) -> list[CallSession]:
        return list(self._sessions.values())

    def find(self, call_id: str) -> Call | None:
        session = self._sessions.get(call_id)
        return session.call if session else None

    def call_of_leg(self, leg_id: str) -> str | None:
        return self._call_of_leg.get(leg_id)

    def connected_call(self, call_id: str) -> LiveCall | None:
        """A live call connected with an agent, as a recording sees it (the caller's or
        customer's leg, which it records, and the agents on the call), else None."""
        session = self._sessions.get(call_id)
        if session is None or session.bridge_id is None or session.call.state is CallState.ENDED:
            return None
        party = next((leg for leg in session.call.live_legs()
                      if leg.role in (LegRole.CALLER, LegRole.CUSTOMER) and leg.id not in session.released
                      and leg.state is LegState.UP), None)
        if party is None:
            return None
        data = session.call.data
        up = {leg.id for leg in session.call.live_legs() if leg.state is LegState.UP}
        agents = dict.fromkeys([*([data["agent_id"]] if data.get("agent_id") else []),
                                *(agent for leg_id, agent in session.busy_agents.items() if leg_id in up)])
        return LiveCall(call_id, session.bridge_id, party.id, data.get("queue"), data.get("agent_id"),
                        session.call.caller_number, tuple(agents), data.get("campaign"))

    def agent_connected(self, session: CallSession) -> None:
        """An agent joined the call (the ACD connected it, a transfer or conference answered):
        tell the recordings, which record by policy or note who took part."""
        connected = self.connected_call(session.call.id)
        if self.recordings is not None and connected is not None:
            self.recordings.call_connected(connected)

    def monitor_target(self, call_id: str) -> tuple[str, str, tuple[str, ...]]:
        """What a supervisor monitors on a call connected to an agent: the agent's leg, the
        call's bridge and every live leg of the call (see services/monitors.py)."""
        session = self.session(call_id)
        agents = [leg for leg in session.call.live_legs()
                  if leg.role is LegRole.AGENT and leg.state is LegState.UP]
        if session.agent_id is None or session.bridge_id is None or not agents:
            raise Conflict(f"call {call_id} is not connected to an agent")
        return agents[0].id, session.bridge_id, tuple(leg.id for leg in session.call.live_legs())

    # ---- events in ------------------------------------------------------------------

    def submit(self, event: e.Event) -> None:
        """Take one switch event (never blocks); it is handled on its call's own task."""
        if isinstance(event, e.SwitchLinkChanged):
            return
        leg_id = e.leg_of(event)
        if leg_id is None:
            return
        call_id = self._call_of_leg.get(leg_id)
        if call_id is None:
            if isinstance(event, e.LegArrived) and event.args[:1] in (("monitor",), ("recording",)):
                return  # a supervisor's, monitor's or recording's snoop leg: never a new call
            if not isinstance(event, e.LegArrived):
                log.debug("event for a leg the controller does not track: %r", event)
                return
            call_id = self._open_call(event).id
        self._sessions[call_id].queue.put_nowait(event)

    def _open_call(self, arrived: e.LegArrived, call_id: str | None = None) -> Call:
        direction = Direction.INTERNAL if arrived.args[:1] == ("internal",) else Direction.INBOUND
        call = Call(
            id=call_id or str(uuid.uuid4()),
            direction=direction,
            started_at=arrived.created_at,
            caller_number=arrived.caller_number,
            caller_name=arrived.caller_name,
            dialed=arrived.dialed,
        )
        call.legs[arrived.leg_id] = Leg(
            id=arrived.leg_id, call_id=call.id, role=LegRole.CALLER,
            channel_name=arrived.channel_name, created_at=arrived.created_at,
        )
        session = CallSession(call)
        self.track(session)
        log.info("call %s opened by leg %s from %r to %r", call.id, arrived.leg_id,
                 arrived.caller_number, arrived.dialed,
                 extra={"call_id": call.id, "leg_id": arrived.leg_id})
        self.tell(session, "call.started", call_feed.started(call))
        return call

    def track(self, session: CallSession) -> None:
        """Handle the call's events on its own task from now on (also a call adopted after a
        reconnect, services/call_recovery.py)."""
        call = session.call
        self._sessions[call.id] = session
        for leg_id in call.legs:
            self._call_of_leg[leg_id] = call.id
        session.task = asyncio.create_task(self._serve(session), name=f"call-{call.id}")

    async def _serve(self, session: CallSession) -> None:
        call = session.call
        try:
            while True:
                if call.state is CallState.ENDED:
                    if session.driver is None or session.driver.finished:
                        break
                    try:
                        async with asyncio.timeout(AFTER_HANGUP_GRACE_S):
                            event = await session.queue.get()
                    except TimeoutError:
                        break
                else:
                    event = await session.queue.get()
                if isinstance(event, CallAction):
                    await self._act(session, event)
                    continue
                try:
                    await self._handle(session, event)
                except Exception:
                    log.exception("call %s: failed to handle %r", call.id, event)
        finally:
            while not session.queue.empty():  # actions that came too late: the call is over
                item = session.queue.get_nowait()
                if isinstance(item, CallAction) and not item.done.done():
                    item.done.set_exception(NotFound(f"call {call.id} has ended"))
            for timer in session.timers.values():
                timer.cancel()
            self._waiting.call_ended(call.id)
            self._sessions.pop(call.id, None)
            if call.state is CallState.ENDED:
                self._ended_recently[call.id] = None
                while len(self._ended_recently) > ENDED_REMEMBERED:
                    self._ended_recently.popitem(last=False)
            for leg_id in call.legs:
                self._call_of_leg.pop(leg_id, None)
            if call.state is CallState.ENDED:
                self._live.drop_call(call.id)
                if session.limited_route and self._inbound is not None:
                    await self._inbound.release(session.limited_route, call.id)
            async with self._finished:
                self._finished.notify_all()

    async def close(self) -> None:
        """Stop handling calls without ending them: they stay on the switch and in Redis,
        for this process after a restart, or another one, to adopt."""
        tasks = [s.task for s in self._sessions.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_ended(self, call_id: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            async with self._finished:
                await self._finished.wait_for(lambda: call_id not in self._sessions)

    # ---- handling -------------------------------------------------------------------

    async def _handle(self, session: CallSession, event: e.Event) -> None:
        call = session.call
        leg_id = e.leg_of(event)
        leg = call.legs.get(leg_id) if leg_id else None
        rows: list[CallRow | LegRow | CallEventRow] = [
            CallEventRow(call.id, leg_id, event.at, type(event).__name__, _event_data(event))
        ]
        commands: tuple[c.Command, ...] = ()

        match event:
            case e.LegArrived() if leg is not None and leg.id in session.released:
                self._transition(leg, LegState.UP, event.at)  # answered just as it was let go
                commands = (c.Hangup(leg.id),)
                rows.append(LegRow.of(leg))
            case e.LegArrived() if leg is not None and leg.id in session.on_answer:
                self._transition(leg, LegState.UP, event.at)
                commands = session.on_answer.pop(leg.id)(session, leg)
                rows.append(LegRow.of(leg))
            case e.LegArrived() if leg is not None and leg.role is LegRole.AGENT:
                self._transition(leg, LegState.UP, event.at)
                offer = session.offers.get(leg.id)
                if offer is None:
                    # Answered just as the ACD withdrew the offer (answered elsewhere, the caller
                    # left): nobody waits for this agent any more.
                    commands = (c.Hangup(leg.id),)
                elif self._acd is not None:
                    self._acd.submit(acd_engine.OfferAnswered(*offer))
                rows.append(LegRow.of(leg))
            case e.LegArrived() if leg is not None and event.args[:1] == ("callback",):
                self._transition(leg, LegState.UP, event.at)
                commands = self._waiting.callback_answered(session, leg)
                self.agent_connected(session)  # a callback is recorded as a queue call is
                rows.append(LegRow.of(leg))
                if session.bridge_id is not None:
                    session.connected_at = event.at
                    self.tell(session, "call.connected", {"agent_id": session.agent_id,
                                                          "queue": call.data.get("queue"), "callback": True,
                                                          "bridge_id": session.bridge_id})
            case e.LegArrived() if leg is not None and leg.role is LegRole.TRANSFER:
                self._transition(leg, LegState.UP, event.at)
                commands = self._bridge_transfer(session, leg)
                rows.append(LegRow.of(leg))
            case e.LegArrived() if leg is not None:
                if event.answered and leg.state is LegState.RINGING:
                    apply_leg(leg, LegState.UP, event.at)
                commands = await self._begin(session, leg, event)
                rows.append(LegRow.of(leg))
            case e.LegAnswered() if leg is not None:
                self._transition(leg, LegState.UP, event.at)
                rows.append(LegRow.of(leg))
            case e.LegHungUp() if leg is not None:
                self._transition(leg, LegState.ENDED, event.at, event.cause, event.cause_text)
                rows.append(LegRow.of(leg))

        if session.driver is not None and not isinstance(event, e.LegArrived):
            commands = session.driver.on_event(event, event.at)
        waiting_in = session.queued
        commands += await self._waiting.on_event(session, event)
        if session.queued is not None and session.queued != waiting_in:  # overflowed to another queue
            self._tell_queued(session, event.at)
        if isinstance(event, e.LegHungUp) and leg is not None:
            commands += self._after_leg_ended(session, leg, event.at)

        # What only changes the call itself is applied before the call is written.
        commands = tuple(cmd for cmd in commands if not self._apply_locally(session, cmd))
        was = call.state
        settle_call(call, event.at)
        rows.insert(0, CallRow.of(call, self._switch.name))
        self._records.put(*rows)
        self._publish(session)
        if call.state is not was:
            self._tell_settled(session, was)
        for command in commands:
            await self._execute(session, command)

    async def _begin(self, session: CallSession, leg: Leg, arrived: e.LegArrived) -> tuple[c.Command, ...]:
        call = session.call
        answered = leg.state is LegState.UP
        if self._inbound is None or call.direction is not Direction.INBOUND:
            session.driver, commands = GreetingDriver.begin(leg.id, (self.default_prompt,), answered)
            return commands
        data = {"caller_number": call.caller_number, "caller_name": call.caller_name,
                "dialed": call.dialed}
        admission = await self._inbound.admit(call.id, leg.id, call.dialed, data, answered, arrived.at,
                                              self.default_prompt)
        session.driver = admission.driver
        session.limited_route = admission.route if admission.limited else None
        call.route_name, call.flow_name, call.flow_version = (
            admission.route, admission.flow, admission.version)
        if admission.overflowed:
            call.data["overflow"] = "yes"
        return admission.commands

    # ---- the public event feed ----------------------------------------------------------

    def tell(self, session: CallSession, kind: str, data: dict[str, Any] | None = None) -> None:
        """Publish a ``call.*`` event about the session's call to every agent it concerns."""
        if self.feed is None:
            return
        call = session.call
        agents = [*session.agents_involved, call.data.get("agent_id", ""), *session.busy_agents.values()]
        self.feed(call_feed.call_event(kind, call, agents, data))

    def tell_lost(self, call: Call) -> None:
        """A call a previous run left unfinished was ended in the records (services/call_recovery.py)."""
        if self.feed is not None:
            self.feed(call_feed.call_event("call.ended", call, (call.data.get("agent_id", ""),),
                                           call_feed.ended(call, None, None)))

    def _tell_queued(self, session: CallSession, at: datetime) -> None:
        session.queued_at = at
        data = session.call.data
        skills = dict(item.split(":", 1) for item in data.get("queue_skills", "").split(",") if ":" in item)
        self.tell(session, "call.queued", {"queue": data.get("queue"),
                                           "priority": int(data.get("queue_priority") or 0),
                                           "skills": {name: int(level) for name, level in skills.items()}})

    def _tell_settled(self, session: CallSession, was: CallState) -> None:
        call = session.call
        if call.answered_at is not None and was is CallState.RINGING:
            self.tell(session, "call.answered", call_feed.answered(call))
        if call.state is CallState.ENDED:
            self.tell(session, "call.ended", call_feed.ended(call, session.queued_at, session.connected_at))

    def _publish(self, session: CallSession) -> None:
        """Mirror the live call to Redis (its data may have changed)."""
        if session.call.state is CallState.ENDED:
            self._live.drop_call(session.call.id)
        else:
            self._live.put_call(session.call.id, snapshot(session.call, session.driver, session.connection()))

    def arm_timer(self, session: CallSession, timer_id: str, leg_id: str, seconds: float) -> None:
        self._apply_locally(session, c.StartTimer(timer_id, leg_id, seconds))

    def _apply_locally(self, session: CallSession, command: c.Command) -> bool:
        match command:
            case c.CallDataChanged(data=data):
                session.call.data.update(data)
            case c.FlowFinished(outcome=outcome):
                session.call.data["flow_outcome"] = outcome
            case c.StartTimer(timer_id=timer_id, leg_id=leg_id, seconds=seconds):
                loop = asyncio.get_running_loop()
                session.timers[timer_id] = loop.call_later(
                    seconds, lambda: self._fire(session, timer_id, leg_id))
            case c.CancelTimer(timer_id=timer_id):
                timer = session.timers.pop(timer_id, None)
                if timer is not None:
                    timer.cancel()
            case _:
                return False
        return True

    # ---- for call control (services/call_control.py) -----------------------------------

    def session(self, call_id: str) -> CallSession:
        """The live call's session; NotFound when this controller runs no such call."""
        session = self._sessions.get(call_id)
        if session is None:
            raise NotFound(f"no live call {call_id} on this controller")
        return session

    async def act(self, call_id: str, run: Callable[[CallSession], Awaitable[Any]]) -> Any:
        """Run ``run(session)`` on the call's own task, in order with its events, and return
        its result (or raise its error). NotFound if the call is not live here."""
        session = self.session(call_id)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        session.queue.put_nowait(CallAction(run, done))
        return await done

    async def _act(self, session: CallSession, action: CallAction) -> None:
        try:
            result = await action.run(session)
        except Exception as exc:  # the API caller gets it (a ControllerError becomes problem+json)
            if not action.done.done():
                action.done.set_exception(exc)
            return
        finally:
            self._publish(session)
        if not action.done.done():
            action.done.set_result(result)

    def open(self, call: Call) -> CallSession:
        """Track a call the controller starts itself (click-to-dial), with the legs it has."""
        session = CallSession(call)
        self.track(session)
        self._records.put(CallRow.of(call, self._switch.name),
                          *(LegRow.of(leg) for leg in call.legs.values()))
        self.tell(session, "call.started", call_feed.started(call))
        return session

    def add_leg(self, session: CallSession, leg: Leg) -> None:
        """A leg call control is about to dial for a live call."""
        session.call.legs[leg.id] = leg
        self._call_of_leg[leg.id] = session.call.id
        self._records.put(LegRow.of(leg))

    def agent_joins(self, session: CallSession, leg: Leg, agent_id: str, queue: str = "") -> None:
        """An agent is dialed into the call by call control (not routed by the ACD): the ACD
        holds it busy from now until its leg ends (``queue``: whose wrap-up follows)."""
        session.busy_agents[leg.id] = agent_id
        _involve(session, agent_id)
        if self._acd is not None:
            self._acd.submit(acd_engine.AgentCallStarted(agent_id, session.call.id, queue))

    def _agent_leg_over(self, session: CallSession, leg: Leg, at: datetime) -> None:
        agent_id = session.busy_agents.pop(leg.id, None)
        # The ACD counts each call of an agent once: it hears the end when the agent's last leg
        # on this call goes.
        if agent_id is not None and self._acd is not None and not session.on_call(agent_id):
            talk = (at - leg.answered_at).total_seconds() if leg.answered_at else 0
            self._acd.submit(acd_engine.CallEnded(session.call.id, agent_id, int(talk)))

    def agents_adopted(self, session: CallSession, present: set[str]) -> None:
        """A call adopted after a restart tells the ACD again which agents are on it (their
        legs still on the switch): the ACD may have lost them, and one that already knows
        changes nothing (each call of an agent is counted once)."""
        if self._acd is None:
            return
        call = session.call
        queue = call.data.get("queue", "")
        agents = {agent for leg_id, agent in session.busy_agents.items() if leg_id in present}
        connected = [leg_id for leg_id, (_, agent) in session.offers.items() if agent == session.agent_id]
        if session.agent_id is not None and any(leg_id in present for leg_id in connected):
            agents.add(session.agent_id)
        for agent_id in sorted(agents):
            self._acd.submit(acd_engine.AgentCallStarted(agent_id, call.id, queue))

    def release_agent(self, session: CallSession, at: datetime, leg: Leg | None = None) -> None:
        """The connected agent (or the agent on ``leg``) leaves a call that goes on without it
        (transferred away, or it left a conference): the ACD frees the agent now rather than
        when the call ends."""
        if leg is not None and leg.id in session.busy_agents:
            # An agent call control brought in: the ACD's own agent, if another, stays on.
            self._agent_leg_over(session, leg, at)
            return
        if session.agent_id is None:
            return
        agent_leg = next((x for x in session.call.legs.values()
                          if x.id in session.offers and x.answered_at is not None), None)
        talk = (at - agent_leg.answered_at).total_seconds() if agent_leg and agent_leg.answered_at else 0
        agent_id, session.agent_id = session.agent_id, None
        if self._acd is not None and not session.on_call(agent_id):
            self._acd.submit(acd_engine.CallEnded(session.call.id, agent_id, int(talk)))

    def leave_queue(self, session: CallSession) -> tuple[c.Command, ...]:
        """The caller stops waiting for an agent (the dialer gives an answered contact up): the
        ACD drops its entry (offers ringing are withdrawn; counted as abandoned) and no agent is
        connected to it later. Returns what stops its hold music and announcements."""
        session.no_agent = True
        waiting = self._waiting.waiting.get(session.call.id)
        commands = self._waiting.connected(session.call.id)
        if session.queued is not None and self._acd is not None:
            self._acd.submit(acd_engine.CallAbandoned(session.call.id))
        session.queued = None
        if waiting is not None:
            commands += (c.StopMusicOnHold(waiting.leg_id),)
        return commands

    async def execute(self, session: CallSession, command: c.FlowCommand) -> None:
        """Carry out a command for a call; a leg gone or a refusal is recorded, not raised."""
        await self._execute(session, command)

    async def perform(self, command: c.Command) -> None:
        """Carry out a switch command now, raising the switch's errors to the caller."""
        await self._switch.execute(command)

    def record(self, *rows: CallRow | LegRow | CallEventRow) -> None:
        self._records.put(*rows)

    def record_call(self, session: CallSession) -> None:
        """Write the call's own row (its data changed outside an event of the call)."""
        self._records.put(CallRow.of(session.call, self._switch.name))

    # ---- the ACD's side: offers to agents, connections, overflow --------------------------

    async def offer(self, call_id: str, offer_id: str, agent_id: str, device: str, timeout_s: int) -> None:
        """Ring an agent's device for a waiting caller (the agent is already reserved)."""
        session = self._sessions.get(call_id)
        leg_id = f"{offer_id}.{agent_id}"
        if session is None:
            if self._acd is not None:  # the caller is gone: the agent is free again
                self._acd.submit(acd_engine.OfferFailed(offer_id, acd_engine.FailReason.NO_ANSWER, agent_id))
            return
        call = session.call
        leg = Leg(id=leg_id, call_id=call.id, role=LegRole.AGENT, channel_name=device,
                  created_at=datetime.now(UTC))
        call.legs[leg_id] = leg
        session.offers[leg_id] = (offer_id, agent_id)
        _involve(session, agent_id)
        self._call_of_leg[leg_id] = call.id
        self._records.put(LegRow.of(leg), CallEventRow(call.id, leg_id, leg.created_at, "AgentOffered",
                                                       {"agent_id": agent_id, "offer_id": offer_id}))
        if self.feed is not None:
            # The screen pop goes to the agent whose phone rings (and to supervisors).
            entry = self._acd.state.waiting.get(call_id) if self._acd is not None else None
            waited = (leg.created_at - entry.entered_at).total_seconds() if entry is not None else None
            pop = call_feed.screen_pop(call, session.driver, agent_id=agent_id, offer_id=offer_id,
                                       queue=entry.queue if entry is not None else call.data.get("queue"),
                                       waited_s=waited, ring_timeout_s=timeout_s)
            self.feed(call_feed.call_event("call.offered", call, (agent_id,), pop))
        name = "".join(ch for ch in call.caller_name if ch not in '"<>')
        try:
            await self._switch.execute(c.Originate(
                leg_id=leg_id, endpoint=device, timeout_s=timeout_s, args=("agent", call.id),
                caller_id=f'"{name}" <{call.caller_number}>' if call.caller_number else ""))
        except ControllerError as exc:
            log.warning("call %s: offer to agent %s failed: %s", call.id, agent_id, exc.detail)
            session.queue.put_nowait(e.LegHungUp(leg_id, datetime.now(UTC), 0, f"not dialed: {exc.detail}"))

    async def withdraw(self, offer_id: str, agent_id: str) -> None:
        leg_id = f"{offer_id}.{agent_id}"
        call_id = self._call_of_leg.get(leg_id)
        session = self._sessions.get(call_id) if call_id else None
        if session is None:
            return
        session.offers.pop(leg_id, None)
        leg = session.call.legs.get(leg_id)
        if leg is not None and leg.state is not LegState.ENDED:
            await self._execute(session, c.Hangup(leg_id))

    async def connect(self, call_id: str, offer_id: str, agent_id: str,
                      entry: QueueEntry | None = None) -> None:
        """Bridge the waiting caller with the agent who answered (a callback: dial the caller).

        The ACD made the agent busy when it answered; the connection is made later, so either
        side may have hung up meanwhile. Then the ACD hears of it here, or the agent would stay
        busy: an agent gone puts the caller back in its place (``entry``), a caller gone ends
        the agent's call."""
        session = self._sessions.get(call_id)
        if session is None:
            if self._acd is not None and call_id in self._ended_recently:
                self._acd.submit(acd_engine.CallEnded(call_id, agent_id, 0))
            return
        agent_leg = session.call.legs.get(f"{offer_id}.{agent_id}")
        agent_gone = agent_leg is None or agent_leg.state is LegState.ENDED
        if self._waiting.is_callback(call_id) and not agent_gone:
            for command in self._waiting.dial_callback(session, agent_leg, agent_id):
                await self._execute(session, command)
            self._publish(session)
            return
        callers = [leg for leg in session.call.live_legs() if leg.role is LegRole.CALLER]
        if agent_gone:
            session.offers.pop(agent_leg.id if agent_leg is not None else "", None)
            if self._acd is not None:
                waits = (callers and session.queued is not None) or self._waiting.is_callback(call_id)
                if entry is not None and waits:
                    log.info("call %s: agent %s hung up before the caller was connected; the caller "
                             "waits again in its place", call_id, agent_id, extra={"call_id": call_id})
                    self._records.put(CallEventRow(call_id, agent_leg.id if agent_leg else None,
                                                   datetime.now(UTC), "AgentGoneBeforeConnect",
                                                   {"agent_id": agent_id, "offer_id": offer_id}))
                    self._acd.submit(acd_engine.ConnectFailed(call_id, agent_id, entry))
                else:
                    self._acd.submit(acd_engine.CallEnded(call_id, agent_id, 0))
            return
        for command in self._waiting.connected(call_id):
            await self._execute(session, command)
        if not callers or session.no_agent:
            # The caller hung up as the agent answered (or was given up): nobody to talk to.
            await self._execute(session, c.Hangup(agent_leg.id))
            if self._acd is not None:
                self._acd.submit(acd_engine.CallEnded(call_id, agent_id, 0))
            return
        session.agent_id, session.queued = agent_id, None
        session.bridge_id = f"br-{call_id}"
        session.call.data["agent_id"] = agent_id
        for command in (c.StopMusicOnHold(callers[0].id),
                        c.CreateBridge(session.bridge_id, name=f"call {call_id}"),
                        c.AddToBridge(session.bridge_id, (callers[0].id, agent_leg.id))):
            await self._execute(session, command)
        now = datetime.now(UTC)
        session.connected_at = now
        self._records.put(CallRow.of(session.call, self._switch.name),
                          CallEventRow(call_id, agent_leg.id, now, "AgentConnected",
                                       {"agent_id": agent_id}))
        self._publish(session)  # a restarted controller must know who the call connects
        waited = (now - session.queued_at).total_seconds() if session.queued_at else None
        self.tell(session, "call.connected", {
            "agent_id": agent_id, "offer_id": offer_id, "queue": session.call.data.get("queue"),
            "queue_wait_s": round(waited, 3) if waited is not None else None, "bridge_id": session.bridge_id})
        self.agent_connected(session)

    async def overflow(self, call_id: str, reason: str, queue: str, destination: QueueDestination) -> None:
        """The ACD sent the caller out of its queue: on to the queue's destination, in order
        with the call's other events (services/queue_caller.py)."""
        session = self._sessions.get(call_id)
        if session is None:
            return
        event = self._waiting.overflowed(call_id, reason, queue, destination)
        if event is not None:
            session.queue.put_nowait(event)
            return
        # A caller the queue side does not follow (adopted from a previous run): hang up.
        session.queued = None
        session.call.data["queue_overflow"] = reason
        for leg in session.call.live_legs():
            await self._execute(session, c.Hangup(leg.id))

    async def moved(self, call_id: str, queue: str, from_queue: str, agent_id: str,
                    entered_at: datetime) -> None:
        """A supervisor moved the waiting caller: in order with the call's other events (before
        any offer of its new queue can be answered, since the offer is made after this)."""
        session = self._sessions.get(call_id)
        event = self._waiting.moved(call_id, queue, from_queue, agent_id, entered_at)
        if session is not None and event is not None:
            session.queue.put_nowait(event)

    async def announce(self, call_id: str, queue: str, position: int, eta_s: int | None) -> None:
        """The ACD says the waiting caller is due to hear its position and estimated wait."""
        session = self._sessions.get(call_id)
        event = self._waiting.announcement_due(call_id, queue, position, eta_s)
        if session is not None and event is not None:
            session.queue.put_nowait(event)

    async def _open_callback(self, call: Call) -> None:
        """Track a callback call (its caller's leg is dialed later, services/queue_caller.py)."""
        session = CallSession(call)
        self.track(session)
        self.tell(session, "call.started", call_feed.started(call))

    # ---- transfers: a second leg dialed by the flow, bridged with the caller -----------

    async def _transfer(self, session: CallSession, command: c.TransferCall) -> None:
        call = session.call
        leg = Leg(id=command.transfer_id, call_id=call.id, role=LegRole.TRANSFER,
                  channel_name=command.destination, created_at=datetime.now(UTC))
        call.legs[leg.id] = leg
        self._call_of_leg[leg.id] = call.id
        self._records.put(LegRow.of(leg))
        name = "".join(ch for ch in call.caller_name if ch not in '"<>')
        try:
            await self._switch.execute(c.Originate(
                leg_id=leg.id, endpoint=transfer_endpoint(command.destination),
                caller_id=f'"{name}" <{call.caller_number}>' if call.caller_number else "",
                timeout_s=int(command.timeout_s), args=("transfer", call.id)))
        except ControllerError as exc:
            log.warning("call %s: transfer to %s failed: %s", call.id, command.destination, exc.detail)
            session.queue.put_nowait(e.LegHungUp(leg.id, datetime.now(UTC), 0, f"not dialed: {exc.detail}"))

    def _bridge_transfer(self, session: CallSession, answered: Leg) -> tuple[c.Command, ...]:
        callers = [leg for leg in session.call.live_legs() if leg.role is LegRole.CALLER]
        if not callers:
            return (c.Hangup(answered.id),)
        session.bridge_id = f"br-{answered.id}"
        return (c.CreateBridge(session.bridge_id, name=f"call {session.call.id}"),
                c.AddToBridge(session.bridge_id, (callers[0].id, answered.id)))

    def _after_leg_ended(self, session: CallSession, ended: Leg, at: datetime) -> tuple[c.Command, ...]:
        """A transfer that never answered is reported to the flow; once the caller or a
        bridged party leaves, the others are hung up and the bridge goes."""
        call = session.call
        session.on_answer.pop(ended.id, None)
        hook = session.on_end.pop(ended.id, None)
        self._agent_leg_over(session, ended, at)
        if ended.role is LegRole.AGENT and ended.answered_at is None and hook is None:
            offer_id, agent_id = session.offers.pop(ended.id, ("", ""))
            if self._acd is not None and offer_id:
                self._acd.submit(acd_engine.OfferFailed(offer_id, _fail_reason(ended), agent_id))
            return ()
        if ended.role is LegRole.CALLER and session.queued and session.agent_id is None and self._acd:
            self._acd.submit(acd_engine.CallAbandoned(call.id))
            session.queued = None
        if session.agent_id is not None and self._acd is not None and not call.live_legs():
            agent_leg = next((x for x in call.legs.values() if x.id in session.offers), None)
            talk = (at - agent_leg.answered_at).total_seconds() if agent_leg and agent_leg.answered_at else 0
            self._acd.submit(acd_engine.CallEnded(call.id, session.agent_id, int(talk)))
            session.agent_id = None
        if ended.id in session.released:
            return ()
        if hook is not None:
            decided = hook(session, ended)
            if decided is not None:
                return decided
        if ended.role is LegRole.TRANSFER and ended.answered_at is None:
            session.queue.put_nowait(e.TransferFinished(ended.id, _caller_leg(call), at, answered=False))
            return ()
        if ended.role is LegRole.CALLER or session.bridge_id is not None:
            commands: list[c.Command] = [c.Hangup(other.id) for other in call.live_legs()]
            if session.bridge_id is not None and not call.live_legs():
                commands.append(c.DestroyBridge(session.bridge_id))
            return tuple(commands)
        return ()

    def _fire(self, session: CallSession, timer_id: str, leg_id: str) -> None:
        session.timers.pop(timer_id, None)
        session.queue.put_nowait(e.TimerFired(timer_id, leg_id, datetime.now(UTC)))

    def _transition(self, leg: Leg, wanted: LegState, at: datetime, cause: int | None = None,
                    cause_text: str | None = None) -> None:
        try:
            apply_leg(leg, wanted, at, cause, cause_text)
        except IllegalTransition as exc:
            # Duplicates happen after a reconnect (the switch repeats what we saw); keep ours.
            log.info("ignored: %s", exc)

    async def _execute(self, session: CallSession, command: c.FlowCommand) -> None:
        call = session.call
        match command:
            case c.HttpLookup():
                self._records.put(CallEventRow(call.id, command.leg_id, datetime.now(UTC), "LookupStarted",
                                               {"request_id": command.request_id, "url": command.url}))
                self._lookups.start(command, session.queue.put_nowait)
                return
            case c.EnterQueue():
                # The caller waits on hold while the ACD finds an agent.
                now = datetime.now(UTC)
                entered = self._waiting.enter(session, command, now)
                self._tell_queued(session, now)
                for queued in entered:
                    await self._execute(session, queued)
                return
            case c.StoreVoicemail():
                await self._store_voicemail(call, command)
                return
            case c.TransferCall():
                await self._transfer(session, command)
                return
        try:
            await self._switch.execute(command)
        except LegGone as exc:
            log.info("call %s: %s not carried out, the leg is gone", call.id, type(command).__name__)
            self._records.put(CallEventRow(call.id, getattr(command, "leg_id", None),
                                           datetime.now(UTC), "CommandSkipped",
                                           {"command": type(command).__name__, "reason": exc.detail}))
            self._not_dialed(session, command, exc)
        except ControllerError as exc:  # the switch refused, or the command was unsafe to send
            log.warning("call %s: %s failed: %s", call.id, type(command).__name__, exc.detail)
            self._records.put(CallEventRow(call.id, getattr(command, "leg_id", None),
                                           datetime.now(UTC), "CommandFailed",
                                           {"command": type(command).__name__, "error": exc.code,
                                            "detail": exc.detail}))
            self._not_dialed(session, command, exc)

    def _not_dialed(self, session: CallSession, command: c.FlowCommand, exc: ControllerError) -> None:
        # A leg that could not even be dialed ends here, so the call goes on (or ends) as if
        # it had not answered.
        if isinstance(command, c.Originate):
            session.queue.put_nowait(e.LegHungUp(command.leg_id, datetime.now(UTC), 0,
                                                 f"not dialed: {exc.detail}"))

    async def _store_voicemail(self, call: Call, command: c.StoreVoicemail) -> None:
        if self._voicemails is None:
            log.error("call %s: voicemail %s recorded but no voicemail store is configured",
                      call.id, command.recording_name)
            return
        try:
            await self._voicemails.store(command.mailbox, call.id, call.caller_number, call.caller_name,
                                         command.recording_name, command.duration_s)
        except ControllerError as exc:
            log.error("call %s: voicemail %s not stored: %s", call.id, command.recording_name, exc.detail)
            return
        self._records.put(CallEventRow(call.id, command.leg_id, datetime.now(UTC), "VoicemailStored",
                                       {"mailbox": command.mailbox, "recording": command.recording_name}))

def _involve(session: CallSession, agent_id: str) -> None:
    if agent_id and agent_id not in session.agents_involved:
        session.agents_involved.append(agent_id)


def transfer_endpoint(destination: str) -> str:
    """A flow's transfer target as a dial string: an endpoint as is, an extension on the
    phones, a number through the outbound trunk (dialplan/extensions.conf)."""
    kind, _, value = destination.partition(":")
    if kind == "extension":
        return f"PJSIP/{value}"
    if kind == "number":
        return f"Local/{value}@ccc-outbound"
    return destination


def _fail_reason(leg: Leg) -> acd_engine.FailReason:
    # Q.850: 17 user busy; 1, 3, 20, 27, 38 and 0 (never dialed) mean the device is unreachable.
    if leg.hangup_cause == 17:
        return acd_engine.FailReason.BUSY
    if leg.hangup_cause in (0, 1, 3, 20, 27, 38):
        return acd_engine.FailReason.UNREACHABLE
    return acd_engine.FailReason.NO_ANSWER


def _caller_leg(call: Call) -> str:
    return next((leg.id for leg in call.legs.values() if leg.role is LegRole.CALLER), "")


def _event_data(event: e.Event) -> dict[str, Any]:
    data = {k: getattr(event, k) for k in event.__slots__ if k not in ("at", "leg_id", "created_at")}  # type: ignore[union-attr]
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}
