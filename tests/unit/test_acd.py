"""The ACD engine (pure): strategies, priorities, offers, misses, wrap-up, overflow, rules, and
properties over random event sequences."""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.domain.agents import (
    Agent,
    AgentState,
    DestinationKind,
    QueueConfig,
    QueueDestination,
    QueueEntry,
    QueueRule,
    Strategy,
)
from controller.engines import acd
from controller.engines.acd import (
    AcdCommand,
    AcdState,
    AgentCallStarted,
    AgentDeviceState,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
    AnnounceWait,
    BusyCall,
    CallAbandoned,
    CallbackRequested,
    CallEnded,
    CallerMoved,
    CallQueued,
    CancelOffer,
    ConnectCall,
    ConnectFailed,
    FailReason,
    MoveProblem,
    MoveRequested,
    OfferAnswered,
    OfferCall,
    OfferFailed,
    Overflow,
    OverflowReason,
    PauseAgent,
    Tick,
    WrapUpEnded,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
S = AgentState


def counter_ids() -> Callable[[str], str]:
    n = itertools.count(1)
    return lambda prefix: f"{prefix}-{next(n)}"


class Harness:
    """Feeds events to the engine, keeping the state and the clock."""

    def __init__(self, state: AcdState, rng: random.Random | None = None) -> None:
        self.state = state
        self.now = T0
        self.ids = counter_ids()
        self.rng = rng

    def __call__(self, event: acd.AcdEvent, *, after_s: float = 0) -> list[AcdCommand]:
        self.now += timedelta(seconds=after_s)
        decision = acd.on_event(self.state, event, self.now, self.ids, rng=self.rng)
        self.state = decision.state
        return list(decision.commands)

    def queue(self, call_id: str, queue: str = "q", priority: int = 0, **skills: int) -> list[AcdCommand]:
        return self(CallQueued(QueueEntry(call_id, queue, self.now, priority, skills)))

    def agent(self, agent_id: str) -> Agent:
        return self.state.agents[agent_id]


def offers(commands: list[AcdCommand]) -> list[OfferCall]:
    return [cmd for cmd in commands if isinstance(cmd, OfferCall)]


def bare(commands: list[AcdCommand]) -> list[AcdCommand]:
    """The commands with ``ConnectCall.entry`` left out (it is checked where it matters)."""
    return [replace(cmd, entry=None) if isinstance(cmd, ConnectCall) else cmd for cmd in commands]


def the_offer(commands: list[AcdCommand]) -> OfferCall:
    [offer] = offers(commands)
    return offer


def make(
    strategy: Strategy = Strategy.LINEAR,
    agents: dict[str, dict[str, int]] | None = None,
    penalties: dict[str, int] | None = None,
    logged_in: bool = True,
    **queue_kw: object,
) -> AcdState:
    agents = agents if agents is not None else {"a1": {}, "a2": {}, "a3": {}}
    penalties = penalties or {}
    state = AcdState(
        agents={
            agent_id: Agent(agent_id, agent_id.upper(), f"PJSIP/{agent_id}", dict(skills),
                            state=S.AVAILABLE if logged_in else S.LOGGED_OUT)
            for agent_id, skills in agents.items()
        },
    )
    members = tuple((agent_id, penalties.get(agent_id, 0)) for agent_id in agents)
    state.queues["q"] = QueueConfig("q", strategy, members, **queue_kw)  # type: ignore[arg-type]
    return state


# --- every strategy's offer order on one fixed scenario ------------------------------------

# (last call ended minutes ago or None, calls today, talk seconds today, sales level)
SCENARIO = {
    "a1": (5, 3, 300, 3),
    "a2": (30, 1, 700, 4),
    "a3": (None, 4, 900, 8),
    "a4": (60, 2, 100, 6),
}


def scenario(strategy: Strategy) -> AcdState:
    state = make(strategy, {a: {"sales": row[3]} for a, row in SCENARIO.items()}, max_misses_before_pause=0)
    for agent_id, (ago, calls, talk, _) in SCENARIO.items():
        agent = state.agents[agent_id]
        agent.last_call_ended_at = None if ago is None else T0 - timedelta(minutes=ago)
        agent.calls_taken, agent.talk_seconds = calls, talk
    return state


def offer_order(h: Harness, n: int = 5) -> list[str]:
    """Queue one call and let each offer go unanswered; the agents offered, in order."""
    order: list[str] = []
    commands = h.queue("c1", sales=1)
    for _ in range(n):
        offer = the_offer(commands)
        order.extend(offer.agent_ids)
        commands = h(OfferFailed(offer.offer_id, FailReason.NO_ANSWER), after_s=20)
    return order


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.LINEAR, ["a1", "a2", "a3", "a4", "a1"]),
        (Strategy.LONGEST_IDLE, ["a3", "a4", "a2", "a1", "a3"]),
        (Strategy.FEWEST_CALLS, ["a2", "a4", "a1", "a3", "a2"]),
        (Strategy.LEAST_TALK_TIME, ["a4", "a1", "a2", "a3", "a4"]),
        (Strategy.SKILLS_BASED, ["a3", "a4", "a2", "a1", "a3"]),
        (Strategy.ROUND_ROBIN, ["a1", "a2", "a3", "a4", "a1"]),
    ],
)
def test_strategy_offer_order(strategy: Strategy, expected: list[str]) -> None:
    assert offer_order(Harness(scenario(strategy))) == expected


def test_round_robin_remembers_the_last_agent_across_calls() -> None:
    h = Harness(scenario(Strategy.ROUND_ROBIN))
    h.state.last_offered["q"] = "a2"
    first = the_offer(h.queue("c1"))
    assert first.agent_ids == ("a3",)
    h(OfferAnswered(first.offer_id))
    assert the_offer(h.queue("c2")).agent_ids == ("a4",)
    assert the_offer(h.queue("c3")).agent_ids == ("a1",)  # wraps round
    assert the_offer(h.queue("c4")).agent_ids == ("a2",)


