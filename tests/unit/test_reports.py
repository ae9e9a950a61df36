"""The queue interval report and the agent report (engines/reports.py) on a hand-made dataset,
in New York and Paris, across changes of the clocks. Every expected figure is worked out by hand
in the comments next to it.

New York: 2026-03-08 02:00 EST (UTC-5) jumps to 03:00 EDT (UTC-4), a 23-hour day;
2026-11-01 02:00 EDT goes back to 01:00 EST, a 25-hour day.
Paris: 2026-03-29 02:00 CET (UTC+1) jumps to 03:00 CEST (UTC+2); 2026-10-25 03:00 CEST goes
back to 02:00 CET (at 01:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.engines.reports import (
    AgentRow,
    Attempt,
    CallEvent,
    Interval,
    Outcome,
    QueueEntry,
    QueueRow,
    StateChange,
    agent_report,
    buckets,
    campaign_report,
    queue_entries,
    queue_report,
)

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def z(text: str) -> datetime:
    """A UTC instant, 'YYYY-MM-DD HH:MM:SS'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def entry(call_id: str, queue: str, entered: str, outcome: Outcome, wait_s: float | None, **kw: object,
          ) -> QueueEntry:
    at = z(entered)
    left = at + timedelta(seconds=wait_s) if wait_s is not None else None
    return QueueEntry(call_id, queue, at, outcome, left_at=left, **kw)  # type: ignore[arg-type]


# ---- buckets ----------------------------------------------------------------------------------------


def test_buckets_are_local_wall_clock_across_changes_of_the_clocks() -> None:
    spring_ny = buckets(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK, Interval.m60)
    assert len(spring_ny) == 23
    assert [b.start.strftime("%H:%M%z") for b in spring_ny[:4]] == ["00:00-0500", "01:00-0500", "03:00-0400",
                                                                   "04:00-0400"]
    assert spring_ny[1].end_utc == z("2026-03-08 07:00:00")  # 01:00 EST lasts to 03:00 EDT: one hour
    assert len(buckets(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK, Interval.m15)) == 92
    fall_ny = buckets(date(2026, 11, 1), date(2026, 11, 1), NEW_YORK, Interval.m60)
    assert len(fall_ny) == 25
    assert [b.start.strftime("%H:%M%z") for b in fall_ny[1:4]] == ["01:00-0400", "01:00-0500", "02:00-0500"]
    spring_paris = buckets(date(2026, 3, 29), date(2026, 3, 29), PARIS, Interval.m30)
    assert len(spring_paris) == 46
    assert [b.start.strftime("%H:%M") for b in spring_paris[3:6]] == ["01:30", "03:00", "03:30"]
    fall_paris = buckets(date(2026, 10, 25), date(2026, 10, 25), PARIS, Interval.m30)
    assert len(fall_paris) == 50
    assert [b.start.strftime("%H:%M%z") for b in fall_paris[4:8]] == [
        "02:00+0200", "02:30+0200", "02:00+0100", "02:30+0100"]
    days = buckets(date(2026, 3, 7), date(2026, 3, 9), NEW_YORK, Interval.day)
    assert [(b.end_utc - b.start_utc) / timedelta(hours=1) for b in days] == [24, 23, 24]
    weeks = buckets(date(2026, 3, 4), date(2026, 3, 10), NEW_YORK, Interval.week)  # Wed .. next Tue
    assert [b.start.date() for b in weeks] == [date(2026, 3, 2), date(2026, 3, 9)]
    assert (weeks[0].end_utc - weeks[0].start_utc) == timedelta(days=7, hours=-1)  # holds the short day
    with pytest.raises(ValueError):
        buckets(date(2026, 3, 9), date(2026, 3, 8), NEW_YORK, Interval.day)


# ---- the queue interval report ---------------------------------------------------------------------

