"""Campaigns in Postgres: campaigns, contacts, attempts, contact imports and do-not-call numbers.

Functions take a connection (the caller owns the transaction) and return plain records. The
queries the hopper depends on are here, in full, so they can be read: which contacts are due
(``DUE_CONTACTS``, locked with SKIP LOCKED so two feeders never pick one contact twice), which
numbers are blocked (``BLOCKED_NUMBERS``: global or the campaign's own list).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from controller.domain.campaigns import ContactDue, ContactState

# ---- campaigns ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: str
    name: str
    state: str
    mode: str
    ratio: float | None
    queue: str
    config: dict[str, Any]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> CampaignRecord:
        return cls(row["id"], row["name"], row["state"], row["mode"], row["ratio"], row["queue"],
                   dict(row["config"]), row["created_at"], row["updated_at"], row["started_at"],
                   row["stopped_at"])


_CAMPAIGN = "id, name, state, mode, ratio, queue, config, created_at, updated_at, started_at, stopped_at"

INSERT_CAMPAIGN = f"""
INSERT INTO campaigns (id, name, mode, ratio, queue, config)
VALUES (%(id)s, %(name)s, %(mode)s, %(ratio)s, %(queue)s, %(config)s)
ON CONFLICT (id) DO NOTHING
RETURNING {_CAMPAIGN}
"""

UPDATE_CAMPAIGN = f"""
UPDATE campaigns
SET name = %(name)s, mode = %(mode)s, ratio = %(ratio)s, queue = %(queue)s, config = %(config)s,
    updated_at = now()
WHERE id = %(id)s
RETURNING {_CAMPAIGN}
"""

GET_CAMPAIGN = f"SELECT {_CAMPAIGN} FROM campaigns WHERE id = %s"
LOCK_CAMPAIGN = f"SELECT {_CAMPAIGN} FROM campaigns WHERE id = %s FOR UPDATE"
LIST_CAMPAIGNS = f"SELECT {_CAMPAIGN} FROM campaigns ORDER BY id"
RUNNING_CAMPAIGNS = f"SELECT {_CAMPAIGN} FROM campaigns WHERE state = 'running' ORDER BY id"
# Campaigns that may have contacts sitting in the hopper.
CAMPAIGNS_WITH_QUEUED = f"""
SELECT {_CAMPAIGN} FROM campaigns c
WHERE EXISTS (SELECT 1 FROM campaign_contacts k WHERE k.campaign_id = c.id AND k.state = 'queued')
   OR c.state = 'running'
ORDER BY id
"""

SET_STATE = f"""
UPDATE campaigns
SET state = %(state)s, updated_at = now(),
    started_at = CASE WHEN %(state)s = 'running' THEN now() ELSE started_at END,
    stopped_at = CASE WHEN %(state)s = 'stopped' THEN now() ELSE stopped_at END
