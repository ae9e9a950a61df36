"""Supervisors move a waiting caller to another queue or to one agent.

The ACD decides (engines/acd.py, "Moves": priority kept, the wait in a new queue counted from
the move, an agent target offered that agent alone) and any controller process may be asked,
since the ACD is shared (services/acd.py ``move``). This service adds what the ACD cannot know:
whether a call that is not waiting exists at all (409 if it does, 404 if no controller ever
had it), and the answer's figures (place in the queue, wait so far).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.domain.errors import NotFound
from controller.engines import acd as acd_engine
from controller.services.acd import AcdService
from controller.storage import records
from controller.storage.db import Database


@dataclass(frozen=True, slots=True)
class MovedCall:
    """A waiting caller as it waits after a move."""

    call_id: str
    queue: str
    target_agent: str | None
    position: int  # in its queue, 1 = next
    priority: int
    waited_s: float  # in this queue: from the move when it changed queues


class QueueMoves:
    def __init__(self, acd: AcdService, db: Database, live_call: Callable[[str], object | None]) -> None:
        self._acd = acd
        self._db = db
        self._live_call = live_call

    async def move(self, call_id: str, *, queue: str | None = None, agent_id: str | None = None) -> MovedCall:
        """Move the waiting caller ``call_id`` to ``queue`` or to the agent ``agent_id``.
        NotFound for a call nobody knows; Conflict for one that does not wait in a queue, an
        agent logged out, or a queue with nobody logged in that sheds its callers;
        InvalidRequest for an unknown queue or agent."""
        if call_id not in self._acd.state.waiting and not await self._exists(call_id):
            raise NotFound(f"no call {call_id}")
        entry = await self._acd.move(call_id, queue=queue or "", agent_id=agent_id or "")
        position = acd_engine.position_of(self._acd.state, call_id) or 1
        return MovedCall(call_id, entry.queue, entry.target_agent, position, entry.priority,
                         (datetime.now(UTC) - entry.entered_at).total_seconds())

    async def _exists(self, call_id: str) -> bool:
        if self._live_call(call_id) is not None:
            return True
        async with self._db.connection() as conn:
            return await records.get_call(conn, call_id) is not None
