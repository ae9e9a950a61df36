"""API keys: create, list, revoke, and authenticate a request's bearer token.

A key reads ``ccc_<prefix>_<secret>``. The prefix (8 letters or digits, so a key splits on its
first two underscores) finds the row; the secret (32 random bytes, url-safe base64) is checked
against the SHA-256 stored for it. A slow password hash is not needed: the secret is random and
high-entropy, not chosen by a person.
The plaintext is returned once, by ``create``, and is neither stored nor logged.

Revoking is idempotent: revoking a revoked key succeeds and keeps the first revocation time.
A key may not revoke itself (409), so an admin cannot lock itself out by mistake.

An agent key may act for one agent (``agent_id``); a supervisor key may be limited to some
queues (``queues``; none: the whole floor). Both are fixed when the key is made.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg

from controller.domain.access import Principal, Role
from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.storage import api_keys as store
from controller.storage.api_keys import ApiKey
from controller.storage.db import Database
from controller.storage.outbox import RecordWriter
from controller.storage.records import AuditRow, write_rows

log = logging.getLogger(__name__)

TOKEN_PREFIX = "ccc_"
PREFIX_ALPHABET = string.ascii_letters + string.digits
_TOKEN = re.compile(r"ccc_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43})")
# A key's name: 1 to 100 characters, none of them a control character (C0, DEL or C1).
NAME_MAX_LENGTH = 100
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")
# last_used_at is a hint for humans ("is this key still in use?"): one write a minute is enough.
TOUCH_EVERY = timedelta(minutes=1)


class Unauthorized(ControllerError):
    """A valid API key is required: `Authorization: Bearer <key>`."""

    code = "unauthorized"
    status = 401


class InvalidKeyName(ControllerError, ValueError):
    """An API key name is 1 to 100 characters without control characters."""

    code = "invalid-key-name"
    status = 422


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _check_name(name: str) -> str:
    if len(name) > NAME_MAX_LENGTH or not _NAME.fullmatch(name):
        raise InvalidKeyName()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON "\udxxx" escape
        raise InvalidKeyName() from exc
    return name


class InvalidAgentLink(ControllerError, ValueError):
    """Only an agent key may act for an agent, and the agent must exist."""

    code = "invalid-agent-link"
    status = 422


class InvalidQueueScope(ControllerError, ValueError):
    """Only a supervisor key may be limited to queues, and the queues must exist."""

    code = "invalid-queue-scope"
    status = 422


QUEUE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_SCOPED_QUEUES = 100


class ApiKeyService:
    # ``records`` is not used: out-of-band creations are audited in the key's own transaction.
    def __init__(self, db: Database, records: RecordWriter) -> None:
        self._db = db

    async def create(self, name: str, role: Role, created_by: UUID | None = None,
                     agent_id: str | None = None, queues: Sequence[str] = ()) -> tuple[ApiKey, str]:
        """A new key and its plaintext, which is never available again.

        ``created_by`` is the key that asked for it; None for keys made outside the API (the
        ``create-admin-key`` command), which are audited here since no request audits them.
        ``agent_id`` links an agent key to the agent it acts for; ``queues`` limits a
        supervisor key to those queues.
        """
        _check_name(name)
        role = Role(role)
        if agent_id is not None and role is not Role.AGENT:
            raise InvalidAgentLink(f"a {role.value} key cannot act for an agent; only agent keys can")
        scope = await self._queue_scope(role, queues)
        for _ in range(3):  # a clash of random 47-bit prefixes is rare; retry is cheap
            prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(8))
            secret = secrets.token_urlsafe(32)
            try:
                async with self._db.connection() as conn:
                    key = await store.insert(conn, key_id=uuid4(), name=name, role=role,
                                             prefix=prefix, secret_hash=_hash(secret),
                                             created_by=created_by, agent_id=agent_id, queues=scope)
                    if created_by is None:
                        await write_rows(conn, [_out_of_band_entry(key)])
            except psycopg.errors.UniqueViolation:
                continue
            except psycopg.errors.ForeignKeyViolation as exc:
                raise InvalidAgentLink(f"no agent {agent_id}") from exc
            log.info("api key created", extra={"key_id": str(key.id), "key_name": key.name,
                                                "role": key.role.value, "prefix": key.prefix,
                                                "agent_id": key.agent_id, "queues": list(key.queues)})
            return key, f"{TOKEN_PREFIX}{prefix}_{secret}"
        raise Conflict("could not find a free key prefix; try again")

    async def _queue_scope(self, role: Role, queues: Sequence[str]) -> tuple[str, ...]:
        """The queues a new key is limited to, sorted and without repeats; InvalidQueueScope if
        the key is not a supervisor's, a name is malformed or a queue does not exist."""
        scope = tuple(sorted(set(queues)))
        if not scope:
            return ()
        if role is not Role.SUPERVISOR:
            raise InvalidQueueScope(f"a {role.value} key cannot be limited to queues; only supervisor keys")
        if len(scope) > MAX_SCOPED_QUEUES:
            raise InvalidQueueScope(f"at most {MAX_SCOPED_QUEUES} queues")
        for queue in scope:
            if not isinstance(queue, str) or not QUEUE_PATTERN.fullmatch(queue):
                raise InvalidQueueScope(f"{str(queue)[:70]!r} is not a queue name")
        async with self._db.connection() as conn:
            missing = set(scope) - await store.existing_queues(conn, scope)
        if missing:
            raise InvalidQueueScope(f"no queue {', '.join(sorted(missing))}")
        return scope

    async def create_admin_key(self, name: str) -> tuple[ApiKey, str]:
        """The first admin key, made from the command line (no caller to attribute it to)."""
        return await self.create(name, Role.ADMIN, None)

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, newest first. Secrets are not part of an ApiKey."""
        async with self._db.connection() as conn:
            return await store.list_keys(conn)

    async def get(self, key_id: UUID) -> ApiKey:
        async with self._db.connection() as conn:
            key = await store.get(conn, key_id)
        if key is None:
            raise NotFound(f"no API key {key_id}")
        return key

    async def revoke(self, key_id: UUID, *, acting_key_id: UUID | None = None) -> ApiKey:
        """Revoke ``key_id`` (idempotent). NotFound if there is no such key; Conflict if
        ``acting_key_id`` (the caller's own key) is the one to revoke."""
        if acting_key_id is not None and key_id == acting_key_id:
            raise Conflict("a key cannot revoke itself; use another admin key")
        async with self._db.connection() as conn:
            key = await store.revoke(conn, key_id)
        if key is None:
            raise NotFound(f"no API key {key_id}")
        log.info("api key revoked", extra={"key_id": str(key.id), "key_name": key.name})
        return key

    async def authenticate(self, token: str | None) -> Principal:
        """The principal a bearer token stands for; Unauthorized if it is missing, malformed,
        unknown or revoked."""
        match = _TOKEN.fullmatch(token or "")
        if match is None:
            raise Unauthorized("missing or malformed API key; send `Authorization: Bearer <key>`")
        prefix, secret = match.groups()
        async with self._db.connection() as conn:
            stored = await store.by_prefix(conn, prefix)
            if stored is None or not hmac.compare_digest(stored.secret_hash, _hash(secret)):
                raise Unauthorized("unknown API key")
            key = stored.key
            if key.revoked_at is not None:
                raise Unauthorized("this API key has been revoked")
            if key.last_used_at is None or datetime.now(UTC) - key.last_used_at >= TOUCH_EVERY:
                await store.touch(conn, key.id, TOUCH_EVERY)
        return Principal(key_id=key.id, key_name=key.name, role=key.role, agent_id=key.agent_id,
                         queues=key.queues)


def _out_of_band_entry(key: ApiKey) -> AuditRow:
    return AuditRow(
        at=key.created_at,
        key_id=None,
        key_name=None,
        role=None,
        method="CLI",
        path="",
        action="create_api_key",
        target=str(key.id),
        status=201,
        client_ip=None,
        request_id=None,
        detail={"name": key.name, "role": key.role.value},
    )
