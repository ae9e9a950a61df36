"""API keys in Postgres. Only a hash of each secret is stored; keys are revoked, never deleted,
so audit entries and ``created_by`` keep pointing at a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from controller.domain.access import Role


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the controller knows it: everything but its secret."""

    id: UUID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    created_by: UUID | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    agent_id: str | None = None  # the agent an agent key acts for
    queues: tuple[str, ...] = ()  # the queues a supervisor key oversees (empty: all)

    @classmethod
    def of(cls, row: dict[str, Any]) -> ApiKey:
        return cls(row["id"], row["name"], Role(row["role"]), row["prefix"], row["created_at"],
                   row["created_by"], row["revoked_at"], row["last_used_at"], row["agent_id"],
                   tuple(row["queues"] or ()))


@dataclass(frozen=True, slots=True)
class StoredKey:
    key: ApiKey
    secret_hash: bytes


_COLUMNS = "id, name, role, prefix, created_at, created_by, revoked_at, last_used_at, agent_id, queues"

INSERT = f"""
INSERT INTO api_keys (id, name, role, prefix, secret_hash, created_by, agent_id, queues)
VALUES (%(id)s, %(name)s, %(role)s, %(prefix)s, %(secret_hash)s, %(created_by)s, %(agent_id)s, %(queues)s)
RETURNING {_COLUMNS}
"""

# Which of the named queues exist (a supervisor key may be limited to existing queues only).
EXISTING_QUEUES = "SELECT name FROM queues WHERE name = ANY(%s)"

LIST = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at DESC, id"

GET = f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s"

BY_PREFIX = f"SELECT {_COLUMNS}, secret_hash FROM api_keys WHERE prefix = %s"

# Revoking again keeps the first revocation time.
REVOKE = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %s
RETURNING {_COLUMNS}
"""

# At most one write per key per ``every``, however many requests the key makes.
TOUCH = """
UPDATE api_keys SET last_used_at = now()
WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - %(every)s)
"""


async def insert(conn: psycopg.AsyncConnection, *, key_id: UUID, name: str, role: Role,
                 prefix: str, secret_hash: bytes, created_by: UUID | None,
                 agent_id: str | None = None, queues: tuple[str, ...] = ()) -> ApiKey:
    cursor = await conn.execute(INSERT, {
        "id": key_id, "name": name, "role": role.value, "prefix": prefix,
        "secret_hash": secret_hash, "created_by": created_by, "agent_id": agent_id,
        "queues": list(queues),
    })
    row = await cursor.fetchone()
    assert row is not None
    return ApiKey.of(row)


async def list_keys(conn: psycopg.AsyncConnection) -> list[ApiKey]:
    cursor = await conn.execute(LIST)
    return [ApiKey.of(row) for row in await cursor.fetchall()]


async def get(conn: psycopg.AsyncConnection, key_id: UUID) -> ApiKey | None:
    cursor = await conn.execute(GET, (key_id,))
    row = await cursor.fetchone()
    return None if row is None else ApiKey.of(row)


async def by_prefix(conn: psycopg.AsyncConnection, prefix: str) -> StoredKey | None:
    cursor = await conn.execute(BY_PREFIX, (prefix,))
    row = await cursor.fetchone()
    return None if row is None else StoredKey(ApiKey.of(row), bytes(row["secret_hash"]))


async def revoke(conn: psycopg.AsyncConnection, key_id: UUID) -> ApiKey | None:
    cursor = await conn.execute(REVOKE, (key_id,))
    row = await cursor.fetchone()
    return None if row is None else ApiKey.of(row)


async def touch(conn: psycopg.AsyncConnection, key_id: UUID, every: timedelta) -> None:
    await conn.execute(TOUCH, {"id": key_id, "every": every})


async def existing_queues(conn: psycopg.AsyncConnection, names: tuple[str, ...]) -> set[str]:
    cursor = await conn.execute(EXISTING_QUEUES, (list(names),))
    return {row["name"] for row in await cursor.fetchall()}
