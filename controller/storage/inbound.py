"""Inbound configuration and voicemail in Postgres: flows and their immutable versions, number
routes, schedules, prompts, voicemails.

Functions take a connection (the caller owns the transaction) and return plain records.
Uniqueness is left to the database: an insert that clashes raises ``UniqueViolation``, which the
services turn into 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from controller.domain.number_routes import NumberRoute

# ---- flows ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowRecord:
    id: UUID
    name: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> FlowRecord:
        return cls(row["id"], row["name"], row["current_version"], row["created_at"],
                   row["updated_at"], row["deleted_at"])


@dataclass(frozen=True, slots=True)
class FlowVersion:
    flow_name: str
    version: int
    document: dict[str, Any]
    created_at: datetime
    created_by: UUID | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> FlowVersion:
        return cls(row["name"], row["version"], row["document"], row["created_at"], row["created_by"])


_FLOW = "id, name, current_version, created_at, updated_at, deleted_at"

FLOW_FOR_UPDATE = f"SELECT {_FLOW} FROM flows WHERE name = %s FOR UPDATE"

INSERT_FLOW = f"""
INSERT INTO flows (id, name, current_version) VALUES (%s, %s, 1)
ON CONFLICT (name) DO NOTHING
RETURNING {_FLOW}
"""

# A new version of a live flow, or the revival of a deleted one (its numbering goes on).
BUMP_FLOW = f"""
UPDATE flows SET current_version = current_version + 1, updated_at = now(), deleted_at = NULL
WHERE id = %s
RETURNING {_FLOW}
"""

DELETE_FLOW = f"""
UPDATE flows SET deleted_at = now(), updated_at = now()
WHERE name = %s AND deleted_at IS NULL
RETURNING {_FLOW}
"""

INSERT_VERSION = """
INSERT INTO flow_versions (flow_id, version, document, created_by)
VALUES (%(flow_id)s, %(version)s, %(document)s, %(created_by)s)
RETURNING version, document, created_at, created_by
"""

_VERSION = "f.name, v.version, v.document, v.created_at, v.created_by"

# Deleted flows keep their versions readable: calls that entered before keep running them.
VERSION = f"""
SELECT {_VERSION}
FROM flows f JOIN flow_versions v ON v.flow_id = f.id
WHERE f.name = %s AND v.version = %s
"""

CURRENT = f"""
SELECT {_VERSION}, f.updated_at
FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
WHERE f.name = %s AND f.deleted_at IS NULL
"""

LIST_CURRENT = f"""
SELECT {_VERSION}, f.updated_at
FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
WHERE f.deleted_at IS NULL
ORDER BY f.name
"""

LIVE_FLOW_NAMES = "SELECT name FROM flows WHERE deleted_at IS NULL"


async def flow_for_update(conn: psycopg.AsyncConnection, name: str) -> FlowRecord | None:
    cursor = await conn.execute(FLOW_FOR_UPDATE, (name,))
    row = await cursor.fetchone()
    return None if row is None else FlowRecord.of(row)


async def insert_flow(conn: psycopg.AsyncConnection, flow_id: UUID, name: str) -> FlowRecord | None:
    """The new flow at version 1; None if the name was taken meanwhile."""
    cursor = await conn.execute(INSERT_FLOW, (flow_id, name))
    row = await cursor.fetchone()
    return None if row is None else FlowRecord.of(row)


async def bump_flow(conn: psycopg.AsyncConnection, flow_id: UUID) -> FlowRecord:
    cursor = await conn.execute(BUMP_FLOW, (flow_id,))
    row = await cursor.fetchone()
    assert row is not None
    return FlowRecord.of(row)


async def insert_version(conn: psycopg.AsyncConnection, flow: FlowRecord, document: dict[str, Any],
                         created_by: UUID | None) -> FlowVersion:
    cursor = await conn.execute(INSERT_VERSION, {
        "flow_id": flow.id, "version": flow.current_version, "document": Jsonb(document),
        "created_by": created_by,
    })
    row = await cursor.fetchone()
    assert row is not None
    return FlowVersion.of({**row, "name": flow.name})


async def delete_flow(conn: psycopg.AsyncConnection, name: str) -> FlowRecord | None:
    cursor = await conn.execute(DELETE_FLOW, (name,))
    row = await cursor.fetchone()
    return None if row is None else FlowRecord.of(row)


async def flow_version(conn: psycopg.AsyncConnection, name: str, version: int) -> FlowVersion | None:
    cursor = await conn.execute(VERSION, (name, version))
    row = await cursor.fetchone()
    return None if row is None else FlowVersion.of(row)


async def current_flow(conn: psycopg.AsyncConnection,
                       name: str) -> tuple[FlowVersion, datetime] | None:
    """The current version of a live flow and when the flow last changed."""
    cursor = await conn.execute(CURRENT, (name,))
    row = await cursor.fetchone()
    return None if row is None else (FlowVersion.of(row), row["updated_at"])


async def current_flows(conn: psycopg.AsyncConnection) -> list[tuple[FlowVersion, datetime]]:
    cursor = await conn.execute(LIST_CURRENT)
    return [(FlowVersion.of(row), row["updated_at"]) for row in await cursor.fetchall()]


async def live_flow_names(conn: psycopg.AsyncConnection) -> set[str]:
    cursor = await conn.execute(LIVE_FLOW_NAMES)
    return {row["name"] for row in await cursor.fetchall()}


# ---- number routes ------------------------------------------------------------------------

_ROUTE = ("id, name, pattern, flow_name, max_concurrent, overflow, priority, enabled, "
          "created_at, updated_at")

LIST_ROUTES = f"SELECT {_ROUTE} FROM number_routes ORDER BY name"

ENABLED_ROUTES = f"SELECT {_ROUTE} FROM number_routes WHERE enabled"

GET_ROUTE = f"SELECT {_ROUTE} FROM number_routes WHERE name = %s"

INSERT_ROUTE = f"""
INSERT INTO number_routes (id, name, pattern, flow_name, max_concurrent, overflow, priority, enabled)
VALUES (%(id)s, %(name)s, %(pattern)s, %(flow_name)s, %(max_concurrent)s, %(overflow)s,
        %(priority)s, %(enabled)s)
