"""What two controller processes sharing one ACD publish on the shared event feed, on the real
Redis: every agent state change once (by the process that appended the entry), each one
following the last, every caller joining and leaving its queue once (by the process holding
it), and the queue figures from the leader only. The switch side is the fake of
test_acd_shared.py, which keeps the call service's contract."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from controller.domain.agents import AgentState, QueueEntry
from controller.domain.feed import FeedEntry
from controller.engines import acd
from controller.services.acd import AcdService
from controller.services.feed import FeedService
from controller.storage.acd_log import AcdLog
from controller.storage.feed import FeedStream
from tests.conftest import TEST_REDIS_URL, eventually
from tests.services.test_acd_shared import AGENTS, QUEUE, Floor, Phones


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def cluster(redis_client: redis.Redis) -> AsyncIterator[str]:
    name = f"t{random.getrandbits(48):012x}"
    yield name
    keys = [k async for k in redis_client.scan_iter(f"ccc:{name}:*")]
    if keys:
        await redis_client.delete(*keys)


async def start(redis_client: redis.Redis, cluster: str, node: str,
                phones: Phones) -> tuple[AcdService, FeedService]:
    feed = FeedService(FeedStream(redis_client, cluster), node, read_block_ms=200)
    await feed.start()
    service = AcdService(AcdLog(redis_client, cluster), node, tick_s=0.2, heartbeat_ms=600,
                         publish=feed.publish, queue_stats_every_s=0.5)
    service.legs = phones
    phones.service = service
    await service.start()
    return service, feed


def log_position(entry: FeedEntry) -> tuple[int, int, int]:
    millis, _, number = str(entry.event.data["log_id"]).partition("-")
    return int(millis), int(number), entry.seq


async def test_two_processes_publish_each_change_once_in_a_chain(redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor)
    a, feed_a = await start(redis_client, cluster, "node-a", phones_a)
    await eventually(lambda: a.is_leader, 5, what="node-a leads")
    b, feed_b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        await a.configure(list(AGENTS), [QUEUE])
        await b.settled()
        for n, agent in enumerate(AGENTS):  # logged in through either process, paused, then unpaused
            await (a if n % 2 else b).agent_action(agent.id, "login")
            await (b if n % 2 else a).agent_action(agent.id, "pause", "briefing")
        now = datetime.now(UTC)
        for n in range(60):
            holder, service = (phones_a, a) if n % 2 == 0 else (phones_b, b)
            holder.held.add(f"call-{n:03}")
            service.submit(acd.CallQueued(QueueEntry(f"call-{n:03}", "sales", now, priority=n % 3)))
        for n, agent in enumerate(AGENTS):
            (a if n % 3 else b).submit(acd.AgentUnpaused(agent.id))
        await eventually(lambda: len(floor.connected) == 60 and not a.state.talking, 30,
                         what="every caller connected once and every call ended")
        await eventually(lambda: feed_a.pending == 0 and feed_b.pending == 0, 5, what="the feed written")

        async def stats_told() -> bool:
            entries = await FeedStream(redis_client, cluster).after(0, 100_000)
            return any(e.event.type == "queue.stats" for e in entries)

        await eventually(stats_told, 5, what="the leader's queue figures")
    finally:
        await a.close()
        await b.close()
        await feed_a.close()
        await feed_b.close()
    assert floor.wrong == []

    entries = await FeedStream(redis_client, cluster).after(0, 100_000)
    changes = [e for e in entries if e.event.type == "agent.state_changed"]
    assert {e.node for e in changes} == {"node-a", "node-b"}  # each published its own entries
    by_agent: dict[str, list[FeedEntry]] = {}
    for entry in sorted(changes, key=log_position):
        by_agent.setdefault(entry.event.agents[0], []).append(entry)
    assert set(by_agent) == {agent.id for agent in AGENTS}
    for agent_id, chain in by_agent.items():
        states = [(e.event.data["old_state"], e.event.data["new_state"]) for e in chain]
        # Each change starts where the last one ended: none missing, none twice.
        assert states[0][0] == AgentState.LOGGED_OUT.value, (agent_id, states)
        linked = all(prev[1] == nxt[0] for prev, nxt in zip(states, states[1:], strict=False))
        assert linked, (agent_id, states)
        assert states[-1][1] == AgentState.AVAILABLE.value
        reserved = [e for e in chain if e.event.data["new_state"] == "reserved"]
        assert all(e.event.call_id and e.event.data["queue"] == "sales" for e in reserved)
    offers = Counter(e.event.call_id for e in changes if e.event.data["new_state"] == "reserved")
    assert sorted(offers) == sorted(f"call-{n:03}" for n in range(60)) and set(offers.values()) == {1}

    queue_events = Counter((e.event.type, e.event.call_id) for e in entries
                           if e.event.type.startswith("queue.caller"))
    assert queue_events == Counter({("queue.caller_joined", f"call-{n:03}"): 1 for n in range(60)}
                                   | {("queue.caller_left", f"call-{n:03}"): 1 for n in range(60)})
    # A caller's queue events come from the process that holds it.
    for entry in entries:
        if entry.event.type.startswith("queue.caller"):
            number = int(str(entry.event.call_id)[-3:])
            assert entry.node == ("node-a" if number % 2 == 0 else "node-b")
    stats = [e for e in entries if e.event.type == "queue.stats"]
    assert stats and {e.node for e in stats} == {"node-a"}


async def test_the_leader_tells_the_callers_of_a_lost_process(redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor, answer=False)
    a, feed_a = await start(redis_client, cluster, "node-a", phones_a)
    await eventually(lambda: a.is_leader, 5, what="node-a leads")
    b, feed_b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        await a.configure(list(AGENTS[:1]), [QUEUE])
        await b.settled()
        await a.agent_action(AGENTS[0].id, "login")
        phones_b.held.add("orphan")
        b.submit(acd.CallQueued(QueueEntry("orphan", "sales", datetime.now(UTC))))
        await eventually(lambda: a.state.agents[AGENTS[0].id].state is AgentState.RESERVED, 5,
                         what="the agent reserved for node-b's caller")
        await eventually(lambda: feed_b.pending == 0, 5, what="node-b's events written")
        await b.close()  # as if it died
        await feed_b.close()
        await eventually(lambda: a.state.agents[AGENTS[0].id].state is AgentState.AVAILABLE, 5,
                         what="the agent freed")
        await eventually(lambda: feed_a.pending == 0, 5, what="node-a's events written")
    finally:
        await a.close()
        await b.close()
        await feed_a.close()
        await feed_b.close()
    entries = await FeedStream(redis_client, cluster).after(0, 100_000)
    told = [(e.event.type, e.node) for e in entries if e.event.call_id == "orphan"]
    assert ("queue.caller_joined", "node-b") in told and ("queue.caller_abandoned", "node-a") in told
    freed = [e for e in entries if e.event.type == "agent.state_changed"
             and e.event.data["new_state"] == "available" and e.event.data["old_state"] == "reserved"]
    assert [e.node for e in freed] == ["node-a"]
