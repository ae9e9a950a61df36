"""Webhook delivery for real: the feed in Redis, the dispatcher writing deliveries to Postgres,
a real Celery worker (a subprocess on the test broker, its own queue) sending them, and a real
HTTP receiver on loopback.

Proves: a signed delivery verifies; a receiver failing twice then succeeding gets the event
accepted exactly once; a receiver that is down and comes back gets it; a 4xx is not retried;
two dispatchers make one delivery per event; a dispatcher that restarts goes on from its cursor;
a hanging receiver is suspended by the breaker while another receiver gets everything; a lost
task is found by the sweep.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as redis
from celery import Celery

from controller.domain import webhooks as wh
from controller.domain.feed import FeedEvent, Topic
from controller.domain.webhooks import AddressPolicy
from controller.engines.webhooks import BREAKER_THRESHOLD
from controller.services.feed import FeedService
from controller.services.webhooks import WebhookDispatcher, WebhookService, WebhookSpec
from controller.storage.db import Database
from controller.storage.feed import FeedStream
from controller.storage.lease import Lease
from controller.worker.sender import CelerySender
from tests.celery_worker import start_worker, stop_worker
from tests.conftest import TEST_BROKER_URL, TEST_REDIS_URL, eventually
from tests.receiver import BlackHole, Receiver, free_port

BROKER = TEST_BROKER_URL


@pytest.fixture(scope="module")
def webhook_queue() -> str:
    return f"ccc-test-webhooks-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(migrated_database: str, webhook_queue: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_worker(migrated_database, webhook_queue, log_path)
    yield log_path
    stop_worker(process)


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield conn
    await conn.aclose()


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, max_size=4)
    await database.open()
    async with database.connection() as conn:
        await conn.execute("DELETE FROM webhooks")
    yield database
    await database.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


class Cluster:
    """What one controller process runs for webhooks, on one cluster's feed."""

    def __init__(self, db: Database, client: redis.Redis, cluster: str, queue: str) -> None:
        self.db, self.client, self.cluster, self.queue = db, client, cluster, queue
        self.feed = FeedService(FeedStream(client, cluster), "publisher", read_block_ms=200)
        self.sender = CelerySender(BROKER, queue)
        self.webhooks = WebhookService(db, AddressPolicy(), self.sender)
        self.dispatchers: list[WebhookDispatcher] = []

    async def start(self) -> None:
        await self.feed.start()

    async def dispatcher(self, node: str, lease_key: str | None = None,
                         sender: CelerySender | None = None) -> WebhookDispatcher:
        key = lease_key or f"ccc:{self.cluster}:webhooks:dispatcher"
        dispatcher = WebhookDispatcher(self.db, FeedStream(self.client, self.cluster),
                                       Lease(self.client, key), sender or self.sender, self.cluster, node,
                                       read_block_ms=200)
        await dispatcher.start()
        self.dispatchers.append(dispatcher)
        return dispatcher

    async def leading(self, dispatcher: WebhookDispatcher) -> None:
        await eventually(lambda: dispatcher.is_leader and dispatcher.cursor is not None, 10,
                         what=f"dispatcher {dispatcher.node} to lead with its cursor")

    def publish(self, n: int, kind: str = "alarm.raised") -> None:
        self.feed.publish(FeedEvent(Topic.ALARMS, kind, {"n": n}, queues=("support",)))

    async def close(self) -> None:
        for dispatcher in self.dispatchers:
            await dispatcher.close()
        await self.feed.close()
        await asyncio.to_thread(self.sender.close)


@pytest.fixture
async def cluster(db: Database, client: redis.Redis, webhook_queue: str,
                  worker: Path) -> AsyncIterator[Cluster]:
    made = Cluster(db, client, f"t{uuid.uuid4().hex[:12]}", webhook_queue)
    await made.start()
    yield made
    await made.close()


