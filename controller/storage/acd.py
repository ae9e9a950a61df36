"""ACD configuration in Postgres: agents, queues with their members, and the agent state log.

Functions take a connection (the caller owns the transaction) and return plain records; the
services turn them into ``controller.domain.agents`` objects. Uniqueness is left to the
database: an insert that clashes returns None (agents) or raises ``UniqueViolation`` (queues),
which the services turn into 409.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from controller.domain.agents import MemberKind, QueueMember

# ---- agents -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    name: str
    device: str
    skills: dict[str, int]
    groups: tuple[str, ...]
    created_at: datetime | None = None  # None until stored
    updated_at: datetime | None = None
    state_device: str | None = None  # the device whose state tells if the agent is reachable

    @classmethod
    def of(cls, row: dict[str, Any]) -> AgentRecord:
        return cls(row["id"], row["name"], row["device"], dict(row["skills"]), tuple(row["groups"]),
                   row["created_at"], row["updated_at"], row["state_device"])


_AGENT = "id, name, device, skills, groups, created_at, updated_at, state_device"

LIST_AGENTS = f"SELECT {_AGENT} FROM agents WHERE deleted_at IS NULL ORDER BY id"

GET_AGENT = f"SELECT {_AGENT} FROM agents WHERE id = %s AND deleted_at IS NULL"

# Deleted agents included: their state log stays readable.
AGENT_EVER_EXISTED = "SELECT 1 FROM agents WHERE id = %s"

# A new agent, or the revival of a deleted one (its state log goes on); nothing if it is live.
INSERT_AGENT = f"""
INSERT INTO agents (id, name, device, skills, groups, state_device)
VALUES (%(id)s, %(name)s, %(device)s, %(skills)s, %(groups)s, %(state_device)s)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, device = excluded.device, skills = excluded.skills,
    groups = excluded.groups, state_device = excluded.state_device,
    created_at = now(), updated_at = now(), deleted_at = NULL
WHERE agents.deleted_at IS NOT NULL
RETURNING {_AGENT}
"""

UPDATE_AGENT = f"""
UPDATE agents
SET name = %(name)s, device = %(device)s, skills = %(skills)s, groups = %(groups)s,
    state_device = %(state_device)s,
    updated_at = now()
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING {_AGENT}
"""

# Locks the agent against a queue adding it meanwhile (queue writes lock agents FOR SHARE).
AGENT_FOR_UPDATE = "SELECT id FROM agents WHERE id = %s AND deleted_at IS NULL FOR UPDATE"

DELETE_AGENT = "UPDATE agents SET deleted_at = now(), updated_at = now() WHERE id = %s"

# Queues that list the agent by itself (a membership through a group does not hold the agent).
QUEUES_OF_AGENT = "SELECT queue FROM queue_members WHERE agent_id = %s ORDER BY queue"


def _agent_params(record: AgentRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "device": record.device,
            "skills": Jsonb(record.skills), "groups": list(record.groups),
            "state_device": record.state_device}


async def list_agents(conn: psycopg.AsyncConnection) -> list[AgentRecord]:
    cursor = await conn.execute(LIST_AGENTS)
    return [AgentRecord.of(row) for row in await cursor.fetchall()]


async def get_agent(conn: psycopg.AsyncConnection, agent_id: str) -> AgentRecord | None:
    cursor = await conn.execute(GET_AGENT, (agent_id,))
    row = await cursor.fetchone()
    return None if row is None else AgentRecord.of(row)


async def agent_ever_existed(conn: psycopg.AsyncConnection, agent_id: str) -> bool:
    cursor = await conn.execute(AGENT_EVER_EXISTED, (agent_id,))
    return await cursor.fetchone() is not None


async def insert_agent(conn: psycopg.AsyncConnection, record: AgentRecord) -> AgentRecord | None:
    """The new (or revived) agent; None if a live agent has that id."""
    cursor = await conn.execute(INSERT_AGENT, _agent_params(record))
    row = await cursor.fetchone()
    return None if row is None else AgentRecord.of(row)


async def update_agent(conn: psycopg.AsyncConnection, record: AgentRecord) -> AgentRecord | None:
    cursor = await conn.execute(UPDATE_AGENT, _agent_params(record))
    row = await cursor.fetchone()
    return None if row is None else AgentRecord.of(row)


async def lock_agent(conn: psycopg.AsyncConnection, agent_id: str) -> bool:
    """Lock a live agent for deletion; False if there is none."""
    cursor = await conn.execute(AGENT_FOR_UPDATE, (agent_id,))
    return await cursor.fetchone() is not None


async def delete_agent(conn: psycopg.AsyncConnection, agent_id: str) -> None:
    await conn.execute(DELETE_AGENT, (agent_id,))


async def queues_of_agent(conn: psycopg.AsyncConnection, agent_id: str) -> list[str]:
    cursor = await conn.execute(QUEUES_OF_AGENT, (agent_id,))
    return [row["queue"] for row in await cursor.fetchall()]


# ---- agent state log ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentStateRow:
    """One agent state change: ``state`` from ``at`` on (``AgentState`` values)."""

    agent_id: str
    at: datetime
    state: str
    reason: str = ""
    queue: str | None = None
    call_id: str | None = None
    id: int | None = None  # given by the database

    @classmethod
    def of(cls, row: dict[str, Any]) -> AgentStateRow:
        return cls(row["agent_id"], row["at"], row["state"], row["reason"], row["queue"],
                   row["call_id"], row["id"])


_STATE = "id, agent_id, at, state, reason, queue, call_id"

INSERT_AGENT_STATE = f"""
INSERT INTO agent_state_log (agent_id, at, state, reason, queue, call_id)
VALUES (%(agent_id)s, %(at)s, %(state)s, %(reason)s, %(queue)s, %(call_id)s)
RETURNING {_STATE}
"""

# Each bound applies only when its parameter is not null; since inclusive, until exclusive.
AGENT_STATE_LOG = f"""
SELECT {_STATE} FROM agent_state_log
WHERE agent_id = %(agent_id)s
  AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