RETURNING {_ROUTE}
"""

UPDATE_ROUTE = f"""
UPDATE number_routes
SET pattern = %(pattern)s, flow_name = %(flow_name)s, max_concurrent = %(max_concurrent)s,
    overflow = %(overflow)s, priority = %(priority)s, enabled = %(enabled)s, updated_at = now()
WHERE name = %(name)s
RETURNING {_ROUTE}
"""

DELETE_ROUTE = "DELETE FROM number_routes WHERE name = %s RETURNING id"

# Routes that send calls to a flow, directly or on overflow.
ROUTES_USING_FLOW = """
SELECT name FROM number_routes
WHERE flow_name = %(flow)s OR overflow ->> 'flow' = %(flow)s
ORDER BY name
"""

ANNOUNCE_OVERFLOWS = """
SELECT name, overflow FROM number_routes WHERE overflow ->> 'action' = 'announce' ORDER BY name
"""


def _route(row: dict[str, Any]) -> NumberRoute:
    return NumberRoute(row["id"], row["name"], row["pattern"], row["flow_name"],
                       row["max_concurrent"], row["overflow"], row["priority"], row["enabled"],
                       row["created_at"], row["updated_at"])


def _route_params(route: NumberRoute) -> dict[str, Any]:
    return {
        "id": route.id, "name": route.name, "pattern": route.pattern, "flow_name": route.flow_name,
        "max_concurrent": route.max_concurrent,
        "overflow": None if route.overflow is None else Jsonb(route.overflow),
        "priority": route.priority, "enabled": route.enabled,
    }


async def list_routes(conn: psycopg.AsyncConnection, *, enabled_only: bool = False) -> list[NumberRoute]:
    cursor = await conn.execute(ENABLED_ROUTES if enabled_only else LIST_ROUTES)
    return [_route(row) for row in await cursor.fetchall()]


async def get_route(conn: psycopg.AsyncConnection, name: str) -> NumberRoute | None:
    cursor = await conn.execute(GET_ROUTE, (name,))
    row = await cursor.fetchone()
    return None if row is None else _route(row)


async def insert_route(conn: psycopg.AsyncConnection, route: NumberRoute) -> NumberRoute:
    cursor = await conn.execute(INSERT_ROUTE, _route_params(route))
    row = await cursor.fetchone()
    assert row is not None
    return _route(row)


async def update_route(conn: psycopg.AsyncConnection, route: NumberRoute) -> NumberRoute | None:
    cursor = await conn.execute(UPDATE_ROUTE, _route_params(route))
    row = await cursor.fetchone()
    return None if row is None else _route(row)


async def delete_route(conn: psycopg.AsyncConnection, name: str) -> bool:
    cursor = await conn.execute(DELETE_ROUTE, (name,))
    return await cursor.fetchone() is not None


async def routes_using_flow(conn: psycopg.AsyncConnection, flow: str) -> list[str]:
    cursor = await conn.execute(ROUTES_USING_FLOW, {"flow": flow})
    return [row["name"] for row in await cursor.fetchall()]


async def announce_overflows(conn: psycopg.AsyncConnection) -> list[tuple[str, dict[str, Any]]]:
    cursor = await conn.execute(ANNOUNCE_OVERFLOWS)
    return [(row["name"], row["overflow"]) for row in await cursor.fetchall()]


# ---- schedules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: UUID
    name: str
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> ScheduleRecord:
        return cls(row["id"], row["name"], row["document"], row["created_at"], row["updated_at"])


_SCHEDULE = "id, name, document, created_at, updated_at"

LIST_SCHEDULES = f"SELECT {_SCHEDULE} FROM schedules ORDER BY name"

GET_SCHEDULE = f"SELECT {_SCHEDULE} FROM schedules WHERE name = %s"

INSERT_SCHEDULE = f"""
INSERT INTO schedules (id, name, document) VALUES (%s, %s, %s)
RETURNING {_SCHEDULE}
"""

UPDATE_SCHEDULE = f"""
UPDATE schedules SET document = %s, updated_at = now() WHERE name = %s
RETURNING {_SCHEDULE}
"""

DELETE_SCHEDULE = "DELETE FROM schedules WHERE name = %s RETURNING id"

SCHEDULE_NAMES = "SELECT name FROM schedules"


async def list_schedules(conn: psycopg.AsyncConnection) -> list[ScheduleRecord]:
    cursor = await conn.execute(LIST_SCHEDULES)
    return [ScheduleRecord.of(row) for row in await cursor.fetchall()]


async def get_schedule(conn: psycopg.AsyncConnection, name: str) -> ScheduleRecord | None:
    cursor = await conn.execute(GET_SCHEDULE, (name,))
    row = await cursor.fetchone()
    return None if row is None else ScheduleRecord.of(row)


async def insert_schedule(conn: psycopg.AsyncConnection, schedule_id: UUID, name: str,
                          document: dict[str, Any]) -> ScheduleRecord:
    cursor = await conn.execute(INSERT_SCHEDULE, (schedule_id, name, Jsonb(document)))
    row = await cursor.fetchone()
    assert row is not None
    return ScheduleRecord.of(row)


async def update_schedule(conn: psycopg.AsyncConnection, name: str,
                          document: dict[str, Any]) -> ScheduleRecord | None:
    cursor = await conn.execute(UPDATE_SCHEDULE, (Jsonb(document), name))
    row = await cursor.fetchone()
    return None if row is None else ScheduleRecord.of(row)


async def delete_schedule(conn: psycopg.AsyncConnection, name: str) -> bool:
    cursor = await conn.execute(DELETE_SCHEDULE, (name,))
    return await cursor.fetchone() is not None


async def schedule_names(conn: psycopg.AsyncConnection) -> set[str]:
    cursor = await conn.execute(SCHEDULE_NAMES)
    return {row["name"] for row in await cursor.fetchall()}


# ---- prompts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
    id: UUID
    name: str
    file_name: str
    duration_s: float
    sample_rate: int
    rms_db: float
    peak_db: float
    size_bytes: int
    original_filename: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Prompt:
        return cls(row["id"], row["name"], row["file_name"], row["duration_s"], row["sample_rate"],
                   row["rms_db"], row["peak_db"], row["size_bytes"], row["original_filename"],
                   row["created_at"])


_PROMPT = ("id, name, file_name, duration_s, sample_rate, rms_db, peak_db, size_bytes, "
           "original_filename, created_at")

LIST_PROMPTS = f"SELECT {_PROMPT} FROM prompts ORDER BY name"

GET_PROMPT = f"SELECT {_PROMPT} FROM prompts WHERE name = %s"

INSERT_PROMPT = f"""
INSERT INTO prompts (id, name, file_name, duration_s, sample_rate, rms_db, peak_db, size_bytes,
                     original_filename)