def test_random_is_driven_by_the_injected_rng() -> None:
    runs = [offer_order(Harness(scenario(Strategy.RANDOM), random.Random(seed)), 4) for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert all(sorted(run) == ["a1", "a2", "a3", "a4"] for run in runs)  # each agent once a round
    picks = {the_offer(Harness(scenario(Strategy.RANDOM), random.Random(s)).queue("c")).agent_ids
             for s in range(40)}
    assert len(picks) == 4


def test_random_without_rng_is_deterministic() -> None:
    a = the_offer(Harness(scenario(Strategy.RANDOM)).queue("c9"))
    b = the_offer(Harness(scenario(Strategy.RANDOM)).queue("c9"))
    assert a == b


def test_skills_based_filters_and_breaks_ties_by_longest_idle() -> None:
    state = make(Strategy.SKILLS_BASED, {"a1": {"sales": 7}, "a2": {"sales": 7}, "a3": {"sales": 2}})
    state.agents["a1"].last_call_ended_at = T0 - timedelta(minutes=1)
    state.agents["a2"].last_call_ended_at = T0 - timedelta(minutes=9)
    h = Harness(state)
    assert the_offer(h.queue("c1", sales=5)).agent_ids == ("a2",)
    assert the_offer(h.queue("c2", sales=5)).agent_ids == ("a1",)
    assert offers(h.queue("c3", sales=5)) == []  # a3 is free but not skilled enough
    assert "c3" in h.state.waiting


def test_required_skills_filter_every_strategy() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {"fr": 3}}))
    assert the_offer(h.queue("c1", fr=2)).agent_ids == ("a2",)


# --- priorities and FIFO --------------------------------------------------------------------


def test_higher_priority_first_then_fifo() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}, "a3": {}, "a4": {}}, logged_in=False))
    h.state.agents["a1"].state = S.PAUSED  # staffed, so callers may join
    h.state.agents["a1"].paused_reason = "break"
    for call_id, priority in [("c1", 0), ("c2", 5), ("c3", 0), ("c4", 5)]:
        assert offers(h.queue(call_id, priority=priority)) == []
        h.now += timedelta(seconds=1)
    got = [the_offer(h(AgentLoggedIn(a))).call_id for a in ("a2", "a3", "a4")]
    got.append(the_offer(h(AgentUnpaused("a1"))).call_id)
    assert got == ["c2", "c4", "c1", "c3"]


def test_agent_reserved_before_the_offer_goes_out() -> None:
    h = Harness(make())
    commands = h.queue("c1")
    assert commands == [
        AgentStateChanged("a1", S.RESERVED, "offer offer-1"),
        OfferCall("offer-1", "c1", ("a1",), 20, "q"),
    ]
    assert h.agent("a1").state is S.RESERVED


# --- ring all -------------------------------------------------------------------------------


def test_ring_all_first_answer_wins() -> None:
    h = Harness(make(Strategy.RING_ALL))
    offer = the_offer(h.queue("c1"))
    assert offer.agent_ids == ("a1", "a2", "a3")
    assert all(a.state is S.RESERVED for a in h.state.agents.values())
    commands = h(OfferAnswered(offer.offer_id, "a2"), after_s=3)
    assert ConnectCall("c1", "a2", offer.offer_id) in bare(commands)
    assert CancelOffer(offer.offer_id, ("a1", "a3")) in commands
    assert [h.agent(a).state for a in ("a1", "a2", "a3")] == [S.AVAILABLE, S.ON_CALL, S.AVAILABLE]
    assert h(OfferAnswered(offer.offer_id, "a1")) == []  # too late: ignored
    assert the_offer(h.queue("c2")).agent_ids == ("a1", "a3")


def test_ring_all_one_busy_the_others_keep_ringing() -> None:
    h = Harness(make(Strategy.RING_ALL))
    offer = the_offer(h.queue("c1"))
    commands = h(OfferFailed(offer.offer_id, FailReason.BUSY, "a1"))
    assert offers(commands) == []  # a1 is free again, but c1 is still ringing a2 and a3
    assert h.state.offers[offer.offer_id].agent_ids == ("a2", "a3")
    assert h.agent("a1").state is S.AVAILABLE
    commands = h(OfferFailed(offer.offer_id, FailReason.NO_ANSWER), after_s=20)
    assert the_offer(commands).agent_ids == ("a1", "a2", "a3")  # a new round


def test_ring_all_respects_penalty_tiers() -> None:
    h = Harness(make(Strategy.RING_ALL, penalties={"a3": 1}))
    assert the_offer(h.queue("c1")).agent_ids == ("a1", "a2")
    assert the_offer(h.queue("c2")).agent_ids == ("a3",)


# --- misses, auto-pause, busy, unreachable --------------------------------------------------


def test_missed_offer_goes_to_the_next_agent_and_auto_pauses() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}, max_misses_before_pause=2))
    first = the_offer(h.queue("c1"))
    commands = h(OfferFailed(first.offer_id, FailReason.NO_ANSWER), after_s=20)
    assert AgentStateChanged("a1", S.AVAILABLE, "no answer") in commands
    assert h.agent("a1").missed_in_a_row == 1
    second = the_offer(commands)
    assert second.agent_ids == ("a2",)
    h(OfferAnswered(second.offer_id))
    third = the_offer(h.queue("c2"))
    assert third.agent_ids == ("a1",)
    commands = h(OfferFailed(third.offer_id, FailReason.NO_ANSWER), after_s=20)
    assert PauseAgent("a1", "no answer") in commands
    assert h.agent("a1").state is S.PAUSED and h.agent("a1").paused_reason == "no answer"
    assert offers(commands) == [] and "c2" in h.state.waiting
    commands = h(AgentUnpaused("a1"))
    assert h.agent("a1").missed_in_a_row == 0
    assert the_offer(commands).call_id == "c2"


def test_a_call_handled_resets_the_miss_count() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_misses_before_pause=2))
    offer = the_offer(h.queue("c1"))
    offer = the_offer(h(OfferFailed(offer.offer_id, FailReason.NO_ANSWER)))  # only a1: again
    h(OfferAnswered(offer.offer_id))
    # Forgiven once the call was really handled: an answer that never connects is a miss.
    assert h.agent("a1").missed_in_a_row == 1 and h.agent("a1").calls_taken == 1
    h(CallEnded("c1", "a1", 30))
    assert h.agent("a1").missed_in_a_row == 0


def test_a_phone_that_drops_every_answered_call_is_paused_after_the_misses_in_a_row() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_misses_before_pause=2))
    offer = the_offer(h.queue("c1"))
    [connect] = [cmd for cmd in h(OfferAnswered(offer.offer_id)) if isinstance(cmd, ConnectCall)]
    offer = the_offer(h(ConnectFailed("c1", "a1", connect.entry)))  # one miss: offered again
    [connect] = [cmd for cmd in h(OfferAnswered(offer.offer_id)) if isinstance(cmd, ConnectCall)]
    commands = h(ConnectFailed("c1", "a1", connect.entry))
    assert h.agent("a1").state is S.PAUSED and h.agent("a1").paused_reason == acd.NO_ANSWER
    assert PauseAgent("a1", acd.NO_ANSWER) in commands and offers(commands) == []
    assert acd.position_of(h.state, "c1") == 1


