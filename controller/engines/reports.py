"""Reports: the queue interval report, the agent report and the campaign report, from plain records.

Pure: the storage hands in one record per queue entry (a caller's stay in one queue) and the
agent state log; this module cuts the period into intervals and counts. No clock: the end of
what is known (``until``) is passed in.

Intervals are local wall-clock buckets in the report's time zone, cut in real time from each
local midnight (engines/forecast.py ``day_intervals``): a 30-minute report of the day the clocks
go forward has 46 buckets (23 hours), of the day they go back 50 (25 hours, two 01:00 or 02:00
buckets, told apart by their UTC offset). A day bucket runs from one local midnight to the next,
a week bucket from a local Monday midnight to the next.

A queue entry counts in the bucket where it **entered** the queue (the industry's "offered in
the interval"), whatever happened later; an agent state counts in every bucket it overlaps, split
exactly at the boundaries; a handled call's handle time counts in the bucket where the agent took
it. Every formula is stated once in docs/reports.md.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from controller.engines.forecast import day_intervals


class Interval(StrEnum):
    """How a report's period is cut."""

    m15 = "15"
    m30 = "30"
    m60 = "60"
    day = "day"
    week = "week"


class Outcome(StrEnum):
    """How a queue entry ended."""

    answered = "answered"  # an agent was connected
    abandoned = "abandoned"  # the caller hung up while waiting
    overflowed = "overflowed"  # the queue sent it on (max wait, no agent, ...)
    moved = "moved"  # a supervisor moved it to another queue or an agent
    callback = "callback"  # the caller left asking to be called back
    voicemail = "voicemail"  # the caller left to leave a message
    waiting = "waiting"  # still waiting at the end of what is known


# Default edges (seconds) of the wait-time distributions: [0,10), [10,20), ... [300, inf).
WAIT_EDGES_S: tuple[int, ...] = (10, 20, 30, 60, 120, 180, 300)

# How an agent's missed offer shows in the state log: the reason of the state that follows
# ``reserved`` (engines/acd.py: a no-answer, a busy device, an unreachable one).
MISS_REASONS = frozenset({"no answer", "busy", "unreachable"})


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One stay of a caller in one queue (a call that overflowed has one per queue)."""

    call_id: str
    queue: str
    entered_at: datetime  # aware
    outcome: Outcome
    left_at: datetime | None = None  # answered, hung up, sent on; None while waiting
    agent_id: str | None = None
    talk_s: float | None = None  # answered: connection to the agent leg's end (hold included)
    hold_s: float | None = None  # of the talk, on hold (None: not known)
    wrap_s: float | None = None  # the agent's wrap-up after it (None: not known)
    transferred: bool = False  # the agent transferred it on

    @property
    def wait_s(self) -> float | None:
        return None if self.left_at is None else max(0.0, _seconds(self.entered_at, self.left_at))

    @property
    def handle_s(self) -> float | None:
        """Talk (hold included) plus wrap-up where known; None when the talk is not known."""
        if self.outcome is not Outcome.answered or self.talk_s is None:
            return None
        return self.talk_s + (self.wrap_s or 0.0)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A row of the agent state log: from ``at`` the agent is in ``state``."""

    agent_id: str
    at: datetime  # aware
    state: str  # logged_out, available, reserved, on_call, wrap_up, paused, unavailable
    reason: str = ""
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime  # aware, in the report's zone (its offset tells a repeated hour apart)
    end: datetime

    # Arithmetic and comparisons are done in UTC: two datetimes with the same ZoneInfo are
    # subtracted and compared by wall clock, which is wrong across a change of the clocks.
    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)


@dataclass(slots=True)
class QueueFigures:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0  # of the abandoned, within the first short_abandon_s
    overflowed: int = 0  # sent on by the queue or moved by a supervisor
    callbacks: int = 0  # left asking to be called back
    voicemails: int = 0
    waiting: int = 0  # still waiting at the end of the data
    answered_in_threshold: int = 0
    transfers: int = 0
    wait_answered_s: float = 0.0  # sum, for the ASA
    handled: int = 0  # answered with a known handle time
    handle_s: float = 0.0  # sum, for the AHT
    hold_s: float = 0.0
    longest_wait_s: float = 0.0
    answered_waits: list[int] = field(default_factory=list)  # counts per distribution bucket
    abandoned_waits: list[int] = field(default_factory=list)

    @property
    def service_level(self) -> float | None:
        """Answered within the threshold / (offered - short abandons); None with no call."""
        base = self.offered - self.short_abandoned
        return self.answered_in_threshold / base if base > 0 else None

    @property
    def asa_s(self) -> float | None:
        return self.wait_answered_s / self.answered if self.answered else None

    @property
    def aht_s(self) -> float | None:
        return self.handle_s / self.handled if self.handled else None

    @property
    def abandon_rate(self) -> float | None:
        """Abandoned (short abandons excluded) / (offered - short abandons)."""
        base = self.offered - self.short_abandoned
        return (self.abandoned - self.short_abandoned) / base if base > 0 else None


