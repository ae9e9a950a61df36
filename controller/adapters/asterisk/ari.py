"""A small asyncio client for the Asterisk REST Interface: httpx for REST, websockets for events.

Why our own client: see docs/decisions/0001-ari-client.md. In short, the maintained
alternatives either do not import on Python 3 or stall every call's events behind one slow
consumer. This client only moves bytes: it hands each event, in arrival order, to a
synchronous ``on_event`` callback that must not block (the service queues it per call), and
maps HTTP failures onto the switch errors of :mod:`controller.domain.errors`.

The events WebSocket is reconnected with exponential back-off. ``on_connected`` runs after
every (re)connect, before any further event is delivered, so the owner can reconcile its
state with ``GET /applications/{app}``, ``GET /channels`` and ``GET /bridges``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import websockets
from websockets.exceptions import InvalidStatus, WebSocketException

from controller.backoff import Backoff, stop_task
from controller.domain.errors import (
    CommandRejected,
    LegGone,
    SwitchError,
    SwitchUnavailable,
    Unsupported,
)

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
LinkHandler = Callable[[bool, str], None]
ConnectedHandler = Callable[[], Awaitable[None]]


class AriClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        on_event: EventHandler,
        on_link_change: LinkHandler | None = None,
        on_connected: ConnectedHandler | None = None,
        initial_delay: float = 0.5,
        max_delay: float = 10.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self._base = base_url.rstrip("/") + "/ari"
        self._auth = (user, password)
        self._on_event = on_event
        self._on_link_change = on_link_change
        self._on_connected = on_connected
        self._backoff = Backoff(initial_delay, max_delay)
        self._http = httpx.AsyncClient(
            base_url=self._base, auth=self._auth, timeout=request_timeout,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._last_error = "not started"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str:
        return self._last_error

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ari-events-{self.app}")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self._http.aclose()
        self._set_link(False, "closed")

    # ---- REST -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One REST call. ``path`` is below /ari and already quoted (see :func:`segment`)."""
        try:
            response = await self._http.request(method, path, params=params, json=body)
        except (httpx.TransportError, OSError) as exc:
            raise SwitchUnavailable(f"asterisk ARI: {type(exc).__name__}: {exc}") from exc
        if response.status_code < 300:
            if not response.content:
                return None
            return response.json()
        raise _error_for(method, path, response)

    async def check(self, timeout: float) -> None:
        """Readiness: the events socket is up and Asterisk answers a ping."""
        if not self._connected:
            raise SwitchUnavailable(f"asterisk ARI: events socket down ({self._last_error})")
        try:
            async with asyncio.timeout(timeout):
                await self.request("GET", "/asterisk/ping")
        except TimeoutError as exc:
            raise SwitchUnavailable("asterisk ARI: ping timed out") from exc

    # ---- events -----------------------------------------------------------------------

    def _events_url(self) -> str:
        parts = urlsplit(self._base)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = f"app={quote(self.app)}&subscribeAll=false"
        return urlunsplit((scheme, parts.netloc, parts.path + "/events", query, ""))

    def _set_link(self, up: bool, reason: str) -> None:
        if not up:
            self._last_error = reason
        if up == self._connected:
            return
        self._connected = up
        log.warning("ARI link %s: %s", "up" if up else "down", reason,
                    extra={"link": "ari", "up": up, "reason": reason})
        if self._on_link_change is not None:
            self._on_link_change(up, reason)

    async def _run(self) -> None:
        token = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
        while True:
            try:
                async with websockets.connect(
                    self._events_url(),
                    additional_headers={"Authorization": f"Basic {token}"},
                    open_timeout=5,
                    ping_interval=5,
                    ping_timeout=5,
                    max_size=16 * 1024 * 1024,
                    max_queue=None,
                ) as socket:
                    self._set_link(True, "events socket connected")
                    self._backoff.reset()
                    if self._on_connected is not None:
                        await self._on_connected()
                    async for raw in socket:
                        self._deliver(raw)
                self._set_link(False, "events socket closed by Asterisk")
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                self._set_link(False, f"events socket refused: HTTP {exc.response.status_code}")
            except (OSError, WebSocketException, TimeoutError, SwitchError) as exc:
                self._set_link(False, f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug in on_connected must not end the link for good
                log.exception("ARI event loop failed")
                self._set_link(False, f"{type(exc).__name__}: {exc}")
            await self._backoff.wait()

    def _deliver(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.error("ARI sent a frame that is not JSON: %.200r", raw)
            return
        if not isinstance(message, dict):
            return
        try:
            self._on_event(message)
        except Exception:
            log.exception("ARI event handler failed on %s", message.get("type"))


def segment(value: str) -> str:
    """Quote one path segment (an id) so it cannot climb or split the URL path."""
    return quote(value, safe="")


def _error_for(method: str, path: str, response: httpx.Response) -> SwitchError:
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text[:200]
    what = f"asterisk ARI {method} {path}: HTTP {response.status_code} {message}".strip()
    status = response.status_code
    if status == 404 and path.startswith("/channels/"):
        return LegGone(what)
    if status in (400, 404, 409, 412, 422):
        return CommandRejected(what)
    if status == 501:
        return Unsupported(what)
    if status in (502, 503, 504):
        return SwitchUnavailable(what)
    return SwitchError(what)
