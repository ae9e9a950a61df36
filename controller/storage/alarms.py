"""Alarm rules and alarms in Postgres. Functions take a connection (the caller owns the
transaction) and return plain records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from controller.domain.alarms import Alarm


@dataclass(frozen=True, slots=True)
class RuleRow:
    scope: str
    name: str
    rule: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    state: str = "active"  # active, cleared or all
    queue: str | None = None
    kind: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    limit: int = 100


_RULE = "scope, name, rule, updated_at"
PUT_RULE = f"""
INSERT INTO alarm_rules (scope, name, rule) VALUES (%(scope)s, %(name)s, %(rule)s)
ON CONFLICT (scope, name) DO UPDATE SET rule = EXCLUDED.rule, updated_at = now()
RETURNING {_RULE}
"""
GET_RULE = f"SELECT {_RULE} FROM alarm_rules WHERE scope = %s AND name = %s"
LIST_RULES = f"SELECT {_RULE} FROM alarm_rules ORDER BY scope, name"
DELETE_RULE = "DELETE FROM alarm_rules WHERE scope = %s AND name = %s"

_ALARM = ("id, kind, subject, queue, severity, message, value, threshold, raised_at, cleared_at, "
          "clear_value, clear_reason, acknowledged_at, acknowledged_by")
# The partial unique index keeps one active alarm per kind and subject: a second raise of the
# same alarm (two leaders for a moment) inserts nothing.
RAISE = f"""
INSERT INTO alarms (id, kind, subject, queue, severity, message, value, threshold, raised_at)
VALUES (%(id)s, %(kind)s, %(subject)s, %(queue)s, %(severity)s, %(message)s, %(value)s, %(threshold)s,
        %(raised_at)s)
ON CONFLICT (kind, subject) WHERE cleared_at IS NULL DO NOTHING
RETURNING {_ALARM}
"""
CLEAR = f"""
UPDATE alarms SET cleared_at = %(at)s, clear_value = %(value)s, clear_reason = %(reason)s
WHERE kind = %(kind)s AND subject = %(subject)s AND cleared_at IS NULL
RETURNING {_ALARM}
"""
ACTIVE = f"""
SELECT {_ALARM} FROM alarms
WHERE cleared_at IS NULL AND kind = ANY(%(kinds)s)
  AND (%(prefix)s::text IS NULL OR starts_with(subject, %(prefix)s))
"""
LIST = f"""
SELECT {_ALARM} FROM alarms
WHERE (%(state)s = 'all' OR (%(state)s = 'active') = (cleared_at IS NULL))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(since)s::timestamptz IS NULL OR raised_at >= %(since)s)
  AND (%(before)s::timestamptz IS NULL OR raised_at < %(before)s)
ORDER BY raised_at DESC, id
LIMIT %(limit)s
"""
GET = f"SELECT {_ALARM} FROM alarms WHERE id = %s"
ACKNOWLEDGE = f"""
UPDATE alarms SET acknowledged_at = now(), acknowledged_by = %(by)s
WHERE id = %(id)s AND acknowledged_at IS NULL
RETURNING {_ALARM}
"""


async def put_rule(conn: psycopg.AsyncConnection, scope: str, name: str, rule: dict[str, Any]) -> RuleRow:
    row = await (await conn.execute(PUT_RULE, {"scope": scope, "name": name, "rule": Jsonb(rule)})).fetchone()
    assert row is not None
    return RuleRow(**row)


async def get_rule(conn: psycopg.AsyncConnection, scope: str, name: str) -> RuleRow | None:
    row = await (await conn.execute(GET_RULE, (scope, name))).fetchone()
    return None if row is None else RuleRow(**row)


async def list_rules(conn: psycopg.AsyncConnection) -> list[RuleRow]:
    return [RuleRow(**row) for row in await (await conn.execute(LIST_RULES)).fetchall()]


async def delete_rule(conn: psycopg.AsyncConnection, scope: str, name: str) -> bool:
    return (await conn.execute(DELETE_RULE, (scope, name))).rowcount > 0


async def _alarm(conn: psycopg.AsyncConnection, query: str, params: Any) -> Alarm | None:
    row = await (await conn.execute(query, params)).fetchone()
    return None if row is None else Alarm(**row)


async def raise_alarm(conn: psycopg.AsyncConnection, **values: Any) -> Alarm | None:
    """The new alarm, or None when the same alarm is active already."""
    return await _alarm(conn, RAISE, values)


async def clear_alarm(conn: psycopg.AsyncConnection, *, kind: str, subject: str, at: datetime,
                      value: float | None, reason: str) -> Alarm | None:
    """The cleared alarm, or None when it was not active."""
    return await _alarm(conn, CLEAR, {"kind": kind, "subject": subject, "at": at, "value": value,
                                      "reason": reason})


async def active_alarms(conn: psycopg.AsyncConnection, kinds: list[str],
                        subject_prefix: str | None) -> list[Alarm]:
    cursor = await conn.execute(ACTIVE, {"kinds": kinds, "prefix": subject_prefix})
    return [Alarm(**row) for row in await cursor.fetchall()]


async def list_alarms(conn: psycopg.AsyncConnection, filters: AlarmFilter) -> list[Alarm]:
    cursor = await conn.execute(LIST, {
        "state": filters.state, "queue": filters.queue, "kind": filters.kind, "since": filters.since,
        "before": filters.before, "limit": filters.limit})
    return [Alarm(**row) for row in await cursor.fetchall()]


async def get_alarm(conn: psycopg.AsyncConnection, alarm_id: UUID) -> Alarm | None:
    return await _alarm(conn, GET, (alarm_id,))


async def acknowledge(conn: psycopg.AsyncConnection, alarm_id: UUID, by: str) -> Alarm | None:
    """The alarm, acknowledged now; None when it was acknowledged before (or does not exist)."""
    return await _alarm(conn, ACKNOWLEDGE, {"id": alarm_id, "by": by})