WHERE id = %(id)s
RETURNING {_CAMPAIGN}
"""

DELETE_CAMPAIGN = "DELETE FROM campaigns WHERE id = %s"

CONTACT_COUNTS = """
SELECT state, count(*) AS n FROM campaign_contacts WHERE campaign_id = %s GROUP BY state
"""


async def insert_campaign(conn: psycopg.AsyncConnection, record: CampaignRecord) -> CampaignRecord | None:
    """The new campaign; None if the id is taken."""
    cursor = await conn.execute(INSERT_CAMPAIGN, _campaign_params(record))
    row = await cursor.fetchone()
    return None if row is None else CampaignRecord.of(row)


async def update_campaign(conn: psycopg.AsyncConnection, record: CampaignRecord) -> CampaignRecord | None:
    cursor = await conn.execute(UPDATE_CAMPAIGN, _campaign_params(record))
    row = await cursor.fetchone()
    return None if row is None else CampaignRecord.of(row)


def _campaign_params(record: CampaignRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "mode": record.mode, "ratio": record.ratio,
            "queue": record.queue, "config": Jsonb(record.config)}


async def get_campaign(conn: psycopg.AsyncConnection, campaign_id: str, *,
                       lock: bool = False) -> CampaignRecord | None:
    cursor = await conn.execute(LOCK_CAMPAIGN if lock else GET_CAMPAIGN, (campaign_id,))
    row = await cursor.fetchone()
    return None if row is None else CampaignRecord.of(row)


async def list_campaigns(conn: psycopg.AsyncConnection) -> list[CampaignRecord]:
    cursor = await conn.execute(LIST_CAMPAIGNS)
    return [CampaignRecord.of(row) for row in await cursor.fetchall()]


async def running_campaigns(conn: psycopg.AsyncConnection) -> list[CampaignRecord]:
    cursor = await conn.execute(RUNNING_CAMPAIGNS)
    return [CampaignRecord.of(row) for row in await cursor.fetchall()]


async def campaigns_with_hopper(conn: psycopg.AsyncConnection) -> list[CampaignRecord]:
    cursor = await conn.execute(CAMPAIGNS_WITH_QUEUED)
    return [CampaignRecord.of(row) for row in await cursor.fetchall()]


async def set_state(conn: psycopg.AsyncConnection, campaign_id: str, state: str) -> CampaignRecord:
    cursor = await conn.execute(SET_STATE, {"id": campaign_id, "state": state})
    row = await cursor.fetchone()
    assert row is not None  # the caller holds the row locked
    return CampaignRecord.of(row)


async def delete_campaign(conn: psycopg.AsyncConnection, campaign_id: str) -> None:
    await conn.execute(DELETE_CAMPAIGN, (campaign_id,))


async def contact_counts(conn: psycopg.AsyncConnection, campaign_id: str) -> dict[str, int]:
    cursor = await conn.execute(CONTACT_COUNTS, (campaign_id,))
    counts = {state.value: 0 for state in ContactState}
    for row in await cursor.fetchall():
        counts[row["state"]] = row["n"]
    return counts


# ---- contacts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: int
    campaign_id: str
    number: str
    timezones: tuple[str, ...]
    timezone_source: str
    area_key: str
    fields: dict[str, str]
    state: str
    attempts: int
    outcome_counts: dict[str, int]
    last_outcome: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    callback_at: datetime | None
    callback_agent_id: str | None
    queued_at: datetime | None
    import_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> ContactRecord:
        return cls(row["id"], row["campaign_id"], row["number"], tuple(row["timezones"]),
                   row["timezone_source"], row["area_key"], dict(row["fields"]), row["state"],
                   row["attempts"], dict(row["outcome_counts"]), row["last_outcome"],
                   row["last_attempt_at"], row["next_attempt_at"], row["callback_at"],
                   row["callback_agent_id"], row["queued_at"], row["import_id"], row["created_at"],
                   row["updated_at"])

    def due(self) -> ContactDue:
        return ContactDue(id=self.id, number=self.number, timezones=self.timezones,
                          state=ContactState(self.state), next_attempt_at=self.next_attempt_at,
                          attempts=self.attempts, callback_at=self.callback_at,
                          callback_agent_id=self.callback_agent_id)


_CONTACT = ("id, campaign_id, number, timezones, timezone_source, area_key, fields, state, attempts, "
            "outcome_counts, last_outcome, last_attempt_at, next_attempt_at, callback_at, "
            "callback_agent_id, queued_at, import_id, created_at, updated_at")


@dataclass(frozen=True, slots=True)
class NewContact:
    number: str
    timezones: tuple[str, ...]
    timezone_source: str  # column | number | campaign
    area_key: str
    fields: dict[str, str]


# A duplicate number merges into the contact already there: the later row's non-empty lead
# fields win, and a zone given in a column replaces one guessed from the number. Its dialing
# state is left alone (a contact already reached is not called again because it was re-listed).
# ``xmax = 0`` is true only for a row this statement inserted.
UPSERT_CONTACT = """
INSERT INTO campaign_contacts (campaign_id, number, timezones, timezone_source, area_key, fields, import_id)
VALUES (%(campaign_id)s, %(number)s, %(timezones)s, %(timezone_source)s, %(area_key)s, %(fields)s,
        %(import_id)s)
ON CONFLICT (campaign_id, number) DO UPDATE
SET fields = campaign_contacts.fields || %(merge_fields)s,
    timezones = CASE WHEN excluded.timezone_source = 'column' THEN excluded.timezones
                     ELSE campaign_contacts.timezones END,
    timezone_source = CASE WHEN excluded.timezone_source = 'column' THEN 'column'
                           ELSE campaign_contacts.timezone_source END,
    updated_at = now()
