"""An asyncio client for FreeSWITCH's Event Socket in inbound mode (we connect to port 8021).

Why not greenswitch: see docs/decisions/0003-esl-asyncio-client.md. In short, greenswitch
needs gevent and its monkey-patching, and the controller is one asyncio process.

Two layers. :class:`EslConnection` is one TCP session: it reads the greeting, authenticates,
matches replies to commands and resolves ``bgapi`` jobs; it never reconnects. :class:`EslClient`
owns the link: it connects, authenticates, subscribes to events, calls ``on_connected``
(the owner's reconciliation, e.g. ``show channels as json``) and then delivers events; when
the link drops it fails what was waiting and reconnects with exponential back-off.

Replies: FreeSWITCH answers every command with exactly one ``command/reply`` or
``api/response``, in the order the commands were written (events may come in between), so
a FIFO of waiters matches them. A waiter that gave up (timeout, cancel) keeps its place and
its late reply is dropped, so the replies after it still reach the right waiter.

Jobs: ``bgapi`` gets ``+OK Job-UUID: X`` at once and the result later in a BACKGROUND_JOB
event with ``Job-UUID: X``. The client sends its own Job-UUID, and registers the job before
the command is written, so a result can never arrive unclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.backoff import Backoff, stop_task
from controller.domain.errors import CommandRejected, SwitchError, SwitchUnavailable

from . import protocol as p

log = logging.getLogger(__name__)

EventHandler = Callable[[p.Event], None]
LinkHandler = Callable[[bool, str], None]
ConnectedHandler = Callable[[], Awaitable[None]]


class AuthenticationFailed(SwitchUnavailable):
    """FreeSWITCH refused the Event Socket password."""

    code = "switch-auth-failed"


@dataclass(slots=True)
class _Waiter:
    reply: asyncio.Future[p.Message]
    job: asyncio.Future[str] | None = None  # a bgapi's result, keyed by its Job-UUID
    job_uuid: str = ""


@dataclass(slots=True)
class Job:
    """A ``bgapi`` command under way: ``await job.result`` gives the BACKGROUND_JOB body."""

    uuid: str
    result: asyncio.Future[str] = field(repr=False)


class EslConnection:
    """One inbound Event Socket session (no reconnect; see :class:`EslClient`)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_event: EventHandler | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_event = on_event
        self._parser = p.Parser()
        self._waiters: deque[_Waiter] = deque()
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._greeting: asyncio.Future[p.Message] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read(), name="esl-reader")
        self.disconnect_notice: p.Message | None = None

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float = 5.0, on_event: EventHandler | None = None,
    ) -> EslConnection:
        """Connect and wait for FreeSWITCH's ``auth/request`` greeting."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise SwitchUnavailable(f"freeswitch ESL {host}:{port}: {type(exc).__name__}: {exc}") from exc
        connection = cls(reader, writer, on_event=on_event)
        try:
            async with asyncio.timeout(timeout):
                greeting = await connection._greeting
        except BaseException:
            await connection.abort()
            raise
        if greeting.content_type != p.AUTH_REQUEST:
            await connection.abort()
            raise SwitchUnavailable(f"freeswitch ESL: expected auth/request, got {greeting.content_type!r}")
        return connection

    @property
    def closed(self) -> bool:
        return self._closed.done()

    @property
    def close_reason(self) -> str:
        return self._closed.result() if self._closed.done() else ""

    async def wait_closed(self) -> str:
        """Wait until the session ends; returns why."""
        return await asyncio.shield(self._closed)

    # ---- commands ----------------------------------------------------------------------

    async def authenticate(self, password: str, timeout: float = 5.0) -> None:
        reply = await self.send(p.auth(password), timeout)
        if not reply.ok:
            raise AuthenticationFailed(f"freeswitch ESL refused the password ({reply.reply_text})")

    async def send(self, data: bytes, timeout: float | None = 10.0) -> p.Message:
        """Write one command (bytes from :mod:`protocol`) and wait for its reply."""
        waiter = self._enqueue(data)
        return await self._await_reply(waiter, timeout)

    async def command(self, data: bytes, timeout: float | None = 10.0) -> p.Message:
        """A command whose ``Reply-Text`` must be ``+OK…``."""
        reply = await self.send(data, timeout)
        if not reply.ok:
            raise CommandRejected(f"freeswitch ESL: {reply.reply_text or reply.text.strip()}")
        return reply

    async def api(self, line: str, timeout: float | None = 10.0) -> str:
        """``api <line>``; the body (FreeSWITCH reports most errors as ``-ERR …`` bodies)."""
        reply = await self.send(p.api_raw(line), timeout)
        if reply.content_type != p.API_RESPONSE:
            # e.g. "-ERR command not found" as a command/reply before auth.
            raise CommandRejected(f"freeswitch ESL api {line.split(' ', 1)[0]}: {reply.reply_text}")
        return reply.text

    def bgapi(self, line: str, job_uuid: str | None = None) -> tuple[asyncio.Future[p.Message], Job]:
        """Send ``bgapi <line>``; returns (the reply future, the job). ``job_uuid=""`` lets
        FreeSWITCH choose the id (learned from the reply)."""
        job_id = str(uuid.uuid4()) if job_uuid is None else job_uuid
        data = p.bgapi_raw(line, job_id)
        result: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if job_id:
            self._jobs[job_id] = result
        try:
            waiter = self._enqueue(data, job=result, job_uuid=job_id)
        except SwitchUnavailable:
            self._jobs.pop(job_id, None)
            raise
        return waiter.reply, Job(job_id, result)

    def _enqueue(self, data: bytes, *, job: asyncio.Future[str] | None = None, job_uuid: str = "") -> _Waiter:
        if self._closed.done():
            raise SwitchUnavailable(f"freeswitch ESL: connection lost ({self._closed.result()})")
        waiter = _Waiter(asyncio.get_running_loop().create_future(), job, job_uuid)
        # Append and write with no await in between: the FIFO order is the wire order.
        self._waiters.append(waiter)
        self._writer.write(data)
        return waiter

    async def _await_reply(self, waiter: _Waiter, timeout: float | None) -> p.Message:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
                return await asyncio.shield(waiter.reply)
        except TimeoutError as exc:
            raise SwitchUnavailable("freeswitch ESL: no reply in time") from exc
        except (ConnectionError, OSError) as exc:
            raise SwitchUnavailable(f"freeswitch ESL: {type(exc).__name__}: {exc}") from exc

    async def exit(self, timeout: float = 5.0) -> None:
        """``exit``: FreeSWITCH answers ``+OK bye``, sends the disconnect notice and closes."""
        if self._closed.done():
            return
        with contextlib.suppress(SwitchError):
            await self.send(p.command("exit"), timeout)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wait_closed()
        await self.abort()

    async def abort(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        await stop_task(self._task)
        self._finish("closed by the controller")

    # ---- reading -----------------------------------------------------------------------

    async def _read(self) -> None:
        reason = "closed by FreeSWITCH"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for message in self._parser.feed(data):
                    self._dispatch(message)
        except asyncio.CancelledError:
            reason = "closed by the controller"
            raise
        except p.ProtocolError as exc:
            log.error("freeswitch ESL sent bytes that are not ESL: %s", exc)
            reason = f"protocol error: {exc}"
        except (ConnectionError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._writer.close()  # after a protocol error too: nothing more can be trusted
            self._finish(reason)

    def _dispatch(self, message: p.Message) -> None:
        kind = message.content_type
        if kind in (p.COMMAND_REPLY, p.API_RESPONSE):
            self._reply(message)
        elif kind in p.EVENT_TYPES:
            self._event(message)
        elif kind == p.AUTH_REQUEST:
            if not self._greeting.done():
                self._greeting.set_result(message)
        elif kind == p.DISCONNECT_NOTICE:
            # "linger" only warns that a controlled session ended; "disconnect" (or none) is
            # the goodbye before FreeSWITCH closes the socket.
            if message.get("Content-Disposition") != "linger":
                self.disconnect_notice = message
                log.info("freeswitch ESL: disconnect notice: %s", message.text.strip()[:120])
        else:
            log.warning("freeswitch ESL: ignoring a %r message", kind)

    def _reply(self, message: p.Message) -> None:
        if not self._waiters:
            log.warning("freeswitch ESL: a reply nobody waits for: %.80r", message.reply_text or message.text)
            return
        waiter = self._waiters.popleft()
        if waiter.job is not None:
            job_id = waiter.job_uuid or message.get("Job-UUID") or ""
            if not message.ok or not job_id:
                self._jobs.pop(waiter.job_uuid, None)
                if not waiter.job.done():
                    waiter.job.set_exception(CommandRejected(f"freeswitch ESL bgapi: {message.reply_text}"))
                    waiter.job.exception()  # the reply's waiter reports it; do not warn twice
            elif not waiter.job_uuid:
                self._jobs[job_id] = waiter.job  # before any later event is read
        if not waiter.reply.done():
            waiter.reply.set_result(message)

    def _event(self, message: p.Message) -> None:
        try:
            event = p.parse_event(message)
        except p.ProtocolError as exc:
            log.error("freeswitch ESL: unreadable event: %s", exc)
            return
        if event.name == "BACKGROUND_JOB":
            job = self._jobs.pop(event.job_uuid, None)
            if job is not None and not job.done():
                job.set_result(event.body or "")
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("freeswitch ESL event handler failed on %s", event.name)

    def _finish(self, reason: str) -> None:
        if self._closed.done():
            return
        self._closed.set_result(reason)
        error = SwitchUnavailable(f"freeswitch ESL: connection lost ({reason})")
        for waiter in self._waiters:
            for future in (waiter.reply, waiter.job):
                if future is not None and not future.done():
                    future.set_exception(error)
                    future.exception()
        self._waiters.clear()
        for future in self._jobs.values():
            if not future.done():
                future.set_exception(error)
                future.exception()
        self._jobs.clear()
        if not self._greeting.done():
            self._greeting.set_exception(error)
            self._greeting.exception()


class EslClient:
    """The controller's link to one FreeSWITCH: connect, auth, subscribe, reconcile, events.

    ``on_event`` gets every event, in arrival order, synchronously (it must not block).
    ``on_connected`` runs after every (re)connect, once subscribed, and events that arrive
    meanwhile are held and delivered after it, so a reconciliation (``channels()``) sees a
    state that the held events then bring up to date.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        events: Sequence[str] = ("ALL",),
        event_format: str = "json",
        on_event: EventHandler,
        on_link_change: LinkHandler | None = None,
        on_connected: ConnectedHandler | None = None,
        initial_delay: float = 0.5,
        max_delay: float = 10.0,
        request_timeout: float = 10.0,
        job_timeout: float = 120.0,
    ) -> None:
        self.host, self.port = host, port
        self._password = password
        self._subscription = p.event_subscription(event_format, list(events)) if events else b""
        p.auth(password)  # refuse an unsafe password now rather than at every connect
        self._on_event = on_event
        self._on_link_change = on_link_change
        self._on_connected = on_connected
        self._backoff = Backoff(initial_delay, max_delay)
        self._request_timeout = request_timeout
        self._job_timeout = job_timeout
        self._connection: EslConnection | None = None
        self._held: list[p.Event] | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._closing = False
        self._last_error = "not started"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str:
        return self._last_error

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"esl-{self.host}:{self.port}")

    async def close(self) -> None:
        """Say ``exit`` if connected, then stop reconnecting."""
        task, self._task = self._task, None
        self._closing = True
        connection = self._connection
        if connection is not None:
            await connection.exit(self._request_timeout)
            if task is not None:
                # The session has ended; the run loop reports it and stops by itself.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._request_timeout):
                        await asyncio.shield(task)
        await stop_task(task)
        self._set_link(False, "closed")

    # ---- commands ----------------------------------------------------------------------

    def _current(self) -> EslConnection:
        connection = self._connection
        if connection is None:
            raise SwitchUnavailable(f"freeswitch ESL: not connected ({self._last_error})")
        if connection.closed:
            raise SwitchUnavailable(f"freeswitch ESL: connection lost ({connection.close_reason})")
        return connection

    async def api(self, line: str) -> str:
        """``api <line>``: the body. ``line`` must come from checked parts (protocol.api_line)."""
        return await self._current().api(line, self._request_timeout)

    async def bgapi(self, line: str, *, job_uuid: str | None = None) -> str:
        """``bgapi <line>``: waits for the BACKGROUND_JOB and returns its body (``+OK …`` or
        ``-ERR …``, for the caller to read)."""
        reply, job = self._current().bgapi(line, job_uuid)
        async with asyncio.timeout(self._request_timeout):
            message = await reply
        if not message.ok:
            raise CommandRejected(f"freeswitch ESL bgapi: {message.reply_text}")
        try:
            async with asyncio.timeout(self._job_timeout):
                return await job.result
        except TimeoutError as exc:
            raise SwitchUnavailable(f"freeswitch ESL: job {job.uuid} gave no result in time") from exc

    async def channels(self) -> list[dict[str, Any]]:
        """``show channels as json``: one dict per channel (empty when none)."""
        text = await self.api("show channels as json")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CommandRejected(f"freeswitch ESL: show channels: {text[:120]!r}") from exc
        rows = (data.get("rows") or []) if isinstance(data, dict) else []
        return [row for row in rows if isinstance(row, dict)]

    # ---- the link ----------------------------------------------------------------------

    def _set_link(self, up: bool, reason: str) -> None:
        if not up:
            self._last_error = reason
        if up == self._connected:
            return
        self._connected = up
        log.warning("ESL link %s: %s", "up" if up else "down", reason,
                    extra={"link": "esl", "up": up, "reason": reason})
        if self._on_link_change is not None:
            self._on_link_change(up, reason)

    def _deliver(self, event: p.Event) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("ESL event handler failed on %s", event.name)

    async def _session(self) -> str:
        """One connection, from connect to its end; returns why it ended."""
        self._held = []
        connection = await EslConnection.open(self.host, self.port, timeout=self._request_timeout,
                                              on_event=self._deliver)
        try:
            await connection.authenticate(self._password, self._request_timeout)
            if self._subscription:
                await connection.command(self._subscription, self._request_timeout)
            self._connection = connection
            self._set_link(True, "connected")
            self._backoff.reset()
            if self._on_connected is not None:
                await self._on_connected()
            held, self._held = self._held, None
            for event in held:
                self._deliver(event)
            return await connection.wait_closed()
        finally:
            self._held = None
            self._connection = None
            await connection.abort()

    async def _run(self) -> None:
        while True:
            try:
                reason = await self._session()
                self._set_link(False, reason)
            except asyncio.CancelledError:
                raise
            except AuthenticationFailed as exc:
                log.error("%s: check the ESL password", exc.detail)
                self._set_link(False, exc.detail)
            except SwitchError as exc:
                self._set_link(False, exc.detail)
            except Exception as exc:  # a bug in on_connected must not end the link for good
                log.exception("ESL session failed")
                self._set_link(False, f"{type(exc).__name__}: {exc}")
            if self._closing:
                return
            await self._backoff.wait()
