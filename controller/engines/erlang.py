"""Workforce math: how many agents a queue needs, by Erlang B, Erlang C and Erlang A.

Pure: numbers in, numbers out (no I/O, no clock). Times are in seconds.

Vocabulary. Calls arrive at ``rate`` per second (Poisson) and take ``aht_s`` seconds of an
agent's time each (talk, hold and wrap-up; exponential). The *traffic* ``a = rate * aht_s``,
in Erlangs, is how many agents' worth of work arrives. With ``n`` agents:

- **Erlang B** ``B(n, a)``: the share of calls that find every agent busy when there is no
  queue (M/M/n/n). Used here as the building block of the two others.
- **Erlang C** (M/M/n): callers wait as long as it takes. ``P(wait) = C(n, a) =
  n B / (n - a (1 - B))`` for ``n > a`` (else the queue grows without end); service level
  ``SL(T) = 1 - C e^{-(n - a) T / aht}``; ``ASA = C aht / (n - a)``; occupancy ``a / n``.
- **Erlang A** (Palm 1946, M/M/n+M): each caller also has a patience, exponential with mean
  ``patience_s``, and hangs up when the wait exceeds it. Always stable. See
  :func:`erlang_a` and docs/staffing.md for the formulas and how they are computed.

Service level, everywhere: the share of *offered* calls answered within ``T`` seconds (a
caller who hangs up counts against it, whenever it hangs up). ASA: the mean wait of the
calls answered. Occupancy: the share of the agents' time spent on calls.

Numerics. No factorial and no power is ever formed: every sum (the Poisson terms of Erlang B,
the queue-length terms of Erlang A) is summed from its largest term outwards, in units of that
term, whose logarithm comes from ``lgamma``; a sum stops when its terms fall below 1e-17 of the
total. Each evaluation costs O(sqrt(traffic)) steps whatever the size, so 10,000 Erlangs and
thousands of agents neither overflow nor crawl (bench/staffing.py measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A sum stops once its terms are this small relative to the total (below double precision).
_RELATIVE_EPSILON = 1e-17
# exp() of more than this overflows a double.
_MAX_EXP = 700.0


class TargetUnreachable(ValueError):
    """No number of agents meets the targets (within ``max_agents``)."""


# ---- Erlang B and C ---------------------------------------------------------------------


def log_erlang_b(agents: int, traffic: float) -> float:
    """ln B(agents, traffic): the Erlang B blocking probability, in log space.

    ``1 / B(n, a) = sum_{j=0..n} (a^j / j!) / (a^n / n!)``, summed from its largest term
    (``j = min(n, floor(a))``) outwards."""
    _check(agents, traffic)
    if agents == 0:
        return 0.0
    if traffic == 0:
        return -math.inf
    n = agents
    peak = min(n, math.floor(traffic))
    log_peak = (peak - n) * math.log(traffic) + math.lgamma(n + 1) - math.lgamma(peak + 1)
    total = 1.0
    term, j = 1.0, peak
    while j < n:  # upwards: term_{j+1} = term_j * a / (j + 1), decreasing past the peak
        j += 1
        term *= traffic / j
        total += term
        if term < _RELATIVE_EPSILON * total:
            break
    term, j = 1.0, peak
    while j > 0:  # downwards: term_{j-1} = term_j * j / a
        term *= j / traffic
        j -= 1
        total += term
        if term < _RELATIVE_EPSILON * total:
            break
    return -(log_peak + math.log(total))


def erlang_b(agents: int, traffic: float) -> float:
    """Erlang B: the share of calls blocked with ``agents`` lines and no queue."""
    return math.exp(log_erlang_b(agents, traffic))


def erlang_c(agents: int, traffic: float) -> float:
    """Erlang C: the probability that a call waits (1 when ``agents <= traffic``)."""
    _check(agents, traffic)
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    blocked = erlang_b(agents, traffic)
    return _erlang_c_of_b(agents, traffic, blocked)


def _erlang_c_of_b(agents: int, traffic: float, blocked: float) -> float:
    return blocked / (1.0 - traffic / agents * (1.0 - blocked))


# ---- figures for one interval --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """The work offered in one interval."""

    rate: float  # calls per second
    aht_s: float  # mean handle time of a call, seconds
    patience_s: float | None = None  # mean patience of a waiting caller (None: infinite, Erlang C)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError("rate must be a finite number >= 0")
        if not (math.isfinite(self.aht_s) and self.aht_s > 0):
            raise ValueError("aht_s must be a finite number > 0")
        if self.patience_s is not None and not (math.isfinite(self.patience_s) and self.patience_s > 0):
            raise ValueError("patience_s must be a finite number > 0 (or None)")

    @classmethod
    def of_interval(cls, calls: float, interval_s: float, aht_s: float,
                    patience_s: float | None = None) -> Load:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError("interval_s must be a finite number > 0")
        return cls(calls / interval_s, aht_s, patience_s)

    @property
    def traffic(self) -> float:
        """Erlangs."""
        return self.rate * self.aht_s


@dataclass(frozen=True, slots=True)
class Figures:
    """What ``agents`` achieve under a load (probabilities in [0, 1], times in seconds)."""

    agents: int
    traffic: float
    p_wait: float  # a call is not answered at once
    p_abandon: float  # a caller hangs up before an answer (0 with Erlang C)
    service_level: float  # answered within answer_time_s, out of all calls offered
    asa_s: float  # mean wait of the answered calls (inf when the queue is unstable)
    mean_wait_s: float  # mean wait of every caller, the abandoning ones until they hang up
    occupancy: float  # share of the agents' time on calls
    answer_time_s: float

    @property
    def stable(self) -> bool:
        return math.isfinite(self.asa_s)


def erlang_c_figures(agents: int, load: Load, answer_time_s: float) -> Figures:
    """Erlang C figures (the load's patience is ignored)."""
    _check(agents, load.traffic)
    _check_time(answer_time_s)
    traffic = load.traffic
    if traffic == 0:
        return _idle(agents, answer_time_s)
    if agents <= traffic:
        return Figures(agents, traffic, 1.0, 0.0, 0.0, math.inf, math.inf, 1.0 if agents else 0.0,
                       answer_time_s)
    return _erlang_c_at(agents, traffic, load.aht_s, erlang_b(agents, traffic), answer_time_s)


def _erlang_c_at(agents: int, traffic: float, aht_s: float, blocked: float,
                 answer_time_s: float) -> Figures:
    p_wait = _erlang_c_of_b(agents, traffic, blocked)
    spare = agents - traffic
    asa = p_wait * aht_s / spare
    service_level = 1.0 - p_wait * math.exp(-spare * answer_time_s / aht_s)
    return Figures(agents, traffic, p_wait, 0.0, _probability(service_level), asa, asa,
                   traffic / agents, answer_time_s)


def erlang_a_figures(agents: int, load: Load, answer_time_s: float) -> Figures:
    """Erlang A figures (M/M/n+M). ``load.patience_s`` must be set.

    With ``x = n patience / aht`` and ``y = rate patience`` (service and arrival rates in units
    of the abandonment rate), an arrival that finds every agent busy sees ``k`` callers
    waiting with probability ``t_k / S``, ``t_k = y^k / ((x+1)(x+2)...(x+k))``, ``S = sum t_k``
    (the birth-death chain's stationary law, PASTA). Its would-be wait ``V`` is a sum of
    exponentials of rates ``theta (x+k), ..., theta x`` (the callers ahead leave by service or
    abandonment), which gives, all in closed form or as sums over ``k`` (docs/staffing.md):

    - ``P(wait) = S E / (1 - E + S E)``, ``E`` = Erlang B(n, a);
    - ``P(abandon) = P(wait) E[k] / y`` (abandonment rate ``theta E[queue]``);
    - ``P(answered, wait > T | wait) = (x / y) u^x e^{y (1 - u)} (S(yu) - 1) / S``, ``u = e^{-T/patience}``;
    - ``P(answered | wait) = sum t_k x / (x+k+1) / S`` and
      ``E[wait; answered | wait] = patience * sum t_k x / (x+k+1) H_k / S``,
      ``H_k = sum_{i=1..k+1} 1 / (x+i)``.
    """
    if load.patience_s is None:
        raise ValueError("Erlang A needs the callers' mean patience")
    _check(agents, load.traffic)
    _check_time(answer_time_s)
    traffic, patience = load.traffic, load.patience_s
    if traffic == 0:
        return _idle(agents, answer_time_s)
    if agents == 0:  # nobody answers: every caller waits out its patience
        return Figures(0, traffic, 1.0, 1.0, 0.0, math.inf, patience, 0.0, answer_time_s)
    x = agents * patience / load.aht_s
    y = load.rate * patience
    queue = _queue_terms(x, math.log(y), moments=True)
    log_b = log_erlang_b(agents, traffic)
    # P(wait) = 1 / (1 + (1 - E) / (S E)), in logs: S E can be astronomically large or small.
    log_ratio = math.log1p(-math.exp(log_b)) - queue.log_sum - log_b
    p_wait = 0.0 if log_ratio > _MAX_EXP else 1.0 / (1.0 + math.exp(log_ratio))
    p_abandon = _probability(p_wait * queue.mean_k / y)
    answered_if_wait = queue.answered
    if answer_time_s == 0:
        answered_late = answered_if_wait
    else:
        u_log = -answer_time_s / patience
        later = _queue_terms(x, math.log(y) + u_log, first=1)  # S(yu) - 1, yu may underflow
        log_late = (math.log(x / y) + x * u_log + y * -math.expm1(u_log) + later.log_sum
                    - queue.log_sum)
        answered_late = 0.0 if log_late < -_MAX_EXP else min(answered_if_wait, math.exp(log_late))
    service_level = (1.0 - p_wait) + p_wait * (answered_if_wait - answered_late)
    answered = 1.0 - p_abandon
    asa = p_wait * patience * queue.answered_wait / answered if answered > 0 else math.inf
    return Figures(agents, traffic, _probability(p_wait), p_abandon, _probability(service_level), asa,
                   p_abandon * patience, _probability(traffic * answered / agents), answer_time_s)


def figures(agents: int, load: Load, answer_time_s: float) -> Figures:
    """Erlang A when the load has a patience, else Erlang C."""
    if load.patience_s is None:
        return erlang_c_figures(agents, load, answer_time_s)
    return erlang_a_figures(agents, load, answer_time_s)


@dataclass(frozen=True, slots=True)
class _QueueTerms:
    log_sum: float  # ln sum_k t_k
    mean_k: float = 0.0  # sum k t_k / sum t_k
    answered: float = 0.0  # sum t_k x / (x+k+1) / sum t_k
    answered_wait: float = 0.0  # sum t_k x / (x+k+1) H_k / sum t_k


def _queue_terms(x: float, log_z: float, *, first: int = 0, moments: bool = False) -> _QueueTerms:
    """Sums over k >= first of t_k = z^k / ((x+1)...(x+k)), z = e^log_z, from the largest term outwards, in
    units of it (and, with ``moments``, the sums weighted by k, by x / (x+k+1) and by that
    times H_k, divided by the plain sum).

    t_k / t_{k-1} = z / (x+k) >= 1 while k <= z - x, so the largest is at k = floor(z - x).
    The loops are written out (no helper per term): near critical load they run
    O(sqrt(x)) times per evaluation."""
    z = math.exp(log_z)  # may underflow to 0: then only t_first counts, from its logarithm
    peak = max(first, math.floor(z - x)) if z > x else first
    log_peak = peak * log_z - (math.lgamma(x + peak + 1) - math.lgamma(x + 1)) if peak else 0.0
    eps = _RELATIVE_EPSILON
    if not moments:
        total = 1.0
        term, k = 1.0, peak
        while True:  # upwards
            k += 1
            term *= z / (x + k)
            total += term
            if term < eps * total:
                break
        term, k = 1.0, peak
        while k > first:  # downwards: t_{k-1} = t_k (x+k) / z
            term *= (x + k) / z
            k -= 1
            total += term
            if term < eps * total:
                break
        return _QueueTerms(log_peak + math.log(total))
    harmonic_peak = _harmonic(x, peak)
    answered = x / (x + peak + 1)
    total, s_k, s_answered, s_wait = 1.0, float(peak), answered, answered * harmonic_peak
    term, k, harmonic = 1.0, peak, harmonic_peak
    while True:  # upwards
        k += 1
        term *= z / (x + k)
        harmonic += 1.0 / (x + k + 1)
        answered = term * x / (x + k + 1)
        total += term
        s_k += k * term
        s_answered += answered
        s_wait += answered * harmonic
        if term < eps * total:
            break
    term, k, harmonic = 1.0, peak, harmonic_peak
    while k > first:  # downwards
        harmonic -= 1.0 / (x + k + 1)
        term *= (x + k) / z
        k -= 1
        answered = term * x / (x + k + 1)
        total += term
        s_k += k * term
        s_answered += answered
        s_wait += answered * harmonic
        if term < eps * total:
            break
    return _QueueTerms(log_peak + math.log(total), s_k / total, s_answered / total, s_wait / total)


def _harmonic(x: float, k: int) -> float:
    """H_k = sum_{i=1..k+1} 1 / (x + i)."""
    if k < 256:
        return math.fsum(1.0 / (x + i) for i in range(1, k + 2))
    return _digamma(x + k + 2) - _digamma(x + 1)


def _digamma(z: float) -> float:
    """psi(z) for z > 0: recurrence up to z >= 10, then the asymptotic series (error < 1e-15)."""
    shift = 0.0
    while z < 10.0:
        shift -= 1.0 / z
        z += 1.0
    inv2 = 1.0 / (z * z)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return shift + math.log(z) - 0.5 / z - series


def _idle(agents: int, answer_time_s: float) -> Figures:
    return Figures(agents, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, answer_time_s)


# ---- agents needed -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """What an interval's staffing must achieve; at least one of the four limits.

    ``service_level`` (a fraction in (0, 1)) of the calls answered within ``answer_time_s``;
    ``max_asa_s``; ``max_occupancy`` (a fraction in (0, 1]); ``max_abandon`` (a fraction in
    (0, 1), Erlang A only)."""

    answer_time_s: float = 20.0
    service_level: float | None = None
    max_asa_s: float | None = None
    max_occupancy: float | None = None
    max_abandon: float | None = None

    def __post_init__(self) -> None:
        _check_time(self.answer_time_s)
        if self.service_level is None and self.max_asa_s is None and self.max_occupancy is None \
                and self.max_abandon is None:
            raise ValueError("a target needs a service level, an ASA, an occupancy or an abandon limit")
        if self.service_level is not None and not 0 < self.service_level < 1:
            raise ValueError("service_level must be in (0, 1): 100% is never reached")
        if self.max_asa_s is not None and not (math.isfinite(self.max_asa_s) and self.max_asa_s > 0):
            raise ValueError("max_asa_s must be > 0")
        if self.max_occupancy is not None and not 0 < self.max_occupancy <= 1:
            raise ValueError("max_occupancy must be in (0, 1]")
        if self.max_abandon is not None and not 0 < self.max_abandon < 1:
            raise ValueError("max_abandon must be in (0, 1)")

    def met_by(self, result: Figures) -> bool:
        if not result.stable:
            return False
        if self.service_level is not None and result.service_level < self.service_level:
            return False
        if self.max_asa_s is not None and result.asa_s > self.max_asa_s:
            return False
        if self.max_occupancy is not None and result.occupancy > self.max_occupancy:
            return False
        return self.max_abandon is None or result.p_abandon <= self.max_abandon


def agents_needed(load: Load, target: Target, max_agents: int | None = None) -> Figures:
    """The fewest agents meeting every limit of ``target``, with what they achieve.

    Erlang C (no patience): from the smallest stable staffing up, one agent at a time, Erlang
    B carried along by its recursion ``B(n+1) = a B / (n + 1 + a B)``. Erlang A: each figure is
    monotone in the agents, so a galloping search then bisection. ``TargetUnreachable`` past
    ``max_agents`` (default: the traffic, divided by the occupancy limit if any, plus 50 times
    its square root, plus 1,000)."""
    traffic = load.traffic
    if target.max_abandon is not None and load.patience_s is None:
        raise ValueError("an abandon limit needs the callers' patience (Erlang A)")
    if traffic == 0:
        return _idle(0, target.answer_time_s)
    if max_agents is None:
        busy = traffic / (target.max_occupancy or 1.0)
        max_agents = math.ceil(busy + 50 * math.sqrt(traffic)) + 1000
    limit = max_agents
    if load.patience_s is None:
        return _erlang_c_agents(load, target, limit)
    return _erlang_a_agents(load, target, limit)


def _erlang_c_agents(load: Load, target: Target, limit: int) -> Figures:
    traffic, answer_time = load.traffic, target.answer_time_s
    agents = math.floor(traffic) + 1
    if target.max_occupancy is not None:
        agents = max(agents, math.ceil(traffic / target.max_occupancy - 1e-9))
    blocked = erlang_b(agents, traffic)
    while agents <= limit:
        result = _erlang_c_at(agents, traffic, load.aht_s, blocked, answer_time)
        if target.met_by(result):
            return result
        agents += 1
        blocked = traffic * blocked / (agents + traffic * blocked)
    raise TargetUnreachable(f"no staffing up to {limit} agents meets the target")


def _erlang_a_agents(load: Load, target: Target, limit: int) -> Figures:
    def meets(agents: int) -> Figures | None:
        result = erlang_a_figures(agents, load, target.answer_time_s)
        return result if target.met_by(result) else None

    low = 0  # known to fail (nobody answers)
    guess = max(1, math.ceil(load.traffic))
    step = max(1, math.ceil(math.sqrt(load.traffic)))
    found = meets(min(guess, limit))
    high = min(guess, limit)
    while found is None:  # gallop up
        low = high
        if high >= limit:
            raise TargetUnreachable(f"no staffing up to {limit} agents meets the target")
        high = min(limit, high + step)
        step *= 2
        found = meets(high)
    while high - low > 1:  # bisect: low fails, high meets
        middle = (low + high) // 2
        result = meets(middle)
        if result is None:
            low = middle
        else:
            high, found = middle, result
    return found


def scheduled_agents(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that ``agents`` are at work when ``shrinkage`` (a fraction of paid
    time: breaks, training, absence) is lost: ``ceil(agents / (1 - shrinkage))``."""
    if not 0 <= shrinkage < 1:
        raise ValueError("shrinkage must be in [0, 1)")
    if agents < 0:
        raise ValueError("agents must be >= 0")
    # The tolerance keeps 14 / 0.7 = 20.000000000000004 at 20.
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9)


# ---- checks ----------------------------------------------------------------------------------


def _check(agents: int, traffic: float) -> None:
    if agents < 0:
        raise ValueError("agents must be >= 0")
    if not (math.isfinite(traffic) and traffic >= 0):
        raise ValueError("traffic must be a finite number >= 0")


def _check_time(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError("answer_time_s must be a finite number >= 0")


def _probability(value: float) -> float:
    return min(1.0, max(0.0, value))
