"""The waiting caller's side of a queue: hold music, announcements, the exit key, where an
overflowed caller goes, and callbacks.

The ACD (services/acd.py, engines/acd.py) decides *when*: a caller is overflowed, an
announcement is due, a callback entry reaches an agent. This module decides *what the caller
hears and where it goes*, on the caller's own call task: the call service (services/calls.py)
hands it the commands a queue node emits, the events of a call that waits, and the ACD's
decisions about it (turned into ``QueueAnnouncementDue`` / ``QueueOverflowed`` events so they
are handled in order with the call's other events), and executes the commands it returns.

- Waiting: music on hold of the queue's class. Every ``announce_every_s`` the music stops, the
  position and estimated wait play (engines/queue_wait.py), and the music starts again.
- Moved by a supervisor (``QueueMoved``): the caller waits in the new queue, with its music on
  hold and exit key; the call data say where it waits (``queue``), where it came from
  (``queue_moved_from``), when it first joined a queue (``queue_first_entered_at``, kept across
  moves) and the agent it waits for (``queue_target_agent``, while it has one).
- Overflow to ``queue``: the caller joins that queue (its wait starts again; at most
  ``MAX_QUEUE_HOPS`` overflows per call, then it is hung up, so two queues sending callers to
  each other cannot loop); to ``flow``: that flow runs on the caller from its start; to
  ``voicemail``: the caller records a message (the IVR's voicemail node); ``hangup``: as it says.
- Exit key: ``voicemail`` takes the caller out of the queue to record a message; ``callback``
  keeps its place: the caller hears a confirmation and is hung up, and a *callback call* takes
  its entry in the ACD. That call has one leg from the start, the caller's, not yet dialed
  (so the call lives until it is dialed). When the entry reaches an agent, the agent is dialed
  first (an ordinary offer); once the agent answers it hears hold music while the caller's
  number is dialed (``Local/<number>@<callback context>``), and the two are bridged when the
  caller answers. A caller who does not answer ends the callback call (no retry).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.agents import DestinationKind, ExitAction, QueueConfig, QueueEntry
from controller.domain.calls import Call, Direction, Leg, LegRole, LegState
from controller.domain.flows import parse_flow
from controller.engines import acd as acd_engine
from controller.engines import queue_wait
from controller.services.drivers import Driver, IvrDriver, new_id
from controller.storage.records import CallEventRow, CallRow, LegRow

log = logging.getLogger(__name__)

# Overflows from queue to queue one call may go through before it is hung up.
MAX_QUEUE_HOPS = 5
# What a caller who asked for a callback hears before the line is hung up: "Thank you. Goodbye."
CALLBACK_CONFIRMATION = ("sound:auth-thankyou", "sound:vm-goodbye")
VOICEMAIL_PROMPTS = ["sound:vm-intro"]
VOICEMAIL_MAX_S = 120
CALLBACK_RING_S = 30
# A number that may be dialed back: digits, an optional leading '+'.
CALLBACK_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")


class Session(Protocol):
    """What this module reads and changes of a call in progress (services/calls.py)."""

    call: Call
    driver: Driver | None
    queued: str | None
    agent_id: str | None
    bridge_id: str | None


class Acd(Protocol):
    def submit(self, event: acd_engine.AcdEvent) -> None: ...


class Flows(Protocol):
    """Starts a named flow on a caller already answered (services/inbound.py)."""

    async def start_flow(self, name: str, leg_id: str, data: dict[str, str], now: datetime) -> Any: ...


QueueConfigs = Callable[[str], QueueConfig | None]
Records = Callable[..., None]
OpenCall = Callable[[Call], Awaitable[None]]


@dataclass(slots=True)
class Waiting:
    """One caller waiting in a queue, as this module follows it."""

    leg_id: str
    queue: str
    priority: int
    skills: dict[str, int]
    moh_class: str = "default"
    playback_id: str | None = None  # an announcement (or the callback confirmation) playing
    leaving: bool = False  # the callback confirmation plays; the line is hung up after it


@dataclass(slots=True)
class Callback:
    """A callback call, from the caller's request until the caller's leg is dialed."""

    call_id: str
    leg_id: str  # the caller's leg, dialed once an agent has answered
    number: str
    queue: str
    agent_leg: str | None = None
    dialed: bool = False


@dataclass(slots=True)
class QueueCaller:
    acd: Acd | None
    configs: QueueConfigs
    records: Records
    switch_name: str = "asterisk"
    flows: Flows | None = None
    callback_context: str = "ccc-outbound"
    open_call: OpenCall | None = None  # set by the call service: tracks a new call (callbacks)
    waiting: dict[str, Waiting] = field(default_factory=dict)  # call id -> its waiting caller
    callbacks: dict[str, Callback] = field(default_factory=dict)  # callback call id -> callback

    # ---- a queue node: the caller joins ------------------------------------------------

    def enter(self, session: Session, command: c.EnterQueue, now: datetime) -> tuple[c.Command, ...]:
        """The caller joins ``command.queue`` and waits on hold."""
        call = session.call
        call.data.update({"queue": command.queue, "queue_priority": str(command.priority),
                          "queue_skills": ",".join(f"{k}:{v}" for k, v in command.skills.items())})
        # When the caller joined, for the reports' waits (the ACD's own copy lives in Redis only).
        self.records(CallEventRow(call.id, command.leg_id, now, "QueueEntered",
                                  {"queue": command.queue, "priority": command.priority}))
        config = self.configs(command.queue)
        moh = config.moh_class if config is not None else "default"
        if self.acd is None:
            return (c.StartMusicOnHold(command.leg_id, moh),)
        self.waiting[call.id] = Waiting(command.leg_id, command.queue, command.priority,
                                        dict(command.skills), moh)
        session.queued = command.queue
        self.acd.submit(acd_engine.CallQueued(QueueEntry(
            call_id=call.id, queue=command.queue, entered_at=now, priority=command.priority,
            skills=dict(command.skills))))
        return (c.StartMusicOnHold(command.leg_id, moh),)

    # ---- what the ACD says about a waiting caller (turned into the call's own events) ----

    def announcement_due(self, call_id: str, queue: str, position: int, eta_s: int | None,
                         ) -> e.QueueAnnouncementDue | None:
        waiting = self.waiting.get(call_id)
        if waiting is None:
            return None
        return e.QueueAnnouncementDue(waiting.leg_id, datetime.now(UTC), queue, position, eta_s)

    def moved(self, call_id: str, queue: str, from_queue: str, agent_id: str,
              entered_at: datetime) -> e.QueueMoved | None:
        waiting = self.waiting.get(call_id)
        callback = self.callbacks.get(call_id)
        leg_id = waiting.leg_id if waiting is not None else callback.leg_id if callback is not None else None
        if leg_id is None:
            return None
        return e.QueueMoved(leg_id, datetime.now(UTC), queue, from_queue, agent_id, entered_at.isoformat())

    def overflowed(self, call_id: str, reason: str, queue: str,
                   destination: Any) -> e.QueueOverflowed | None:
        waiting = self.waiting.get(call_id)
        if waiting is None:
            return None
        return e.QueueOverflowed(waiting.leg_id, datetime.now(UTC), queue, reason,
                                 destination.kind.value, destination.target)

    # ---- the caller's events while it waits ----------------------------------------------

    async def on_event(self, session: Session, event: object) -> tuple[c.Command, ...]:
        """Commands for an event of a call whose caller waits in a queue (else none)."""
        call = session.call
        callback = self.callbacks.get(call.id)
        if callback is not None and isinstance(event, e.QueueMoved) and event.leg_id == callback.leg_id:
            callback.queue = event.queue  # nobody on the line yet: only where it waits changes
            _note_move(session, event)
            return ()
        if callback is not None and isinstance(event, e.LegHungUp) and event.leg_id == callback.agent_leg:
            # The agent hung up while the caller's number was being dialed: stop dialing.
            del self.callbacks[call.id]
            return (c.Hangup(callback.leg_id),)
        waiting = self.waiting.get(call.id)
        if waiting is None or getattr(event, "leg_id", None) != waiting.leg_id:
            return ()
        match event:
            case e.LegHungUp():
                del self.waiting[call.id]  # the call service tells the ACD the caller left
                return ()
            case e.PlaybackFinished() if event.playback_id == waiting.playback_id:
                waiting.playback_id = None
                if waiting.leaving:
                    del self.waiting[call.id]
                    return (c.Hangup(waiting.leg_id),)
                return (c.StartMusicOnHold(waiting.leg_id, waiting.moh_class),)
            case e.QueueAnnouncementDue() if waiting.playback_id is None and not waiting.leaving:
                media = queue_wait.announcement(event.position, event.eta_s)
                if not media:
                    return ()
                waiting.playback_id = new_id("pb")
                return (c.StopMusicOnHold(waiting.leg_id), c.Play(waiting.leg_id, waiting.playback_id, media))
            case e.QueueOverflowed():
                return await self._overflowed(session, waiting, event)
            case e.QueueMoved():
                return self._moved(session, waiting, event)
            case e.DtmfReceived() if not waiting.leaving:
                config = self.configs(waiting.queue)
                if config is None or config.exit_key is None or event.digit != config.exit_key:
                    return ()
                if config.exit_action is ExitAction.CALLBACK:
                    return await self._callback(session, waiting, event.at)
                return self._exit_to_voicemail(session, waiting, config.exit_mailbox or "", event.at)
        return ()

    def connected(self, call_id: str) -> tuple[c.Command, ...]:
        """The caller is being bridged with an agent: an announcement still playing stops."""
        waiting = self.waiting.pop(call_id, None)
        if waiting is None or waiting.playback_id is None:
            return ()
        return (c.StopPlayback(waiting.playback_id),)

    def _moved(self, session: Session, waiting: Waiting, event: e.QueueMoved) -> tuple[c.Command, ...]:
        """The caller waits in another queue now (or for one agent): that queue's music."""
        _note_move(session, event)
        session.queued = event.queue
        waiting.queue = event.queue
        config = self.configs(event.queue)
        moh = config.moh_class if config is not None else waiting.moh_class
        if moh == waiting.moh_class:
            return ()
        waiting.moh_class = moh
        if waiting.playback_id is not None or waiting.leaving:
            return ()  # the new music starts when the announcement ends
        return (c.StopMusicOnHold(waiting.leg_id), c.StartMusicOnHold(waiting.leg_id, moh))

    # ---- leaving the queue ------------------------------------------------------------------

    def _stop(self, waiting: Waiting) -> list[c.Command]:
        out: list[c.Command] = []
        if waiting.playback_id is not None:
            out.append(c.StopPlayback(waiting.playback_id))
            waiting.playback_id = None
        out.append(c.StopMusicOnHold(waiting.leg_id))
        return out

    async def _overflowed(self, session: Session, waiting: Waiting,
                          event: e.QueueOverflowed) -> tuple[c.Command, ...]:
        call = session.call
        del self.waiting[call.id]
        session.queued = None
        call.data["queue_overflow"] = event.reason
        kind = DestinationKind(event.destination)
        log.info("call %s overflows from queue %s (%s) to %s %s", call.id, event.queue, event.reason,
                 kind.value, event.target, extra={"call_id": call.id, "queue": event.queue})
        if kind is DestinationKind.QUEUE:
            hops = int(call.data.get("queue_hops", "0")) + 1
            call.data["queue_hops"] = str(hops)
            if hops > MAX_QUEUE_HOPS:
                log.warning("call %s: %d queue overflows, hung up", call.id, hops - 1)
                return (*self._stop(waiting), c.Hangup(waiting.leg_id))
            stop = [c.StopPlayback(waiting.playback_id)] if waiting.playback_id else []
            entered = self.enter(session, c.EnterQueue(waiting.leg_id, event.target, waiting.priority,
                                                       waiting.skills), event.at)
            return (*stop, *entered)
        if kind is DestinationKind.FLOW and self.flows is not None:
            try:
                admission = await self.flows.start_flow(event.target, waiting.leg_id, dict(call.data),
                                                        event.at)
            except Exception as exc:  # a flow deleted or unreadable: the caller is not left on hold
                log.error("call %s: overflow flow %s cannot start (%s); hung up", call.id, event.target, exc)
                return (*self._stop(waiting), c.Hangup(waiting.leg_id))
            session.driver = admission.driver
            call.flow_name, call.flow_version = admission.flow, admission.version
            return (*self._stop(waiting), *admission.commands)
        if kind is DestinationKind.VOICEMAIL:
            return (*self._stop(waiting), *self._voicemail(session, waiting.leg_id, event.target, event.at))
        return (*self._stop(waiting), c.Hangup(waiting.leg_id))

    def _exit_to_voicemail(self, session: Session, waiting: Waiting, mailbox: str,
                           at: datetime) -> tuple[c.Command, ...]:
        call = session.call
        del self.waiting[call.id]
        session.queued = None
        if self.acd is not None:
            self.acd.submit(acd_engine.CallAbandoned(call.id))
        call.data["queue_exit"] = "voicemail"
        self.records(CallEventRow(call.id, waiting.leg_id, at, "QueueExited",
                                  {"queue": waiting.queue, "action": "voicemail", "mailbox": mailbox}))
        return (*self._stop(waiting), *self._voicemail(session, waiting.leg_id, mailbox, at))

    def _voicemail(self, session: Session, leg_id: str, mailbox: str, at: datetime) -> tuple[c.Command, ...]:
        """The caller records a message for ``mailbox``: the IVR's own voicemail node, run as a
        one-node flow (prompts, beep, '#' or hanging up ends it, the message is stored)."""
        flow = parse_flow({"start": "voicemail", "nodes": {"voicemail": {
            "type": "voicemail", "mailbox": mailbox, "prompts": VOICEMAIL_PROMPTS,
            "max_duration_s": VOICEMAIL_MAX_S}}})
        driver = IvrDriver("queue-voicemail", 0, flow, {})
        commands = driver.begin(leg_id, dict(session.call.data), at)
        session.driver = driver
        return commands

    # ---- callbacks ----------------------------------------------------------------------------

    async def _callback(self, session: Session, waiting: Waiting, at: datetime) -> tuple[c.Command, ...]:
        call = session.call
        number = call.caller_number
        if not CALLBACK_NUMBER.fullmatch(number) or self.acd is None or self.open_call is None:
            log.warning("call %s: callback asked for, but %r cannot be dialed back", call.id, number)
            self.records(CallEventRow(call.id, waiting.leg_id, at, "CallbackRefused",
                                      {"queue": waiting.queue, "number": number}))
            return ()
        callback_id = str(uuid.uuid4())
        leg_id = f"{callback_id}.caller"
        endpoint = f"Local/{number}@{self.callback_context}"
        callback = Call(id=callback_id, direction=Direction.OUTBOUND, started_at=at,
                        caller_number=number, caller_name=call.caller_name, dialed=number,
                        data={"callback_of": call.id, "queue": waiting.queue})
        callback.legs[leg_id] = Leg(id=leg_id, call_id=callback_id, role=LegRole.CALLER,
                                    channel_name=endpoint, created_at=at)
        self.callbacks[callback_id] = Callback(callback_id, leg_id, number, waiting.queue)
        self.records(CallRow.of(callback, self.switch_name), LegRow.of(callback.legs[leg_id]),
                     CallEventRow(callback_id, None, at, "CallbackQueued",
                                  {"callback_of": call.id, "queue": waiting.queue, "number": number}),
                     CallEventRow(call.id, waiting.leg_id, at, "CallbackRequested",
                                  {"queue": waiting.queue, "callback_call_id": callback_id,
                                   "number": number}))
        await self.open_call(callback)
        # The callback call takes the caller's place in the ACD; this call no longer waits.
        self.acd.submit(acd_engine.CallbackRequested(call.id, callback_id))
        session.queued = None
        call.data["queue_exit"] = "callback"
        call.data["callback_call_id"] = callback_id
        commands = self._stop(waiting)
        waiting.leaving = True
        waiting.playback_id = new_id("pb")
        return (*commands, c.Play(waiting.leg_id, waiting.playback_id, CALLBACK_CONFIRMATION))

    def is_callback(self, call_id: str) -> bool:
        return call_id in self.callbacks

    def dial_callback(self, session: Session, agent_leg: Leg, agent_id: str) -> tuple[c.Command, ...]:
        """The agent answered a callback entry: it holds while the caller's number is dialed."""
        call = session.call
        callback = self.callbacks[call.id]
        callback.agent_leg, callback.dialed = agent_leg.id, True
        session.agent_id, session.queued = agent_id, None
        call.data["agent_id"] = agent_id
        now = datetime.now(UTC)
        self.records(CallRow.of(call, self.switch_name),
                     CallEventRow(call.id, callback.leg_id, now, "CallbackDialed",
                                  {"agent_id": agent_id, "number": callback.number}))
        endpoint = f"Local/{callback.number}@{self.callback_context}"
        return (c.StartMusicOnHold(agent_leg.id),
                c.Originate(leg_id=callback.leg_id, endpoint=endpoint, timeout_s=CALLBACK_RING_S,
                            args=("callback", call.id)))

    def callback_answered(self, session: Session, leg: Leg) -> tuple[c.Command, ...]:
        """The caller answered its callback: bridge it with the agent who waits."""
        call = session.call
        callback = self.callbacks.pop(call.id, None)
        agent_leg = call.legs.get(callback.agent_leg) if callback and callback.agent_leg else None
        if callback is None or agent_leg is None or agent_leg.state is LegState.ENDED:
            return (c.Hangup(leg.id),)  # nobody to talk to any more
        session.bridge_id = f"br-{call.id}"
        self.records(CallEventRow(call.id, callback.agent_leg, datetime.now(UTC), "AgentConnected",
                                  {"agent_id": session.agent_id or ""}))
        return (c.StopMusicOnHold(callback.agent_leg),
                c.CreateBridge(session.bridge_id, name=f"callback {call.id}"),
                c.AddToBridge(session.bridge_id, (leg.id, callback.agent_leg)))

    def call_ended(self, call_id: str) -> None:
        """Forget what is left of a call that ended."""
        self.waiting.pop(call_id, None)
        self.callbacks.pop(call_id, None)


def _note_move(session: Session, event: e.QueueMoved) -> None:
    """Where the caller waits, in the call data (which the records and the API show)."""
    data = session.call.data
    data["queue"] = event.queue
    if event.queue != event.from_queue:
        data.setdefault("queue_first_entered_at", event.entered_at)
        data["queue_moved_from"] = event.from_queue
    if event.agent_id:
        data["queue_target_agent"] = event.agent_id
    else:
        data.pop("queue_target_agent", None)