# New York, 2026-03-08, threshold 20 s, short abandons under 5 s.
# Bucket 1 = 01:00-02:00 EST = 06:00-07:00Z; bucket 2 = 03:00-04:00 EDT = 07:00-08:00Z.
NY_ENTRIES = [
    # bucket 1: answered after 15 s (in threshold), 120 s talk + 30 s wrap-up
    entry("c1", "sales", "2026-03-08 06:50:00", Outcome.answered, 15, agent_id="a1", talk_s=120.0,
          wrap_s=30.0),
    # bucket 1: hung up after 3 s, a short abandon
    entry("c2", "sales", "2026-03-08 06:59:50", Outcome.abandoned, 3),
    # bucket 2: answered after 40 s (late), 300 s talk (20 s of it on hold), no wrap-up, transferred
    entry("c3", "sales", "2026-03-08 07:10:00", Outcome.answered, 40, agent_id="a1", talk_s=300.0,
          hold_s=20.0, wrap_s=0.0, transferred=True),
    # bucket 2: hung up after 65 s
    entry("c4", "sales", "2026-03-08 07:20:00", Outcome.abandoned, 65),
    # bucket 2: asked for a callback after 25 s
    entry("c5", "sales", "2026-03-08 07:30:00", Outcome.callback, 25),
    # bucket 2, another queue: sent on by the queue after 90 s
    entry("c6", "support", "2026-03-08 07:40:00", Outcome.overflowed, 90),
    # the day before in New York (23:30 EST on March 7): outside this report
    entry("c7", "sales", "2026-03-08 04:30:00", Outcome.answered, 5, talk_s=60.0),
]


def _rows(rows: list[QueueRow], queue: str) -> tuple[list[QueueRow], QueueRow]:
    mine = [r for r in rows if r.queue == queue]
    assert mine[-1].bucket is None
    return mine[:-1], mine[-1]


def test_queue_interval_report_new_york_spring_forward() -> None:
    cuts = buckets(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK, Interval.m60)
    rows = queue_report(NY_ENTRIES, cuts, threshold_s=20, short_abandon_s=5, queues=["empty"])
    assert [r.queue for r in rows if r.bucket is None] == ["empty", "sales", "support"]
    sales, total = _rows(rows, "sales")
    assert len(sales) == 23
    one, two = sales[1].figures, sales[2].figures
    assert sales[1].bucket is not None and sales[1].bucket.start.strftime("%H:%M%z") == "01:00-0500"
    # bucket 1: offered 2, answered 1, abandoned 1 of which short 1.
    assert (one.offered, one.answered, one.abandoned, one.short_abandoned) == (2, 1, 1, 1)
    assert one.service_level == 1.0  # 1 in threshold / (2 offered - 1 short)
    assert one.asa_s == 15.0 and one.aht_s == 150.0 and one.longest_wait_s == 15.0
    assert one.abandon_rate == 0.0  # (1 - 1 short) / (2 - 1)
    # distributions, edges 10 20 30 60 120 180 300: 15 s in [10, 20); 3 s in [0, 10)
    assert one.answered_waits == [0, 1, 0, 0, 0, 0, 0, 0]
    assert one.abandoned_waits == [1, 0, 0, 0, 0, 0, 0, 0]
    # bucket 2 (03:00 EDT, right after the skipped hour): offered 3, answered 1 after 40 s,
    # abandoned 1 after 65 s, a callback; transferred 1.
    assert (two.offered, two.answered, two.abandoned, two.short_abandoned, two.callbacks) == (3, 1, 1, 0, 1)
    assert two.service_level == 0.0  # 0 / (3 - 0)
    assert two.asa_s == 40.0 and two.aht_s == 300.0 and two.hold_s == 20.0 and two.transfers == 1
    assert two.longest_wait_s == 65.0  # the abandoned caller waited longest
    assert two.abandon_rate == pytest.approx(1 / 3)
    assert two.answered_waits == [0, 0, 0, 1, 0, 0, 0, 0] and two.abandoned_waits == [0, 0, 0, 0, 1, 0, 0, 0]
    assert all(r.figures.offered == 0 for i, r in enumerate(sales) if i not in (1, 2))
    # the day: offered 5, answered 2 (1 in threshold), abandoned 2 (1 short)
    t = total.figures
    assert (t.offered, t.answered, t.abandoned, t.short_abandoned) == (5, 2, 2, 1)
    assert (t.callbacks, t.transfers) == (1, 1)
    assert t.service_level == 0.25  # 1 / (5 - 1)
    assert t.asa_s == 27.5  # (15 + 40) / 2
    assert t.aht_s == 225.0  # (150 + 300) / 2
    assert t.longest_wait_s == 65.0
    support, support_total = _rows(rows, "support")
    assert support[2].figures.overflowed == 1 and support_total.figures.offered == 1
    assert support_total.figures.service_level == 0.0 and support_total.figures.asa_s is None
    _, empty = _rows(rows, "empty")
    assert empty.figures.offered == 0 and empty.figures.service_level is None and empty.figures.aht_s is None


