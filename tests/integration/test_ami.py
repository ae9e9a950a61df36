"""AmiClient against the real Asterisk: login, actions, list actions, queue members, a
refused login, refused injections, and reconnect through a TCP proxy the test can cut.

Other developers use the same Asterisk at the same time: every name a test creates carries
a random token, and nothing here restarts Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from controller.adapters.asterisk.ami import AmiClient
from controller.domain.errors import CommandRejected, SwitchUnavailable, UnsafeValue
from tests.conftest import eventually

pytestmark = pytest.mark.asterisk

AMI_HOST = os.environ.get("CCC_AMI_HOST", "127.0.0.1")
AMI_PORT = int(os.environ.get("CCC_AMI_PORT", "5038"))
AMI_USER = os.environ.get("CCC_AMI_USER", "ccc")
AMI_SECRET = os.environ.get("CCC_AMI_SECRET", "ccc-local")


class LinkLog:
    """Records on_link_change calls."""

    def __init__(self) -> None:
        self.changes: list[tuple[bool, str]] = []

    def __call__(self, up: bool, reason: str) -> None:
        self.changes.append((up, reason))

    @property
    def ups(self) -> list[bool]:
        return [up for up, _ in self.changes]


def client(port: int = AMI_PORT, secret: str = AMI_SECRET, **options: object) -> AmiClient:
    options.setdefault("initial_delay", 0.1)
    options.setdefault("max_delay", 0.5)
    return AmiClient(AMI_HOST, port, AMI_USER, secret, **options)  # type: ignore[arg-type]


@pytest.fixture
async def ami() -> AsyncIterator[AmiClient]:
    ami = client()
    await ami.start()
    assert ami.connected, ami.last_error
    yield ami
    await ami.close()


class Proxy:
    """A TCP proxy in front of AMI. ``cut()`` closes every connection through it; while
    ``refusing`` it hangs up on new ones; while ``gagged`` it swallows what the client sends,
    which looks to the client like a link that died without a FIN."""

    def __init__(self) -> None:
        self.refusing = False
        self.gagged = False
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(AMI_HOST, AMI_PORT)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer, towards_asterisk=True),
                                 self._pipe(up_reader, writer, towards_asterisk=False))
        finally:
            self._writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    towards_asterisk: bool) -> None:
        try:
            while data := await reader.read(65536):
                if towards_asterisk and self.gagged:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[Proxy, int]]:
    proxy = Proxy()
    port = await proxy.start()
    yield proxy, port
    await proxy.close()


# ---- actions ----------------------------------------------------------------------------


async def test_logs_in_and_answers_ping(ami: AmiClient) -> None:
    await ami.check(2.0)
    response = await ami.send_action({"Action": "Ping"})
    assert response["Response"] == "Success"
    assert response["Ping"] == "Pong"


async def test_list_actions_return_their_events(ami: AmiClient) -> None:
    leaked: list[dict[str, str]] = []
    ami.on_event("*", leaked.append)
    async with asyncio.timeout(5):
        channels = await ami.send_list_action({"Action": "CoreShowChannels"})
        status = await ami.send_list_action({"Action": "Status"})
        response = await ami.send_action({"Action": "Status"})
    assert all(item["Event"] == "CoreShowChannel" for item in channels)
    assert all(item["Event"] == "Status" for item in status)
    assert response["Response"] == "Success"
    ids = {item["ActionID"] for item in channels + status}
    assert not [event for event in leaked if event.get("ActionID") in ids]


async def test_command_returns_cli_output(ami: AmiClient) -> None:
    output = await ami.command("core show version")
    assert output.startswith("Asterisk 22")
    with pytest.raises(CommandRejected, match="No such command"):
        await ami.command("no such command here")


async def test_a_refused_action_raises_with_asterisks_message(ami: AmiClient) -> None:
    with pytest.raises(CommandRejected, match="Invalid/unknown command"):
        await ami.send_action({"Action": "NoSuchAction"})
    assert ami.connected


async def test_queue_add_status_and_remove_complete(ami: AmiClient) -> None:
    assert "'rrmemory' strategy" in await ami.command("queue show sample"), (
        "queue 'sample' missing: install dialplan/queues.conf and reload app_queue")
    token = uuid.uuid4().hex[:12]
    interface = f"Local/ccc-test-{token}@ccc-test-caller/n"
    member = {"Queue": "sample", "Interface": interface}
    added: list[dict[str, str]] = []
    ami.on_event("QueueMemberAdded", added.append)
    try:
        async with asyncio.timeout(5):
            response = await ami.send_action(
                {"Action": "QueueAdd", **member, "MemberName": f"ccc-test-{token}"})
        assert response["Message"] == "Added interface to queue"

        async with asyncio.timeout(5):
            items = await ami.send_list_action({"Action": "QueueStatus", "Queue": "sample"})
        ours = [i for i in items if i["Event"] == "QueueMember" and i["Location"] == interface]
        assert len(ours) == 1
        assert ours[0]["Name"] == f"ccc-test-{token}"
        assert ours[0]["Membership"] == "dynamic"
        await eventually(lambda: any(e.get("Interface") == interface for e in added), 2,
                         what="the QueueMemberAdded event")

        async with asyncio.timeout(5):
            response = await ami.send_action({"Action": "QueueRemove", **member})
        assert response["Message"] == "Removed interface from queue"
        async with asyncio.timeout(5):
            items = await ami.send_list_action({"Action": "QueueStatus", "Queue": "sample"})
        assert not [i for i in items if i.get("Location") == interface]
        with pytest.raises(CommandRejected, match="Not there"):
            await ami.send_action({"Action": "QueueRemove", **member})
    finally:
        with contextlib.suppress(CommandRejected, SwitchUnavailable):
            await ami.send_action({"Action": "QueueRemove", **member})


# ---- safety -----------------------------------------------------------------------------


async def test_crlf_in_an_action_raises_and_nothing_reaches_asterisk(ami: AmiClient) -> None:
    token = uuid.uuid4().hex[:12]
    seen: list[dict[str, str]] = []
    ami.on_event("UserEvent", seen.append)
    injected = f"x\r\n\r\nAction: UserEvent\r\nUserEvent: ccc-injected-{token}"

    with pytest.raises(UnsafeValue):
        await ami.send_action({"Action": "UserEvent", "UserEvent": f"ccc-injected-{token}",
                               "Note": injected})
    with pytest.raises(UnsafeValue):
        await ami.send_action({"Action": "UserEvent", f"Note\r\nUserEvent: ccc-injected-{token}":
                               "x"})
    with pytest.raises(UnsafeValue):
        await ami.send_action({"Action": "UserEvent", "UserEvent": f"ccc-injected-{token}\0"})

    # One session, in order: had any of the above been sent, its event would come first.
    await ami.send_action({"Action": "UserEvent", "UserEvent": f"ccc-marker-{token}"})
    await eventually(lambda: any(e.get("UserEvent") == f"ccc-marker-{token}" for e in seen), 2,
                     what="the marker UserEvent")
    assert not [e for e in seen if token in e.get("UserEvent", "") and "injected" in
                e.get("UserEvent", "")]
    assert ami.connected


async def test_a_bad_secret_leaves_it_down_without_raising_or_logging_the_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"wrong-{uuid.uuid4().hex}"
    links = LinkLog()
    ami = client(secret=secret, on_link_change=links)
    try:
        await ami.start()
        assert not ami.connected
        assert "Authentication failed" in ami.last_error
        with pytest.raises(SwitchUnavailable, match="Authentication failed"):
            await ami.check(1.0)
        with pytest.raises(SwitchUnavailable):
            await ami.send_action({"Action": "Ping"})
        assert links.changes == []
        assert secret not in repr(ami)
    finally:
        await ami.close()
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in repr(vars(record))


# ---- link loss and reconnect ------------------------------------------------------------


async def test_reports_a_dropped_link_and_reconnects_by_itself(proxy: tuple[Proxy, int]) -> None:
    server, port = proxy
    links = LinkLog()
    ami = client(port, on_link_change=links)
    try:
        await ami.start()
        assert ami.connected
        await ami.check(2.0)

        server.refusing = True
        server.cut()
        await eventually(lambda: not ami.connected, 1.0, interval=0.02,
                         what="connected to turn false")
        await eventually(lambda: links.ups == [True, False], 1.0, interval=0.02,
                         what="the link-down callback")
        with pytest.raises(SwitchUnavailable):
            await ami.send_action({"Action": "Ping"})
        attempts = server.accepted
        await eventually(lambda: server.accepted >= attempts + 2, 3,
                         what="the client to keep trying while Asterisk is away")

        server.refusing = False
        await eventually(lambda: ami.connected, 5, what="the client to reconnect")
        await ami.check(2.0)
        assert links.ups == [True, False, True]
    finally:
        await ami.close()
    assert links.ups == [True, False, True, False]


async def test_an_action_in_flight_fails_at_once_when_the_link_drops(
        proxy: tuple[Proxy, int]) -> None:
    server, port = proxy
    ami = client(port, action_timeout=30.0)
    try:
        await ami.start()
        server.gagged = True
        pending = asyncio.create_task(ami.send_action({"Action": "Ping"}))
        await asyncio.sleep(0.2)
        assert not pending.done()
        server.cut()
        async with asyncio.timeout(1):
            with pytest.raises(SwitchUnavailable, match="link lost"):
                await pending
    finally:
        await ami.close()


async def test_a_silent_link_is_noticed_by_the_heartbeat(proxy: tuple[Proxy, int]) -> None:
    server, port = proxy
    ami = client(port, heartbeat_interval=0.3, action_timeout=0.5)
    try:
        await ami.start()
        assert ami.connected
        server.gagged = True
        await eventually(lambda: not ami.connected, 3, interval=0.02,
                         what="the heartbeat to take the link down")
        assert "heartbeat" in ami.last_error
        server.gagged = False
        await eventually(lambda: ami.connected, 5, what="the client to reconnect")
        await ami.check(2.0)
    finally:
        await ami.close()


async def test_started_while_asterisk_is_away_it_connects_when_it_comes(
        proxy: tuple[Proxy, int]) -> None:
    server, port = proxy
    server.refusing = True
    ami = client(port)
    try:
        async with asyncio.timeout(5):
            await ami.start()
        assert not ami.connected
        server.refusing = False
        await eventually(lambda: ami.connected, 5, what="the client to connect")
        await ami.check(2.0)
    finally:
        await ami.close()