ORDER BY at, id
LIMIT %(limit)s
"""


async def insert_agent_state(conn: psycopg.AsyncConnection, row: AgentStateRow) -> AgentStateRow:
    cursor = await conn.execute(INSERT_AGENT_STATE, {
        "agent_id": row.agent_id, "at": row.at, "state": str(row.state), "reason": row.reason,
        "queue": row.queue, "call_id": row.call_id,
    })
    inserted = await cursor.fetchone()
    assert inserted is not None
    return AgentStateRow.of(inserted)


async def agent_state_log(conn: psycopg.AsyncConnection, agent_id: str, since: datetime | None,
                          until: datetime | None, limit: int = 1000) -> list[AgentStateRow]:
    """The agent's state changes in [since, until), oldest first."""
    cursor = await conn.execute(AGENT_STATE_LOG, {
        "agent_id": agent_id, "since": since, "until": until, "limit": limit})
    return [AgentStateRow.of(row) for row in await cursor.fetchall()]


# ---- queues -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueRecord:
    name: str
    strategy: str
    ring_timeout_s: int
    wrap_up_s: int
    max_misses_before_pause: int
    service_level_s: int
    max_wait_s: int | None
    max_length: int | None
    max_penalty: int | None
    rules: tuple[dict[str, int], ...]  # {after_wait_s, max_penalty?, min_skill_level?}
    moh_class: str
    members: tuple[QueueMember, ...]  # agents and groups, in member order
    created_at: datetime | None = None  # None until stored
    updated_at: datetime | None = None
    # What happens to a waiting caller (migration 0005).
    overflow: dict[str, str] = field(default_factory=lambda: {"action": "hangup"})
    join_when_empty: bool = False
    leave_when_empty: bool = True
    announce_every_s: int = 0
    exit_key: str | None = None
    exit_action: str | None = None  # voicemail | callback
    exit_mailbox: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> QueueRecord:
        return cls(row["name"], row["strategy"], row["ring_timeout_s"], row["wrap_up_s"],
                   row["max_misses_before_pause"], row["service_level_s"], row["max_wait_s"],
                   row["max_length"], row["max_penalty"], tuple(row["rules"]), row["moh_class"],
                   tuple(QueueMember(MemberKind(kind), name, penalty)
                         for kind, name, penalty in row["members"]),
                   row["created_at"], row["updated_at"],
                   overflow=dict(row["overflow"]), join_when_empty=row["join_when_empty"],
                   leave_when_empty=row["leave_when_empty"], announce_every_s=row["announce_every_s"],
                   exit_key=row["exit_key"], exit_action=row["exit_action"],
                   exit_mailbox=row["exit_mailbox"])


