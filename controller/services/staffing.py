"""Staffing: intervals sized by the Erlang models, and next week's forecast from a queue's history.

``plan`` is a computation (nothing read, nothing stored). ``forecast`` reads the queue (its
service level answer time is the default target time) and its history (storage/staffing.py),
averages it by weekday and time of day (engines/forecast.py) and sizes every interval
(engines/staffing.py). The history is the ``weeks`` whole weeks of local days before the
forecast's first day, or before today when that is earlier, so every weekday counts as often.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from controller.domain.errors import InvalidRequest, NotFound
from controller.engines import forecast as seasonal
from controller.engines.erlang import TargetUnreachable
from controller.engines.staffing import Demand, Plan, Staffing, plan
from controller.storage import acd as acd_store
from controller.storage import staffing as store
from controller.storage.db import Database

MAX_WEEKS = 52


@dataclass(frozen=True, slots=True)
class Forecast:
    queue: str
    tz: str
    interval_min: int
    weeks: int
    history_since: datetime  # local midnight, aware
    history_until: datetime
    history_calls: int
    history_handled: int
    answer_time_s: float  # the target's (the queue's service level time unless given)
    plan: Plan


class StaffingService:
    def __init__(self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._clock = clock

    async def plan(self, demands: Sequence[Demand], interval_s: float, staffing: Staffing) -> Plan:
        """Every interval sized; run on a worker thread, off the event loop that carries the calls
        (a week of large Erlang A intervals is seconds of arithmetic)."""
        try:
            return await asyncio.to_thread(plan, demands, interval_s, staffing)
        except (TargetUnreachable, ValueError) as exc:
            raise InvalidRequest(str(exc)) from exc

    async def forecast(self, queue: str, *, weeks: int, interval_min: int, tz: ZoneInfo, staffing: Staffing,
                       start: date | None = None, answer_time_s: float | None = None,
                       fallback_aht_s: float | None = None) -> Forecast:
        """Next week's intervals (or the 7 days from ``start``), with their forecast and sizing.
        Without ``answer_time_s`` the target time is the queue's service level time."""
        if not 1 <= weeks <= MAX_WEEKS:
            raise InvalidRequest(f"weeks must be 1 to {MAX_WEEKS}")
        if interval_min not in seasonal.INTERVAL_MINUTES:
            raise InvalidRequest(f"the interval must be one of {seasonal.INTERVAL_MINUTES} minutes")
        today = self._clock().astimezone(tz).date()
        first = start or today + timedelta(days=7 - today.weekday())  # next Monday
        history_end = min(first, today)
        history_days = [history_end - timedelta(days=d) for d in range(7 * weeks, 0, -1)]
        since, until = _midnight(history_days[0], tz), _midnight(history_end, tz)
        async with self._db.connection() as conn:
            record = await acd_store.get_queue(conn, queue)
            if record is None:
                raise NotFound(f"no queue {queue}")
            bins = await store.history_bins(conn, queue, since, until, seasonal.bin_minutes(interval_min))
        target = staffing.target
        if answer_time_s is None:
            staffing = replace(staffing, target=replace(target, answer_time_s=float(record.service_level_s)))
        forecast_days = [first + timedelta(days=d) for d in range(7)]
        intervals = seasonal.seasonal_average(bins, history_days, forecast_days, tz, interval_min)
        demands = []
        for item in intervals:
            aht = item.aht_s if item.aht_s is not None else fallback_aht_s
            if item.calls > 0 and aht is None:
                raise InvalidRequest(f"no answered call of queue {queue} in the history to take a handle "
                                     "time from: give aht_s")
            demands.append(Demand(item.calls, aht, label=_label(item), start=item.start))
        return Forecast(queue, tz.key, interval_min, weeks, since, until,
                        sum(b.offered for b in bins), sum(b.handled for b in bins),
                        staffing.target.answer_time_s, await self.plan(demands, interval_min * 60, staffing))


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)


def _label(item: seasonal.ForecastInterval) -> str:
    return item.start.strftime("%a %H:%M")