def test_the_same_calls_by_day_in_new_york_and_in_paris() -> None:
    # c7 (04:30Z) is March 7 in New York (23:30 EST) but March 8 in Paris (05:30 CET); the
    # other calls are March 8 in both. New York's March 8 is 23 hours long, Paris' 24.
    ny = queue_report(NY_ENTRIES, buckets(date(2026, 3, 7), date(2026, 3, 8), NEW_YORK, Interval.day),
                      threshold_s=20, short_abandon_s=5)
    (ny7, ny8), _ = _rows(ny, "sales")
    assert (ny7.figures.offered, ny8.figures.offered) == (1, 5)
    paris = queue_report(NY_ENTRIES, buckets(date(2026, 3, 7), date(2026, 3, 8), PARIS, Interval.day),
                         threshold_s=20, short_abandon_s=5)
    (p7, p8), _ = _rows(paris, "sales")
    assert (p7.figures.offered, p8.figures.offered) == (0, 6)
    assert p8.figures.service_level == pytest.approx(2 / 5)  # c1 and c7 in 20 s / (6 - 1 short)
    assert p8.figures.asa_s == pytest.approx(20.0)  # (15 + 40 + 5) / 3
    assert p8.figures.aht_s == pytest.approx(510 / 3)  # (150 + 300 + 60) / 3


def test_queue_report_paris_fall_back_tells_the_two_2am_apart() -> None:
    # 2026-10-25: 02:10 CEST is 00:10Z, 02:10 CET is 01:10Z, 30-minute buckets.
    entries = [entry("p1", "fr", "2026-10-25 00:10:00", Outcome.answered, 8, talk_s=100.0),
               entry("p2", "fr", "2026-10-25 01:10:00", Outcome.abandoned, 30),
               entry("p3", "fr", "2026-10-25 01:20:00", Outcome.answered, 25, talk_s=50.0, wrap_s=10.0),
               entry("p4", "fr", "2026-10-25 01:35:00", Outcome.waiting, None)]
    cuts = buckets(date(2026, 10, 25), date(2026, 10, 25), PARIS, Interval.m30)
    rows, total = _rows(queue_report(entries, cuts, threshold_s=20, short_abandon_s=5), "fr")
    first_two, second_two = rows[4].figures, rows[6].figures  # 02:00+02:00 and 02:00+01:00
    assert rows[4].bucket.start.strftime("%H:%M%z") == "02:00+0200"  # type: ignore[union-attr]
    assert rows[6].bucket.start.strftime("%H:%M%z") == "02:00+0100"  # type: ignore[union-attr]
    assert (first_two.offered, first_two.answered, first_two.service_level) == (1, 1, 1.0)
    assert (second_two.offered, second_two.answered, second_two.abandoned) == (2, 1, 1)
    assert second_two.service_level == 0.0  # p3 waited 25 s > 20; 0 / (2 - 0)
    assert second_two.aht_s == 60.0 and second_two.longest_wait_s == 30.0
    assert rows[7].figures.waiting == 1 and rows[7].figures.longest_wait_s == 0.0
    assert total.figures.offered == 4 and total.figures.service_level == pytest.approx(1 / 4)


# ---- the agent report -----------------------------------------------------------------------------

A1 = [
    StateChange("a1", z("2026-03-08 04:00:00"), "available", "logged in"),  # before the period
    StateChange("a1", z("2026-03-08 06:30:00"), "paused", "break"),
    StateChange("a1", z("2026-03-08 06:40:00"), "available"),
    StateChange("a1", z("2026-03-08 06:50:00"), "reserved", "offer o1"),
    StateChange("a1", z("2026-03-08 06:50:15"), "on_call", "answered c1", "c1"),
    StateChange("a1", z("2026-03-08 06:52:15"), "wrap_up", "call ended"),
    StateChange("a1", z("2026-03-08 06:52:45"), "available", "wrap-up ended"),
    StateChange("a1", z("2026-03-08 06:55:00"), "reserved", "offer o2"),
    StateChange("a1", z("2026-03-08 06:55:20"), "available", "no answer"),  # a missed offer
    StateChange("a1", z("2026-03-08 06:58:00"), "paused", "lunch"),
    StateChange("a1", z("2026-03-08 07:30:00"), "available"),
    StateChange("a1", z("2026-03-08 07:57:30"), "reserved", "offer o3"),
    StateChange("a1", z("2026-03-08 07:58:00"), "on_call", "answered c3", "c3"),  # across 08:00Z
    StateChange("a1", z("2026-03-08 08:03:00"), "wrap_up", "call ended"),
    StateChange("a1", z("2026-03-08 08:03:30"), "available", "wrap-up ended"),
    StateChange("a1", z("2026-03-08 08:10:00"), "logged_out", "logged out"),
]
UNTIL = z("2026-12-01 00:00:00")


