"""Webhooks, their deliveries and attempts, and the dispatcher's feed cursor, in Postgres.

Functions take a connection (the caller owns the transaction). The controller uses the async
ones (the API and the dispatcher); the Celery worker, which is synchronous, the ``*_sync`` ones.
Times that decide whether a delivery is due all come from Postgres' clock, so the controller
and the workers never disagree about "now".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from controller.domain.webhooks import Webhook

_WEBHOOK = ("id, description, url, topics, types, queue, agent_id, secret, enabled, consecutive_failures, "
            "suspended_until, created_at, updated_at")

INSERT_WEBHOOK = f"""
INSERT INTO webhooks (id, description, url, topics, types, queue, agent_id, secret, enabled)
VALUES (%(id)s, %(description)s, %(url)s, %(topics)s, %(types)s, %(queue)s, %(agent_id)s, %(secret)s,
        %(enabled)s)
RETURNING {_WEBHOOK}
"""

# A new secret only when one is given; a re-enabled or changed webhook starts with a clean
# breaker (the receiver may be another one now).
UPDATE_WEBHOOK = f"""
UPDATE webhooks
SET description = %(description)s, url = %(url)s, topics = %(topics)s, types = %(types)s,
    queue = %(queue)s, agent_id = %(agent_id)s, enabled = %(enabled)s,
    secret = coalesce(%(secret)s, secret), consecutive_failures = 0, suspended_until = NULL,
    updated_at = now()
