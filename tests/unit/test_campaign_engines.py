"""Campaign engines and domain, pure: calling windows, retries, hopper selection, caller ID,
the campaign state table. No I/O; milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.domain.campaigns import (
    CAMPAIGN_TRANSITIONS,
    CallingWindow,
    CampaignAction,
    CampaignState,
    ContactDue,
    ContactState,
    IllegalTransition,
    Outcome,
    RetryPolicy,
    RetryRule,
    apply_action,
)
from controller.engines import caller_id, hopper, retries
from controller.engines.calling_windows import is_callable, open_zones, zone_is_open

NY = "America/New_York"
LA = "America/Los_Angeles"
WEEKDAYS_9_TO_21 = (CallingWindow(frozenset(range(5)), 9 * 60, 21 * 60),)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---- calling windows ------------------------------------------------------------------------


def test_a_window_is_judged_on_the_contacts_own_clock() -> None:
    at = utc(2026, 6, 10, 14, 0)  # Wednesday: 10:00 in New York, 07:00 in Los Angeles
    assert zone_is_open(WEEKDAYS_9_TO_21, NY, at)
    assert not zone_is_open(WEEKDAYS_9_TO_21, LA, at)
    assert zone_is_open(WEEKDAYS_9_TO_21, LA, at + timedelta(hours=2))


def test_window_start_is_inclusive_and_end_exclusive() -> None:
    opens = utc(2026, 6, 10, 13, 0)  # 09:00 EDT
    assert zone_is_open(WEEKDAYS_9_TO_21, NY, opens)
    assert not zone_is_open(WEEKDAYS_9_TO_21, NY, opens - timedelta(seconds=1))
    closes = utc(2026, 6, 11, 1, 0)  # 21:00 EDT
    assert not zone_is_open(WEEKDAYS_9_TO_21, NY, closes)
    assert zone_is_open(WEEKDAYS_9_TO_21, NY, closes - timedelta(seconds=1))


def test_the_same_local_hour_moves_in_utc_across_dst() -> None:
    # New York springs forward on Sunday 2026-03-08; Monday the 9th is EDT (UTC-4), Friday
    # the 6th was EST (UTC-5). 13:30 UTC is 08:30 local before and 09:30 local after.
    assert not zone_is_open(WEEKDAYS_9_TO_21, NY, utc(2026, 3, 6, 13, 30))
    assert zone_is_open(WEEKDAYS_9_TO_21, NY, utc(2026, 3, 9, 13, 30))
    # And back on Sunday 2026-11-01: Monday the 2nd is EST again.
    assert zone_is_open(WEEKDAYS_9_TO_21, NY, utc(2026, 10, 30, 13, 30))
    assert not zone_is_open(WEEKDAYS_9_TO_21, NY, utc(2026, 11, 2, 13, 30))


def test_a_window_through_the_spring_forward_gap() -> None:
    # 02:30 does not exist in New York on 2026-03-08: a Sunday window from 02:30 opens at
    # the jump (03:00 EDT, 07:00 UTC); just before it is 01:59 EST.
    night = (CallingWindow(frozenset({6}), 2 * 60 + 30, 4 * 60),)
    assert not zone_is_open(night, NY, utc(2026, 3, 8, 6, 59))
    assert zone_is_open(night, NY, utc(2026, 3, 8, 7, 0))


def test_the_local_weekday_counts_not_utcs() -> None:
    # Saturday 2026-06-13 23:00 in Los Angeles is Sunday 06:00 UTC.
    saturday_evening = (CallingWindow(frozenset({5}), 20 * 60, 24 * 60),)
    assert zone_is_open(saturday_evening, LA, utc(2026, 6, 14, 6, 0))


def test_a_contact_with_several_zones_needs_all_of_them_open() -> None:
    at = utc(2026, 6, 10, 14, 0)
    assert is_callable(WEEKDAYS_9_TO_21, [NY], at)
    assert not is_callable(WEEKDAYS_9_TO_21, [NY, LA], at)
    assert is_callable(WEEKDAYS_9_TO_21, [NY, LA], at + timedelta(hours=2))
    assert not is_callable(WEEKDAYS_9_TO_21, [], at)
    assert open_zones(WEEKDAYS_9_TO_21, [NY, LA, NY], at) == {NY}


def test_windows_need_an_aware_instant() -> None:
    with pytest.raises(ValueError):
        zone_is_open(WEEKDAYS_9_TO_21, NY, datetime(2026, 6, 10, 14, 0))


@pytest.mark.parametrize("days, start, end", [
    (frozenset(), 60, 120), (frozenset({7}), 60, 120), (frozenset({1}), 120, 120),
    (frozenset({1}), -1, 60), (frozenset({1}), 60, 1441)])
def test_bad_windows_are_refused(days: frozenset[int], start: int, end: int) -> None:
    with pytest.raises(ValueError):
        CallingWindow(days, start, end)


# ---- retries ----------------------------------------------------------------------------


POLICY = RetryPolicy(max_attempts=5, rules={
    Outcome.BUSY: RetryRule(Outcome.BUSY, (60, 300, 900)),
    Outcome.NO_ANSWER: RetryRule(Outcome.NO_ANSWER, (3600,), max_retries=2),
    Outcome.CALLBACK: RetryRule(Outcome.CALLBACK, (1800,)),
})
AT = utc(2026, 6, 10, 14, 0)


def test_answered_is_done() -> None:
    decision = retries.decide(POLICY, retries.ContactHistory(), Outcome.ANSWERED, AT)
    assert decision.state is ContactState.DONE and decision.attempts == 1
    assert decision.outcome_counts == {"answered": 1}


def test_busy_backs_off_along_its_delays_and_repeats_the_last() -> None:
    history = retries.ContactHistory()
    waits = []
    for _ in range(4):
        decision = retries.decide(POLICY, history, Outcome.BUSY, AT)
        assert decision.state is ContactState.READY
        assert decision.next_attempt_at is not None
        waits.append((decision.next_attempt_at - AT).total_seconds())
        history = retries.ContactHistory(decision.attempts, decision.outcome_counts)
    assert waits == [60, 300, 900, 900]
    # The fifth attempt is the campaign's last.
    final = retries.decide(POLICY, history, Outcome.BUSY, AT)
    assert final.state is ContactState.EXHAUSTED and final.attempts == 5
    assert "max attempts" in final.reason


def test_an_outcomes_max_retries_ends_it_before_max_attempts() -> None:
    history = retries.ContactHistory(attempts=2, outcome_counts={"no_answer": 2})
    decision = retries.decide(POLICY, history, Outcome.NO_ANSWER, AT)
    assert decision.state is ContactState.EXHAUSTED and "no_answer" in decision.reason
    # Other outcomes do not use up no_answer's retries.
    history = retries.ContactHistory(attempts=2, outcome_counts={"busy": 2})
    assert retries.decide(POLICY, history, Outcome.NO_ANSWER, AT).state is ContactState.READY


def test_an_outcome_without_a_rule_is_not_retried() -> None:
    decision = retries.decide(POLICY, retries.ContactHistory(), Outcome.MACHINE, AT)
    assert decision.state is ContactState.EXHAUSTED and "no retry rule" in decision.reason


def test_a_callback_at_a_time_is_honoured_past_max_attempts() -> None:
    history = retries.ContactHistory(attempts=5, outcome_counts={"busy": 5})
    when = AT + timedelta(days=1)
    decision = retries.decide(POLICY, history, Outcome.CALLBACK, AT, callback_at=when, callback_agent_id="a1")
    assert decision.state is ContactState.READY
    assert decision.next_attempt_at == decision.callback_at == when
    assert decision.callback_agent_id == "a1" and decision.attempts == 6


def test_a_callback_without_a_time_follows_its_rule() -> None:
    decision = retries.decide(POLICY, retries.ContactHistory(), Outcome.CALLBACK, AT)
    assert decision.state is ContactState.READY and decision.callback_at is None
    assert decision.next_attempt_at == AT + timedelta(seconds=1800)


def test_cancelled_is_no_attempt() -> None:
    history = retries.ContactHistory(attempts=2, outcome_counts={"busy": 2})
    decision = retries.decide(POLICY, history, Outcome.CANCELLED, AT)
    assert decision.state is ContactState.READY and decision.next_attempt_at == AT
    assert decision.attempts == 2 and decision.outcome_counts == {"busy": 2}


@given(outcomes=st.lists(st.sampled_from([Outcome.BUSY, Outcome.NO_ANSWER, Outcome.MACHINE,
                                          Outcome.CALLBACK, Outcome.CANCELLED]), max_size=30))
def test_no_contact_is_dialed_more_than_max_attempts(outcomes: list[Outcome]) -> None:
    history = retries.ContactHistory()
    dialed = 0
    for outcome in outcomes:
        decision = retries.decide(POLICY, history, outcome, AT)
        dialed += outcome is not Outcome.CANCELLED
        assert decision.attempts == dialed <= POLICY.max_attempts
        if decision.state is not ContactState.READY:
            break
        assert decision.next_attempt_at is not None and decision.next_attempt_at >= AT
        history = retries.ContactHistory(decision.attempts, decision.outcome_counts)


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryRule(Outcome.ANSWERED, (60,))
    with pytest.raises(ValueError):
        RetryRule(Outcome.BUSY, ())
    with pytest.raises(ValueError):
        RetryRule(Outcome.BUSY, (-1,))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# ---- hopper ---------------------------------------------------------------------------


def contact(contact_id: int, *, due: datetime = AT - timedelta(minutes=5), zones: tuple[str, ...] = (NY,),
            state: ContactState = ContactState.READY, attempts: int = 0, callback: datetime | None = None,
            agent: str | None = None, number: str | None = None) -> ContactDue:
    return ContactDue(id=contact_id, number=number or f"+1212555{contact_id:04d}", timezones=zones,
                      state=state, next_attempt_at=callback or due, attempts=attempts, callback_at=callback,
                      callback_agent_id=agent)


def select(contacts: list[ContactDue], *, dnc: frozenset[str] = frozenset(), room: int = 10,
           at: datetime = AT) -> hopper.HopperSelection:
    return hopper.select(contacts, at=at, windows=WEEKDAYS_9_TO_21, dnc_numbers=dnc, max_attempts=3,
                         room=room)


def test_the_hopper_takes_due_contacts_in_window_in_due_order() -> None:
    contacts = [contact(1, due=AT - timedelta(minutes=1)), contact(2, due=AT - timedelta(minutes=9)),
                contact(3, due=AT + timedelta(minutes=1)),  # not due yet
                contact(4, zones=(LA,)),  # 07:00 in Los Angeles
                contact(5, state=ContactState.QUEUED), contact(6, state=ContactState.DONE)]
    selection = select(contacts)
    assert [p.contact_id for p in selection.picks] == [2, 1]
    assert selection.dnc == () and selection.exhausted == ()


def test_the_hopper_never_takes_a_dnc_number_and_reports_it() -> None:
    contacts = [contact(1), contact(2, number="+12125550999"), contact(3, due=AT + timedelta(hours=1),
                                                                       number="+12125550998")]
    selection = select(contacts, dnc=frozenset({"+12125550999", "+12125550998"}))
    assert [p.contact_id for p in selection.picks] == [1]
    assert selection.dnc == (2, 3)


def test_the_hopper_puts_callbacks_first_with_their_agent() -> None:
    contacts = [contact(1, due=AT - timedelta(days=3)),
                contact(2, callback=AT - timedelta(minutes=1), agent="a7"),
                contact(3, callback=AT - timedelta(minutes=2)),
                contact(4, callback=AT + timedelta(minutes=2))]  # later
    selection = select(contacts)
    assert [(p.contact_id, p.agent_id) for p in selection.picks] == [(3, None), (2, "a7"), (1, None)]
    scores = [p.score for p in selection.picks]
    assert scores == sorted(scores)


def test_the_hopper_respects_max_attempts_except_for_callbacks() -> None:
    selection = select([contact(1, attempts=3), contact(2, attempts=3, callback=AT - timedelta(minutes=1))])
    assert [p.contact_id for p in selection.picks] == [2]
    assert selection.exhausted == (1,)


def test_the_hopper_takes_no_more_than_its_room_in_order() -> None:
    contacts = [contact(i, due=AT - timedelta(seconds=i % 3)) for i in range(1, 11)]
    selection = select(contacts, room=4)
    assert [p.contact_id for p in selection.picks] == [2, 5, 8, 1]  # 2 s overdue first, then 1 s
    assert select(contacts, room=0).picks == ()


def test_a_callback_is_still_held_to_the_window() -> None:
    night = utc(2026, 6, 10, 3, 0)  # 23:00 in New York
    assert select([contact(1, callback=night - timedelta(minutes=1))], at=night).picks == ()


def test_why_not_dialable_rechecks_dnc_and_window() -> None:
    c = contact(1)
    assert hopper.why_not_dialable(c, AT, WEEKDAYS_9_TO_21, frozenset()) is None
    assert hopper.why_not_dialable(c, AT, WEEKDAYS_9_TO_21, frozenset({c.number})) is hopper.NotDialable.DNC
    assert (hopper.why_not_dialable(c, utc(2026, 6, 10, 3, 0), WEEKDAYS_9_TO_21, frozenset())
            is hopper.NotDialable.OUT_OF_WINDOW)


def test_stale_entries() -> None:
    queued = [(1, AT - timedelta(seconds=301)), (2, AT - timedelta(seconds=300)),
              (3, AT - timedelta(seconds=10))]
    assert hopper.stale(queued, AT, 300) == [1, 2]


# ---- caller ID --------------------------------------------------------------------------


POOL = caller_id.CallerIdPolicy(pool=(
    caller_id.PoolNumber("+14155550001", "1:415"), caller_id.PoolNumber("+14155550002", "1:415"),
    caller_id.PoolNumber("+12125550003", "1:212"), caller_id.PoolNumber("+442079460004", "44:20")))


def test_caller_id_fixed() -> None:
    assert caller_id.choose(caller_id.CallerIdPolicy(fixed="+15550001111"), "1:415", 3) == "+15550001111"
    assert caller_id.choose(caller_id.CallerIdPolicy(), "1:415", 3) is None


def test_local_presence_prefers_the_area_then_the_country() -> None:
    assert caller_id.choose(POOL, "1:212", 7) == "+12125550003"
    # Both 415 numbers are used, each contact always sees the same one.
    assert {caller_id.choose(POOL, "1:415", i) for i in range(4)} == {"+14155550001", "+14155550002"}
    assert caller_id.choose(POOL, "1:415", 5) == caller_id.choose(POOL, "1:415", 5)
    assert caller_id.choose(POOL, "1:907", 0) in {"+14155550001", "+14155550002", "+12125550003"}
    assert caller_id.choose(POOL, "44:161", 0) == "+442079460004"
    assert caller_id.choose(POOL, "33", 1) in {p.number for p in POOL.pool}


def test_without_local_presence_the_pool_rotates_by_contact() -> None:
    policy = caller_id.CallerIdPolicy(pool=POOL.pool, local_presence=False)
    assert [caller_id.choose(policy, "1:212", i) for i in range(4)] == [p.number for p in POOL.pool]


# ---- the campaign state table -------------------------------------------------------------


@pytest.mark.parametrize("state", list(CampaignState))
@pytest.mark.parametrize("action", list(CampaignAction))
def test_campaign_transitions_follow_the_table(state: CampaignState, action: CampaignAction) -> None:
    wanted = CAMPAIGN_TRANSITIONS.get((state, action))
    if wanted is None:
        with pytest.raises(IllegalTransition):
            apply_action("c", state, action)
    else:
        assert apply_action("c", state, action) is wanted


def test_the_table_says_what_the_docs_say() -> None:
    S, A = CampaignState, CampaignAction
    assert CAMPAIGN_TRANSITIONS == {
        (S.DRAFT, A.START): S.RUNNING, (S.DRAFT, A.STOP): S.STOPPED,
        (S.RUNNING, A.PAUSE): S.PAUSED, (S.RUNNING, A.STOP): S.STOPPED,
        (S.PAUSED, A.START): S.RUNNING, (S.PAUSED, A.STOP): S.STOPPED}
