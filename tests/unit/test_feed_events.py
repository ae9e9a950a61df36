"""What the ACD and the call service tell the public feed (pure): agent state changes with the
call they concern, callers joining and leaving queues, and the screen pop of an offered call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from controller.domain import events as e
from controller.domain.agents import Agent, DestinationKind, QueueConfig, QueueDestination, QueueEntry
from controller.domain.calls import Call, Direction
from controller.domain.feed import Topic
from controller.domain.flows import parse_flow
from controller.engines import acd
from controller.services import acd_feed, call_feed
from controller.services.drivers import IvrDriver

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Floor:
    """The engine over a small floor: agents a1, a2 in queue q (a1 first), a1 also in vip."""

    def __init__(self, **queue: object) -> None:
        self.state = acd.AcdState(agents={a: Agent(a, a, f"PJSIP/{a}") for a in ("a1", "a2")})
        self.state.queues["q"] = QueueConfig("q", members=(("a1", 0), ("a2", 0)), **queue)  # type: ignore[arg-type]
        self.state.queues["vip"] = QueueConfig("vip", members=(("a1", 0),))
        self.now = T0
        self.n = 0

    def __call__(self, event: acd.AcdEvent, after_s: float = 0) -> list[tuple[str, object]]:
        """Apply ``event``; (call id, feed event) of the queue changes, and keep the agent events."""
        self.now += timedelta(seconds=after_s)
        before = self.state

        def ids(prefix: str) -> str:
            self.n += 1
            return f"{prefix}-{self.n}"

        decision = acd.on_event(before, event, self.now, ids)
        self.state = decision.state
        states = {a: agent.state for a, agent in before.agents.items()}
        self.agent_events = []
        for command in decision.commands:
            if isinstance(command, acd.AgentStateChanged):
                old, states[command.agent_id] = states[command.agent_id], command.state
                self.agent_events.append(acd_feed.agent_state_changed(command, old, before, self.state,
                                                                      self.now, "1-0"))
        return [(call_id, told) for call_id, told in acd_feed.queue_events(before, self.state, event,
                                                                           decision.commands, self.now)]


def login(floor: Floor, *agents: str) -> None:
    for agent in agents:
        floor(acd.AgentLoggedIn(agent))


def test_a_caller_joins_rings_an_agent_and_leaves_answered() -> None:
    floor = Floor()
    login(floor, "a1")
    [(call_id, joined)] = floor(acd.CallQueued(QueueEntry("c1", "q", T0, priority=3)))
    assert call_id == "c1" and joined.type == "queue.caller_joined" and joined.topic is Topic.QUEUES
    assert joined.queues == ("q",) and joined.call_id == "c1"
    assert (joined.data["position"], joined.data["priority"], joined.data["waiting"]) == (1, 3, 1)
    [reserved] = floor.agent_events
    assert (reserved.data["old_state"], reserved.data["new_state"]) == ("available", "reserved")
    assert reserved.call_id == "c1" and reserved.data["queue"] == "q"
    assert reserved.agents == ("a1",) and reserved.queues == ("q", "vip")

    offer_id = next(iter(floor.state.offers))
    [(_, left)] = floor(acd.OfferAnswered(offer_id, "a1"), after_s=4)
    assert left.type == "queue.caller_left" and left.agents == ("a1",)
    assert (left.data["reason"], left.data["agent_id"], left.data["waited_s"], left.data["waiting"]) == (
        "answered", "a1", 4.0, 0)
    [on_call] = floor.agent_events
    assert (on_call.data["old_state"], on_call.data["new_state"]) == ("reserved", "on_call")
    assert on_call.call_id == "c1"

    assert floor(acd.CallEnded("c1", "a1", 30), after_s=30) == []
    [available] = floor.agent_events  # no wrap-up in this queue
    assert (available.data["old_state"], available.data["new_state"]) == ("on_call", "available")


def test_wrap_up_names_the_call_and_its_length() -> None:
    floor = Floor(wrap_up_s=15)
    login(floor, "a1")
    floor(acd.CallQueued(QueueEntry("c1", "q", T0)))
    floor(acd.OfferAnswered(next(iter(floor.state.offers)), "a1"))
    floor(acd.CallEnded("c1", "a1", 30))
    [wrap_up] = floor.agent_events
    assert wrap_up.data["new_state"] == "wrap_up" and wrap_up.data["wrap_up_s"] == 15
    assert wrap_up.call_id == "c1" and wrap_up.data["reason"] == "call ended"


def test_one_entry_moving_an_agent_twice_chains_its_states() -> None:
    floor = Floor()
    login(floor, "a1")
    floor(acd.AgentPaused("a1", "lunch"))
    floor(acd.AgentCallStarted("a1", "dialed-out"))  # paused, but now on a call of its own
    floor(acd.AgentUnpaused("a1"))
    assert [(x.data["old_state"], x.data["new_state"]) for x in floor.agent_events] == [
        ("paused", "available"), ("available", "on_call")]


def test_abandoned_overflowed_and_refused_callers() -> None:
    floor = Floor(max_length=1, max_wait_s=10, overflow=QueueDestination(DestinationKind.VOICEMAIL, "box"))
    login(floor, "a1")
    floor(acd.AgentPaused("a1", "break"))
    floor(acd.CallQueued(QueueEntry("c1", "q", T0)))
    [(_, refused)] = floor(acd.CallQueued(QueueEntry("c2", "q", T0)))
    assert refused.type == "queue.caller_overflowed" and refused.data["reason"] == "max_length"
    assert refused.data["destination"] == {"kind": "voicemail", "target": "box"}
    assert "waited_s" not in refused.data
    [(_, overflowed)] = floor(acd.Tick(), after_s=11)
    assert (overflowed.type, overflowed.data["reason"], overflowed.data["waited_s"]) == (
        "queue.caller_overflowed", "max_wait", 11.0)
    floor(acd.CallQueued(QueueEntry("c3", "q", floor.now)))
    [(call_id, abandoned)] = floor(acd.CallAbandoned("c3"), after_s=2)
    assert (call_id, abandoned.type, abandoned.data["waited_s"]) == ("c3", "queue.caller_abandoned", 2.0)


def test_a_callback_leaves_as_one_call_and_joins_as_another() -> None:
    floor = Floor()
    login(floor, "a1")
    floor(acd.AgentPaused("a1", "break"))
    floor(acd.CallQueued(QueueEntry("c1", "q", T0)))
    told = {t.type: (call_id, t) for call_id, t in floor(acd.CallbackRequested("c1", "cb1"))}
    assert told["queue.caller_left"][0] == "c1" and told["queue.caller_left"][1].data["reason"] == "callback"
    assert told["queue.caller_joined"][0] == "cb1" and told["queue.caller_joined"][1].data["callback"] is True


def test_queue_stats_event() -> None:
    told = acd_feed.queue_stats({"queue": "q", "waiting": 2})
    assert (told.type, told.topic, told.queues) == ("queue.stats", Topic.QUEUES, ("q",))
    assert told.data["waiting"] == 2


FLOW = parse_flow({"start": "menu", "nodes": {
    "menu": {"type": "menu", "options": {"1": "account"}},
    "account": {"type": "collect", "variable": "account", "next": "crm"},
    "crm": {"type": "lookup", "url": "http://crm.internal/c", "fields": {"customer": "name"}, "next": "q"},
    "q": {"type": "queue", "queue": "q"},
}})


def test_the_screen_pop_carries_caller_ivr_path_digits_lookup_queue_and_lead() -> None:
    call = Call("c1", Direction.INBOUND, T0, caller_number="5551234", caller_name="Erin", dialed="7600")
    call.route_name, call.flow_name, call.flow_version = "support", "ivr", 3
    driver = IvrDriver("ivr", 3, FLOW, {})
    driver.begin("leg", {"caller_number": "5551234"}, T0)
    for event in (e.DtmfReceived("leg", T0, "1", 100), e.DtmfReceived("leg", T0, "4", 100),
                  e.DtmfReceived("leg", T0, "2", 100), e.DtmfReceived("leg", T0, "#", 100)):
        for command in driver.on_event(event, T0):
            if type(command).__name__ == "CallDataChanged":
                call.data.update(command.data)
    lookup = driver.state.lookup_id
    for command in driver.on_event(e.LookupFinished(lookup, "leg", T0, True, {"name": "ACME"}), T0):
        if type(command).__name__ == "CallDataChanged":
            call.data.update(command.data)
    call.data.update({"queue": "q", "campaign": "spring", "lead": json.dumps({"first": "Erin", "score": 7}),
                      "lead_city": "Lyon"})

    pop = call_feed.screen_pop(call, driver, agent_id="a1", offer_id="offer-9", queue="q", waited_s=12.3456,
                               ring_timeout_s=20)
    assert pop["caller"] == {"number": "5551234", "name": "Erin"} and pop["dialed"] == "7600"
    assert pop["ivr"] == {"flow": "ivr", "version": 3, "path": ["menu", "account", "crm", "q"],
                          "digits": {"account": "42"}, "lookup": {"customer": "ACME"}, "outcome": "queued"}
    assert (pop["queue"], pop["waited_s"]) == ("q", 12.346)
    assert (pop["route"], pop["campaign"]) == ("support", "spring")
    assert pop["lead"] == {"first": "Erin", "score": "7", "city": "Lyon"}
    assert pop["data"]["customer"] == "ACME"
    told = call_feed.call_event("call.offered", call, ("a1",), pop)
    assert (told.topic, told.agents, told.queues, told.call_id) == (Topic.CALLS, ("a1",), ("q",), "c1")


def test_a_call_without_flow_or_lead_has_none() -> None:
    call = Call("c2", Direction.OUTBOUND, T0, caller_number="a1", dialed="5550100")
    pop = call_feed.screen_pop(call, None, agent_id="a1", offer_id="o", queue=None, waited_s=None,
                               ring_timeout_s=20)
    assert pop["ivr"] is None and pop["lead"] is None and pop["campaign"] is None
    assert call_feed.lead_fields({"lead": "not json"}) == {"lead": "not json"}


def test_call_ended_durations() -> None:
    call = Call("c3", Direction.INBOUND, T0, caller_number="5551234", dialed="7600")
    call.answered_at = T0 + timedelta(seconds=1)
    call.ended_at = T0 + timedelta(seconds=61)
    call.hangup_cause, call.hangup_cause_text = 16, "Normal Clearing"
    call.data.update({"agent_id": "a1", "queue": "q"})
    told = call_feed.ended(call, queued_at=T0 + timedelta(seconds=5), connected_at=T0 + timedelta(seconds=21))
    assert (told["duration_s"], told["answered_s"]) == (61.0, 60.0)
    assert (told["queue_wait_s"], told["talk_s"]) == (16.0, 40.0)
    assert (told["cause"], told["cause_text"], told["agent_id"]) == (16, "Normal Clearing", "a1")
    abandoned = call_feed.ended(call, queued_at=T0 + timedelta(seconds=5), connected_at=None)
    assert (abandoned["queue_wait_s"], abandoned["talk_s"]) == (56.0, None)
