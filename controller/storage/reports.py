"""What the reports read: calls, their queue events, the agent state log, and one number's
interactions. Postgres filters by period, queue, agent, campaign and number; the figures are
made by engines/reports.py.

A call's *outcome* in the call detail records (OUTCOME below), in this order: ``in_progress``
(not ended), ``answered`` (an agent was connected, or a click-to-dial's customer answered),
``callback`` / ``voicemail`` (left a queue for one), ``overflowed`` (a queue sent it on and it
ended without an agent), ``abandoned`` (waited in a queue and hung up), ``completed`` (answered
by the IVR and ended there), ``unanswered``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

# The agent state rows of a call's wrap-up may come after the period's end; this much later is read.
WRAP_UP_SLACK = timedelta(days=1)

# Kinds of call events the queue stays are made of (engines/reports.py queue_entries).
QUEUE_EVENT_KINDS = ["QueueEntered", "AgentConnected", "QueueOverflowed", "QueueMoved", "CallbackRequested",
                     "QueueExited", "CallHeld", "CallResumed", "TransferStarted", "TransferCompleted"]

OUTCOME = """
CASE
    WHEN c.state <> 'ended' THEN 'in_progress'
    WHEN EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id
                 AND e.kind IN ('AgentConnected', 'CustomerAnswered')) THEN 'answered'
    WHEN c.data->>'queue_exit' = 'callback' THEN 'callback'
    WHEN c.data->>'queue_exit' = 'voicemail'
         OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'VoicemailStored')
         THEN 'voicemail'
    WHEN c.data ? 'queue' AND (c.data ? 'queue_overflow'
         OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'QueueOverflowed'))
         THEN 'overflowed'
    WHEN c.data ? 'queue' THEN 'abandoned'
    WHEN c.answered_at IS NOT NULL THEN 'completed'
    ELSE 'unanswered'
END
"""

OUTCOMES = ("in_progress", "answered", "callback", "voicemail", "overflowed", "abandoned", "completed",
            "unanswered")

# Calls in a queue: it is (or was last) the call's queue, or the call entered it.
_IN_QUEUES = """
    (c.data->>'queue' = ANY(%(queues)s)
     OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'QueueEntered'
                AND e.data->>'queue' = ANY(%(queues)s)))
"""

_OF_AGENT = """
    (c.data->>'agent_id' = %(agent)s
     OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id
                AND e.kind IN ('AgentConnected', 'ClickToDial') AND e.data->>'agent_id' = %(agent)s))
"""

CDR = f"""
SELECT * FROM (
    SELECT c.id, c.direction, c.state, c.caller_number, c.caller_name, c.dialed, c.started_at,
           c.answered_at, c.ended_at, c.hangup_cause_text, c.data->>'queue' AS queue,
           c.data->>'agent_id' AS agent_id, c.data->>'callback_of' AS callback_of, {OUTCOME} AS outcome
    FROM calls c
    WHERE c.started_at >= %(since)s AND c.started_at < %(until)s
      AND (%(queues)s::text[] IS NULL OR {_IN_QUEUES})
      AND (%(agent)s::text IS NULL OR {_OF_AGENT})
      AND (%(number)s::text IS NULL OR c.caller_number = %(number)s OR c.dialed = %(number)s)
      AND (%(campaign)s::text IS NULL OR EXISTS (
               SELECT 1 FROM campaign_attempts a WHERE a.call_id = c.id AND a.campaign_id = %(campaign)s))
      AND (%(after_at)s::timestamptz IS NULL OR (c.started_at, c.id) < (%(after_at)s, %(after_id)s))
) cdr
WHERE %(outcome)s::text IS NULL OR outcome = %(outcome)s
ORDER BY started_at DESC, id DESC
LIMIT %(limit)s
"""


async def cdr_page(conn: psycopg.AsyncConnection, *, since: datetime, until: datetime,
                   queues: Sequence[str] | None, agent: str | None, number: str | None,
                   campaign: str | None, outcome: str | None, after: tuple[datetime, str] | None,
                   limit: int) -> list[dict[str, Any]]:
    """Calls that started in ``[since, until)``, newest first, after the keyset ``after``."""
    cursor = await conn.execute(CDR, {
        "since": since, "until": until, "queues": list(queues) if queues is not None else None,
        "agent": agent, "number": number, "campaign": campaign, "outcome": outcome,
        "after_at": after[0] if after else None, "after_id": after[1] if after else None, "limit": limit})
    return await cursor.fetchall()


async def legs_of(conn: psycopg.AsyncConnection, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, call_id, role, channel_name, created_at, answered_at, ended_at FROM legs "
        "WHERE call_id = ANY(%s) ORDER BY call_id, created_at, id", (list(call_ids),))
    return await cursor.fetchall()


async def dispositions_of(conn: psycopg.AsyncConnection, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT call_id, code, notes, follow_up, agent_id, updated_at FROM call_dispositions "
        "WHERE call_id = ANY(%s)", (list(call_ids),))
    return await cursor.fetchall()


async def recordings_of(conn: psycopg.AsyncConnection, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, call_id, state, started_at, ended_at, duration_s FROM recordings "
        "WHERE call_id = ANY(%s) AND deleted_at IS NULL ORDER BY started_at, id", (list(call_ids),))
    return await cursor.fetchall()


async def queue_events_of(conn: psycopg.AsyncConnection, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The events queue stays are made of, in order, with the agent leg's end for connections.
    Only the data fields the stays read are taken (a whole jsonb per row costs more to decode than
    the rest of the report)."""
    cursor = await conn.execute(
        """
        SELECT ev.call_id, ev.at, ev.kind, ev.data->>'queue' AS queue, ev.data->>'from_queue' AS from_queue,
               ev.data->>'agent_id' AS agent_id, l.ended_at AS leg_ended_at
        FROM call_events ev
        LEFT JOIN legs l ON l.id = ev.leg_id AND ev.kind = 'AgentConnected'
        WHERE ev.call_id = ANY(%(calls)s) AND ev.kind = ANY(%(kinds)s)
        ORDER BY ev.call_id, ev.at, ev.id
        """, {"calls": list(call_ids), "kinds": QUEUE_EVENT_KINDS})
    return await cursor.fetchall()


