"""The codec that carries ACD events and state between processes (through Redis, as JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.domain.agents import Agent, AgentState, QueueConfig, QueueEntry, QueueRule, Strategy
from controller.engines import acd
from controller.storage.codec import DecodeError, decode, encode

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def through_json(value: object) -> object:
    return json.loads(json.dumps(encode(value)))


def test_a_whole_acd_state_survives_the_trip() -> None:
    state = acd.AcdState(
        agents={"a1": Agent("a1", "Ann", "PJSIP/1001", {"fr": 7}, AgentState.RESERVED, T0,
                            last_call_ended_at=T0, calls_taken=3, talk_seconds=95, missed_in_a_row=1),
                "a2": Agent("a2", "Bob", "Local/1@x", state=AgentState.PAUSED, paused_reason="lunch")},
        queues={"q": QueueConfig("q", Strategy.SKILLS_BASED, (("a1", 0), ("a2", 2)), max_wait_s=60,
                                 rules=(QueueRule(30, max_penalty=2), QueueRule(60, min_skill_level=1)))},
        waiting={"c1": QueueEntry("c1", "q", T0, priority=5, skills={"fr": 5}, sequence=4),
                 "c2": QueueEntry("c2", "q", T0, sequence=6, target_agent="a2")},
        offers={"o1": acd.Offer("o1", "c1", "q", ("a1",), T0)},
        tried={"c1": frozenset({"a2"})},
        talking={"a9": (acd.BusyCall("c0", "q"), acd.BusyCall("d1"))},
        pending_wrap_up={"a9": "q"},
        last_offered={"q": "a1"},
        next_sequence=5,
    )
    assert decode(acd.AcdState, through_json(state)) == state


def test_events_of_every_kind_survive_the_trip() -> None:
    events = [acd.CallQueued(QueueEntry("c", "q", T0, 2, {"de": 3}, 1)), acd.CallAbandoned("c"),
              acd.AgentPaused("a", "break"), acd.OfferAnswered("o", None),
              acd.OfferFailed("o", acd.FailReason.BUSY, "a"), acd.CallEnded("c", "a", 40), acd.Tick(),
              acd.AgentDeviceState("a", False), acd.AgentCallStarted("a", "c", "q"),
              acd.MoveRequested("c", queue="q2", move_id="m1"), acd.MoveRequested("c", agent_id="a")]
    for event in events:
        assert decode(type(event), through_json(event)) == event


@pytest.mark.parametrize(("kind", "value"), [
    (int, "1"), (str, 3), (AgentState, "dancing"), (datetime, "yesterday"),
    (QueueEntry, {"call_id": "c", "queue": "q"}),  # entered_at is required
    (tuple[str, int], ["a"]), (bool, 1),
])
def test_a_value_that_does_not_fit_its_type_is_refused(kind: object, value: object) -> None:
    with pytest.raises((DecodeError, ValueError)):
        decode(kind, value)


@given(st.dictionaries(st.text(max_size=5), st.integers(1, 10), max_size=4),
       st.integers(-5, 5), st.integers(0, 10_000))
def test_queue_entries_round_trip(skills: dict[str, int], priority: int, sequence: int) -> None:
    entry = QueueEntry("call", "queue", T0, priority, skills, sequence)
    assert decode(QueueEntry, through_json(entry)) == entry


def test_every_acd_event_type_is_carried() -> None:
    """The log names events by class; a new event type must be one the service can read back."""
    from controller.services.acd import _EVENT_TYPES

    assert set(_EVENT_TYPES.values()) == set(acd.AcdEvent.__args__)  # type: ignore[attr-defined]
    assert "MoveRequested" in _EVENT_TYPES


def test_a_snapshot_written_before_targets_existed_still_reads() -> None:
    old = {"call_id": "c", "queue": "q", "entered_at": T0.isoformat(), "priority": 1, "skills": {},
           "sequence": 3, "callback": False, "announced_at": None}
    assert decode(QueueEntry, old) == QueueEntry("c", "q", T0, 1, {}, 3)
def test_a_snapshot_from_before_agents_had_several_calls_is_read() -> None:
    from controller.services.acd import Replica, _restore

    saved = through_json(Replica(state=acd.AcdState(agents={"a9": Agent("a9", "Ann", "PJSIP/1")})))
    saved["state"]["talking"] = {"a9": ["c0", "q"]}  # one (call, queue) pair per agent then
    assert _restore(saved).state.talking == {"a9": (acd.BusyCall("c0", "q"),)}
    saved["state"]["talking"] = {"a9": [{"call_id": "c0", "queue": "q"}, {"call_id": "d1", "queue": ""}]}
    assert _restore(saved).state.talking == {"a9": (acd.BusyCall("c0", "q"), acd.BusyCall("d1"))}
