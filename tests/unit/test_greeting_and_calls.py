"""The default flow engine and the call/leg state tables (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.calls import (
    Call,
    CallState,
    Direction,
    IllegalTransition,
    Leg,
    LegRole,
    LegState,
    apply_leg,
    settle_call,
)
from controller.engines import greeting

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_unanswered_leg_is_answered_then_greeted_then_hung_up():
    decision = greeting.start("leg", ("sound:hello-world",), "pb-1", answered=False)
    assert decision.commands == (c.Answer("leg"), c.Play("leg", "pb-1", ("sound:hello-world",)))
    other = greeting.on_event(decision.state, e.PlaybackFinished("pb-other", "leg", T0, True))
    assert other.commands == ()
    done = greeting.on_event(decision.state, e.PlaybackFinished("pb-1", "leg", T0, True))
    assert done.commands == (c.Hangup("leg"),)
    assert greeting.on_event(done.state, e.PlaybackFinished("pb-1", "leg", T0, True)).commands == ()


def test_answered_leg_is_not_answered_again_and_caller_hangup_ends_the_flow():
    decision = greeting.start("leg", ("sound:x",), "pb-1", answered=True)
    assert [type(cmd) for cmd in decision.commands] == [c.Play]
    after_hangup = greeting.on_event(decision.state, e.LegHungUp("leg", T0, 16, "Normal Clearing"))
    assert after_hangup.commands == ()
    assert greeting.on_event(after_hangup.state, e.PlaybackFinished("pb-1", "leg", T0, False)).commands == ()


def _call() -> Call:
    call = Call(id="call", direction=Direction.INBOUND, started_at=T0)
    call.legs["a"] = Leg(id="a", call_id="call", role=LegRole.CALLER, channel_name="x", created_at=T0)
    return call


def test_leg_transitions_follow_the_table():
    leg = _call().legs["a"]
    apply_leg(leg, LegState.UP, T0 + timedelta(seconds=1))
    with pytest.raises(IllegalTransition):
        apply_leg(leg, LegState.RINGING, T0)
    apply_leg(leg, LegState.ENDED, T0 + timedelta(seconds=5), 16, "Normal Clearing")
    with pytest.raises(IllegalTransition):
        apply_leg(leg, LegState.ENDED, T0)
    assert (leg.answered_at, leg.ended_at, leg.hangup_cause) == (
        T0 + timedelta(seconds=1), T0 + timedelta(seconds=5), 16)


def test_call_state_follows_its_legs():
    call = _call()
    call.legs["b"] = Leg(id="b", call_id="call", role=LegRole.AGENT, channel_name="y", created_at=T0)
    apply_leg(call.legs["a"], LegState.UP, T0 + timedelta(seconds=2))
    assert settle_call(call, T0 + timedelta(seconds=2))
    assert (call.state, call.answered_at) == (CallState.ANSWERED, T0 + timedelta(seconds=2))
    apply_leg(call.legs["a"], LegState.ENDED, T0 + timedelta(seconds=9), 16, "Normal Clearing")
    assert not settle_call(call, T0 + timedelta(seconds=9))
    apply_leg(call.legs["b"], LegState.ENDED, T0 + timedelta(seconds=10), 17, "User busy")
    assert settle_call(call, T0 + timedelta(seconds=10))
    assert (call.state, call.ended_at, call.hangup_cause) == (
        CallState.ENDED, T0 + timedelta(seconds=10), 16)
