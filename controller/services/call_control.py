"""Call control from the API (agents and CRMs): click-to-dial, hang up, hold, blind and
attended transfer, three-way conference, DTMF and dispositions.

Every action on a live call runs on the call's own task (``CallService.act``), in order with
the call's events, and first checks that the acting key may act on the call: admins,
supervisors and integrations on any call; an agent key only on calls of the agent it is linked
to (the agent connected to the call, offered it, or who dialed it).

Words: the *agent leg* is the connected agent's leg; the *party* is the other side (the caller
of an inbound call, the customer of a click-to-dial). A call has one bridge, ``br-<call id>``,
and everything happens in it:

- blind transfer: the party leaves the bridge and hears music on hold, the agent leg is hung
  up (released: its end does not end the call), the destination is dialed, and joins the
  party in the bridge when it answers; if it does not, the party is hung up. To a queue, the
  party is handed to the ACD instead, like a caller a flow queued.
- attended transfer: the party leaves the bridge (music on hold) and the consulted party is
  dialed into the bridge with the agent. Complete: the party comes back and the agent leg is
  hung up. Cancel, or the consulted party hanging up or not answering: the party comes back.
- conference: a third party is dialed into the bridge; the call goes on while two remain.
- click-to-dial: the agent's device rings first; once it answers the customer is dialed, and
  once the customer answers both are bridged.
- take-over (asked by a supervisor's monitor session, services/monitors.py): the supervisor's
  leg, already up, becomes a leg of the call in the bridge, and the agent leg is hung up and
  let go as in a transfer. The supervisor inherits what the agent's leg would have done on
  leaving (a conference goes on while two remain; otherwise the call ends).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.domain import commands as c
from controller.domain.access import Principal
from controller.domain.calls import Call, Direction, Leg, LegRole, LegState, apply_leg
from controller.domain.destinations import Destination, DestinationKind
from controller.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound, SwitchUnavailable
from controller.services.calls import CallService, CallSession, transfer_endpoint
from controller.storage import dispositions as store
from controller.storage.db import Database
from controller.storage.dispositions import Disposition
from controller.storage.records import CallEventRow

DIAL_TIMEOUT_S = 30
Commands = tuple[c.FlowCommand, ...]
# Call data keys the controller itself writes; a click-to-dial's own data may not use them.
RESERVED_DATA_KEYS = frozenset({
    "agent_id", "reference", "dialed_by", "on_hold", "queue", "queue_priority", "queue_skills",
    "queue_overflow", "overflow", "flow_outcome", "transfer_to", "queue_moved_from",
    "queue_first_entered_at", "queue_target_agent",
})


class AgentDirectory(Protocol):
    """Where an agent's device is found (services/agents.py)."""

    async def get(self, agent_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class DialRequest:
    """Click-to-dial: ring the agent side (an agent's device, or an endpoint), then ``to``."""

    to: Destination
    agent_id: str | None = None
    endpoint: str | None = None
    reference: str = ""
    data: dict[str, str] = field(default_factory=dict)


class CallControl:
    def __init__(self, calls: CallService, agents: AgentDirectory, db: Database,
                 queue_exists: Callable[[str], bool], switch_ready: Callable[[], bool]) -> None:
        self._calls = calls
        self._agents = agents
        self._db = db
        self._queue_exists = queue_exists
        self._switch_ready = switch_ready
        # A campaign call's disposition is also its attempt's (services/outbound.py): checked
        # against the campaign's codes before anything is written, then stored on the attempt.
        self.campaign_disposition: Callable[[str, str], Awaitable[None]] | None = None

    # ---- who may act --------------------------------------------------------------------

    @staticmethod
    def _check(actor: Principal, call_id: str, data: Mapping[str, str], offered: Iterable[str] = ()) -> None:
        if actor.oversees_calls:
            return
        if actor.agent_id is None:
            raise Forbidden("this agent key is not linked to an agent, so it may act on no call")
        if data.get("agent_id") != actor.agent_id and actor.agent_id not in set(offered):
            raise Forbidden(f"call {call_id} is not a call of agent {actor.agent_id}")

    async def _on_call(self, actor: Principal, call_id: str,
                       run: Callable[[CallSession], Awaitable[Any]]) -> Any:
        async def checked(session: CallSession) -> Any:
            self._check(actor, call_id, session.call.data, (a for _, a in session.offers.values()))
            return await run(session)

        return await self._calls.act(call_id, checked)

    # ---- hang up, hold, DTMF ------------------------------------------------------------

    async def hang_up(self, actor: Principal, call_id: str) -> None:
        """Hang up every leg of a live call (the records follow from the switch's events)."""
        async def run(session: CallSession) -> None:
            for leg in session.call.live_legs():
                await self._calls.execute(session, c.Hangup(leg.id))

        await self._on_call(actor, call_id, run)

    async def hold(self, actor: Principal, call_id: str, on: bool) -> None:
        """Put the party on hold (music on hold) or take the call off hold."""
        async def run(session: CallSession) -> None:
            party = _party(session)
            command: c.Command = c.StartMusicOnHold(party.id) if on else c.StopMusicOnHold(party.id)
            await self._calls.perform(command)
            session.call.data["on_hold"] = "yes" if on else "no"
            self._event(session, party.id, "CallHeld" if on else "CallResumed")
            self._calls.tell(session, "call.held" if on else "call.unheld", {"leg_id": party.id})

        await self._on_call(actor, call_id, run)

    async def send_dtmf(self, actor: Principal, call_id: str, digits: str, leg_id: str | None) -> None:
        """Send DTMF on a leg of the call (by default to the party, e.g. to work its IVR)."""
        async def run(session: CallSession) -> None:
            leg = session.call.legs.get(leg_id) if leg_id else _party(session)
            if leg is None:
                raise InvalidRequest(f"call {call_id} has no leg {leg_id}")
            if leg.state is LegState.ENDED:
                raise Conflict(f"leg {leg.id} has ended")
            await self._calls.perform(c.SendDtmf(leg.id, digits))
            # The digits themselves are not recorded: they may be a PIN or a card number.
            self._event(session, leg.id, "DtmfSent", {"count": len(digits)})

        await self._on_call(actor, call_id, run)

    # ---- click-to-dial --------------------------------------------------------------------

    async def dial(self, actor: Principal, request: DialRequest) -> str:
        """Ring the agent side, then the customer; returns the new call's id."""
        agent_id = request.agent_id
        device = await self._device(agent_id) if agent_id else request.endpoint
        to_endpoint = await self._endpoint(request.to)
        if not actor.oversees_calls:
            if actor.agent_id is None:
                raise Forbidden("this agent key is not linked to an agent, so it cannot dial")
            if request.endpoint is not None or agent_id not in (None, actor.agent_id):
                raise Forbidden("an agent key dials from its own agent's device only")
            agent_id = actor.agent_id
            device = await self._device(agent_id)
        if not device:
            raise InvalidRequest("name the agent side: agent_id, endpoint or extension")
        if reserved := RESERVED_DATA_KEYS & request.data.keys():
            raise InvalidRequest(f"call data keys reserved for the controller: {', '.join(sorted(reserved))}")
        if not self._switch_ready():
            raise SwitchUnavailable("the switch is not connected; nothing was dialed")

        now = datetime.now(UTC)
        call_id = str(uuid.uuid4())
        data = {**request.data, "reference": request.reference, "dialed_by": str(actor.key_id)}
        if agent_id:
            data["agent_id"] = agent_id
        call = Call(id=call_id, direction=Direction.OUTBOUND, started_at=now, caller_number=agent_id or "",
                    dialed=request.to.value, data=data)
        agent_leg = Leg(id=f"{call_id}.agent", call_id=call_id, role=LegRole.AGENT, channel_name=device,
                        created_at=now)
        call.legs[agent_leg.id] = agent_leg
        session = self._calls.open(call)
        if agent_id:
            self._calls.agent_joins(session, agent_leg, agent_id)
        session.on_answer[agent_leg.id] = lambda s, leg: self._dial_customer(s, leg, request.to, to_endpoint)
        session.on_end[agent_leg.id] = self._end_all
        self._event(session, agent_leg.id, "ClickToDial", {"to": str(request.to), "agent_id": agent_id})
        dialable = request.to.kind in (DestinationKind.NUMBER, DestinationKind.EXTENSION)
        shown = request.to.value if dialable else ""
        originate = c.Originate(leg_id=agent_leg.id, endpoint=device, timeout_s=DIAL_TIMEOUT_S,
                                caller_id=f'"{shown}" <{shown}>' if shown else "", args=("dial", call_id))
        await self._calls.act(call_id, lambda s: self._calls.execute(s, originate))
        return call_id

    def _dial_customer(self, session: CallSession, agent_leg: Leg, to: Destination,
                       endpoint: str) -> Commands:
        customer = self._new_leg(session, LegRole.CUSTOMER, "customer", endpoint)
        session.on_answer[customer.id] = lambda s, leg: self._bridge_dialed(s, agent_leg, leg)
        session.on_end[customer.id] = self._end_all
        return (c.Originate(leg_id=customer.id, endpoint=endpoint, timeout_s=DIAL_TIMEOUT_S,
                            args=("dial", session.call.id)),)

    def _bridge_dialed(self, session: CallSession, agent_leg: Leg, customer: Leg) -> Commands:
        session.bridge_id = f"br-{session.call.id}"
        session.connected_at = datetime.now(UTC)
        self._event(session, customer.id, "CustomerAnswered")
        self._calls.tell(session, "call.connected", {"agent_id": session.call.data.get("agent_id"),
                                                     "queue": None, "bridge_id": session.bridge_id,
                                                     "click_to_dial": True})
        return (c.CreateBridge(session.bridge_id, name=f"call {session.call.id}"),
                c.AddToBridge(session.bridge_id, (agent_leg.id, customer.id)))

    def _end_all(self, session: CallSession, ended: Leg) -> Commands:
        """A click-to-dial ends when either side leaves."""
        others = [leg for leg in session.call.live_legs() if leg.id not in session.released]
        commands: list[c.FlowCommand] = [c.Hangup(leg.id) for leg in others]
        if not others and session.bridge_id is not None:
            commands.append(c.DestroyBridge(session.bridge_id))
        return tuple(commands)

    # ---- transfers --------------------------------------------------------------------------

    async def transfer(self, actor: Principal, call_id: str, to: Destination, attended: bool) -> None:
        self._calls.session(call_id)  # an unknown call is 404 before its destination is looked at
        if to.kind is DestinationKind.QUEUE:
            if attended:
                raise InvalidRequest("an attended transfer consults a person, not a queue")
            if not self._queue_exists(to.value):
                raise InvalidRequest(f"no queue {to.value}")
            endpoint = ""
        else:
            endpoint = await self._endpoint(to)

        async def run(session: CallSession) -> None:
            agent, party, bridge = _connected(session)
            if attended:
                self._consult(session, party, bridge, to, endpoint)
                await self._execute(session, c.RemoveFromBridge(bridge, (party.id,)),
                                    c.StartMusicOnHold(party.id), self._originate(session, session.consult))
                return
            if to.kind is DestinationKind.QUEUE and party.role is not LegRole.CALLER:
                raise Conflict("only an inbound caller can be queued")
            from_agent = session.call.data.get("agent_id")
            self._let_agent_go(session, agent)
            self._event(session, party.id, "TransferStarted", {"mode": "blind", "to": str(to)})
            if to.kind is DestinationKind.QUEUE:
                self._calls.tell(session, "call.transferred", {"mode": "blind", "to": str(to),
                                                               "from_agent": from_agent})
                session.bridge_id = None
                priority = int(session.call.data.get("queue_priority") or 0)
                await self._execute(session, c.RemoveFromBridge(bridge, (party.id,)), c.Hangup(agent.id),
                                    c.DestroyBridge(bridge), c.EnterQueue(party.id, to.value, priority))
                return
            target = self._new_leg(session, _role_for(to, LegRole.TRANSFER), "transfer", endpoint, to)
            session.on_answer[target.id] = lambda s, leg: self._transferred(s, party, leg, bridge, to,
                                                                            from_agent)
            session.on_end[target.id] = lambda s, leg: self._transfer_failed(s, party, leg)
            await self._execute(session, c.RemoveFromBridge(bridge, (party.id,)),
                                c.StartMusicOnHold(party.id), c.Hangup(agent.id),
                                self._originate(session, target.id))

        await self._on_call(actor, call_id, run)

    def _transferred(self, session: CallSession, party: Leg, answered: Leg, bridge: str,
                     to: Destination, from_agent: str | None) -> Commands:
        if to.kind is DestinationKind.AGENT:
            session.call.data["agent_id"] = to.value
        self._event(session, answered.id, "TransferAnswered", {"to": str(to)})
        self._calls.agent_connected(session)
        self._calls.tell(session, "call.transferred",
                         {"mode": "blind", "to": str(to), "from_agent": from_agent})
        return (c.StopMusicOnHold(party.id), c.AddToBridge(bridge, (party.id, answered.id)))

    def _transfer_failed(self, session: CallSession, party: Leg, ended: Leg) -> Commands | None:
        if ended.answered_at is not None:
            return None  # answered, then left: the call ends as any bridged call does
        self._event(session, ended.id, "TransferFailed", {"cause": ended.hangup_cause_text or ""})
        self._calls.tell(session, "call.transfer_failed", {"cause": ended.hangup_cause_text or ""})
        return (c.Hangup(party.id),) if party.state is not LegState.ENDED else ()

    def _consult(self, session: CallSession, party: Leg, bridge: str, to: Destination, endpoint: str) -> None:
        consult = self._new_leg(session, _role_for(to, LegRole.TRANSFER), "consult", endpoint, to)
        session.consult = consult.id
        session.call.data["transfer_to"] = str(to)
        session.on_answer[consult.id] = lambda s, leg: self._consult_answered(s, leg, bridge)
        session.on_end[consult.id] = lambda s, leg: self._consult_over(s, leg, party, bridge)
        self._event(session, party.id, "TransferStarted", {"mode": "attended", "to": str(to)})

    def _consult_answered(self, session: CallSession, consult: Leg, bridge: str) -> Commands:
        self._event(session, consult.id, "ConsultAnswered")
        return (c.AddToBridge(bridge, (consult.id,)),)

    def _consult_over(self, session: CallSession, ended: Leg, party: Leg,
                      bridge: str) -> Commands | None:
        """The consulted party hung up or never answered: the party comes back to the agent."""
        if session.consult != ended.id:
            return None
        session.consult = None
        session.call.data.pop("transfer_to", None)
        self._event(session, ended.id, "ConsultEnded", {"cause": ended.hangup_cause_text or ""})
        if party.state is LegState.ENDED:
            return None
        return (c.StopMusicOnHold(party.id), c.AddToBridge(bridge, (party.id,)))

    async def complete_transfer(self, actor: Principal, call_id: str) -> None:
        async def run(session: CallSession) -> None:
            consult = _consulting(session)
            if consult.state is not LegState.UP:
                raise Conflict("the consulted party has not answered yet; cancel, or wait")
            agent, party, bridge = _connected(session, on_hold=True)
            session.consult = None
            session.on_end.pop(consult.id, None)  # from now on the consulted party is the call's
            from_agent = session.call.data.get("agent_id")
            self._let_agent_go(session, agent)
            to = session.call.data.pop("transfer_to", "")
            if to.startswith("agent:"):
                session.call.data["agent_id"] = to.partition(":")[2]
            self._event(session, consult.id, "TransferCompleted", {"to": to})
            self._calls.tell(session, "call.transferred", {"mode": "attended", "to": to,
                                                           "from_agent": from_agent})
            await self._execute(session, c.StopMusicOnHold(party.id), c.AddToBridge(bridge, (party.id,)),
                                c.Hangup(agent.id))
            self._calls.agent_connected(session)

        await self._on_call(actor, call_id, run)

    async def cancel_transfer(self, actor: Principal, call_id: str) -> None:
        async def run(session: CallSession) -> None:
            consult = _consulting(session)
            _, party, bridge = _connected(session, on_hold=True)
            session.consult = None
            session.on_answer.pop(consult.id, None)
            session.on_end.pop(consult.id, None)
            session.released.add(consult.id)
            session.call.data.pop("transfer_to", None)
            self._event(session, consult.id, "TransferCancelled")
            await self._execute(session, c.Hangup(consult.id), c.StopMusicOnHold(party.id),
                                c.AddToBridge(bridge, (party.id,)))

        await self._on_call(actor, call_id, run)

    # ---- conference -------------------------------------------------------------------------

    async def conference(self, actor: Principal, call_id: str, to: Destination) -> None:
        """Add a third party to the call's bridge."""
        self._calls.session(call_id)
        if to.kind is DestinationKind.QUEUE:
            raise InvalidRequest("a conference adds a person, not a queue")
        endpoint = await self._endpoint(to)

        async def run(session: CallSession) -> None:
            _, _, bridge = _connected(session)
            third = session.call.legs.get(session.conference or "")
            if third is not None and third.state is not LegState.ENDED:
                raise Conflict("the call already has a third party")
            leg = self._new_leg(session, LegRole.CONFERENCE, "conference", endpoint, to)
            session.conference = leg.id
            session.on_answer[leg.id] = lambda s, answered: self._conference_joined(s, answered, bridge)
            session.on_end[leg.id] = self._conference_failed
            self._event(session, leg.id, "ConferenceStarted", {"to": str(to)})
            await self._execute(session, self._originate(session, leg.id))

        await self._on_call(actor, call_id, run)

    def _conference_joined(self, session: CallSession, third: Leg, bridge: str) -> Commands:
        # From now on a party leaving ends the call only when fewer than two remain.
        for leg in session.call.live_legs():
            if leg.state is LegState.UP and leg.id not in session.released:
                session.on_end[leg.id] = self._party_left
        self._event(session, third.id, "ConferenceJoined")
        self._calls.agent_connected(session)
        return (c.AddToBridge(bridge, (third.id,)),)

    def _conference_failed(self, session: CallSession, ended: Leg) -> Commands | None:
        if ended.answered_at is not None:
            return self._party_left(session, ended)
        self._event(session, ended.id, "ConferenceFailed", {"cause": ended.hangup_cause_text or ""})
        return ()

    def _party_left(self, session: CallSession, ended: Leg) -> Commands | None:
        if session.agent_id is not None and ended.id in session.offers:
            self._calls.release_agent(session, ended.ended_at or datetime.now(UTC))
        remaining = [leg for leg in session.call.live_legs()
                     if leg.state is LegState.UP and leg.id not in session.released]
        if len(remaining) >= 2:
            return ()
        return None  # the default: the last one is hung up and the bridge goes

    # ---- take-over by a supervisor ---------------------------------------------------------------

    async def take_over(self, call_id: str, agent_leg_id: str, supervisor_leg_id: str, device: str,
                        monitor_id: str, first: Sequence[c.Command], bridge: bool) -> None:
        """The supervisor's leg (up, dialed by a monitor session) replaces the agent's leg in
        the call. ``first``: switch commands of the monitor session to carry out once the
        take-over is known to be possible (the supervisor leaving its monitor bridge);
        ``bridge``: whether the supervisor is still to be added to the call's bridge. The
        caller of this method (the monitor route) has authorized the supervisor."""
        async def run(session: CallSession) -> None:
            agent = session.call.legs.get(agent_leg_id)
            if session.consult is not None:
                raise Conflict("a consultation is in progress: complete or cancel it first")
            if (agent is None or agent.state is not LegState.UP or agent.id in session.released
                    or session.bridge_id is None):
                raise Conflict(f"call {call_id}: the agent is no longer talking in it")
            _party(session)  # someone to take over for
            now = datetime.now(UTC)
            supervisor = Leg(id=supervisor_leg_id, call_id=call_id, role=LegRole.SUPERVISOR,
                             channel_name=device, created_at=now)
            apply_leg(supervisor, LegState.UP, now)
            hook = session.on_end.get(agent.id)
            agent_id = (session.busy_agents.get(agent.id) or session.offers.get(agent.id, ("", ""))[1]
                        or session.call.data.get("agent_id", ""))
            self._calls.add_leg(session, supervisor)
            if hook is not None:
                session.on_end[supervisor.id] = hook
            self._let_agent_go(session, agent)
            session.call.data.update({"taken_over_by": device, "taken_over_from": agent_id})
            self._calls.record_call(session)
            self._event(session, supervisor.id, "TakenOver", {"monitor_id": monitor_id, "device": device,
                                                              "agent_id": agent_id, "agent_leg": agent.id})
            commands: list[c.FlowCommand] = list(first)
            if bridge:
                commands.append(c.AddToBridge(session.bridge_id, (supervisor.id,)))
            commands.append(c.Hangup(agent.id))
            await self._execute(session, *commands)

        await self._calls.act(call_id, run)

    # ---- dispositions ------------------------------------------------------------------------

    async def dispose(self, actor: Principal, call_id: str, code: str, notes: str,
                      follow_up: bool) -> Disposition:
        """Record how a call ended (live or ended); a new disposition replaces the last one."""
        try:
            session = self._calls.session(call_id)
        except NotFound:
            async with self._db.connection() as conn:
                data = await store.call_data(conn, call_id)
            if data is None:
                raise NotFound(f"no call {call_id}") from None
            offered: list[str] = []
        else:
            data = dict(session.call.data)
            offered = [a for _, a in session.offers.values()]
        self._check(actor, call_id, data, offered)
        if data.get("campaign_attempt") and self.campaign_disposition is not None:
            await self.campaign_disposition(data["campaign_attempt"], code)
        async with self._db.connection() as conn:
            disposition = await store.upsert(conn, call_id=call_id, code=code, notes=notes,
                                             follow_up=follow_up, key_id=actor.key_id,
                                             agent_id=actor.agent_id or data.get("agent_id"))
        self._calls.record(CallEventRow(call_id, None, disposition.updated_at, "DispositionRecorded",
                                        {"code": code, "follow_up": follow_up}))
        return disposition

    # ---- helpers ------------------------------------------------------------------------------

    async def _device(self, agent_id: str) -> str:
        try:
            return str((await self._agents.get(agent_id)).device)
        except NotFound:
            raise InvalidRequest(f"no agent {agent_id}") from None

    async def _endpoint(self, to: Destination) -> str:
        match to.kind:
            case DestinationKind.AGENT:
                return await self._device(to.value)
            case DestinationKind.EXTENSION | DestinationKind.NUMBER:
                return transfer_endpoint(str(to))
            case DestinationKind.ENDPOINT:
                return to.value
        raise InvalidRequest(f"a {to.kind.value} cannot be dialed")

    def _new_leg(self, session: CallSession, role: LegRole, what: str, endpoint: str,
                 to: Destination | None = None) -> Leg:
        """A leg about to be dialed; an agent dialed (``to``) is busy for the ACD from now on."""
        call = session.call
        leg = Leg(id=f"{call.id}.{what}-{len(call.legs)}", call_id=call.id, role=role, channel_name=endpoint,
                  created_at=datetime.now(UTC))
        self._calls.add_leg(session, leg)
        if to is not None and to.kind is DestinationKind.AGENT:
            self._calls.agent_joins(session, leg, to.value, call.data.get("queue", ""))
        return leg

    def _originate(self, session: CallSession, leg_id: str | None) -> c.Originate:
        call = session.call
        leg = call.legs[leg_id or ""]
        name = "".join(ch for ch in call.caller_name if ch not in '"<>')
        return c.Originate(leg_id=leg.id, endpoint=leg.channel_name, timeout_s=DIAL_TIMEOUT_S,
                           caller_id=f'"{name}" <{call.caller_number}>' if call.caller_number else "",
                           args=("transfer", call.id))

    def _let_agent_go(self, session: CallSession, agent: Leg) -> None:
        """The agent leaves the call for good: the ACD frees it, its leg's end ends nothing."""
        self._calls.release_agent(session, datetime.now(UTC), agent)
        session.offers.pop(agent.id, None)
        session.released.add(agent.id)
        session.on_end.pop(agent.id, None)
        session.call.data.pop("agent_id", None)

    async def _execute(self, session: CallSession, *commands: c.FlowCommand) -> None:
        for command in commands:
            await self._calls.execute(session, command)

    def _event(self, session: CallSession, leg_id: str | None, kind: str,
               data: dict[str, Any] | None = None) -> None:
        self._calls.record(CallEventRow(session.call.id, leg_id, datetime.now(UTC), kind, data or {}))


def _role_for(to: Destination, otherwise: LegRole) -> LegRole:
    # A transfer to an agent makes that agent the call's agent leg, so it can transfer again.
    return LegRole.AGENT if to.kind is DestinationKind.AGENT else otherwise


def _party(session: CallSession) -> Leg:
    """The caller of an inbound call, the customer of a click-to-dial."""
    for leg in session.call.live_legs():
        if leg.role in (LegRole.CALLER, LegRole.CUSTOMER) and leg.id not in session.released:
            return leg
    raise Conflict(f"call {session.call.id} has no caller or customer on the line")


def _connected(session: CallSession, on_hold: bool = False) -> tuple[Leg, Leg, str]:
    """The agent leg, the party and the bridge of a call where they talk (or, ``on_hold``,
    where the party waits during a consultation)."""
    if session.consult is not None and not on_hold:
        raise Conflict("a consultation is in progress: complete or cancel it first")
    party = _party(session)
    agents = [leg for leg in session.call.live_legs()
              if leg.role is LegRole.AGENT and leg.state is LegState.UP
              and leg.id not in session.released and leg.id != session.consult]
    if not agents or session.bridge_id is None:
        raise Conflict(f"call {session.call.id} has no agent talking with the caller")
    if party.state is not LegState.UP:
        raise Conflict(f"call {session.call.id}: the other party has not answered")
    return agents[0], party, session.bridge_id


def _consulting(session: CallSession) -> Leg:
    leg = session.call.legs.get(session.consult or "")
    if leg is None or leg.state is LegState.ENDED:
        raise Conflict("no consultation in progress")
    return leg
