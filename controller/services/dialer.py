"""The real-time campaign dialer: takes contacts from running campaigns' hoppers and calls them.

Who does what. The Celery worker keeps each running campaign's hopper full
(services/outbound.py); this service, in the controller process that owns the PBX link, paces
and places the calls. Once a second (``dialer_tick_s``), for every running campaign whose lease
it holds (a Redis lease per campaign, ``ccc:{cluster}:campaign:{id}:dialer``: one process dials
a campaign at a time; another takes over within the lease's time when it dies), it:

1. counts the campaign queue's agents from the ACD's state and its own calls in flight, and asks
   engines/dialer.py how many calls to place now (progressive, power, predictive; see there);
2. takes that many contacts with ``OutboundService.next_contact`` (do-not-call and the window
   re-checked, an attempt opened), checks each once more with ``confirm_dialable`` right
   before it originates, and places the call.

A campaign call is a new outbound call of the call service with one leg, the customer's, dialed
as ``Local/<number>@<dialer_context>`` (the number checked to be E.164 first: the dialplan,
not the contact list, decides where it goes). Its data say whose it is: ``campaign``,
``campaign_attempt``, ``contact_id`` and the lead's fields as ``lead_<name>``, so the screen pop
and the recording policy see them. In queue terms the customer is the party who waits for an
agent, so the leg has the ``caller`` role and the ordinary queue path connects it.

What happens next:

- The customer answers: the call enters the campaign's queue and the ACD hands it to an agent
  as it would an inbound caller. If no agent takes it within ``HOLD_FOR_AGENT_S`` (1.5 s; or at
  once when the queue has no agent logged in), the call leaves the queue, hears the campaign's
  message (``abandon_message``, else ``dialer_abandon_message``) and is hung up: outcome
  ``abandoned``, recorded at once. An agent whose offer rings at that moment is let go.
- The customer never answers: the leg's Q.850 cause gives ``busy``, ``no_answer`` or ``failed``
  (congestion and others, with the reason), engines/dialer.py ``unanswered_outcome``. An
  originate the switch refused is ``failed`` too.
- A call connected to an agent is ``answered`` when it ends; a customer who hangs up before any
  agent took the call counts as ``abandoned`` (the careful side for the abandonment rate).

Each outcome goes through ``OutboundService.record_outcome``, which applies the retry rules.

Preview campaigns place nothing by themselves: each round, every free agent of the queue with
no open attempt of the campaign is offered a contact (an attempt opened for the agent, a
``campaign.preview`` event on the feed to that agent; one neither accepted nor skipped within
``dialer_preview_timeout_s`` is cancelled, and the agent gets the next). ``accept`` (any
process: the call id is claimed on the attempt row) rings the agent's device, dials the contact
once the agent answers and bridges them; ``skip`` closes the attempt as ``cancelled``.

What this process keeps in memory only: its calls in flight (hooks on their call sessions) and
each campaign's recent history for predictive pacing (dial-to-answer and talk times). A new
holder of a campaign's lease starts with no history, so predictive dials like progressive until
it has some; calls of a process that died are closed as ``failed`` by the worker's expiry after
two hours (services/outbound.py), not adopted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from controller.domain import commands as c
from controller.domain.access import Principal
from controller.domain.agents import AgentState
from controller.domain.calls import Call, CallState, Direction, Leg, LegRole, LegState
from controller.domain.campaigns import CampaignMode, CampaignState, Outcome
from controller.domain.errors import Conflict, ControllerError, Forbidden, InvalidRequest, NotFound
from controller.domain.feed import FeedEvent, Publish, Topic
from controller.engines import dialer as engine
from controller.engines import pacing
from controller.services.acd import AcdService
from controller.services.calls import CallService, CallSession
from controller.services.campaigns import CampaignPlan, plan_of
from controller.services.drivers import GreetingDriver
from controller.services.outbound import Dial, OutboundService
from controller.storage import campaigns as store
from controller.storage.db import Database
from controller.storage.lease import Lease
from controller.storage.records import CallEventRow

log = logging.getLogger(__name__)

# A number the dialer sends into the dialplan: E.164, nothing else (no '@', '/', ',' or CR/LF).
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Lead field names as call data keys (``lead_<name>``): the rest of a CSV header is dropped.
_FIELD_NAME = re.compile(r"[^A-Za-z0-9_]+")
LEASE_MS = 5_000
# A placed call the call service no longer knows is forgotten after this long.
LOST_AFTER_S = 10.0
HISTORY_ATTEMPTS = 2_000
HISTORY_TALKS = 500


class Stage(StrEnum):
    RINGING = "ringing"  # the customer's leg is being dialed
    WAITING = "waiting"  # answered, in the queue, no agent yet
    ABANDONED = "abandoned"  # given up: the message plays; the outcome is recorded


@dataclass(slots=True)
class Placed:
    """One campaign call this process placed and follows."""

    campaign_id: str
    attempt_id: uuid.UUID
    call_id: str
    leg_id: str
    queue: str
    message: str
    dialed_at: float  # monotonic
    stage: Stage = Stage.RINGING
    hold: asyncio.TimerHandle | None = None
    preview: bool = False  # placed for an agent who accepted it in preview
    agent_left: bool = False  # preview: the agent hung up while the customer's phone rang


@dataclass(slots=True)
class History:
    """A campaign's recent past as this process saw it, for predictive pacing."""

    attempts: deque[pacing.Attempt] = field(default_factory=lambda: deque(maxlen=HISTORY_ATTEMPTS))
    talks: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_TALKS))

    def cohorts(self) -> pacing.DialHistory:
        return pacing.DialHistory.of(tuple(self.attempts), tuple(self.talks))


