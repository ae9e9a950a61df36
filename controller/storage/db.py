"""The Postgres connection pool and its health probe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from controller.domain.errors import StorageUnavailable

log = logging.getLogger(__name__)


class Database:
    def __init__(self, url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
            # A dead server must not hang requests: fail fast and let callers retry.
            timeout=5.0,
            check=AsyncConnectionPool.check_connection,
        )

    async def open(self) -> None:
        # wait=False: the controller starts (and reports not-ready) while Postgres is down.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection in a transaction; StorageUnavailable when Postgres is away."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StorageUnavailable(f"postgres: {exc}") from exc

    async def check(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=max(1, int(timeout)))
                try:
                    await conn.execute("SELECT 1")
                finally:
                    await conn.close()
        except (OSError, psycopg.Error, TimeoutError) as exc:
            raise StorageUnavailable(f"postgres: {type(exc).__name__}: {exc}".strip()) from exc
