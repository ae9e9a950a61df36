"""Call dispositions in Postgres: how a call ended, as its agent or a CRM records it.

One per call; recording another replaces it (``updated_at`` says when).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg


@dataclass(frozen=True, slots=True)
class Disposition:
    call_id: str
    code: str
    notes: str
    follow_up: bool
    key_id: UUID | None
    agent_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Disposition:
        return cls(row["call_id"], row["code"], row["notes"], row["follow_up"], row["key_id"],
                   row["agent_id"], row["created_at"], row["updated_at"])


_COLUMNS = "call_id, code, notes, follow_up, key_id, agent_id, created_at, updated_at"

UPSERT = f"""
INSERT INTO call_dispositions (call_id, code, notes, follow_up, key_id, agent_id)
VALUES (%(call_id)s, %(code)s, %(notes)s, %(follow_up)s, %(key_id)s, %(agent_id)s)
ON CONFLICT (call_id) DO UPDATE
SET code = excluded.code, notes = excluded.notes, follow_up = excluded.follow_up,
    key_id = excluded.key_id, agent_id = excluded.agent_id, updated_at = now()
RETURNING {_COLUMNS}
"""

GET = f"SELECT {_COLUMNS} FROM call_dispositions WHERE call_id = %s"

# What the access check needs of a call that may have ended: the agent it belongs to.
CALL_DATA = "SELECT data FROM calls WHERE id = %s"


async def upsert(conn: psycopg.AsyncConnection, *, call_id: str, code: str, notes: str, follow_up: bool,
                 key_id: UUID | None, agent_id: str | None) -> Disposition:
    cursor = await conn.execute(UPSERT, {"call_id": call_id, "code": code, "notes": notes,
                                         "follow_up": follow_up, "key_id": key_id, "agent_id": agent_id})
    row = await cursor.fetchone()
    assert row is not None
    return Disposition.of(row)


async def get(conn: psycopg.AsyncConnection, call_id: str) -> Disposition | None:
    cursor = await conn.execute(GET, (call_id,))
    row = await cursor.fetchone()
    return None if row is None else Disposition.of(row)


async def call_data(conn: psycopg.AsyncConnection, call_id: str) -> dict[str, Any] | None:
    """The stored data of a call, or None when Postgres has no such call."""
    cursor = await conn.execute(CALL_DATA, (call_id,))
    row = await cursor.fetchone()
    return None if row is None else dict(row["data"] or {})