class DialerService:
    def __init__(self, db: Database, outbound: OutboundService, calls: CallService, acd: AcdService,
                 lease_of: Callable[[str], Lease], node: str, *, context: str, abandon_message: str,
                 tick_s: float = 1.0, max_per_round: int = 20,
                 switch_ready: Callable[[], bool] = lambda: True, publish: Publish | None = None,
                 device_of: Callable[[str], Awaitable[str]] | None = None,
                 preview_timeout_s: float = 120.0) -> None:
        self._db = db
        self._outbound = outbound
        self._calls = calls
        self._acd = acd
        self._lease_of = lease_of
        self._leases: dict[str, Lease] = {}
        self._node = f"{node}:{uuid.uuid4().hex[:8]}"
        self._context = context
        self._message = abandon_message
        self._tick_s = tick_s
        self._max_per_round = max_per_round
        self._switch_ready = switch_ready
        self._publish = publish  # the public event feed: preview offers go to their agent
        self._device_of = device_of  # an agent's device (the agent service)
        self._preview_timeout_s = preview_timeout_s  # an offer left unanswered is withdrawn
        self.placed: dict[str, Placed] = {}  # call id -> the call
        self.history: dict[str, History] = {}
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[Any]] = set()

    # ---- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dialer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for placed in self.placed.values():
            if placed.hold is not None:
                placed.hold.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)
        for campaign_id, lease in list(self._leases.items()):
            try:
                await lease.release(self._node)
            except ControllerError:
                pass  # it expires by itself
            self._leases.pop(campaign_id, None)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except ControllerError as exc:  # Postgres or Redis away: try again next round
                log.warning("dialer round skipped: %s", exc.detail)
            except Exception:
                log.exception("dialer round failed")
            await asyncio.sleep(self._tick_s)

    # ---- one round -----------------------------------------------------------------------

    async def run_once(self) -> dict[str, int]:
        """Pace every running campaign this process holds the lease of; calls placed by campaign."""
        if not self._switch_ready():
            return {}
        async with self._db.connection() as conn:
            running = await store.running_campaigns(conn)
        placed: dict[str, int] = {}
        for record in running:
            lease = self._leases.get(record.id) or self._lease_of(record.id)
            if not await lease.hold(self._node, LEASE_MS):
                self._leases.pop(record.id, None)
                continue
            self._leases[record.id] = lease
            try:
                placed[record.id] = await self.pace(plan_of(record))
            except ControllerError as exc:  # one campaign's trouble does not stop the others
                log.warning("campaign %s not paced: %s", record.id, exc.detail)
        for campaign_id in set(self._leases) - {r.id for r in running}:
            await self._leases.pop(campaign_id).release(self._node)
        return placed

    async def pace(self, plan: CampaignPlan) -> int:
        """Place the calls the pacing asks for now; how many were placed."""
        if plan.state is not CampaignState.RUNNING:
            return 0
        if plan.mode is CampaignMode.PREVIEW:
            return await self.offer_previews(plan)
        now = datetime.now(UTC)
        mono = time.monotonic()
        mine = []
        for p in [p for p in self.placed.values() if p.campaign_id == plan.id]:
            if self._calls.find(p.call_id) is None and mono - p.dialed_at > LOST_AFTER_S:
                # The call service no longer has it (ended without its leg's end reaching us):
                # stop counting it; the worker's expiry closes its attempt.
                log.warning("campaign %s: call %s lost track of", plan.id, p.call_id)
                self.placed.pop(p.call_id, None)
                continue
            mine.append(p)
        in_flight = engine.InFlight(
            dialing_s=tuple(max(0.0, mono - p.dialed_at) for p in mine if p.stage is Stage.RINGING),
            waiting=sum(1 for p in mine if p.stage is Stage.WAITING and not self._connected(p.call_id)))
        agents = engine.agents_view(self._acd.state, plan.queue, {p.call_id for p in mine}, now)
        async with self._db.connection() as conn:
            answered, abandoned = await store.abandon_window(
                conn, plan.id, now - timedelta(hours=plan.abandon_window_h))
        settings = engine.pacing_settings(plan.mode, plan.ratio, _target(plan))
        decision = engine.decide(settings, agents, in_flight,
                                 history=self.history.setdefault(plan.id, History()).cohorts(),
                                 window=pacing.AbandonWindow(answered, abandoned),
                                 max_per_round=self._max_per_round)
        count = 0
        for _ in range(decision.lines):
            dial = await self._outbound.next_contact(plan.id)
            if dial is None:
                break
            if await self.place(plan, dial):
                count += 1
        if count:
            log.info("campaign calls placed", extra={"campaign": plan.id, "calls": count,
                                                      "basis": decision.basis.value,
                                                      "free_agents": agents.free})
        return count

    # ---- preview ---------------------------------------------------------------------------

    async def offer_previews(self, plan: CampaignPlan) -> int:
        """Offer each free agent of the queue without an open attempt of the campaign one
        contact (its own callbacks first): the attempt is opened for the agent and the offer
        goes to the agent on the event feed (``campaign.preview``). The agent accepts or skips
        through the API. How many were offered."""
        async with self._db.connection() as conn:
            stale = await store.stale_previews(conn, plan.id, datetime.now(UTC) - timedelta(
                seconds=self._preview_timeout_s))
        for attempt_id in stale:
            try:
                await self._outbound.record_outcome(attempt_id, Outcome.CANCELLED, unless_called=True,
                                                    reason="preview neither accepted nor skipped in time")
            except ControllerError as exc:  # accepted or closed meanwhile
                log.info("stale preview %s left: %s", attempt_id, exc.detail)
        async with self._db.connection() as conn:
            holding = await store.agents_with_open_attempts(conn, plan.id)
        state = self._acd.state
        config = state.queues.get(plan.queue)
        members = [agent_id for agent_id, _ in config.members] if config is not None else []
        free = [agent_id for agent_id in members if agent_id not in holding
                and (agent := state.agents.get(agent_id)) is not None and agent.state is AgentState.AVAILABLE]
        settings = engine.pacing_settings(plan.mode, plan.ratio, _target(plan))
        decision = engine.decide(settings, engine.AgentsView(len(free)), engine.InFlight(),
                                 max_per_round=self._max_per_round)
        offered = 0
        for agent_id in free[:decision.previews]:
            dial = await self._outbound.next_contact(plan.id, agent_id=agent_id)
            if dial is None:
                break
            offered += 1
            if self._publish is not None:
                self._publish(FeedEvent(Topic.CAMPAIGNS, "campaign.preview", {
                    "campaign_id": plan.id, "attempt_id": str(dial.attempt_id), "contact_id": dial.contact_id,
                    "number": dial.number, "fields": dict(dial.fields), "callback": dial.is_callback,
                    "agent_id": dial.agent_id}, agents=(dial.agent_id or agent_id,)))
        return offered

    async def skip(self, actor: Principal, campaign_id: str, attempt_id: uuid.UUID) -> None:
        """The agent passes on a previewed contact: the attempt is closed as cancelled (no
        attempt counted; the contact is due again)."""
        _, dial = await self._outbound.open_preview(campaign_id, attempt_id)
        _check_agent(actor, dial)
        # Refused when accepted meanwhile (a call is tied to the attempt, checked under its lock).
        await self._outbound.record_outcome(attempt_id, Outcome.CANCELLED, reason="skipped by the agent",
                                            unless_called=True)

    async def accept(self, actor: Principal, campaign_id: str, attempt_id: uuid.UUID) -> str:
        """The agent takes a previewed contact: its device is dialed, then (once it answers)
        the customer, and the two are bridged. Returns the call's id."""
        plan, dial = await self._outbound.open_preview(campaign_id, attempt_id)
        agent_id = _check_agent(actor, dial)
        if self._device_of is None or not self._switch_ready():
            raise Conflict("this controller cannot place calls now")
        device = await self._device_of(agent_id)
        check = await self._outbound.confirm_dialable(attempt_id)
        if not check.ok:
            raise Conflict(f"contact not dialable now ({check.reason}); the attempt is cancelled")
        if not E164.fullmatch(dial.number):
            await self._outbound.record_outcome(attempt_id, Outcome.FAILED,
                                                reason="number not in E.164 form: not dialed")
            raise Conflict("the contact's number cannot be dialed")
        call_id = str(uuid.uuid4())
        async with self._db.connection() as conn:
            if not await store.claim_attempt_call(conn, attempt_id, call_id):
                raise Conflict(f"attempt {attempt_id} was accepted or skipped already")
        now = datetime.now(UTC)
        call = Call(id=call_id, direction=Direction.OUTBOUND, started_at=now, caller_number=dial.number,
                    dialed=dial.number, data={**self._call_data(plan, dial), "agent_id": agent_id,
                                              "campaign_preview": "yes"})
        agent_leg = Leg(id=f"{call_id}.agent", call_id=call_id, role=LegRole.AGENT, channel_name=device,
                        created_at=now)
        call.legs[agent_leg.id] = agent_leg
        placed = Placed(plan.id, attempt_id, call_id, f"{call_id}.customer", plan.queue,
                        plan.abandon_message or self._message, time.monotonic(), preview=True)
        self.placed[call_id] = placed
        session = self._calls.open(call)
        self._calls.agent_joins(session, agent_leg, agent_id, plan.queue)
        session.on_answer[agent_leg.id] = lambda s, leg: self._dial_previewed(s, placed, dial)
        session.on_end[agent_leg.id] = lambda s, leg: self._preview_agent_left(s, leg, placed)
        self._event(session, agent_leg.id, "CampaignPreviewAccepted", {
            "campaign": plan.id, "attempt": str(attempt_id), "agent_id": agent_id})
        originate = c.Originate(leg_id=agent_leg.id, endpoint=device, timeout_s=dial.ring_timeout_s,
                                caller_id=f'"" <{dial.number}>', args=("campaign", call_id))
        try:
            await self._calls.act(call_id, lambda s: self._calls.execute(s, originate))
        except NotFound:
            pass
        return call_id

    def _dial_previewed(self, session: CallSession, placed: Placed, dial: Dial) -> tuple[c.Command, ...]:
        """The agent answered: dial the customer; bridge them when the customer answers."""
        endpoint = f"Local/{dial.number}@{self._context}"
        customer = Leg(id=placed.leg_id, call_id=session.call.id, role=LegRole.CUSTOMER,
                       channel_name=endpoint, created_at=datetime.now(UTC))
        self._calls.add_leg(session, customer)
        placed.dialed_at = time.monotonic()
        session.on_answer[customer.id] = lambda s, leg: self._bridge_previewed(s, placed)
        session.on_end[customer.id] = self._preview_customer_left
        caller_id = dial.caller_id if dial.caller_id and E164.fullmatch(dial.caller_id) else ""
        return (c.Originate(leg_id=customer.id, endpoint=endpoint, timeout_s=dial.ring_timeout_s,
                            caller_id=f'"" <{caller_id}>' if caller_id else "",
                            args=("campaign", session.call.id)),)

    def _bridge_previewed(self, session: CallSession, placed: Placed) -> tuple[c.Command, ...]:
        agent_leg = session.call.legs.get(f"{session.call.id}.agent")
        customer = session.call.legs[placed.leg_id]
        if agent_leg is None or agent_leg.state is not LegState.UP:
            return (c.Hangup(customer.id),)
        placed.stage = Stage.WAITING
        session.bridge_id = f"br-{session.call.id}"
        session.connected_at = datetime.now(UTC)
        self._event(session, customer.id, "CampaignAnswered", {"campaign": placed.campaign_id})
        self._calls.tell(session, "call.connected", {"agent_id": session.call.data.get("agent_id"),
                                                     "queue": None, "bridge_id": session.bridge_id,
                                                     "campaign": placed.campaign_id})
        self._calls.agent_connected(session)
        return (c.CreateBridge(session.bridge_id, name=f"call {session.call.id}"),
                c.AddToBridge(session.bridge_id, (agent_leg.id, customer.id)))

    def _preview_customer_left(self, session: CallSession, leg: Leg) -> tuple[c.Command, ...]:
        self._ended(session, leg)
        return _hang_up_the_rest(session)

    def _preview_agent_left(self, session: CallSession, leg: Leg, placed: Placed) -> tuple[c.Command, ...]:
        customer = session.call.legs.get(placed.leg_id)
        if customer is None:
            # The agent never answered (or hung up first): nothing was dialed.
            self.placed.pop(session.call.id, None)
            reason = "the agent hung up before the customer was dialed" if leg.answered_at else \
                "the agent did not answer"
            self._spawn(self._record(placed, Outcome.CANCELLED, reason))
        elif customer.answered_at is None:
            placed.agent_left = True  # the customer's end records the outcome
        return _hang_up_the_rest(session)

    def _call_data(self, plan: CampaignPlan, dial: Dial) -> dict[str, str]:
        data = {"campaign": plan.id, "campaign_attempt": str(dial.attempt_id),
                "contact_id": str(dial.contact_id), "queue": plan.queue}
        for name, value in dial.fields.items():
            key = _FIELD_NAME.sub("_", str(name)).strip("_")[:64]
            if key:
                data.setdefault(f"lead_{key}", str(value)[:1000])
        return data

    def _connected(self, call_id: str) -> bool:
        call = self._calls.find(call_id)
        return call is not None and bool(call.data.get("agent_id"))

    # ---- one call ------------------------------------------------------------------------

    async def place(self, plan: CampaignPlan, dial: Dial) -> bool:
        """Originate the customer's leg of one contact taken from the hopper; False when it
        was not dialed (its attempt is then closed)."""
        check = await self._outbound.confirm_dialable(dial.attempt_id)
        if not check.ok:
            return False  # closed as cancelled by the check
        if not E164.fullmatch(dial.number):
            await self._outbound.record_outcome(dial.attempt_id, Outcome.FAILED,
                                                reason="number not in E.164 form: not dialed")
            return False
        call_id = str(uuid.uuid4())
        leg_id = f"{call_id}.customer"
        endpoint = f"Local/{dial.number}@{self._context}"
        data = self._call_data(plan, dial)
        now = datetime.now(UTC)
        call = Call(id=call_id, direction=Direction.OUTBOUND, started_at=now, caller_number=dial.number,
                    dialed=dial.number, data=data)
        call.legs[leg_id] = Leg(id=leg_id, call_id=call_id, role=LegRole.CALLER, channel_name=endpoint,
                                created_at=now)
        placed = Placed(plan.id, dial.attempt_id, call_id, leg_id, plan.queue,
                        plan.abandon_message or self._message, time.monotonic())
        self.placed[call_id] = placed
        session = self._calls.open(call)
        session.on_answer[leg_id] = self._answered
        session.on_end[leg_id] = self._ended
        self._calls.record(CallEventRow(call_id, leg_id, now, "CampaignDialed", {
            "campaign": plan.id, "attempt": str(dial.attempt_id), "contact_id": dial.contact_id}))
        caller_id = dial.caller_id if dial.caller_id and E164.fullmatch(dial.caller_id) else ""
        originate = c.Originate(leg_id=leg_id, endpoint=endpoint, timeout_s=dial.ring_timeout_s,
                                caller_id=f'"" <{caller_id}>' if caller_id else "",
                                args=("campaign", call_id))
        try:
            # A refused originate ends the leg (cause 0) through the call's own events.
            await self._calls.act(call_id, lambda s: self._calls.execute(s, originate))
        except NotFound:
            pass  # the call ended already; its end hook recorded the outcome
        return True

    def _answered(self, session: CallSession, leg: Leg) -> tuple[c.Command, ...]:
        """The customer answered: into the campaign's queue, with a deadline for an agent."""
        placed = self.placed.get(session.call.id)
        if placed is None:
            return (c.Hangup(leg.id),)
        placed.stage = Stage.WAITING
        self.history.setdefault(placed.campaign_id, History()).attempts.append(
            pacing.Attempt(pacing.Outcome.HUMAN, max(0.0, time.monotonic() - placed.dialed_at)))
        self._event(session, leg.id, "CampaignAnswered", {"campaign": placed.campaign_id})
        if not engine.staffed(self._acd.state, placed.queue):
            # Nobody logged in to take it: the message now rather than a queue that overflows.
            return self._give_up(session, leg, placed, "no agent logged in")
        placed.hold = asyncio.get_running_loop().call_later(
            engine.HOLD_FOR_AGENT_S, lambda: self._spawn(self._hold_over(placed)))
        return (c.EnterQueue(leg.id, placed.queue),)

    async def _hold_over(self, placed: Placed) -> None:
        """The hold is over: a customer no agent has taken hears the message and is let go."""
        placed.hold = None

        async def run(session: CallSession) -> None:
            leg = session.call.legs.get(placed.leg_id)
            if (placed.stage is not Stage.WAITING or session.agent_id is not None
                    or leg is None or leg.state is not LegState.UP):
                return
            agent_answered = any(
                (agent := session.call.legs.get(leg_id)) is not None and agent.state is LegState.UP
                for leg_id in session.offers)
            if agent_answered:
                return  # an agent answered: the bridge follows in a moment
            for command in self._give_up(session, leg, placed, "no agent within the hold"):
                await self._calls.execute(session, command)

        try:
            await self._calls.act(placed.call_id, run)
        except NotFound:
            return

    def _give_up(self, session: CallSession, leg: Leg, placed: Placed, why: str) -> tuple[c.Command, ...]:
        """Out of the queue, the message, then hang up; the attempt is ``abandoned``."""
        placed.stage = Stage.ABANDONED
        commands = self._calls.leave_queue(session)
        session.driver, play = GreetingDriver.begin(leg.id, (f"sound:{placed.message}",), answered=True)
        session.call.data["campaign_abandoned"] = why
        self._event(session, leg.id, "CampaignAbandoned", {"campaign": placed.campaign_id, "reason": why,
                                                           "message": placed.message})
        self._spawn(self._record(placed, Outcome.ABANDONED, f"{why}: message played"))
        return (*commands, *play)

    def _ended(self, session: CallSession, leg: Leg) -> None:
        """The customer's leg ended: what it means for the contact."""
        placed = self.placed.pop(session.call.id, None)
        if placed is None:
            return None
        if placed.hold is not None:
            placed.hold.cancel()
        history = self.history.setdefault(placed.campaign_id, History())
        seconds = max(0.0, time.monotonic() - placed.dialed_at)
        if placed.stage is Stage.ABANDONED:
            return None  # recorded when it was given up
        if leg.answered_at is None and placed.agent_left:
            outcome, reason = Outcome.CANCELLED, "the agent hung up before the customer answered"
        elif leg.answered_at is None:
            outcome, reason = engine.unanswered_outcome(leg.hangup_cause, leg.hangup_cause_text)
            history.attempts.append(pacing.Attempt(_PACING_OUTCOME[outcome], seconds))
        elif session.call.data.get("agent_id") and (not placed.preview or session.bridge_id is not None):
            outcome, reason = Outcome.ANSWERED, f"talked with agent {session.call.data['agent_id']}"
            if session.connected_at is not None:
                history.talks.append(max(0.0, (datetime.now(UTC) - session.connected_at).total_seconds()))
        else:
            outcome, reason = Outcome.ABANDONED, "the customer hung up before an agent took the call"
        self._spawn(self._record(placed, outcome, reason))
        return None

    async def _record(self, placed: Placed, outcome: Outcome, reason: str) -> None:
        try:
            await self._outbound.record_outcome(placed.attempt_id, outcome, call_id=placed.call_id,
                                                reason=reason)
        except ControllerError as exc:
            # Left open, the attempt is closed as failed by the worker's expiry.
            log.error("campaign %s: outcome %s of attempt %s not recorded: %s", placed.campaign_id,
                      outcome.value, placed.attempt_id, exc.detail)

    def _event(self, session: CallSession, leg_id: str | None, kind: str, data: dict[str, Any]) -> None:
        self._calls.record(CallEventRow(session.call.id, leg_id, datetime.now(UTC), kind, data))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    def in_flight(self, campaign_id: str) -> dict[str, Any]:
        """This process's side of a campaign now: whether it dials it, calls ringing, customers
        waiting for an agent, calls given the message and not yet hung up."""
        mine = self.calls_of(campaign_id)
        return {"dialing_here": campaign_id in self._leases,
                "ringing": sum(1 for p in mine if p.stage is Stage.RINGING),
                "waiting": sum(1 for p in mine
                               if p.stage is Stage.WAITING and not self._connected(p.call_id)),
                "abandoning": sum(1 for p in mine if p.stage is Stage.ABANDONED)}

    def calls_of(self, campaign_id: str) -> list[Placed]:
        return [p for p in self.placed.values() if p.campaign_id == campaign_id]

    def live(self, call_id: str) -> bool:
        call = self._calls.find(call_id)
        return call is not None and call.state is not CallState.ENDED


