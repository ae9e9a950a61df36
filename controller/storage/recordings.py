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
    bridge_id: str | None
    queue: str | None  # the queue (agent) when it started; ``queues`` (``agents``) are all of them
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
    leg_id: str | None = None
    app: str | None = None
    agents: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    campaign: str | None = None
    dual_channel: bool = False
    dual_duration_s: float | None = None
    dual_size_bytes: int | None = None
    dual_sha256: str | None = None
    dual_error: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Recording:
        return cls(**{**row, "agents": tuple(row["agents"] or ()), "queues": tuple(row["queues"] or ())})

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.format}"

    @property
    def dual_file_name(self) -> str:
        return f"{self.name}-dual.{self.format}"

    @property
    def in_progress(self) -> bool:
        return self.state in ("recording", "paused")


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    call_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    campaign: str | None = None
    caller_number: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which recordings a reader may see: those an agent took part in (``agent``), those of
    calls in some queues (``queues``), or all (both None)."""

    agent: str | None = None
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    scope: str
    name: str
    policy: str
    updated_at: datetime
    dual_channel: bool = False


@dataclass(frozen=True, slots=True)
class FileFacts:
    duration_s: float
    size_bytes: int
    sha256: str


_RECORDING = ("id, name, call_id, bridge_id, queue, agent_id, caller_number, started_by, state, format, "
              "started_at, ended_at, duration_s, size_bytes, sha256, error, deleted_at, leg_id, app, agents, "
              "queues, campaign, dual_channel, dual_duration_s, dual_size_bytes, dual_sha256, dual_error")

INSERT_RECORDING = f"""
INSERT INTO recordings (id, name, call_id, bridge_id, leg_id, app, queue, agent_id, agents, queues, campaign,
                        caller_number, started_by, state, format, started_at, dual_channel)
VALUES (%(id)s, %(name)s, %(call_id)s, %(bridge_id)s, %(leg_id)s, %(app)s, %(queue)s, %(agent_id)s,
        %(agents)s, %(queues)s, %(campaign)s, %(caller_number)s, %(started_by)s, 'recording', %(format)s,
        %(started_at)s, %(dual_channel)s)
RETURNING {_RECORDING}
"""

# Each filter applies only when its parameter is not null; so does each visibility limit.
_VISIBLE = """
  AND (%(see_agent)s::text IS NULL OR agents @> ARRAY[%(see_agent)s::text])
  AND (%(see_queues)s::text[] IS NULL OR queues && %(see_queues)s)
"""

LIST_RECORDINGS = f"""
SELECT {_RECORDING} FROM recordings
WHERE deleted_at IS NULL
  AND (%(call_id)s::text IS NULL OR call_id = %(call_id)s)
  AND (%(agent_id)s::text IS NULL OR agents @> ARRAY[%(agent_id)s::text])
  AND (%(queue)s::text IS NULL OR queues @> ARRAY[%(queue)s::text])
  AND (%(campaign)s::text IS NULL OR campaign = %(campaign)s)
  AND (%(caller_number)s::text IS NULL OR caller_number = %(caller_number)s)
  AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)
  AND (%(before)s::timestamptz IS NULL OR started_at < %(before)s)
  {_VISIBLE}
ORDER BY started_at DESC, id
LIMIT %(limit)s
"""

GET_RECORDING = f"SELECT {_RECORDING} FROM recordings WHERE id = %(id)s AND deleted_at IS NULL {_VISIBLE}"

# The recording of a call that is still going on (recording or paused), newest first.
LIVE_OF_CALL = f"""
SELECT {_RECORDING} FROM recordings
WHERE call_id = %s AND state IN ('recording', 'paused') AND deleted_at IS NULL
ORDER BY started_at DESC LIMIT 1
"""

# Recordings a controller process (Stasis application) left going on; rows from before the
# column existed (app null) belong to any.
IN_PROGRESS = f"""
SELECT {_RECORDING} FROM recordings
WHERE state IN ('recording', 'paused') AND (app = %s OR app IS NULL)
ORDER BY started_at
"""

SET_STATE = f"""
UPDATE recordings SET state = %(state)s
WHERE id = %(id)s AND state IN ('recording', 'paused')
RETURNING {_RECORDING}
"""

# Agents and queues the call was connected to while recorded, each once, in order.
ADD_PARTICIPANTS = f"""
UPDATE recordings
SET agents = agents || ARRAY(SELECT a FROM unnest(%(agents)s::text[]) a WHERE a <> ALL(agents)),
    queues = queues || ARRAY(SELECT q FROM unnest(%(queues)s::text[]) q WHERE q <> ALL(queues))