_QUEUE_COLUMNS = ("name, strategy, ring_timeout_s, wrap_up_s, max_misses_before_pause, "
                  "service_level_s, max_wait_s, max_length, max_penalty, rules, moh_class, "
                  "overflow, join_when_empty, leave_when_empty, announce_every_s, exit_key, "
                  "exit_action, exit_mailbox, created_at, updated_at")

# A queue with its members as [[kind, agent id or group, penalty], ...] in member order.
_QUEUE = f"""
SELECT {_QUEUE_COLUMNS},
       coalesce((SELECT jsonb_agg(jsonb_build_array(m.kind, m.name, m.penalty) ORDER BY m.position)
                 FROM (SELECT 'agent' AS kind, agent_id AS name, penalty, position
                       FROM queue_members WHERE queue = q.name
                       UNION ALL
                       SELECT 'group', group_name, penalty, position
                       FROM queue_group_members WHERE queue = q.name) m), '[]') AS members
FROM queues q
"""

LIST_QUEUES = f"{_QUEUE} ORDER BY name"

GET_QUEUE = f"{_QUEUE} WHERE name = %s"

INSERT_QUEUE = """
INSERT INTO queues (name, strategy, ring_timeout_s, wrap_up_s, max_misses_before_pause,
                    service_level_s, max_wait_s, max_length, max_penalty, rules, moh_class,
                    overflow, join_when_empty, leave_when_empty, announce_every_s, exit_key,
                    exit_action, exit_mailbox)
VALUES (%(name)s, %(strategy)s, %(ring_timeout_s)s, %(wrap_up_s)s, %(max_misses_before_pause)s,
        %(service_level_s)s, %(max_wait_s)s, %(max_length)s, %(max_penalty)s, %(rules)s,
        %(moh_class)s, %(overflow)s, %(join_when_empty)s, %(leave_when_empty)s,
        %(announce_every_s)s, %(exit_key)s, %(exit_action)s, %(exit_mailbox)s)
RETURNING name
"""

UPDATE_QUEUE = """
UPDATE queues
SET strategy = %(strategy)s, ring_timeout_s = %(ring_timeout_s)s, wrap_up_s = %(wrap_up_s)s,
    max_misses_before_pause = %(max_misses_before_pause)s, service_level_s = %(service_level_s)s,
    max_wait_s = %(max_wait_s)s, max_length = %(max_length)s, max_penalty = %(max_penalty)s,
    rules = %(rules)s, moh_class = %(moh_class)s, overflow = %(overflow)s,
    join_when_empty = %(join_when_empty)s, leave_when_empty = %(leave_when_empty)s,
    announce_every_s = %(announce_every_s)s, exit_key = %(exit_key)s, exit_action = %(exit_action)s,
    exit_mailbox = %(exit_mailbox)s, updated_at = now()
WHERE name = %(name)s
RETURNING name
"""

DELETE_QUEUE = "DELETE FROM queues WHERE name = %s RETURNING name"

QUEUE_EXISTS = "SELECT 1 FROM queues WHERE name = %s"

FLOW_EXISTS = "SELECT 1 FROM flows WHERE name = %s AND deleted_at IS NULL"

# Queues that send their overflow to this queue (it cannot be deleted while there are any).
QUEUES_OVERFLOWING_TO = """
SELECT name FROM queues WHERE overflow->>'action' = 'queue' AND overflow->>'queue' = %s ORDER BY name
"""

# Queues that send their overflow to this flow (it cannot be deleted while there are any).
QUEUES_OVERFLOWING_TO_FLOW = """
SELECT name FROM queues WHERE overflow->>'action' = 'flow' AND overflow->>'flow' = %s ORDER BY name
"""

DELETE_MEMBERS = "DELETE FROM queue_members WHERE queue = %s"

DELETE_GROUP_MEMBERS = "DELETE FROM queue_group_members WHERE queue = %s"

INSERT_MEMBER = """
INSERT INTO queue_members (queue, agent_id, penalty, position) VALUES (%s, %s, %s, %s)
"""

INSERT_GROUP_MEMBER = """
INSERT INTO queue_group_members (queue, group_name, penalty, position) VALUES (%s, %s, %s, %s)
"""

# The live agents among ``ids``, locked so none is deleted before the members are written.
LIVE_AGENTS_FOR_SHARE = """
SELECT id FROM agents WHERE id = ANY(%s) AND deleted_at IS NULL ORDER BY id FOR SHARE
"""