RETURNING (xmax = 0) AS inserted
"""


async def upsert_contacts(conn: psycopg.AsyncConnection, campaign_id: str, import_id: UUID | None,
                          contacts: Sequence[NewContact]) -> tuple[int, int]:
    """Insert or merge ``contacts``; (inserted, merged)."""
    if not contacts:
        return 0, 0
    params = [{"campaign_id": campaign_id, "number": c.number, "timezones": list(c.timezones),
               "timezone_source": c.timezone_source, "area_key": c.area_key,
               "fields": Jsonb(c.fields), "import_id": import_id,
               "merge_fields": Jsonb({k: v for k, v in c.fields.items() if v != ""})}
              for c in contacts]
    inserted = merged = 0
    async with conn.cursor() as cursor:
        await cursor.executemany(UPSERT_CONTACT, params, returning=True)
        while True:
            row = await cursor.fetchone()
            if row is not None:
                if row["inserted"]:
                    inserted += 1
                else:
                    merged += 1
            if not cursor.nextset():
                break
    return inserted, merged


async def list_contacts(conn: psycopg.AsyncConnection, campaign_id: str, *, state: str | None,
                        after_id: int, limit: int) -> list[ContactRecord]:
    cursor = await conn.execute(
        f"SELECT {_CONTACT} FROM campaign_contacts WHERE campaign_id = %(c)s"
        " AND (%(state)s::text IS NULL OR state = %(state)s) AND id > %(after)s ORDER BY id LIMIT %(limit)s",
        {"c": campaign_id, "state": state, "after": after_id, "limit": limit})
    return [ContactRecord.of(row) for row in await cursor.fetchall()]


async def get_contact(conn: psycopg.AsyncConnection, campaign_id: str, contact_id: int, *,
                      lock: bool = False) -> ContactRecord | None:
    cursor = await conn.execute(
        f"SELECT {_CONTACT} FROM campaign_contacts WHERE campaign_id = %s AND id = %s"
        + (" FOR UPDATE" if lock else ""), (campaign_id, contact_id))
    row = await cursor.fetchone()
    return None if row is None else ContactRecord.of(row)


async def due_zones(conn: psycopg.AsyncConnection, campaign_id: str, at: datetime) -> list[str]:
    """The time zones of the campaign's contacts that are ready and due at ``at``."""
    cursor = await conn.execute(
        "SELECT DISTINCT unnest(timezones) AS zone FROM campaign_contacts"
        " WHERE campaign_id = %s AND state = 'ready' AND next_attempt_at <= %s", (campaign_id, at))
    return [row["zone"] for row in await cursor.fetchall()]


