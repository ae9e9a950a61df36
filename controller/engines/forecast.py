"""Next week's offered calls and handle time per interval, from the same weekday and time of
day in the weeks before: a seasonal average.

Pure: the history comes in as counts per bin of real time, the answer goes out as intervals.

Intervals are local wall-clock slots: with 30-minute intervals, slot 18 is 09:00-09:30 in the
queue's time zone, whatever the UTC offset that day. A day is cut into intervals of real time
from its local midnight, so a day on which the clocks go back (25 hours) has two 02:00 and two
02:30 intervals, and a day on which they go forward (23 hours) has no 02:00 or 02:30 interval.
The history is counted the same way: the forecast for (weekday, slot) is the number of calls
offered in that slot over the history divided by the number of *real* intervals that slot had
in the history (usually one per week; two on a day the clocks went back, none on a day they
went forward), so it is always calls per real interval. A slot the history never had (02:00 on
a Sunday when the only Sunday of the history skipped it) is forecast at 0 calls.

The handle time of a slot is the mean over the calls of that slot that an agent answered
(talk, hold and wrap-up, as the storage measured it); a slot with none takes the mean of the
whole history; with no answered call at all it is unknown (``None``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from math import gcd
from zoneinfo import ZoneInfo

# Interval lengths a day can be cut into (minutes); each divides an hour or a day evenly.
INTERVAL_MINUTES = (5, 10, 15, 20, 30, 60)


@dataclass(frozen=True, slots=True)
class HistoryBin:
    """Calls of one queue that started in ``[start, start + bin)`` (see :func:`bin_minutes`)."""

    start: datetime  # aware
    offered: int
    handled: int  # answered by an agent, with a known handle time
    handle_s: float  # total handle time of the ``handled`` calls


@dataclass(frozen=True, slots=True)
class ForecastInterval:
    start: datetime  # aware, in the forecast's time zone
    weekday: int  # ISO: 1 Monday .. 7 Sunday
    slot: int  # local minute of the day // interval length
    calls: float  # offered calls expected in this interval
    aht_s: float | None  # expected handle time of a call (None: no answered call in the history)
    occurrences: int  # real intervals this (weekday, slot) had in the history


def bin_minutes(interval_min: int) -> int:
    """The bin (minutes) to count history in: every UTC offset in use is a multiple of 15
    minutes, so bins of gcd(interval, 15) minutes, aligned on UTC, never straddle two local
    intervals."""
    _check_interval(interval_min)
    return gcd(interval_min, 15)


def day_intervals(day: date, tz: ZoneInfo, interval_min: int) -> list[datetime]:
    """Starts (aware, in ``tz``) of the real-time intervals from local midnight of ``day`` to
    the next local midnight."""
    _check_interval(interval_min)
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    step = timedelta(minutes=interval_min)
    starts = []
    while start < end:
        starts.append(start.astimezone(tz))
        start += step
    return starts


def slot_of(instant: datetime, tz: ZoneInfo, interval_min: int) -> tuple[int, int]:
    """(ISO weekday, slot) of an aware instant on the local wall clock of ``tz``."""
    local = instant.astimezone(tz)
    return local.isoweekday(), (local.hour * 60 + local.minute) // interval_min


def seasonal_average(bins: Iterable[HistoryBin], history_days: Iterable[date], forecast_days: Iterable[date],
                     tz: ZoneInfo, interval_min: int) -> list[ForecastInterval]:
    """Every interval of ``forecast_days`` with its expected calls and handle time, averaged
    over the same (weekday, slot) in ``history_days`` (the bins must lie in those days)."""
    _check_interval(interval_min)
    occurrences: Counter[tuple[int, int]] = Counter()
    for day in history_days:
        occurrences.update(slot_of(start, tz, interval_min) for start in day_intervals(day, tz, interval_min))
    offered: Counter[tuple[int, int]] = Counter()
    handled: Counter[tuple[int, int]] = Counter()
    handle_s: dict[tuple[int, int], float] = {}
    for item in bins:
        slot = slot_of(item.start, tz, interval_min)
        offered[slot] += item.offered
        handled[slot] += item.handled
        handle_s[slot] = handle_s.get(slot, 0.0) + item.handle_s
    all_handled = sum(handled.values())
    overall_aht = sum(handle_s.values()) / all_handled if all_handled else None
    intervals = []
    for day in forecast_days:
        for start in day_intervals(day, tz, interval_min):
            slot = slot_of(start, tz, interval_min)
            seen = occurrences[slot]
            calls = offered[slot] / seen if seen else 0.0
            aht = handle_s[slot] / handled[slot] if handled[slot] else overall_aht
            intervals.append(ForecastInterval(start, slot[0], slot[1], calls, aht, seen))
    return intervals


def _check_interval(interval_min: int) -> None:
    if interval_min not in INTERVAL_MINUTES:
        raise ValueError(f"the interval must be one of {INTERVAL_MINUTES} minutes")
