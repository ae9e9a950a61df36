"""Rows that must reach Postgres, and the SQL that writes and reads them.

Calls and legs are written as whole snapshots (upserts), so replaying a write is harmless;
call events are appended. Audit entries are appended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.domain.calls import Call, Leg
from controller.storage.acd import INSERT_AGENT_STATE, AgentStateRow


@dataclass(frozen=True, slots=True)
class CallRow:
    id: str
    direction: str
    state: str
    switch: str
    caller_number: str
    caller_name: str
    dialed: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: int | None
    hangup_cause_text: str | None
    data: dict[str, Any]
    route_name: str | None
    flow_name: str | None
    flow_version: int | None

    @classmethod
    def of(cls, call: Call, switch: str) -> CallRow:
        return cls(call.id, call.direction.value, call.state.value, switch, call.caller_number,
                   call.caller_name, call.dialed, call.started_at, call.answered_at, call.ended_at,
                   call.hangup_cause, call.hangup_cause_text, dict(call.data), call.route_name,
                   call.flow_name, call.flow_version)


@dataclass(frozen=True, slots=True)
class LegRow:
    id: str
    call_id: str
    role: str
    channel_name: str
    state: str
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: int | None
    hangup_cause_text: str | None

    @classmethod
    def of(cls, leg: Leg) -> LegRow:
        return cls(leg.id, leg.call_id, leg.role.value, leg.channel_name, leg.state.value,
                   leg.created_at, leg.answered_at, leg.ended_at, leg.hangup_cause,
                   leg.hangup_cause_text)


@dataclass(frozen=True, slots=True)
class CallEventRow:
    call_id: str
    leg_id: str | None
    at: datetime
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRow:
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
    detail: dict[str, Any] = field(default_factory=dict)


Row = CallRow | LegRow | CallEventRow | AuditRow | AgentStateRow

UPSERT_CALL = """
INSERT INTO calls (id, direction, state, switch, caller_number, caller_name, dialed, started_at,
                   answered_at, ended_at, hangup_cause, hangup_cause_text, data, route_name,
                   flow_name, flow_version)
VALUES (%(id)s, %(direction)s, %(state)s, %(switch)s, %(caller_number)s, %(caller_name)s,
        %(dialed)s, %(started_at)s, %(answered_at)s, %(ended_at)s, %(hangup_cause)s,
        %(hangup_cause_text)s, %(data)s, %(route_name)s, %(flow_name)s, %(flow_version)s)
ON CONFLICT (id) DO UPDATE SET
    route_name = EXCLUDED.route_name, flow_name = EXCLUDED.flow_name,
    flow_version = EXCLUDED.flow_version,
    state = EXCLUDED.state, caller_number = EXCLUDED.caller_number,
    caller_name = EXCLUDED.caller_name, dialed = EXCLUDED.dialed,
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    hangup_cause = EXCLUDED.hangup_cause, hangup_cause_text = EXCLUDED.hangup_cause_text,
    data = EXCLUDED.data
"""

UPSERT_LEG = """
INSERT INTO legs (id, call_id, role, channel_name, state, created_at, answered_at, ended_at,
                  hangup_cause, hangup_cause_text)
VALUES (%(id)s, %(call_id)s, %(role)s, %(channel_name)s, %(state)s, %(created_at)s,
        %(answered_at)s, %(ended_at)s, %(hangup_cause)s, %(hangup_cause_text)s)
ON CONFLICT (id) DO UPDATE SET
    state = EXCLUDED.state, channel_name = EXCLUDED.channel_name,
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    hangup_cause = EXCLUDED.hangup_cause, hangup_cause_text = EXCLUDED.hangup_cause_text
"""

INSERT_CALL_EVENT = """
INSERT INTO call_events (call_id, leg_id, at, kind, data)
VALUES (%(call_id)s, %(leg_id)s, %(at)s, %(kind)s, %(data)s)
"""

INSERT_AUDIT = """
INSERT INTO audit_log (at, key_id, key_name, role, method, path, action, target, status,
                       client_ip, request_id, detail)
VALUES (%(at)s, %(key_id)s, %(key_name)s, %(role)s, %(method)s, %(path)s, %(action)s,
        %(target)s, %(status)s, %(client_ip)s, %(request_id)s, %(detail)s)
"""

_SQL: dict[type, str] = {
    AgentStateRow: INSERT_AGENT_STATE,  # the ACD's state changes, written like call records
    CallRow: UPSERT_CALL,
    LegRow: UPSERT_LEG,
    CallEventRow: INSERT_CALL_EVENT,
    AuditRow: INSERT_AUDIT,
}


def _params(row: Row) -> dict[str, Any]:
    params = {name: getattr(row, name) for name in row.__slots__}  # type: ignore[union-attr]
    for key in ("data", "detail"):
        if key in params:
            params[key] = json.dumps(params[key], default=str)
    return params


async def write_rows(conn: psycopg.AsyncConnection, rows: list[Row]) -> None:
    async with conn.cursor() as cursor:
        for row in rows:
            await cursor.execute(_SQL[type(row)], _params(row))


async def get_call(conn: psycopg.AsyncConnection, call_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
    call = await cursor.fetchone()
    if call is None:
        return None
    cursor = await conn.execute("SELECT * FROM legs WHERE call_id = %s ORDER BY created_at, id",
                                (call_id,))
    call["legs"] = await cursor.fetchall()
    return call


# A call of an agent: the agent is (or was last) the call's agent, was offered it, was
# connected to it, or dialed it (click-to-dial).
_OF_AGENT = """
    (calls.data->>'agent_id' = %(agent)s
     OR EXISTS (SELECT 1 FROM call_events ev
                WHERE ev.call_id = calls.id
                  AND ev.kind IN ('AgentOffered', 'AgentConnected', 'ClickToDial')
                  AND ev.data->>'agent_id' = %(agent)s))
"""


async def list_calls(conn: psycopg.AsyncConnection, *, state: str | None, since: datetime | None,
                     limit: int, before: datetime | None, agent_id: str | None = None,
                     only_agent: bool = False) -> list[dict[str, Any]]:
    """Calls, newest first; with ``only_agent``, only the calls of ``agent_id`` (none if None)."""
    cursor = await conn.execute(
        f"""
        SELECT * FROM calls
        WHERE (%(state)s::text IS NULL OR state = %(state)s)
          AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)
          AND (%(before)s::timestamptz IS NULL OR started_at < %(before)s)
          AND (NOT %(only_agent)s OR {_OF_AGENT})
        ORDER BY started_at DESC, id
        LIMIT %(limit)s
        """,
        {"state": state, "since": since, "before": before, "limit": limit, "agent": agent_id,
         "only_agent": only_agent},
    )
    return await cursor.fetchall()


async def is_call_of_agent(conn: psycopg.AsyncConnection, call_id: str, agent_id: str) -> bool:
    cursor = await conn.execute(f"SELECT 1 FROM calls WHERE id = %(call)s AND {_OF_AGENT}",
                                {"call": call_id, "agent": agent_id})
    return await cursor.fetchone() is not None


async def call_events(conn: psycopg.AsyncConnection, call_id: str) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT leg_id, at, kind, data FROM call_events WHERE call_id = %s ORDER BY id", (call_id,))
    return await cursor.fetchall()