# Ready contacts due at ``at`` whose zones are all open; callbacks first, then in due order.
# A scheduled callback's next_attempt_at is its callback_at (engines/retries.py), so one index
# serves both.
DUE_CONTACTS = f"""
SELECT {_CONTACT} FROM campaign_contacts
WHERE campaign_id = %(campaign_id)s AND state = 'ready' AND next_attempt_at <= %(at)s
  AND timezones <@ %(open_zones)s::text[]
ORDER BY (callback_at IS NULL), next_attempt_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""


async def due_contacts(conn: psycopg.AsyncConnection, campaign_id: str, at: datetime,
                       open_zones: Iterable[str], limit: int) -> list[ContactRecord]:
    cursor = await conn.execute(DUE_CONTACTS, {"campaign_id": campaign_id, "at": at,
                                               "open_zones": sorted(open_zones), "limit": limit})
    return [ContactRecord.of(row) for row in await cursor.fetchall()]


async def count_queued(conn: psycopg.AsyncConnection, campaign_id: str) -> int:
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = %s AND state = 'queued'",
        (campaign_id,))
    row = await cursor.fetchone()
    return int(row["n"]) if row else 0


async def mark_queued(conn: psycopg.AsyncConnection, ids: Sequence[int], at: datetime) -> None:
    await conn.execute(
        "UPDATE campaign_contacts SET state = 'queued', queued_at = %s, updated_at = now()"
        " WHERE id = ANY(%s) AND state = 'ready'", (at, list(ids)))


async def mark_final(conn: psycopg.AsyncConnection, ids: Sequence[int], state: ContactState) -> None:
    """Contacts that will never be dialed again (dnc, exhausted), from ready or queued."""
    if ids:
        await conn.execute(
            "UPDATE campaign_contacts SET state = %s, queued_at = NULL, updated_at = now()"
            " WHERE id = ANY(%s) AND state IN ('ready', 'queued')", (state.value, list(ids)))


async def queued_contacts(conn: psycopg.AsyncConnection, campaign_id: str) -> list[ContactRecord]:
    cursor = await conn.execute(
        f"SELECT {_CONTACT} FROM campaign_contacts WHERE campaign_id = %s AND state = 'queued'",
        (campaign_id,))
    return [ContactRecord.of(row) for row in await cursor.fetchall()]


async def requeue(conn: psycopg.AsyncConnection, ids: Sequence[int]) -> list[int]:
    """Queued contacts back to ready (out of the hopper); the ids that were still queued."""
    if not ids:
        return []
    cursor = await conn.execute(
        "UPDATE campaign_contacts SET state = 'ready', queued_at = NULL, updated_at = now()"
        " WHERE id = ANY(%s) AND state = 'queued' RETURNING id", (list(ids),))
    return [row["id"] for row in await cursor.fetchall()]


async def take_queued(conn: psycopg.AsyncConnection, campaign_id: str,
                      contact_id: int) -> ContactRecord | None:
    """Lock a contact that is still queued (the dialer is about to take it)."""
    cursor = await conn.execute(
        f"SELECT {_CONTACT} FROM campaign_contacts WHERE campaign_id = %s AND id = %s"
        " AND state = 'queued' FOR UPDATE", (campaign_id, contact_id))
    row = await cursor.fetchone()
    return None if row is None else ContactRecord.of(row)


async def set_contact_state(conn: psycopg.AsyncConnection, contact_id: int, state: ContactState) -> None:
    await conn.execute(
        "UPDATE campaign_contacts SET state = %s, queued_at = NULL, updated_at = now() WHERE id = %s",
        (state.value, contact_id))


async def apply_decision(conn: psycopg.AsyncConnection, contact_id: int, *, state: str, attempts: int,
                         outcome_counts: dict[str, int], last_outcome: str | None,
                         last_attempt_at: datetime | None, next_attempt_at: datetime | None,
                         callback_at: datetime | None, callback_agent_id: str | None) -> None:
    await conn.execute(
        """
        UPDATE campaign_contacts
        SET state = %(state)s, attempts = %(attempts)s, outcome_counts = %(counts)s,
            last_outcome = coalesce(%(last_outcome)s, last_outcome),
            last_attempt_at = coalesce(%(last_attempt_at)s, last_attempt_at),
            next_attempt_at = coalesce(%(next)s, next_attempt_at),
            callback_at = %(callback_at)s, callback_agent_id = %(callback_agent_id)s,
            queued_at = NULL, updated_at = now()
        WHERE id = %(id)s
        """,
        {"id": contact_id, "state": state, "attempts": attempts, "counts": Jsonb(outcome_counts),
         "last_outcome": last_outcome, "last_attempt_at": last_attempt_at, "next": next_attempt_at,
         "callback_at": callback_at, "callback_agent_id": callback_agent_id})


async def schedule_callback(conn: psycopg.AsyncConnection, contact_id: int, at: datetime,
                            agent_id: str | None) -> None:
    await conn.execute(
        "UPDATE campaign_contacts SET state = 'ready', next_attempt_at = %s, callback_at = %s,"
        " callback_agent_id = %s, queued_at = NULL, updated_at = now() WHERE id = %s",
        (at, at, agent_id, contact_id))


# ---- attempts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: UUID
    campaign_id: str
    contact_id: int
    number: str
    caller_id: str | None
    agent_id: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    reason: str | None
    disposition: str | None
    call_id: str | None
    callback_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> AttemptRecord:
        return cls(row["id"], row["campaign_id"], row["contact_id"], row["number"], row["caller_id"],
                   row["agent_id"], row["started_at"], row["ended_at"], row["outcome"], row["reason"],
                   row["disposition"], row["call_id"], row["callback_at"])


_ATTEMPT = ("id, campaign_id, contact_id, number, caller_id, agent_id, started_at, ended_at, outcome, "
            "reason, disposition, call_id, callback_at")


async def insert_attempt(conn: psycopg.AsyncConnection, *, attempt_id: UUID, campaign_id: str,
                         contact_id: int, number: str, caller_id: str | None, agent_id: str | None,
                         at: datetime) -> AttemptRecord:
    cursor = await conn.execute(
        f"INSERT INTO campaign_attempts (id, campaign_id, contact_id, number, caller_id, agent_id,"
        f" started_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_ATTEMPT}",
        (attempt_id, campaign_id, contact_id, number, caller_id, agent_id, at))
    row = await cursor.fetchone()
    assert row is not None
    return AttemptRecord.of(row)


async def get_attempt(conn: psycopg.AsyncConnection, attempt_id: UUID, *,
                      lock: bool = False) -> AttemptRecord | None:
    cursor = await conn.execute(f"SELECT {_ATTEMPT} FROM campaign_attempts WHERE id = %s"
                                + (" FOR UPDATE" if lock else ""), (attempt_id,))
    row = await cursor.fetchone()
    return None if row is None else AttemptRecord.of(row)


async def close_attempt(conn: psycopg.AsyncConnection, attempt_id: UUID, *, outcome: str, at: datetime,
                        reason: str | None, disposition: str | None, call_id: str | None,
                        callback_at: datetime | None) -> AttemptRecord:
    cursor = await conn.execute(
        f"UPDATE campaign_attempts SET ended_at = %s, outcome = %s, reason = %s,"
        f" disposition = coalesce(%s, disposition),"
        f" call_id = coalesce(%s, call_id), callback_at = %s WHERE id = %s RETURNING {_ATTEMPT}",
        (at, outcome, reason, disposition, call_id, callback_at, attempt_id))
    row = await cursor.fetchone()
    assert row is not None
    return AttemptRecord.of(row)


async def attempts_of(conn: psycopg.AsyncConnection, contact_id: int) -> list[AttemptRecord]:
    cursor = await conn.execute(
        f"SELECT {_ATTEMPT} FROM campaign_attempts WHERE contact_id = %s ORDER BY started_at, id",
        (contact_id,))
    return [AttemptRecord.of(row) for row in await cursor.fetchall()]


async def abandon_window(conn: psycopg.AsyncConnection, campaign_id: str,
                         since: datetime) -> tuple[int, int]:
    """Attempts a person answered (reached, called back or abandoned) and those abandoned,
    ended since ``since``: the campaign's rolling abandonment window."""
    cursor = await conn.execute(
        "SELECT count(*) FILTER (WHERE outcome IN ('answered', 'callback', 'abandoned')) AS answered,"
        " count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned FROM campaign_attempts"
        " WHERE campaign_id = %s AND ended_at >= %s", (campaign_id, since))
    row = await cursor.fetchone()
    assert row is not None
    return int(row["answered"]), int(row["abandoned"])