WHERE id = %(id)s
RETURNING {_WEBHOOK}
"""

SET_SECRET = f"UPDATE webhooks SET secret = %s, updated_at = now() WHERE id = %s RETURNING {_WEBHOOK}"
GET_WEBHOOK = f"SELECT {_WEBHOOK} FROM webhooks WHERE id = %s"
LIST_WEBHOOKS = f"SELECT {_WEBHOOK} FROM webhooks ORDER BY created_at, id"
ENABLED_WEBHOOKS = f"SELECT {_WEBHOOK} FROM webhooks WHERE enabled ORDER BY created_at, id"
DELETE_WEBHOOK = "DELETE FROM webhooks WHERE id = %s"

_DELIVERY = ("d.id, d.webhook_id, d.feed_epoch, d.seq, d.event_type, d.payload, d.status, d.attempts, "
             "d.round_attempts, d.round_started_at, d.next_attempt_at, d.claimed_until, d.last_status_code, "
             "d.last_latency_ms, d.last_error, d.created_at, d.delivered_at, d.updated_at")
_ATTEMPT_LOG = """
coalesce((SELECT jsonb_agg(jsonb_build_object(
            'attempt', a.attempt, 'at', a.at, 'status_code', a.status_code, 'latency_ms', a.latency_ms,
            'error', a.error, 'outcome', a.outcome) ORDER BY a.attempt)
          FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb) AS attempt_log
"""

# Rows of one dispatcher batch; a (webhook, epoch, seq) already there is skipped, and only the
# rows made here come back (they are the ones to hand to the workers).
INSERT_DELIVERIES = """
INSERT INTO webhook_deliveries (id, webhook_id, feed_epoch, seq, event_type, payload, status)
SELECT u.id, u.webhook_id, %(epoch)s, u.seq, u.event_type, u.payload::jsonb, 'pending'
FROM unnest(%(ids)s::uuid[], %(webhook_ids)s::uuid[], %(seqs)s::bigint[], %(types)s::text[],
            %(payloads)s::text[]) AS u(id, webhook_id, seq, event_type, payload)
ON CONFLICT (webhook_id, feed_epoch, seq) DO NOTHING
RETURNING id
"""

LIST_DELIVERIES = f"""
SELECT {_DELIVERY}, {_ATTEMPT_LOG}
FROM webhook_deliveries d
WHERE d.webhook_id = %(webhook_id)s
  AND (%(status)s::text IS NULL OR d.status = %(status)s)
  AND (%(before)s::timestamptz IS NULL OR d.created_at < %(before)s)
ORDER BY d.created_at DESC, d.seq DESC
LIMIT %(limit)s
"""

GET_DELIVERY = f"""
SELECT {_DELIVERY}, {_ATTEMPT_LOG}
FROM webhook_deliveries d WHERE d.webhook_id = %s AND d.id = %s
"""

# A new round: its own attempts and retry window. A delivery still pending is left alone.
REDELIVER = """
UPDATE webhook_deliveries
SET status = 'pending', round_attempts = 0, round_started_at = now(), next_attempt_at = now(),
    claimed_until = NULL, delivered_at = NULL, updated_at = now()
WHERE webhook_id = %s AND id = %s AND status <> 'pending'
RETURNING id
"""

GET_CURSOR = "SELECT feed_epoch, seq FROM webhook_feed_cursor WHERE cluster = %s"
INIT_CURSOR = """
INSERT INTO webhook_feed_cursor (cluster, seq) VALUES (%s, %s) ON CONFLICT (cluster) DO NOTHING
"""
ADVANCE_CURSOR = """
UPDATE webhook_feed_cursor SET seq = greatest(seq, %(seq)s), updated_at = now()
WHERE cluster = %(cluster)s AND feed_epoch = %(epoch)s
"""
NEW_EPOCH = """
UPDATE webhook_feed_cursor SET feed_epoch = feed_epoch + 1, seq = %(seq)s, updated_at = now()
WHERE cluster = %(cluster)s AND feed_epoch = %(epoch)s
RETURNING feed_epoch, seq
"""

# ---- the worker's side ------------------------------------------------------------------

CLOCK = "SELECT clock_timestamp() AS now"
LOCK_DELIVERY = f"SELECT {_DELIVERY} FROM webhook_deliveries d WHERE d.id = %s FOR UPDATE SKIP LOCKED"
LOCK_CLAIMED = "SELECT id FROM webhook_deliveries WHERE id = %s FOR UPDATE"
LOCK_WEBHOOK = f"SELECT {_WEBHOOK} FROM webhooks WHERE id = %s FOR UPDATE"
CLAIM = """
UPDATE webhook_deliveries
SET attempts = attempts + 1, round_attempts = round_attempts + 1, claimed_until = %(until)s,
    updated_at = %(now)s
WHERE id = %(id)s
RETURNING attempts, round_attempts
"""
POSTPONE = """
UPDATE webhook_deliveries SET next_attempt_at = %(at)s, updated_at = %(now)s WHERE id = %(id)s
"""
GIVE_UP = """
UPDATE webhook_deliveries
SET status = 'failed', last_error = %(error)s, claimed_until = NULL, updated_at = %(now)s
WHERE id = %(id)s
"""
HOLD_PROBE = "UPDATE webhooks SET suspended_until = %(until)s WHERE id = %(id)s"
INSERT_ATTEMPT = """
INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error, outcome)
VALUES (%(id)s, %(attempt)s, %(at)s, %(status_code)s, %(latency_ms)s, %(error)s, %(outcome)s)
ON CONFLICT (delivery_id, attempt) DO NOTHING
"""
FINISH_ATTEMPT = """
UPDATE webhook_deliveries
SET status = %(status)s, next_attempt_at = %(next_attempt_at)s, claimed_until = NULL,
    last_status_code = %(status_code)s, last_latency_ms = %(latency_ms)s, last_error = %(error)s,
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(now)s ELSE delivered_at END, updated_at = %(now)s
WHERE id = %(id)s
"""
RECEIVER_FAILED = """
UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = %s
RETURNING consecutive_failures
"""
SUSPEND = "UPDATE webhooks SET suspended_until = %(until)s WHERE id = %(id)s"
# The receiver answered: its breaker closes and what waited for it goes now.
RECEIVER_OK = """
UPDATE webhooks SET consecutive_failures = 0, suspended_until = NULL
WHERE id = %s AND (consecutive_failures > 0 OR suspended_until IS NOT NULL)
RETURNING id
"""
RELEASE_WAITING = """
UPDATE webhook_deliveries SET next_attempt_at = %(now)s, updated_at = %(now)s
WHERE webhook_id = %(webhook_id)s AND status = 'pending' AND next_attempt_at > %(now)s
RETURNING id
"""
# Pending deliveries whose task should have run by now (lost with a worker or the broker).
OVERDUE = """
SELECT id FROM webhook_deliveries
WHERE status = 'pending' AND next_attempt_at < clock_timestamp() - %(grace)s * interval '1 second'
  AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
ORDER BY next_attempt_at LIMIT %(limit)s
"""
PRUNE_DELIVERIES = """
DELETE FROM webhook_deliveries WHERE id IN (
  SELECT id FROM webhook_deliveries
  WHERE status <> 'pending' AND updated_at < clock_timestamp() - %(days)s * interval '1 day'
  LIMIT %(limit)s)
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: UUID
    webhook_id: UUID
    feed_epoch: int
    seq: int
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    round_attempts: int
    round_started_at: datetime
    next_attempt_at: datetime
    claimed_until: datetime | None
    last_status_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    updated_at: datetime
    attempt_log: list[dict[str, Any]]

    @classmethod
    def of(cls, row: dict[str, Any]) -> Delivery:
        return cls(**{"attempt_log": [], **row})


