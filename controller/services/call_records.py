"""Reading the call detail records (calls, legs, events, disposition) for the API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from controller.domain.errors import NotFound
from controller.storage import dispositions, records
from controller.storage.db import Database


class CallRecordService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, *, state: str | None, since: datetime | None, before: datetime | None,
                   limit: int) -> list[dict[str, Any]]:
        async with self._db.connection() as conn:
            return await records.list_calls(conn, state=state, since=since, before=before, limit=limit)

    async def get(self, call_id: str) -> dict[str, Any]:
        async with self._db.connection() as conn:
            call = await records.get_call(conn, call_id)
            if call is None:
                raise NotFound(f"no call {call_id}")
            call["events"] = await records.call_events(conn, call_id)
            disposition = await dispositions.get(conn, call_id)
            call["disposition"] = asdict(disposition) if disposition is not None else None
            return call