async def deliveries(db: Database, webhook_id: uuid.UUID) -> list[dict]:
    async with db.connection() as conn:
        cursor = await conn.execute(
            "SELECT d.*, (SELECT array_agg(a.outcome ORDER BY a.attempt) FROM webhook_attempts a "
            "WHERE a.delivery_id = d.id) AS outcomes FROM webhook_deliveries d WHERE webhook_id = %s "
            "ORDER BY seq", (webhook_id,))
        return await cursor.fetchall()


async def settled(db: Database, webhook_id: uuid.UUID, count: int, timeout: float = 30) -> list[dict]:
    """The webhook's deliveries once ``count`` of them exist and none is pending."""
    async def done() -> bool:
        rows = await deliveries(db, webhook_id)
        return len(rows) == count and all(r["status"] != "pending" for r in rows)

    await eventually(done, timeout, interval=0.2, what=f"{count} deliveries to finish")
    return await deliveries(db, webhook_id)


async def test_a_signed_delivery_verifies(cluster: Cluster, receiver: Receiver) -> None:
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/signed", topics=("alarms",)))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(1)
    cluster.feed.publish(FeedEvent(Topic.CALLS, "call.answered", {}))  # not for this webhook
    (row,) = await settled(cluster.db, hook.id, 1)
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["outcomes"] == ["delivered"]
    assert row["last_status_code"] == 200 and row["last_latency_ms"] > 0
    (got,) = receiver.at("/signed")
    assert wh.verify(hook.secret, got.headers["x-ccc-timestamp"], got.headers["x-ccc-signature"], got.body,
                     now=time.time())
    assert not wh.verify("whsec_someone-elses-secret", got.headers["x-ccc-timestamp"],
                         got.headers["x-ccc-signature"], got.body, now=time.time())
    body = got.json
    assert body["type"] == "alarm.raised" and body["topic"] == "alarms" and body["data"] == {"n": 1}
    assert got.headers["x-ccc-event-id"] == body["id"] == f"evt-{row['seq']}"
    assert got.headers["x-ccc-delivery-id"] == str(row["id"])
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("cc-controller-webhooks/")


async def test_a_receiver_that_fails_twice_then_succeeds_gets_the_event_exactly_once(
        cluster: Cluster, receiver: Receiver) -> None:
    receiver.script["/flaky"] = [503, 500]
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/flaky"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(7)
    (row,) = await settled(cluster.db, hook.id, 1)
    assert row["status"] == "delivered" and row["outcomes"] == ["retry", "retry", "delivered"]
    got = receiver.at("/flaky")
    assert [r.status for r in got] == [503, 500, 200]
    accepted = [r for r in got if r.status == 200]
    assert len(accepted) == 1 and accepted[0].json["data"] == {"n": 7}
    # Every attempt is the same delivery, signed afresh (a new timestamp each time).
    assert {r.headers["x-ccc-delivery-id"] for r in got} == {str(row["id"])}
    assert [r.headers["x-ccc-attempt"] for r in got] == ["1", "2", "3"]
    for r in got:
        assert wh.verify(hook.secret, r.headers["x-ccc-timestamp"], r.headers["x-ccc-signature"], r.body,
                         now=time.time())
    # The log through the service, as the API shows it.
    (logged,) = await cluster.webhooks.deliveries(hook.id, None, None, 10)
    assert [a["status_code"] for a in logged.attempt_log] == [503, 500, 200]
    assert "HTTP 503" in logged.attempt_log[0]["error"] and logged.attempt_log[2]["error"] is None