def test_unreachable_device_makes_the_agent_unavailable() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}))
    offer = the_offer(h.queue("c1"))
    commands = h(OfferFailed(offer.offer_id, FailReason.UNREACHABLE))
    assert h.agent("a1").state is S.UNAVAILABLE
    assert the_offer(commands).agent_ids == ("a2",)
    assert offers(h.queue("c2")) == []
    assert the_offer(h(AgentDeviceState("a1", True))).call_id == "c2"


def test_device_lost_while_ringing_withdraws_the_offer() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}))
    offer = the_offer(h.queue("c1"))
    commands = h(AgentDeviceState("a1", False))
    assert CancelOffer(offer.offer_id, ("a1",)) in commands
    assert the_offer(commands).agent_ids == ("a2",)


# --- wrap-up, pause during a call, logout ---------------------------------------------------


def test_wrap_up_delays_the_next_offer() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30))
    offer = the_offer(h.queue("c1"))
    h(OfferAnswered(offer.offer_id), after_s=5)
    commands = h(CallEnded("c1", "a1", 95), after_s=95)
    assert commands == [AgentStateChanged("a1", S.WRAP_UP, "call ended", 30)]
    a1 = h.agent("a1")
    assert a1.wrap_up_until == h.now + timedelta(seconds=30)
    assert a1.talk_seconds == 95 and a1.last_call_ended_at == h.now
    assert offers(h.queue("c2")) == []
    commands = h(WrapUpEnded("a1"), after_s=30)
    assert the_offer(commands).call_id == "c2"


def test_pause_asked_during_a_call_is_taken_when_it_ends() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}))
    h(OfferAnswered(the_offer(h.queue("c1")).offer_id))
    assert h(AgentPaused("a1", "lunch")) == []
    assert h(AgentLoggedOut("a1")) == []  # refused on a call
    h.queue("c2")
    commands = h(CallEnded("c1", "a1", 10))
    assert commands == [AgentStateChanged("a1", S.PAUSED, "lunch")]
    assert "c2" in h.state.waiting


def test_logout_while_ringing_moves_the_call_on() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}))
    offer = the_offer(h.queue("c1"))
    commands = h(AgentLoggedOut("a1"))
    assert CancelOffer(offer.offer_id, ("a1",)) in commands
    assert h.agent("a1").state is S.LOGGED_OUT
    assert the_offer(commands).agent_ids == ("a2",)


def test_abandon_while_ringing_frees_the_agent() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}))
    offer = the_offer(h.queue("c1"))
    commands = h(CallAbandoned("c1"))
    assert commands == [
        CancelOffer(offer.offer_id, ("a1",)),
        AgentStateChanged("a1", S.AVAILABLE, "caller left"),
    ]
    assert not h.state.waiting and not h.state.offers
    assert h(OfferAnswered(offer.offer_id)) == []


# --- overflow -------------------------------------------------------------------------------


def test_max_wait_overflows_on_tick() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_wait_s=60))
    h(OfferAnswered(the_offer(h.queue("c1")).offer_id))
    h.queue("c2")
    assert h(Tick(), after_s=59) == []
    assert h(Tick(), after_s=1) == [Overflow("c2", OverflowReason.MAX_WAIT, "q")]
    assert "c2" not in h.state.waiting


def test_max_wait_withdraws_a_ringing_offer() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_wait_s=10))
    offer = the_offer(h.queue("c1"))
    commands = h(Tick(), after_s=10)
    assert commands[0] == CancelOffer(offer.offer_id, ("a1",))
    assert Overflow("c1", OverflowReason.MAX_WAIT, "q") in commands
    assert h.agent("a1").state is S.AVAILABLE


def test_max_length_and_no_agents_overflow() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_length=1))
    h(AgentPaused("a1", "break"))
    assert h.queue("c1") == []
    assert h.queue("c2") == [Overflow("c2", OverflowReason.MAX_LENGTH, "q")]
    assert h.queue("c3", queue="nope") == [Overflow("c3", OverflowReason.NO_AGENTS, "nope")]
    h(AgentLoggedOut("a1"))
    assert h(Tick()) == [Overflow("c1", OverflowReason.NO_AGENTS, "q")]
    assert h.queue("c4") == [Overflow("c4", OverflowReason.NO_AGENTS, "q")]


def test_overflow_names_the_queue_destination() -> None:
    to_sales = QueueDestination(DestinationKind.QUEUE, "sales")
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_wait_s=5, max_length=1, overflow=to_sales))
    h(AgentPaused("a1", "break"))
    h.queue("c1")
    assert h.queue("c2") == [Overflow("c2", OverflowReason.MAX_LENGTH, "q", to_sales)]
    assert h(Tick(), after_s=5) == [Overflow("c1", OverflowReason.MAX_WAIT, "q", to_sales)]
    h(AgentLoggedOut("a1"))
    assert h.queue("c3") == [Overflow("c3", OverflowReason.NO_AGENTS, "q", to_sales)]


def test_join_when_empty_lets_callers_wait_for_an_agent_to_log_in() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, logged_in=False, join_when_empty=True,
                     leave_when_empty=False))
    assert h.queue("c1") == []
    assert h(Tick(), after_s=30) == []
    assert "c1" in h.state.waiting
    assert the_offer(h(AgentLoggedIn("a1"))).call_id == "c1"


def test_leave_when_empty_sends_waiting_callers_on_when_the_last_agent_goes() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, logged_in=False, join_when_empty=True))
    assert h.queue("c1") == []  # joins the empty queue...
    assert h(Tick()) == [Overflow("c1", OverflowReason.NO_AGENTS, "q")]  # ...and leaves it at once
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, leave_when_empty=False))
    h(AgentPaused("a1", "break"))
    h.queue("c2")
    h(AgentLoggedOut("a1"))
    assert h(Tick()) == [] and "c2" in h.state.waiting


# --- callbacks ------------------------------------------------------------------------------


def test_callback_keeps_the_place_and_dials_the_agent_first() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, max_wait_s=60))
    h(AgentPaused("a1", "break"))
    for call_id in ("c1", "c2", "c3"):
        h.queue(call_id)
        h.now += timedelta(seconds=1)
    assert h(CallbackRequested("c2", "cb2")) == []
    assert [e.call_id for e in h.state.ordered_waiting()] == ["c1", "cb2", "c3"]
    assert h.state.waiting["cb2"].callback and acd.position_of(h.state, "cb2") == 2
    # Max wait sends the callers on, but not the callback: nobody is on its line.
    overflowed = [cmd.call_id for cmd in h(Tick(), after_s=60) if isinstance(cmd, Overflow)]
    assert overflowed == ["c1", "c3"]
    offer = the_offer(h(AgentUnpaused("a1")))
    assert offer.call_id == "cb2"
    assert bare(h(OfferAnswered(offer.offer_id))) == [AgentStateChanged("a1", S.ON_CALL, "answered cb2"),
                                                ConnectCall("cb2", "a1", offer.offer_id)]


