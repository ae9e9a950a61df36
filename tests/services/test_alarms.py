"""Alarm evaluation on the real Postgres and Redis: two processes share one ACD (its log in
Redis), each runs an alarm service; only the ACD leader raises and clears queue alarms, each
process watches its own PBX links, a new leader goes on from the alarms in Postgres, and every
raise and clear is in the feed (topic alarms, naming the queue)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from controller.domain.access import Principal, Role
from controller.domain.agents import Agent, QueueConfig, QueueDestination, QueueEntry, Strategy
from controller.domain.alarms import DialerFigures, QueueAlarmRule, SystemAlarmRule, Threshold
from controller.domain.feed import FeedEntry, Topic
from controller.engines import acd
from controller.services.acd import AcdService
from controller.services.alarms import AlarmService
from controller.services.feed import FeedService
from controller.storage import alarms as store
from controller.storage.acd_log import AcdLog
from controller.storage.alarms import AlarmFilter
from controller.storage.codec import encode
from controller.storage.db import Database
from controller.storage.feed import FeedStream
from tests.conftest import TEST_REDIS_URL, eventually

# Callers wait even with no agent logged in.
WAITS = {"join_when_empty": True, "leave_when_empty": False}


class NoPhones:
    """The call service's side of the ACD: nobody is rung in these tests (no agent is free)."""

    async def offer(self, call_id: str, offer_id: str, agent_id: str, device: str, timeout_s: int) -> None:
        pass

    async def withdraw(self, offer_id: str, agent_id: str) -> None:
        pass

    async def connect(self, call_id: str, offer_id: str, agent_id: str, entry=None) -> None:
        pass

    async def overflow(self, call_id: str, reason: str, queue: str,
                       destination: QueueDestination | None = None) -> None:
        pass

    async def announce(self, call_id: str, queue: str, position: int, eta_s: int | None) -> None:
        pass


@dataclass
class Process:
    acd: AcdService
    alarms: AlarmService
    links: dict[str, bool]


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield conn
    await conn.aclose()


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, max_size=4)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"cluster": f"t{tag}", "queue": f"q-{tag}", "a": f"a-{tag}", "b": f"b-{tag}"}


@pytest.fixture
async def feed(client: redis.Redis, names: dict[str, str]) -> AsyncIterator[FeedService]:
    service = FeedService(FeedStream(client, names["cluster"]), "feed", read_block_ms=200)
    await service.start()
    yield service
    await service.close()


async def process(db: Database, client: redis.Redis, feed: FeedService, cluster: str, node: str) -> Process:
    service = AcdService(AcdLog(client, cluster), node, tick_s=0.2, heartbeat_ms=600)
    service.legs = NoPhones()
    await service.start()
    links = {"ari": True, "ami": True}
    return Process(service, AlarmService(db, feed, service, lambda: links, node), links)


async def feed_alarms(feed: FeedService, after: int, count: int) -> list[FeedEntry]:
    got: list[FeedEntry] = []
    subscription = feed.subscribe(after, lambda e: e.event.topic is Topic.ALARMS)
    async with asyncio.timeout(10):
        async for item in subscription:
            if isinstance(item, FeedEntry):
                got.append(item)
                if len(got) == count:
                    break
    return got


