"""Reading the call detail records (calls, legs, events, disposition) for the API.

An agent key reads only its own agent's calls (storage/records.py says which those are); any
other call is "not found" to it, as if it did not exist."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from controller.domain.access import Principal
from controller.domain.errors import NotFound
from controller.storage import dispositions, records
from controller.storage.db import Database


class CallRecordService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, *, state: str | None, since: datetime | None, before: datetime | None,
                   limit: int, reader: Principal | None = None) -> list[dict[str, Any]]:
        only_agent = reader is not None and not reader.oversees_calls
        async with self._db.connection() as conn:
            return await records.list_calls(conn, state=state, since=since, before=before, limit=limit,
                                            agent_id=reader.agent_id if reader else None,
                                            only_agent=only_agent)

    async def get(self, call_id: str, reader: Principal | None = None) -> dict[str, Any]:
        async with self._db.connection() as conn:
            call = await records.get_call(conn, call_id)
            if call is not None and reader is not None and not reader.oversees_calls and (
                    reader.agent_id is None or not await records.is_call_of_agent(conn, call_id,
                                                                                   reader.agent_id)):
                call = None
            if call is None:
                raise NotFound(f"no call {call_id}")
            call["events"] = await records.call_events(conn, call_id)
            disposition = await dispositions.get(conn, call_id)
            call["disposition"] = asdict(disposition) if disposition is not None else None
            return call
