"""Monitor sessions as pure data: the switch commands each mode and each switch of mode asks for."""

from __future__ import annotations

import pytest

from controller.adapters.asterisk.translate import request_for
from controller.domain import commands as c
from controller.domain.errors import Conflict, UnsafeValue
from controller.domain.monitors import Monitor, MonitorMode, MonitorState


def session(mode: MonitorMode = MonitorMode.LISTEN) -> Monitor:
    return Monitor(id="mon-1", call_id="call-1", device="PJSIP/2001", mode=mode, agent_leg_id="agent-1",
                   call_bridge_id="br-call-1", watched_leg_ids=frozenset({"caller-1", "agent-1"}))


def test_dialing_the_supervisor_tags_the_leg_for_the_monitor_service() -> None:
    dial = session().dial()
    assert dial.leg_id == "mon-1.supervisor" and dial.endpoint == "PJSIP/2001"
    assert dial.args == ("monitor", "mon-1")


def test_listen_snoops_both_ways_without_whisper_in_the_sessions_own_bridge() -> None:
    monitor = session()
    assert monitor.supervisor_up() == [
        c.CreateBridge("mon-1.bridge", name="monitor call-1"),
        c.AddToBridge("mon-1.bridge", ("mon-1.supervisor",)),
        c.Snoop("agent-1", "mon-1.snoop1", c.SnoopDirection.BOTH, c.SnoopDirection.NONE,
                args=("monitor", "mon-1", "spy=both", "whisper=none")),
    ]
    assert monitor.state is MonitorState.ACTIVE
    assert monitor.snoop_arrived("mon-1.snoop1") == [c.AddToBridge("mon-1.bridge", ("mon-1.snoop1",))]


def test_whisper_makes_a_new_snoop_that_speaks_toward_the_agent_and_drops_the_old() -> None:
    monitor = session()
    monitor.supervisor_up()
    commands = monitor.switch_mode(MonitorMode.WHISPER)
    assert commands == [
        c.Snoop("agent-1", "mon-1.snoop2", c.SnoopDirection.BOTH, c.SnoopDirection.OUT,
                args=("monitor", "mon-1", "spy=both", "whisper=out")),
        c.Hangup("mon-1.snoop1"),
    ]
    assert monitor.snoop_arrived("mon-1.snoop1") == [c.Hangup("mon-1.snoop1")]  # outdated


def test_barge_moves_the_supervisor_into_the_calls_bridge_and_back() -> None:
    monitor = session()
    monitor.supervisor_up()
    assert monitor.switch_mode(MonitorMode.BARGE) == [
        c.RemoveFromBridge("mon-1.bridge", ("mon-1.supervisor",)),
        c.AddToBridge("br-call-1", ("mon-1.supervisor",)),
        c.Hangup("mon-1.snoop1"),
    ]
    assert monitor.snoop_leg_id is None
    back = monitor.switch_mode(MonitorMode.LISTEN)
    assert back[:2] == [c.RemoveFromBridge("br-call-1", ("mon-1.supervisor",)),
                        c.AddToBridge("mon-1.bridge", ("mon-1.supervisor",))]
    assert isinstance(back[2], c.Snoop) and back[2].snoop_id == "mon-1.snoop2"


def test_a_mode_chosen_while_the_supervisor_rings_applies_on_answer() -> None:
    monitor = session()
    assert monitor.switch_mode(MonitorMode.BARGE) == []
    assert monitor.supervisor_up() == [c.AddToBridge("br-call-1", ("mon-1.supervisor",))]
    assert monitor.switch_mode(MonitorMode.BARGE) == []  # unchanged: nothing to do


def test_ending_hangs_up_its_legs_and_destroys_its_bridge_once() -> None:
    monitor = session()
    monitor.supervisor_up()
    assert monitor.end() == [c.Hangup("mon-1.supervisor"), c.Hangup("mon-1.snoop1"),
                             c.DestroyBridge("mon-1.bridge")]
    assert monitor.end() == [] and monitor.switch_mode(MonitorMode.WHISPER) == []


def test_taking_over_from_listen_leaves_the_monitor_bridge_then_cleans_up() -> None:
    monitor = session()
    monitor.supervisor_up()
    assert not monitor.takeover_due
    assert monitor.switch_mode(MonitorMode.TAKEOVER) == []  # the call's side comes first
    assert monitor.takeover_due and not monitor.supervisor_in_call_bridge
    assert monitor.leave_for_takeover() == [c.RemoveFromBridge("mon-1.bridge", ("mon-1.supervisor",))]
    assert monitor.snoop_leg_id == "mon-1.snoop1"  # unchanged until the call has the supervisor
    assert monitor.taken_over() == [c.Hangup("mon-1.snoop1"), c.DestroyBridge("mon-1.bridge")]
    assert monitor.handed_over and not monitor.takeover_due and monitor.mode is MonitorMode.TAKEOVER
    assert monitor.supervisor_in_call_bridge and monitor.watched_leg_ids == frozenset()
    assert monitor.snoop_arrived("mon-1.snoop1") == [c.Hangup("mon-1.snoop1")]
    # Deleting the session hangs the supervisor up (the call then ends as any call does).
    assert monitor.end() == [c.Hangup("mon-1.supervisor")]


def test_taking_over_from_barge_needs_no_move() -> None:
    monitor = session(MonitorMode.BARGE)
    monitor.supervisor_up()
    monitor.switch_mode(MonitorMode.TAKEOVER)
    assert monitor.supervisor_in_call_bridge and monitor.leave_for_takeover() == []
    assert monitor.taken_over() == []


def test_a_take_over_cannot_be_undone() -> None:
    monitor = session()
    monitor.supervisor_up()
    monitor.switch_mode(MonitorMode.TAKEOVER)
    monitor.taken_over()
    for mode in (MonitorMode.LISTEN, MonitorMode.WHISPER, MonitorMode.BARGE):
        with pytest.raises(Conflict):
            monitor.switch_mode(mode)
    assert monitor.switch_mode(MonitorMode.TAKEOVER) == []  # the same mode again: nothing to do
    assert monitor.mode is MonitorMode.TAKEOVER


def test_a_session_started_in_takeover_is_taken_over_on_answer_and_is_one_way_while_ringing() -> None:
    monitor = session(MonitorMode.TAKEOVER)
    with pytest.raises(Conflict):
        monitor.switch_mode(MonitorMode.LISTEN)  # asked for: no way back, even before the answer
    assert not monitor.takeover_due
    assert monitor.supervisor_up() == []  # no monitor bridge, no snoop
    assert monitor.takeover_due and not monitor.supervisor_in_call_bridge
    assert monitor.leave_for_takeover() == []
    assert monitor.taken_over() == [] and monitor.end() == [c.Hangup("mon-1.supervisor")]


def test_snoop_request_carries_directions_and_tag() -> None:
    request = request_for(c.Snoop("agent-1", "mon-1.snoop1", c.SnoopDirection.BOTH, c.SnoopDirection.OUT,
                                  args=("monitor", "mon-1")), "ccc")
    assert request.path == "/channels/agent-1/snoop/mon-1.snoop1"
    assert request.params == {"app": "ccc", "spy": "both", "whisper": "out", "appArgs": "monitor,mon-1"}
    with pytest.raises(UnsafeValue):
        request_for(c.Snoop("agent-1", "mon-1.snoop1", args=("a,b",)), "ccc")
    with pytest.raises(UnsafeValue):
        request_for(c.Snoop("agent-1\r\n", "mon-1.snoop1"), "ccc")
