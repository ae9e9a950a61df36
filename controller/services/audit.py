"""The audit log: who changed what through the API, when, from where, with what outcome.

Entries go through the record writer (buffered, ordered, retried), so a Postgres outage
delays them and loses none. Reading goes straight to Postgres.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from controller.storage import audit as store
from controller.storage.audit import AuditEntry, AuditFilter
from controller.storage.db import Database
from controller.storage.outbox import RecordWriter
from controller.storage.records import AuditRow

log = logging.getLogger(__name__)

PRUNE_BATCH = 5000


class AuditService:
    def __init__(self, db: Database, records: RecordWriter) -> None:
        self._db = db
        self._records = records

    def record(self, row: AuditRow) -> None:
        """Queue one entry; it reaches Postgres as soon as Postgres is there."""
        self._records.put(row)

    async def list(self, filters: AuditFilter) -> list[AuditEntry]:
        """Entries matching ``filters``, newest first."""
        async with self._db.connection() as conn:
            return await store.list_entries(conn, filters)

    async def prune(self, older_than_days: int) -> int:
        """Delete entries older than ``older_than_days`` days; returns how many were deleted.

        Runs in batches of short transactions, so it can run while the API is writing.
        """
        if older_than_days < 0:
            raise ValueError("older_than_days must be 0 or more")
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        deleted = 0
        while True:
            async with self._db.connection() as conn:
                count = await store.prune_batch(conn, cutoff, PRUNE_BATCH)
            deleted += count
            if count < PRUNE_BATCH:
                break
        log.info("audit log pruned", extra={"deleted": deleted, "cutoff": cutoff.isoformat()})
        return deleted
