"""A small asyncio client for the Asterisk Manager Interface (AMI), on panoramisk's wire code.

AMI is used for what ARI lacks (queue members, device state, CLI commands). From panoramisk
1.4 we take the wire protocol only: its parser (``AMIProtocol.data_received``), its messages
and its matching of responses to actions by ActionID. We do not use its ``Manager``, whose
life cycle does not fit a controller: it retries on a fixed whole-second delay (a 0.5 s
setting becomes 0), retries a refused login forever with no failure signal, never checks
that its keep-alive Ping is answered, and re-sends actions that were in flight when the
link dropped once the next session has booted, so an action can run twice. Here the
client owns connecting, login, back-off and reconnect:

* ``start()`` makes one attempt (TCP connect + Login) and returns; a supervisor task keeps
  the link up, retrying with exponential back-off capped at ``max_delay``, and sends a Ping
  every ``heartbeat_interval`` so a silent, half-dead link is noticed too.
* When the TCP connection closes, ``connected`` turns false at once, every action in
  flight fails with SwitchUnavailable (nothing is replayed), and ``on_link_change(False,
  reason)`` fires; after the next successful login ``on_link_change(True, ...)`` fires. Each
  change is one structured log line. The secret is never logged.
* Every action goes onto the wire through one method, ``_exchange``. It checks every key and
  value (:func:`check_action`: CR, LF or NUL would let a value smuggle in headers or whole
  actions) and always passes ``as_list=False`` to panoramisk. Without it panoramisk guesses
  from the response text whether more messages will follow, and for some actions it guesses
  wrong and the call never returns: QueueAdd answers "Added interface to queue", which it
  takes for the start of a list that never ends. With ``as_list=False`` the first response
  completes the action; for list actions (QueueStatus, CoreShowChannels, ...) we collect the
  events that carry our ActionID ourselves, up to the one marked ``EventList: Complete``.
* Unsolicited events go, in arrival order, to the synchronous handlers registered with
  ``on_event``; they must not block (queue the work). Messages are plain ``dict[str, str]``;
  a header Asterisk repeats (``Output``, ``ChanVariable``) is joined with "\\n", which is
  lossless because a header value never contains a newline.
"""

from __future__ import annotations

import asyncio
import codecs
import inspect
import itertools
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from controller.backoff import Backoff
from controller.domain.errors import CommandRejected, SwitchError, SwitchUnavailable, UnsafeValue

log = logging.getLogger(__name__)

AmiMessage = dict[str, str]
EventHandler = Callable[[AmiMessage], None]
LinkHandler = Callable[[bool, str], None]

_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_CHARS = re.compile(r"[\r\n\0]")
_SUCCESS = frozenset({"success", "follows", "goodbye"})
_BANNER = "Asterisk Call Manager/"


# ---- injection safety (pure) ------------------------------------------------------------


def check_action(action: Mapping[str, str]) -> dict[str, str]:
    """Return ``action``'s headers unchanged if all are safe to put on the AMI wire.

    AMI is line based: a CR or LF in a value would end the header and let the rest be read
    as further headers or a whole new action; a NUL cuts the string short inside Asterisk.
    Header names must be letters, digits, '_' or '-' (a ':' or a space would move the
    name/value split). Values must be strings that encode to UTF-8. Anything else raises
    :class:`UnsafeValue`, whose message names the header but never repeats the value (it may
    be a secret).
    """
    checked: dict[str, str] = {}
    for key, value in action.items():
        if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
            raise UnsafeValue(f"AMI header name {str(key)[:40]!r} is not letters, digits, _ or -")
        if not isinstance(value, str):
            raise UnsafeValue(f"AMI header {key} must be a string, not {type(value).__name__}")
        if _UNSAFE_CHARS.search(value):
            raise UnsafeValue(f"AMI header {key} contains CR, LF or NUL")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafeValue(f"AMI header {key} is not valid Unicode text") from None
        checked[key] = value
    return checked


def flatten(message: Message) -> AmiMessage:
    """A panoramisk message as a plain dict; repeated headers are joined with "\\n"."""
    flat: AmiMessage = {}
    for key, value in message.items():
        if key == "content":  # panoramisk's slot for a "Response: Follows" body
            continue
        flat[key] = "\n".join(value) if isinstance(value, list) else str(value)
    body = message.get("content")
    if body and "Output" not in flat:
        flat["Output"] = str(body)
    return flat