@dataclass(frozen=True, slots=True)
class QueueRow:
    queue: str
    bucket: Bucket | None  # None: the queue's total over the period
    figures: QueueFigures


@dataclass(slots=True)
class AgentFigures:
    logged_in_s: float = 0.0
    available_s: float = 0.0  # ready for calls, ringing included
    ringing_s: float = 0.0  # of available_s, reserved for an offer
    talk_s: float = 0.0
    wrap_s: float = 0.0
    paused_s: float = 0.0
    unavailable_s: float = 0.0  # logged in on a device that cannot be reached
    pause_by_reason: dict[str, float] = field(default_factory=dict)
    calls_handled: int = 0
    missed_offers: int = 0
    handle_s: float = 0.0  # of the calls handled here (whole call, where it was taken)

    @property
    def occupancy(self) -> float | None:
        """(talk + wrap-up) / (talk + wrap-up + available)."""
        busy = self.talk_s + self.wrap_s
        base = busy + self.available_s
        return busy / base if base > 0 else None

    @property
    def aht_s(self) -> float | None:
        return self.handle_s / self.calls_handled if self.calls_handled else None


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent_id: str
    bucket: Bucket | None  # None: the agent's total over the period
    figures: AgentFigures


# ---- buckets --------------------------------------------------------------------------------


def buckets(first: date, last: date, tz: ZoneInfo, interval: Interval) -> list[Bucket]:
    """The period's buckets, local days ``first`` to ``last`` included. Week buckets start on
    the Monday of ``first``'s week and end after the Sunday of ``last``'s."""
    if last < first:
        raise ValueError("the period ends before it starts")
    if interval is Interval.week:
        monday = first - timedelta(days=first.weekday())
        starts = []
        while monday <= last:
            starts.append(_midnight(monday, tz))
            monday += timedelta(days=7)
        ends = [*starts[1:], _midnight(monday, tz)]
        return [Bucket(s, e) for s, e in zip(starts, ends, strict=True)]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if interval is Interval.day:
        return [Bucket(_midnight(d, tz), _midnight(d + timedelta(days=1), tz)) for d in days]
    starts = [start for d in days for start in day_intervals(d, tz, int(interval.value))]
    ends = [*starts[1:], _midnight(last + timedelta(days=1), tz)]
    return [Bucket(s, e.astimezone(tz)) for s, e in zip(starts, ends, strict=True)]


def _seconds(start: datetime, end: datetime) -> float:
    """Real seconds between two aware instants (through UTC: see Bucket)."""
    return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    # Through UTC and back: a midnight that does not exist (a zone whose clocks jump at 00:00)
    # becomes the first instant of the day that does.
    return datetime.combine(day, time(0), tz).astimezone(UTC).astimezone(tz)


class _Locator:
    """Which bucket an instant falls in, in UTC (see Bucket)."""

    def __init__(self, cuts: Sequence[Bucket]) -> None:
        self.starts = [b.start_utc for b in cuts]
        self.ends = [b.end_utc for b in cuts]

    def index(self, instant: datetime) -> int | None:
        instant = instant.astimezone(UTC)
        i = bisect_right(self.starts, instant) - 1
        if i < 0 or instant >= self.ends[i]:
            return None
        return i


def _distribution_index(wait_s: float, edges: Sequence[int]) -> int:
    return bisect_right(edges, wait_s)


# ---- the queue interval report ------------------------------------------------------------------


