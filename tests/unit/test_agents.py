"""Agents, queues and queue entries: the agent state table and the queue limits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.domain.agents import (
    AGENT_TRANSITIONS,
    Agent,
    AgentState,
    QueueConfig,
    QueueEntry,
    QueueRule,
    Strategy,
    apply_agent,
    can_transition,
)
from controller.domain.calls import IllegalTransition

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
S = AgentState


def agent(state: AgentState = S.LOGGED_OUT) -> Agent:
    return Agent("a1", "Ann", "PJSIP/1001", {"sales": 5}, state=state)


def test_every_state_has_a_row() -> None:
    assert set(AGENT_TRANSITIONS) == set(AgentState)


def test_a_shift_walks_the_table() -> None:
    a = agent()
    path = [S.AVAILABLE, S.RESERVED, S.ON_CALL, S.WRAP_UP, S.AVAILABLE, S.PAUSED, S.AVAILABLE, S.LOGGED_OUT]
    for i, wanted in enumerate(path):
        apply_agent(a, wanted, T0 + timedelta(seconds=i), reason="lunch" if wanted is S.PAUSED else None)
        assert a.state is wanted
        assert a.state_since == T0 + timedelta(seconds=i)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (S.LOGGED_OUT, S.ON_CALL),
        (S.LOGGED_OUT, S.RESERVED),
        (S.PAUSED, S.ON_CALL),  # a paused agent on a call of its own stays paused
        (S.WRAP_UP, S.ON_CALL),
        (S.PAUSED, S.RESERVED),
        (S.WRAP_UP, S.RESERVED),
        (S.ON_CALL, S.RESERVED),
        (S.ON_CALL, S.LOGGED_OUT),
        (S.UNAVAILABLE, S.RESERVED),
        (S.RESERVED, S.RESERVED),
    ],
)
def test_illegal_moves_raise(current: AgentState, wanted: AgentState) -> None:
    a = agent(current)
    with pytest.raises(IllegalTransition) as info:
        apply_agent(a, wanted, T0, reason="x")
    assert info.value.current == current and info.value.wanted == wanted
    assert a.state is current


def test_pause_needs_a_reason_and_keeps_it_until_left() -> None:
    a = agent(S.AVAILABLE)
    with pytest.raises(ValueError):
        apply_agent(a, S.PAUSED, T0)
    apply_agent(a, S.PAUSED, T0, reason="break")
    assert a.paused_reason == "break"
    apply_agent(a, S.AVAILABLE, T0)
    assert a.paused_reason is None


def test_wrap_up_until_is_set_and_cleared() -> None:
    a = agent(S.ON_CALL)
    apply_agent(a, S.WRAP_UP, T0, until=T0 + timedelta(seconds=30))
    assert a.wrap_up_until == T0 + timedelta(seconds=30)
    apply_agent(a, S.AVAILABLE, T0)
    assert a.wrap_up_until is None


def test_one_structured_log_line_per_transition(caplog: pytest.LogCaptureFixture) -> None:
    a = agent()
    with caplog.at_level(logging.INFO, logger="controller.domain.agents"):
        apply_agent(a, S.AVAILABLE, T0)
    [record] = caplog.records
    assert record.agent_id == "a1"
    assert (record.__dict__["from"], record.__dict__["to"]) == (S.LOGGED_OUT, S.AVAILABLE)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list(AgentState)), max_size=30))
def test_apply_follows_the_table_exactly(wanted_states: list[AgentState]) -> None:
    a = agent()
    for wanted in wanted_states:
        before = a.state
        if can_transition(before, wanted):
            apply_agent(a, wanted, T0, reason="r")
            assert a.state is wanted
        else:
            with pytest.raises(IllegalTransition):
                apply_agent(a, wanted, T0, reason="r")
            assert a.state is before


def test_skill_levels_are_1_to_10() -> None:
    with pytest.raises(ValueError):
        Agent("a", "A", "PJSIP/1", {"sales": 11})
    with pytest.raises(ValueError):
        Agent("a", "A", "PJSIP/1", {"sales": 0})
    a = Agent("a", "A", "PJSIP/1", {"sales": 5, "fr": 2})
    assert a.has_skills({"sales": 5}) and a.has_skills({}) and not a.has_skills({"sales": 6})
    assert not a.has_skills({"de": 1})


def test_queue_validation() -> None:
    with pytest.raises(ValueError):
        QueueConfig("q", members=(("a1", 0), ("a1", 1)))
    with pytest.raises(ValueError):
        QueueConfig("q", members=(("a1", -1),))
    with pytest.raises(ValueError):
        QueueConfig("q", ring_timeout_s=0)
    q = QueueConfig("q", Strategy.LINEAR, members=[("a1", 0), ("a2", 2)])  # type: ignore[arg-type]
    assert q.members == (("a1", 0), ("a2", 2))
    assert q.penalty_of("a2") == 2 and q.penalty_of("zz") is None


def test_rules_relax_penalty_and_skill_with_wait() -> None:
    q = QueueConfig(
        "q",
        max_penalty=0,
        rules=(QueueRule(60, min_skill_level=3), QueueRule(30, max_penalty=1), QueueRule(90, max_penalty=5)),
    )
    need = {"sales": 8, "fr": 2}
    assert q.limits(0, need) == (0, need)
    assert q.limits(29.9, need) == (0, need)
    assert q.limits(30, need) == (1, need)
    assert q.limits(60, need) == (1, {"sales": 3, "fr": 2})
    assert q.limits(1000, need) == (5, {"sales": 3, "fr": 2})
    assert QueueConfig("open").limits(0, need) == (None, need)


def test_entries_rank_priority_then_fifo() -> None:
    entries = [
        QueueEntry("c1", "q", T0, priority=0, sequence=1),
        QueueEntry("c2", "q", T0 + timedelta(seconds=5), priority=5, sequence=2),
        QueueEntry("c3", "q", T0, priority=0, sequence=3),
        QueueEntry("c4", "q", T0 - timedelta(seconds=1), priority=0, sequence=4),
    ]
    assert [e.call_id for e in sorted(entries, key=QueueEntry.rank)] == ["c2", "c4", "c1", "c3"]
