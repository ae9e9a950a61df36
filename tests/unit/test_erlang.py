"""Workforce math (engines/erlang.py) against published figures, exact arithmetic and an
independent numerical solution of the queue.

Published sources (each test names its own):

- [WESTBAY-C] Westbay Engineers, "The Erlang-C formula", worked example: 360 calls per half
  hour, 4-minute calls, 55 agents, 15-second target: probability of waiting 0.2387, mean wait
  8.184 s, P(wait <= 15 s) 0.8459 (figures as the page states them, 4 significant digits; the
  example is reproduced with the same figures in R. Dodier's Maxima "erlang.mac" worked example).
- [ABSTRACTMICRO] Abstract Micro Systems, Erlang Library for Excel, ErlcWait4 reference page:
  20 agents, 1,800 s period, 100 calls, AHT 240 s -> 2.243505841 s; AHT 300 s -> 30.4312286 s.
- [CCH] The Call Centre Helper example (100 calls in 30 minutes, AHT 180 s, 80% in 20 s, at
  most 85% occupancy, 30% shrinkage), as published with its results in the pyworkforce 0.1.0
  README (PyPI) and in the R package ErlangC 0.1.0 README (CRAN): 14 agents, 20 scheduled,
  service level 0.8883500191794669, P(wait) 0.1741319335950498, occupancy 0.7142857142857143,
  ASA 7.83593701177724 s.
- [WESTBAY-B] Westbay Engineers, Erlang calculator manual, "How much traffic can a trunk group
  handle": 15 lines at 1% blocking carry 8.108 Erlangs (3 decimals).
- [MZ] A. Mandelbaum, S. Zeltyn, "The Palm/Erlang-A queue, with applications to call centers"
  (2005), and Garnett, Mandelbaum, Reiman, "Designing a call center with impatient customers"
  (MSOM 2002): when the patience rate equals the service rate the number of callers in an
  M/M/n+M system is that of an M/M/infinity one, Poisson with mean a; and Erlang A tends to
  Erlang C as patience grows without bound.

No published table of Erlang A figures was reachable from where this was written; Erlang A is
checked against those two published reductions and, case by case, against a solution computed
a different way (the birth-death chain truncated far out, and the tagged caller's wait by
uniformization: ``_brute_erlang_a`` below).
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.engines.erlang import (
    Figures,
    Load,
    Target,
    TargetUnreachable,
    agents_needed,
    erlang_a_figures,
    erlang_b,
    erlang_c,
    erlang_c_figures,
    figures,
    log_erlang_b,
    scheduled_agents,
)

# ---- published Erlang C and B figures ----------------------------------------------------


def test_erlang_c_westbay_worked_example() -> None:
    """[WESTBAY-C]; the page gives 4 significant digits, so half a unit of the last one."""
    result = erlang_c_figures(55, Load.of_interval(360, 1800, 240), answer_time_s=15)
    assert result.traffic == pytest.approx(48.0)
    assert result.p_wait == pytest.approx(0.2387, abs=0.00005)
    assert result.asa_s == pytest.approx(8.184, abs=0.0005)
    assert result.service_level == pytest.approx(0.8459, abs=0.00005)
    assert result.occupancy == pytest.approx(48 / 55)


@pytest.mark.parametrize(("aht_s", "published_wait_s"), [(240, 2.243505841), (300, 30.4312286)])
def test_erlang_c_mean_wait_abstract_micro(aht_s: float, published_wait_s: float) -> None:
    """[ABSTRACTMICRO] ErlcWait4(20, 1800, 100, aht); their figures agree with ours to 2e-8 relative."""
    result = erlang_c_figures(20, Load.of_interval(100, 1800, aht_s), answer_time_s=20)
    assert result.asa_s == pytest.approx(published_wait_s, rel=2e-8)


def test_erlang_c_call_centre_helper_example() -> None:
    """[CCH]: the agents needed, what they achieve, and the agents to schedule."""
    load = Load.of_interval(100, 1800, 180)
    result = agents_needed(load, Target(answer_time_s=20, service_level=0.8, max_occupancy=0.85))
    assert result.agents == 14
    assert result.service_level == pytest.approx(0.8883500191794669, rel=1e-12)
    assert result.p_wait == pytest.approx(0.1741319335950498, rel=1e-12)
    assert result.occupancy == pytest.approx(0.7142857142857143, rel=1e-12)
    assert result.asa_s == pytest.approx(7.83593701177724, rel=1e-12)
    assert scheduled_agents(result.agents, 0.30) == 20
    # 13 agents miss the target: the answer is the fewest.
    assert erlang_c_figures(13, load, 20).service_level < 0.8


def test_erlang_b_westbay_trunk_group() -> None:
    """[WESTBAY-B]: 8.108 Erlangs is the most 15 lines carry at 1% (rounded to 3 decimals)."""
    assert erlang_b(15, 8.1075) < 0.01 < erlang_b(15, 8.1085)


# ---- Erlang B and C: exact arithmetic and extremes --------------------------------------


def _exact_erlang_b(agents: int, traffic: Fraction) -> Fraction:
    blocked = Fraction(1)
    for n in range(1, agents + 1):
        blocked = traffic * blocked / (n + traffic * blocked)
    return blocked


@settings(deadline=None)
@given(agents=st.integers(0, 60), tenths=st.integers(0, 1000))
def test_erlang_b_matches_exact_rational_arithmetic(agents: int, tenths: int) -> None:
    traffic = Fraction(tenths, 10)
    expected = float(_exact_erlang_b(agents, traffic))
    assert erlang_b(agents, float(traffic)) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def _decimal_erlang_c(agents: int, traffic: float) -> float:
    """Erlang C by the textbook recursion in 60-digit decimal arithmetic."""
    getcontext().prec = 60
    a, blocked = Decimal(repr(traffic)), Decimal(1)
    for n in range(1, agents + 1):
        blocked = a * blocked / (n + a * blocked)
    rho = a / agents
    return float(blocked / (1 - rho * (1 - blocked)))


@pytest.mark.parametrize(("agents", "traffic"), [(5000, 4930.5), (5000, 4990.0), (2000, 1900.25)])
def test_thousands_of_agents_match_high_precision_arithmetic(agents: int, traffic: float) -> None:
    assert erlang_c(agents, traffic) == pytest.approx(_decimal_erlang_c(agents, traffic), rel=1e-11)


def test_a_case_with_5000_agents() -> None:
    """80% in 20 s at 4,950 Erlangs (AHT 300 s) needs a little over 4,950 agents: the fewest
    that meet it, found without overflow, and checked by high-precision arithmetic."""
    load = Load(4950 / 300, 300)
    result = agents_needed(load, Target(answer_time_s=20, service_level=0.8))
    assert 4950 < result.agents <= 5000
    p_wait = _decimal_erlang_c(result.agents, load.traffic)
    exact_sl = 1 - p_wait * math.exp(-(result.agents - load.traffic) * 20 / 300)
    assert result.service_level == pytest.approx(exact_sl, rel=1e-11)
    assert result.service_level >= 0.8
    assert erlang_c_figures(result.agents - 1, load, 20).service_level < 0.8


@pytest.mark.parametrize("traffic", [10.0, 100.0, 1000.0, 10_000.0, 50_000.0])
def test_large_traffic_does_not_overflow(traffic: float) -> None:
    load = Load(traffic / 300, 300)
    whole = int(traffic)
    for agents in (0, 1, whole // 2, whole, whole + 1, int(traffic * 1.2), int(traffic * 3)):
        assert 0.0 <= erlang_b(agents, traffic) <= 1.0
        assert math.isfinite(log_erlang_b(agents, traffic)) or agents > traffic * 2
        assert 0.0 <= erlang_c(agents, traffic) <= 1.0
    needed = agents_needed(load, Target(answer_time_s=20, service_level=0.9))
    assert needed.agents > traffic and needed.service_level >= 0.9
    patient = agents_needed(Load(traffic / 300, 300, patience_s=180), Target(20, service_level=0.9))
    assert 0 < patient.agents and patient.service_level >= 0.9
    assert all(math.isfinite(v) for v in (patient.p_wait, patient.p_abandon, patient.asa_s,
                                          patient.occupancy))


def test_erlang_b_extremes() -> None:
    assert erlang_b(0, 5.0) == 1.0
    assert erlang_b(3, 0.0) == 0.0
    assert erlang_b(10_000, 1.0) == 0.0  # underflows to 0 rather than raising
    assert log_erlang_b(10_000, 1.0) < -50_000
    assert erlang_b(1, 1e6) == pytest.approx(1e6 / (1 + 1e6))


def test_unstable_erlang_c() -> None:
    result = erlang_c_figures(10, Load.of_interval(200, 1800, 90), 20)  # exactly 10 Erlangs
    assert not result.stable and result.service_level == 0.0 and result.p_wait == 1.0
    assert erlang_c(9, 10.0) == 1.0


# ---- Erlang A ---------------------------------------------------------------------------


def _brute_erlang_a(agents: int, rate: float, aht_s: float, patience_s: float, answer_time_s: float,
                    states: int = 300) -> tuple[float, float, float, float]:
    """(P(wait), P(abandon), service level, ASA) from the M/M/n+M chain truncated at ``states``:
    the stationary law by its balance equations, the tagged caller followed through the
    waiting positions (served, abandoned) by uniformization up to ``answer_time_s``."""
    mu, theta = 1 / aht_s, 1 / patience_s
    weights = [1.0]
    for j in range(1, states + 1):
        weights.append(weights[-1] * rate / (min(j, agents) * mu + max(j - agents, 0) * theta))
    total = sum(weights)
    pi = [w / total for w in weights]
    p_wait = sum(pi[agents:])
    p_abandon = theta * sum((j - agents) * pi[j] for j in range(agents, states + 1)) / rate
    ahead = states - agents
    # The tagged caller with m callers ahead moves up (or is served, m = 0) at rate n mu + m theta
    # and abandons at rate theta.
    uniform = agents * mu + ahead * theta + theta
    position = [pi[agents + k] for k in range(ahead + 1)]
    mean = uniform * answer_time_s
    jumps = int(mean + 30 * math.sqrt(mean + 1) + 60)
    served_by_jump, served = [0.0], 0.0
    for _ in range(jumps):
        moved = [0.0] * (ahead + 1)
        for m, mass in enumerate(position):
            if mass:
                up = agents * mu + m * theta
                if m == 0:
                    served += mass * up / uniform
                else:
                    moved[m - 1] += mass * up / uniform
                moved[m] += mass * (1 - (up + theta) / uniform)
        position = moved
        served_by_jump.append(served)
    poisson, served_in_time = math.exp(-mean), 0.0
    for count, value in enumerate(served_by_jump):
        served_in_time += poisson * value
        poisson *= mean / (count + 1)
    # E[wait; served]: each position m is visited at most once, for a mean of 1/(up + theta),
    # and is left towards service with the product of the (up / (up + theta)) still ahead.
    reach_service = []
    for m in range(ahead + 1):
        step = (agents * mu + m * theta) / (agents * mu + m * theta + theta)
        reach_service.append(step * (reach_service[-1] if m else 1.0))
    wait_served = 0.0
    for k in range(ahead + 1):
        visited = pi[agents + k]
        for m in range(k, -1, -1):
            out = agents * mu + m * theta + theta
            wait_served += visited * reach_service[m] / out
            visited *= (out - theta) / out
    return p_wait, p_abandon, (1 - p_wait) + served_in_time, wait_served / (1 - p_abandon)


CASES = [  # agents, calls per second, AHT, patience, answer time
    (3, 1 / 60, 120, 90, 20),
    (5, 3 / 60, 100, 30, 10),
    (2, 2 / 60, 100, 200, 60),
    (8, 6 / 60, 60, 45, 15),
    (1, 1 / 100, 80, 300, 30),
    (12, 15 / 60, 50, 20, 5),  # overloaded: 12.5 Erlangs on 12 agents
]


@pytest.mark.parametrize(("agents", "rate", "aht_s", "patience_s", "answer_time_s"), CASES)
def test_erlang_a_matches_the_chain_solved_another_way(agents: int, rate: float, aht_s: float,
                                                       patience_s: float, answer_time_s: float) -> None:
    p_wait, p_abandon, service_level, asa = _brute_erlang_a(agents, rate, aht_s, patience_s, answer_time_s)
    result = erlang_a_figures(agents, Load(rate, aht_s, patience_s), answer_time_s)
    assert result.p_wait == pytest.approx(p_wait, rel=1e-9)
    assert result.p_abandon == pytest.approx(p_abandon, rel=1e-9)
    assert result.service_level == pytest.approx(service_level, rel=1e-9)
    assert result.asa_s == pytest.approx(asa, rel=1e-9)
    # Little's law on the queue: theta E[queue] = rate P(abandon).
    assert result.mean_wait_s == pytest.approx(p_abandon * patience_s, rel=1e-9)
    assert result.occupancy == pytest.approx(rate * aht_s * (1 - p_abandon) / agents, rel=1e-9)


def _poisson_tail(mean: Fraction, at_least: int, terms: int = 400) -> tuple[float, float]:
    """P(N >= at_least) and E[(N - at_least)+] for N Poisson(mean), in exact rationals."""
    pmf = [Fraction(1)]
    for j in range(1, terms):
        pmf.append(pmf[-1] * mean / j)
    norm = sum(pmf)
    tail = sum(pmf[at_least:]) / norm
    excess = sum((j - at_least) * pmf[j] for j in range(at_least, terms)) / norm
    return float(tail), float(excess)


@pytest.mark.parametrize(("agents", "calls_per_hour", "aht_s"),
                         [(10, 120, 240), (25, 300, 300), (4, 30, 600)])
def test_erlang_a_with_patience_equal_to_aht_is_m_m_infinity(agents: int, calls_per_hour: int,
                                                              aht_s: int) -> None:
    """[MZ]: theta = mu makes every caller leave at the same rate, in service or waiting, so
    the number in the system is Poisson(a): P(wait) = P(N >= n), P(abandon) = E[(N - n)+] / a."""
    traffic = Fraction(calls_per_hour * aht_s, 3600)
    tail, excess = _poisson_tail(traffic, agents)
    result = erlang_a_figures(agents, Load(calls_per_hour / 3600, aht_s, patience_s=aht_s), 20)
    assert result.p_wait == pytest.approx(tail, rel=1e-12)
    assert result.p_abandon == pytest.approx(excess / float(traffic), rel=1e-12)


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    """[MZ] and [WESTBAY-C]: with a patience of 10^9 s the Westbay example comes back (the
    gap to Erlang C shrinks like 1 / patience: 6e-4 s of ASA at 10^7 s)."""
    result = erlang_a_figures(55, Load.of_interval(360, 1800, 240, patience_s=1e9), 15)
    assert result.p_wait == pytest.approx(0.2387, abs=0.00005)
    assert result.asa_s == pytest.approx(8.184, abs=0.0005)
    assert result.service_level == pytest.approx(0.8459, abs=0.00005)
    assert result.p_abandon < 1e-6


@settings(max_examples=60, deadline=None)
@given(agents=st.integers(1, 150), traffic=st.floats(0.5, 140), aht_s=st.floats(30, 900),
       answer_time_s=st.floats(0, 120))
def test_erlang_a_converges_to_erlang_c(agents: int, traffic: float, aht_s: float,
                                        answer_time_s: float) -> None:
    if agents <= traffic * 1.02:
        return  # Erlang C is unstable (or nearly) there; Erlang A is not
    erlang_c_result = erlang_c_figures(agents, Load(traffic / aht_s, aht_s), answer_time_s)
    patient = erlang_a_figures(agents, Load(traffic / aht_s, aht_s, patience_s=aht_s * 1e6), answer_time_s)
    assert patient.p_wait == pytest.approx(erlang_c_result.p_wait, abs=1e-4)
    assert patient.service_level == pytest.approx(erlang_c_result.service_level, abs=1e-4)
    assert patient.asa_s == pytest.approx(erlang_c_result.asa_s, rel=1e-3, abs=1e-3)


# ---- properties: monotone in agents, the search finds the fewest ---------------------------

_FLOAT_NOISE = 1e-9


def _monotone(before: Figures, after: Figures) -> bool:
    return (after.service_level >= before.service_level - _FLOAT_NOISE
            and after.p_wait <= before.p_wait + _FLOAT_NOISE
            and after.p_abandon <= before.p_abandon + _FLOAT_NOISE
            and after.occupancy <= before.occupancy + _FLOAT_NOISE
            and after.asa_s <= before.asa_s * (1 + _FLOAT_NOISE))


@settings(max_examples=80, deadline=None)
@given(traffic=st.floats(0.05, 300), aht_s=st.floats(10, 1200),
       patience=st.one_of(st.none(), st.floats(5, 1800)), answer_time_s=st.floats(0, 180))
def test_every_figure_improves_with_each_agent(traffic: float, aht_s: float, patience: float | None,
                                               answer_time_s: float) -> None:
    load = Load(traffic / aht_s, aht_s, patience)
    low = max(1, math.floor(traffic) + 1 if patience is None else math.floor(traffic * 0.7))
    previous = figures(low, load, answer_time_s)
    for agents in range(low + 1, low + 40):
        current = figures(agents, load, answer_time_s)
        assert _monotone(previous, current), (agents, previous, current)
        previous = current


@settings(max_examples=80, deadline=None)
@given(traffic=st.floats(0.01, 2000), aht_s=st.floats(10, 1200),
       patience=st.one_of(st.none(), st.floats(5, 1800)),
       answer_time_s=st.floats(0, 120), service_level=st.floats(0.05, 0.99),
       max_occupancy=st.one_of(st.none(), st.floats(0.3, 1.0)))
def test_agents_needed_is_the_fewest_that_meet_the_target(
        traffic: float, aht_s: float, patience: float | None, answer_time_s: float, service_level: float,
        max_occupancy: float | None) -> None:
    load = Load(traffic / aht_s, aht_s, patience)
    target = Target(answer_time_s, service_level=service_level, max_occupancy=max_occupancy)
    result = agents_needed(load, target)
    assert target.met_by(result)
    direct = figures(result.agents, load, answer_time_s)  # the search carries Erlang B along instead
    assert result.service_level == pytest.approx(direct.service_level, rel=1e-12)
    assert result.p_wait == pytest.approx(direct.p_wait, rel=1e-12)
    assert result.agents >= 1
    assert not target.met_by(figures(result.agents - 1, load, answer_time_s))


def test_targets_combine() -> None:
    load = Load.of_interval(100, 1800, 180)
    by_sl = agents_needed(load, Target(20, service_level=0.8)).agents
    by_asa = agents_needed(load, Target(20, max_asa_s=2.0))
    assert by_asa.asa_s <= 2.0 and erlang_c_figures(by_asa.agents - 1, load, 20).asa_s > 2.0
    both = agents_needed(load, Target(20, service_level=0.8, max_asa_s=2.0)).agents
    assert both == max(by_sl, by_asa.agents)
    assert agents_needed(load, Target(20, max_occupancy=0.5)).agents == 20  # 10 Erlangs at 50%
    abandon = agents_needed(Load.of_interval(100, 1800, 180, 60), Target(20, max_abandon=0.01))
    assert abandon.p_abandon <= 0.01
    assert erlang_a_figures(abandon.agents - 1, Load.of_interval(100, 1800, 180, 60), 20).p_abandon > 0.01


def test_no_calls_need_no_agents() -> None:
    result = agents_needed(Load(0.0, 180), Target(20, service_level=0.8))
    assert result.agents == 0 and result.service_level == 1.0 and result.occupancy == 0.0


def test_impossible_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        Target(20)  # no limit at all
    with pytest.raises(ValueError):
        Target(20, service_level=1.0)
    with pytest.raises(ValueError):
        Target(-1, service_level=0.8)
    with pytest.raises(ValueError):
        Target(20, max_occupancy=0)
    with pytest.raises(ValueError):
        Load(-1, 180)
    with pytest.raises(ValueError):
        Load(1, 0)
    with pytest.raises(ValueError):
        Load(1, 180, patience_s=0)
    with pytest.raises(ValueError):
        Load.of_interval(10, 0, 180)
    with pytest.raises(ValueError):
        agents_needed(Load(1, 180), Target(20, max_abandon=0.05))  # needs a patience
    with pytest.raises(TargetUnreachable):
        agents_needed(Load(1, 180), Target(20, service_level=0.8), max_agents=100)


def test_scheduled_agents() -> None:
    assert scheduled_agents(14, 0.3) == 20  # [CCH]; 14 / 0.7 is 20.000000000000004 in floats
    assert scheduled_agents(14, 0.0) == 14
    assert scheduled_agents(10, 0.35) == 16
    assert scheduled_agents(0, 0.5) == 0
    with pytest.raises(ValueError):
        scheduled_agents(10, 1.0)


@settings(max_examples=150, deadline=None)
@given(traffic=st.one_of(st.just(0.0), st.floats(1e-300, 500)), aht_s=st.floats(10, 86_400),
       patience=st.one_of(st.none(), st.floats(1, 3600)), answer_time_s=st.floats(0, 3600),
       service_level=st.one_of(st.none(), st.floats(1e-12, 0.999999)),
       max_asa_s=st.one_of(st.none(), st.floats(1e-9, 3600)),
       max_occupancy=st.one_of(st.none(), st.floats(0.01, 1)))
def test_any_input_the_api_admits_gives_figures_or_unreachable(
        traffic: float, aht_s: float, patience: float | None, answer_time_s: float,
        service_level: float | None, max_asa_s: float | None, max_occupancy: float | None) -> None:
    """Extremes included: a patience of 1 s with an hour's answer time (e^-3600 underflows), a
    day-long AHT, traffic of 1e-300 Erlangs."""
    if service_level is None and max_asa_s is None and max_occupancy is None:
        service_level = 0.8
    target = Target(answer_time_s, service_level=service_level, max_asa_s=max_asa_s,
                    max_occupancy=max_occupancy)
    try:
        result = agents_needed(Load(traffic / aht_s, aht_s, patience), target)
    except TargetUnreachable:
        return
    assert target.met_by(result) or traffic / aht_s == 0
    for probability in (result.p_wait, result.p_abandon, result.service_level, result.occupancy):
        assert 0.0 <= probability <= 1.0
    assert math.isfinite(result.asa_s) and math.isfinite(result.mean_wait_s)