async def attempt_stats(conn: psycopg.AsyncConnection, campaign_id: str, since: datetime) -> dict[str, Any]:
    """Attempts by outcome (ended ones; ``open``: still being dialed), contacts reached, and the
    person-answered and abandoned attempts ended since ``since``."""
    cursor = await conn.execute(
        "SELECT coalesce(outcome, 'open') AS outcome, count(*) AS n FROM campaign_attempts"
        " WHERE campaign_id = %s GROUP BY 1", (campaign_id,))
    by_outcome = {row["outcome"]: int(row["n"]) for row in await cursor.fetchall()}
    cursor = await conn.execute(
        "SELECT count(DISTINCT contact_id) AS n FROM campaign_attempts WHERE campaign_id = %s"
        " AND outcome IN ('answered', 'callback')", (campaign_id,))
    row = await cursor.fetchone()
    reached = int(row["n"]) if row else 0
    answered, abandoned = await abandon_window(conn, campaign_id, since)
    return {"by_outcome": by_outcome, "reached": reached, "window_answered": answered,
            "window_abandoned": abandoned}


async def claim_attempt_call(conn: psycopg.AsyncConnection, attempt_id: UUID, call_id: str) -> bool:
    """Tie a call to an open attempt that has none yet; False when another got there first."""
    cursor = await conn.execute(
        "UPDATE campaign_attempts SET call_id = %s WHERE id = %s AND call_id IS NULL AND ended_at IS NULL"
        " RETURNING id", (call_id, attempt_id))
    return await cursor.fetchone() is not None


async def set_disposition(conn: psycopg.AsyncConnection, attempt_id: UUID, code: str) -> None:
    await conn.execute("UPDATE campaign_attempts SET disposition = %s WHERE id = %s", (code, attempt_id))