async def wrap_ups_of(conn: psycopg.AsyncConnection, call_ids: Sequence[str], since: datetime,
                      until: datetime) -> dict[str, float]:
    """Each call's wrap-up: the agent's ``wrap_up`` row right after its ``on_call`` row for the
    call, until the agent's next state (as docs/staffing.md measures it)."""
    cursor = await conn.execute(
        """
        WITH agents AS (
            SELECT DISTINCT agent_id FROM agent_state_log
            WHERE call_id = ANY(%(calls)s) AND at >= %(since)s AND at < %(until)s
        ),
        states AS (
            SELECT s.state, s.at, lag(s.state) OVER agent AS previous_state,
                   lag(s.call_id) OVER agent AS previous_call, lead(s.at) OVER agent AS next_at
            FROM agent_state_log s
            WHERE s.agent_id IN (SELECT agent_id FROM agents) AND s.at >= %(since)s AND s.at < %(until)s
            WINDOW agent AS (PARTITION BY s.agent_id ORDER BY s.at, s.id)
        )
        SELECT previous_call AS call_id, sum(extract(epoch FROM next_at - at))::float8 AS wrap_s
        FROM states
        WHERE state = 'wrap_up' AND previous_state = 'on_call' AND previous_call = ANY(%(calls)s)
          AND next_at IS NOT NULL
        GROUP BY previous_call
        """, {"calls": list(call_ids), "since": since, "until": until + WRAP_UP_SLACK})
    return {row["call_id"]: row["wrap_s"] for row in await cursor.fetchall()}


async def queued_calls(conn: psycopg.AsyncConnection, since: datetime, until: datetime,
                       queues: Sequence[str] | None) -> list[dict[str, Any]]:
    """Calls that entered a queue (of ``queues``, or any) in ``[since, until)``; and calls recorded
    before the ``QueueEntered`` event existed whose last queue is one of them and that started in
    the period (their stay is taken to begin when the call was answered, else when it started).
    Callback calls are the same caller's demand, not offered again: left out."""
    cursor = await conn.execute(
        """
        WITH entered AS (
            SELECT DISTINCT ev.call_id FROM call_events ev
            WHERE ev.kind = 'QueueEntered' AND ev.at >= %(since)s AND ev.at < %(until)s
              AND (%(queues)s::text[] IS NULL OR ev.data->>'queue' = ANY(%(queues)s))
        ),
        older AS (
            SELECT c.id AS call_id FROM calls c
            WHERE c.started_at >= %(since)s AND c.started_at < %(until)s AND c.data ? 'queue'
              AND (%(queues)s::text[] IS NULL OR c.data->>'queue' = ANY(%(queues)s))
              AND NOT EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'QueueEntered')
        )
        SELECT c.id, c.started_at, c.answered_at, c.ended_at, c.data->>'queue' AS queue
        FROM calls c
        WHERE c.id IN (SELECT call_id FROM entered UNION SELECT call_id FROM older)
          AND NOT c.data ? 'callback_of'
        """, {"since": since, "until": until, "queues": list(queues) if queues is not None else None})
    return await cursor.fetchall()


async def agent_states(conn: psycopg.AsyncConnection, since: datetime, until: datetime,
                       agents: Sequence[str] | None) -> list[dict[str, Any]]:
    """Agent state rows in ``[since, until)``, and each agent's last row before ``since`` (the
    state it was in when the period began), in log order."""
    cursor = await conn.execute(
        """
        SELECT agent_id, at, state, reason, call_id FROM (
            SELECT id, agent_id, at, state, reason, call_id FROM agent_state_log
            WHERE at >= %(since)s AND at < %(until)s
              AND (%(agents)s::text[] IS NULL OR agent_id = ANY(%(agents)s))
            UNION ALL
            SELECT * FROM (
                SELECT DISTINCT ON (agent_id) id, agent_id, at, state, reason, call_id FROM agent_state_log
                WHERE at < %(since)s AND (%(agents)s::text[] IS NULL OR agent_id = ANY(%(agents)s))
                ORDER BY agent_id, at DESC, id DESC
            ) before
        ) rows
        ORDER BY agent_id, at, id
        """, {"since": since, "until": until, "agents": list(agents) if agents is not None else None})
    return await cursor.fetchall()


