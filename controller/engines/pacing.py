"""The dialer's pacing: how many new lines a campaign dials now, and what happens to a person
who answers when no agent is free.

Pure: ``decide(settings, live, history, window)`` takes the campaign's live state (agents free,
talking and wrapping up; calls being dialed), its recent history (how recent attempts ended and
how long they took, recent talk times) and its rolling abandonment figures, and returns a
:class:`PacingDecision`. No clock (ages are given in seconds), no I/O, no randomness: the same
inputs give the same answer. The dialer service calls it about once a second per running
campaign and originates ``lines`` calls from the hopper. docs/pacing.md has the formulas and
the reasons; in short:

- **preview**: the engine dials nothing; every free agent may be offered a contact
  (``previews``), and the agent places the call.
- **progressive**: one call per free agent, counting the calls already being dialed:
  ``free - dialing``. Never more lines than free agents, so (agents staying logged in) nobody
  who answers lacks an agent.
- **power**: a fixed ratio: ``ceil(ratio * free) - dialing``.
- **predictive**: the most lines such that, among the people expected to answer within the
  ring horizon (the calls being dialed and the new ones), the expected share that finds no
  agent is at most the *planning rate*. When people answer is read from the latest attempts,
  when busy agents free up from the latest talk times (both with the calls still in progress
  as censored observations: Kaplan-Meier); the expected number of people left without an
  agent comes from following the distribution of idle agents over the horizon in 2-second
  steps. The planning rate is the abandonment target corrected by the rolling abandonment
  actually measured: the closer the measured rate is to the target, the lower it is, and at or
  over the target predictive dials like progressive. With too little history, predictive also
  dials like progressive. It never dials fewer lines than progressive would.

Answered with no free agent (:func:`on_answer`): a person who answers is connected to a free
agent (:class:`ConnectToAgent`) or, with none free, gets a :class:`SafeHarbor`: the dialer may
hold the call for an agent who frees up until ``connect_by`` (``hold_for_agent_s`` after the
answer, under 2 s), and otherwise plays the campaign's message no later than ``play_by`` (2 s
after the answer) and counts the call as abandoned.

Abandonment rate, everywhere here: calls a person answered and no agent took (safe-harbor
messages) over calls a person answered (AMD said human), in the campaign's rolling window.
Machine answers are in neither count.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate, groupby, repeat
from operator import add, mul, sub

from controller.domain.errors import InvalidRequest

# The longest an answered person may wait for an agent or a message (FCC 47 CFR 64.1200(a)(7):
# the message within two seconds after the greeting; Ofcom asks the same).
SAFE_HARBOR_S = 2.0

# The steps in which predictive follows agents and answers over the horizon, in seconds: within
# a step, agents freeing up are counted before people answering (docs/pacing.md).
STEP_S = 2.0

# How far above the target predictive may plan while the measured rate is far under it.
PLANNING_GAIN = 2.0


class DialMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class Outcome(StrEnum):
    """How a dial attempt ended, as the pacing needs it."""

    HUMAN = "human"  # answered, AMD said human: needs an agent
    MACHINE = "machine"  # answered, AMD said machine: hung up or left a message, no agent
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # congestion, invalid number, carrier error


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recent dial attempt: how it ended and how long after the dial. For ``HUMAN``,
    ``seconds`` runs to the moment the call needs an agent (after AMD); for the others, to the
    moment the line was no longer being dialed."""

    outcome: Outcome
    seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.outcome, Outcome):
            raise InvalidRequest(f"unknown attempt outcome {self.outcome!r}")
        _finite("attempt seconds", self.seconds)
        if self.seconds < 0:
            raise InvalidRequest("attempt seconds must not be negative")