def _agent(rows: list[AgentRow], agent: str) -> tuple[list[AgentRow], AgentRow]:
    mine = [r for r in rows if r.agent_id == agent]
    assert mine[-1].bucket is None
    return mine[:-1], mine[-1]


def test_agent_report_new_york_hours_split_at_the_boundaries() -> None:
    cuts = buckets(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK, Interval.m60)
    rows, total = _agent(agent_report(A1, cuts, UNTIL, agents=["idle"]), "a1")
    b0, b1, b2, b3 = (r.figures for r in rows[:4])
    # 00:00 EST (05-06Z): available since 04:00Z, all hour
    assert (b0.logged_in_s, b0.available_s, b0.talk_s) == (3600, 3600, 0)
    assert b0.occupancy == 0.0
    # 01:00 EST (06-07Z): available 1800 + 600 + 135 + 160 and ringing 15 + 20: 2730 (35 ringing);
    # paused break 600 + lunch 120; talk 120; wrap-up 30
    assert (b1.available_s, b1.ringing_s, b1.talk_s, b1.wrap_s, b1.paused_s) == (2730, 35, 120, 30, 720)
    assert b1.pause_by_reason == {"break": 600, "lunch": 120}
    assert b1.logged_in_s == 3600
    assert (b1.calls_handled, b1.missed_offers, b1.aht_s) == (1, 1, 150)
    assert b1.occupancy == pytest.approx(150 / 2880)
    # 03:00 EDT (07-08Z): lunch 1800, available 1650 + ringing 30, talk 120 (of c3's 300)
    assert (b2.available_s, b2.ringing_s, b2.talk_s, b2.paused_s) == (1680, 30, 120, 1800)
    assert b2.calls_handled == 1 and b2.aht_s == 330  # c3 counted where taken: 300 talk + 30 wrap-up
    assert b2.occupancy == pytest.approx(120 / 1800)
    # 04:00 EDT (08-09Z): talk 180, wrap-up 30, available 390, then logged out
    assert (b3.logged_in_s, b3.talk_s, b3.wrap_s, b3.available_s, b3.calls_handled) == (600, 180, 30, 390, 0)
    assert b3.occupancy == pytest.approx(210 / 600)
    assert all(r.figures.logged_in_s == 0 for r in rows[4:])
    t = total.figures
    assert (t.logged_in_s, t.available_s, t.talk_s, t.wrap_s, t.paused_s) == (11400, 8400, 420, 60, 2520)
    assert t.pause_by_reason == {"break": 600, "lunch": 1920}
    assert (t.calls_handled, t.missed_offers, t.aht_s) == (2, 1, 240)
    assert t.occupancy == pytest.approx(480 / 8880)
    _, idle = _agent(agent_report(A1, cuts, UNTIL, agents=["idle"]), "idle")
    assert idle.figures.logged_in_s == 0 and idle.figures.occupancy is None and idle.figures.aht_s is None


def test_agent_report_by_day_in_paris_and_new_york() -> None:
    # Paris' March 8 starts at 23:00Z on March 7, so it has 04:00-06:00Z available as well:
    # available 7200 + 2730 + 1680 + 390 = 12000; New York's day (from 05:00Z): 3600 + ... = 8400.
    paris = agent_report(A1, buckets(date(2026, 3, 8), date(2026, 3, 8), PARIS, Interval.day), UNTIL)
    ny = agent_report(A1, buckets(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK, Interval.day), UNTIL)
    assert paris[0].figures.available_s == 12000 and paris[0].figures.logged_in_s == 15000
    assert ny[0].figures.available_s == 8400 and ny[0].figures.logged_in_s == 11400


