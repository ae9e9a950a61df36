"""Recordings and recording policies in Postgres.

Functions take a connection (the caller owns the transaction) and return plain records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg


@dataclass(frozen=True, slots=True)
class Recording:
    id: UUID
    name: str
    call_id: str
    bridge_id: str
    queue: str | None
    agent_id: str | None
    caller_number: str
    started_by: str
    state: str
    format: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    sha256: str | None
    error: str | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Recording:
        return cls(**row)

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.format}"


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    call_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    caller_number: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Policy:
    scope: str
    name: str
    policy: str
    updated_at: datetime


_RECORDING = ("id, name, call_id, bridge_id, queue, agent_id, caller_number, started_by, state, format, "
              "started_at, ended_at, duration_s, size_bytes, sha256, error, deleted_at")

INSERT_RECORDING = f"""
INSERT INTO recordings (id, name, call_id, bridge_id, queue, agent_id, caller_number, started_by, state,
                        format, started_at)
VALUES (%(id)s, %(name)s, %(call_id)s, %(bridge_id)s, %(queue)s, %(agent_id)s, %(caller_number)s,
        %(started_by)s, 'recording', %(format)s, %(started_at)s)
RETURNING {_RECORDING}
"""

# Each filter applies only when its parameter is not null.
LIST_RECORDINGS = f"""
SELECT {_RECORDING} FROM recordings
WHERE deleted_at IS NULL
  AND (%(call_id)s::text IS NULL OR call_id = %(call_id)s)
  AND (%(agent_id)s::text IS NULL OR agent_id = %(agent_id)s)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(caller_number)s::text IS NULL OR caller_number = %(caller_number)s)
  AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)
  AND (%(before)s::timestamptz IS NULL OR started_at < %(before)s)
ORDER BY started_at DESC, id
LIMIT %(limit)s
"""

GET_RECORDING = f"SELECT {_RECORDING} FROM recordings WHERE id = %s AND deleted_at IS NULL"
GET_BY_NAME = f"SELECT {_RECORDING} FROM recordings WHERE name = %s"

# The recording of a call that is still going on (recording or paused), newest first.
LIVE_OF_CALL = f"""
SELECT {_RECORDING} FROM recordings
WHERE call_id = %s AND state IN ('recording', 'paused') AND deleted_at IS NULL
ORDER BY started_at DESC LIMIT 1
"""

SET_STATE = f"""
UPDATE recordings SET state = %(state)s
WHERE id = %(id)s AND state IN ('recording', 'paused')
RETURNING {_RECORDING}
"""

FINISH = f"""
UPDATE recordings
SET state = %(state)s, ended_at = %(ended_at)s, duration_s = %(duration_s)s, size_bytes = %(size_bytes)s,
    sha256 = %(sha256)s, error = %(error)s
WHERE name = %(name)s
RETURNING {_RECORDING}
"""

MARK_DELETED = f"""
UPDATE recordings SET deleted_at = now()
WHERE id = %s AND deleted_at IS NULL
RETURNING {_RECORDING}
"""

# Finished or failed recordings past retention (a live one is left to finish first).
EXPIRED = """
SELECT id FROM recordings
WHERE deleted_at IS NULL AND state IN ('finished', 'failed') AND started_at < %s
ORDER BY started_at LIMIT %s
"""

_POLICY = "scope, name, policy, updated_at"

PUT_POLICY = f"""
INSERT INTO recording_policies (scope, name, policy) VALUES (%(scope)s, %(name)s, %(policy)s)
ON CONFLICT (scope, name) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()
RETURNING {_POLICY}
"""

LIST_POLICIES = f"SELECT {_POLICY} FROM recording_policies ORDER BY scope, name"
DELETE_POLICY = "DELETE FROM recording_policies WHERE scope = %s AND name = %s"
POLICIES_FOR = f"""
SELECT {_POLICY} FROM recording_policies
WHERE (scope = 'queue' AND name = %(queue)s) OR (scope = 'agent' AND name = %(agent_id)s)
"""


async def _one(conn: psycopg.AsyncConnection, query: str, params: Any) -> Recording | None:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return None if row is None else Recording.of(row)


async def insert_recording(conn: psycopg.AsyncConnection, **values: Any) -> Recording:
    recording = await _one(conn, INSERT_RECORDING, values)
    assert recording is not None
    return recording


async def list_recordings(conn: psycopg.AsyncConnection, filters: RecordingFilter) -> list[Recording]:
    cursor = await conn.execute(LIST_RECORDINGS, {
        "call_id": filters.call_id, "agent_id": filters.agent_id, "queue": filters.queue,
        "caller_number": filters.caller_number, "since": filters.since, "before": filters.before,
        "limit": filters.limit,
    })
    return [Recording.of(row) for row in await cursor.fetchall()]


async def get_recording(conn: psycopg.AsyncConnection, recording_id: UUID) -> Recording | None:
    return await _one(conn, GET_RECORDING, (recording_id,))


async def get_by_name(conn: psycopg.AsyncConnection, name: str) -> Recording | None:
    return await _one(conn, GET_BY_NAME, (name,))


async def live_of_call(conn: psycopg.AsyncConnection, call_id: str) -> Recording | None:
    return await _one(conn, LIVE_OF_CALL, (call_id,))


async def set_state(conn: psycopg.AsyncConnection, recording_id: UUID, state: str) -> Recording | None:
    return await _one(conn, SET_STATE, {"id": recording_id, "state": state})


async def finish(conn: psycopg.AsyncConnection, **values: Any) -> Recording | None:
    return await _one(conn, FINISH, values)


async def mark_deleted(conn: psycopg.AsyncConnection, recording_id: UUID) -> Recording | None:
    return await _one(conn, MARK_DELETED, (recording_id,))


async def expired(conn: psycopg.AsyncConnection, cutoff: datetime, limit: int) -> list[UUID]:
    cursor = await conn.execute(EXPIRED, (cutoff, limit))
    return [row["id"] for row in await cursor.fetchall()]


async def put_policy(conn: psycopg.AsyncConnection, scope: str, name: str, policy: str) -> Policy:
    cursor = await conn.execute(PUT_POLICY, {"scope": scope, "name": name, "policy": policy})
    row = await cursor.fetchone()
    assert row is not None
    return Policy(**row)


async def list_policies(conn: psycopg.AsyncConnection) -> list[Policy]:
    cursor = await conn.execute(LIST_POLICIES)
    return [Policy(**row) for row in await cursor.fetchall()]


async def delete_policy(conn: psycopg.AsyncConnection, scope: str, name: str) -> bool:
    cursor = await conn.execute(DELETE_POLICY, (scope, name))
    return cursor.rowcount > 0


async def policies_for(conn: psycopg.AsyncConnection, queue: str | None,
                       agent_id: str | None) -> list[Policy]:
    cursor = await conn.execute(POLICIES_FOR, {"queue": queue, "agent_id": agent_id})
    return [Policy(**row) for row in await cursor.fetchall()]