def _queue_params(record: QueueRecord) -> dict[str, Any]:
    return {
        "name": record.name, "strategy": record.strategy, "ring_timeout_s": record.ring_timeout_s,
        "wrap_up_s": record.wrap_up_s, "max_misses_before_pause": record.max_misses_before_pause,
        "service_level_s": record.service_level_s, "max_wait_s": record.max_wait_s,
        "max_length": record.max_length, "max_penalty": record.max_penalty,
        "rules": Jsonb(list(record.rules)), "moh_class": record.moh_class,
        "overflow": Jsonb(record.overflow), "join_when_empty": record.join_when_empty,
        "leave_when_empty": record.leave_when_empty, "announce_every_s": record.announce_every_s,
        "exit_key": record.exit_key, "exit_action": record.exit_action, "exit_mailbox": record.exit_mailbox,
    }


async def list_queues(conn: psycopg.AsyncConnection) -> list[QueueRecord]:
    cursor = await conn.execute(LIST_QUEUES)
    return [QueueRecord.of(row) for row in await cursor.fetchall()]


async def get_queue(conn: psycopg.AsyncConnection, name: str) -> QueueRecord | None:
    cursor = await conn.execute(GET_QUEUE, (name,))
    row = await cursor.fetchone()
    return None if row is None else QueueRecord.of(row)


async def live_agents_for_share(conn: psycopg.AsyncConnection, ids: list[str]) -> set[str]:
    cursor = await conn.execute(LIVE_AGENTS_FOR_SHARE, (ids,))
    return {row["id"] for row in await cursor.fetchall()}


async def _replace_members(conn: psycopg.AsyncConnection, record: QueueRecord) -> None:
    await conn.execute(DELETE_MEMBERS, (record.name,))
    await conn.execute(DELETE_GROUP_MEMBERS, (record.name,))
    rows: dict[MemberKind, list[tuple[str, str, int, int]]] = {MemberKind.AGENT: [], MemberKind.GROUP: []}
    for position, member in enumerate(record.members):
        rows[member.kind].append((record.name, member.name, member.penalty, position))
    async with conn.cursor() as cursor:
        if rows[MemberKind.AGENT]:
            await cursor.executemany(INSERT_MEMBER, rows[MemberKind.AGENT])
        if rows[MemberKind.GROUP]:
            await cursor.executemany(INSERT_GROUP_MEMBER, rows[MemberKind.GROUP])


async def insert_queue(conn: psycopg.AsyncConnection, record: QueueRecord) -> QueueRecord:
    """The new queue with its members; ``UniqueViolation`` if the name is taken."""
    await conn.execute(INSERT_QUEUE, _queue_params(record))
    await _replace_members(conn, record)
    created = await get_queue(conn, record.name)
    assert created is not None
    return created


async def update_queue(conn: psycopg.AsyncConnection, record: QueueRecord) -> QueueRecord | None:
    cursor = await conn.execute(UPDATE_QUEUE, _queue_params(record))
    if await cursor.fetchone() is None:
        return None
    await _replace_members(conn, record)
    return await get_queue(conn, record.name)


async def queue_exists(conn: psycopg.AsyncConnection, name: str) -> bool:
    cursor = await conn.execute(QUEUE_EXISTS, (name,))
    return await cursor.fetchone() is not None


async def flow_exists(conn: psycopg.AsyncConnection, name: str) -> bool:
    cursor = await conn.execute(FLOW_EXISTS, (name,))
    return await cursor.fetchone() is not None


async def queues_overflowing_to_flow(conn: psycopg.AsyncConnection, flow: str) -> list[str]:
    cursor = await conn.execute(QUEUES_OVERFLOWING_TO_FLOW, (flow,))
    return [row["name"] for row in await cursor.fetchall()]


async def queues_overflowing_to(conn: psycopg.AsyncConnection, name: str) -> list[str]:
    cursor = await conn.execute(QUEUES_OVERFLOWING_TO, (name,))
    return [row["name"] for row in await cursor.fetchall()]


async def delete_queue(conn: psycopg.AsyncConnection, name: str) -> bool:
    """Delete the queue and its members."""
    cursor = await conn.execute(DELETE_QUEUE, (name,))
    return await cursor.fetchone() is not None