WHERE id = %(id)s
RETURNING {_RECORDING}
"""

# Only a recording still going on is finished: finishing twice (an event and a recovery) is
# harmless, the first wins.
FINISH = f"""
UPDATE recordings
SET state = %(state)s, ended_at = %(ended_at)s, duration_s = %(duration_s)s, size_bytes = %(size_bytes)s,
    sha256 = %(sha256)s, error = %(error)s, dual_duration_s = %(dual_duration_s)s,
    dual_size_bytes = %(dual_size_bytes)s, dual_sha256 = %(dual_sha256)s, dual_error = %(dual_error)s
WHERE id = %(id)s AND state IN ('recording', 'paused')
RETURNING {_RECORDING}
"""

MARK_DELETED = f"""
UPDATE recordings SET deleted_at = now()
WHERE id = %(id)s AND deleted_at IS NULL {_VISIBLE}
RETURNING {_RECORDING}
"""

# Finished or failed recordings past retention (a live one is left to finish first).
EXPIRED = """
SELECT id FROM recordings
WHERE deleted_at IS NULL AND state IN ('finished', 'failed') AND started_at < %s
ORDER BY started_at LIMIT %s
"""

_POLICY = "scope, name, policy, updated_at, dual_channel"

PUT_POLICY = f"""
INSERT INTO recording_policies (scope, name, policy, dual_channel)
VALUES (%(scope)s, %(name)s, %(policy)s, %(dual_channel)s)
ON CONFLICT (scope, name) DO UPDATE
SET policy = EXCLUDED.policy, dual_channel = EXCLUDED.dual_channel, updated_at = now()
RETURNING {_POLICY}
"""

LIST_POLICIES = f"SELECT {_POLICY} FROM recording_policies ORDER BY scope, name"
DELETE_POLICY = "DELETE FROM recording_policies WHERE scope = %s AND name = %s"
# 'campaign' rows cannot exist yet (the table's CHECK); the campaign issue adds the scope.
POLICIES_FOR = f"""
SELECT {_POLICY} FROM recording_policies
WHERE (scope = 'queue' AND name = %(queue)s) OR (scope = 'agent' AND name = %(agent_id)s)
   OR (scope = 'campaign' AND name = %(campaign)s)
