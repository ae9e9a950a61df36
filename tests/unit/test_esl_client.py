"""The asyncio ESL client against a fake FreeSWITCH that replays, byte for byte, recordings of
real FreeSWITCH 1.10.12 sessions (tests/unit/esl_server.py; shared/freeswitch/transcripts)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from controller.adapters.esl import protocol as p
from controller.adapters.esl.client import AuthenticationFailed, EslClient, EslConnection
from controller.domain.errors import CommandRejected, SwitchUnavailable, UnsafeValue
from tests.conftest import eventually

from .esl_server import Session, TranscriptServer
from .esl_transcripts import load, needs_transcripts, recv_frames


@asynccontextmanager
async def replay(name: str, *sessions: Session) -> AsyncIterator[tuple[TranscriptServer, int]]:
    server = TranscriptServer(load(name), list(sessions))
    port = await server.start()
    try:
        yield server, port
    finally:
        await server.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    await eventually(condition, timeout, interval=0.005)


def recorded_event_names(name: str, conn: str = "c1") -> list[str]:
    return [f["event_name"] for f in recv_frames(name, conn) if "event_name" in f]


class Recorder:
    def __init__(self) -> None:
        self.events: list[p.Event] = []
        self.links: list[tuple[bool, str]] = []

    def event(self, event: p.Event) -> None:
        self.events.append(event)

    def link(self, up: bool, reason: str) -> None:
        self.links.append((up, reason))

    def names(self) -> list[str]:
        return [e.full_name for e in self.events]


def client_for(port: int, recorder: Recorder, *, connected: Callable[[], Awaitable[None]] | None = None,
               **kwargs: Any) -> EslClient:
    return EslClient("127.0.0.1", port, kwargs.pop("password", "ClueCon"), on_event=recorder.event,
                     on_link_change=recorder.link, on_connected=connected, initial_delay=0.05,
                     max_delay=0.2, request_timeout=5.0, **kwargs)


@needs_transcripts
async def test_01_auth_status_reconcile_and_exit() -> None:
    """Replays a real FreeSWITCH 1.10.12 session: greeting, auth, ``api status``,
    ``show channels as json`` (the reconciliation hook) with no calls, ``exit``."""
    session = Session("c1")
    recorder = Recorder()
    seen: dict[str, Any] = {}

    async with replay("01-connect-auth-status-exit", session) as (server, port):

        async def reconcile() -> None:
            # Refused before a byte is written: the replay would see any stray command.
            with pytest.raises(UnsafeValue):
                await client.api("status\n\napi hupall")
            seen["status"] = await client.api("status")
            seen["channels"] = await client.channels()

        client = client_for(port, recorder, connected=reconcile, events=())
        await client.start()
        await until(lambda: "channels" in seen)
        assert client.connected
        await client.close()
        await until(lambda: session.done)
    assert server.errors == []
    assert seen["status"].startswith("UP 0 years") and "FreeSWITCH (Version 1.10.12" in seen["status"]
    assert seen["channels"] == []
    assert recorder.links == [(True, "connected"), (False, "closed by FreeSWITCH")]
    assert session.sent[-1] == b"exit\n\n"


@needs_transcripts
async def test_02_wrong_password_is_a_clear_error_and_the_connection_ends() -> None:
    """Replays a real FreeSWITCH 1.10.12 session: ``auth wrongpass`` → ``-ERR invalid``,
    the disconnect notice, and FreeSWITCH closing the socket."""
    session = Session("c1")
    async with replay("02-auth-failures", session) as (server, port):
        connection = await EslConnection.open("127.0.0.1", port)
        with pytest.raises(AuthenticationFailed, match="refused the password.*-ERR invalid"):
            await connection.authenticate("wrongpass")
        assert "closed by FreeSWITCH" in await asyncio.wait_for(connection.wait_closed(), 5)
        assert connection.disconnect_notice is not None
        with pytest.raises(SwitchUnavailable):
            await connection.api("status")
        await until(lambda: session.done)
    assert server.errors == []


@needs_transcripts
async def test_02_the_client_keeps_retrying_a_wrong_password_without_crashing() -> None:
    """Replays, for each attempt, a real FreeSWITCH 1.10.12 session refusing the password."""
    recorder = Recorder()
    sessions = [Session("c1") for _ in range(5)]
    async with replay("02-auth-failures", *sessions) as (server, port):
        client = client_for(port, recorder, password="wrongpass", events=())
        await client.start()
        await until(lambda: sessions[1].done)  # the second attempt ran to FreeSWITCH's close
        assert not client.connected
        assert "refused the password" in client.last_error
        with pytest.raises(SwitchUnavailable):
            await client.api("status")
        await client.close()
    assert recorder.links == []  # never up, so never a change to report
    assert [s.sent for s in sessions[:2]] == [[b"auth wrongpass\n\n"]] * 2


@needs_transcripts
async def test_02_commands_before_auth_are_refused_and_auth_still_works() -> None:
    """Replays two real FreeSWITCH 1.10.12 sessions: ``api status`` and ``event plain ALL``
    before ``auth`` get ``-ERR command not found``; a later ``auth`` is accepted."""
    c2, c3 = Session("c2"), Session("c3")
    async with replay("02-auth-failures", c2, c3) as (server, port):
        connection = await EslConnection.open("127.0.0.1", port)
        with pytest.raises(CommandRejected, match="command not found"):
            await connection.api("status")
        await connection.authenticate("ClueCon")
        assert (await connection.api("status")).startswith("UP ")
        await connection.exit()
        assert connection.closed

        other = await EslConnection.open("127.0.0.1", port)
        with pytest.raises(CommandRejected, match="command not found"):
            await other.command(p.event_subscription("plain", ["ALL"]))
        await other.abort()
        await until(lambda: c2.done and c3.done)
    assert server.errors == []


@pytest.mark.parametrize(("scenario", "fmt"), [("03-events-plain-originate-kill", "plain"),
                                               ("04-events-json-originate-kill", "json")])
@needs_transcripts
async def test_03_04_events_arrive_in_order_around_originate_and_kill(scenario: str, fmt: str) -> None:
    """Replays a real FreeSWITCH 1.10.12 session: ``event <fmt> ALL``, ``api originate
    loopback/9664 &park``, ``show channels as json`` with the call up, ``uuid_kill``, ``exit``."""
    session = Session("c1")
    recorder = Recorder()
    async with replay(scenario, session) as (server, port):
        client = client_for(port, recorder, events=("ALL",), event_format=fmt)
        await client.start()
        await until(lambda: client.connected)
        reply = await client.api("originate loopback/9664 &park")
        assert reply.startswith("+OK ") and reply.endswith("\n")
        a_leg = reply[4:].strip()
        uuid.UUID(a_leg)
        channels = await client.channels()
        assert [row["uuid"] for row in channels][0] == a_leg and len(channels) == 2
        assert await client.api(f"uuid_kill {a_leg}") == "+OK\n"
        await until(lambda: recorder.names().count("CHANNEL_DESTROY") == 2)
        await client.close()
        await until(lambda: session.done)
    assert server.errors == []
    assert recorder.names() == recorded_event_names(scenario)
    park = next(e for e in recorder.events if e.name == "CHANNEL_PARK")
    assert park.unique_id == a_leg
    hangups = [e for e in recorder.events if e.name == "CHANNEL_HANGUP_COMPLETE"]
    assert {e.get("Hangup-Cause") for e in hangups} == {"NORMAL_CLEARING"}


@needs_transcripts
async def test_05_bgapi_jobs_resolve_from_background_job_events() -> None:
    """Replays a real FreeSWITCH 1.10.12 session: ``bgapi`` with our Job-UUIDs (the server
    maps them onto the recorded ones), failing originates, a server-chosen Job-UUID, an
    unknown command, then ``uuid_kill`` and ``exit``."""
    doc = load("05-bgapi-jobs")
    meta = doc["meta"]
    session = Session("c1")
    recorder = Recorder()
    async with replay("05-bgapi-jobs", session) as (server, port):
        events = ("BACKGROUND_JOB", "CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE")
        client = client_for(port, recorder, events=events, event_format="plain")
        await client.start()
        await until(lambda: client.connected)
        assert await client.bgapi("originate loopback/9664 &park") == f"+OK {meta['call_uuid']}\n"
        assert await client.bgapi("originate user/9999 &park") == "-ERR SUBSCRIBER_ABSENT\n"
        assert await client.bgapi("originate user/1000 &park") == "-ERR USER_NOT_REGISTERED\n"
        status = await client.bgapi("status", job_uuid="")  # FreeSWITCH picks the Job-UUID
        assert status.startswith("UP ")
        assert await client.bgapi("no_such_command arg1") == "-ERR no_such_command Command not found!\n"
        assert await client.api(f"uuid_kill {meta['call_uuid']}") == "+OK\n"
        await until(lambda: recorder.names().count("CHANNEL_HANGUP_COMPLETE") == 2)
        await client.close()
        await until(lambda: session.done)
    assert server.errors == []
    ours = [line.split(b"Job-UUID: ")[1][:36].decode() for line in session.sent if b"Job-UUID: " in line]
    assert len(ours) == 4 and not set(ours) & set(meta.values())  # the client made its own ids
    jobs = [e.job_uuid for e in recorder.events if e.name == "BACKGROUND_JOB"]
    assert jobs[:3] == ours[:3] and jobs[3] == meta["job_status_server_generated"] and jobs[4] == ours[3]
    assert recorder.names() == recorded_event_names("05-bgapi-jobs")


@needs_transcripts
async def test_05_json_job_result_comes_from_body() -> None:
    """Replays a real FreeSWITCH 1.10.12 session: ``event json BACKGROUND_JOB``, two bgapi
    originates (the result is the JSON ``_body``)."""
    meta = load("05-bgapi-jobs")["meta"]
    session = Session("c2")
    recorder = Recorder()
    async with replay("05-bgapi-jobs", session) as (server, port):
        client = client_for(port, recorder, events=("BACKGROUND_JOB",), event_format="json")
        await client.start()
        await until(lambda: client.connected)
        assert await client.bgapi("originate loopback/9664 &park") == f"+OK {meta['c2_call_uuid']}\n"
        assert await client.bgapi("originate user/9999 &park") == "-ERR SUBSCRIBER_ABSENT\n"
        assert await client.api(f"uuid_kill {meta['c2_call_uuid']}") == "+OK\n"
        await client.close()
        await until(lambda: session.done)
    assert server.errors == []


@needs_transcripts
async def test_reconnect_with_back_off_and_reconcile_after_it() -> None:
    """Replays a real FreeSWITCH 1.10.12 session twice; the first copy stops right after
    ``+OK accepted`` (as if FreeSWITCH died), so the reconciliation fails and the client
    reconnects; on the second connection it runs again and succeeds."""
    first, second = Session("c1", stop_after=3), Session("c1")
    recorder = Recorder()
    attempts: list[str] = []
    async with replay("01-connect-auth-status-exit", first, second) as (server, port):

        async def reconcile() -> None:
            attempts.append("start")
            await client.api("status")
            await client.channels()
            attempts.append("done")

        client = client_for(port, recorder, connected=reconcile, events=())
        await client.start()
        await until(lambda: attempts[-1:] == ["done"])
        assert client.connected and server.connections == 2
        await client.close()
        await until(lambda: second.done)
    assert server.errors == []
    assert attempts == ["start", "start", "done"]
    assert [up for up, _ in recorder.links] == [True, False, True, False]
    assert recorder.links[1][1] == "freeswitch ESL: connection lost (closed by FreeSWITCH)"


@needs_transcripts
async def test_events_that_arrive_during_reconciliation_wait_for_it() -> None:
    """Replays a real FreeSWITCH 1.10.12 session (03): the reconciliation hook runs while
    events are already flowing; none reaches ``on_event`` before the hook has finished."""
    session = Session("c1")
    recorder = Recorder()
    order: list[str] = []
    async with replay("03-events-plain-originate-kill", session) as (server, port):

        async def reconcile() -> None:
            reply = await client.api("originate loopback/9664 &park")  # events follow the reply
            await asyncio.sleep(0.05)
            order.append(f"reconciled with {len(recorder.events)} events delivered")
            order.append(reply[4:].strip())

        client = client_for(port, recorder, connected=reconcile, events=("ALL",), event_format="plain")
        await client.start()
        await until(lambda: len(order) == 2)
        assert len(await client.channels()) == 2
        assert await client.api(f"uuid_kill {order[1]}") == "+OK\n"
        await until(lambda: recorder.names().count("CHANNEL_DESTROY") == 2)
        await client.close()
        await until(lambda: session.done)
    assert order[0] == "reconciled with 0 events delivered"
    assert recorder.names() == recorded_event_names("03-events-plain-originate-kill")
    assert server.errors == []


async def test_a_reply_that_comes_after_its_waiter_gave_up_does_not_shift_the_others() -> None:
    """A waiter that timed out keeps its place in the reply queue (no recording: a raw socket)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        await reader.readuntil(b"\n\n")  # api slow
        await reader.readuntil(b"\n\n")  # api fast
        await asyncio.sleep(0.2)
        for body in (b"slow\n", b"fast\n"):
            writer.write(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body))
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connection = await EslConnection.open("127.0.0.1", port)
        slow = asyncio.create_task(connection.api("slow", timeout=0.05))
        fast = asyncio.create_task(connection.api("fast", timeout=2))
        with pytest.raises(SwitchUnavailable, match="no reply in time"):
            await slow
        assert await fast == "fast\n"
        await connection.abort()
    finally:
        server.close()
        await server.wait_closed()


