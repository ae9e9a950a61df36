"""Shared fixtures: the real Postgres, Redis and Asterisk that `make test` provides.

Connection details come from the same CCC_* variables the controller reads, plus
CCC_TEST_DATABASE_URL / CCC_TEST_REDIS_URL for the databases the tests may wipe.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from controller.settings import Settings

# Property tests check what holds, never how fast: a loaded CI machine must not fail them.
hypothesis_settings.register_profile("ccc", deadline=None)
hypothesis_settings.load_profile("ccc")

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("CCC_TEST_DATABASE_URL", "postgresql://ccc:ccc@127.0.0.1:5432/ccc_test")
TEST_REDIS_URL = os.environ.get("CCC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Celery's broker in tests (tasks the controller queues never reach a real worker's broker).
TEST_BROKER_URL = os.environ.get("CCC_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
# Prompts and voicemails the tests write stay out of the local Asterisk's folders.
TEST_MEDIA = Path(tempfile.gettempdir()) / f"ccc-test-media-{os.getpid()}"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": TEST_DATABASE_URL,
        "redis_url": TEST_REDIS_URL,
        "celery_broker_url": TEST_BROKER_URL,
        "reconnect_initial_delay": 0.2,
        "reconnect_max_delay": 1.0,
        "readiness_timeout": 1.0,
        "prompts_dir": str(TEST_MEDIA / "prompts"),
        "recordings_dir": str(TEST_MEDIA / "recordings"),
        # Each runtime its own ACD log in Redis unless a test shares one on purpose.
        "acd_cluster": f"t{uuid.uuid4().hex[:12]}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """A test database with a fresh schema at the latest migration, once per session."""
    from controller.storage.migrate import upgrade

    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float,
                     interval: float = 0.1, what: str = "condition") -> None:
    """Poll until ``check`` holds; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
async def db_conn(migrated_database: str) -> AsyncIterator[psycopg.AsyncConnection]:
    from psycopg.rows import dict_row

    conn = await psycopg.AsyncConnection.connect(migrated_database, autocommit=True,
                                                 row_factory=dict_row)
    yield conn
    await conn.close()
