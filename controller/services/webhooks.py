"""Webhooks in the controller: the subscriptions (API), and the dispatcher that turns feed
entries into deliveries for the Celery workers.

The dispatcher. One per cluster does the work: each controller process runs one, and the one
holding the lease ``ccc:{cluster}:webhooks:dispatcher`` reads the feed stream in Redis from a
cursor kept in Postgres. For every batch it reads, in one transaction, it makes a delivery for
each enabled webhook whose filter admits an entry and moves the cursor past the batch; then it
queues a task per new delivery. So:

- a restart (of the process, or a new leader) goes on from the cursor: nothing read is lost,
  and nothing is skipped while the feed still holds it (the feed keeps the newest 100,000);
- an entry read twice (two processes that both believe they lead, for the moment a lease
  takes to expire, or a batch read again after a crash) makes no second delivery: deliveries
  are unique per webhook and entry;
- a task that could not be queued (the broker away) is not lost either: the delivery is
  pending in Postgres, and the workers' sweep queues it again.

Nothing here waits on a receiver: the dispatcher only writes rows and queues tasks, and call
handling never waits on the dispatcher (the feed's ``publish`` never blocks).

When the feed in Redis starts again from 1 (Redis lost its data), the cursor would be ahead of
every new entry; the dispatcher notices the newest entry is behind its cursor, starts a new
*epoch* and reads from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from controller.backoff import Backoff
from controller.domain.errors import Conflict, InvalidRequest, NotFound, StorageUnavailable
from controller.domain.feed import FeedEntry
from controller.domain.webhooks import AddressPolicy, Webhook, check_url, new_secret
from controller.storage import webhooks as store
from controller.storage.db import Database
from controller.storage.feed import FeedStream
from controller.storage.lease import Lease
from controller.storage.webhooks import Delivery, NewDelivery

log = logging.getLogger(__name__)

LEASE_MS = 5_000
READ_BLOCK_MS = 1_000
BATCH = 500


class DeliveryQueue(Protocol):
    async def deliver_webhooks(self, delivery_ids: list[UUID]) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    description: str = ""
    topics: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    queue: str | None = None
    agent_id: str | None = None
    enabled: bool = True
    secret: str | None = None  # None: keep (replace) or generate (create)


class WebhookService:
    def __init__(self, db: Database, addresses: AddressPolicy, deliveries: DeliveryQueue) -> None:
        self._db = db
        self._addresses = addresses
        self._deliveries = deliveries

    def _check(self, spec: WebhookSpec) -> None:
        try:
            check_url(spec.url, self._addresses)
        except ValueError as exc:
            raise InvalidRequest(f"url: {exc}") from None

    async def create(self, spec: WebhookSpec) -> Webhook:
        """A new webhook, with its secret (given, or made here)."""
        self._check(spec)
        async with self._db.connection() as conn:
            return await store.insert_webhook(
                conn, id=uuid4(), description=spec.description, url=spec.url, topics=list(spec.topics),
                types=list(spec.types), queue=spec.queue, agent_id=spec.agent_id,
                secret=spec.secret or new_secret(), enabled=spec.enabled)

    async def list(self) -> list[Webhook]:
        async with self._db.connection() as conn:
            return await store.list_webhooks(conn)

    async def get(self, webhook_id: UUID) -> Webhook:
        async with self._db.connection() as conn:
            webhook = await store.get_webhook(conn, webhook_id)
        if webhook is None:
            raise NotFound(f"no webhook {webhook_id}")
        return webhook

    async def replace(self, webhook_id: UUID, spec: WebhookSpec) -> Webhook:
        self._check(spec)
        async with self._db.connection() as conn:
            webhook = await store.update_webhook(
                conn, id=webhook_id, description=spec.description, url=spec.url, topics=list(spec.topics),
                types=list(spec.types), queue=spec.queue, agent_id=spec.agent_id, enabled=spec.enabled,
                secret=spec.secret)
        if webhook is None:
            raise NotFound(f"no webhook {webhook_id}")
        return webhook

    async def rotate_secret(self, webhook_id: UUID) -> Webhook:
        async with self._db.connection() as conn:
            webhook = await store.set_secret(conn, webhook_id, new_secret())
        if webhook is None:
            raise NotFound(f"no webhook {webhook_id}")
        return webhook

    async def delete(self, webhook_id: UUID) -> None:
        async with self._db.connection() as conn:
            if not await store.delete_webhook(conn, webhook_id):
                raise NotFound(f"no webhook {webhook_id}")

    async def deliveries(self, webhook_id: UUID, status: str | None, before: datetime | None,
                         limit: int) -> list[Delivery]:
        async with self._db.connection() as conn:
            if await store.get_webhook(conn, webhook_id) is None:
                raise NotFound(f"no webhook {webhook_id}")
            return await store.list_deliveries(conn, webhook_id, status, before, limit)

    async def delivery(self, webhook_id: UUID, delivery_id: UUID) -> Delivery:
        async with self._db.connection() as conn:
            found = await store.get_delivery(conn, webhook_id, delivery_id)
        if found is None:
            raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id}")
        return found

    async def redeliver(self, webhook_id: UUID, delivery_id: UUID) -> Delivery:
        """Send a delivered or failed delivery again, with a fresh round of attempts."""
        async with self._db.connection() as conn:
            if not await store.redeliver(conn, webhook_id, delivery_id):
                found = await store.get_delivery(conn, webhook_id, delivery_id)
                if found is None:
                    raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id}")
                raise Conflict(f"delivery {delivery_id} is still pending; it will be attempted")
        try:
            await self._deliveries.deliver_webhooks([delivery_id])
        except Exception as exc:  # the broker: the sweep queues it when the broker is back
            log.warning("redelivery %s not queued now (%s); the workers' sweep will", delivery_id, exc)
        return await self.delivery(webhook_id, delivery_id)


class WebhookDispatcher:
    def __init__(self, db: Database, stream: FeedStream, lease: Lease, deliveries: DeliveryQueue,
                 cluster: str, node: str, *, read_block_ms: int = READ_BLOCK_MS, batch: int = BATCH) -> None:
        self._db = db
        self._stream = stream
        self._lease = lease
        self._deliveries = deliveries
        self.cluster = cluster
        self.node = node
        self._read_block_ms = read_block_ms
        self._batch = batch
        self._cursor: tuple[int, int] | None = None  # (epoch, seq), while leading
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.is_leader = False
        self.dispatched = 0  # deliveries made by this process

    @property
    def cursor(self) -> tuple[int, int] | None:
        return self._cursor

    async def start(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="webhook-dispatch")

    async def close(self) -> None:
        # Like the feed: the loop stops between two Redis commands rather than being cancelled
        # inside a blocking read.
        self._stop.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self._read_block_ms / 1000 + 5):
                    await asyncio.shield(self._task)
            except TimeoutError:
                log.error("webhook dispatcher did not stop; cancelling it")
                self._task.cancel()
            self._task = None
        if self.is_leader:
            with contextlib.suppress(StorageUnavailable):
                await self._lease.release(self.node)
            self.is_leader = False

    async def _run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while not self._stop.is_set():
            try:
                leading = await self._lease.hold(self.node, LEASE_MS)
            except StorageUnavailable as exc:
                if self.is_leader:
                    log.warning("webhook dispatcher lease not renewed: %s", exc.detail)
                leading = False
            if leading != self.is_leader:
                log.info("webhook dispatcher: %s %s", self.node, "leads" if leading else "no longer leads")
                self.is_leader = leading
                self._cursor = None  # read from Postgres when leading again
            if not leading:
                await self._pause(1.0)
                continue
            try:
                await self._pump()
                backoff.reset()
            except StorageUnavailable as exc:
                log.warning("webhook dispatch waits (%s); retrying in %.1f s", exc.detail, backoff.delay)
                self._cursor = None
                await self._pause(backoff.delay)
                backoff.delay = min(backoff.delay * 2, backoff.maximum)
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                self._cursor = None
                await self._pause(1.0)

    async def _pump(self) -> None:
        if self._cursor is None:
            self._cursor = await self._load_cursor()
        epoch, seq = self._cursor
        entries = await self._stream.wait_after(seq, self._read_block_ms, self._batch)
        if not entries:
            _, newest = await self._stream.bounds()
            if newest < seq:
                log.warning("the feed starts again at %d (the cursor was at %d): Redis lost it; "
                            "webhooks read it from the start", newest, seq)
                async with self._db.connection() as conn:
                    self._cursor = await store.new_epoch(conn, self.cluster, epoch, 0)
            return
        if entries[0].seq > seq + 1:
            log.error("feed entries %d..%d were trimmed before webhooks read them; they are not delivered",
                      seq + 1, entries[0].seq - 1)
        made = await self._dispatch(epoch, entries)
        self._cursor = (epoch, entries[-1].seq)
        self.dispatched += len(made)
        if made:
            try:
                await self._deliveries.deliver_webhooks(made)
            except Exception as exc:  # the broker: the workers' sweep queues them later
                log.warning("%d webhook deliveries not queued now (%s); the workers' sweep will",
                            len(made), exc)

    async def _load_cursor(self) -> tuple[int, int]:
        async with self._db.connection() as conn:
            found = await store.get_cursor(conn, self.cluster)
            if found is not None:
                return found
        # First run in this cluster: from now on (the feed's history is not sent to webhooks).
        _, newest = await self._stream.bounds()
        async with self._db.connection() as conn:
            return await store.init_cursor(conn, self.cluster, newest)

    async def _dispatch(self, epoch: int, entries: list[FeedEntry]) -> list[UUID]:
        async with self._db.connection() as conn:
            webhooks = await store.list_webhooks(conn, enabled_only=True)
            rows = [NewDelivery(uuid4(), webhook.id, entry.seq, entry.event.type, entry.to_json())
                    for entry in entries for webhook in webhooks if webhook.filter.matches(entry)]
            made = await store.insert_deliveries(conn, epoch, rows)
            await store.advance_cursor(conn, self.cluster, epoch, entries[-1].seq)
        return made

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
