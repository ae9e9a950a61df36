"""Thin tasks: arguments in, one service call, result out."""

from __future__ import annotations

import asyncio

from controller.services.audit import AuditService
from controller.services.recordings import RecordingService
from controller.settings import load_settings
from controller.storage.db import Database
from controller.storage.outbox import RecordWriter
from controller.worker.app import app


async def _prune_audit_log(older_than_days: int) -> int:
    settings = load_settings()
    db = Database(settings.database_url, min_size=1, max_size=1)
    await db.open()
    try:
        return await AuditService(db, RecordWriter(db)).prune(older_than_days)
    finally:
        await db.close()


@app.task(name="controller.worker.tasks.prune_audit_log")
def prune_audit_log(older_than_days: int | None = None) -> int:
    """Delete audit entries older than the retention period; returns how many."""
    days = older_than_days if older_than_days is not None else load_settings().audit_retention_days
    return asyncio.run(_prune_audit_log(days))


async def _expire_recordings(older_than_days: int) -> int:
    settings = load_settings()
    db = Database(settings.database_url, min_size=1, max_size=1)
    await db.open()
    records = RecordWriter(db)
    await records.start()
    try:
        # No switch: deleting never talks to it (the service's switch is only for live calls).
        service = RecordingService(db, _NoSwitch(), AuditService(db, records), settings.recordings_path())
        return await service.expire(older_than_days)
    finally:
        await records.close()  # writes the audit records of the deletions
        await db.close()


class _NoSwitch:
    async def execute(self, command: object) -> None:
        raise RuntimeError("the worker does not control calls")


@app.task(name="controller.worker.tasks.expire_recordings")
def expire_recordings(older_than_days: int | None = None) -> int:
    """Delete call recordings (files and rows) older than the retention period; returns how many."""
    days = older_than_days if older_than_days is not None else load_settings().recordings_retention_days
    return asyncio.run(_expire_recordings(days))
