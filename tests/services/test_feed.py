"""The public event feed on the real Redis: numbering shared by two processes, replay after a
sequence number, live delivery without holes or duplicates, slow subscribers, trimmed history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from controller.domain.access import Principal, Role
from controller.domain.feed import FeedEntry, FeedEvent, FeedFilter, Topic, visible_to
from controller.services.feed import FeedGap, FeedService, Heartbeat, Subscription
from controller.storage.feed import FeedStream
from tests.conftest import TEST_REDIS_URL, eventually


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield conn
    await conn.aclose()


@pytest.fixture
def cluster() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def started(client: redis.Redis, cluster: str, node: str, **kwargs: int) -> FeedService:
    max_len = kwargs.pop("max_len", 100_000)
    service = FeedService(FeedStream(client, cluster, max_len), node, read_block_ms=200, **kwargs)
    await service.start()
    return service


def call_event(n: int, agent: str = "") -> FeedEvent:
    return FeedEvent(Topic.CALLS, "call.answered", {"n": n}, call_id=f"c{n}",
                     agents=(agent,) if agent else ())


async def take(subscription: Subscription, count: int, timeout: float = 5.0) -> list[FeedEntry | FeedGap]:
    got: list[FeedEntry | FeedGap] = []
    async with asyncio.timeout(timeout):
        async for item in subscription:
            got.append(item)
            if len(got) == count:
                break
    return got


async def test_two_processes_share_one_numbering(client: redis.Redis, cluster: str) -> None:
    a = await started(client, cluster, "a")
    b = await started(client, cluster, "b")
    watcher = a.subscribe(None, lambda _: True)
    try:
        for n in range(50):
            (a if n % 2 else b).publish(call_event(n))
        got = await take(watcher, 50)
        entries = [item for item in got if isinstance(item, FeedEntry)]
        assert [e.seq for e in entries] == list(range(entries[0].seq, entries[0].seq + 50))
        assert {e.node for e in entries} == {"a", "b"}
        # Each process's own events keep the order it published them in.
        for node in ("a", "b"):
            ns = [e.event.data["n"] for e in entries if e.node == node]
            assert ns == sorted(ns)
    finally:
        await a.close()
        await b.close()


async def test_replay_after_a_sequence_number_then_live(client: redis.Redis, cluster: str) -> None:
    feed = await started(client, cluster, "a")
    try:
        for n in range(10):
            feed.publish(call_event(n))
        first = feed.subscribe(None, lambda _: True)
        seen = await take(first, 10)
        last_seen = seen[3]
        assert isinstance(last_seen, FeedEntry)
        first.close()

        # A client that saw up to the 4th reconnects: it gets 5..10 from Redis, then live ones.
        again = feed.subscribe(last_seen.seq, lambda _: True)
        feed.publish(call_event(10))
        got = await take(again, 7)
        assert [item.event.data["n"] for item in got if isinstance(item, FeedEntry)] == list(range(4, 11))
        assert [item.seq for item in got if isinstance(item, FeedEntry)] == list(
            range(last_seen.seq + 1, last_seen.seq + 8))
    finally:
        await feed.close()


async def test_slow_subscriber_catches_up_from_the_stream(client: redis.Redis, cluster: str) -> None:
    feed = await started(client, cluster, "a")
    try:
        slow = feed.subscribe(None, lambda _: True, max_pending=5)
        for n in range(200):
            feed.publish(call_event(n))
        await asyncio.sleep(0.5)  # the live buffer of 5 overflows long before anyone reads
        got = await take(slow, 200)
        assert [item.event.data["n"] for item in got if isinstance(item, FeedEntry)] == list(range(200))
    finally:
        await feed.close()


async def test_trimmed_history_is_reported_as_a_gap(client: redis.Redis, cluster: str) -> None:
    feed = await started(client, cluster, "a", max_len=10)
    try:
        watcher = feed.subscribe(None, lambda _: True)
        for n in range(300):
            feed.publish(call_event(n))
        # Even a live subscriber is told when entries went before its process could read them.
        got: list[FeedEntry | FeedGap] = []
        async with asyncio.timeout(5):
            async for item in watcher:
                got.append(item)
                if isinstance(item, FeedEntry) and item.event.data["n"] == 299:
                    break
        gaps = [item for item in got if isinstance(item, FeedGap)]
        entries = [item for item in got if isinstance(item, FeedEntry)]
        assert len(gaps) == 1 and entries[0].seq == gaps[0].oldest
        assert [e.seq for e in entries] == list(range(entries[0].seq, entries[-1].seq + 1))
        # Asking for everything after 0: only the newest ones are kept, and the client is told.
        old = feed.subscribe(0, lambda _: True)
        replay = await take(old, 2)
        gap = replay[0]
        assert isinstance(gap, FeedGap) and gap.after == 0 and gap.oldest > 1
        assert isinstance(replay[1], FeedEntry) and replay[1].seq == gap.oldest
    finally:
        await feed.close()


async def test_agent_keys_see_only_their_own_entries(client: redis.Redis, cluster: str) -> None:
    feed = await started(client, cluster, "a")
    alice = Principal(uuid.uuid4(), "alice", Role.AGENT, agent_id="alice")
    nobody = Principal(uuid.uuid4(), "k", Role.AGENT)
    boss = Principal(uuid.uuid4(), "boss", Role.SUPERVISOR)
    try:
        watcher = feed.subscribe(None, lambda _: True)
        feed.publish(call_event(1, "bob"))
        feed.publish(call_event(2, "alice"))
        feed.publish(FeedEvent(Topic.AGENTS, "agent.state_changed", {"state": "available"},
                               agents=("alice",)))
        entries = [item for item in await take(watcher, 3) if isinstance(item, FeedEntry)]
        assert [visible_to(alice, e) for e in entries] == [False, True, True]
        assert not any(visible_to(nobody, e) for e in entries)
        assert all(visible_to(boss, e) for e in entries)
        only_calls = FeedFilter(topics=frozenset({Topic.CALLS}), types=frozenset({"call."}))
        assert [only_calls.matches(e) for e in entries] == [True, True, False]
        assert [FeedFilter(agent_id="bob").matches(e) for e in entries] == [True, False, False]
    finally:
        await feed.close()


async def test_events_published_while_redis_is_away_are_written_after(client: redis.Redis,
                                                                       cluster: str) -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, decode_responses=True)
    feed = FeedService(FeedStream(dead, cluster), "a", read_block_ms=200)
    await feed.start()
    try:
        for n in range(5):
            feed.publish(call_event(n))
        await asyncio.sleep(0.5)
        assert feed.pending == 5 and not feed.healthy
        # Redis "returns": the same service, now pointed at the live server.
        feed.stream = FeedStream(client, cluster)
        await eventually(lambda: feed.pending == 0, 10, what="the buffered events written")
        stored = await FeedStream(client, cluster).after(0, 100)
        assert [e.event.data["n"] for e in stored] == list(range(5))
        assert feed.healthy
    finally:
        await feed.close()
        await dead.aclose()


async def test_a_number_past_the_newest_entry_resumes_from_now(client: redis.Redis, cluster: str) -> None:
    # A client holding a number from a stream Redis has since lost: it is not kept waiting for
    # the new numbering to catch up with its old one.
    feed = await started(client, cluster, "a")
    try:
        feed.publish(call_event(1))
        await eventually(lambda: feed.pending == 0, 5, what="the first event written")
        ahead = feed.subscribe(10**9, lambda _: True)
        feed.publish(call_event(2))
        got = await take(ahead, 1)
        assert isinstance(got[0], FeedEntry) and got[0].event.data["n"] == 2
    finally:
        await feed.close()


async def test_heartbeats_carry_the_position_past_filtered_entries(client: redis.Redis, cluster: str) -> None:
    feed = await started(client, cluster, "a")
    try:
        only_two = feed.subscribe(None, lambda entry: entry.event.data.get("n") == 2)
        stream = only_two.with_heartbeats(0.1)
        feed.publish(call_event(1))
        await eventually(lambda: feed.pending == 0, 5, what="the event written")
        _, newest = await feed.stream.bounds()
        async with asyncio.timeout(5):
            async for item in stream:
                assert isinstance(item, Heartbeat)
                if item.position >= newest:
                    break
        feed.publish(call_event(2))
        async with asyncio.timeout(5):
            async for item in stream:
                if isinstance(item, FeedEntry):
                    assert item.event.data["n"] == 2 and item.seq == newest + 1
                    break
        await stream.aclose()
        assert only_two.closed
    finally:
        await feed.close()