def queue_report(entries: Iterable[QueueEntry], cuts: Sequence[Bucket], *, threshold_s: float,
                 short_abandon_s: float, wait_edges: Sequence[int] = WAIT_EDGES_S,
                 queues: Iterable[str] = ()) -> list[QueueRow]:
    """One row per (queue, bucket), every bucket of every queue seen (or named in ``queues``),
    then one total row per queue; queues in name order. Entries outside the buckets are left out.

    Answered within the threshold: wait <= ``threshold_s``. A short abandon: wait <
    ``short_abandon_s``."""
    locate = _Locator(cuts)
    slots = len(edges := tuple(wait_edges)) + 1
    per: dict[str, list[QueueFigures]] = {}

    def figures_of(queue: str) -> list[QueueFigures]:
        if queue not in per:
            per[queue] = [QueueFigures(answered_waits=[0] * slots, abandoned_waits=[0] * slots)
                          for _ in cuts]
        return per[queue]

    for queue in queues:
        figures_of(queue)
    for entry in entries:
        i = locate.index(entry.entered_at)
        if i is None:
            continue
        f = figures_of(entry.queue)[i]
        _count(f, entry, threshold_s, short_abandon_s, edges)
    rows: list[QueueRow] = []
    for queue in sorted(per):
        figures = per[queue]
        rows.extend(QueueRow(queue, cut, f) for cut, f in zip(cuts, figures, strict=True))
        rows.append(QueueRow(queue, None, _sum_queue(figures, slots)))
    return rows


def _count(f: QueueFigures, entry: QueueEntry, threshold_s: float, short_abandon_s: float,
           edges: Sequence[int]) -> None:
    f.offered += 1
    wait = entry.wait_s
    if wait is not None:
        f.longest_wait_s = max(f.longest_wait_s, wait)
    match entry.outcome:
        case Outcome.answered:
            assert wait is not None
            f.answered += 1
            f.wait_answered_s += wait
            f.answered_in_threshold += wait <= threshold_s
            f.answered_waits[_distribution_index(wait, edges)] += 1
            f.transfers += entry.transferred
            handle = entry.handle_s
            if handle is not None:
                f.handled += 1
                f.handle_s += handle
                f.hold_s += entry.hold_s or 0.0
        case Outcome.abandoned:
            assert wait is not None
            f.abandoned += 1
            f.short_abandoned += wait < short_abandon_s
            f.abandoned_waits[_distribution_index(wait, edges)] += 1
        case Outcome.overflowed | Outcome.moved:
            f.overflowed += 1
        case Outcome.callback:
            f.callbacks += 1
        case Outcome.voicemail:
            f.voicemails += 1
        case Outcome.waiting:
            f.waiting += 1


def _sum_queue(figures: Sequence[QueueFigures], slots: int) -> QueueFigures:
    total = QueueFigures(answered_waits=[0] * slots, abandoned_waits=[0] * slots)
    for f in figures:
        for name in ("offered", "answered", "abandoned", "short_abandoned", "overflowed", "callbacks",
                     "voicemails", "waiting", "answered_in_threshold", "transfers", "wait_answered_s",
                     "handled", "handle_s", "hold_s"):
            setattr(total, name, getattr(total, name) + getattr(f, name))
        total.longest_wait_s = max(total.longest_wait_s, f.longest_wait_s)
        total.answered_waits = [a + b for a, b in zip(total.answered_waits, f.answered_waits, strict=True)]
        total.abandoned_waits = [a + b for a, b in zip(total.abandoned_waits, f.abandoned_waits, strict=True)]
    return total


# ---- the agent report -----------------------------------------------------------------------------


def agent_report(changes: Iterable[StateChange], cuts: Sequence[Bucket], until: datetime,
                 agents: Iterable[str] = ()) -> list[AgentRow]:
    """One row per (agent, bucket), then one total row per agent; agents in id order.

    ``changes`` must include, for each agent, its last change before the first bucket (the state
    it was in when the period began). A state lasts until the agent's next change, or ``until``
    (the end of what is known, usually now) for the last one."""
    by_agent: dict[str, list[StateChange]] = defaultdict(list)
    for change in changes:
        by_agent[change.agent_id].append(change)
    for agent in agents:
        by_agent.setdefault(agent, [])
    if not cuts:
        return []
    until = until.astimezone(UTC)
    period_start, period_end = cuts[0].start_utc, min(cuts[-1].end_utc, until)
    locate = _Locator(cuts)
    rows: list[AgentRow] = []
    for agent_id in sorted(by_agent):
        # Stable sort: changes at the same instant keep the log's order.
        log = sorted((replace(c, at=c.at.astimezone(UTC)) for c in by_agent[agent_id]), key=lambda c: c.at)
        figures = [AgentFigures() for _ in cuts]
        for n, change in enumerate(log):
            end = log[n + 1].at if n + 1 < len(log) else until
            _spread(figures, locate, change, max(change.at, period_start), min(end, period_end))
        _count_calls(figures, log, locate, until)
        rows.extend(AgentRow(agent_id, cut, f) for cut, f in zip(cuts, figures, strict=True))
        rows.append(AgentRow(agent_id, None, _sum_agent(figures)))
    return rows


