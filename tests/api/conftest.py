"""The REST API built the real way (settings → runtime → app) over the real Postgres and Redis.

No Asterisk: the switch is never started, so these tests run wherever Postgres and Redis do.
One runtime and one key per role serve the whole session; tests make their own keys when they
need to change one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI

from controller.api.app import create_app
from controller.bootstrap import Runtime, build_runtime
from controller.domain.access import Role
from controller.storage.audit import AuditEntry, AuditFilter
from tests.conftest import make_settings

CLIENT_IP = "203.0.113.7"  # TEST-NET-3: the address the ASGI transport reports as the client


@pytest.fixture(scope="session")
async def runtime(migrated_database: str) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(database_url=migrated_database))
    await runtime.db.open()
    await runtime.records.start()
    await runtime.live.start()
    await runtime.feed.start()
    await runtime.acd.start()
    yield runtime
    await runtime.acd.close()
    await runtime.feed.close()
    await runtime.records.close()
    await runtime.live.close()
    await runtime.db.close()


@pytest.fixture(scope="session")
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://controller") as client:
        yield client


@pytest.fixture(scope="session")
async def keys(runtime: Runtime) -> dict[Role, str]:
    """One key per role (plaintext), made out of band like the first admin key."""
    made = {}
    for role in Role:
        _, plaintext = await runtime.api_keys.create(f"test-{role.value}", role, None)
        made[role] = plaintext
    return made


@pytest.fixture(scope="session")
def admin_key(keys: dict[Role, str]) -> str:
    return keys[Role.ADMIN]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def audit_of(runtime: Runtime, key_id: UUID | None = None, **filters: object) -> list[AuditEntry]:
    """The audit entries once every entry recorded so far has reached Postgres."""
    await runtime.records.flushed()
    return await runtime.audit.list(AuditFilter(key_id=key_id, **filters))  # type: ignore[arg-type]