def webhook_of(row: dict[str, Any]) -> Webhook:
    values = dict(row)
    values["topics"] = tuple(values["topics"] or ())
    values["types"] = tuple(values["types"] or ())
    return Webhook(**values)


async def _webhook(conn: psycopg.AsyncConnection, query: str, params: Any) -> Webhook | None:
    row = await (await conn.execute(query, params)).fetchone()
    return None if row is None else webhook_of(row)


async def insert_webhook(conn: psycopg.AsyncConnection, **values: Any) -> Webhook:
    webhook = await _webhook(conn, INSERT_WEBHOOK, values)
    assert webhook is not None
    return webhook


async def update_webhook(conn: psycopg.AsyncConnection, **values: Any) -> Webhook | None:
    return await _webhook(conn, UPDATE_WEBHOOK, values)


async def set_secret(conn: psycopg.AsyncConnection, webhook_id: UUID, secret: str) -> Webhook | None:
    return await _webhook(conn, SET_SECRET, (secret, webhook_id))


async def get_webhook(conn: psycopg.AsyncConnection, webhook_id: UUID) -> Webhook | None:
    return await _webhook(conn, GET_WEBHOOK, (webhook_id,))


async def list_webhooks(conn: psycopg.AsyncConnection, enabled_only: bool = False) -> list[Webhook]:
    cursor = await conn.execute(ENABLED_WEBHOOKS if enabled_only else LIST_WEBHOOKS)
    return [webhook_of(row) for row in await cursor.fetchall()]


async def delete_webhook(conn: psycopg.AsyncConnection, webhook_id: UUID) -> bool:
    return (await conn.execute(DELETE_WEBHOOK, (webhook_id,))).rowcount > 0


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: UUID
    webhook_id: UUID
    seq: int
    event_type: str
    payload: dict[str, Any]


async def insert_deliveries(conn: psycopg.AsyncConnection, epoch: int, rows: list[NewDelivery]) -> list[UUID]:
    if not rows:
        return []
    cursor = await conn.execute(INSERT_DELIVERIES, {
        "epoch": epoch, "ids": [r.id for r in rows], "webhook_ids": [r.webhook_id for r in rows],
        "seqs": [r.seq for r in rows], "types": [r.event_type for r in rows],
        "payloads": [json.dumps(r.payload, default=str) for r in rows]})
    return [row["id"] for row in await cursor.fetchall()]


async def list_deliveries(conn: psycopg.AsyncConnection, webhook_id: UUID, status: str | None,
                          before: datetime | None, limit: int) -> list[Delivery]:
    cursor = await conn.execute(LIST_DELIVERIES, {"webhook_id": webhook_id, "status": status,
                                                  "before": before, "limit": limit})
    return [Delivery.of(row) for row in await cursor.fetchall()]


async def get_delivery(conn: psycopg.AsyncConnection, webhook_id: UUID, delivery_id: UUID) -> Delivery | None:
    row = await (await conn.execute(GET_DELIVERY, (webhook_id, delivery_id))).fetchone()
    return None if row is None else Delivery.of(row)


async def redeliver(conn: psycopg.AsyncConnection, webhook_id: UUID, delivery_id: UUID) -> bool:
    return (await conn.execute(REDELIVER, (webhook_id, delivery_id))).rowcount > 0


async def get_cursor(conn: psycopg.AsyncConnection, cluster: str) -> tuple[int, int] | None:
    row = await (await conn.execute(GET_CURSOR, (cluster,))).fetchone()
    return None if row is None else (row["feed_epoch"], row["seq"])


async def init_cursor(conn: psycopg.AsyncConnection, cluster: str, seq: int) -> tuple[int, int]:
    await conn.execute(INIT_CURSOR, (cluster, seq))
    found = await get_cursor(conn, cluster)
    assert found is not None
    return found


async def advance_cursor(conn: psycopg.AsyncConnection, cluster: str, epoch: int, seq: int) -> None:
    await conn.execute(ADVANCE_CURSOR, {"cluster": cluster, "epoch": epoch, "seq": seq})