"""


def _visible(visibility: Visibility) -> dict[str, Any]:
    return {"see_agent": visibility.agent,
            "see_queues": list(visibility.queues) if visibility.queues is not None else None}


async def _one(conn: psycopg.AsyncConnection, query: str, params: Any) -> Recording | None:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return None if row is None else Recording.of(row)


async def insert_recording(conn: psycopg.AsyncConnection, **values: Any) -> Recording:
    values = {"bridge_id": None, "leg_id": None, "app": None, "campaign": None, "dual_channel": False,
              **values}
    values["agents"] = list(values.get("agents") or ([values["agent_id"]] if values.get("agent_id") else []))
    values["queues"] = list(values.get("queues") or ([values["queue"]] if values.get("queue") else []))
    recording = await _one(conn, INSERT_RECORDING, values)
    assert recording is not None
    return recording


async def list_recordings(conn: psycopg.AsyncConnection, filters: RecordingFilter,
                          visibility: Visibility = Visibility()) -> list[Recording]:
    cursor = await conn.execute(LIST_RECORDINGS, {
        "call_id": filters.call_id, "agent_id": filters.agent_id, "queue": filters.queue,
        "campaign": filters.campaign, "caller_number": filters.caller_number, "since": filters.since,
        "before": filters.before, "limit": filters.limit, **_visible(visibility),
    })
    return [Recording.of(row) for row in await cursor.fetchall()]


async def get_recording(conn: psycopg.AsyncConnection, recording_id: UUID,
                        visibility: Visibility = Visibility()) -> Recording | None:
    return await _one(conn, GET_RECORDING, {"id": recording_id, **_visible(visibility)})


async def live_of_call(conn: psycopg.AsyncConnection, call_id: str) -> Recording | None:
    return await _one(conn, LIVE_OF_CALL, (call_id,))


async def in_progress(conn: psycopg.AsyncConnection, app: str) -> list[Recording]:
    cursor = await conn.execute(IN_PROGRESS, (app,))
    return [Recording.of(row) for row in await cursor.fetchall()]


async def set_state(conn: psycopg.AsyncConnection, recording_id: UUID, state: str) -> Recording | None:
    return await _one(conn, SET_STATE, {"id": recording_id, "state": state})


async def add_participants(conn: psycopg.AsyncConnection, recording_id: UUID, agents: tuple[str, ...],
                           queues: tuple[str, ...]) -> Recording | None:
    return await _one(conn, ADD_PARTICIPANTS, {"id": recording_id, "agents": list(agents),
                                               "queues": list(queues)})


async def finish(conn: psycopg.AsyncConnection, *, recording_id: UUID, state: str, ended_at: datetime,
                 facts: FileFacts | None, error: str | None, dual: FileFacts | None = None,
                 dual_error: str | None = None) -> Recording | None:
    return await _one(conn, FINISH, {
        "id": recording_id, "state": state, "ended_at": ended_at, "error": error, "dual_error": dual_error,
        "duration_s": facts.duration_s if facts else None, "size_bytes": facts.size_bytes if facts else None,
        "sha256": facts.sha256 if facts else None,
        "dual_duration_s": dual.duration_s if dual else None,
        "dual_size_bytes": dual.size_bytes if dual else None, "dual_sha256": dual.sha256 if dual else None,
    })


async def mark_deleted(conn: psycopg.AsyncConnection, recording_id: UUID,
                       visibility: Visibility = Visibility()) -> Recording | None:
    return await _one(conn, MARK_DELETED, {"id": recording_id, **_visible(visibility)})


async def expired(conn: psycopg.AsyncConnection, cutoff: datetime, limit: int) -> list[UUID]:
    cursor = await conn.execute(EXPIRED, (cutoff, limit))
    return [row["id"] for row in await cursor.fetchall()]


async def put_policy(conn: psycopg.AsyncConnection, scope: str, name: str, policy: str,
                     dual_channel: bool = False) -> Policy:
    cursor = await conn.execute(PUT_POLICY, {"scope": scope, "name": name, "policy": policy,
                                             "dual_channel": dual_channel})
    row = await cursor.fetchone()
    assert row is not None
    return Policy(**row)


async def list_policies(conn: psycopg.AsyncConnection) -> list[Policy]:
    cursor = await conn.execute(LIST_POLICIES)
    return [Policy(**row) for row in await cursor.fetchall()]


async def delete_policy(conn: psycopg.AsyncConnection, scope: str, name: str) -> bool:
    cursor = await conn.execute(DELETE_POLICY, (scope, name))
    return cursor.rowcount > 0


async def policies_for(conn: psycopg.AsyncConnection, queue: str | None, agent_id: str | None,
                       campaign: str | None = None) -> list[Policy]:
    cursor = await conn.execute(POLICIES_FOR, {"queue": queue, "agent_id": agent_id, "campaign": campaign})
    return [Policy(**row) for row in await cursor.fetchall()]
