"""Alarms: figures and thresholds in, decisions to raise or clear out.

Pure: no clock (``now`` is an argument), no I/O. The alarm service (services/alarms.py) reads
the figures every few seconds, turns them into *checks* with :func:`queue_checks` and
:func:`system_checks`, and asks :func:`step` what to do.

How a decision is made, per alarm (a kind and a subject: ``queue.callers_waiting`` of queue
``support``, ``pbx.link_down`` of ``ccc/ari``):

- not active: the check is *breached* (the value reached ``raise_at``) → the time it was first
  breached is kept; once it has been breached for ``raise_after_s``, the alarm is raised. A
  value that leaves the breached side forgets that time.
- active: the check has *recovered* (the value is back to ``clear_at``; an unknown value, such
  as a service level before the day's first call, counts as recovered) → once it has recovered
  for ``clear_after_s``, the alarm is cleared. In the band between the two levels the alarm
  stays as it is and the clearing time starts again.
- active, but no longer checked (its rule or threshold removed, its queue gone): cleared at
  once, with the reason "no longer watched".

``step`` returns the decisions without applying them to the set of active alarms; the service
applies each one (:func:`apply`) once it is stored, so a decision that could not be stored is
made again at the next evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from controller.domain.alarms import (
    HIGH_IS_BAD,
    SEVERITY,
    AlarmKind,
    DialerFigures,
    QueueAlarmRule,
    QueueFigures,
    Severity,
    SystemAlarmRule,
    Threshold,
)

NO_LONGER_WATCHED = "no longer watched"
BACK_TO_NORMAL = "back to normal"


@dataclass(frozen=True, slots=True, order=True)
class AlarmKey:
    kind: AlarmKind
    subject: str


@dataclass(frozen=True, slots=True)
class Check:
    key: AlarmKey
    value: float | None
    threshold: Threshold
    raise_after_s: float
    clear_after_s: float
    message: str
    queue: str | None = None

    @property
    def breached(self) -> bool:
        if self.value is None:
            return False
        if self.key.kind in HIGH_IS_BAD:
            return self.value >= self.threshold.raise_at
        return self.value <= self.threshold.raise_at

    @property
    def recovered(self) -> bool:
        if self.value is None:
            return True
        if self.key.kind in HIGH_IS_BAD:
            return self.value <= self.threshold.clear_at
        return self.value >= self.threshold.clear_at


@dataclass(frozen=True, slots=True)
class Raise:
    key: AlarmKey
    queue: str | None
    severity: Severity
    value: float | None
    threshold: float
    message: str


@dataclass(frozen=True, slots=True)
class Clear:
    key: AlarmKey
    value: float | None
    reason: str


Decision = Raise | Clear


@dataclass(frozen=True, slots=True)
class AlarmState:
    active: frozenset[AlarmKey] = frozenset()
    breached_since: Mapping[AlarmKey, datetime] = field(default_factory=dict)
    recovered_since: Mapping[AlarmKey, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    state: AlarmState
    decisions: tuple[Decision, ...]


def step(state: AlarmState, checks: Iterable[Check], now: datetime) -> Step:
    breached_since: dict[AlarmKey, datetime] = {}
    recovered_since: dict[AlarmKey, datetime] = {}
    decisions: list[Decision] = []
    seen: set[AlarmKey] = set()
    for check in checks:
        key = check.key
        seen.add(key)
        if key not in state.active:
            if not check.breached:
                continue
            since = state.breached_since.get(key, now)
            breached_since[key] = since
            if (now - since).total_seconds() >= check.raise_after_s:
                decisions.append(Raise(key, check.queue, SEVERITY[key.kind], check.value,
                                       check.threshold.raise_at, check.message))
        elif check.recovered:
            since = state.recovered_since.get(key, now)
            recovered_since[key] = since
            if (now - since).total_seconds() >= check.clear_after_s:
                decisions.append(Clear(key, check.value, BACK_TO_NORMAL))
    for key in sorted(state.active - seen):
        decisions.append(Clear(key, None, NO_LONGER_WATCHED))
    return Step(AlarmState(state.active, breached_since, recovered_since), tuple(decisions))


def apply(state: AlarmState, decision: Decision) -> AlarmState:
    """The state once ``decision`` has been carried out (stored and published)."""
    if isinstance(decision, Raise):
        return replace(state, active=state.active | {decision.key},
                       breached_since={k: v for k, v in state.breached_since.items() if k != decision.key})
    return replace(state, active=state.active - {decision.key},
                   recovered_since={k: v for k, v in state.recovered_since.items() if k != decision.key})


def evaluate(state: AlarmState, checks: Iterable[Check], now: datetime) -> Step:
    """``step`` with every decision applied."""
    result = step(state, checks, now)
    new = result.state
    for decision in result.decisions:
        new = apply(new, decision)
    return Step(new, result.decisions)


def queue_checks(rule: QueueAlarmRule, figures: QueueFigures) -> list[Check]:
    q = figures.queue
    describe = {
        AlarmKind.CALLERS_WAITING: (figures.waiting,
                                    lambda v, t: f"queue {q}: {v:g} callers waiting (raise at {t:g})"),
        AlarmKind.LONGEST_WAIT: (figures.longest_wait_s,
                                 lambda v, t: f"queue {q}: a caller has waited {v:.0f} s (raise at {t:g} s)"),
        AlarmKind.SERVICE_LEVEL: (figures.service_level,
                                  lambda v, t: f"queue {q}: service level today {v:.0%} (raise at {t:.0%})"),
        AlarmKind.AGENTS_AVAILABLE: (figures.agents_available,
                                     lambda v, t: f"queue {q}: {v:g} agents available (raise at {t:g})"),
    }
    checks = []
    for kind, threshold in rule.thresholds().items():
        value, text = describe[kind]
        message = text(value, threshold.raise_at) if value is not None else f"queue {q}: {kind.value}"
        checks.append(Check(AlarmKey(kind, q), None if value is None else float(value), threshold,
                            rule.raise_after_s, rule.clear_after_s, message, queue=q))
    return checks


LINK_DOWN = Threshold(1.0, 0.0)  # value 1 while the link is down, 0 while it is up


def link_checks(rule: SystemAlarmRule, node: str, links: Mapping[str, bool]) -> list[Check]:
    """Checks of one controller process's PBX links (``node`` names the process: each process
    has its own links to the PBX, so each watches its own)."""
    if not rule.pbx_link_down:
        return []
    return [Check(AlarmKey(AlarmKind.PBX_LINK_DOWN, f"{node}/{link}"), 0.0 if up else 1.0, LINK_DOWN,
                  rule.raise_after_s, rule.clear_after_s, f"{node}: the PBX link {link} is down")
            for link, up in sorted(links.items())]


def dialer_checks(rule: SystemAlarmRule, dialers: Iterable[DialerFigures]) -> list[Check]:
    """Checks of the campaigns' abandonment rates against their caps (the value is the share
    of the cap: 0.9 is 90 % of it)."""
    threshold = rule.dialer_abandon_rate
    if threshold is None:
        return []
    checks = []
    for dialer in dialers:
        if dialer.cap <= 0:
            continue
        share = dialer.abandon_rate / dialer.cap
        checks.append(Check(
            AlarmKey(AlarmKind.DIALER_ABANDON_RATE, dialer.campaign), share, threshold,
            rule.raise_after_s, rule.clear_after_s,
            f"campaign {dialer.campaign}: abandonment {dialer.abandon_rate:.1%} is {share:.0%} of "
            f"its cap {dialer.cap:.1%} (raise at {threshold.raise_at:.0%})"))
    return checks