def _spread(figures: list[AgentFigures], locate: _Locator, change: StateChange, start: datetime,
            end: datetime) -> None:
    """Add the state's time in [start, end) (UTC) to every bucket it overlaps, split at the edges."""
    if end <= start or change.state == "logged_out":
        return
    starts, ends = locate.starts, locate.ends
    i = max(0, bisect_right(starts, start) - 1)
    while i < len(starts) and starts[i] < end:
        seconds = (min(end, ends[i]) - max(start, starts[i])).total_seconds()
        if seconds > 0:
            _add_state(figures[i], change, seconds)
        i += 1


def _add_state(f: AgentFigures, change: StateChange, seconds: float) -> None:
    f.logged_in_s += seconds
    match change.state:
        case "available":
            f.available_s += seconds
        case "reserved":
            f.available_s += seconds
            f.ringing_s += seconds
        case "on_call":
            f.talk_s += seconds
        case "wrap_up":
            f.wrap_s += seconds
        case "paused":
            f.paused_s += seconds
            reason = change.reason or "(none)"
            f.pause_by_reason[reason] = f.pause_by_reason.get(reason, 0.0) + seconds
        case _:  # unavailable, or a state this report does not know: logged in, not ready
            f.unavailable_s += seconds


def _count_calls(figures: list[AgentFigures], log: Sequence[StateChange], locate: _Locator,
                 until: datetime) -> None:
    """Calls handled (each call once, in the bucket of its first ``on_call``), their whole
    handle time (every ``on_call`` stretch of the call plus the ``wrap_up`` right after the
    last one), and missed offers (a ``reserved`` followed by a miss reason)."""
    first_at: dict[str, datetime] = {}
    handle: Counter[str] = Counter()
    for n, change in enumerate(log):
        end = log[n + 1].at if n + 1 < len(log) else until
        seconds = max(0.0, _seconds(change.at, end))
        previous = log[n - 1] if n else None
        if change.state == "on_call" and change.call_id:
            first_at.setdefault(change.call_id, change.at)
            handle[change.call_id] += seconds
        elif (change.state == "wrap_up" and previous is not None and previous.state == "on_call"
              and previous.call_id):
            handle[previous.call_id] += seconds
        if (previous is not None and previous.state == "reserved" and change.state != "on_call"
                and change.reason in MISS_REASONS):
            i = locate.index(change.at)
            if i is not None:
                figures[i].missed_offers += 1
    for call_id, at in first_at.items():
        i = locate.index(at)
        if i is not None:
            figures[i].calls_handled += 1
            figures[i].handle_s += handle[call_id]


def _sum_agent(figures: Sequence[AgentFigures]) -> AgentFigures:
    total = AgentFigures()
    for f in figures:
        for name in ("logged_in_s", "available_s", "ringing_s", "talk_s", "wrap_s", "paused_s",
                     "unavailable_s", "calls_handled", "missed_offers", "handle_s"):
            setattr(total, name, getattr(total, name) + getattr(f, name))
        for reason, seconds in f.pause_by_reason.items():
            total.pause_by_reason[reason] = total.pause_by_reason.get(reason, 0.0) + seconds
    return total


# ---- queue entries from a call's events ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallEvent:
    """What the storage reads of ``call_events`` for a call (kind, time, data)."""

    at: datetime
    kind: str
    data: dict[str, str]
    leg_ended_at: datetime | None = None  # AgentConnected: when the agent's leg ended