async def stale_previews(conn: psycopg.AsyncConnection, campaign_id: str, before: datetime) -> list[UUID]:
    """Open attempts offered to an agent before ``before`` and neither accepted nor skipped."""
    cursor = await conn.execute(
        "SELECT id FROM campaign_attempts WHERE campaign_id = %s AND ended_at IS NULL"
        " AND agent_id IS NOT NULL AND call_id IS NULL AND started_at < %s", (campaign_id, before))
    return [row["id"] for row in await cursor.fetchall()]


async def agents_with_open_attempts(conn: psycopg.AsyncConnection, campaign_id: str) -> set[str]:
    """Agents holding an open attempt of the campaign (a preview offered, or its call on)."""
    cursor = await conn.execute(
        "SELECT DISTINCT agent_id FROM campaign_attempts WHERE campaign_id = %s AND ended_at IS NULL"
        " AND agent_id IS NOT NULL", (campaign_id,))
    return {row["agent_id"] for row in await cursor.fetchall()}


async def open_attempts_before(conn: psycopg.AsyncConnection, campaign_id: str,
                               before: datetime) -> list[AttemptRecord]:
    cursor = await conn.execute(
        f"SELECT {_ATTEMPT} FROM campaign_attempts WHERE campaign_id = %s AND ended_at IS NULL"
        " AND started_at < %s ORDER BY started_at", (campaign_id, before))
    return [AttemptRecord.of(row) for row in await cursor.fetchall()]


# ---- contact imports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRecord:
    id: UUID
    campaign_id: str
    state: str
    file_name: str | None
    mapping: dict[str, Any]
    total_rows: int
    rows_done: int
    imported: int
    merged: int
    invalid: int
    errors: list[dict[str, Any]]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> ImportRecord:
        return cls(row["id"], row["campaign_id"], row["state"], row["file_name"], dict(row["mapping"]),
                   row["total_rows"], row["rows_done"], row["imported"], row["merged"], row["invalid"],
                   list(row["errors"]), row["error"], row["created_at"], row["started_at"],
                   row["finished_at"])


_IMPORT = ("id, campaign_id, state, file_name, mapping, total_rows, rows_done, imported, merged, invalid,"
           " errors, error, created_at, started_at, finished_at")


async def insert_import(conn: psycopg.AsyncConnection, *, import_id: UUID, campaign_id: str,
                        file_name: str | None, mapping: dict[str, Any], payload: bytes,
                        total_rows: int) -> ImportRecord:
    cursor = await conn.execute(
        f"INSERT INTO contact_imports (id, campaign_id, state, file_name, mapping, payload, total_rows)"
        f" VALUES (%s, %s, 'pending', %s, %s, %s, %s) RETURNING {_IMPORT}",
        (import_id, campaign_id, file_name, Jsonb(mapping), payload, total_rows))
    row = await cursor.fetchone()
    assert row is not None
    return ImportRecord.of(row)


async def get_import(conn: psycopg.AsyncConnection, campaign_id: str, import_id: UUID) -> ImportRecord | None:
    cursor = await conn.execute(f"SELECT {_IMPORT} FROM contact_imports WHERE campaign_id = %s AND id = %s",
                                (campaign_id, import_id))
    row = await cursor.fetchone()
    return None if row is None else ImportRecord.of(row)


async def list_imports(conn: psycopg.AsyncConnection, campaign_id: str) -> list[ImportRecord]:
    cursor = await conn.execute(
        f"SELECT {_IMPORT} FROM contact_imports WHERE campaign_id = %s ORDER BY created_at DESC, id",
        (campaign_id,))
    return [ImportRecord.of(row) for row in await cursor.fetchall()]


# An import may be claimed when it waits, or when the worker running it has gone silent
# (no heartbeat for ``stale_s``): with acks_late a task can run twice, and must not in parallel.
CLAIM_IMPORT = f"""
UPDATE contact_imports
SET state = 'running', started_at = coalesce(started_at, now()), heartbeat_at = now()
WHERE id = %(id)s
  AND (state = 'pending' OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale_s)s)))
RETURNING {_IMPORT}, payload
"""


async def claim_import(conn: psycopg.AsyncConnection, import_id: UUID,
                       stale_s: float) -> tuple[ImportRecord, bytes] | None:
    cursor = await conn.execute(CLAIM_IMPORT, {"id": import_id, "stale_s": stale_s})
    row = await cursor.fetchone()
    if row is None:
        return None
    return ImportRecord.of(row), bytes(row["payload"] or b"")


