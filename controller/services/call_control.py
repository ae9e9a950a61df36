"""Call control from the API (agents and CRMs): hang up, hold, and the like.

The call service runs each call on its own task; these actions act on a live call's session
through the call service and record what they did as call events.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller.domain import commands as c
from controller.domain.calls import LegRole
from controller.domain.errors import Conflict
from controller.services.calls import CallService
from controller.storage.records import CallEventRow


class CallControl:
    def __init__(self, calls: CallService) -> None:
        self._calls = calls

    async def hang_up(self, call_id: str) -> None:
        """Hang up every leg of a live call (the records follow from the switch's events)."""
        session = self._calls.session(call_id)
        for leg in session.call.live_legs():
            await self._calls.execute(session, c.Hangup(leg.id))

    async def hold(self, call_id: str, on: bool) -> None:
        """Put the caller on hold (music on hold to the caller) or take the call off hold."""
        session = self._calls.session(call_id)
        callers = [leg for leg in session.call.live_legs() if leg.role is LegRole.CALLER]
        if not callers:
            raise Conflict(f"call {call_id} has no caller to hold")
        command: c.Command = c.StartMusicOnHold(callers[0].id) if on else c.StopMusicOnHold(callers[0].id)
        await self._calls.perform(command)
        session.call.data["on_hold"] = "yes" if on else "no"
        self._calls.record(CallEventRow(call_id, callers[0].id, datetime.now(UTC),
                                        "CallHeld" if on else "CallResumed", {}))
