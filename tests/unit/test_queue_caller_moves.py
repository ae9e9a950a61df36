"""The waiting caller's side of a supervisor's move (services/queue_caller.py): the new queue's
music on hold, and call data that say where the caller waits, where it came from, when it first
joined a queue and which agent it waits for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.agents import QueueConfig
from controller.domain.calls import Call, Direction
from controller.services.drivers import Driver
from controller.services.queue_caller import Callback, QueueCaller

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CONFIGS = {"sales": QueueConfig("sales", moh_class="jazz"),
           "billing": QueueConfig("billing", moh_class="rock"),
           "rock2": QueueConfig("rock2", moh_class="rock")}


@dataclass
class Session:
    call: Call
    driver: Driver | None = None
    queued: str | None = None
    agent_id: str | None = None
    bridge_id: str | None = None


@dataclass
class Acd:
    events: list[object] = field(default_factory=list)

    def submit(self, event: object) -> None:
        self.events.append(event)


def waiting_caller() -> tuple[QueueCaller, Session]:
    caller = QueueCaller(Acd(), CONFIGS.get, lambda *rows: None)
    session = Session(Call("call-1", Direction.INBOUND, T0))
    assert caller.enter(session, c.EnterQueue("leg-1", "sales", priority=2), T0) == (
        c.StartMusicOnHold("leg-1", "jazz"),)
    return caller, session


def on(caller: QueueCaller, session: Session, event: object) -> tuple[c.Command, ...]:
    return asyncio.run(caller.on_event(session, event))


def test_a_caller_moved_to_another_queue_hears_its_music_and_its_data_say_so() -> None:
    caller, session = waiting_caller()
    event = caller.moved("call-1", "billing", "sales", "", T0)
    assert isinstance(event, e.QueueMoved) and event.leg_id == "leg-1"
    assert on(caller, session, event) == (c.StopMusicOnHold("leg-1"), c.StartMusicOnHold("leg-1", "rock"))
    data = session.call.data
    assert (data["queue"], data["queue_moved_from"], data["queue_first_entered_at"]) == (
        "billing", "sales", T0.isoformat())
    assert session.queued == "billing" and caller.waiting["call-1"].queue == "billing"

    # A second move keeps when the caller first joined; same music, nothing to change.
    later = T0 + timedelta(minutes=3)
    assert on(caller, session, caller.moved("call-1", "rock2", "billing", "", later)) == ()
    assert (data["queue"], data["queue_moved_from"], data["queue_first_entered_at"]) == (
        "rock2", "billing", T0.isoformat())


def test_a_caller_moved_to_an_agent_is_marked_until_the_target_is_dropped() -> None:
    caller, session = waiting_caller()
    assert on(caller, session, caller.moved("call-1", "sales", "sales", "ann", T0)) == ()
    assert session.call.data["queue_target_agent"] == "ann"
    assert "queue_moved_from" not in session.call.data  # it did not change queues
    on(caller, session, caller.moved("call-1", "sales", "sales", "", T0))
    assert "queue_target_agent" not in session.call.data


def test_a_move_during_an_announcement_changes_the_music_after_it() -> None:
    caller, session = waiting_caller()
    announced = on(caller, session, e.QueueAnnouncementDue("leg-1", T0, "sales", 1, None))
    playback = next(cmd for cmd in announced if isinstance(cmd, c.Play))
    assert on(caller, session, caller.moved("call-1", "billing", "sales", "", T0)) == ()
    assert on(caller, session, e.PlaybackFinished(playback.playback_id, "leg-1", T0, True)) == (
        c.StartMusicOnHold("leg-1", "rock"),)


def test_a_callback_moved_keeps_nobody_on_hold_and_a_stranger_is_ignored() -> None:
    caller = QueueCaller(Acd(), CONFIGS.get, lambda *rows: None)
    caller.callbacks["cb-1"] = Callback("cb-1", "cb-1.caller", "5550100", "sales")
    session = Session(Call("cb-1", Direction.OUTBOUND, T0))
    assert on(caller, session, caller.moved("cb-1", "billing", "sales", "", T0)) == ()
    assert caller.callbacks["cb-1"].queue == "billing" and session.call.data["queue"] == "billing"
    assert session.queued is None  # nobody on the line: nothing to abandon
    assert caller.moved("stranger", "billing", "sales", "", T0) is None


def test_joining_a_queue_is_written_as_a_call_event_for_the_reports() -> None:
    written: list[object] = []
    caller = QueueCaller(Acd(), CONFIGS.get, lambda *rows: written.extend(rows))
    session = Session(Call("call-1", Direction.INBOUND, T0))
    caller.enter(session, c.EnterQueue("leg-1", "sales", priority=2), T0)
    [row] = written
    assert (row.call_id, row.leg_id, row.at, row.kind, row.data) == (  # type: ignore[attr-defined]
        "call-1", "leg-1", T0, "QueueEntered", {"queue": "sales", "priority": 2})
