"""Reading and pruning the audit log. Entries are written by the record writer
(``AuditRow`` in storage/records.py), so an outage of Postgres delays them but loses none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to read: all given conditions hold. ``since <= at < until``; paging goes
    backwards with ``before_id`` (the id of the last entry of the previous page)."""

    since: datetime | None = None
    until: datetime | None = None
    key_id: UUID | None = None
    method: str | None = None
    path_prefix: str | None = None
    before_id: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    key_id: UUID | None
    key_name: str | None
    role: str | None
    method: str
    path: str
    action: str
    target: str | None
    status: int
    client_ip: str | None
    request_id: str | None
    detail: dict[str, Any]


# One fixed fragment per filter; only the fragments whose value is given are joined.
_CONDITIONS: dict[str, str] = {
    "since": "at >= %(since)s",
    "until": "at < %(until)s",
    "key_id": "key_id = %(key_id)s",
    "method": "method = %(method)s",
    "path_prefix": "starts_with(path, %(path_prefix)s)",
    "before_id": "id < %(before_id)s",
}

LIST = """
SELECT id, at, key_id, key_name, role, method, path, action, target, status, client_ip,
       request_id, detail
FROM audit_log
WHERE {conditions}
ORDER BY id DESC
LIMIT %(limit)s
"""

# Deleting in batches keeps each transaction (and its locks) short on a large table.
PRUNE_BATCH = """
DELETE FROM audit_log
WHERE id IN (SELECT id FROM audit_log WHERE at < %(cutoff)s ORDER BY id LIMIT %(batch)s)
"""


async def list_entries(conn: psycopg.AsyncConnection, filters: AuditFilter) -> list[AuditEntry]:
    params: dict[str, Any] = {
        name: getattr(filters, name) for name in _CONDITIONS if getattr(filters, name) is not None
    }
    conditions = [sql.SQL(_CONDITIONS[name]) for name in params] or [sql.SQL("true")]
    params["limit"] = filters.limit
    query = sql.SQL(LIST).format(conditions=sql.SQL(" AND ").join(conditions))
    cursor = await conn.execute(query, params)
    return [AuditEntry(**row) for row in await cursor.fetchall()]


async def prune_batch(conn: psycopg.AsyncConnection, cutoff: datetime, batch: int) -> int:
    cursor = await conn.execute(PRUNE_BATCH, {"cutoff": cutoff, "batch": batch})
    return cursor.rowcount
