"""The record writer: everything that must reach Postgres goes through one ordered queue.

Callers ``put`` rows without waiting. One task writes them in batches, in order, in one
transaction per batch. When Postgres is away the batch stays at the head of the queue and is
retried with back-off, so call records made during an outage are written afterwards instead
of being lost; ``pending`` tells how many are waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import psycopg

from controller.backoff import Backoff, stop_task
from controller.domain.errors import StorageUnavailable

from .db import Database
from .records import Row, write_rows

log = logging.getLogger(__name__)

BATCH = 500


class RecordWriter:
    def __init__(self, db: Database, initial_delay: float = 0.5, max_delay: float = 10.0) -> None:
        self._db = db
        self._queue: deque[Row] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._backoff = Backoff(initial_delay, max_delay)
        self._task: asyncio.Task[None] | None = None
        self.healthy = True

    @property
    def pending(self) -> int:
        return len(self._queue)

    def put(self, *rows: Row) -> None:
        self._queue.extend(rows)
        self._idle.clear()
        self._wakeup.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="record-writer")

    async def flushed(self, timeout: float = 10.0) -> None:
        """Wait until every row put so far is in Postgres."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        try:
            await self.flushed(timeout)
        except TimeoutError:
            log.error("stopping with %d call records not yet written to Postgres", self.pending)
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            try:
                await self._write(batch)
            except StorageUnavailable as exc:
                if self.healthy:
                    log.error("postgres unavailable, buffering call records: %s", exc)
                self.healthy = False
                await self._backoff.wait()
                continue
            for _ in batch:
                self._queue.popleft()
            if not self.healthy:
                log.warning("postgres back, buffered call records written", extra={"rows": len(batch)})
            self.healthy = True
            self._backoff.reset()

    async def _write(self, batch: list[Row]) -> None:
        try:
            async with self._db.connection() as conn:
                await write_rows(conn, batch)
        except StorageUnavailable:
            raise
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        except psycopg.Error:
            # A row Postgres refuses (a bug, not an outage) must not block the rows behind it:
            # write them one by one and drop only the bad ones, loudly.
            log.exception("batch of %d call records refused; retrying row by row", len(batch))
            for row in batch:
                try:
                    async with self._db.connection() as conn:
                        await write_rows(conn, [row])
                except psycopg.Error:
                    log.exception("call record dropped: %r", row)
