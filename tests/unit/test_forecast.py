"""The seasonal average (engines/forecast.py) and a day of intervals sized (engines/staffing.py),
without a database: days cut into intervals across changes of the clocks, slots, averages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.engines.erlang import Load, Target, agents_needed
from controller.engines.forecast import HistoryBin, bin_minutes, day_intervals, seasonal_average, slot_of
from controller.engines.staffing import Demand, Staffing, TrafficTooLarge, plan

PARIS = ZoneInfo("Europe/Paris")
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30, no summer time


def test_a_day_has_its_real_intervals() -> None:
    assert len(day_intervals(date(2025, 10, 25), PARIS, 30)) == 48
    autumn = day_intervals(date(2025, 10, 26), PARIS, 30)  # 25 hours
    assert len(autumn) == 50
    assert [t.strftime("%H:%M") for t in autumn[3:9]] == ["01:30", "02:00", "02:30", "02:00", "02:30",
                                                         "03:00"]
    assert [t.utcoffset().total_seconds() / 3600 for t in autumn[4:8]] == [2, 2, 1, 1]  # type: ignore[union-attr]
    spring = day_intervals(date(2026, 3, 29), PARIS, 30)  # 23 hours: no 02:00 or 02:30
    assert len(spring) == 46
    assert [t.strftime("%H:%M") for t in spring[3:6]] == ["01:30", "03:00", "03:30"]
    assert len(day_intervals(date(2025, 10, 26), PARIS, 60)) == 25
    assert day_intervals(date(2025, 10, 26), KOLKATA, 60)[0] == datetime(2025, 10, 25, 18, 30, tzinfo=UTC)


def test_slots_are_local_wall_clock() -> None:
    assert slot_of(datetime(2025, 10, 20, 7, 10, tzinfo=UTC), PARIS, 30) == (1, 18)  # 09:10 CEST
    assert slot_of(datetime(2025, 10, 27, 8, 10, tzinfo=UTC), PARIS, 30) == (1, 18)  # 09:10 CET
    assert slot_of(datetime(2025, 10, 26, 22, 45, tzinfo=UTC), PARIS, 30) == (7, 47)  # Sunday 23:45
    assert slot_of(datetime(2025, 10, 26, 23, 5, tzinfo=UTC), PARIS, 30) == (1, 0)  # Monday 00:05
    assert slot_of(datetime(2025, 10, 20, 3, 40, tzinfo=UTC), KOLKATA, 60) == (1, 9)  # 09:10 IST


def test_bins_never_straddle_two_slots() -> None:
    assert [bin_minutes(m) for m in (5, 10, 15, 20, 30, 60)] == [5, 5, 15, 5, 15, 15]
    with pytest.raises(ValueError):
        bin_minutes(7)


def test_seasonal_average_counts_real_intervals() -> None:
    history = [date(2025, 10, 20) + timedelta(days=d) for d in range(7)]  # Monday to Sunday
    bins = [
        HistoryBin(datetime(2025, 10, 20, 7, 0, tzinfo=UTC), offered=3, handled=2, handle_s=400),  # 09:00
        HistoryBin(datetime(2025, 10, 26, 0, 15, tzinfo=UTC), offered=2, handled=0, handle_s=0),  # 02:15 CEST
        HistoryBin(datetime(2025, 10, 26, 1, 15, tzinfo=UTC), offered=4, handled=1, handle_s=100),  # CET
    ]
    week = [date(2025, 11, 3) + timedelta(days=d) for d in range(7)]
    intervals = seasonal_average(bins, history, week, PARIS, 30)
    assert len(intervals) == 7 * 48
    by_slot = {(i.weekday, i.slot): i for i in intervals}
    monday_nine = by_slot[(1, 18)]
    assert monday_nine.calls == 3 and monday_nine.aht_s == 200 and monday_nine.occurrences == 1
    # Sunday 02:00 happened twice on 26 October: (2 + 4) / 2 calls per real interval.
    assert by_slot[(7, 4)].calls == 3 and by_slot[(7, 4)].occurrences == 2 and by_slot[(7, 4)].aht_s == 100
    # A slot without answered calls takes the overall mean handle time.
    assert by_slot[(2, 18)].calls == 0 and by_slot[(2, 18)].aht_s == pytest.approx(500 / 3)
    # Forecasting the spring-forward Sunday from a history without one: its 02:00 simply is not there.
    spring = seasonal_average(bins, history, [date(2026, 3, 29)], PARIS, 30)
    assert len(spring) == 46 and all(i.slot not in (4, 5) for i in spring)
    # A history whose Sunday skipped 02:00 forecasts that slot at 0 calls.
    skipped = seasonal_average([], [date(2026, 3, 29)], [date(2026, 4, 5)], PARIS, 30)
    assert {(i.slot, i.occurrences, i.calls, i.aht_s) for i in skipped if i.slot == 4} == {(4, 0, 0.0, None)}


def test_a_day_sized_with_totals() -> None:
    staffing = Staffing(Target(20, service_level=0.8), shrinkage=0.25)
    demands = [Demand(0, None, "00:00"), Demand(100, 180, "09:00"), Demand(50, 240, "09:30")]
    day = plan(demands, 1800, staffing)
    assert day.model == "erlang_c"
    assert [p.figures.agents for p in day.intervals] == [
        0, 14, agents_needed(Load.of_interval(50, 1800, 240), Target(20, service_level=0.8)).agents]
    assert [p.scheduled for p in day.intervals] == [0, 19, -(-day.intervals[2].figures.agents * 4 // 3)]
    totals = day.totals
    assert totals.calls == 150
    assert totals.agent_hours == sum(p.figures.agents for p in day.intervals) / 2
    assert totals.peak_agents == 14
    expected_sl = sum(d.calls * p.figures.service_level
                      for d, p in zip(demands, day.intervals, strict=True)) / 150
    assert totals.service_level == pytest.approx(expected_sl)
    assert plan(demands, 1800, Staffing(Target(20, service_level=0.8), patience_s=90)).model == "erlang_a"
    with pytest.raises(TrafficTooLarge):
        plan([Demand(1_000_000, 600)], 1800, staffing)
    with pytest.raises(ValueError):
        plan([Demand(10, None)], 1800, staffing)