@pytest.mark.parametrize(("zone", "day", "hours"), [
    (NEW_YORK, date(2026, 3, 8), 23), (NEW_YORK, date(2026, 11, 1), 25),
    (PARIS, date(2026, 3, 29), 23), (PARIS, date(2026, 10, 25), 25), (PARIS, date(2026, 10, 24), 24),
])
def test_a_whole_day_logged_in_is_the_day_real_length(zone: ZoneInfo, day: date, hours: int) -> None:
    log = [StateChange("b", z("2026-01-01 00:00:00"), "available")]
    rows = agent_report(log, buckets(day, day, zone, Interval.m30), UNTIL)
    assert len(rows) == hours * 2 + 1
    assert all(r.figures.available_s == 1800 for r in rows[:-1])
    assert rows[-1].figures.logged_in_s == hours * 3600


def test_the_last_state_lasts_until_now() -> None:
    log = [StateChange("b", z("2026-03-29 08:00:00"), "paused", "training")]
    cuts = buckets(date(2026, 3, 29), date(2026, 3, 29), PARIS, Interval.m60)
    rows = agent_report(log, cuts, until=z("2026-03-29 08:20:00"))
    assert rows[-1].figures.pause_by_reason == {"training": 1200}


# ---- queue entries from a call's events -------------------------------------------------------------


def ev(at: str, kind: str, ended: str | None = None, **data: str) -> CallEvent:
    return CallEvent(z(at), kind, data, z(ended) if ended else None)


def test_entries_from_events_overflow_then_answer_with_hold_and_transfer() -> None:
    events = [ev("2026-03-08 07:00:00", "QueueEntered", queue="sales"),
              ev("2026-03-08 07:01:00", "QueueOverflowed", queue="sales"),
              ev("2026-03-08 07:01:00", "QueueEntered", queue="support"),
              ev("2026-03-08 07:01:30", "AgentConnected", "2026-03-08 07:06:30", agent_id="a1"),
              ev("2026-03-08 07:02:00", "CallHeld"), ev("2026-03-08 07:02:45", "CallResumed"),
              ev("2026-03-08 07:06:00", "TransferStarted")]
    sales, support = queue_entries("c", events, z("2026-03-08 07:10:00"), wrap_s=12.0)
    assert (sales.queue, sales.outcome, sales.wait_s) == ("sales", Outcome.overflowed, 60.0)
    assert (support.queue, support.outcome, support.wait_s, support.agent_id) == ("support", Outcome.answered,
                                                                                   30.0, "a1")
    assert (support.talk_s, support.hold_s, support.wrap_s, support.transferred) == (300.0, 45.0, 12.0, True)
    assert support.handle_s == 312.0


def test_entries_from_events_abandon_callback_voicemail_waiting_and_old_calls() -> None:
    entered = ev("2026-03-08 07:00:00", "QueueEntered", queue="q")
    [gone] = queue_entries("c", [entered], z("2026-03-08 07:00:42"))
    assert (gone.outcome, gone.wait_s) == (Outcome.abandoned, 42.0)
    [live] = queue_entries("c", [entered], None)
    assert live.outcome is Outcome.waiting and live.wait_s is None
    [cb] = queue_entries("c", [entered, ev("2026-03-08 07:00:20", "CallbackRequested", queue="q")],
                         z("2026-03-08 07:01:00"))
    assert (cb.outcome, cb.wait_s) == (Outcome.callback, 20.0)
    [vm] = queue_entries("c", [entered, ev("2026-03-08 07:00:09", "QueueExited", queue="q")],
                         z("2026-03-08 07:02:00"))
    assert vm.outcome is Outcome.voicemail
    moved, then = queue_entries("c", [ev("2026-03-08 07:00:00", "QueueEntered", queue="a"),
                                      ev("2026-03-08 07:00:10", "QueueMoved", queue="b")],
                                z("2026-03-08 07:00:15"))
    assert (moved.queue, moved.outcome, then.queue, then.outcome, then.wait_s) == ("a", Outcome.moved, "b",
                                                                                   Outcome.abandoned, 5.0)
    # recorded before QueueEntered existed: one stay in the call's last queue, from the fallback
    connected = ev("2026-03-08 07:00:30", "AgentConnected", "2026-03-08 07:01:30", agent_id="x")
    [old] = queue_entries("c", [connected],
                          z("2026-03-08 07:01:30"), fallback_entered_at=z("2026-03-08 07:00:00"),
                          fallback_queue="q")
    assert (old.queue, old.outcome, old.wait_s) == ("q", Outcome.answered, 30.0)
    assert (old.talk_s, old.hold_s) == (60.0, None)
    assert queue_entries("c", [ev("2026-03-08 07:00:00", "LegArrived")], z("2026-03-08 07:00:05")) == []


