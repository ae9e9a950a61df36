"""The dialer's pacing (engines/pacing.py): how many lines each mode dials, predictive's
reaction to answer rates, soon-free agents and measured abandonment, the safe-harbor rule,
and a seeded simulation of a campaign that must stay within the 3 % abandonment target."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.domain.errors import InvalidRequest
from controller.engines import pacing
from controller.engines.pacing import (
    SAFE_HARBOR_S,
    AbandonWindow,
    Attempt,
    Basis,
    CampaignLive,
    ConnectToAgent,
    DialHistory,
    DialMode,
    Outcome,
    PacingSettings,
    SafeHarbor,
    decide,
    on_answer,
    planning_rate,
)

PROGRESSIVE = PacingSettings(DialMode.PROGRESSIVE)
PREDICTIVE = PacingSettings(DialMode.PREDICTIVE)
CLEAN_WINDOW = AbandonWindow(answered=2000, abandoned=0)


def recent_attempts(answer_rate: float, machine_rate: float = 0.25, attempts: int = 1000) -> list[Attempt]:
    """Answered attempts spread evenly over 5..20 s (``machine_rate`` of them machines), the
    others ringing out at 25 s."""
    answered = round(attempts * answer_rate)
    every = round(1 / machine_rate)
    made = []
    for i in range(attempts):
        if i < answered:
            outcome = Outcome.MACHINE if i % every == 0 else Outcome.HUMAN
            made.append(Attempt(outcome, 5.0 + 15.0 * i / answered))
        else:
            made.append(Attempt(Outcome.NO_ANSWER, 25.0))
    return made


def history(
    answer_rate: float, machine_rate: float = 0.25, attempts: int = 1000, talks: int = 300
) -> DialHistory:
    """A deterministic recent past: those attempts, and talks spread evenly over 60..240 s."""
    talk_s = [60.0 + 180.0 * i / talks for i in range(talks)]
    return DialHistory.of(recent_attempts(answer_rate, machine_rate, attempts), talk_s, wrap_up_s=10.0)


def team(
    free: int, talking: tuple[float, ...] = (), wrapping: tuple[float, ...] = (), dialing: int = 0
) -> CampaignLive:
    return CampaignLive(free, talking, wrapping, tuple(float(i % 20) for i in range(dialing)))


# --- progressive, power, preview --------------------------------------------------------------


@given(free=st.integers(0, 300), dialing=st.integers(0, 300), talking=st.integers(0, 50))
def test_progressive_never_has_more_lines_up_than_free_agents(free: int, dialing: int, talking: int) -> None:
    live = team(free, talking=tuple(30.0 for _ in range(talking)), dialing=dialing)
    decision = decide(PROGRESSIVE, live, history(0.3), CLEAN_WINDOW)
    assert decision.lines == max(0, free - dialing)
    assert decision.lines + dialing <= max(free, dialing)
    assert decision.basis is Basis.PROGRESSIVE


def test_power_dials_the_ratio_per_free_agent_counting_calls_in_flight() -> None:
    power = PacingSettings(DialMode.POWER, power_ratio=2.0)
    assert decide(power, team(3), DialHistory(), AbandonWindow()).lines == 6
    assert decide(power, team(3, dialing=4), DialHistory(), AbandonWindow()).lines == 2
    assert decide(power, team(3, dialing=9), DialHistory(), AbandonWindow()).lines == 0
    # Rounded up: 1.5 lines per free agent with one free agent is 2 lines, with two it is 3.
    one_and_a_half = PacingSettings(DialMode.POWER, power_ratio=1.5)
    assert decide(one_and_a_half, team(1), DialHistory(), AbandonWindow()).lines == 2
    assert decide(one_and_a_half, team(2), DialHistory(), AbandonWindow()).lines == 3
    # Ratio 1 is progressive.
    ratio_one = PacingSettings(DialMode.POWER)
    assert decide(ratio_one, team(4, dialing=1), DialHistory(), AbandonWindow()).lines == 3


def test_line_limit_caps_every_mode() -> None:
    for settings in (
        PacingSettings(DialMode.PROGRESSIVE, max_lines=5),
        PacingSettings(DialMode.POWER, power_ratio=3.0, max_lines=5),
        PacingSettings(DialMode.PREDICTIVE, max_lines=5),
    ):
        decision = decide(settings, team(10, dialing=2), history(0.1), CLEAN_WINDOW)
        assert decision.lines == 3


def test_preview_dials_nothing_and_offers_each_free_agent_a_contact() -> None:
    decision = decide(PacingSettings(DialMode.PREVIEW), team(4, dialing=2), history(0.3), CLEAN_WINDOW)
    assert (decision.lines, decision.previews, decision.basis) == (0, 4, Basis.PREVIEW)


# --- predictive -------------------------------------------------------------------------------

# Ten agents: two free, eight talking for 30..240 s, nothing being dialed.
BUSY_TEAM = team(2, talking=(30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 210.0, 240.0))


def test_predictive_without_history_dials_like_progressive() -> None:
    decision = decide(PREDICTIVE, BUSY_TEAM, DialHistory(), AbandonWindow())
    assert (decision.lines, decision.basis) == (2, Basis.WARMING_UP)
    too_little = history(0.3, attempts=50, talks=10)
    assert decide(PREDICTIVE, BUSY_TEAM, too_little, CLEAN_WINDOW).basis is Basis.WARMING_UP


def test_predictive_dials_more_than_progressive_for_soon_free_agents() -> None:
    decision = decide(PREDICTIVE, BUSY_TEAM, history(0.3), CLEAN_WINDOW)
    assert decision.basis is Basis.PREDICTIVE
    assert decision.lines > 2
    assert decision.expected_abandon_rate is not None
    assert decision.expected_abandon_rate <= decision.planning_rate


def test_predictive_dials_more_when_fewer_calls_are_answered() -> None:
    low = decide(PREDICTIVE, BUSY_TEAM, history(0.1), CLEAN_WINDOW).lines
    middle = decide(PREDICTIVE, BUSY_TEAM, history(0.3), CLEAN_WINDOW).lines
    high = decide(PREDICTIVE, BUSY_TEAM, history(0.6), CLEAN_WINDOW).lines
    assert low > middle > high >= 2


def test_predictive_counts_more_machines_as_fewer_people() -> None:
    few_machines = decide(PREDICTIVE, BUSY_TEAM, history(0.4, machine_rate=0.1), CLEAN_WINDOW).lines
    many_machines = decide(PREDICTIVE, BUSY_TEAM, history(0.4, machine_rate=0.5), CLEAN_WINDOW).lines
    assert many_machines > few_machines


def test_predictive_counts_calls_already_being_dialed() -> None:
    idle = decide(PREDICTIVE, BUSY_TEAM, history(0.3), CLEAN_WINDOW).lines
    busy_lines = CampaignLive(2, BUSY_TEAM.talking_s, (), tuple(2.0 for _ in range(idle)))
    assert decide(PREDICTIVE, busy_lines, history(0.3), CLEAN_WINDOW).lines < idle


def test_predictive_dials_fewer_when_calls_just_started() -> None:
    later = decide(PREDICTIVE, team(1, talking=(200.0,) * 19), history(0.3), CLEAN_WINDOW).lines
    early = decide(PREDICTIVE, team(1, talking=(5.0,) * 19), history(0.3), CLEAN_WINDOW).lines
    assert early < later


def test_predictive_backs_off_as_the_measured_rate_nears_the_target() -> None:
    lines = []
    for abandoned in (0, 40, 54, 58):  # of 2,000 answered: 0 %, 2 %, 2.7 %, 2.9 %
        window = AbandonWindow(2000, abandoned)
        lines.append(decide(PREDICTIVE, BUSY_TEAM, history(0.2), window).lines)
    assert lines == sorted(lines, reverse=True)
    assert lines[0] > lines[-1]
    rates = [planning_rate(PREDICTIVE, AbandonWindow(2000, a)) for a in (0, 40, 54, 58)]
    assert rates == sorted(rates, reverse=True) and rates[0] == pytest.approx(0.06)


@pytest.mark.parametrize("abandoned", [60, 61, 200])
def test_predictive_at_or_over_the_target_dials_like_progressive(abandoned: int) -> None:
    decision = decide(PREDICTIVE, BUSY_TEAM, history(0.2), AbandonWindow(2000, abandoned))
    assert (decision.lines, decision.basis) == (2, Basis.OVER_TARGET)


def test_predictive_plans_for_half_the_target_while_the_window_is_small() -> None:
    assert planning_rate(PREDICTIVE, AbandonWindow(99, 0)) == pytest.approx(0.015)
    small = decide(PREDICTIVE, BUSY_TEAM, history(0.2), AbandonWindow(99, 0)).lines
    assert small < decide(PREDICTIVE, BUSY_TEAM, history(0.2), CLEAN_WINDOW).lines


def test_predictive_respects_the_dial_level_cap_and_is_deterministic() -> None:
    capped = PacingSettings(DialMode.PREDICTIVE, max_dial_level=1.5)
    decision = decide(capped, BUSY_TEAM, history(0.05), CLEAN_WINDOW)
    assert decision.lines == 15  # 1.5 x 10 working agents
    assert decision == decide(capped, BUSY_TEAM, history(0.05), CLEAN_WINDOW)


@given(
    free=st.integers(0, 20),
    talking=st.lists(st.floats(0, 600), max_size=20),
    dialing=st.lists(st.floats(0, 24), max_size=40),
    rate=st.sampled_from([0.1, 0.3, 0.6]),
)
def test_predictive_never_dials_fewer_than_progressive(
    free: int, talking: list[float], dialing: list[float], rate: float
) -> None:
    live = CampaignLive(free, tuple(talking), (), tuple(dialing))
    decision = decide(PREDICTIVE, live, history(rate), CLEAN_WINDOW)
    assert decision.lines >= max(0, free - len(dialing))
    # Lines already dialing may exceed the cap (agents left meanwhile): then nothing more is dialed.
    cap = math.floor(PREDICTIVE.max_dial_level * live.working_agents)
    assert decision.lines <= max(0, cap - len(dialing))


def test_the_loss_model_matches_a_case_worked_by_hand() -> None:
    # One agent free, nobody else; N ~ Poisson(2) people answer in one step: E[max(N - 1, 0)].
    forecast = pacing._Forecast(1, (0.0, 0.0), (0.0, 2.0), (0.0, 0.0), ([1.0], [1.0]))
    lost, answers = pacing._losses(forecast, 0)
    assert answers == pytest.approx(2.0)
    assert lost == pytest.approx(2.0 - 1.0 + math.exp(-2.0), abs=1e-5)
    # One agent freeing up in the first step serves one of them.
    freeing = pacing._poisson(1.0)
    forecast = pacing._Forecast(0, (1.0, 0.0), (0.0, 2.0), (0.0, 0.0), (freeing, [1.0]))
    lost, _ = pacing._losses(forecast, 0)
    expected = sum(  # E[max(N - F, 0)], N ~ Poisson(2), F ~ Poisson(1)
        math.exp(-2.0) * 2.0**n / math.factorial(n) * math.exp(-1.0) / math.factorial(f) * max(n - f, 0)
        for n in range(30)
        for f in range(30)
    )
    assert lost == pytest.approx(expected, abs=1e-5)


def test_talk_times_of_calls_still_in_progress_count_as_at_least_their_age() -> None:
    # A cohort of 4 calls: two ended at 10 s and 20 s, two still in progress at 15 s and 30 s.
    # Kaplan-Meier: S(10) = 3/4, at 20 s two are at risk (the 20 s one and the 30 s one), so
    # S(20) = 3/4 * 1/2.
    estimate = pacing._Estimate.of((10.0, 20.0), None, (15.0, 30.0))
    assert estimate.times == (10.0, 20.0)
    assert estimate.mass == pytest.approx((0.25, 0.375))
    assert estimate.surviving(5.0) == 1.0
    assert estimate.surviving(12.0) == pytest.approx(0.75)
    assert estimate.surviving(25.0) == pytest.approx(0.375)


def test_at_the_start_only_short_calls_have_ended_and_predictive_does_not_take_them_as_typical() -> None:
    # Twenty short talks ended; forty agents are still talking, for 40..80 s. Ignoring them, the
    # agents would all seem about to free up.
    short = DialHistory.of(recent_attempts(0.3), [8.0 + i for i in range(20)], 10.0)
    live = team(0, talking=tuple(40.0 + i for i in range(40)))
    decision = decide(PREDICTIVE, live, short, CLEAN_WINDOW)
    assert decision.lines < 20


# --- answered with no free agent ----------------------------------------------------------


def test_an_answered_call_goes_to_a_free_agent() -> None:
    assert on_answer(PREDICTIVE, "c1", 100.0, 1, ("sound:ccc/sorry",)) == ConnectToAgent("c1")


def test_an_answered_call_with_no_free_agent_gets_the_message_within_two_seconds() -> None:
    harbor = on_answer(PREDICTIVE, "c1", 100.0, 0, ("sound:ccc/sorry",))
    assert isinstance(harbor, SafeHarbor)
    assert harbor.connect_by == 101.0  # held 1 s (the default) for an agent freeing up
    assert harbor.play_by == 100.0 + SAFE_HARBOR_S
    assert harbor.connect_by <= harbor.play_by
    assert harbor.media == ("sound:ccc/sorry",)
    assert pacing.due_messages((harbor,), 100.5) == ()
    assert pacing.due_messages((harbor,), 101.0) == (harbor,)


def test_an_agent_freeing_up_takes_the_call_held_longest_still_within_its_hold() -> None:
    first = on_answer(PREDICTIVE, "a", 100.0, 0, ("sound:x",))
    second = on_answer(PREDICTIVE, "b", 100.4, 0, ("sound:x",))
    assert isinstance(first, SafeHarbor) and isinstance(second, SafeHarbor)
    assert pacing.claim_for_free_agent((second, first), 100.8) == first
    assert pacing.claim_for_free_agent((second, first), 101.2) == second  # a's hold is over
    assert pacing.claim_for_free_agent((second, first), 101.5) is None


def test_no_hold_plays_the_message_at_once() -> None:
    settings = PacingSettings(DialMode.PREDICTIVE, hold_for_agent_s=0.0)
    harbor = on_answer(settings, "c", 50.0, 0, ("sound:x",))
    assert isinstance(harbor, SafeHarbor) and harbor.connect_by == 50.0
    assert pacing.claim_for_free_agent((harbor,), 50.0) is None


# --- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: PacingSettings("predictive"),  # type: ignore[arg-type]
        lambda: PacingSettings(DialMode.POWER, power_ratio=0.5),
        lambda: PacingSettings(DialMode.POWER, power_ratio=float("nan")),
        lambda: PacingSettings(DialMode.PREDICTIVE, target_abandon_rate=0.0),
        lambda: PacingSettings(DialMode.PREDICTIVE, target_abandon_rate=1.0),
        lambda: PacingSettings(DialMode.PREDICTIVE, hold_for_agent_s=2.0),
        lambda: PacingSettings(DialMode.PREDICTIVE, hold_for_agent_s=-1.0),
        lambda: PacingSettings(DialMode.PREDICTIVE, max_lines=-1),
        lambda: PacingSettings(DialMode.PREDICTIVE, max_dial_level=0.5),
        lambda: PacingSettings(DialMode.PREDICTIVE, min_talks=0),
        lambda: CampaignLive(-1),
        lambda: CampaignLive(1, talking_s=(-3.0,)),
        lambda: CampaignLive(1, dialing_s=(float("nan"),)),
        lambda: CampaignLive(1, wrapping_up_s=(float("inf"),)),
        lambda: CampaignLive(1, dialing_s=("5",)),  # type: ignore[arg-type]
        lambda: Attempt("human", 3.0),  # type: ignore[arg-type]
        lambda: Attempt(Outcome.HUMAN, -1.0),
        lambda: DialHistory(attempt_s=(1.0,), human_s=(1.0, 2.0)),
        lambda: DialHistory(machine_answers=-1),
        lambda: DialHistory(talk_s=(float("nan"),)),
        lambda: DialHistory(wrap_up_s=-5.0),
        lambda: DialHistory.of(["human"]),  # type: ignore[list-item]
        lambda: AbandonWindow(10, 11),
        lambda: AbandonWindow(-1, 0),
    ],
)
def test_invalid_inputs_are_rejected(make) -> None:  # noqa: ANN001 - a lambda
    with pytest.raises(InvalidRequest):
        make()


def test_a_safe_harbor_needs_a_message() -> None:
    with pytest.raises(InvalidRequest):
        on_answer(PREDICTIVE, "c", 1.0, 0, ())
    with pytest.raises(InvalidRequest):
        on_answer(PREDICTIVE, "c", float("nan"), 1, ("sound:x",))


def test_history_rates_are_read_off_the_attempts() -> None:
    past = history(0.4)
    assert past.answer_rate == pytest.approx(0.4)
    assert past.machine_rate == pytest.approx(0.25)
    assert DialHistory().answer_rate is None and DialHistory().machine_rate is None


# --- a seeded campaign ------------------------------------------------------------------------


def test_a_simulated_campaign_stays_within_the_target_and_keeps_agents_busier() -> None:
    """Eight agents, 30 % answer rate, two simulated hours, the same seed for both modes (the
    discrete-event simulator of bench/pacing.py): predictive keeps abandonment at or under
    3 % while its agents talk a larger share of their time than progressive's. (Seeds 12-14
    give the same verdict; the figures for many more workloads are in docs/benchmarks.md.)"""
    from bench.pacing import Workload, algorithms, simulate

    workload = Workload(agents=8, answer_rate=0.3, hours=2.0, seed=11)
    made = algorithms(())
    predictive = simulate(workload, "predictive", made["predictive"]())
    progressive = simulate(workload, "progressive", made["progressive"]())
    assert predictive.human_answers > 250
    assert predictive.abandon_rate <= 0.03
    assert progressive.abandoned == 0
    assert predictive.occupancy > progressive.occupancy + 0.05