@dataclass(frozen=True, slots=True)
class PacingSettings:
    """A campaign's pacing parameters.

    ``power_ratio``: lines per free agent in power mode (1 = progressive). ``target_abandon_rate``:
    the share of person-answered calls allowed to find no agent (0.03: the FCC's and Ofcom's
    3 %). ``hold_for_agent_s``: how long an answered person is held for an agent who frees up
    before the message plays; under :data:`SAFE_HARBOR_S` to leave time to start the message.
    ``max_lines``: the campaign's line (trunk) limit, counting the calls being dialed.
    ``max_dial_level``: predictive never has more lines being dialed than this many per working
    agent (free, talking or wrapping up). ``min_attempts`` / ``min_human_answers`` /
    ``min_talks``: the history predictive needs before it predicts (otherwise it dials like
    progressive). ``min_window_answers``: below this many answered calls in the rolling window
    the measured rate means little, and predictive plans for half the target.
    """

    mode: DialMode
    power_ratio: float = 1.0
    target_abandon_rate: float = 0.03
    hold_for_agent_s: float = 1.0
    max_lines: int | None = None
    max_dial_level: float = 10.0
    min_attempts: int = 100
    min_human_answers: int = 20
    min_talks: int = 20
    min_window_answers: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.mode, DialMode):
            raise InvalidRequest(f"unknown dial mode {self.mode!r}")
        _finite("power_ratio", self.power_ratio)
        if not 1.0 <= self.power_ratio <= 20.0:
            raise InvalidRequest("power_ratio must be between 1 and 20 lines per free agent")
        _finite("target_abandon_rate", self.target_abandon_rate)
        if not 0.0 < self.target_abandon_rate < 1.0:
            raise InvalidRequest("target_abandon_rate must be above 0 and below 1")
        _finite("hold_for_agent_s", self.hold_for_agent_s)
        if not 0.0 <= self.hold_for_agent_s < SAFE_HARBOR_S:
            raise InvalidRequest(f"hold_for_agent_s must be at least 0 and under {SAFE_HARBOR_S:g} s")
        if self.max_lines is not None and self.max_lines < 0:
            raise InvalidRequest("max_lines must not be negative")
        _finite("max_dial_level", self.max_dial_level)
        if self.max_dial_level < 1.0:
            raise InvalidRequest("max_dial_level must be at least 1")
        for name in ("min_attempts", "min_human_answers", "min_talks", "min_window_answers"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"{name} must be at least 1")


@dataclass(frozen=True, slots=True)
class CampaignLive:
    """What the campaign's agents and lines are doing now.

    ``free_agents``: logged in, ready, not offered a call. ``talking_s``: for each agent on a
    campaign call, seconds since it was connected. ``wrapping_up_s``: for each agent in
    wrap-up, seconds of wrap-up left. ``dialing_s``: for each call dialed and not yet settled
    (ringing, or answered and still in AMD), seconds since it was dialed. Paused agents and
    agents on other calls are in none of these.
    """

    free_agents: int
    talking_s: tuple[float, ...] = ()
    wrapping_up_s: tuple[float, ...] = ()
    dialing_s: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.free_agents < 0:
            raise InvalidRequest("free_agents must not be negative")
        for name in ("talking_s", "wrapping_up_s", "dialing_s"):
            _check_seconds(name, getattr(self, name))

    @property
    def working_agents(self) -> int:
        return self.free_agents + len(self.talking_s) + len(self.wrapping_up_s)