def test_entries_when_the_new_queue_is_written_before_the_old_one_overflow() -> None:
    # services/queue_caller.py writes QueueEntered of the next queue before the call service
    # writes the QueueOverflowed that caused it, at the same instant.
    events = [ev("2026-03-08 07:00:00", "QueueEntered", queue="sales"),
              ev("2026-03-08 07:01:00", "QueueEntered", queue="support"),
              ev("2026-03-08 07:01:00", "QueueOverflowed", queue="sales"),
              ev("2026-03-08 07:01:10", "QueueMoved", queue="vip", from_queue="support")]
    sales, support, vip = queue_entries("c", events, z("2026-03-08 07:01:12"))
    assert (sales.queue, sales.outcome, sales.wait_s) == ("sales", Outcome.overflowed, 60.0)
    assert (support.queue, support.outcome, support.wait_s) == ("support", Outcome.moved, 10.0)
    assert (vip.queue, vip.outcome, vip.wait_s) == ("vip", Outcome.abandoned, 2.0)


# ---- the campaign report --------------------------------------------------------------------------


def test_campaign_report_by_day_in_paris_across_the_spring_change() -> None:
    # Paris, 2026-03-28 (24 h) and 2026-03-29 (23 h). 03-29 starts at 2026-03-28 23:00Z.
    attempts = [
        Attempt("cmp", 1, z("2026-03-28 09:00:00"), "answered", "sale", "ag", talk_s=300.0),
        Attempt("cmp", 2, z("2026-03-28 09:05:00"), "no_answer"),
        Attempt("cmp", 2, z("2026-03-28 22:59:59"), "busy"),  # still the 28th in Paris (23:59:59)
        Attempt("cmp", 3, z("2026-03-28 23:00:00"), "abandoned"),  # 00:00 on the 29th
        Attempt("cmp", 4, z("2026-03-29 08:00:00"), "machine"),
        Attempt("cmp", 1, z("2026-03-29 09:00:00"), "callback", "call-later", "ag", talk_s=60.0),
        Attempt("cmp", 5, z("2026-03-29 10:00:00"), None),
        Attempt("other", 9, z("2026-03-29 10:00:00"), "answered", "sale"),
    ]
    cuts = buckets(date(2026, 3, 28), date(2026, 3, 29), PARIS, Interval.day)
    # the agent's logged-in time: 2 h on the 28th, 1 h on the 29th
    rows = campaign_report(attempts, cuts, {"ag": [7200.0, 3600.0], "unrelated": [99999.0, 99999.0]})
    mine = [r for r in rows if r.campaign_id == "cmp"]
    d28, d29, total = (r.figures for r in mine)
    # the 28th: 3 attempts (answered, no answer, busy), 2 contacts, 1 answered by a person
    assert (d28.attempts, d28.contacts_dialed, d28.contacts_reached, d28.answered_by_person) == (3, 2, 1, 1)
    assert d28.outcomes == {"answered": 1, "no_answer": 1, "busy": 1} and d28.dispositions == {"sale": 1}
    assert d28.answer_rate == pytest.approx(1 / 3) and d28.abandon_rate == 0.0
    assert d28.talk_per_agent_hour_s == 150.0  # 300 s of talk in 2 agent-hours
    # the 29th: 4 attempts, one still open; by a person: abandoned + callback; reached: contact 1
    assert (d29.attempts, d29.contacts_dialed, d29.contacts_reached, d29.answered_by_person) == (4, 4, 1, 2)
    assert d29.outcomes == {"abandoned": 1, "machine": 1, "callback": 1, "in_progress": 1}
    assert d29.answer_rate == pytest.approx(2 / 3)  # of the 3 closed
    assert d29.abandon_rate == 0.5 and d29.talk_per_agent_hour_s == 60.0
    assert (total.attempts, total.contacts_dialed, total.contacts_reached) == (7, 5, 1)
    assert total.abandon_rate == pytest.approx(1 / 3)  # 1 abandoned / 3 answered by a person
    assert total.dispositions == {"sale": 1, "call-later": 1}
    assert total.talk_per_agent_hour_s == pytest.approx(360 / 3)
    assert [r.figures.attempts for r in rows if r.campaign_id == "other"] == [0, 1, 1]
