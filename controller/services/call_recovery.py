"""Calls after a (re)connect to the switch: reconciliation and adoption.

After every (re)connect, :meth:`CallRecovery.reconcile` compares what the switch holds for our
application with what the call service (services/calls.py) tracks: legs that vanished are
ended in the records, legs nobody tracks (left in the application while the controller was
away, or tracked by a previous run in Redis) are adopted, their flow resumed where the
previous run left it (call_snapshot.py), and calls a previous run left whose legs are all gone
are ended in the records.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.domain import events as e
from controller.domain.calls import Call, LegState, apply_leg, settle_call
from controller.domain.errors import ControllerError, StorageUnavailable, SwitchError
from controller.services.call_snapshot import Connection, restore
from controller.services.calls import CallService, CallSession, Inbound
from controller.services.drivers import Driver, GreetingDriver
from controller.storage.live import LiveStore
from controller.storage.records import CallEventRow, CallRow, LegRow

log = logging.getLogger(__name__)

LOST_CAUSE = 0
LOST_CAUSE_TEXT = "ended while the controller was disconnected"


class Playbacks(Protocol):
    name: str

    async def playback_active(self, playback_id: str) -> bool: ...


class CallRecovery:
    def __init__(self, calls: CallService, switch: Playbacks, live: LiveStore,
                 inbound: Inbound | None = None) -> None:
        self._calls = calls
        self._switch = switch
        self._live = live
        self._inbound = inbound

    async def reconcile(self, legs_on_switch: tuple[e.LegArrived, ...]) -> None:
        """Bring tracked calls in line with the legs the switch holds for our application."""
        calls = self._calls
        now = datetime.now(UTC)
        present = {leg.leg_id: leg for leg in legs_on_switch}
        ended = adopted = 0

        # Legs we track that the switch no longer has ended while we could not hear it.
        for session in calls.sessions():
            for leg in session.call.live_legs():
                if leg.id not in present:
                    session.queue.put_nowait(e.LegHungUp(leg.id, now, LOST_CAUSE, LOST_CAUSE_TEXT))
                    ended += 1

        # Legs the switch has that nobody here tracks: a previous run may have (Redis).
        untracked = [leg for leg_id, leg in present.items() if calls.call_of_leg(leg_id) is None]
        remembered: dict[str, dict[str, Any]] = {}
        try:
            remembered = await self._live.live_calls()
        except StorageUnavailable as exc:
            log.warning("reconcile without Redis, previous calls cannot be adopted: %s", exc)
        leg_to_saved = {leg_id: saved for saved in remembered.values() for leg_id in saved["legs"]}
        for arrived in untracked:
            saved = leg_to_saved.get(arrived.leg_id)
            if saved is not None and calls.find(saved["id"]) is None:
                connection = Connection.from_dict(saved.get("connection"))
                await self._adopt(restore(saved), saved.get("driver"), connection, arrived, present, now)
            elif saved is None:
                calls.submit(arrived)
            adopted += 1

        # Calls a previous run left unfinished whose legs are all gone: end them in the records.
        for saved in remembered.values():
            if calls.find(saved["id"]) is not None:
                continue
            call = restore(saved)
            for leg in call.live_legs():
                apply_leg(leg, LegState.ENDED, now, LOST_CAUSE, LOST_CAUSE_TEXT)
            settle_call(call, now)
            calls.record(CallRow.of(call, self._switch.name),
                         *(LegRow.of(x) for x in call.legs.values()),
                         CallEventRow(call.id, None, now, "CallLost", {"reason": LOST_CAUSE_TEXT}))
            calls.tell_lost(call)
            self._live.drop_call(call.id)
            ended += 1
        log.warning("reconciled with %s: %d legs present, %d adopted, %d ended",
                    self._switch.name, len(present), adopted, ended)

    async def _adopt(self, call: Call, saved_driver: dict[str, Any] | None, connection: Connection,
                     arrived: e.LegArrived, present: dict[str, e.LegArrived], now: datetime) -> None:
        driver: Driver | None = None
        if saved_driver is not None:
            try:
                driver = await self._resume(saved_driver)
            except (ControllerError, KeyError, ValueError) as exc:
                log.error("call %s: its flow cannot be resumed (%s); starting it again", call.id, exc)
        session = CallSession(call, driver)
        session.reconnect(connection)
        self._calls.track(session)
        # The agents still on it are busy, before any end of a leg that vanished is handled.
        self._calls.agents_adopted(session, {leg.id for leg in call.live_legs() if leg.id in present})
        for leg in call.live_legs():
            if leg.id not in present:
                session.queue.put_nowait(e.LegHungUp(leg.id, now, LOST_CAUSE, LOST_CAUSE_TEXT))
        connected = connection.bridge_id or connection.agent_id or connection.busy_agents
        if driver is None and not connected:
            session.queue.put_nowait(arrived)  # no flow had started: start it now
        elif driver is not None:
            for playback_id, leg_id in driver.playbacks():
                if not await self._playback_active(playback_id):
                    # It finished while nobody listened; the flow goes on from there.
                    session.queue.put_nowait(e.PlaybackFinished(playback_id, leg_id, now, False))
            for timer_id, leg_id, seconds in driver.timers():
                # Timers died with the previous run: arm them again, in full.
                self._calls.arm_timer(session, timer_id, leg_id, seconds)
        log.warning("call %s adopted from a previous run", call.id, extra={"call_id": call.id})

    async def _resume(self, saved: dict[str, Any]) -> Driver:
        if saved.get("kind") == "greeting" or self._inbound is None:
            return GreetingDriver.from_dict(saved)
        return await self._inbound.resume(saved)

    async def _playback_active(self, playback_id: str) -> bool:
        try:
            return await self._switch.playback_active(playback_id)
        except SwitchError:
            return False
