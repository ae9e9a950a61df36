"""The Asterisk switch: ARI for calls, AMI for what ARI lacks, behind one interface.

This object owns both connections. It turns ARI events into domain events for ``sink``,
carries out domain commands, and tells its owner when the links change. After every ARI
(re)connect it calls ``on_reconnected`` with what Asterisk has in the Stasis application,
so the owner can adopt or clean channels left there while the controller was away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.errors import CommandRejected, SwitchError
from controller.settings import Settings

from .ami import AmiClient
from .ari import AriClient, segment
from .translate import (
    cause_of_dial_status,
    device_state_from_ami,
    device_state_query,
    device_state_value,
    event_from_ari,
    leg_arrived,
    request_for,
    safe_id,
    state_device_of,
)

log = logging.getLogger(__name__)

EventSink = Callable[[e.Event], None]

# Q.850 texts for the causes a channel can end with before we hear its ChannelDestroyed.
_CAUSE_TEXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 18: "No user responding",
               19: "User alerting, no answer", 20: "Subscriber absent", 21: "Call Rejected",
               34: "Circuit/channel congestion"}


@dataclass(frozen=True, slots=True)
class SwitchSnapshot:
    """What the switch holds for our application right now."""

    legs: tuple[e.LegArrived, ...]
    bridge_ids: tuple[str, ...]


ReconnectedHandler = Callable[[SwitchSnapshot], Awaitable[None]]


class AsteriskSwitch:
    name = "asterisk"

    def __init__(self, settings: Settings, sink: EventSink,
                 on_reconnected: ReconnectedHandler | None = None) -> None:
        self._sink = sink
        self._tasks: set[asyncio.Task[None]] = set()
        self._hangup_cause: dict[str, int] = {}
        self._dial_status: dict[str, str] = {}  # leg id -> the Dial event's failure status
        self._on_reconnected = on_reconnected
        self.app = settings.ari_app
        self._local_formats = settings.local_channel_formats
        self.ari = AriClient(
            settings.ari_url,
            settings.ari_user,
            settings.ari_password.get_secret_value(),
            settings.ari_app,
            on_event=self._on_ari_event,
            on_link_change=lambda up, why: self._link_changed("ari", up, why),
            on_connected=self._ari_connected,
            initial_delay=settings.reconnect_initial_delay,
            max_delay=settings.reconnect_max_delay,
        )
        self.ami = AmiClient(
            settings.ami_host,
            settings.ami_port,
            settings.ami_user,
            settings.ami_secret.get_secret_value(),
            initial_delay=settings.reconnect_initial_delay,
            max_delay=settings.reconnect_max_delay,
            on_link_change=lambda up, why: self._link_changed("ami", up, why),
        )
        self.ami.on_event("DeviceStateChange", self._on_device_state)

    async def start(self) -> None:
        await self.ari.start()
        await self.ami.start()

    async def close(self) -> None:
        await self.ari.close()
        await self.ami.close()

    @property
    def links(self) -> dict[str, bool]:
        return {"ari": self.ari.connected, "ami": self.ami.connected}

    async def check(self, timeout: float) -> None:
        """Readiness of both links; raises SwitchUnavailable naming the one that is down."""
        await self.ari.check(timeout)
        await self.ami.check(timeout)

    async def execute(self, command: c.Command) -> None:
        request = request_for(command, self.app, self._local_formats)
        try:
            await self.ari.request(request.method, request.path, request.params, request.body)
        except CommandRejected:
            # Stopping a playback that has just finished is done already: the race between
            # a caller's key and the end of a prompt is normal, not a failure.
            if isinstance(command, c.StopPlayback) and not await self.playback_active(command.playback_id):
                return
            raise

    async def snapshot(self) -> SwitchSnapshot:
        application = await self.ari.request("GET", f"/applications/{self.app}")
        ours = set(application.get("channel_ids", []))
        now = datetime.now(UTC)
        legs = []
        for channel in await self.ari.request("GET", "/channels"):
            if channel.get("id") not in ours:
                continue
            dialplan = channel.get("dialplan") or {}
            if dialplan.get("app_name") not in (None, "", "Stasis"):
                # Watched by the application but running the dialplan: the far half of a Local
                # channel it dialed (an agent's ``Local/...`` device). No leg of any call; it
                # ends with its near half, which is the leg.
                continue
            args: list[str] = []
            if dialplan.get("app_name") == "Stasis":
                args = str(dialplan.get("app_data", "")).split(",")[1:]
            legs.append(leg_arrived(channel, args, now))
        bridges = await self.ari.request("GET", "/bridges")
        return SwitchSnapshot(
            legs=tuple(legs),
            bridge_ids=tuple(b["id"] for b in bridges if b["id"] in set(application.get("bridge_ids", []))),
        )

    @staticmethod
    def state_device_of(dial_string: str) -> str | None:
        """The device whose state tells whether ``dial_string`` can ring (None: it has none)."""
        return state_device_of(dial_string)

    async def device_state(self, device: str) -> e.DeviceState:
        """A device's state now (AMI Getvar DEVICE_STATE); SwitchUnavailable when AMI is down."""
        response = await self.ami.send_action(device_state_query(device))
        return device_state_value(response.get("Value", ""))

    async def device_states(self) -> list[e.DeviceStateChanged]:
        """Every device state Asterisk holds (AMI DeviceStateList), e.g. after a reconnect."""
        now = datetime.now(UTC)
        items = await self.ami.send_list_action({"Action": "DeviceStateList"})
        return [event for item in items if (event := device_state_from_ami(item, now)) is not None]

    async def playback_active(self, playback_id: str) -> bool:
        try:
            await self.ari.request("GET", "/playbacks/" + segment(safe_id(playback_id, "playback id")))
        except CommandRejected:
            return False
        return True

    async def recording_active(self, name: str) -> bool:
        """Whether the switch is recording ``name`` now (live, possibly paused)."""
        try:
            await self.ari.request("GET", "/recordings/live/" + segment(safe_id(name, "recording name")))
        except CommandRejected:
            return False
        return True

    def _on_ari_event(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "StasisStart":
            # ARI stops telling an app about a channel once it leaves Stasis, so the hang-up
            # (with its real cause) would be lost: subscribe the app to the channel itself.
            self._subscribe_later(message["channel"]["id"])
        elif kind == "ChannelHangupRequest" and "cause" in message:
            self._hangup_cause[message["channel"]["id"]] = int(message["cause"])
        elif kind == "Dial" and (message.get("peer") or {}).get("id") and cause_of_dial_status(
                message.get("dialstatus")) is not None:
            # A leg we originate that fails before answering (a Local channel into Busy() or
            # Congestion()) ends with cause 0; the Dial event said why.
            self._dial_status[message["peer"]["id"]] = str(message["dialstatus"])
        elif kind == "ChannelDestroyed":
            self._hangup_cause.pop(message["channel"]["id"], None)
            status = self._dial_status.pop(message["channel"]["id"], None)
            if not message.get("cause") and (cause := cause_of_dial_status(status)) is not None:
                message = {**message, "cause": cause, "cause_txt": _CAUSE_TEXT.get(cause, str(status))}
        event = event_from_ari(message)
        if event is not None:
            self._sink(event)

    def _on_device_state(self, message: dict[str, str]) -> None:
        event = device_state_from_ami(message)
        if event is not None:
            self._sink(event)

    def _subscribe_later(self, leg_id: str) -> None:
        task = asyncio.create_task(self._subscribe(leg_id), name=f"ari-subscribe-{leg_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, leg_id: str) -> None:
        try:
            await self.ari.request("POST", f"/applications/{self.app}/subscription",
                                   {"eventSource": f"channel:{leg_id}"})
        except CommandRejected:
            # Gone before we could subscribe: its ChannelDestroyed will never come.
            cause = self._hangup_cause.pop(leg_id, 0)
            self._sink(e.LegHungUp(leg_id, datetime.now(UTC), cause, _CAUSE_TEXT.get(cause, "")))
        except SwitchError as exc:
            log.warning("could not subscribe to leg %s: %s", leg_id, exc.detail)

    async def _ari_connected(self) -> None:
        snapshot = await self.snapshot()
        for leg in snapshot.legs:
            self._subscribe_later(leg.leg_id)
        if self._on_reconnected is not None:
            await self._on_reconnected(snapshot)

    def _link_changed(self, link: str, up: bool, reason: str) -> None:
        self._sink(e.SwitchLinkChanged(switch=self.name, link=link, up=up, at=datetime.now(UTC),
                                       reason=reason))
