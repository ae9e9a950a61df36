"""Supervisor monitoring sessions (listen, whisper, barge) on calls bridged with an agent.

The switch's events reach this service before the call service (see bootstrap): the legs a
session makes (the supervisor's, the snoops) are named ``mon-…`` and arrive with the Stasis
arguments ``("monitor", <id>)``, so they are taken here and never opened as new calls. The
end of a watched call leg (the caller's or the agent's) is shown to both services: the call
service ends the call, this one ends the session (snoop and supervisor hung up, bridge gone).

Sessions live in this process only; after a restart the switch may still hold ``mon-`` legs
and bridges, and :meth:`reconcile` hangs those up. Events and API requests are handled one at
a time under one lock: monitoring is rare and each step is a few switch commands.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.errors import ControllerError, LegGone, NotFound
from controller.domain.monitors import ARGS_TAG, ID_PREFIX, Monitor, MonitorMode, MonitorState

log = logging.getLogger(__name__)


class Switch(Protocol):
    async def execute(self, command: c.Command) -> None: ...


class Calls(Protocol):
    def monitor_target(self, call_id: str) -> tuple[str, str, tuple[str, ...]]: ...


def is_monitor_leg(leg_id: str) -> bool:
    return leg_id.startswith(ID_PREFIX)


class MonitorService:
    def __init__(self, switch: Switch, calls: Calls) -> None:
        self._switch = switch
        self._calls = calls
        self._monitors: dict[str, Monitor] = {}
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[e.Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    # ---- events in ----------------------------------------------------------------------

    def take(self, event: e.Event) -> bool:
        """Look at one switch event (never blocks). True if it belongs to a monitor session
        only, so it must not reach the call service."""
        leg_id = e.leg_of(event)
        if leg_id is None:
            return False
        if is_monitor_leg(leg_id) or (isinstance(event, e.LegArrived) and event.args[:1] == (ARGS_TAG,)):
            self._enqueue(event)
            return True
        watched = any(leg_id in m.watched_leg_ids for m in self._monitors.values())
        if isinstance(event, e.LegHungUp) and watched:
            self._enqueue(event)  # the call service needs it too
        return False

    def _enqueue(self, event: e.Event) -> None:
        self._queue.put_nowait(event)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._serve(), name="monitors")

    async def _serve(self) -> None:
        while not self._queue.empty():
            event = self._queue.get_nowait()
            try:
                async with self._lock:
                    await self._handle(event)
            except Exception:
                log.exception("monitors: failed to handle %r", event)

    async def _handle(self, event: e.Event) -> None:
        leg_id = e.leg_of(event) or ""
        if isinstance(event, e.LegHungUp) and not is_monitor_leg(leg_id):
            for monitor in [m for m in self._monitors.values() if leg_id in m.watched_leg_ids]:
                log.info("monitor %s ends: call leg %s hung up", monitor.id, leg_id)
                await self._end(monitor)
            return
        monitor = self._monitors.get(leg_id.split(".", 1)[0])
        if isinstance(event, e.LegArrived):
            if monitor is None:
                log.warning("leg %s belongs to no monitor session here; hanging it up", leg_id)
                await self._run(c.Hangup(leg_id))
            elif leg_id == monitor.supervisor_leg_id:
                await self._run(*monitor.supervisor_up())
            else:
                await self._run(*monitor.snoop_arrived(leg_id))
        elif isinstance(event, e.LegHungUp) and monitor is not None and leg_id in (
                monitor.supervisor_leg_id, monitor.snoop_leg_id):
            log.info("monitor %s ends: its leg %s hung up", monitor.id, leg_id)
            await self._end(monitor)

    # ---- requests from the API ----------------------------------------------------------------

    def get(self, monitor_id: str) -> Monitor:
        monitor = self._monitors.get(monitor_id)
        if monitor is None:
            raise NotFound(f"no monitor session {monitor_id} on this controller")
        return monitor

    async def start(self, call_id: str, device: str, mode: MonitorMode) -> Monitor:
        """Dial the supervisor's device; the session is arranged for ``mode`` once it answers."""
        agent_leg_id, call_bridge_id, call_legs = self._calls.monitor_target(call_id)
        monitor = Monitor(id=f"{ID_PREFIX}{uuid.uuid4().hex[:16]}", call_id=call_id, device=device,
                          mode=mode, agent_leg_id=agent_leg_id, call_bridge_id=call_bridge_id,
                          watched_leg_ids=frozenset(call_legs))
        async with self._lock:
            self._monitors[monitor.id] = monitor
            try:
                await self._switch.execute(monitor.dial())
            except ControllerError:
                monitor.state = MonitorState.ENDED
                self._monitors.pop(monitor.id, None)
                raise
        log.info("monitor %s: %s dialed to %s call %s", monitor.id, device, mode.value, call_id)
        return monitor

    async def switch_mode(self, monitor_id: str, mode: MonitorMode) -> Monitor:
        async with self._lock:
            monitor = self.get(monitor_id)
            await self._run(*monitor.switch_mode(mode))
        return monitor

    async def stop(self, monitor_id: str) -> Monitor:
        async with self._lock:
            monitor = self.get(monitor_id)
            await self._end(monitor)
        return monitor

    async def reconcile(self, legs_on_switch: tuple[e.LegArrived, ...], bridge_ids: tuple[str, ...]) -> None:
        """After a (re)connect: end sessions whose legs vanished, hang up monitor legs and
        destroy monitor bridges that no session here owns (left by a previous run)."""
        present = {leg.leg_id for leg in legs_on_switch}
        async with self._lock:
            for monitor in list(self._monitors.values()):
                if monitor.state is MonitorState.ACTIVE and monitor.supervisor_leg_id not in present:
                    await self._end(monitor)
            owned = {leg for m in self._monitors.values() for leg in (m.supervisor_leg_id, m.snoop_leg_id)}
            owned_bridges = {m.bridge_id for m in self._monitors.values()}
            await self._run(*(c.Hangup(leg) for leg in present if is_monitor_leg(leg) and leg not in owned))
            await self._run(*(c.DestroyBridge(b) for b in bridge_ids
                              if is_monitor_leg(b) and b not in owned_bridges))

    async def close(self) -> None:
        """End every session (a session does not outlive the process that holds it)."""
        async with self._lock:
            for monitor in list(self._monitors.values()):
                await self._end(monitor)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- carrying out -----------------------------------------------------------------------

    async def _end(self, monitor: Monitor) -> None:
        self._monitors.pop(monitor.id, None)
        await self._run(*monitor.end())

    async def _run(self, *commands: c.Command) -> None:
        for command in commands:
            try:
                await self._switch.execute(command)
            except LegGone:
                log.info("monitor: %s skipped, the leg is gone", type(command).__name__)
            except ControllerError as exc:
                log.warning("monitor: %s failed: %s", type(command).__name__, exc.detail)
