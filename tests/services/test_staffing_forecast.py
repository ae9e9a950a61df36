"""Next week's forecast (services/staffing.py) from a history written to the real Postgres: three
weeks of one queue's calls in Europe/Paris across the end of summer time (Sunday 26 October
2025, when 03:00 CEST became 02:00 CET), checked against averages worked out by hand below.

The history is 13 October (a Monday) to 2 November 2025, for a forecast of 3-9 November.

Monday 09:00-09:30 (local) had 4, 6 and 8 calls: 9:00 is 07:00 UTC in October's CEST weeks
and 08:00 UTC after the change, the same local slot. Forecast: (4 + 6 + 8) / 3 = 6 calls.
Answered among them: 100 s talk + 20 s wrap-up, 200 s talk, 150 s + 30 s, 300 s: the slot's
handle time is (120 + 200 + 180 + 300) / 4 = 200 s. One of week 2's six left the queue for
another queue and was answered there: offered here, its handle time belongs to the other queue.

Sunday 02:00-02:30 (local) existed once on 19 October, twice on 26 October (00:00-00:30 UTC in
CEST, then 01:00-01:30 UTC in CET) and once on 2 November: 4 real intervals, with 1 + (2 + 3)
+ 0 calls. Forecast: 6 / 4 = 1.5 calls. 02:30-03:00: one call at 00:45 UTC on the 26th: 1 / 4.
No call of that slot was answered, so its handle time is the whole history's: the four above,
a 400 s call at Monday 00:00 and a 600 s callback on Tuesday 14 October at 10:05 (the call made
back to a caller who had left the queue for one: not offered again, but handled),
(800 + 400 + 600) / 6 = 300 s.

At the edges of local days: Monday 00:05 CEST on 13 October (22:05 UTC the Sunday before) is
in; 23:55 the Sunday before is out; Monday 27 October 23:45 CET (22:45 UTC) is Monday's 23:30
slot; Sunday 2 November 23:50 CET is Sunday's; 00:10 CET on Monday 3 November is out (the
forecast's own day). Each of those slots: 1 / 3 calls. Calls of another queue never count.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from controller.domain.errors import InvalidRequest, NotFound
from controller.engines.erlang import Load, Target, agents_needed
from controller.engines.staffing import Staffing
from controller.services.staffing import StaffingService
from controller.storage.db import Database

PARIS = ZoneInfo("Europe/Paris")
SERVICE_LEVEL_S = 30  # the queue's: the forecast's default answer time


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


class History:
    """Writes calls the way the controller's records look: a calls row (with the queue in its
    data), and for an answered call the agent leg, the AgentConnected event and the agent's
    state log (on_call, then wrap_up when there is one, then available)."""

    def __init__(self, conn: psycopg.AsyncConnection, queue: str, agent: str) -> None:
        self.conn, self.queue, self.agent = conn, queue, agent

    async def call(self, started: datetime, *, talk_s: float | None = None, wrap_s: float = 0,
                   queue: str | None = None, overflowed_from: str | None = None,
                   leg_ended: bool = True, callback_of: str | None = None) -> str:
        call_id = f"c-{uuid.uuid4().hex[:12]}"
        connected = started + timedelta(seconds=15)
        ended = started + timedelta(seconds=40) if talk_s is None else connected + timedelta(seconds=talk_s)
        await self.conn.execute(
            "INSERT INTO calls (id, direction, state, switch, started_at, answered_at, ended_at, data) "
            "VALUES (%s, 'inbound', 'ended', 'asterisk', %s, %s, %s, %s)",
            (call_id, started, started + timedelta(seconds=1), ended,
             json.dumps({"queue": queue or self.queue}
                        | ({"callback_of": callback_of} if callback_of else {}))))
        if overflowed_from is not None:
            await self.conn.execute(
                "INSERT INTO call_events (call_id, leg_id, at, kind, data) "
                "VALUES (%s, %s, %s, 'QueueOverflowed', %s)",
                (call_id, f"{call_id}-caller", started + timedelta(seconds=5),
                 json.dumps({"queue": overflowed_from, "reason": "max_wait"})))
        if talk_s is None:
            return call_id
        leg = f"{call_id}-agent"
        await self.conn.execute(
            "INSERT INTO legs (id, call_id, role, channel_name, state, created_at, answered_at, ended_at) "
            "VALUES (%s, %s, 'agent', 'Local/agent', %s, %s, %s, %s)",
            (leg, call_id, "ended" if leg_ended else "up", started + timedelta(seconds=5), connected,
             ended if leg_ended else None))
        await self.conn.execute(
            "INSERT INTO call_events (call_id, leg_id, at, kind, data) "
            "VALUES (%s, %s, %s, 'AgentConnected', %s)",
            (call_id, leg, connected, json.dumps({"agent_id": self.agent})))
        states = [(connected, "on_call", call_id)]
        if wrap_s:
            states += [(ended + timedelta(milliseconds=3), "wrap_up", None),
                       (ended + timedelta(milliseconds=3, seconds=wrap_s), "available", None)]
        else:
            states += [(ended + timedelta(milliseconds=3), "available", None)]
        for at, state, of_call in states:
            await self.conn.execute(
                "INSERT INTO agent_state_log (agent_id, at, state, queue, call_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                (self.agent, at, state, self.queue, of_call))
        return call_id


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def queue(db_conn: psycopg.AsyncConnection) -> str:
    """A queue with the three weeks of history described above."""
    name = f"q{uuid.uuid4().hex[:10]}"
    agent = f"a{uuid.uuid4().hex[:10]}"
    await db_conn.execute(
        "INSERT INTO queues (name, strategy, ring_timeout_s, wrap_up_s, max_misses_before_pause, "
        "service_level_s) VALUES (%s, 'longest_idle', 20, 0, 3, %s)", (name, SERVICE_LEVEL_S))
    await db_conn.execute("INSERT INTO agents (id, name, device) VALUES (%s, 'Forecast', 'Local/forecast')",
                          (agent,))
    history = History(db_conn, name, agent)
    other = f"{name}-other"

    # Monday 09:00-09:30: 4, 6 and 8 calls.
    await history.call(paris("2025-10-13 09:00"), talk_s=100, wrap_s=20)
    await history.call(paris("2025-10-13 09:05"), talk_s=200)
    await history.call(paris("2025-10-13 09:10"))
    await history.call(paris("2025-10-13 09:29:59"))
    await history.call(paris("2025-10-20 09:01"), talk_s=150, wrap_s=30)
    for minute in (3, 7, 12, 20):
        await history.call(paris(f"2025-10-20 09:{minute:02d}"))
    # Left this queue for the other one, answered there (500 s): offered here, handled there.
    await history.call(paris("2025-10-20 09:25"), talk_s=500, queue=other, overflowed_from=name)
    await history.call(paris("2025-10-27 09:00"), talk_s=300)
    for minute in (2, 4, 9, 15, 21, 28):
        await history.call(paris(f"2025-10-27 09:{minute:02d}"))
    # Answered, but the agent's leg never ended (still up when the history was read): offered only.
    await history.call(paris("2025-10-27 09:29"), talk_s=60, leg_ended=False)
    # Another queue's call in the same slot: not ours.
    await history.call(paris("2025-10-27 09:10"), queue=other)

    # Sunday 02:00-02:30 (and 02:30-03:00) around the change of 26 October.
    assert paris("2025-10-19 02:10").astimezone(UTC) == utc("2025-10-19 00:10")
    await history.call(utc("2025-10-19 00:10"))
    await history.call(utc("2025-10-26 00:05"))  # 02:05 CEST
    await history.call(utc("2025-10-26 00:20"))  # 02:20 CEST
    await history.call(utc("2025-10-26 00:45"))  # 02:45 CEST
    await history.call(utc("2025-10-26 01:01"))  # 02:01 CET
    await history.call(utc("2025-10-26 01:10"))  # 02:10 CET
    await history.call(utc("2025-10-26 01:29"))  # 02:29 CET

    # The edges of local days.
    await history.call(utc("2025-10-12 22:05"), talk_s=400)  # Monday 13 October 00:05 CEST: in
    await history.call(utc("2025-10-12 21:55"))  # Sunday 12 October 23:55 CEST: before the history
    await history.call(utc("2025-10-27 22:45"))  # Monday 27 October 23:45 CET
    await history.call(utc("2025-11-02 22:50"))  # Sunday 2 November 23:50 CET
    await history.call(utc("2025-11-02 23:10"))  # Monday 3 November 00:10 CET: the forecast's day

    # A callback: handled (600 s), not offered again.
    await history.call(paris("2025-10-14 10:05"), talk_s=600, callback_of="c-earlier")
    return name


def staffing(**target: float) -> Staffing:
    return Staffing(Target(**({"service_level": 0.8} | target)))  # type: ignore[arg-type]


async def test_forecast_is_the_seasonal_average_across_a_dst_change(db: Database, queue: str) -> None:
    service = StaffingService(db, clock=lambda: utc("2026-01-15 12:00"))
    forecast = await service.forecast(queue, weeks=3, interval_min=30, tz=PARIS, staffing=staffing(),
                                      start=date(2025, 11, 3))
    assert forecast.history_since == paris("2025-10-13 00:00")
    assert forecast.history_until == paris("2025-11-03 00:00")
    assert forecast.history_calls == 18 + 7 + 3  # Monday 09:00, Sunday night, the three edges in
    assert forecast.history_handled == 6
    intervals = forecast.plan.intervals
    assert len(intervals) == 7 * 48  # 3-9 November: no change of the clocks
    by_start = {item.demand.start: item for item in intervals}
    assert all(start is not None and start.tzinfo is not None for start in by_start)

    def at(text: str):  # noqa: ANN202
        return by_start[paris(text)]

    monday_nine = at("2025-11-03 09:00")
    assert monday_nine.demand.calls == pytest.approx(6.0)
    assert monday_nine.demand.aht_s == pytest.approx(200.0)
    sunday_two = at("2025-11-09 02:00")
    assert sunday_two.demand.calls == pytest.approx(1.5)
    assert sunday_two.demand.aht_s == pytest.approx(300.0)
    assert at("2025-11-09 02:30").demand.calls == pytest.approx(0.25)
    assert at("2025-11-03 00:00").demand.calls == pytest.approx(1 / 3)
    assert at("2025-11-03 00:00").demand.aht_s == pytest.approx(400.0)
    assert at("2025-11-03 23:30").demand.calls == pytest.approx(1 / 3)
    assert at("2025-11-09 23:30").demand.calls == pytest.approx(1 / 3)
    assert at("2025-11-03 09:30").demand.calls == 0
    assert at("2025-11-04 09:00").demand.calls == 0  # Tuesdays had none
    assert at("2025-11-04 10:00").demand.calls == 0  # the callback is not a new call ...
    assert at("2025-11-04 10:00").demand.aht_s == pytest.approx(600.0)  # ... but it was handled
    assert sum(item.demand.calls for item in intervals) == pytest.approx(6 + 1.5 + 0.25 + 3 * (1 / 3))

    # Sized at the queue's answer time (30 s), 80%: 6 calls x 200 s / 1800 s = 2/3 Erlang.
    # One agent: C = 2/3, SL = 1 - 2/3 e^{-(1/3)(30/200)} = 0.366. Two: B(2, 2/3) = 2/17,
    # C = 1/6, SL = 1 - (1/6) e^{-(4/3)(30/200)} = 0.8635: two agents.
    assert forecast.answer_time_s == SERVICE_LEVEL_S
    assert monday_nine.figures.agents == 2
    assert monday_nine.figures.service_level == pytest.approx(1 - math.exp(-0.2) / 6, rel=1e-9)
    assert at("2025-11-04 09:00").figures.agents == 0
    for item in intervals:
        if item.demand.calls:
            load = Load.of_interval(item.demand.calls, 1800, item.demand.aht_s)  # type: ignore[arg-type]
            needed = agents_needed(load, Target(SERVICE_LEVEL_S, service_level=0.8))
            assert item.figures.agents == needed.agents


async def test_a_forecast_week_with_the_change_of_clocks_has_its_extra_hour(db: Database, queue: str) -> None:
    """Forecasting 20-26 October from the week before: Sunday the 26th has 25 hours, so two
    02:00 and two 02:30 intervals, each forecast from the slot's average."""
    service = StaffingService(db, clock=lambda: utc("2026-01-15 12:00"))
    forecast = await service.forecast(queue, weeks=1, interval_min=30, tz=PARIS, staffing=staffing(),
                                      start=date(2025, 10, 20))
    assert forecast.history_since == paris("2025-10-13 00:00")
    assert forecast.history_until == paris("2025-10-20 00:00")
    intervals = forecast.plan.intervals
    assert len(intervals) == 7 * 48 + 2
    sunday = [item for item in intervals if item.demand.start is not None
              and item.demand.start.astimezone(PARIS).date() == date(2025, 10, 26)]
    assert len(sunday) == 50
    twos = [item for item in sunday if item.demand.start.astimezone(PARIS).strftime("%H:%M") == "02:00"]
    assert [item.demand.start.astimezone(UTC) for item in twos] == [utc("2025-10-26 00:00"),
                                                                    utc("2025-10-26 01:00")]
    assert [item.demand.calls for item in twos] == [pytest.approx(1.0), pytest.approx(1.0)]  # 19 Oct: 1 call
    monday_nine = next(item for item in intervals if item.demand.start == paris("2025-10-20 09:00"))
    assert monday_nine.demand.calls == pytest.approx(4.0)
    assert monday_nine.demand.aht_s == pytest.approx((120 + 200) / 2)