def queue_entries(call_id: str, events: Sequence[CallEvent], call_ended_at: datetime | None,
                  wrap_s: float | None = None, fallback_entered_at: datetime | None = None,
                  fallback_queue: str | None = None) -> list[QueueEntry]:
    """A call's stays in queues, from its events in order.

    ``QueueEntered`` opens a stay; ``AgentConnected`` answers it; ``QueueOverflowed``,
    ``QueueMoved``, ``CallbackRequested`` and ``QueueExited`` (voicemail) end it otherwise; a stay
    still open when the call ended was abandoned, one still open in a live call is waiting.
    Calls recorded before ``QueueEntered`` existed have no such event: with ``fallback_queue``
    (the call's last queue) and ``fallback_entered_at`` one stay is assumed from then.
    ``wrap_s`` is the wrap-up that followed the call's (last) answer."""
    entries: list[QueueEntry] = []
    queue: str | None = None
    entered: datetime | None = None
    if not any(e.kind == "QueueEntered" for e in events) and fallback_queue and fallback_entered_at:
        queue, entered = fallback_queue, fallback_entered_at
    answered: dict[str, object] | None = None
    for n, event in enumerate(events):
        kind = event.kind
        if kind == "QueueEntered":
            if queue is not None and entered is not None:
                # Sent on to another queue: the new queue's entry is written just before the
                # overflow event of the old one (same instant), which is then ignored below.
                entries.append(QueueEntry(call_id, queue, entered, Outcome.overflowed, left_at=event.at))
            queue, entered = event.data.get("queue") or fallback_queue, event.at
            continue
        if kind == "AgentConnected" and queue is not None and entered is not None:
            talk = None
            if event.leg_ended_at is not None:
                talk = max(0.0, _seconds(event.at, event.leg_ended_at))
            later = events[n + 1:]
            answered = {"call_id": call_id, "queue": queue, "entered_at": entered, "left_at": event.at,
                        "agent_id": event.data.get("agent_id") or None, "talk_s": talk,
                        "hold_s": _hold_s(later, event.leg_ended_at),
                        "transferred": any(e.kind in ("TransferStarted", "TransferCompleted") for e in later
                                           if event.leg_ended_at is None or e.at <= event.leg_ended_at)}
            entries.append(QueueEntry(outcome=Outcome.answered, **answered))  # type: ignore[arg-type]
            queue = entered = None
            continue
        ended = {"QueueOverflowed": Outcome.overflowed, "QueueMoved": Outcome.moved,
                 "CallbackRequested": Outcome.callback, "QueueExited": Outcome.voicemail}.get(kind)
        named = event.data.get("from_queue" if kind == "QueueMoved" else "queue")
        if ended is not None and queue is not None and entered is not None and named in (None, "", queue):
            entries.append(QueueEntry(call_id, queue, entered, ended, left_at=event.at))
            if kind == "QueueMoved" and event.data.get("queue"):
                queue, entered = event.data["queue"], event.at  # waits on in its new queue
            else:
                queue = entered = None
    if queue is not None and entered is not None:
        outcome = Outcome.abandoned if call_ended_at is not None else Outcome.waiting
        entries.append(QueueEntry(call_id, queue, entered, outcome, left_at=call_ended_at))
    if wrap_s is not None:
        last = max((i for i, e in enumerate(entries) if e.outcome is Outcome.answered), default=None)
        if last is not None:
            e = entries[last]
            entries[last] = QueueEntry(e.call_id, e.queue, e.entered_at, e.outcome, e.left_at, e.agent_id,
                                       e.talk_s, e.hold_s, wrap_s, e.transferred)
    return entries


def _hold_s(events: Sequence[CallEvent], until: datetime | None) -> float | None:
    """Time on hold from CallHeld/CallResumed pairs before ``until``; None when none was held."""
    held_at: datetime | None = None
    total = 0.0
    seen = False
    for event in events:
        if until is not None and event.at > until:
            break
        if event.kind == "CallHeld" and held_at is None:
            held_at, seen = event.at, True
        elif event.kind == "CallResumed" and held_at is not None:
            total += _seconds(held_at, event.at)
            held_at = None
    if held_at is not None and until is not None:
        total += _seconds(held_at, until)
    return total if seen else None


# ---- the campaign report ------------------------------------------------------------------------

# Attempt outcomes where a person answered (docs/pacing.md: machines are in neither count), and of
# those, where an agent took the call.
PERSON_OUTCOMES = frozenset({"answered", "abandoned", "callback"})
CONNECTED_OUTCOMES = frozenset({"answered", "callback"})