VALUES (%(id)s, %(name)s, %(file_name)s, %(duration_s)s, %(sample_rate)s, %(rms_db)s, %(peak_db)s,
        %(size_bytes)s, %(original_filename)s)
RETURNING {_PROMPT}
"""

# Replacing a prompt keeps its id; created_at says when this audio arrived.
REPLACE_PROMPT = f"""
INSERT INTO prompts (id, name, file_name, duration_s, sample_rate, rms_db, peak_db, size_bytes,
                     original_filename)
VALUES (%(id)s, %(name)s, %(file_name)s, %(duration_s)s, %(sample_rate)s, %(rms_db)s, %(peak_db)s,
        %(size_bytes)s, %(original_filename)s)
ON CONFLICT (name) DO UPDATE
SET file_name = excluded.file_name, duration_s = excluded.duration_s,
    sample_rate = excluded.sample_rate, rms_db = excluded.rms_db, peak_db = excluded.peak_db,
    size_bytes = excluded.size_bytes, original_filename = excluded.original_filename,
    created_at = now()
RETURNING {_PROMPT}
"""

DELETE_PROMPT = f"DELETE FROM prompts WHERE name = %s RETURNING {_PROMPT}"

PROMPT_NAMES = "SELECT name FROM prompts"


async def list_prompts(conn: psycopg.AsyncConnection) -> list[Prompt]:
    cursor = await conn.execute(LIST_PROMPTS)
    return [Prompt.of(row) for row in await cursor.fetchall()]


async def get_prompt(conn: psycopg.AsyncConnection, name: str) -> Prompt | None:
    cursor = await conn.execute(GET_PROMPT, (name,))
    row = await cursor.fetchone()
    return None if row is None else Prompt.of(row)


async def save_prompt(conn: psycopg.AsyncConnection, prompt: dict[str, Any], *,
                      replace: bool) -> Prompt:
    cursor = await conn.execute(REPLACE_PROMPT if replace else INSERT_PROMPT, prompt)
    row = await cursor.fetchone()
    assert row is not None
    return Prompt.of(row)


async def delete_prompt(conn: psycopg.AsyncConnection, name: str) -> Prompt | None:
    cursor = await conn.execute(DELETE_PROMPT, (name,))
    row = await cursor.fetchone()
    return None if row is None else Prompt.of(row)


async def prompt_names(conn: psycopg.AsyncConnection) -> set[str]:
    cursor = await conn.execute(PROMPT_NAMES)
    return {row["name"] for row in await cursor.fetchall()}


# ---- voicemails ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Voicemail:
    id: UUID
    mailbox: str
    call_id: str | None
    caller_number: str
    caller_name: str
    duration_s: float
    file_name: str
    created_at: datetime
    heard_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Voicemail:
        return cls(row["id"], row["mailbox"], row["call_id"], row["caller_number"],
                   row["caller_name"], row["duration_s"], row["file_name"], row["created_at"],
                   row["heard_at"])


@dataclass(frozen=True, slots=True)
class VoicemailFilter:
    mailbox: str | None = None
    heard: bool | None = None
    since: datetime | None = None
    before: datetime | None = None
    limit: int = 100


_VOICEMAIL = ("id, mailbox, call_id, caller_number, caller_name, duration_s, file_name, "
              "created_at, heard_at")

INSERT_VOICEMAIL = f"""
INSERT INTO voicemails (id, mailbox, call_id, caller_number, caller_name, duration_s, file_name)
VALUES (%(id)s, %(mailbox)s, %(call_id)s, %(caller_number)s, %(caller_name)s, %(duration_s)s,
        %(file_name)s)
