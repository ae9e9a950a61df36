"""Opening hours (pure): local wall-clock intervals, holidays, midnight and DST in Europe/Paris."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from controller.domain.flows import parse_schedule
from controller.engines.schedule import is_open, next_change

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE = parse_schedule(
    {
        "name": "office",
        "timezone": "Europe/Paris",
        "weekly": {d: [["08:00", "18:00"]] for d in WEEKDAYS},
        "holidays": [
            {"date": "2026-12-25", "name": "Christmas"},
            {"date": "2026-12-24", "name": "Christmas Eve", "hours": [["08:00", "12:00"]]},
            {"date": "2026-12-26", "name": "Open Saturday", "hours": [["10:00", "16:00"]]},
        ],
    }
)
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily(*intervals: list[str]) -> object:
    return parse_schedule(
        {
            "name": "d",
            "timezone": "Europe/Paris",
            "weekly": {d: [list(i) for i in intervals] for d in EVERY_DAY},
        }
    )


# --- is_open --------------------------------------------------------------------------------


def test_weekly_hours_with_exclusive_end():
    assert not is_open(OFFICE, paris(2026, 11, 23, 7, 59, 59))
    assert is_open(OFFICE, paris(2026, 11, 23, 8, 0))
    assert is_open(OFFICE, paris(2026, 11, 23, 17, 59, 59))
    assert not is_open(OFFICE, paris(2026, 11, 23, 18, 0))
    assert not is_open(OFFICE, paris(2026, 11, 28, 12, 0))  # Saturday


def test_the_instant_is_read_in_the_schedules_timezone():
    # 07:30 UTC is 08:30 in Paris in winter, 09:30 in summer; 06:30 UTC only opens in summer
    assert is_open(OFFICE, utc(2026, 11, 23, 7, 30))
    assert not is_open(OFFICE, utc(2026, 11, 23, 6, 30))
    assert is_open(OFFICE, utc(2026, 6, 1, 6, 30))
    new_york = datetime(2026, 11, 23, 2, 30, tzinfo=ZoneInfo("America/New_York"))  # 08:30 Paris
    assert is_open(OFFICE, new_york)


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="aware"):
        is_open(OFFICE, datetime(2026, 11, 23, 10, 0))
    with pytest.raises(ValueError, match="aware"):
        next_change(OFFICE, datetime(2026, 11, 23, 10, 0))


def test_holiday_without_hours_is_closed_all_day():
    assert not is_open(OFFICE, paris(2026, 12, 25, 10, 0))  # a Friday
    assert is_open(OFFICE, paris(2026, 12, 18, 10, 0))  # the Friday before


def test_holiday_with_hours_replaces_the_weekly_hours():
    assert is_open(OFFICE, paris(2026, 12, 24, 11, 59))
    assert not is_open(OFFICE, paris(2026, 12, 24, 12, 0))
    assert not is_open(OFFICE, paris(2026, 12, 24, 15, 0))  # open on a normal Thursday
    assert is_open(OFFICE, paris(2026, 12, 26, 10, 0))  # a Saturday, normally closed


def test_midnight_boundaries():
    night = parse_schedule(
        {
            "name": "night",
            "timezone": "Europe/Paris",
            "weekly": {"fri": [["22:00", "24:00"]], "sat": [["00:00", "02:00"]]},
        }
    )
    assert not is_open(night, paris(2026, 11, 27, 21, 59, 59))
    assert is_open(night, paris(2026, 11, 27, 23, 59, 59, 999999))
    assert is_open(night, paris(2026, 11, 28, 0, 0))
    assert is_open(night, paris(2026, 11, 28, 1, 59))
    assert not is_open(night, paris(2026, 11, 28, 2, 0))
    # Friday night into Saturday is one opening: the next change is Saturday 02:00, not midnight
    assert next_change(night, paris(2026, 11, 27, 23, 0)) == paris(2026, 11, 28, 2, 0)
    assert next_change(night, paris(2026, 11, 27, 12, 0)) == paris(2026, 11, 27, 22, 0)


def test_24_hours_every_day_never_changes_and_never_open_neither():
    always = daily(["00:00", "24:00"])
    assert is_open(always, utc(2026, 3, 29, 1, 30))
    assert next_change(always, utc(2026, 3, 28, 0, 0)) is None
    never = parse_schedule({"name": "n", "timezone": "Europe/Paris", "weekly": {}})
    assert not is_open(never, utc(2026, 3, 29, 1, 30))
    assert next_change(never, utc(2026, 3, 28, 0, 0)) is None


def test_overlapping_intervals_are_one_opening():
    schedule = daily(["08:00", "12:00"], ["10:00", "14:00"])
    assert is_open(schedule, paris(2026, 11, 23, 12, 30))
    assert next_change(schedule, paris(2026, 11, 23, 9, 0)) == paris(2026, 11, 23, 14, 0)


# --- DST: Europe/Paris springs forward on 2026-03-29 (02:00 → 03:00) and falls back on
#          2026-10-25 (03:00 → 02:00) ----------------------------------------------------------


def test_spring_forward_opening_hours_follow_the_wall_clock():
    # 08:00 Paris is 07:00 UTC on Saturday 28 March, 06:00 UTC on Sunday 29 March
    schedule = daily(["08:00", "18:00"])
    assert not is_open(schedule, utc(2026, 3, 29, 6, 59) - timedelta(hours=1))
    assert is_open(schedule, utc(2026, 3, 29, 6, 0))
    assert is_open(schedule, utc(2026, 3, 28, 7, 0))
    assert not is_open(schedule, utc(2026, 3, 28, 6, 59))
    assert next_change(schedule, utc(2026, 3, 28, 18, 0)) == utc(2026, 3, 29, 6, 0)
    assert next_change(schedule, utc(2026, 3, 29, 6, 0)) == utc(2026, 3, 29, 16, 0)


def test_fall_back_opening_hours_follow_the_wall_clock():
    schedule = daily(["08:00", "18:00"])
    assert next_change(schedule, utc(2026, 10, 24, 17, 0)) == utc(2026, 10, 25, 7, 0)
    assert not is_open(schedule, utc(2026, 10, 25, 6, 59))
    assert is_open(schedule, utc(2026, 10, 25, 7, 0))
    assert next_change(schedule, utc(2026, 10, 25, 7, 0)) == utc(2026, 10, 25, 17, 0)


def test_a_boundary_inside_the_spring_gap_takes_effect_at_the_jump():
    # 02:30 does not exist on 29 March: the wall clock passes it when it jumps 02:00 → 03:00
    schedule = daily(["02:30", "05:00"])
    assert not is_open(schedule, utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
    assert is_open(schedule, utc(2026, 3, 29, 1, 0))  # 03:00 CEST
    assert next_change(schedule, utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)
    assert next_change(schedule, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 3, 0)  # 05:00 CEST


def test_the_repeated_hour_in_autumn_opens_twice():
    # 02:00-02:30 happens twice on 25 October: 00:00-00:30 UTC (CEST) and 01:00-01:30 UTC (CET)
    schedule = daily(["02:00", "02:30"])
    changes = []
    at = utc(2026, 10, 24, 23, 0)
    for _ in range(4):
        at = next_change(schedule, at)
        changes.append(at)
    assert changes == [
        utc(2026, 10, 25, 0, 0),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 0),
        utc(2026, 10, 25, 1, 30),
    ]
    assert is_open(schedule, utc(2026, 10, 25, 0, 15)) and is_open(schedule, utc(2026, 10, 25, 1, 15))
    assert not is_open(schedule, utc(2026, 10, 25, 0, 45))


def test_a_holiday_on_the_dst_sunday():
    schedule = parse_schedule(
        {
            "name": "h",
            "timezone": "Europe/Paris",
            "weekly": {"sun": [["08:00", "18:00"]]},
            "holidays": [{"date": "2026-03-29", "hours": [["10:00", "11:00"]]}],
        }
    )
    assert not is_open(schedule, utc(2026, 3, 29, 7, 0))  # 09:00 CEST
    assert is_open(schedule, utc(2026, 3, 29, 8, 0))  # 10:00 CEST
    assert next_change(schedule, utc(2026, 3, 29, 8, 0)) == utc(2026, 3, 29, 9, 0)
    assert next_change(schedule, utc(2026, 3, 29, 9, 0)) == utc(2026, 4, 5, 6, 0)


# --- next_change --------------------------------------------------------------------------


def test_next_change_over_a_weekend_and_a_holiday():
    assert next_change(OFFICE, paris(2026, 11, 27, 18, 0)) == paris(2026, 11, 30, 8, 0)
    assert next_change(OFFICE, paris(2026, 12, 24, 9, 0)) == paris(2026, 12, 24, 12, 0)
    assert next_change(OFFICE, paris(2026, 12, 24, 12, 0)) == paris(2026, 12, 26, 10, 0)


def test_next_change_is_strictly_after_and_in_utc():
    change = next_change(OFFICE, paris(2026, 11, 23, 8, 0))
    assert change == paris(2026, 11, 23, 18, 0) and change.tzinfo is UTC


def test_next_change_looks_14_days_ahead_only():
    schedule = parse_schedule(
        {
            "name": "rare",
            "timezone": "Europe/Paris",
            "weekly": {},
            "holidays": [{"date": "2026-12-20", "hours": [["09:00", "10:00"]]}],
        }
    )
    assert next_change(schedule, paris(2026, 12, 6, 9, 0)) == paris(2026, 12, 20, 9, 0)
    assert next_change(schedule, paris(2026, 12, 6, 8, 59)) is None


@settings(max_examples=150, deadline=None)
@given(
    minutes=st.integers(0, 60 * 24 * 400),
    start=st.sampled_from(["00:00", "02:15", "07:30", "08:00"]),
    end=st.sampled_from(["02:45", "12:00", "18:00", "24:00"]),
)
def test_next_change_is_the_first_instant_the_answer_changes(minutes, start, end):
    assume(start < end and (start, end) != ("00:00", "24:00"))
    schedule = daily([start, end])
    at = utc(2026, 1, 1) + timedelta(minutes=minutes)
    change = next_change(schedule, at)
    assert change is not None
    assert is_open(schedule, change) != is_open(schedule, at)
    # no change in between (checked every 15 minutes, the grid of the boundaries)
    probe = at
    while probe + timedelta(minutes=15) < change:
        probe += timedelta(minutes=15)
        assert is_open(schedule, probe) == is_open(schedule, at), probe
    assert is_open(schedule, change - timedelta(seconds=1)) == is_open(schedule, at)
