"""Opening hours: is a schedule open at an instant, and when does that next change.

Schedules speak local wall-clock time ("08:00" in Europe/Paris); callers pass aware instants.
``is_open`` converts the instant to the schedule's zone and looks up that local date's intervals
(a holiday's hours replace the weekly ones; a holiday without hours is closed all day).

``next_change`` does not step minute by minute. Between two instants at which the local wall
clock crosses an interval boundary, midnight, or a DST jump, the answer cannot change, so it
lists those candidate instants and returns the first whose answer differs from now. A boundary
that falls in a DST gap (02:30 on the spring-forward night) takes effect at the jump itself,
which is why the jumps are candidates too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from controller.domain.flows import Schedule

HORIZON = timedelta(days=14)


def is_open(schedule: Schedule, at: datetime) -> bool:
    """Whether ``schedule`` is open at the aware instant ``at`` (interval ends are exclusive)."""
    _require_aware(at)
    local = at.astimezone(schedule.tz)
    second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return any(start * 60 <= second < end * 60 for start, end in schedule.intervals_on(local.date()))


def next_change(schedule: Schedule, at: datetime) -> datetime | None:
    """The first instant after ``at`` (within 14 days) at which ``is_open`` changes, in UTC."""
    _require_aware(at)
    tz = schedule.tz
    now_open = is_open(schedule, at)
    end = at + HORIZON
    first_day = at.astimezone(tz).date() - timedelta(days=1)
    candidates: set[datetime] = set(_offset_changes(schedule, at, end))
    for offset in range(HORIZON.days + 3):
        day = first_day + timedelta(days=offset)
        minutes = {0} | {m for interval in schedule.intervals_on(day) for m in interval}
        for minute in minutes:
            candidates.update(_instants(schedule, day, minute))
    for candidate in sorted(c for c in candidates if at < c <= end):
        if is_open(schedule, candidate) != now_open:
            return candidate.astimezone(UTC)
    return None


def _instants(schedule: Schedule, day: date, minute: int) -> list[datetime]:
    """The instants at which local time reads ``minute`` on ``day`` (both folds; 24:00 is the
    next midnight)."""
    if minute >= 1440:
        day, minute = day + timedelta(days=1), minute - 1440
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=schedule.tz)
    return [wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)]


def _offset_changes(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Instants (to the second) at which the zone's UTC offset changes between start and end."""
    tz = schedule.tz
    out: list[datetime] = []
    step = timedelta(hours=1)
    t = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    before = t.astimezone(tz).utcoffset()
    while t < end:
        after_t = t + step
        after = after_t.astimezone(tz).utcoffset()
        if after != before:
            low, high = 0, 3600  # seconds after t: offset at low == before, at high != before
            while high - low > 1:
                mid = (low + high) // 2
                if (t + timedelta(seconds=mid)).astimezone(tz).utcoffset() == before:
                    low = mid
                else:
                    high = mid
            out.append(t + timedelta(seconds=high))
            before = after
        t = after_t
    return out


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("schedules need an aware datetime (with a timezone)")
