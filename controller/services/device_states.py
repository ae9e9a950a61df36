"""Agents' devices → the ACD: an agent whose phone cannot be reached is ``unavailable``.

The switch reports device states as domain events (``DeviceStateChanged``: a device name and
a backend-neutral state). This service knows which agents follow which device and tells the
ACD when a device's reachability changes (``AgentDeviceState``); the engine remembers it per
agent, so an agent who logs in, unpauses or ends wrap-up on a lost device is ``unavailable``.

Which device an agent follows: its ``state_device`` when set, otherwise its dial string when
the switch says that dial string has a state of its own (``PJSIP/1001`` has; ``Local/...`` and
numbers dialed through a trunk have not, and such agents are never made unavailable here).

States are read three ways: every change as it happens; the whole list after each (re)connect
of the link that carries them (``resync``), since changes made meanwhile were not heard; and
the agent's own device at login (``refresh``), so a login from an unregistered phone is
``unavailable`` at once rather than at the next change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from controller.backoff import stop_task
from controller.domain.agents import Agent
from controller.domain.errors import SwitchError
from controller.domain.events import DeviceState, DeviceStateChanged
from controller.engines import acd

log = logging.getLogger(__name__)

QUERY_TIMEOUT_S = 2.0


class DeviceStates(Protocol):
    """What this service needs from the switch."""

    def state_device_of(self, dial_string: str) -> str | None: ...

    async def device_state(self, device: str) -> DeviceState: ...

    async def device_states(self) -> list[DeviceStateChanged]: ...


class DeviceStateService:
    def __init__(self, switch: DeviceStates, submit: Callable[[acd.AcdEvent], None]) -> None:
        self._switch = switch
        self._submit = submit
        self.states: dict[str, DeviceState] = {}  # device -> last known state
        self._device_of: dict[str, str] = {}  # agent id -> the device it follows
        self._agents_of: dict[str, set[str]] = {}  # device -> agent ids
        self._resync: asyncio.Task[None] | None = None

    def configure(self, agents: Iterable[Agent]) -> None:
        """Take the configured agents, and tell the ACD what is known of their devices (its
        configuration was just reloaded too)."""
        self._device_of = {}
        self._agents_of = {}
        for agent in agents:
            device = agent.state_device or self._switch.state_device_of(agent.device)
            if device is None:
                continue
            self._device_of[agent.id] = device
            self._agents_of.setdefault(device, set()).add(agent.id)
        for agent_id, device in self._device_of.items():
            state = self.states.get(device)
            if state is not None:
                self._submit(acd.AgentDeviceState(agent_id, state.reachable))

    def device_of(self, agent_id: str) -> str | None:
        return self._device_of.get(agent_id)

    def state_of(self, agent_id: str) -> DeviceState | None:
        """The last known state of the agent's device; None when it has none or none is known."""
        device = self._device_of.get(agent_id)
        return self.states.get(device) if device is not None else None

    def on_event(self, event: DeviceStateChanged) -> None:
        """A device's state changed: tell the ACD about its agents when reachability changed
        (ringing, in use and not in use all mean reachable, and are not news)."""
        before = self.states.get(event.device)
        self.states[event.device] = event.state
        if before is not None and before.reachable == event.state.reachable:
            return
        for agent_id in sorted(self._agents_of.get(event.device, ())):
            log.info("agent %s: device %s is %s", agent_id, event.device, event.state.value,
                     extra={"agent_id": agent_id, "device": event.device, "device_state": event.state.value})
            self._submit(acd.AgentDeviceState(agent_id, event.state.reachable))

    async def refresh(self, agent_id: str) -> DeviceState | None:
        """Read the agent's device state now and tell the ACD (always, even if unchanged).
        When the switch cannot be asked, the last known state stands."""
        device = self._device_of.get(agent_id)
        if device is None:
            return None
        try:
            async with asyncio.timeout(QUERY_TIMEOUT_S):
                state = await self._switch.device_state(device)
        except (SwitchError, TimeoutError) as exc:
            log.warning("agent %s: state of device %s not read (%s); keeping %s", agent_id, device,
                        getattr(exc, "detail", None) or type(exc).__name__, self.states.get(device),
                        extra={"agent_id": agent_id, "device": device})
            return self.states.get(device)
        self.on_event(DeviceStateChanged(device, state, datetime.now(UTC)))
        self._submit(acd.AgentDeviceState(agent_id, state.reachable))
        return state

    def resync_later(self) -> None:
        """After the link that reports device states (re)connects: read them all again."""
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self.resync(), name="device-state-resync")

    async def resync(self) -> None:
        try:
            listed = await self._switch.device_states()
        except SwitchError as exc:
            log.warning("device states not listed: %s", exc.detail)
            return
        for event in listed:
            self.on_event(event)
        # A device the switch holds no cached state for (a Custom: state never set, a phone
        # nobody asked about yet) is not in the list: ask for each one.
        missing = {device for device in self._agents_of if device not in {e.device for e in listed}}
        for device in sorted(missing):
            try:
                async with asyncio.timeout(QUERY_TIMEOUT_S):
                    state = await self._switch.device_state(device)
            except (SwitchError, TimeoutError):
                log.warning("state of device %s not read after reconnect", device)
                continue
            self.on_event(DeviceStateChanged(device, state, datetime.now(UTC)))

    async def close(self) -> None:
        await stop_task(self._resync)
        self._resync = None