def test_callback_while_ringing_withdraws_the_offer_and_makes_it_again() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}))
    first = the_offer(h.queue("c1"))
    commands = h(CallbackRequested("c1", "cb1"))
    assert commands[:2] == [CancelOffer(first.offer_id, ("a1",)),
                            AgentStateChanged("a1", S.AVAILABLE, "caller asked for a callback")]
    again = the_offer(commands)
    assert again.call_id == "cb1" and again.agent_ids == ("a1",)
    assert h.agent("a1").missed_in_a_row == 0
    assert h(CallbackRequested("c1", "cb9")) == [] and h(CallbackRequested("cb1", "cb9")) == []


# --- announcements --------------------------------------------------------------------------


def test_announcements_tell_position_and_wait_every_n_seconds() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}, announce_every_s=30, wrap_up_s=20))
    # Two calls handled: 100 s and 40 s of talk, plus 20 s wrap-up each: 90 s on average.
    for call_id, talk in (("h1", 100), ("h2", 40)):
        offer = the_offer(h.queue(call_id))
        h(OfferAnswered(offer.offer_id))
        h(CallEnded(call_id, offer.agent_ids[0], talk))
        h(WrapUpEnded(offer.agent_ids[0]))
    assert h.state.handle_times["q"] == (120.0, 60.0)
    for agent_id in ("a1", "a2"):
        h(OfferAnswered(the_offer(h.queue(f"busy-{agent_id}")).offer_id))
    h.queue("c1")
    h.queue("c2", priority=1)  # jumps ahead of c1
    assert h(Tick(), after_s=29) == []
    assert h(Tick(), after_s=1) == [AnnounceWait("c2", "q", 1, 45), AnnounceWait("c1", "q", 2, 90)]
    assert h(Tick(), after_s=29) == []
    assert len(h(Tick(), after_s=1)) == 2


def test_no_announcement_while_an_offer_rings_or_when_off() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, announce_every_s=10))
    h.queue("c1")  # rings a1
    assert h(Tick(), after_s=10) == []
    h = Harness(make(Strategy.LINEAR, {"a1": {}}))
    h(AgentPaused("a1", "break"))
    h.queue("c1")
    assert h(Tick(), after_s=1000) == []


# --- penalty tiers and rules ----------------------------------------------------------------


def test_higher_penalty_only_when_no_lower_tier_agent_is_free() -> None:
    # a2 comes first in member order but has the higher penalty.
    state = make(Strategy.LINEAR, {"a2": {}, "a1": {}}, penalties={"a2": 1})
    h = Harness(state)
    first = the_offer(h.queue("c1"))
    assert first.agent_ids == ("a1",)
    assert the_offer(h.queue("c2")).agent_ids == ("a2",)


def test_rules_widen_penalty_with_wait() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}, penalties={"a2": 1}, max_penalty=0,
                     rules=(QueueRule(30, max_penalty=1),)))
    h(OfferAnswered(the_offer(h.queue("c1")).offer_id))
    assert offers(h.queue("c2")) == []
    assert offers(h(Tick(), after_s=29)) == []
    assert the_offer(h(Tick(), after_s=1)).agent_ids == ("a2",)


def test_rules_lower_the_skill_level_with_wait() -> None:
    h = Harness(make(Strategy.SKILLS_BASED, {"a1": {"sales": 5}}, rules=(QueueRule(20, min_skill_level=5),)))
    assert offers(h.queue("c1", sales=8)) == []
    assert the_offer(h(Tick(), after_s=20)).agent_ids == ("a1",)


# --- purity ---------------------------------------------------------------------------------


def test_the_input_state_is_not_changed() -> None:
    state = make(Strategy.RING_ALL)
    before = copy.deepcopy(state)
    decision = acd.on_event(state, CallQueued(QueueEntry("c1", "q", T0)), T0, counter_ids())
    assert state == before
    assert decision.state != before


def test_unknown_ids_are_ignored() -> None:
    h = Harness(make())
    for event in [OfferAnswered("x"), OfferFailed("x", FailReason.BUSY), CallEnded("x", "a1", 3),
                  CallAbandoned("x"), AgentLoggedIn("zz"), AgentPaused("zz", "r"), WrapUpEnded("a1"),
                  AgentDeviceState("zz", False), CallEnded("x", "zz", 1)]:
        assert h(event) == []


# --- calls the ACD did not route (click-to-dial, transfers, conferences) -------------------


def test_agent_dialing_out_is_on_call_and_not_offered() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}, wrap_up_s=30))
    assert h(AgentCallStarted("a1", "d1")) == [AgentStateChanged("a1", S.ON_CALL, "on call d1")]
    assert the_offer(h.queue("c1")).agent_ids == ("a2",)
    assert offers(h.queue("c2")) == []
    assert h(AgentLoggedOut("a1")) == []  # refused on a call, as for a routed one
    # No queue named: no wrap-up, straight back to work (and the waiting caller rings it).
    commands = h(CallEnded("d1", "a1", 40), after_s=40)
    assert commands[0] == AgentStateChanged("a1", S.AVAILABLE, "call ended")
    assert the_offer(commands) == OfferCall("offer-2", "c2", ("a1",), 20, "q")
    assert h.agent("a1").talk_seconds == 40 and "" not in h.state.handle_times


def test_agent_call_with_a_queue_gets_that_queues_wrap_up() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30))
    h(AgentCallStarted("a1", "t1", "q"))
    assert h(CallEnded("t1", "a1", 5)) == [AgentStateChanged("a1", S.WRAP_UP, "call ended", 30)]


def test_agent_brought_into_a_call_while_ringing_withdraws_the_offer() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}, "a2": {}}))
    offer = the_offer(h.queue("c1"))
    assert offer.agent_ids == ("a1",)
    commands = h(AgentCallStarted("a1", "t1"))
    assert commands[:2] == [CancelOffer(offer.offer_id, ("a1",)),
                            AgentStateChanged("a1", S.ON_CALL, "on call t1")]
    assert the_offer(commands).agent_ids == ("a2",)
    assert h.agent("a1").missed_in_a_row == 0 and "c1" not in h.state.tried
    assert h(OfferAnswered(offer.offer_id, "a1")) == []  # the stale answer changes nothing