@dataclass(frozen=True, slots=True)
class DialHistory:
    """The campaign's recent past, as the pacing reads it. Two cohorts, taken by *start*:

    - the latest calls dialed (a few hundred to a few thousand; more than the lines the
      campaign has up at once): ``attempt_s``, how long each one that ended stayed up (dial →
      settled, every outcome), and ``human_s``, the durations of those a person answered (dial
      → needs an agent, AMD included); ``machine_answers``, how many a machine answered. Its
      members still being dialed are ``CampaignLive.dialing_s``.
    - the latest calls connected to an agent (a few hundred): ``talk_s``, the talk times of
      those that ended. Its members still talking are ``CampaignLive.talking_s``.

    Cohorts by start, not "the last N that ended": the members still in progress are then
    censored observations of the same cohort, and the estimates stay right when most of it is
    still in progress (at the start, only the short calls have ended). ``wrap_up_s``: the
    wrap-up that follows a call (the campaign's setting, or the recent mean). Build it with
    :meth:`of` from :class:`Attempt` records, or directly; the tuples are kept sorted."""

    attempt_s: tuple[float, ...] = ()
    human_s: tuple[float, ...] = ()
    machine_answers: int = 0
    talk_s: tuple[float, ...] = ()
    wrap_up_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("attempt_s", "human_s", "talk_s"):
            values = getattr(self, name)
            _check_seconds(name, values)
            # Sorting a sorted tuple is one linear pass: cheap enough to do every time.
            object.__setattr__(self, name, tuple(sorted(values)))
        if len(self.human_s) + self.machine_answers > len(self.attempt_s):
            raise InvalidRequest("answered attempts cannot outnumber attempts")
        if self.machine_answers < 0:
            raise InvalidRequest("machine_answers must not be negative")
        _finite("wrap_up_s", self.wrap_up_s)
        if self.wrap_up_s < 0:
            raise InvalidRequest("wrap_up_s must not be negative")

    @classmethod
    def of(
        cls, attempts: Iterable[Attempt], talk_s: Iterable[float] = (), wrap_up_s: float = 0.0
    ) -> DialHistory:
        attempts = tuple(attempts)
        if not all(isinstance(a, Attempt) for a in attempts):
            raise InvalidRequest("attempts must be Attempt records")
        return cls(
            attempt_s=tuple(a.seconds for a in attempts),
            human_s=tuple(a.seconds for a in attempts if a.outcome is Outcome.HUMAN),
            machine_answers=sum(1 for a in attempts if a.outcome is Outcome.MACHINE),
            talk_s=tuple(talk_s),
            wrap_up_s=wrap_up_s,
        )

    @property
    def answer_rate(self) -> float | None:
        """Share of attempts answered (by a person or a machine)."""
        if not self.attempt_s:
            return None
        return (len(self.human_s) + self.machine_answers) / len(self.attempt_s)

    @property
    def machine_rate(self) -> float | None:
        """Share of answered attempts that AMD classified as a machine."""
        answered = len(self.human_s) + self.machine_answers
        return self.machine_answers / answered if answered else None


@dataclass(frozen=True, slots=True)
class AbandonWindow:
    """The campaign's rolling window: calls a person answered, and how many of them no agent
    took (abandoned: they got the safe-harbor message)."""

    answered: int = 0
    abandoned: int = 0

    def __post_init__(self) -> None:
        if self.answered < 0 or self.abandoned < 0:
            raise InvalidRequest("answered and abandoned must not be negative")
        if self.abandoned > self.answered:
            raise InvalidRequest("abandoned calls are answered calls: abandoned cannot exceed answered")

    @property
    def rate(self) -> float | None:
        return self.abandoned / self.answered if self.answered else None


class Basis(StrEnum):
    """Which rule produced a decision."""

    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"
    WARMING_UP = "predictive-warming-up"  # too little history: dialed like progressive
    OVER_TARGET = "predictive-over-target"  # measured rate at or over target: like progressive


@dataclass(frozen=True, slots=True)
class PacingDecision:
    """``lines``: calls to originate now. ``previews``: contacts to offer free agents for
    preview (preview mode only). ``planning_rate``: the abandonment share predictive aimed at
    this time; ``expected_abandon_rate``: what the model expects of the calls in flight with the
    new ones; ``dial_level``: lines being dialed per working agent after this decision."""

    lines: int
    basis: Basis
    previews: int = 0
    planning_rate: float | None = None
    expected_abandon_rate: float | None = None
    dial_level: float | None = None


def decide(
    settings: PacingSettings,
    live: CampaignLive,
    history: DialHistory,
    window: AbandonWindow,
) -> PacingDecision:
    """How many new lines the campaign dials now."""
    dialing = len(live.dialing_s)
    progressive = max(0, live.free_agents - dialing)
    if settings.mode is DialMode.PREVIEW:
        return PacingDecision(0, Basis.PREVIEW, previews=live.free_agents)
    if settings.mode is DialMode.PROGRESSIVE:
        return _capped(settings, live, progressive, Basis.PROGRESSIVE)
    if settings.mode is DialMode.POWER:
        # The epsilon keeps 1.5 * 2 from becoming 3.0000000000000004 and rounding up to 4.
        wanted = math.ceil(settings.power_ratio * live.free_agents - 1e-9)
        return _capped(settings, live, max(0, wanted - dialing), Basis.POWER)
    return _predictive(settings, live, history, window, progressive)


