"""One AMI session without a socket: bytes recorded from Asterisk 22 are fed to the
connection object, and what it writes is captured by a minimal transport."""

from __future__ import annotations

import asyncio

import pytest
from panoramisk.actions import Action

from controller.adapters.asterisk.ami import _Action, _Connection, _EventList, flatten
from controller.domain.errors import SwitchUnavailable

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def session() -> tuple[_Connection, Transport, list[dict[str, str]]]:
    events: list[dict[str, str]] = []
    conn = _Connection(events.append)
    transport = Transport()
    conn.connection_made(transport)
    conn.data_received(BANNER)
    return conn, transport, events


async def test_queue_add_completes_on_its_single_response() -> None:
    conn, transport, _ = session()
    future = conn.send(_Action({"Action": "QueueAdd", "Queue": "sample"}, ActionID="a1"),
                       as_list=False)
    assert b"Action: QueueAdd\r\n" in transport.written
    conn.data_received(b"Response: Success\r\nActionID: a1\r\nMessage: Added interface to queue"
                       b"\r\n\r\n")
    assert future.done() and future.result()["Message"] == "Added interface to queue"


async def test_panoramisk_left_to_guess_never_completes_queue_add() -> None:
    # Why AmiClient always passes as_list=False: Manager.send_action's default (None) lets
    # panoramisk guess from the text, and "Added ... to queue" reads as a list that never
    # ends. If this starts failing, panoramisk changed.
    conn, _, _ = session()
    future = conn.send(Action({"Action": "QueueAdd", "ActionID": "a1"}), as_list=None)
    conn.data_received(b"Response: Success\r\nActionID: a1\r\nMessage: Added interface to queue"
                       b"\r\n\r\n")
    assert not future.done()


async def test_list_events_are_collected_by_action_id_and_others_are_delivered() -> None:
    conn, _, events = session()
    listing = conn.lists["q1"] = _EventList()
    future = conn.send(_Action({"Action": "QueueStatus"}, ActionID="q1"), as_list=False)
    conn.data_received(
        b"Response: Success\r\nActionID: q1\r\nEventList: start\r\n"
        b"Message: Queue status will follow\r\n\r\n"
        b"Event: QueueMember\r\nQueue: sample\r\nName: Local/1@x\r\nPausedReason: \r\n"
        b"ActionID: q1\r\n\r\n"
        b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
        b"Event: QueueStatusComplete\r\nActionID: q1\r\nEventList: Complete\r\nListItems: 1"
        b"\r\n\r\n")
    assert future.result()["EventList"] == "start"
    assert listing.done.result() == [{"Event": "QueueMember", "Queue": "sample",
                                      "Name": "Local/1@x", "PausedReason": "",
                                      "ActionID": "q1"}]
    assert events == [{"Event": "FullyBooted", "Status": "Fully Booted"}]


async def test_a_character_split_across_reads_survives() -> None:
    conn, _, events = session()
    data = "Event: UserEvent\r\nUserEvent: Zoë\r\n\r\n".encode()
    cut = data.index("ë".encode()) + 1
    conn.data_received(data[:cut])
    conn.data_received(data[cut:])
    assert events == [{"Event": "UserEvent", "UserEvent": "Zoë"}]


async def test_repeated_headers_are_joined_with_newlines() -> None:
    conn, _, _ = session()
    future = conn.send(_Action({"Action": "Command", "Command": "x"}, ActionID="c1"),
                       as_list=False)
    conn.data_received(b"Response: Success\r\nActionID: c1\r\nMessage: Command output follows"
                       b"\r\nOutput: one\r\nOutput:    two\r\n\r\n")
    assert flatten(future.result())["Output"] == "one\n   two"


async def test_link_loss_fails_what_is_in_flight_and_replays_nothing() -> None:
    conn, transport, _ = session()
    future = conn.send(_Action({"Action": "Originate"}, ActionID="o1"), as_list=False)
    listing = conn.lists["l1"] = _EventList()
    conn.connection_lost(None)
    assert conn.lost.result() == "connection closed by the server"
    assert not conn.is_up and transport.closing
    with pytest.raises(SwitchUnavailable):
        future.result()
    with pytest.raises(SwitchUnavailable):
        listing.done.result()
    assert conn.responses == {}


async def test_a_shutdown_event_takes_the_link_down_at_once() -> None:
    conn, _, events = session()
    conn.data_received(b"Event: Shutdown\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n")
    assert conn.lost.result() == "Asterisk is shutting down"
    assert events[0]["Event"] == "Shutdown"


async def test_the_login_action_never_shows_its_secret() -> None:
    # panoramisk logs an action with %r when a write fails.
    assert "s3cret" not in repr(_Action({"Action": "Login", "Username": "ccc", "Secret": "s3cret"}))