async def test_only_the_leader_raises_and_clears_a_queue_alarm(db, client, feed, names) -> None:
    queue = names["queue"]
    a = await process(db, client, feed, names["cluster"], names["a"])
    await eventually(lambda: a.acd.is_leader, 5, what="a leads")
    b = await process(db, client, feed, names["cluster"], names["b"])
    try:
        agent = Agent(f"ag-{queue}", "Agent", "Local/1@x")
        await a.acd.configure([agent], [QueueConfig(queue, Strategy.LINEAR, ((agent.id, 0),), **WAITS)])
        async with db.connection() as conn:
            await store.put_rule(conn, "queue", queue, {k: v for k, v in encode(QueueAlarmRule(
                queue, callers_waiting=Threshold(1, 0), agents_available=Threshold(0, 1),
                clear_after_s=0)).items() if k != "queue"})
        start = feed.position
        a.acd.submit(acd.CallQueued(QueueEntry("caller-1", queue, datetime.now(UTC))))
        await a.acd.settled()
        await eventually(lambda: len(b.acd.state.waiting) == 1, 5, what="b sees the caller")

        now = datetime.now(UTC)
        made_b = await b.alarms.evaluate(now)  # not the leader: only its own links
        made_a = await a.alarms.evaluate(now)
        assert made_b == []
        assert sorted(d.key.kind.value for d in made_a) == ["queue.agents_available", "queue.callers_waiting"]
        # Evaluated again: nothing new (the alarms are active).
        assert await a.alarms.evaluate(now + timedelta(seconds=2)) == []
        active = await a.alarms.list(AlarmFilter(queue=queue))
        assert sorted(x.kind for x in active) == ["queue.agents_available", "queue.callers_waiting"]
        waiting = next(x for x in active if x.kind == "queue.callers_waiting")
        assert waiting.value == 1 and waiting.threshold == 1 and waiting.state == "active"
        assert waiting.message == f"queue {queue}: 1 callers waiting (raise at 1)"

        # The caller hangs up: callers_waiting clears; nobody available yet, so that one stays.
        a.acd.submit(acd.CallAbandoned("caller-1"))
        await a.acd.settled()
        (cleared,) = await a.alarms.evaluate(datetime.now(UTC))
        assert cleared.key.kind.value == "queue.callers_waiting"
        # The agent logs in: available again.
        await a.acd.agent_action(agent.id, "login")
        (cleared_too,) = await a.alarms.evaluate(datetime.now(UTC))
        assert cleared_too.key.kind.value == "queue.agents_available"
        assert await a.alarms.list(AlarmFilter(queue=queue)) == []
        history = await a.alarms.list(AlarmFilter(queue=queue, state="all"))
        assert all(x.cleared_at is not None and x.clear_reason == "back to normal" for x in history)

        events = await feed_alarms(feed, start, 4)
        assert [(e.event.type, e.event.data["kind"]) for e in events] == [
            ("alarm.raised", "queue.callers_waiting"), ("alarm.raised", "queue.agents_available"),
            ("alarm.cleared", "queue.callers_waiting"), ("alarm.cleared", "queue.agents_available")]
        assert all(e.event.queues == (queue,) and e.event.topic is Topic.ALARMS for e in events)
        assert events[2].event.data["id"] == str(waiting.id) and events[2].event.data["state"] == "cleared"
    finally:
        await a.acd.close()
        await b.acd.close()


async def test_each_process_watches_its_own_pbx_links(db, client, feed, names) -> None:
    a = await process(db, client, feed, names["cluster"], names["a"])
    await eventually(lambda: a.acd.is_leader, 5, what="a leads")
    b = await process(db, client, feed, names["cluster"], names["b"])
    try:
        async with db.connection() as conn:
            await store.put_rule(conn, "system", "system", encode(SystemAlarmRule(raise_after_s=3,
                                                                                  clear_after_s=0)))
        t0 = datetime.now(UTC)
        b.links["ami"] = False
        assert await b.alarms.evaluate(t0) == []  # down for less than raise_after_s
        assert await a.alarms.evaluate(t0) == []
        (raised,) = await b.alarms.evaluate(t0 + timedelta(seconds=3))
        assert raised.key.subject == f"{names['b']}/ami"
        assert await a.alarms.evaluate(t0 + timedelta(seconds=3)) == []  # a's links are up
        (alarm,) = [x for x in await a.alarms.list(AlarmFilter(kind="pbx.link_down", limit=1000))
                    if x.subject == f"{names['b']}/ami"]
        assert alarm.severity == "critical" and alarm.queue is None
        b.links["ami"] = True
        (cleared,) = await b.alarms.evaluate(t0 + timedelta(seconds=4))
        assert cleared.key.subject == f"{names['b']}/ami"
    finally:
        async with db.connection() as conn:
            await store.delete_rule(conn, "system", "system")
        await a.acd.close()
        await b.acd.close()


async def test_a_new_leader_goes_on_from_the_active_alarms(db, client, feed, names) -> None:
    queue = names["queue"]
    a = await process(db, client, feed, names["cluster"], names["a"])
    await eventually(lambda: a.acd.is_leader, 5, what="a leads")
    b = await process(db, client, feed, names["cluster"], names["b"])
    try:
        await a.acd.configure([], [QueueConfig(queue, Strategy.LINEAR, (), **WAITS)])
        async with db.connection() as conn:
            await store.put_rule(conn, "queue", queue, {"callers_waiting": {"raise_at": 1, "clear_at": 0},
                                                        "clear_after_s": 0})
        # The caller is held by b (a process that stops takes its own callers with it).
        b.acd.submit(acd.CallQueued(QueueEntry("caller-2", queue, datetime.now(UTC))))
        await b.acd.settled()
        await eventually(lambda: len(a.acd.state.waiting) == 1, 5, what="a sees the caller")
        assert len(await a.alarms.evaluate(datetime.now(UTC))) == 1
        await a.acd.close()  # resigns: b takes the lead
        await eventually(lambda: b.acd.is_leader, 10, what="b leads")
        await eventually(lambda: len(b.acd.state.waiting) == 1, 5, what="b sees the caller")
        assert await b.alarms.evaluate(datetime.now(UTC)) == []  # already raised by a
        b.acd.submit(acd.CallAbandoned("caller-2"))
        await b.acd.settled()
        (cleared,) = await b.alarms.evaluate(datetime.now(UTC))
        assert cleared.key.subject == queue
        (one,) = await b.alarms.list(AlarmFilter(queue=queue, state="all"))
        assert one.cleared_at is not None
    finally:
        await b.acd.close()