def planning_rate(settings: PacingSettings, window: AbandonWindow) -> float:
    """The abandonment share predictive plans for, from the target and the measured rate.

    With ``x`` = measured rate / target: ``target * PLANNING_GAIN * (1 - x**4)``: above the
    target while the window is well under it (the model errs on the careful side in some
    campaigns, and the window has room), falling steeply as the window nears the target, and 0
    at or over it (then predictive dials like progressive). With fewer than
    ``min_window_answers`` answered calls the measured rate is noise: half the target. Why
    this shape: docs/pacing.md.
    """
    target = settings.target_abandon_rate
    if window.answered < settings.min_window_answers:
        return target / 2
    x = window.abandoned / window.answered / target
    if x >= 1.0:
        return 0.0
    return target * PLANNING_GAIN * (1.0 - x**4)


# --- predictive ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Forecast:
    """Per step of :data:`STEP_S` over the horizon (index 0: already true now): the expected
    number of agents freeing up, of people answering the calls already being dialed, and the
    probability that one new call is answered by a person in that step."""

    free_now: int
    agents: tuple[float, ...]
    answers: tuple[float, ...]
    new_call: tuple[float, ...]
    freeing: tuple[list[float], ...]  # the Poisson distribution of ``agents`` per step


def _predictive(
    settings: PacingSettings,
    live: CampaignLive,
    history: DialHistory,
    window: AbandonWindow,
    progressive: int,
) -> PacingDecision:
    humans = history.human_s
    if (
        len(history.attempt_s) < settings.min_attempts
        or len(humans) < settings.min_human_answers
        or len(history.talk_s) < settings.min_talks
    ):
        return _capped(settings, live, progressive, Basis.WARMING_UP)
    rate = planning_rate(settings, window)
    if rate <= 0.0:
        return _capped(settings, live, progressive, Basis.OVER_TARGET)

    forecast = _forecast(settings, live, history, humans)
    cap = _line_cap(settings, live)
    lines = _most_lines(forecast, rate, cap)
    lines = min(max(lines, progressive), cap)
    lost, answers = _losses(forecast, lines)
    return PacingDecision(
        lines,
        Basis.PREDICTIVE,
        planning_rate=rate,
        expected_abandon_rate=lost / answers if answers > 0 else None,
        dial_level=_dial_level(live, lines),
    )


def _most_lines(forecast: _Forecast, rate: float, cap: int) -> int:
    """The most new lines n (up to ``cap``) with expected losses <= rate x expected answers.

    excess(n) = losses(n) - rate * answers(n) is convex in n (each new call is likelier to be
    lost than the one before, answers grow linearly), so the allowed n are 0..n_max, or none
    when the calls already dialing are over the rate (then 0: dialing more to dilute them is
    not done). Convexity also bounds the search, which keeps it to a few evaluations: the line
    through two points lies below the curve beyond them (an upper bound for n_max) and above
    it between them (a lower bound)."""
    excess: dict[int, float] = {}

    def at(lines: int) -> float:
        if lines not in excess:
            lost, answers = _losses(forecast, lines)
            excess[lines] = lost - rate * answers
        return excess[lines]

    if cap <= 0 or at(0) > 0.0:
        return 0
    low, high = 0, cap + 1  # excess(low) <= 0; every n >= high is over, or past the cap
    probe = 1
    while high - low > 1:
        probe = min(max(probe, low + 1), high - 1)
        if at(probe) <= 0.0:
            slope = (at(probe) - at(low)) / (probe - low)
            low = probe
            if slope > 0.0:  # the line through the last two allowed points, below the curve
                high = min(high, low + math.floor(-at(low) / slope) + 1)
            probe = 2 * low
        else:
            high = probe  # the chord from low to here lies above the curve: its root is allowed
            root = low + at(low) / (at(low) - at(probe)) * (probe - low)
            low = max(low, min(math.floor(root), high - 1))
            probe = low + 1
    return low