@dataclass(frozen=True, slots=True)
class Attempt:
    """A campaign attempt as the report reads it (``cancelled`` ones are left out by the storage:
    they count as no attempt)."""

    campaign_id: str
    contact_id: int
    started_at: datetime
    outcome: str | None  # None: still open
    disposition: str | None = None
    agent_id: str | None = None
    talk_s: float | None = None  # the attempt's call, answered to ended


@dataclass(slots=True)
class CampaignFigures:
    attempts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # "in_progress" for open attempts
    dispositions: dict[str, int] = field(default_factory=dict)
    answered_by_person: int = 0
    abandoned: int = 0
    contacts_dialed: int = 0
    contacts_reached: int = 0
    talk_s: float = 0.0
    agent_s: float = 0.0  # logged-in time of the campaign's agents

    @property
    def answer_rate(self) -> float | None:
        """Answered by a person / attempts closed."""
        closed = self.attempts - self.outcomes.get("in_progress", 0)
        return self.answered_by_person / closed if closed else None

    @property
    def abandon_rate(self) -> float | None:
        """Abandoned / answered by a person (the FCC's and Ofcom's measure)."""
        return self.abandoned / self.answered_by_person if self.answered_by_person else None

    @property
    def talk_per_agent_hour_s(self) -> float | None:
        return self.talk_s / (self.agent_s / 3600) if self.agent_s else None


@dataclass(frozen=True, slots=True)
class CampaignRow:
    campaign_id: str
    bucket: Bucket | None  # None: the campaign's total over the period
    figures: CampaignFigures


def campaign_report(attempts: Iterable[Attempt], cuts: Sequence[Bucket],
                    agent_seconds: dict[str, Sequence[float]]) -> list[CampaignRow]:
    """One row per (campaign, bucket), then a total per campaign. An attempt counts in the bucket
    it started in. ``agent_seconds`` is each agent's logged-in seconds per bucket (the agent
    report's); a campaign's agent time is that of the agents who made its attempts in the period.
    Contacts are counted once per bucket, and once in the total."""
    locate = _Locator(cuts)
    per: dict[str, list[CampaignFigures]] = {}
    dialed: dict[str, list[set[int]]] = {}
    reached: dict[str, list[set[int]]] = {}
    agents: dict[str, set[str]] = defaultdict(set)
    for attempt in attempts:
        i = locate.index(attempt.started_at)
        if i is None:
            continue
        campaign = attempt.campaign_id
        if campaign not in per:
            per[campaign] = [CampaignFigures() for _ in cuts]
            dialed[campaign] = [set() for _ in cuts]
            reached[campaign] = [set() for _ in cuts]
        f = per[campaign][i]
        f.attempts += 1
        outcome = attempt.outcome or "in_progress"
        f.outcomes[outcome] = f.outcomes.get(outcome, 0) + 1
        if attempt.disposition:
            f.dispositions[attempt.disposition] = f.dispositions.get(attempt.disposition, 0) + 1
        f.answered_by_person += outcome in PERSON_OUTCOMES
        f.abandoned += outcome == "abandoned"
        f.talk_s += attempt.talk_s or 0.0
        dialed[campaign][i].add(attempt.contact_id)
        if outcome in CONNECTED_OUTCOMES:
            reached[campaign][i].add(attempt.contact_id)
        if attempt.agent_id:
            agents[campaign].add(attempt.agent_id)
    rows: list[CampaignRow] = []
    for campaign in sorted(per):
        figures = per[campaign]
        total = CampaignFigures()
        for i, f in enumerate(figures):
            f.contacts_dialed, f.contacts_reached = len(dialed[campaign][i]), len(reached[campaign][i])
            f.agent_s = sum(agent_seconds.get(agent, [0.0] * len(cuts))[i] for agent in agents[campaign])
            for name in ("attempts", "answered_by_person", "abandoned", "talk_s", "agent_s"):
                setattr(total, name, getattr(total, name) + getattr(f, name))
            for source, target in ((f.outcomes, total.outcomes), (f.dispositions, total.dispositions)):
                for key, count in source.items():
                    target[key] = target.get(key, 0) + count
        total.contacts_dialed = len(set().union(*dialed[campaign]))
        total.contacts_reached = len(set().union(*reached[campaign]))
        rows.extend(CampaignRow(campaign, cut, f) for cut, f in zip(cuts, figures, strict=True))
        rows.append(CampaignRow(campaign, None, total))
    return rows
