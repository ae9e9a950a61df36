"""Thin tasks: arguments in, one service call, result out."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from uuid import UUID

import psycopg
import redis.asyncio as redis
from celery import Task
from psycopg_pool import PoolTimeout

from controller.services.audit import AuditService
from controller.services.contacts import ContactService
from controller.services.outbound import OutboundService
from controller.services.recordings import RecordingService
from controller.services.webhook_delivery import WebhookDeliverer, deliverer_for
from controller.settings import load_settings
from controller.storage.db import Database
from controller.storage.hopper import HopperStore
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

    async def recording_active(self, name: str) -> bool:
        raise RuntimeError("the worker does not control calls")


@app.task(name="controller.worker.tasks.expire_recordings")
def expire_recordings(older_than_days: int | None = None) -> int:
    """Delete call recordings (files and rows) older than the retention period; returns how many."""
    days = older_than_days if older_than_days is not None else load_settings().recordings_retention_days
    return asyncio.run(_expire_recordings(days))


# ---- campaigns: the same services the API uses ------------------------------------------------


@asynccontextmanager
async def _outbound() -> AsyncIterator[OutboundService]:
    settings = load_settings()
    db = Database(settings.database_url, min_size=1, max_size=2)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=5.0,
                                  decode_responses=True)
    await db.open()
    try:
        yield OutboundService(db, HopperStore(client, settings.acd_cluster))
    finally:
        await client.aclose()
        await db.close()


@asynccontextmanager
async def _contacts() -> AsyncIterator[ContactService]:
    db = Database(load_settings().database_url, min_size=1, max_size=2)
    await db.open()
    try:
        yield ContactService(db)
    finally:
        await db.close()


async def _feed_hoppers() -> dict[str, dict[str, int]]:
    async with _outbound() as outbound:
        return {campaign: asdict(result) for campaign, result in (await outbound.feed_running()).items()}


@app.task(name="controller.worker.tasks.feed_hoppers")
def feed_hoppers() -> dict[str, dict[str, int]]:
    """Top up the hopper of every running campaign; per campaign, what was queued."""
    return asyncio.run(_feed_hoppers())


async def _expire_hoppers() -> int:
    async with _outbound() as outbound:
        return await outbound.expire_all()


@app.task(name="controller.worker.tasks.expire_hoppers")
def expire_hoppers() -> int:
    """Send stale hopper entries (and those of campaigns no longer running) back to the list."""
    return asyncio.run(_expire_hoppers())


async def _import_contacts(import_id: UUID) -> str | None:
    async with _contacts() as contacts:
        record = await contacts.process(import_id)
        return record.state if record is not None else None


@app.task(name="controller.worker.tasks.import_contacts")
def import_contacts(import_id: str) -> str | None:
    """Read a stored contact import (idempotent: a finished or running one is left alone);
    returns its final state, or None when there was nothing to do."""
    return asyncio.run(_import_contacts(UUID(import_id)))


async def _resume_imports() -> int:
    async with _contacts() as contacts:
        return await contacts.resume_stale()


@app.task(name="controller.worker.tasks.resume_imports")
def resume_imports() -> int:
    """Read imports the API could not hand over, or that a dead worker left half done."""
    return asyncio.run(_resume_imports())
# ---- webhooks --------------------------------------------------------------------------------

_deliverer_lock = threading.Lock()
_deliverer: WebhookDeliverer | None = None


def webhook_deliverer() -> WebhookDeliverer:
    """This worker process's deliverer (its own Postgres pool and HTTP client), made on first
    use, so a forked pool child never shares its parent's sockets."""
    global _deliverer
    with _deliverer_lock:
        if _deliverer is None:
            _deliverer = deliverer_for(load_settings())
        return _deliverer


@app.task(name="controller.worker.tasks.deliver_webhook", bind=True, max_retries=None,
          autoretry_for=(psycopg.OperationalError, PoolTimeout), retry_backoff=2, retry_backoff_max=60)
def deliver_webhook(self: Task, delivery_id: str) -> str:
    """One attempt of a webhook delivery; a retry is this task again, after the back-off."""
    result = webhook_deliverer().attempt(UUID(delivery_id))
    for released in result.released:
        deliver_webhook.apply_async((str(released),))
    if result.retry_in_s is not None:
        raise self.retry(countdown=result.retry_in_s)
    return result.outcome


@app.task(name="controller.worker.tasks.sweep_webhook_deliveries")
def sweep_webhook_deliveries(grace_s: float = 60.0, limit: int = 1000) -> int:
    """Queue again the pending deliveries whose task was lost; returns how many."""
    ids = webhook_deliverer().overdue(grace_s, limit)
    for delivery_id in ids:
        deliver_webhook.apply_async((str(delivery_id),))
    return len(ids)


@app.task(name="controller.worker.tasks.prune_webhook_deliveries")
def prune_webhook_deliveries(older_than_days: int | None = None) -> int:
    """Delete finished deliveries older than the retention period; returns how many."""
    days = older_than_days if older_than_days is not None else load_settings().webhook_log_retention_days
    return webhook_deliverer().prune(days)