def _forecast(
    settings: PacingSettings, live: CampaignLive, history: DialHistory, humans: tuple[float, ...]
) -> _Forecast:
    """Agents and answers over the horizon (up to the longest recent human answer), per step.

    Each yes/no event (an agent frees up, a person answers a call) is put in the step where it
    happens, with its probability read off the recent samples. The samples are cohorts (the
    latest calls dialed, the latest calls connected) whose members still in progress are the
    live ones: censored observations. So the distributions are the Kaplan-Meier estimate for
    talk times and its competing-risks form (Aalen-Johansen) for how attempts end, which stay
    right when most of a cohort is still in progress (the first minutes of a campaign, when only
    the short calls have ended)."""
    hold, wrap, step = settings.hold_for_agent_s, history.wrap_up_s, STEP_S
    steps = max(1, math.ceil(humans[-1] / step))
    horizon = steps * step
    ceil = math.ceil
    agents = [0.0] * (steps + 1)
    answers = [0.0] * (steps + 1)

    # Agents. A person answering at u can be held until u + hold for an agent, so an agent
    # freeing up at f serves people answering from f - hold: its step is ceil((f - hold) / step)
    # (0: already).
    for left in live.wrapping_up_s:
        at = left - hold
        if at <= horizon:
            agents[ceil(at / step) if at > 0.0 else 0] += 1.0
    talks = _Estimate.of(history.talk_s, None, live.talking_s)
    mean_talk = sum(history.talk_s) / len(history.talk_s)
    times, mass = talks.times, talks.mass
    for age in live.talking_s:
        alive = talks.surviving(age)
        first = bisect_right(times, age)
        if alive <= 0.0 or first == len(times):
            # Longer than every talk that ended: ends after an exponential time with the mean.
            _exponential_ends(agents, mean_talk, wrap - hold, step)
            continue
        shift = wrap - hold - age
        for j in range(first, len(times)):
            at = times[j] + shift
            if at > horizon:
                break
            agents[ceil(at / step) if at > 0.0 else 0] += mass[j] / alive

    # Answers. ``reached[i]``: P(a new call is answered by a person at or before times[i]).
    attempts = _Estimate.of(history.attempt_s, humans, live.dialing_s)
    times = attempts.times
    reached = list(accumulate(attempts.mass))

    def answered_by(t: float) -> float:
        i = bisect_right(times, t)
        return reached[i - 1] if i else 0.0

    # (An answer at 0 s, if any, is put in the first step.)
    new_call = [0.0, answered_by(step)]
    new_call += [answered_by(k * step) - answered_by((k - 1) * step) for k in range(2, steps + 1)]
    # Calls being dialed, grouped by age (calls dialed together have the same age: exact, and
    # cheaper): answered in step k given still being dialed at that age.
    for age, count in Counter(live.dialing_s).items():
        alive = attempts.surviving(age)
        if alive <= 0.0:
            continue
        weight = count / alive
        before = answered_by(age)
        for k in range(1, steps + 1):
            by = answered_by(age + k * step)
            answers[k] += weight * (by - before)
            before = by
    freeing = tuple(_poisson(mean) if mean > 0.0 else [1.0] for mean in agents)
    return _Forecast(live.free_agents, tuple(agents), tuple(answers), tuple(new_call), freeing)


@dataclass(frozen=True, slots=True)
class _Estimate:
    """How long things last, from a cohort with some members still in progress (censored).

    ``times``: the distinct times at which a member ended *the way that counts* (a talk ended;
    an attempt was answered by a person); ``mass``: the probability of ending that way at that
    time; ``surviving(t)``: the probability of still being in progress after t (any way of
    ending). Kaplan-Meier / Aalen-Johansen: at each time a member ended, the hazard is the
    number that ended then over the number still at risk (ended later or in progress at least
    that long)."""

    times: tuple[float, ...]
    mass: tuple[float, ...]
    ended_at: tuple[float, ...]
    survival: tuple[float, ...]

    @staticmethod
    def of(
        ended: tuple[float, ...], counted: tuple[float, ...] | None, censored: tuple[float, ...]
    ) -> _Estimate:
        """``ended``: the sorted durations of the members that ended; ``counted``: the sorted
        durations of those that ended the way that counts (a subset; None: all of them);
        ``censored``: the ages of the members still in progress."""
        censored = tuple(sorted(censored))
        n_ended, n_censored = len(ended), len(censored)
        # Ended members taken one at a time, each with those still at risk when it ended (ended
        # no earlier, or in progress at least that long). Ties need no special case: the
        # product (1 - 1/n)(1 - 1/(n - 1))... over d tied members is 1 - d/n.
        at_risk = [n_ended - i + n_censored - bisect_left(censored, t) for i, t in enumerate(ended)]
        survival = list(accumulate([1.0 - 1.0 / n for n in at_risk], mul))
        before = [1.0, *survival]  # before[i]: still in progress just before member i ended
        if counted is None:
            times, mass = ended, tuple(map(sub, before, survival))
        else:
            times_, mass_ = [], []
            for t, run in groupby(counted):
                first = bisect_left(ended, t)
                last = first + sum(1 for _ in run)  # (at a tie, the counted ones taken first)
                times_.append(t)
                mass_.append(before[first] - survival[last - 1])
            times, mass = tuple(times_), tuple(mass_)
        return _Estimate(times, mass, ended, tuple(survival))

    def surviving(self, age: float) -> float:
        """P(still in progress after ``age``)."""
        k = bisect_right(self.ended_at, age)
        return self.survival[k - 1] if k else 1.0


