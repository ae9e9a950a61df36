"""The dialer engine: agents counted from the ACD's state, calls per mode, leg outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.domain.agents import Agent, AgentState, QueueConfig
from controller.domain.campaigns import CampaignMode, Outcome
from controller.domain.errors import InvalidRequest
from controller.engines import dialer, pacing
from controller.engines.acd import AcdState, BusyCall, Offer
from controller.engines.dialer import AgentsView, InFlight

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def agent(agent_id: str, state: AgentState, since_s: float = 0, wrap_until_s: float | None = None) -> Agent:
    return Agent(agent_id, agent_id, f"Local/{agent_id}@x", state=state,
                 state_since=NOW - timedelta(seconds=since_s),
                 wrap_up_until=NOW + timedelta(seconds=wrap_until_s) if wrap_until_s is not None else None)


def acd_state() -> AcdState:
    agents = [
        agent("free1", AgentState.AVAILABLE),
        agent("free2", AgentState.AVAILABLE),
        agent("talk-campaign", AgentState.ON_CALL, since_s=42),
        agent("talk-other", AgentState.ON_CALL, since_s=10),
        agent("ringing-campaign", AgentState.RESERVED),
        agent("ringing-other", AgentState.RESERVED),
        agent("wrapping", AgentState.WRAP_UP, wrap_until_s=7.5),
        agent("paused", AgentState.PAUSED),
        agent("gone", AgentState.LOGGED_OUT),
        agent("unreachable", AgentState.UNAVAILABLE),
        agent("not-a-member", AgentState.AVAILABLE),
    ]
    members = tuple((a.id, 0) for a in agents if a.id != "not-a-member") + (("unknown-agent", 0),)
    return AcdState(
        agents={a.id: a for a in agents},
        queues={"sales": QueueConfig(name="sales", members=members)},
        offers={"o1": Offer("o1", "camp-call-2", "sales", ("ringing-campaign",), NOW),
                "o2": Offer("o2", "inbound-call", "sales", ("ringing-other",), NOW)},
        talking={"talk-campaign": (BusyCall("camp-call-1", "sales"),),
                 "talk-other": (BusyCall("inbound-call-9", "sales"),)},
    )


def test_agents_view_counts_only_the_queues_agents_on_the_campaign() -> None:
    view = dialer.agents_view(acd_state(), "sales", {"camp-call-1", "camp-call-2"}, NOW)
    assert view == AgentsView(free=2, talking_s=(42.0, 0.0), wrapping_up_s=(7.5,))


def test_agents_view_of_an_unknown_queue_is_empty() -> None:
    assert dialer.agents_view(acd_state(), "nope", set(), NOW) == AgentsView()


def test_agents_view_wrap_up_past_its_end_is_zero_seconds() -> None:
    state = acd_state()
    state.agents["wrapping"] = agent("wrapping", AgentState.WRAP_UP, wrap_until_s=-3)
    assert dialer.agents_view(state, "sales", set(), NOW).wrapping_up_s == (0.0,)


def test_staffed_means_a_member_logged_in_and_reachable() -> None:
    state = acd_state()
    assert dialer.staffed(state, "sales") and not dialer.staffed(state, "nope")
    for agent_id in list(state.agents):
        if state.agents[agent_id].state not in (AgentState.PAUSED,):
            state.agents[agent_id] = agent(agent_id, AgentState.LOGGED_OUT)
    assert dialer.staffed(state, "sales")  # a paused agent is still logged in
    state.agents["paused"] = agent("paused", AgentState.UNAVAILABLE)
    assert not dialer.staffed(state, "sales")


def settings(mode: CampaignMode, ratio: float | None = None,
             max_lines: int | None = None) -> pacing.PacingSettings:
    return dialer.pacing_settings(mode, ratio, 3.0, max_lines)


def test_pacing_settings_from_a_campaign() -> None:
    power = settings(CampaignMode.POWER, 2.5)
    assert (power.mode, power.power_ratio, power.target_abandon_rate, power.hold_for_agent_s) == (
        pacing.DialMode.POWER, 2.5, 0.03, 1.5)
    # A ratio is only a power campaign's.
    assert settings(CampaignMode.PROGRESSIVE, 2.5).power_ratio == 1.0


@pytest.mark.parametrize(("mode", "ratio", "agents", "in_flight", "lines", "previews"), [
    # Progressive: one line per free agent, less the lines already ringing.
    (CampaignMode.PROGRESSIVE, None, AgentsView(4), InFlight(), 4, 0),
    (CampaignMode.PROGRESSIVE, None, AgentsView(4), InFlight(dialing_s=(1.0, 2.0)), 2, 0),
    (CampaignMode.PROGRESSIVE, None, AgentsView(2), InFlight(dialing_s=(1.0, 2.0, 3.0)), 0, 0),
    # A customer who answered and waits takes the next free agent.
    (CampaignMode.PROGRESSIVE, None, AgentsView(3), InFlight(waiting=1), 2, 0),
    (CampaignMode.PROGRESSIVE, None, AgentsView(1), InFlight(waiting=2), 0, 0),
    # Power: ceil(ratio * free) less ringing.
    (CampaignMode.POWER, 2.5, AgentsView(3), InFlight(), 8, 0),
    (CampaignMode.POWER, 2.5, AgentsView(3), InFlight(dialing_s=(1.0,) * 5), 3, 0),
    (CampaignMode.POWER, 1.5, AgentsView(2), InFlight(), 3, 0),
    (CampaignMode.POWER, 2.0, AgentsView(0, talking_s=(5.0,)), InFlight(), 0, 0),
    # Preview: no line; one contact per free agent not already previewing one.
    (CampaignMode.PREVIEW, None, AgentsView(3), InFlight(), 0, 3),
    (CampaignMode.PREVIEW, None, AgentsView(3), InFlight(previews=2), 0, 1),
    (CampaignMode.PREVIEW, None, AgentsView(1), InFlight(previews=2), 0, 0),
    # Predictive without history dials like progressive.
    (CampaignMode.PREDICTIVE, None, AgentsView(5, talking_s=(30.0,)), InFlight(dialing_s=(3.0,)), 4, 0),
])
def test_lines_per_mode(mode: CampaignMode, ratio: float | None, agents: AgentsView, in_flight: InFlight,
                        lines: int, previews: int) -> None:
    decision = dialer.decide(settings(mode, ratio), agents, in_flight)
    assert (decision.lines, decision.previews) == (lines, previews)


def test_predictive_warming_up_says_so() -> None:
    decision = dialer.decide(settings(CampaignMode.PREDICTIVE), AgentsView(2), InFlight())
    assert decision.basis is pacing.Basis.WARMING_UP and decision.lines == 2


def test_predictive_with_history_dials_more_than_progressive() -> None:
    # 400 attempts, a quarter answered by a person after 10 s, the rest gone after 20 s;
    # 100 talks of 60 s. Ten free agents, nobody abandoned so far.
    attempts = [pacing.Attempt(pacing.Outcome.HUMAN, 10.0)] * 100 + \
               [pacing.Attempt(pacing.Outcome.NO_ANSWER, 20.0)] * 300
    history = pacing.DialHistory.of(attempts, talk_s=[60.0] * 100)
    decision = dialer.decide(settings(CampaignMode.PREDICTIVE), AgentsView(10), InFlight(), history=history,
                             window=pacing.AbandonWindow(answered=200, abandoned=0))
    assert decision.basis is pacing.Basis.PREDICTIVE
    assert decision.lines > 10
    # The same inputs, the same answer (no clock, no randomness).
    assert dialer.decide(settings(CampaignMode.PREDICTIVE), AgentsView(10), InFlight(), history=history,
                         window=pacing.AbandonWindow(answered=200, abandoned=0)) == decision


def test_limits_contacts_round_and_lines() -> None:
    power = settings(CampaignMode.POWER, 3.0)
    assert dialer.decide(power, AgentsView(4), InFlight(), contacts=5).lines == 5
    assert dialer.decide(power, AgentsView(4), InFlight(), max_per_round=7).lines == 7
    assert dialer.decide(power, AgentsView(4), InFlight(), contacts=0).lines == 0
    # The line limit counts the lines ringing.
    capped = settings(CampaignMode.POWER, 3.0, max_lines=10)
    assert dialer.decide(capped, AgentsView(4), InFlight(dialing_s=(1.0,) * 4)).lines == 6
    assert dialer.decide(settings(CampaignMode.PREVIEW), AgentsView(4), InFlight(), contacts=1).previews == 1


def test_dial_level_after_the_decision() -> None:
    decision = dialer.decide(settings(CampaignMode.POWER, 2.0), AgentsView(2, talking_s=(1.0, 2.0)),
                             InFlight())
    assert decision.lines == 4 and decision.dial_level == 1.0  # 4 lines / 4 working agents


@pytest.mark.parametrize("bad", [
    lambda: AgentsView(-1),
    lambda: InFlight(waiting=-1),
    lambda: InFlight(previews=-2),
    lambda: dialer.decide(settings(CampaignMode.PROGRESSIVE), AgentsView(1), InFlight(dialing_s=(-1.0,))),
    lambda: dialer.decide(settings(CampaignMode.PROGRESSIVE), AgentsView(1), InFlight(), contacts=-1),
    lambda: dialer.decide(settings(CampaignMode.PROGRESSIVE), AgentsView(1), InFlight(), max_per_round=-1),
    lambda: dialer.decide(settings(CampaignMode.PROGRESSIVE), AgentsView(1, talking_s=(float("nan"),)),
                          InFlight()),
])
def test_invalid_inputs_are_refused(bad) -> None:
    with pytest.raises(InvalidRequest):
        bad()


@pytest.mark.parametrize(("cause", "text", "outcome", "reason"), [
    (17, "User busy", Outcome.BUSY, "busy"),
    (19, "No answer", Outcome.NO_ANSWER, "no answer"),
    (18, None, Outcome.NO_ANSWER, "no answer"),
    (34, None, Outcome.FAILED, "congestion"),
    (38, None, Outcome.FAILED, "congestion"),
    (42, None, Outcome.FAILED, "congestion"),
    (1, "Unallocated", Outcome.FAILED, "cause 1 (Unallocated)"),
    (21, None, Outcome.FAILED, "cause 21"),
    (0, "not dialed: bad endpoint", Outcome.FAILED, "not dialed: not dialed: bad endpoint"),
    (None, None, Outcome.FAILED, "not dialed"),
])
def test_unanswered_outcome(cause: int | None, text: str | None, outcome: Outcome, reason: str) -> None:
    assert dialer.unanswered_outcome(cause, text) == (outcome, reason)