async def test_a_removed_queue_rule_clears_and_acknowledging_is_kept(db, client, feed, names) -> None:
    queue = names["queue"]
    a = await process(db, client, feed, names["cluster"], names["a"])
    await eventually(lambda: a.acd.is_leader, 5, what="a leads")
    try:
        await a.acd.configure([], [QueueConfig(queue, Strategy.LINEAR, (), **WAITS)])
        async with db.connection() as conn:
            await store.put_rule(conn, "queue", queue, {"agents_available": {"raise_at": 0, "clear_at": 1}})
        (raised,) = await a.alarms.evaluate(datetime.now(UTC))
        (alarm,) = await a.alarms.list(AlarmFilter(queue=queue))
        boss = Principal(uuid.uuid4(), "the boss", Role.SUPERVISOR)
        acked = await a.alarms.acknowledge(alarm.id, boss)
        assert acked.acknowledged_by == "the boss" and acked.acknowledged_at is not None
        again = await a.alarms.acknowledge(alarm.id, Principal(uuid.uuid4(), "someone", Role.ADMIN))
        assert again.acknowledged_by == "the boss" and again.acknowledged_at == acked.acknowledged_at
        async with db.connection() as conn:
            await store.delete_rule(conn, "queue", queue)
        (cleared,) = await a.alarms.evaluate(datetime.now(UTC))
        (gone,) = await a.alarms.list(AlarmFilter(queue=queue, state="cleared"))
        assert gone.clear_reason == "no longer watched" and gone.acknowledged_by == "the boss"
    finally:
        await a.acd.close()


async def test_dialer_figures_when_a_dialer_gives_them(db, client, feed, names) -> None:
    a = await process(db, client, feed, names["cluster"], names["a"])
    await eventually(lambda: a.acd.is_leader, 5, what="a leads")
    campaign = f"camp-{random.getrandbits(32):08x}"
    rate = {"value": 0.01}
    a.alarms.dialers = lambda: [DialerFigures(campaign, rate["value"], 0.03)]
    try:
        async with db.connection() as conn:
            await store.put_rule(conn, "system", "system", encode(SystemAlarmRule(raise_after_s=0,
                                                                                  clear_after_s=0)))
        now = datetime.now(UTC)
        assert await a.alarms.evaluate(now) == []
        rate["value"] = 0.029
        (raised,) = await a.alarms.evaluate(now)
        assert raised.key.subject == campaign and raised.key.kind.value == "dialer.abandon_rate"
        rate["value"] = 0.02
        (cleared,) = await a.alarms.evaluate(now)
        assert cleared.key.subject == campaign
    finally:
        async with db.connection() as conn:
            await store.delete_rule(conn, "system", "system")
        await a.acd.close()


async def test_a_decision_that_cannot_be_stored_is_made_again(db, client, feed, names) -> None:
    queue = names["queue"]
    a = await process(db, client, feed, names["cluster"], names["a"])
    await eventually(lambda: a.acd.is_leader, 5, what="a leads")
    try:
        agent = Agent(f"ag-{queue}", "Agent", "Local/1@x")
        await a.acd.configure([agent], [QueueConfig(queue, Strategy.LINEAR, ((agent.id, 0),), **WAITS)])
        await a.acd.agent_action(agent.id, "login")
        async with db.connection() as conn:
            await store.put_rule(conn, "queue", queue, {"agents_available": {"raise_at": 0, "clear_at": 1}})
        assert await a.alarms.evaluate(datetime.now(UTC)) == []  # one available: rules and state read
        await a.acd.agent_action(agent.id, "logout")
        # Postgres goes away for the alarm service: nothing is stored, nothing published.
        dead = Database("postgresql://ccc:ccc@127.0.0.1:1/ccc_test", max_size=1)
        await dead.open()
        a.alarms._db = dead
        position = feed.position
        try:
            assert await a.alarms.evaluate(datetime.now(UTC)) == []
        finally:
            # It comes back (before the dead pool is closed: nothing may use a closed pool).
            a.alarms._db = db
            await dead.close()
        assert await a.alarms.list(AlarmFilter(queue=queue)) == []
        # The same decision is made again, stored and published.
        (raised,) = await a.alarms.evaluate(datetime.now(UTC))
        assert raised.key.subject == queue and raised.key.kind.value == "queue.agents_available"
        (event,) = await feed_alarms(feed, position, 1)
        assert event.event.type == "alarm.raised" and event.event.queues == (queue,)
    finally:
        await a.acd.close()