def _exponential_ends(agents: list[float], mean: float, offset: float, step: float) -> None:
    """A call longer than every recent talk: taken to end after an exponential time with the
    mean talk time (then ``offset`` more), spread over the steps."""
    before = 0.0
    for k in range(len(agents)):
        t = k * step - offset
        p = 0.0 if t <= 0.0 else (1.0 - math.exp(-t / mean) if mean > 0.0 else 1.0)
        agents[k] += p - before
        before = p


# Probabilities below this are dropped from the idle agents' distribution (the mass lost is
# far below anything the abandonment rate can show).
_NEGLIGIBLE = 1e-6


def _losses(forecast: _Forecast, lines: int) -> tuple[float, float]:
    """Expected people left without an agent, and expected people answering, with ``lines``
    new calls, over the horizon.

    The number of idle agents X is followed step by step as a distribution: X starts at the
    agents free now; in each step it gains the agents freeing up, then each person answering
    takes one, and a person who finds X = 0 is lost. The agents freeing up and the people
    answering in one step are each taken as Poisson with the expected number (a sum of many
    unlikely independent yes/no events; slightly wider than the truth, so on the careful side).
    Freeing up before answering within a step is the optimistic order; steps of one second
    keep that small. ``idle[x]`` is P(X = low + x): only the values with some probability are
    kept.
    """
    low, idle = forecast.free_now, [1.0]
    lost = answers = 0.0
    steps = zip(forecast.freeing, forecast.answers, forecast.new_call, strict=True)
    for freeing, answering, per_call in steps:
        if len(freeing) > 1:
            idle = _convolve(idle, freeing)
        arriving = answering + lines * per_call
        if arriving > 0.0:
            answers += arriving
            step_lost, low, idle = _take(low, idle, _poisson(arriving))
            lost += step_lost
    return lost, answers


def _poisson(mean: float) -> list[float]:
    """P(N = 0), P(N = 1), ... for N Poisson, up to where the rest is negligible."""
    p = math.exp(-mean)
    pmf = [p]
    total, k = p, 0
    while total < 1.0 - _NEGLIGIBLE:
        k += 1
        p *= mean / k
        pmf.append(p)
        total += p
    return pmf


def _convolve(first: list[float], second: list[float]) -> list[float]:
    """The distribution of the sum of two independent counts (each from its own ``low``)."""
    if len(first) < len(second):
        first, second = second, first
    out = [0.0] * (len(first) + len(second) - 1)
    width = len(first)
    for i, q in enumerate(second):
        if q > _NEGLIGIBLE:
            out[i : i + width] = map(add, out[i : i + width], map(mul, first, repeat(q)))
    return out


def _take(low: int, idle: list[float], pmf: list[float]) -> tuple[float, int, list[float]]:
    """N people answer (``pmf``): the expected number who find no idle agent, E[max(N - X, 0)],
    and the distribution of max(X - N, 0) (as ``low``, ``idle``)."""
    # Y = X - N, from low - (len(pmf) - 1): the distribution of X convolved with N reversed.
    y_low = low - (len(pmf) - 1)
    y = _convolve(idle, pmf[::-1])
    if y_low >= 0:
        lost, new_low, out = 0.0, y_low, y
    else:
        below = -y_low  # y[i] is P(Y = y_low + i); the first ``below`` are Y < 0
        lost = sum(p * (below - i) for i, p in enumerate(y[:below]))
        out = y[below:] or [0.0]
        out[0] += sum(y[:below])
        new_low = 0
    start = 0
    while start < len(out) - 1 and out[start] < _NEGLIGIBLE:
        start += 1
    return lost, new_low + start, _trimmed_end(out[start:])