RETURNING {_VOICEMAIL}
"""

# Each filter applies only when its parameter is not null.
LIST_VOICEMAILS = f"""
SELECT {_VOICEMAIL} FROM voicemails
WHERE deleted_at IS NULL
  AND (%(mailbox)s::text IS NULL OR mailbox = %(mailbox)s)
  AND (%(heard)s::boolean IS NULL OR (heard_at IS NOT NULL) = %(heard)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(before)s::timestamptz IS NULL OR created_at < %(before)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s
"""

GET_VOICEMAIL = f"SELECT {_VOICEMAIL} FROM voicemails WHERE id = %s AND deleted_at IS NULL"

# Hearing again keeps the first time.
MARK_HEARD = f"""
UPDATE voicemails SET heard_at = coalesce(heard_at, now())
WHERE id = %s AND deleted_at IS NULL
RETURNING {_VOICEMAIL}
"""

DELETE_VOICEMAIL = f"""
UPDATE voicemails SET deleted_at = now()
WHERE id = %s AND deleted_at IS NULL
RETURNING {_VOICEMAIL}
"""


async def insert_voicemail(conn: psycopg.AsyncConnection, **values: Any) -> Voicemail:
    cursor = await conn.execute(INSERT_VOICEMAIL, values)
    row = await cursor.fetchone()
    assert row is not None
    return Voicemail.of(row)


async def list_voicemails(conn: psycopg.AsyncConnection, filters: VoicemailFilter) -> list[Voicemail]:
    cursor = await conn.execute(LIST_VOICEMAILS, {
        "mailbox": filters.mailbox, "heard": filters.heard, "since": filters.since,
        "before": filters.before, "limit": filters.limit,
    })
    return [Voicemail.of(row) for row in await cursor.fetchall()]


async def get_voicemail(conn: psycopg.AsyncConnection, voicemail_id: UUID) -> Voicemail | None:
    cursor = await conn.execute(GET_VOICEMAIL, (voicemail_id,))
    row = await cursor.fetchone()
    return None if row is None else Voicemail.of(row)


async def mark_heard(conn: psycopg.AsyncConnection, voicemail_id: UUID) -> Voicemail | None:
    cursor = await conn.execute(MARK_HEARD, (voicemail_id,))
    row = await cursor.fetchone()
    return None if row is None else Voicemail.of(row)


async def delete_voicemail(conn: psycopg.AsyncConnection, voicemail_id: UUID) -> Voicemail | None:
    cursor = await conn.execute(DELETE_VOICEMAIL, (voicemail_id,))
    row = await cursor.fetchone()
    return None if row is None else Voicemail.of(row)