def _target(plan: CampaignPlan) -> float:
    # The pacing wants a target strictly between 0 and 1: 0 % dials (almost) like progressive.
    return min(max(plan.abandon_target_pct, 0.01), 99.0)


def _check_agent(actor: Principal, dial: Dial) -> str:
    """The agent a preview was offered to; an agent key may act on its own previews only."""
    if dial.agent_id is None:
        raise InvalidRequest(f"attempt {dial.attempt_id} was not offered to an agent")
    if not actor.oversees_calls and actor.agent_id != dial.agent_id:
        raise Forbidden("this preview was offered to another agent")
    return dial.agent_id


def _hang_up_the_rest(session: CallSession) -> tuple[c.Command, ...]:
    """A preview call ends when either side leaves."""
    others = [leg for leg in session.call.live_legs() if leg.id not in session.released]
    commands: list[c.Command] = [c.Hangup(leg.id) for leg in others]
    if not others and session.bridge_id is not None:
        commands.append(c.DestroyBridge(session.bridge_id))
    return tuple(commands)


_PACING_OUTCOME = {Outcome.BUSY: pacing.Outcome.BUSY, Outcome.NO_ANSWER: pacing.Outcome.NO_ANSWER,
                   Outcome.FAILED: pacing.Outcome.FAILED}