def test_paused_or_wrapping_up_agent_on_a_call_stays_so_and_is_busy_after() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30))
    h(AgentPaused("a1", "lunch"))
    assert h(AgentCallStarted("a1", "d1")) == []
    assert h.agent("a1").state is S.PAUSED and h.state.talking["a1"] == (BusyCall("d1"),)
    h.queue("c1")
    # Unpaused during its own call: on the call, not available; the caller waits.
    assert h(AgentUnpaused("a1")) == [AgentStateChanged("a1", S.AVAILABLE, "unpaused"),
                                      AgentStateChanged("a1", S.ON_CALL, "on call d1")]
    assert not h.state.offers
    commands = h(CallEnded("d1", "a1", 10))
    assert the_offer(commands).call_id == "c1"


def test_an_agent_on_two_calls_is_free_only_when_the_last_ends() -> None:
    # A queue call, then a click-to-dial of the same agent while the queue call is still up.
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30))
    offer = the_offer(h.queue("c1"))
    h(OfferAnswered(offer.offer_id, "a1"))
    assert h(AgentCallStarted("a1", "d1")) == []
    assert h.state.talking["a1"] == (BusyCall("c1", "q"), BusyCall("d1"))
    h.queue("c2")
    # The queue call ends first: the agent is still on the click-to-dial, so nobody rings it.
    assert h(CallEnded("c1", "a1", 20), after_s=20) == []
    assert h.agent("a1").state is S.ON_CALL and h.state.talking["a1"] == (BusyCall("d1"),)
    assert h.agent("a1").last_call_ended_at is None and h.agent("a1").talk_seconds == 20
    assert h(AgentLoggedOut("a1")) == []  # still refused
    # The last call ends: the wrap-up owed by the queue call follows, then the waiting caller.
    assert h(CallEnded("d1", "a1", 5), after_s=5) == [AgentStateChanged("a1", S.WRAP_UP, "call ended", 30)]
    assert "a1" not in h.state.talking and not h.state.pending_wrap_up
    assert h.agent("a1").last_call_ended_at == h.now and h.agent("a1").talk_seconds == 25
    assert the_offer(h(WrapUpEnded("a1"))).call_id == "c2"


def test_calls_of_an_agent_may_end_in_any_order() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}))
    assert h(AgentCallStarted("a1", "d1")) == [AgentStateChanged("a1", S.ON_CALL, "on call d1")]
    assert h(AgentCallStarted("a1", "t1")) == []  # e.g. consulted by a colleague meanwhile
    assert h(CallEnded("t1", "a1", 3)) == []
    assert h.agent("a1").state is S.ON_CALL
    assert h(CallEnded("d1", "a1", 9)) == [AgentStateChanged("a1", S.AVAILABLE, "call ended")]


def test_the_same_call_said_twice_counts_once() -> None:
    # A call adopted after a restart tells the ACD again who is on it.
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30))
    offer = the_offer(h.queue("c1"))
    h(OfferAnswered(offer.offer_id, "a1"))
    assert h(AgentCallStarted("a1", "c1", "q")) == []
    assert h.state.talking["a1"] == (BusyCall("c1", "q"),)
    assert h(CallEnded("c1", "a1", 10)) == [AgentStateChanged("a1", S.WRAP_UP, "call ended", 30)]
    assert h(CallEnded("c1", "a1", 10)) == []  # a repeat after the end changes nothing


def test_after_overlapping_calls_the_longest_wrap_up_owed_follows() -> None:
    state = make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30)
    state.queues["long"] = QueueConfig("long", Strategy.LINEAR, (("a1", 0),), wrap_up_s=90)
    h = Harness(state)
    h(AgentCallStarted("a1", "t1", "long"))
    h(AgentCallStarted("a1", "t2", "q"))
    h(AgentCallStarted("a1", "d1"))
    assert h(CallEnded("t1", "a1", 1)) == [] and h.state.pending_wrap_up == {"a1": "long"}
    assert h(CallEnded("t2", "a1", 1)) == [] and h.state.pending_wrap_up == {"a1": "long"}
    assert h(CallEnded("d1", "a1", 1)) == [AgentStateChanged("a1", S.WRAP_UP, "call ended", 90)]
    # Each call counts in its own queue's handle times (talk + that queue's wrap-up).
    assert h.state.handle_times == {"long": (91.0,), "q": (31.0,)}


def test_a_paused_agent_on_two_calls_stays_paused_and_is_on_call_if_unpaused_between() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}, wrap_up_s=30))
    h(AgentPaused("a1", "lunch"))
    h(AgentCallStarted("a1", "d1"))
    h(AgentCallStarted("a1", "d2"))
    assert h(CallEnded("d1", "a1", 1)) == []
    assert h(AgentUnpaused("a1")) == [AgentStateChanged("a1", S.AVAILABLE, "unpaused"),
                                      AgentStateChanged("a1", S.ON_CALL, "on call d2")]
    assert h(CallEnded("d2", "a1", 1)) == [AgentStateChanged("a1", S.AVAILABLE, "call ended")]


def test_unknown_agents_on_calls_are_ignored() -> None:
    h = Harness(make(Strategy.LINEAR, {"a1": {}}))
    assert h(AgentCallStarted("nobody", "d3")) == []
    assert h(CallEnded("d3", "nobody", 1)) == []
    assert not h.state.talking


# --- moves: a supervisor sends a waiting caller to another queue or to one agent -------------


def two_queues(**r_kw: object) -> Harness:
    """q: a1 and a2; r: a3. a2 and a3 are free, a1 is paused."""
    state = make(Strategy.LINEAR, {"a1": {}, "a2": {}, "a3": {}})
    state.queues["q"] = QueueConfig("q", Strategy.LINEAR, (("a1", 0), ("a2", 0)), max_wait_s=100)
    state.queues["r"] = QueueConfig("r", Strategy.LINEAR, (("a3", 0),), **r_kw)  # type: ignore[arg-type]
    h = Harness(state)
    h(AgentPaused("a1", "break"))
    return h


def moved(commands: list[AcdCommand]) -> list[CallerMoved]:
    return [cmd for cmd in commands if isinstance(cmd, CallerMoved)]


def test_moved_to_a_queue_the_caller_keeps_its_priority_and_its_wait_starts_again() -> None:
    h = two_queues()
    h(AgentPaused("a2", "break"))
    h(AgentPaused("a3", "break"))
    h.queue("r1", "r", priority=2)
    h.queue("r2", "r", priority=1, after_s=5)
    h.queue("c1", "q", priority=2, after_s=5)
    entered = h.state.waiting["c1"].entered_at
    commands = h(MoveRequested("c1", queue="r", move_id="m1"), after_s=30)
    assert commands == [CallerMoved("c1", "r", "q", entered)]
    entry = h.state.waiting["c1"]
    assert (entry.queue, entry.priority, entry.entered_at, entry.target_agent) == ("r", 2, h.now, None)
    # Behind the caller of its priority already there, ahead of lower priorities.
    assert [e.call_id for e in h.state.ordered_waiting()] == ["r1", "c1", "r2"]
    assert acd.position_of(h.state, "c1") == 2
    assert the_offer(h(AgentUnpaused("a3"))).call_id == "r1"