def _trimmed_end(values: list[float]) -> list[float]:
    end = len(values)
    while end > 1 and values[end - 1] < _NEGLIGIBLE:
        end -= 1
    return values[:end]


# --- limits -------------------------------------------------------------------------------


def _line_cap(settings: PacingSettings, live: CampaignLive) -> int:
    dialing = len(live.dialing_s)
    cap = math.floor(settings.max_dial_level * live.working_agents + 1e-9) - dialing
    if settings.max_lines is not None:
        cap = min(cap, settings.max_lines - dialing)
    return max(0, cap)


def _capped(settings: PacingSettings, live: CampaignLive, lines: int, basis: Basis) -> PacingDecision:
    if settings.max_lines is not None:
        lines = min(lines, max(0, settings.max_lines - len(live.dialing_s)))
    return PacingDecision(lines, basis, dial_level=_dial_level(live, lines))


def _dial_level(live: CampaignLive, lines: int) -> float | None:
    working = live.working_agents
    return (len(live.dialing_s) + lines) / working if working else None


def _check_seconds(name: str, values: tuple[float, ...]) -> None:
    """Every value a finite number of seconds, not negative. (Summed and min'ed rather than
    checked one by one in Python: this runs on every decision, over hundreds of values.)"""
    if not values:
        return
    try:
        total = math.fsum(values)
    except TypeError:
        raise InvalidRequest(f"{name} must hold numbers of seconds") from None
    if not math.isfinite(total):
        raise InvalidRequest(f"{name} must hold finite numbers of seconds")
    if min(values) < 0:
        raise InvalidRequest(f"{name} must not hold negative seconds")


def _finite(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number, not {value!r}")


# --- answered with no free agent ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectToAgent:
    """A person answered and an agent is free: connect them now."""

    call_id: str


@dataclass(frozen=True, slots=True)
class SafeHarbor:
    """A person answered and no agent is free. The dialer holds the call for an agent who frees
    up until ``connect_by`` (then it is an ordinary connected call); otherwise, at
    ``connect_by`` and never after ``play_by`` (2 s after the answer), it plays ``media`` and
    hangs up, and the call counts as abandoned. Times are on the caller's clock (the one
    ``answered_at`` was given in)."""

    call_id: str
    answered_at: float
    connect_by: float
    play_by: float
    media: tuple[str, ...]


def on_answer(
    settings: PacingSettings,
    call_id: str,
    answered_at: float,
    free_agents: int,
    media: tuple[str, ...],
) -> ConnectToAgent | SafeHarbor:
    """What happens to a call a person answered (AMD said human, or no AMD)."""
    _finite("answered_at", answered_at)
    if free_agents < 0:
        raise InvalidRequest("free_agents must not be negative")
    if free_agents > 0:
        return ConnectToAgent(call_id)
    if not media:
        raise InvalidRequest("a safe-harbor message needs media to play")
    return SafeHarbor(
        call_id,
        answered_at,
        connect_by=answered_at + settings.hold_for_agent_s,
        play_by=answered_at + SAFE_HARBOR_S,
        media=media,
    )


def claim_for_free_agent(waiting: Sequence[SafeHarbor], now: float) -> SafeHarbor | None:
    """An agent just became free: the held call it takes (the one answered first, among those
    still before their ``connect_by``), or None."""
    holdable = [h for h in waiting if now < h.connect_by]
    return min(holdable, key=lambda h: (h.answered_at, h.call_id)) if holdable else None


def due_messages(waiting: Sequence[SafeHarbor], now: float) -> tuple[SafeHarbor, ...]:
    """Held calls whose time is up: play the message now; each counts as abandoned."""
    return tuple(h for h in waiting if now >= h.connect_by)