async def new_epoch(conn: psycopg.AsyncConnection, cluster: str, epoch: int, seq: int) -> tuple[int, int]:
    row = await (await conn.execute(NEW_EPOCH, {"cluster": cluster, "epoch": epoch, "seq": seq})).fetchone()
    if row is None:  # another dispatcher moved it first
        found = await get_cursor(conn, cluster)
        assert found is not None
        return found
    return row["feed_epoch"], row["seq"]


# ---- the worker's side (synchronous connections) ----------------------------------------


def clock_sync(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute(CLOCK).fetchone()
    assert row is not None
    return row["now"]


def lock_delivery_sync(conn: psycopg.Connection[Any], delivery_id: UUID) -> Delivery | None:
    row = conn.execute(LOCK_DELIVERY, (delivery_id,)).fetchone()
    return None if row is None else Delivery.of(row)


def lock_claimed_sync(conn: psycopg.Connection[Any], delivery_id: UUID) -> bool:
    """Lock a delivery this worker claimed; False when it was deleted meanwhile (its webhook was)."""
    return conn.execute(LOCK_CLAIMED, (delivery_id,)).fetchone() is not None


def lock_webhook_sync(conn: psycopg.Connection[Any], webhook_id: UUID) -> Webhook | None:
    row = conn.execute(LOCK_WEBHOOK, (webhook_id,)).fetchone()
    return None if row is None else webhook_of(row)


def give_up_sync(conn: psycopg.Connection[Any], delivery_id: UUID, error: str, now: datetime) -> None:
    conn.execute(GIVE_UP, {"id": delivery_id, "error": error, "now": now})


def postpone_sync(conn: psycopg.Connection[Any], delivery_id: UUID, at: datetime, now: datetime) -> None:
    conn.execute(POSTPONE, {"id": delivery_id, "at": at, "now": now})


def hold_probe_sync(conn: psycopg.Connection[Any], webhook_id: UUID, until: datetime) -> None:
    conn.execute(HOLD_PROBE, {"id": webhook_id, "until": until})


def claim_sync(conn: psycopg.Connection[Any], delivery_id: UUID, until: datetime,
               now: datetime) -> tuple[int, int]:
    row = conn.execute(CLAIM, {"id": delivery_id, "until": until, "now": now}).fetchone()
    assert row is not None
    return row["attempts"], row["round_attempts"]


def record_attempt_sync(conn: psycopg.Connection[Any], *, delivery_id: UUID, attempt: int, at: datetime,
                        now: datetime, status_code: int | None, latency_ms: float | None, error: str | None,
                        outcome: str, next_attempt_at: datetime) -> None:
    status = {"delivered": "delivered", "failed": "failed"}.get(outcome, "pending")
    conn.execute(INSERT_ATTEMPT, {"id": delivery_id, "attempt": attempt, "at": at, "status_code": status_code,
                                  "latency_ms": latency_ms, "error": error, "outcome": outcome})
    conn.execute(FINISH_ATTEMPT, {"id": delivery_id, "status": status, "next_attempt_at": next_attempt_at,
                                  "status_code": status_code, "latency_ms": latency_ms, "error": error,
                                  "now": now})


def receiver_ok_sync(conn: psycopg.Connection[Any], webhook_id: UUID) -> bool:
    """Close the webhook's breaker; True when it had failures (so waiting deliveries may go)."""
    return conn.execute(RECEIVER_OK, (webhook_id,)).fetchone() is not None


def release_waiting_sync(conn: psycopg.Connection[Any], webhook_id: UUID, now: datetime) -> list[UUID]:
    rows = conn.execute(RELEASE_WAITING, {"webhook_id": webhook_id, "now": now}).fetchall()
    return [row["id"] for row in rows]


def receiver_failed_sync(conn: psycopg.Connection[Any], webhook_id: UUID) -> int:
    row = conn.execute(RECEIVER_FAILED, (webhook_id,)).fetchone()
    return 0 if row is None else int(row["consecutive_failures"])


def suspend_sync(conn: psycopg.Connection[Any], webhook_id: UUID, until: datetime) -> None:
    conn.execute(SUSPEND, {"id": webhook_id, "until": until})


def overdue_sync(conn: psycopg.Connection[Any], grace_s: float, limit: int) -> list[UUID]:
    rows = conn.execute(OVERDUE, {"grace": grace_s, "limit": limit}).fetchall()
    return [row["id"] for row in rows]


def prune_deliveries_sync(conn: psycopg.Connection[Any], older_than_days: int, limit: int) -> int:
    return conn.execute(PRUNE_DELIVERIES, {"days": older_than_days, "limit": limit}).rowcount
