"""Thin tasks: arguments in, one service call, result out."""

from __future__ import annotations

import asyncio

from controller.services.audit import AuditService
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