async def test_losing_the_connection_fails_waiting_commands_and_jobs() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        await reader.readuntil(b"\n\n")
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j-1\nJob-UUID: j-1\n\n")
        await writer.drain()
        await reader.readuntil(b"\n\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connection = await EslConnection.open("127.0.0.1", port)
        reply, job = connection.bgapi("status", "j-1")
        assert (await reply).reply_text == "+OK Job-UUID: j-1"
        pending = asyncio.create_task(connection.api("status"))
        with pytest.raises(SwitchUnavailable, match="connection lost"):
            await pending
        with pytest.raises(SwitchUnavailable, match="connection lost"):
            await job.result
        await connection.abort()
    finally:
        server.close()
        await server.wait_closed()


@needs_transcripts
async def test_11_twenty_pipelined_bgapi_originates_and_kills() -> None:
    """Replays a real FreeSWITCH 1.10.12 session: 20 ``bgapi originate`` written back to back
    (each with our origination uuid and Job-UUID), the 20 replies in order, the results in
    completion order among 120 events, then 20 pipelined ``bgapi uuid_kill``."""
    scenario = "11-burst-20-calls"
    doc = load(scenario)
    recorded_calls: list[str] = doc["meta"]["call_uuids"]
    recorded_kills = [f["data"].split()[2] for f in doc["frames"]
                      if f["dir"] == "send" and f["data"].startswith("bgapi uuid_kill")]
    session = Session("c1")
    events: list[p.Event] = []
    async with replay(scenario, session) as (server, port):
        connection = await EslConnection.open("127.0.0.1", port, on_event=events.append)
        await connection.authenticate("ClueCon")
        assert await connection.api("fsctl sps 100") == "+OK sessions per second: 100\n"
        await connection.command(p.event_subscription("plain", [
            "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
            "CHANNEL_DESTROY", "BACKGROUND_JOB"]))
        ours = [str(uuid.uuid4()) for _ in recorded_calls]
        started = [connection.bgapi(p.originate_line("loopback/9664", variables={"origination_uuid": u}))
                   for u in ours]
        replies = await asyncio.gather(*(reply for reply, _ in started))
        assert [r.reply_text for r in replies] == [f"+OK Job-UUID: {job.uuid}" for _, job in started]
        results = await asyncio.wait_for(asyncio.gather(*(job.result for _, job in started)), 5)
        assert results == [f"+OK {u}\n" for u in ours]  # each job got its own call's result

        ours_for = dict(zip(recorded_calls, ours, strict=True))
        kills = [connection.bgapi(f"uuid_kill {ours_for[recorded]}") for recorded in recorded_kills]
        assert await asyncio.wait_for(asyncio.gather(*(job.result for _, job in kills)), 5) == ["+OK\n"] * 20
        assert await connection.api("fsctl sps 30") == "+OK sessions per second: 30\n"
        await connection.exit()
        await until(lambda: session.done)
    assert server.errors == []
    completion = [e.job_uuid for e in events if e.name == "BACKGROUND_JOB"][:20]
    assert sorted(completion) == sorted(job.uuid for _, job in started)
    assert completion != [job.uuid for _, job in started]  # completion order is not submission order
    destroyed = {e.unique_id for e in events if e.name == "CHANNEL_DESTROY"}
    assert set(ours) <= destroyed and len(destroyed) == 40


@needs_transcripts
async def test_09_a_linger_notice_does_not_end_the_session_the_goodbye_does() -> None:
    """Replays a real FreeSWITCH 1.10.12 session: ``myevents <uuid>`` binds the connection to a
    call, ``linger 3``; at hangup FreeSWITCH sends a linger notice, the call's last events,
    then the goodbye notice, and closes."""
    scenario = "09-filter-nixevent-myevents-linger-divert"
    session = Session("c2")
    events: list[p.Event] = []
    notices: list[p.Message] = []
    async with replay(scenario, session) as (server, port):
        connection = await EslConnection.open("127.0.0.1", port, on_event=events.append)
        await connection.authenticate("ClueCon")
        call = str(uuid.uuid4())
        reply = await connection.api(p.originate_line("loopback/9664", variables={"origination_uuid": call}))
        assert reply == f"+OK {call}\n"
        await connection.command(p.command(f"myevents {p.safe_uuid(call)}"))
        with pytest.raises(CommandRejected, match="aready enabled"):
            await connection.command(p.command(f"myevents {call}"))
        for line, text in [("linger", "+OK will linger"), ("nolinger", "+OK will not linger"),
                           ("linger 3", "+OK will linger 3 seconds"),
                           ("divert_events on", "+OK events diverted")]:
            assert (await connection.command(p.command(line))).reply_text == text
        assert await connection.api(f"uuid_kill {call}") == "+OK\n"
        assert "closed by FreeSWITCH" in await asyncio.wait_for(connection.wait_closed(), 5)
        assert connection.disconnect_notice is not None  # the goodbye, not the linger notice
        notices.append(connection.disconnect_notice)
        await until(lambda: session.done)
    assert server.errors == []
    assert [e.name for e in events] == recorded_event_names(scenario, "c2")
    assert {e.unique_id for e in events} == {call}
    assert notices[0].get("Content-Disposition") == "disconnect"
    assert notices[0].get("Controlled-Session-UUID") == call


async def test_bytes_that_are_not_esl_end_the_session_and_fail_the_waiters() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        await reader.readuntil(b"\n\n")
        writer.write(b"HTTP/1.1 400 Bad Request\n\n")
        await writer.drain()
        await reader.read()  # until the client closes its side
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connection = await EslConnection.open("127.0.0.1", port)
        with pytest.raises(SwitchUnavailable, match="protocol error"):
            await connection.api("status")
        assert connection.close_reason.startswith("protocol error: not a header line")
        with pytest.raises(SwitchUnavailable, match="connection lost"):
            connection.bgapi("status")
        await connection.abort()
    finally:
        server.close()
        await server.wait_closed()