def test_a_moved_callers_max_wait_counts_from_the_move() -> None:
    h = two_queues(max_wait_s=50)
    h(AgentPaused("a2", "break"))
    h(AgentPaused("a3", "break"))
    h.queue("c1", "q")
    h(MoveRequested("c1", queue="r"), after_s=90)  # q's max wait is 100, r's 50
    assert h(Tick(), after_s=20) == []
    assert h(Tick(), after_s=30) == [Overflow("c1", OverflowReason.MAX_WAIT, "r")]


def test_moving_a_ringing_caller_withdraws_the_offer_without_a_miss_and_rings_the_new_queue() -> None:
    h = two_queues()
    first = the_offer(h.queue("c1", "q"))
    assert first.agent_ids == ("a2",)
    commands = h(MoveRequested("c1", queue="r"))
    assert commands[:3] == [CancelOffer(first.offer_id, ("a2",)),
                            AgentStateChanged("a2", S.AVAILABLE, "call moved"),
                            CallerMoved("c1", "r", "q", T0)]
    offer = the_offer(commands)
    assert (offer.call_id, offer.agent_ids, offer.queue) == ("c1", ("a3",), "r")
    assert h.agent("a2").missed_in_a_row == 0 and h.agent("a2").state is S.AVAILABLE


def test_moves_that_cannot_be_made_change_nothing() -> None:
    h = two_queues(leave_when_empty=True)
    h(AgentPaused("a2", "break"))
    h.queue("c1", "q")
    h(AgentLoggedOut("a3"))  # r has nobody logged in, and its callers leave it when empty
    before = copy.deepcopy(h.state)
    cases = {
        MoveRequested("gone", queue="r"): MoveProblem.NOT_WAITING,
        MoveRequested("c1", queue="nowhere"): MoveProblem.NO_QUEUE,
        MoveRequested("c1", queue="r"): MoveProblem.QUEUE_EMPTY,
        MoveRequested("c1", agent_id="nobody"): MoveProblem.NO_AGENT,
        MoveRequested("c1", agent_id="a3"): MoveProblem.AGENT_LOGGED_OUT,
        MoveRequested("c1", queue="r", agent_id="a2"): MoveProblem.INVALID,
        MoveRequested("c1"): MoveProblem.INVALID,
    }
    for move, problem in cases.items():
        refusal = acd.move_refusal(h.state, move)
        assert refusal is not None and refusal.problem is problem, move
        assert h(move) == [] and h.state == before
    refusal = acd.move_refusal(h.state, MoveRequested("c1", agent_id="a3"))
    assert refusal is not None and refusal.detail == "agent a3 is logged out"
    # A queue that lets callers wait while empty takes it.
    h.state.queues["r"] = replace(h.state.queues["r"], leave_when_empty=False)
    assert moved(h(MoveRequested("c1", queue="r"))) == [CallerMoved("c1", "r", "q", T0)]


def test_moved_to_a_busy_agent_the_caller_waits_for_it_and_nobody_else_gets_it() -> None:
    h = two_queues()
    h(AgentCallStarted("a3", "d1"))  # a3, not a member of q, is on a call
    h(AgentPaused("a2", "break"))
    h.queue("c1", "q")
    assert h(MoveRequested("c1", agent_id="a3")) == [CallerMoved("c1", "q", "q", T0, "a3")]
    assert h.state.waiting["c1"].target_agent == "a3"
    assert offers(h(AgentUnpaused("a2"))) == []  # a free member of q does not take it
    assert the_offer(h.queue("vip", "q", priority=9)).agent_ids == ("a2",)  # an untargeted one, yes
    h.queue("vip2", "r", priority=9)  # a3's own queue has a better caller waiting
    offer = the_offer(h(CallEnded("d1", "a3", 30)))
    assert (offer.call_id, offer.agent_ids, offer.queue) == ("c1", ("a3",), "q")  # first for a3
    assert bare(h(OfferAnswered(offer.offer_id)))[-1] == ConnectCall("c1", "a3", offer.offer_id)
    assert "c1" not in h.state.waiting


def test_a_target_that_misses_the_offer_sends_the_caller_back_to_its_queue() -> None:
    h = two_queues()
    h(AgentPaused("a2", "break"))
    h.queue("c1", "q")
    offer = the_offer(h(MoveRequested("c1", agent_id="a3")))
    assert offer.agent_ids == ("a3",)
    commands = h(OfferFailed(offer.offer_id, FailReason.NO_ANSWER))
    assert moved(commands) == [CallerMoved("c1", "q", "q", T0)]
    assert h.state.waiting["c1"].target_agent is None and offers(commands) == []
    assert the_offer(h(AgentUnpaused("a2"))).agent_ids == ("a2",)


def test_a_target_that_logs_out_sends_the_caller_back_and_an_empty_queue_keeps_it_meanwhile() -> None:
    state = make(Strategy.LINEAR, {"a1": {}, "a2": {}}, leave_when_empty=True)
    state.queues["q"] = QueueConfig("q", Strategy.LINEAR, (("a1", 0),), leave_when_empty=True,
                                    overflow=QueueDestination(DestinationKind.VOICEMAIL, "m"))
    h = Harness(state)
    h(AgentPaused("a1", "break"))
    h(AgentCallStarted("a2", "d1"))
    h.queue("c1")
    h(MoveRequested("c1", agent_id="a2"))
    h(AgentLoggedOut("a1"))  # q is empty now, but c1's agent is logged in
    assert h(Tick(), after_s=5) == [] and h.state.waiting["c1"].target_agent == "a2"
    offer = the_offer(h(CallEnded("d1", "a2", 1)))  # free again: c1 rings a2 at once
    assert (offer.call_id, offer.agent_ids) == ("c1", ("a2",))
    commands = h(AgentLoggedOut("a2"))  # withdrawn while ringing: target dropped, queue empty
    assert commands[0] == CancelOffer(offer.offer_id, ("a2",))
    assert moved(commands) == [CallerMoved("c1", "q", "q", T0)]
    assert h.state.waiting["c1"].target_agent is None
    assert h(Tick()) == [Overflow("c1", OverflowReason.NO_AGENTS, "q",
                                  QueueDestination(DestinationKind.VOICEMAIL, "m"))]