async def test_a_receiver_down_then_up_gets_the_event(cluster: Cluster, db: Database) -> None:
    port = free_port()
    hook = await cluster.webhooks.create(WebhookSpec(url=f"http://127.0.0.1:{port}/later"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(3)

    async def failed_once() -> bool:
        rows = await deliveries(db, hook.id)
        return bool(rows) and bool(rows[0]["outcomes"])

    await eventually(failed_once, 20, interval=0.05, what="a first attempt to fail")
    receiver = Receiver(port).start()
    try:
        (row,) = await settled(db, hook.id, 1)
        assert row["status"] == "delivered" and row["outcomes"][0] == "retry"
        assert row["outcomes"][-1] == "delivered" and row["attempts"] >= 2
        (logged,) = await cluster.webhooks.deliveries(hook.id, None, None, 10)
        assert logged.attempt_log[0]["status_code"] is None and "Connect" in logged.attempt_log[0]["error"]
        assert [r.json["data"] for r in receiver.at("/later")] == [{"n": 3}]
    finally:
        receiver.stop()


@pytest.mark.parametrize("status", [400, 404, 410])
async def test_a_refusal_is_not_retried(cluster: Cluster, receiver: Receiver, status: int) -> None:
    receiver.script["/no"] = [status]
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/no"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(1)
    (row,) = await settled(cluster.db, hook.id, 1)
    assert row["status"] == "failed" and row["attempts"] == 1 and row["outcomes"] == ["failed"]
    assert f"HTTP {status}" in row["last_error"] and "not retried" in row["last_error"]
    assert len(receiver.at("/no")) == 1
    # A refusal says nothing about the receiver being down: its breaker is untouched.
    assert (await cluster.webhooks.get(hook.id)).consecutive_failures == 0


async def test_429_and_408_are_retried(cluster: Cluster, receiver: Receiver) -> None:
    receiver.script["/busy"] = [429, 408]
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/busy"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(1)
    (row,) = await settled(cluster.db, hook.id, 1)
    assert row["outcomes"] == ["retry", "retry", "delivered"]
    assert [r.status for r in receiver.at("/busy")] == [429, 408, 200]


async def test_a_receiver_that_never_accepts_fails_after_max_attempts(cluster: Cluster,
                                                                      receiver: Receiver) -> None:
    receiver.script["/down"] = [502] * 10
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/down"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(1)
    (row,) = await settled(cluster.db, hook.id, 1)
    assert row["status"] == "failed" and row["attempts"] == 6  # CCC_WEBHOOK_MAX_ATTEMPTS
    assert row["outcomes"] == ["retry"] * 5 + ["failed"] and "gave up after 6 attempts" in row["last_error"]
    # A redelivery is a new round: the receiver answers now.
    receiver.script["/down"] = []
    again = await cluster.webhooks.redeliver(hook.id, row["id"])
    assert again.status == "pending"
    (row,) = await settled(cluster.db, hook.id, 1)
    assert row["status"] == "delivered" and row["attempts"] == 7
    assert [r.status for r in receiver.at("/down")] == [502] * 6 + [200]


async def test_two_dispatchers_make_one_delivery_per_event(cluster: Cluster, receiver: Receiver) -> None:
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/once"))
    a = await cluster.dispatcher("a")
    b = await cluster.dispatcher("b")
    await eventually(lambda: a.is_leader != b.is_leader, 10, what="one of the two to lead")
    await cluster.leading(a if a.is_leader else b)
    for n in range(30):
        cluster.publish(n)
    rows = await settled(cluster.db, hook.id, 30)
    assert all(r["status"] == "delivered" for r in rows)
    assert sorted(r.json["data"]["n"] for r in receiver.at("/once")) == list(range(30))
    assert a.dispatched + b.dispatched == 30 and 0 in (a.dispatched, b.dispatched)


async def test_two_dispatchers_that_both_lead_still_deliver_each_event_once(
        cluster: Cluster, receiver: Receiver) -> None:
    # Two leases on different keys: both lead, both read every entry. The deliveries' unique
    # key (webhook, entry) is what keeps it to one.
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/both"))
    a = await cluster.dispatcher("a", lease_key=f"ccc:{cluster.cluster}:lease-a")
    b = await cluster.dispatcher("b", lease_key=f"ccc:{cluster.cluster}:lease-b")
    await cluster.leading(a)
    await cluster.leading(b)
    for n in range(40):
        cluster.publish(n)
    rows = await settled(cluster.db, hook.id, 40)
    assert len({r["seq"] for r in rows}) == 40
    counts = Counter(r.headers["x-ccc-event-id"] for r in receiver.at("/both"))
    assert len(counts) == 40 and set(counts.values()) == {1}


async def test_a_restarted_dispatcher_goes_on_from_its_cursor(cluster: Cluster, receiver: Receiver) -> None:
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/resume"))
    first = await cluster.dispatcher("a")
    await cluster.leading(first)
    for n in range(5):
        cluster.publish(n)
    await settled(cluster.db, hook.id, 5)
    await first.close()
    # Published while no dispatcher runs (the controller is restarting).
    for n in range(5, 12):
        cluster.publish(n)
    await eventually(lambda: cluster.feed.pending == 0, 10, what="the feed written")
    second = await cluster.dispatcher("b")
    await cluster.leading(second)
    rows = await settled(cluster.db, hook.id, 12)
    assert [r["status"] for r in rows] == ["delivered"] * 12
    assert sorted(r.json["data"]["n"] for r in receiver.at("/resume")) == list(range(12))
    async with cluster.db.connection() as conn:
        cursor = await conn.execute("SELECT seq FROM webhook_feed_cursor WHERE cluster = %s",
                                    (cluster.cluster,))
        assert (await cursor.fetchone())["seq"] == rows[-1]["seq"]


async def test_a_hanging_receiver_is_suspended_and_does_not_hold_up_another(
        cluster: Cluster, receiver: Receiver) -> None:
    hole = BlackHole()
    try:
        stuck = await cluster.webhooks.create(WebhookSpec(url=f"{hole.url}/never", description="hangs"))
        healthy = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/fine"))
        dispatcher = await cluster.dispatcher("a")
        await cluster.leading(dispatcher)
        for n in range(40):
            cluster.publish(n)
        rows = await settled(cluster.db, healthy.id, 40, timeout=60)
        assert all(r["status"] == "delivered" for r in rows)

        async def suspended() -> bool:
            return (await cluster.webhooks.get(stuck.id)).consecutive_failures >= BREAKER_THRESHOLD

        await eventually(suspended, 30, what="the hanging receiver to be suspended")
        hook = await cluster.webhooks.get(stuck.id)
        assert hook.suspended_until is not None
        # Its deliveries wait for it without spending their attempts: most have not been tried.
        waiting = [r for r in await deliveries(cluster.db, stuck.id) if r["status"] == "pending"]
        untried = [r for r in waiting if r["round_attempts"] == 0]
        assert len(untried) >= 40 - 2 * 8, [r["round_attempts"] for r in waiting]  # at most two waves of 8
        assert "timed out" in next(r["last_error"] for r in await deliveries(cluster.db, stuck.id)
                                   if r["last_error"])
    finally:
        hole.close()


async def test_the_sweep_sends_deliveries_whose_task_was_lost(cluster: Cluster, receiver: Receiver,
                                                             webhook_queue: str) -> None:
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/swept"))
    dead_broker = CelerySender("redis://127.0.0.1:1/0", webhook_queue)
    try:
        dispatcher = await cluster.dispatcher("a", sender=dead_broker)
        await cluster.leading(dispatcher)
        cluster.publish(1)
        await eventually(lambda: dispatcher.dispatched == 1, 20, what="the delivery made (its task not sent)")
        rows = await deliveries(cluster.db, hook.id)
        assert rows[0]["status"] == "pending" and rows[0]["attempts"] == 0
        Celery(broker=BROKER).send_task("controller.worker.tasks.sweep_webhook_deliveries", args=[0],
                                        queue=webhook_queue)
        (row,) = await settled(cluster.db, hook.id, 1)
        assert row["status"] == "delivered" and len(receiver.at("/swept")) == 1
    finally:
        await asyncio.to_thread(dead_broker.close)


async def test_a_disabled_webhook_gets_nothing_and_filters_apply(cluster: Cluster,
                                                                 receiver: Receiver) -> None:
    off = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/off", enabled=False))
    typed = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/typed", types=("alarm.cleared",)))
    queued = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/queued", queue="sales"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(1, "alarm.raised")
    cluster.publish(2, "alarm.cleared")
    await settled(cluster.db, typed.id, 1)
    assert [r.json["type"] for r in receiver.at("/typed")] == ["alarm.cleared"]
    assert await deliveries(cluster.db, off.id) == [] and await deliveries(cluster.db, queued.id) == []


async def test_payload_is_stored_as_sent(db: Database, cluster: Cluster, receiver: Receiver) -> None:
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/payload"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    data = {"text": "déjà vu", "nested": {"a": [1, 2]}}
    cluster.feed.publish(FeedEvent(Topic.ALARMS, "alarm.raised", data))
    (row,) = await settled(db, hook.id, 1)
    (got,) = receiver.at("/payload")
    assert json.loads(got.body) == row["payload"]
    assert got.json["data"] == {"text": "déjà vu", "nested": {"a": [1, 2]}}


async def test_deleting_a_webhook_deletes_its_log(db: Database, cluster: Cluster, receiver: Receiver) -> None:
    hook = await cluster.webhooks.create(WebhookSpec(url=f"{receiver.url}/gone"))
    dispatcher = await cluster.dispatcher("a")
    await cluster.leading(dispatcher)
    cluster.publish(1)
    await settled(db, hook.id, 1)
    await cluster.webhooks.delete(hook.id)
    assert await deliveries(db, hook.id) == []
    async with await psycopg.AsyncConnection.connect(db.url) as conn:
        cursor = await conn.execute("SELECT count(*) FROM webhook_attempts a LEFT JOIN webhook_deliveries d "
                                    "ON d.id = a.delivery_id WHERE d.id IS NULL")
        assert (await cursor.fetchone())[0] == 0


async def test_the_request_goes_to_the_address_checked_with_the_urls_host(
        cluster: Cluster, receiver: Receiver, migrated_database: str) -> None:
    # The deliverer itself, as a worker runs it (no dispatcher: the rows are made here).
    from controller.engines.webhooks import RetryPolicy
    from controller.services.webhook_delivery import WebhookDeliverer
    from controller.storage import webhooks as store

    hook = await cluster.webhooks.create(WebhookSpec(url=f"http://localhost:{receiver.port}/pinned?x=1"))
    made = [uuid.uuid4(), uuid.uuid4()]
    async with cluster.db.connection() as conn:
        await store.insert_deliveries(conn, 1, [
            store.NewDelivery(made[0], hook.id, 1, "alarm.raised", {"id": "evt-1", "seq": 1}),
            store.NewDelivery(made[1], hook.id, 2, "alarm.raised", {"id": "evt-2", "seq": 2})])
    policy = RetryPolicy(2, 0.1, 0.2)
    open_policy = WebhookDeliverer(migrated_database, policy, AddressPolicy(), 2.0, pool_size=1)
    strict = WebhookDeliverer(migrated_database, policy, AddressPolicy(deny_private=True), 2.0, pool_size=1)
    try:
        sent = await asyncio.to_thread(open_policy.attempt, made[0])
        assert sent.outcome == "delivered"
        (got,) = receiver.at("/pinned?x=1")
        # Sent to the address "localhost" resolved to, with the URL's host in the Host header.
        assert got.headers["host"] == f"localhost:{receiver.port}"
        # A second run of the same task (Celery delivers at least once) sends nothing.
        assert (await asyncio.to_thread(open_policy.attempt, made[0])).outcome == "skipped"
        refused = await asyncio.to_thread(strict.attempt, made[1])
        assert refused.outcome == "failed" and "not a public address" in refused.detail
        assert len(receiver.at("/pinned?x=1")) == 1
    finally:
        open_policy.close()
        strict.close()

def test_the_worker_log_has_no_unexpected_errors(worker: Path) -> None:
    # Runs last in this module: whatever the tests above did, no task crashed.
    text = worker.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