async def campaign_attempts(conn: psycopg.AsyncConnection, since: datetime, until: datetime,
                            campaigns: Sequence[str] | None,
                            queues: Sequence[str] | None) -> list[dict[str, Any]]:
    """Campaign attempts started in ``[since, until)`` (``cancelled`` ones count as no attempt),
    with the talk of those an agent took: their call's answered to ended time."""
    cursor = await conn.execute(
        """
        SELECT a.campaign_id, a.contact_id, a.started_at, a.outcome, a.disposition, a.agent_id,
               CASE WHEN a.outcome IN ('answered', 'callback') AND c.ended_at IS NOT NULL
                    THEN extract(epoch FROM c.ended_at - coalesce(c.answered_at, c.started_at))::float8
               END AS talk_s
        FROM campaign_attempts a LEFT JOIN calls c ON c.id = a.call_id
        WHERE a.started_at >= %(since)s AND a.started_at < %(until)s
          AND a.outcome IS DISTINCT FROM 'cancelled'
          AND (%(campaigns)s::text[] IS NULL OR a.campaign_id = ANY(%(campaigns)s))
          AND (%(queues)s::text[] IS NULL OR EXISTS (
                   SELECT 1 FROM campaigns k WHERE k.id = a.campaign_id AND k.queue = ANY(%(queues)s)))
        """, {"since": since, "until": until, "campaigns": list(campaigns) if campaigns is not None else None,
              "queues": list(queues) if queues is not None else None})
    return await cursor.fetchall()


async def open_items(conn: psycopg.AsyncConnection, *, agent: str | None, queues: Sequence[str] | None,
                     after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    """Calls whose disposition asks for a follow-up (``follow_up``), oldest first. A newer
    disposition without it replaces the row (one per call), which is what closes an item."""
    cursor = await conn.execute(
        """
        SELECT d.call_id, d.code, d.notes, d.agent_id, d.created_at, d.updated_at, c.direction,
               c.started_at, c.caller_number, c.dialed, c.data->>'queue' AS queue
        FROM call_dispositions d LEFT JOIN calls c ON c.id = d.call_id
        WHERE d.follow_up
          AND (%(agent)s::text IS NULL OR d.agent_id = %(agent)s)
          AND (%(queues)s::text[] IS NULL OR c.data->>'queue' = ANY(%(queues)s))
          AND (%(after_at)s::timestamptz IS NULL
               OR (d.updated_at, d.call_id) > (%(after_at)s, %(after_id)s))
        ORDER BY d.updated_at, d.call_id
        LIMIT %(limit)s
        """, {"agent": agent, "queues": list(queues) if queues is not None else None,
              "after_at": after[0] if after else None, "after_id": after[1] if after else None,
              "limit": limit})
    return await cursor.fetchall()


async def history(conn: psycopg.AsyncConnection, number: str, since: datetime | None, until: datetime | None,
                  queues: Sequence[str] | None, limit: int) -> list[dict[str, Any]]:
    """Everything about one number, newest first: its calls (with disposition and recordings),
    voicemails and campaign attempts."""
    params = {"number": number, "since": since, "until": until, "limit": limit,
              "queues": list(queues) if queues is not None else None}
    cursor = await conn.execute(
        f"""
        SELECT * FROM (
            SELECT c.started_at AS at, 'call' AS kind, c.id AS call_id, c.direction, c.caller_number,
                   c.dialed, c.data->>'queue' AS queue, c.data->>'agent_id' AS agent_id, {OUTCOME} AS outcome,
                   c.answered_at, c.ended_at, NULL::text AS detail_id, NULL::text AS campaign_id,
                   NULL::double precision AS duration_s
            FROM calls c
            WHERE (c.caller_number = %(number)s OR c.dialed = %(number)s)
              AND (%(queues)s::text[] IS NULL OR {_IN_QUEUES})
            UNION ALL
            SELECT v.created_at, 'voicemail', v.call_id, NULL, v.caller_number, NULL, NULL, NULL, NULL,
                   NULL, NULL, v.id::text, NULL, v.duration_s
            FROM voicemails v
            WHERE v.caller_number = %(number)s AND v.deleted_at IS NULL AND %(queues)s::text[] IS NULL
            UNION ALL
            SELECT a.started_at, 'campaign_attempt', a.call_id, 'outbound', NULL, a.number, NULL, a.agent_id,
                   a.outcome, NULL, a.ended_at, a.id::text, a.campaign_id, NULL
            FROM campaign_attempts a
            WHERE a.number = %(number)s AND %(queues)s::text[] IS NULL
        ) items
        WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
        ORDER BY at DESC, kind, call_id
        LIMIT %(limit)s
        """, params)
    return await cursor.fetchall()