def test_a_move_to_the_agent_already_ringing_keeps_the_offer_and_back_to_the_queue_clears_it() -> None:
    h = two_queues()
    offer = the_offer(h.queue("c1", "q"))
    assert h(MoveRequested("c1", agent_id="a2")) == [CallerMoved("c1", "q", "q", T0, "a2")]
    assert h.state.offers[offer.offer_id].agent_ids == ("a2",)
    place = h.state.waiting["c1"].rank()
    assert h(MoveRequested("c1", queue="q")) == [CallerMoved("c1", "q", "q", T0)]
    assert h.state.waiting["c1"].rank() == place and h.state.waiting["c1"].target_agent is None
    assert offer.offer_id in h.state.offers


# --- properties over random event sequences -------------------------------------------------

AGENTS = ("a1", "a2", "a3", "a4")
KINDS = ("queue", "queue", "queue", "abandon", "login", "logout", "pause", "unpause", "answer",
         "answer", "fail", "fail", "end", "end", "wrapup", "device", "tick", "tick", "callback",
         "dialout", "dialout", "move", "move")


def random_state(strategy: Strategy) -> AcdState:
    state = AcdState(agents={
        "a1": Agent("a1", "A1", "PJSIP/a1", {"sales": 5}, state=S.AVAILABLE),
        "a2": Agent("a2", "A2", "PJSIP/a2", {"sales": 9, "fr": 3}, state=S.AVAILABLE),
        "a3": Agent("a3", "A3", "PJSIP/a3", {"fr": 8}),
        "a4": Agent("a4", "A4", "PJSIP/a4", {}),
    })
    state.queues["q"] = QueueConfig("q", strategy, (("a1", 0), ("a2", 1), ("a3", 0), ("a4", 2)),
                                    wrap_up_s=10, max_misses_before_pause=2, max_wait_s=300,
                                    max_penalty=1, rules=(QueueRule(60, max_penalty=2, min_skill_level=4),),
                                    announce_every_s=30,
                                    overflow=QueueDestination(DestinationKind.QUEUE, "r"))
    state.queues["r"] = QueueConfig("r", Strategy.RING_ALL, (("a2", 0), ("a3", 0), ("a4", 0)), max_length=3,
                                    join_when_empty=True, leave_when_empty=False, announce_every_s=45)
    return state


def to_event(state: AcdState, op: tuple[str, int, int], n: int, now: datetime) -> acd.AcdEvent:
    kind, i, j = op
    agent_id = AGENTS[i % len(AGENTS)]
    offers_ = sorted(state.offers.values(), key=lambda o: o.offer_id)
    offer = offers_[i % len(offers_)] if offers_ else None
    match kind:
        case "queue":
            skills = [{}, {}, {"sales": 6}, {"fr": 5}, {"sales": 3, "fr": 2}][j % 5]
            return CallQueued(QueueEntry(f"c{n}", "qr"[i % 2], now, priority=j % 3, skills=skills))
        case "abandon":
            waiting = sorted(state.waiting)
            return CallAbandoned(waiting[i % len(waiting)] if waiting else "gone")
        case "login":
            return AgentLoggedIn(agent_id)
        case "logout":
            return AgentLoggedOut(agent_id)
        case "pause":
            return AgentPaused(agent_id, "break")
        case "unpause":
            return AgentUnpaused(agent_id)
        case "answer" if offer is not None:
            who = offer.agent_ids[j % len(offer.agent_ids)] if j % 4 else None
            return OfferAnswered(offer.offer_id, who)
        case "fail" if offer is not None:
            who = offer.agent_ids[j % len(offer.agent_ids)] if j % 3 else None
            return OfferFailed(offer.offer_id, list(FailReason)[j % 3], who)
        case "end" if state.talking:
            agent_id = sorted(state.talking)[i % len(state.talking)]
            calls = state.talking[agent_id]
            return CallEnded(calls[j % len(calls)].call_id, agent_id, j)
        case "wrapup":
            return WrapUpEnded(agent_id)
        case "device":
            return AgentDeviceState(agent_id, reachable=bool(j % 2))
        case "dialout":
            return AgentCallStarted(agent_id, f"d{n}", "q" if j % 2 else "")
        case "callback" if state.waiting:
            waiting = sorted(state.waiting)
            return CallbackRequested(waiting[i % len(waiting)], f"cb{n}")
        case "move":
            waiting = sorted(state.waiting)
            call_id = waiting[i % len(waiting)] if waiting and j % 6 else "gone"
            if j % 2:
                return MoveRequested(call_id, queue="qrx"[j % 3])
            return MoveRequested(call_id, agent_id=(*AGENTS, "nobody")[j % 5])
    return Tick()


def eligible(state: AcdState, entry: QueueEntry, agent: Agent, now: datetime) -> bool:
    """The spec of eligibility, written again independently of the engine (state aside)."""
    if entry.target_agent is not None:  # moved to one agent: that agent only
        return agent.id == entry.target_agent
    queue = state.queues[entry.queue]
    penalty = dict(queue.members).get(agent.id)
    if penalty is None:
        return False
    waited = (now - entry.entered_at).total_seconds()
    max_penalty, cap = queue.max_penalty, None
    for rule in queue.rules:
        if waited >= rule.after_wait_s:
            max_penalty = rule.max_penalty if rule.max_penalty is not None else max_penalty
            cap = rule.min_skill_level if rule.min_skill_level is not None else cap
    if max_penalty is not None and penalty > max_penalty:
        return False
    return all(agent.skills.get(s, 0) >= (min(lvl, cap) if cap else lvl) for s, lvl in entry.skills.items())


