"""Alarms: a figure past its threshold for long enough, until it is back on the right side.

Vocabulary. An *alarm rule* holds thresholds: one per queue (callers waiting, longest wait,
service level today, agents available) and one for the system (a PBX link down, a dialer's
abandonment rate near its cap). A *threshold* has two levels, ``raise_at`` and ``clear_at``,
with a band between them where nothing changes (value hysteresis); the rule's
``raise_after_s`` and ``clear_after_s`` say how long a level must hold before the alarm is
raised or cleared (time hysteresis). Together they keep an alarm from flapping on a figure that
hovers around one value.

For figures where more is worse (callers waiting, longest wait, abandonment) an alarm is raised
when the value reaches ``raise_at`` (>=) and cleared when it is back to ``clear_at`` or below;
for figures where less is worse (service level, agents available) raised at ``raise_at`` or
below and cleared from ``clear_at`` up. The evaluation is in engines/alarms.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class AlarmKind(StrEnum):
    CALLERS_WAITING = "queue.callers_waiting"
    LONGEST_WAIT = "queue.longest_wait"
    SERVICE_LEVEL = "queue.service_level"
    AGENTS_AVAILABLE = "queue.agents_available"
    PBX_LINK_DOWN = "pbx.link_down"
    DIALER_ABANDON_RATE = "dialer.abandon_rate"


# Kinds for which a higher value is worse; the others are worse when lower.
HIGH_IS_BAD = frozenset({AlarmKind.CALLERS_WAITING, AlarmKind.LONGEST_WAIT, AlarmKind.PBX_LINK_DOWN,
                         AlarmKind.DIALER_ABANDON_RATE})


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY = {kind: Severity.WARNING for kind in AlarmKind} | {AlarmKind.PBX_LINK_DOWN: Severity.CRITICAL}


@dataclass(frozen=True, slots=True)
class Threshold:
    raise_at: float
    clear_at: float

    def check(self, high_is_bad: bool) -> None:
        """ValueError unless ``clear_at`` is on the good side of ``raise_at``."""
        if high_is_bad and not self.clear_at < self.raise_at:
            raise ValueError(f"clear_at ({self.clear_at:g}) must be below raise_at ({self.raise_at:g})")
        if not high_is_bad and not self.clear_at > self.raise_at:
            raise ValueError(f"clear_at ({self.clear_at:g}) must be above raise_at ({self.raise_at:g})")


def default_clear_at(kind: AlarmKind, raise_at: float) -> float:
    """The clearing level when a rule gives only the raising one: one caller or agent away,
    or a fifth of the way back (a twentieth for the service level)."""
    match kind:
        case AlarmKind.CALLERS_WAITING:
            return raise_at - 1
        case AlarmKind.AGENTS_AVAILABLE:
            return raise_at + 1
        case AlarmKind.SERVICE_LEVEL:
            return min(raise_at + 0.05, (raise_at + 1) / 2)
        case _:
            return raise_at * 0.8


@dataclass(frozen=True, slots=True)
class QueueAlarmRule:
    queue: str
    callers_waiting: Threshold | None = None
    longest_wait_s: Threshold | None = None
    service_level: Threshold | None = None  # fractions: 0.8 is 80 % answered within the target
    agents_available: Threshold | None = None
    raise_after_s: float = 0.0
    clear_after_s: float = 15.0

    def thresholds(self) -> dict[AlarmKind, Threshold]:
        found = {AlarmKind.CALLERS_WAITING: self.callers_waiting, AlarmKind.LONGEST_WAIT: self.longest_wait_s,
                 AlarmKind.SERVICE_LEVEL: self.service_level,
                 AlarmKind.AGENTS_AVAILABLE: self.agents_available}
        return {kind: t for kind, t in found.items() if t is not None}


@dataclass(frozen=True, slots=True)
class SystemAlarmRule:
    pbx_link_down: bool = True
    # Of each campaign's cap: 0.9 raises at 90 % of the allowed abandonment rate.
    dialer_abandon_rate: Threshold | None = Threshold(0.9, 0.8)
    raise_after_s: float = 5.0
    clear_after_s: float = 5.0


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """What the alarms read of one queue (from the ACD's live state)."""

    queue: str
    waiting: int
    longest_wait_s: float
    service_level: float | None  # None: no call answered or abandoned today
    agents_available: int


@dataclass(frozen=True, slots=True)
class DialerFigures:
    """A campaign's abandonment rate and the cap it must stay under (given by the dialer)."""

    campaign: str
    abandon_rate: float
    cap: float


@dataclass(frozen=True, slots=True)
class Alarm:
    id: UUID
    kind: str
    subject: str
    queue: str | None
    severity: str
    message: str
    value: float | None
    threshold: float | None
    raised_at: datetime
    cleared_at: datetime | None
    clear_value: float | None
    clear_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @property
    def state(self) -> str:
        return "active" if self.cleared_at is None else "cleared"

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "kind": self.kind, "subject": self.subject, "queue": self.queue,
                "severity": self.severity, "state": self.state, "message": self.message,
                "value": self.value, "threshold": self.threshold, "raised_at": self.raised_at.isoformat(),
                "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
                "clear_value": self.clear_value, "clear_reason": self.clear_reason,
                "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
                "acknowledged_by": self.acknowledged_by}