# ---- one connection ---------------------------------------------------------------------


class _Action(Action):
    """panoramisk's Action, with a repr that never shows the secret (panoramisk logs it)."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k.lower() == "secret" else v) for k, v in self.items()}
        return f"<AMI action {shown}>"


class _EventList:
    """The events a list action's ActionID brings, up to ``EventList: Complete``."""

    def __init__(self) -> None:
        self.items: list[AmiMessage] = []
        self.done: asyncio.Future[list[AmiMessage]] = asyncio.get_running_loop().create_future()


class _Connection(AMIProtocol):
    """One TCP session: panoramisk's parser and ActionID matching, our life cycle.

    panoramisk's ``close()`` would move unanswered actions to a list its Manager re-sends
    after the next login; here they fail with SwitchUnavailable instead, so an action is
    sent at most once.
    """

    def __init__(self, on_event: Callable[[AmiMessage], None]) -> None:
        super().__init__()
        self._on_event = on_event
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.lists: dict[str, _EventList] = {}

    @property
    def is_up(self) -> bool:
        return not self.lost.done() and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.factory = self  # panoramisk hands unsolicited events to factory.dispatch()
        self.encoding = "utf-8"
        self.log = logging.getLogger(f"{__name__}.wire")

    def data_received(self, data: bytes) -> None:
        # panoramisk decodes each chunk on its own and drops a character split across two
        # reads; decode incrementally and hand it whole characters only.
        text = self._decoder.decode(data)
        if self.version is None and text.startswith(_BANNER):
            # Read the banner here so panoramisk does not log a line of its own about it.
            self.version = text[len(_BANNER):].partition("\r\n")[0].strip()
        super().data_received(text.encode("utf-8"))

    def dispatch(self, message: Message) -> None:
        event = flatten(message)
        collecting = self.lists.get(event.get("ActionID", ""))
        if collecting is None:
            self._on_event(event)
        elif event.get("EventList", "").lower() == "complete":
            if not collecting.done.done():
                collecting.done.set_result(collecting.items)
        else:
            collecting.items.append(event)

    def connection_lost(self, exc: Exception | Message | None) -> None:
        # panoramisk also calls this, with the event, when Asterisk announces a Shutdown.
        if isinstance(exc, Message):
            self.drop("Asterisk is shutting down")
        elif exc is None:
            self.drop("connection closed by the server")
        else:
            self.drop(f"connection lost: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.drop("closed")

    def drop(self, reason: str) -> None:
        """Close the session now and fail everything still waiting on it."""
        if not self.lost.done():
            self.lost.set_result(reason)
        self.closed = True
        failure = f"AMI link lost before the answer came ({reason})"
        pending = {id(action): action for action in self.responses.values()}
        self.responses.clear()
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(SwitchUnavailable(failure))
        for collecting in self.lists.values():
            if not collecting.done.done():
                collecting.done.set_exception(SwitchUnavailable(failure))
        if not self.transport.is_closing():
            self.transport.close()


class _LoginRefused(Exception):
    pass


# ---- the client -------------------------------------------------------------------------


class AmiClient:
    """One AMI login, kept up in the background; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        initial_delay: float = 0.5,
        max_delay: float = 10.0,
        on_link_change: LinkHandler | None = None,
        action_timeout: float = 10.0,
        heartbeat_interval: float = 15.0,
    ) -> None:
        if not 0 < initial_delay <= max_delay:
            raise ValueError("need 0 < initial_delay <= max_delay")
        check_action({"Username": username, "Secret": secret})
        self._host = host
        self._port = port
        self._username = username
        self._secret = secret
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._on_link_change = on_link_change
        self._action_timeout = action_timeout
        self._heartbeat_interval = heartbeat_interval
        self._handlers: dict[str, list[EventHandler]] = {}
        prefix = f"ccc-{uuid.uuid4().hex[:12]}"
        self._ids = (f"{prefix}-{n}" for n in itertools.count(1))
        self._task: asyncio.Task[None] | None = None
        self._conn: _Connection | None = None
        self._up = False
        self._last_error = "not started"

    def __repr__(self) -> str:
        return f"<AmiClient {self._username}@{self._host}:{self._port} connected={self.connected}>"

    async def __aenter__(self) -> AmiClient:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ---- life cycle ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True only while a logged-in session is open; false from the moment it closes."""
        return self._conn is not None and self._conn.is_up

    @property
    def last_error(self) -> str:
        """Why the link is (or last was) down."""
        return self._last_error

    async def start(self) -> None:
        """Connect and log in once, then return; never raises because Asterisk is down.

        The link is then kept up in the background. Check ``connected`` for the outcome.
        """
        if self._task is not None:
            return
        first_attempt = asyncio.Event()
        self._task = asyncio.create_task(self._run(first_attempt),
                                         name=f"ami-link-{self._host}:{self._port}")
        await first_attempt.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    # ---- actions ------------------------------------------------------------------------

    async def send_action(self, action: Mapping[str, str]) -> AmiMessage:
        """Send one action and return Asterisk's response.

        Raises UnsafeValue (nothing sent) for a CR, LF or NUL in any key or value,
        SwitchUnavailable when not connected, after ``action_timeout`` or when the link
        drops first, and CommandRejected with Asterisk's Message on ``Response: Error``.
        For a list action this returns the first response only and the list's events go to
        the ``on_event`` handlers; use ``send_list_action`` to get them back instead.
        """
        response, _ = await self._exchange(self._conn, action, limit=self._action_timeout,
                                           collect=False)
        return response

    async def send_list_action(self, action: Mapping[str, str]) -> list[AmiMessage]:
        """Send a list action (QueueStatus, CoreShowChannels, Status, ...) and return its
        events, without the closing ``...Complete`` event. Errors as for ``send_action``."""
        _, items = await self._exchange(self._conn, action, limit=self._action_timeout,
                                        collect=True)
        return items

    async def command(self, cli: str) -> str:
        """Run a CLI command (the ``Command`` action) and return its output."""
        response = await self.send_action({"Action": "Command", "Command": cli})
        return response.get("Output", "")

    async def check(self, timeout: float) -> None:  # noqa: ASYNC109 (same contract as AriClient)
        """Readiness: logged in and Asterisk answers a Ping within ``timeout`` seconds."""
        try:
            await self._exchange(self._conn, {"Action": "Ping"}, limit=timeout, collect=False)
        except SwitchUnavailable:
            raise
        except SwitchError as exc:
            raise SwitchUnavailable(f"asterisk AMI: Ping failed: {exc.detail}") from exc

    def on_event(self, name: str, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler(event)`` for each event named ``name`` (any case), or every event
        for ``"*"``, in arrival order. Returns a function that unregisters it."""
        if inspect.iscoroutinefunction(handler):
            raise TypeError("AMI event handlers are synchronous; queue the work instead")
        handlers = self._handlers.setdefault(name.lower(), [])
        handlers.append(handler)

        def unregister() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unregister

    # ---- internals ----------------------------------------------------------------------

    async def _exchange(
        self, conn: _Connection | None, action: Mapping[str, str], *, limit: float, collect: bool,
    ) -> tuple[AmiMessage, list[AmiMessage]]:
        """The one place an action goes onto the wire (see the module docstring)."""
        headers = check_action(action)
        if any(key.lower() == "actionid" for key in headers):
            raise ValueError("ActionID is set by AmiClient")
        name = next((v for k, v in headers.items() if k.lower() == "action"), "?")
        if conn is None or not conn.is_up:
            raise SwitchUnavailable(f"asterisk AMI: not connected ({self._last_error})")
        action_id = next(self._ids)
        wire = _Action(headers, ActionID=action_id)
        listing = _EventList() if collect else None
        if listing is not None:
            conn.lists[action_id] = listing
        try:
            async with asyncio.timeout(limit):
                response = flatten(await conn.send(wire, as_list=False))
                if response.get("Response", "").lower() not in _SUCCESS:
                    raise CommandRejected(_rejection(name, response))
                items: list[AmiMessage] = []
                if listing is not None and response.get("EventList", "").lower() == "start":
                    items = await listing.done
                return response, items
        except TimeoutError:
            raise SwitchUnavailable(
                f"asterisk AMI: no answer to {name} within {limit:g} s") from None
        finally:
            conn.responses.pop(action_id, None)
            if listing is not None:
                conn.lists.pop(action_id, None)
                if listing.done.done() and not listing.done.cancelled():
                    listing.done.exception()  # retrieved: nobody else will look at it

    def _deliver(self, event: AmiMessage) -> None:
        name = event.get("Event", "")
        for handler in (*self._handlers.get(name.lower(), ()), *self._handlers.get("*", ())):
            try:
                handler(dict(event))
            except Exception:
                log.exception("AMI event handler %r failed on %s", handler, name)

    def _set_link(self, up: bool, reason: str, *, expected: bool = False) -> None:
        if not up:
            self._last_error = reason
        if up == self._up:
            return
        self._up = up
        log.log(logging.INFO if up or expected else logging.WARNING, "AMI link %s: %s",
                "up" if up else "down", reason,
                extra={"link": "ami", "up": up, "reason": reason,
                       "ami_host": self._host, "ami_port": self._port})
        if self._on_link_change is not None:
            try:
                self._on_link_change(up, reason)
            except Exception:
                log.exception("AMI on_link_change callback failed")

    async def _open(self) -> _Connection:
        """TCP connect and Login, within one action timeout."""
        loop = asyncio.get_running_loop()
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self._action_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._deliver), self._host, self._port)
                await self._exchange(conn, {
                    "Action": "Login", "Username": self._username, "Secret": self._secret,
                    "Events": "on",
                }, limit=self._action_timeout, collect=False)
            return conn
        except BaseException as exc:
            if conn is not None:
                conn.drop("connect or login failed")
            if isinstance(exc, CommandRejected):
                raise _LoginRefused(f"login refused: {exc.detail}") from None
            raise

    async def _watch(self, conn: _Connection) -> str:
        """Wait for the session to end, with a Ping every heartbeat_interval; say why it ended."""
        while True:
            done, _ = await asyncio.wait({conn.lost}, timeout=self._heartbeat_interval)
            if done:
                return conn.lost.result()
            try:
                await self._exchange(conn, {"Action": "Ping"}, limit=self._action_timeout,
                                     collect=False)
            except SwitchError:
                conn.drop(f"no answer to a heartbeat Ping within {self._action_timeout:g} s")

    async def _run(self, first_attempt: asyncio.Event) -> None:
        backoff = Backoff(self._initial_delay, self._max_delay)
        streak = 0  # failed attempts since the link was last up (or since start)
        try:
            while True:
                try:
                    conn = await self._open()
                except asyncio.CancelledError:
                    raise
                except (OSError, TimeoutError, SwitchError, _LoginRefused) as exc:
                    reason = str(exc) if isinstance(exc, _LoginRefused) else (
                        f"{type(exc).__name__}: {exc}")
                    self._set_link(False, reason)
                    # The first failure of a streak is worth a warning; the rest are in
                    # last_error and at debug level, so a long outage is not a log flood.
                    log.log(logging.DEBUG if streak else logging.WARNING,
                            "AMI connect to %s:%s failed: %s; retrying with back-off",
                            self._host, self._port, reason,
                            extra={"link": "ami", "reason": reason, "attempts": streak + 1})
                    streak += 1
                except Exception as exc:  # a bug here must not end the link for good
                    log.exception("AMI connect failed")
                    self._set_link(False, f"{type(exc).__name__}: {exc}")
                else:
                    self._conn = conn
                    self._set_link(True, f"logged in (AMI {conn.version or '?'})")
                    backoff.reset()
                    streak = 0
                    first_attempt.set()
                    reason = await self._watch(conn)
                    self._conn = None
                    self._set_link(False, reason)
                first_attempt.set()
                await backoff.wait()
        finally:
            first_attempt.set()
            if self._conn is not None:
                self._conn.drop("closed by the controller")
                self._conn = None
            self._set_link(False, "closed by the controller", expected=True)


def _rejection(action: str, response: AmiMessage) -> str:
    parts = [response.get("Message", ""), response.get("Output", "")]
    detail = ": ".join(p for p in parts if p) or "Response: " + response.get("Response", "?")
    return f"asterisk AMI {action}: {detail}"