def check_invariants(before: AcdState, decision: acd.AcdDecision, now: datetime) -> None:
    after = decision.state
    # Each offered agent was available, then reserved, before its OfferCall; every change is told.
    traced = {a.id: [a.state] for a in before.agents.values()}
    for cmd in decision.commands:
        if isinstance(cmd, AgentStateChanged):
            traced[cmd.agent_id].append(cmd.state)
        elif isinstance(cmd, OfferCall):
            for agent_id in cmd.agent_ids:
                assert traced[agent_id][-2:] == [S.AVAILABLE, S.RESERVED], (agent_id, traced[agent_id])
    assert {a: states[-1] for a, states in traced.items()} == {a.id: a.state for a in after.agents.values()}
    # An agent is in at most one offer, and reserved exactly when it is in one.
    in_offers = [a for offer in after.offers.values() for a in offer.agent_ids]
    assert len(in_offers) == len(set(in_offers))
    assert {a.id for a in after.agents.values() if a.state is S.RESERVED} == set(in_offers)
    assert all(offer.call_id in after.waiting for offer in after.offers.values())
    assert len({offer.call_id for offer in after.offers.values()}) == len(after.offers)
    # On a call means talking; a talking agent (also on a call the ACD did not route) is never free.
    assert {a for a, agent in after.agents.items() if agent.state is S.ON_CALL} <= set(after.talking)
    assert not [a for a in after.talking if after.agents[a].state in (S.AVAILABLE, S.RESERVED)]
    # Every call of an agent is counted once; a wrap-up is owed only while another call goes on.
    assert all(calls and len({b.call_id for b in calls}) == len(calls) for calls in after.talking.values())
    assert set(after.pending_wrap_up) <= set(after.talking)
    # No waiting caller is skipped while an eligible agent is free.
    offered = {offer.call_id for offer in after.offers.values()}
    free = [a for a in after.agents.values() if a.state is S.AVAILABLE]
    unserved = [e for e in after.waiting.values() if e.call_id not in offered]
    for entry in unserved:
        assert not [a.id for a in free if eligible(after, entry, a, now)], entry
    # Better-ranked entries first: an agent offered now could not have taken a better entry left
    # waiting (a caller moved to an agent comes before every caller not moved to one).
    for cmd in decision.commands:
        if isinstance(cmd, OfferCall):
            entry = after.waiting[cmd.call_id]
            for better in unserved:
                if entry.target_agent is not None and better.target_agent is None:
                    continue
                if better.rank() < entry.rank():
                    for agent_id in cmd.agent_ids:
                        assert not eligible(after, better, after.agents[agent_id], now), (better, cmd)
    # A callback entry is never overflowed from a known queue: nobody is on the line.
    for cmd in decision.commands:
        if isinstance(cmd, Overflow) and cmd.call_id in before.waiting:
            assert not before.waiting[cmd.call_id].callback or cmd.queue not in after.queues, cmd
    # Announcements go to waiting callers (not callbacks) without a ringing offer, with their place.
    for cmd in decision.commands:
        if isinstance(cmd, AnnounceWait):
            entry = after.waiting[cmd.call_id]
            assert not entry.callback and cmd.call_id not in offered and entry.announced_at == now
            assert cmd.position == 1 + sum(1 for e in after.waiting.values()
                                           if e.queue == entry.queue and e.rank() < entry.rank())
    # A caller moved to an agent rings that agent only; every move is told where the caller is.
    for offer in after.offers.values():
        target = after.waiting[offer.call_id].target_agent
        assert target is None or offer.agent_ids == (target,), offer
    told = {cmd.call_id: cmd for cmd in decision.commands if isinstance(cmd, CallerMoved)}
    for call_id, cmd in told.items():
        entry = after.waiting[call_id]
        assert (entry.queue, entry.target_agent or "") == (cmd.queue, cmd.agent_id), (entry, cmd)
    # Ranks are kept by callbacks: the waiting entries' (priority, entered_at, sequence) are unique.
    ranks = [e.rank() for e in after.waiting.values()]
    assert len(ranks) == len(set(ranks))


OPS = st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.integers(0, 11))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(list(Strategy)),
    ops=st.lists(st.tuples(OPS, st.integers(0, 40)), max_size=50),
    seed=st.integers(0, 3),
)
def test_invariants_hold_on_any_event_sequence(
    strategy: Strategy, ops: list[tuple[tuple[str, int, int], int]], seed: int
) -> None:
    state = random_state(strategy)
    ids = counter_ids()
    rng = random.Random(seed)
    now = T0
    for n, (op, step_s) in enumerate(ops):
        now += timedelta(seconds=step_s)
        event = to_event(state, op, n, now)
        decision = acd.on_event(state, event, now, ids, rng=rng)
        check_invariants(state, decision, now)
        state = decision.state


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=12),
    strategy=st.sampled_from([s for s in Strategy if s is not Strategy.RING_ALL]),
)
def test_offers_follow_priority_then_fifo(calls: list[tuple[int, int]], strategy: Strategy) -> None:
    """Callers queue while nobody is free; agents then free up one by one and serve them in rank order."""
    h = Harness(make(strategy, {"a1": {}}, max_misses_before_pause=0))
    h(AgentPaused("a1", "break"))
    for n, (priority, gap) in enumerate(calls):
        h.queue(f"c{n}", priority=priority)
        h.now += timedelta(seconds=gap)
    expected = [e.call_id for e in sorted(h.state.waiting.values(), key=QueueEntry.rank)]
    served = []
    commands = h(AgentUnpaused("a1"))
    while offers(commands):
        offer = the_offer(commands)
        served.append(offer.call_id)
        h(OfferAnswered(offer.offer_id))
        commands = h(CallEnded(offer.call_id, "a1", 1))
    assert served == expected
    assert [p for p, _ in sorted(calls, key=lambda c: -c[0])] == [
        calls[int(c[1:])][0] for c in served
    ]


# --- an agent who hangs up between answering and being connected ---------------------------


def test_an_agent_gone_before_the_connection_puts_the_caller_back_in_its_place() -> None:
    h = Harness(make(Strategy.LINEAR, wrap_up_s=30))
    for agent_id in ("a1", "a2", "a3"):
        h(AgentPaused(agent_id, "meeting"))
    h.queue("c1")
    h.queue("c2", after_s=1)
    first = h.state.waiting["c1"]
    offer = the_offer(h(AgentUnpaused("a1"), after_s=1))
    assert offer.call_id == "c1"
    [connect] = [cmd for cmd in h(OfferAnswered(offer.offer_id)) if isinstance(cmd, ConnectCall)]
    assert connect.entry == first and "c1" not in h.state.waiting
    # a1 hung up before the bridge: c1 waits again ahead of c2, and a1 is free without wrap-up
    # (it handled nothing). a1 is the only agent, so c1 (not c2) rings it again.
    commands = h(ConnectFailed("c1", "a1", connect.entry), after_s=1)
    assert h.state.waiting["c1"] == first
    assert acd.position_of(h.state, "c1") == 1 and acd.position_of(h.state, "c2") == 2
    assert h.agent("a1").calls_taken == 0
    assert not any(isinstance(cmd, AgentStateChanged) and cmd.state is S.WRAP_UP for cmd in commands)
    again = the_offer(commands)
    assert (again.call_id, again.agent_ids) == ("c1", ("a1",))


def test_connect_failed_after_the_call_ended_changes_nothing() -> None:
    h = Harness(make(Strategy.LINEAR))
    offer = the_offer(h.queue("c1"))
    [connect] = [cmd for cmd in h(OfferAnswered(offer.offer_id)) if isinstance(cmd, ConnectCall)]
    h(CallEnded("c1", offer.agent_ids[0], 12))
    before = h.state
    assert h(ConnectFailed("c1", offer.agent_ids[0], connect.entry)) == []
    assert h.state.waiting == before.waiting == {}