async def resumable_imports(conn: psycopg.AsyncConnection, older_than_s: float) -> list[UUID]:
    cursor = await conn.execute(
        "SELECT id FROM contact_imports"
        " WHERE (state = 'pending' AND created_at < now() - make_interval(secs => %s))"
        " OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => %s)) ORDER BY created_at",
        (older_than_s, older_than_s))
    return [row["id"] for row in await cursor.fetchall()]


async def import_progress(conn: psycopg.AsyncConnection, import_id: UUID, *, rows_done: int, imported: int,
                          merged: int, invalid: int, errors: list[dict[str, Any]]) -> None:
    await conn.execute(
        "UPDATE contact_imports SET rows_done = %s, imported = %s, merged = %s, invalid = %s, errors = %s,"
        " heartbeat_at = now() WHERE id = %s",
        (rows_done, imported, merged, invalid, Jsonb(errors), import_id))


async def finish_import(conn: psycopg.AsyncConnection, import_id: UUID, *, state: str,
                        error: str | None = None) -> None:
    await conn.execute(
        "UPDATE contact_imports SET state = %s, error = %s, payload = NULL, finished_at = now()"
        " WHERE id = %s", (state, error, import_id))


# ---- do not call -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DncRecord:
    number: str
    campaign_id: str | None
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> DncRecord:
        return cls(row["number"], row["campaign_id"], row["reason"], row["created_at"])


# Global numbers and the campaign's own; with no campaign, global ones only.
BLOCKED_NUMBERS = """
SELECT DISTINCT number FROM dnc_numbers
WHERE number = ANY(%(numbers)s) AND (campaign_id IS NULL OR campaign_id = %(campaign_id)s)
"""


async def blocked_numbers(conn: psycopg.AsyncConnection, numbers: Iterable[str],
                          campaign_id: str | None) -> frozenset[str]:
    numbers = list(set(numbers))
    if not numbers:
        return frozenset()
    cursor = await conn.execute(BLOCKED_NUMBERS, {"numbers": numbers, "campaign_id": campaign_id})
    return frozenset(row["number"] for row in await cursor.fetchall())


INSERT_DNC_GLOBAL = """
INSERT INTO dnc_numbers (number, campaign_id, reason) VALUES (%(number)s, NULL, %(reason)s)
ON CONFLICT (number) WHERE campaign_id IS NULL DO NOTHING RETURNING id
"""
INSERT_DNC_CAMPAIGN = """
INSERT INTO dnc_numbers (number, campaign_id, reason) VALUES (%(number)s, %(campaign_id)s, %(reason)s)
ON CONFLICT (campaign_id, number) WHERE campaign_id IS NOT NULL DO NOTHING RETURNING id
"""


async def insert_dnc(conn: psycopg.AsyncConnection, numbers: Sequence[str], campaign_id: str | None,
                     reason: str | None) -> int:
    """Add numbers to a list; how many were new."""
    if not numbers:
        return 0
    query = INSERT_DNC_GLOBAL if campaign_id is None else INSERT_DNC_CAMPAIGN
    added = 0
    async with conn.cursor() as cursor:
        await cursor.executemany(query, [{"number": n, "campaign_id": campaign_id, "reason": reason}
                                         for n in numbers], returning=True)
        while True:
            if await cursor.fetchone() is not None:
                added += 1
            if not cursor.nextset():
                break
    return added


async def delete_dnc(conn: psycopg.AsyncConnection, number: str, campaign_id: str | None) -> bool:
    cursor = await conn.execute(
        "DELETE FROM dnc_numbers WHERE number = %s AND campaign_id IS NOT DISTINCT FROM %s RETURNING id",
        (number, campaign_id))
    return await cursor.fetchone() is not None


async def list_dnc(conn: psycopg.AsyncConnection, *, campaign_id: str | None, all_scopes: bool,
                   number: str | None, limit: int, offset: int) -> list[DncRecord]:
    cursor = await conn.execute(
        "SELECT number, campaign_id, reason, created_at FROM dnc_numbers"
        " WHERE (%(all)s OR campaign_id IS NOT DISTINCT FROM %(campaign_id)s)"
        " AND (%(number)s::text IS NULL OR number = %(number)s)"
        " ORDER BY number, campaign_id NULLS FIRST LIMIT %(limit)s OFFSET %(offset)s",
        {"all": all_scopes, "campaign_id": campaign_id, "number": number, "limit": limit,
         "offset": offset})
    return [DncRecord.of(row) for row in await cursor.fetchall()]