async def test_the_history_ends_today_when_the_forecast_starts_later(db: Database, queue: str) -> None:
    """Asked on Wednesday 29 October for the week of 3 November, 1 week: the history is the 7
    days before today (22-28 October), so every weekday counts once and nothing of the future."""
    service = StaffingService(db, clock=lambda: paris("2025-10-29 10:00"))
    forecast = await service.forecast(queue, weeks=1, interval_min=60, tz=PARIS, staffing=staffing())
    assert forecast.history_since == paris("2025-10-22 00:00")
    assert forecast.history_until == paris("2025-10-29 00:00")
    assert forecast.plan.intervals[0].demand.start == paris("2025-11-03 00:00")  # next Monday
    monday_nine = next(item for item in forecast.plan.intervals
                       if item.demand.start == paris("2025-11-03 09:00"))
    assert monday_nine.demand.calls == pytest.approx(8)  # 27 October's eight (09:00-10:00)
    assert forecast.answer_time_s == SERVICE_LEVEL_S


async def test_forecast_refusals(db: Database, queue: str) -> None:
    service = StaffingService(db, clock=lambda: utc("2026-01-15 12:00"))
    with pytest.raises(NotFound):
        await service.forecast("no-such-queue", weeks=3, interval_min=30, tz=PARIS, staffing=staffing())
    with pytest.raises(InvalidRequest):
        await service.forecast(queue, weeks=0, interval_min=30, tz=PARIS, staffing=staffing())
    with pytest.raises(InvalidRequest):
        await service.forecast(queue, weeks=3, interval_min=7, tz=PARIS, staffing=staffing())
    # The week of 3 November has one call (Monday 00:10) and no answered one: no handle time
    # to size it with, unless the request gives one.
    with pytest.raises(InvalidRequest, match="aht_s"):
        await service.forecast(queue, weeks=1, interval_min=30, tz=PARIS, staffing=staffing(),
                               start=date(2025, 11, 10))
    taken = await service.forecast(queue, weeks=1, interval_min=30, tz=PARIS, staffing=staffing(),
                                   start=date(2025, 11, 10), fallback_aht_s=180)
    assert taken.history_calls == 1 and taken.history_handled == 0
    monday = next(item for item in taken.plan.intervals if item.demand.start == paris("2025-11-10 00:00"))
    assert monday.demand.calls == pytest.approx(1.0) and monday.demand.aht_s == 180
    assert monday.figures.agents >= 1
