"""Supervisor monitoring sessions (listen, whisper, barge, takeover) on calls bridged with an agent.

The switch's events reach this service before the call service (see bootstrap): the legs a
session makes (the supervisor's, the snoops) are named ``mon-…`` and arrive with the Stasis
arguments ``("monitor", <id>)``, so they are taken here and never opened as new calls. The
end of a watched call leg (the caller's or the agent's) is shown to both services: the call
service ends the call, this one ends the session (snoop and supervisor hung up, bridge gone).

A take-over hands the supervisor's leg to the call (call control's ``take_over`` adds it to the
call, bridges it with the caller and lets the agent go): from then on that leg's events go to
the call service (a ``mon-`` leg the call service tracks is the call's), and this service only
keeps the session, in mode ``takeover``, until the leg ends. Deleting such a session hangs the
supervisor up, which ends the call as any party leaving does.

Sessions live in this process only; after a restart the switch may still hold ``mon-`` legs
and bridges, and :meth:`reconcile` hangs up those no session here and no call owns. Events and
API requests are handled one at a time under one lock: monitoring is rare and each step is a
few switch commands.

The public event feed is told ``monitor.started`` (the supervisor is dialed), ``monitor.changed``
(answered and arranged, or switched to another mode) and ``monitor.ended``, under the topic
``monitors``: they name no agent, so agent keys never see that they are listened to.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.calls import Call
from controller.domain.errors import ControllerError, LegGone, NotFound
from controller.domain.feed import FeedEvent, Publish, Topic
from controller.domain.monitors import ARGS_TAG, ID_PREFIX, Monitor, MonitorMode, MonitorState

log = logging.getLogger(__name__)


class Switch(Protocol):
    async def execute(self, command: c.Command) -> None: ...


class Calls(Protocol):
    def monitor_target(self, call_id: str) -> tuple[str, str, tuple[str, ...]]: ...

    def call_of_leg(self, leg_id: str) -> str | None: ...

    def find(self, call_id: str) -> Call | None: ...


class TakeOver(Protocol):
    """The call's side of a take-over (services/call_control.py)."""

    async def take_over(self, call_id: str, agent_leg_id: str, supervisor_leg_id: str, device: str,
                        monitor_id: str, first: Sequence[c.Command], bridge: bool) -> None: ...


def is_monitor_leg(leg_id: str) -> bool:
    return leg_id.startswith(ID_PREFIX)


class MonitorService:
    def __init__(self, switch: Switch, calls: Calls, control: TakeOver,
                 feed: Publish | None = None) -> None:
        self._switch = switch
        self._calls = calls
        self._control = control
        self._feed = feed
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
        if is_monitor_leg(leg_id) and self._calls.call_of_leg(leg_id) is not None:
            # A supervisor's leg a call took over: the call's; this service only hears its end.
            if isinstance(event, e.LegHungUp):
                self._enqueue(event)
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
                if monitor.takeover_due:
                    try:
                        await self._take_over(monitor)
                    except ControllerError as exc:
                        log.warning("monitor %s: take-over refused (%s); the supervisor is hung up",
                                    monitor.id, exc.detail)
                        await self._end(monitor)
                        return
                self._tell("monitor.changed", monitor)
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
        self._tell("monitor.started", monitor)
        return monitor

    async def switch_mode(self, monitor_id: str, mode: MonitorMode) -> Monitor:
        """Switch mode (Conflict away from takeover). To takeover with the supervisor up: the
        call's side is done first, and a refusal there (the agent has just left, say) leaves
        the session as it was."""
        async with self._lock:
            monitor = self.get(monitor_id)
            before = monitor.mode
            await self._run(*monitor.switch_mode(mode))
            if monitor.takeover_due:
                try:
                    await self._take_over(monitor)
                except ControllerError:
                    monitor.mode = before
                    raise
        if monitor.mode is not before:
            self._tell("monitor.changed", monitor)
        return monitor

    async def _take_over(self, monitor: Monitor) -> None:
        await self._control.take_over(monitor.call_id, monitor.agent_leg_id, monitor.supervisor_leg_id,
                                      monitor.device, monitor.id, first=monitor.leave_for_takeover(),
                                      bridge=not monitor.supervisor_in_call_bridge)
        await self._run(*monitor.taken_over())
        log.info("monitor %s: the supervisor took call %s over", monitor.id, monitor.call_id)

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
            await self._run(*(c.Hangup(leg) for leg in present if is_monitor_leg(leg) and leg not in owned
                              and self._calls.call_of_leg(leg) is None))  # a taken-over leg is a call's
            await self._run(*(c.DestroyBridge(b) for b in bridge_ids
                              if is_monitor_leg(b) and b not in owned_bridges))

    async def close(self) -> None:
        """End every session (a session does not outlive the process that holds it); a taken-over
        supervisor's leg is the call's, and stays with the call for the next run to adopt."""
        async with self._lock:
            for monitor in list(self._monitors.values()):
                if monitor.handed_over:
                    self._monitors.pop(monitor.id, None)
                else:
                    await self._end(monitor)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- carrying out -----------------------------------------------------------------------

    async def _end(self, monitor: Monitor) -> None:
        known = self._monitors.pop(monitor.id, None) is not None
        await self._run(*monitor.end())
        if known:
            self._tell("monitor.ended", monitor)

    def _tell(self, kind: str, monitor: Monitor) -> None:
        if self._feed is None:
            return
        call = self._calls.find(monitor.call_id)
        agent = call.data.get("agent_id") if call is not None else None
        queue = call.data.get("queue") if call is not None else None
        data = {"monitor_id": monitor.id, "call_id": monitor.call_id, "device": monitor.device,
                "mode": monitor.mode.value, "state": monitor.state.value, "agent_id": agent, "queue": queue}
        # No agent named: an agent key must not learn that it is being listened to.
        self._feed(FeedEvent(Topic.MONITORS, kind, data, call_id=monitor.call_id,
                             queues=(queue,) if queue else ()))

    async def _run(self, *commands: c.Command) -> None:
        for command in commands:
            try:
                await self._switch.execute(command)
            except LegGone:
                log.info("monitor: %s skipped, the leg is gone", type(command).__name__)
            except ControllerError as exc:
                log.warning("monitor: %s failed: %s", type(command).__name__, exc.detail)
