"""Two controller processes sharing one ACD through the log in the real Redis.

The switch side is a fake that keeps the call service's contract (an offer rings the agent's
phone, the phone answers, a connected call ends): these tests are about how the processes
agree, not about channels (tests/integration/test_acd_cluster.py does it on Asterisk).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from controller.domain.agents import Agent, AgentState, QueueConfig, QueueDestination, QueueEntry, Strategy
from controller.domain.errors import Conflict, InvalidRequest
from controller.engines import acd
from controller.services.acd import AcdService
from controller.storage.acd_log import AcdLog, stream_position
from controller.storage.codec import encode
from tests.conftest import TEST_REDIS_URL, eventually


@dataclass
class Floor:
    """What the agents' phones saw, across both processes."""

    ringing: dict[str, str] = field(default_factory=dict)  # agent -> call
    talking: dict[str, str] = field(default_factory=dict)  # agent -> call
    offers: list[tuple[tuple[int, int, int], str, int, int]] = field(default_factory=list)
    connected: list[tuple[str, str]] = field(default_factory=list)
    overflowed: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[str, str, str, str]] = field(default_factory=list)  # call, from, to, agent
    wrong: list[str] = field(default_factory=list)


class Phones:
    """The call service's side of the ACD for one process: only its own callers."""

    def __init__(self, floor: Floor, answer: bool = True) -> None:
        self.floor = floor
        self.answer = answer
        self.held: set[str] = set()
        self.service: AcdService

    async def offer(self, call_id: str, offer_id: str, agent_id: str, device: str, timeout_s: int) -> None:
        floor = self.floor
        if call_id not in self.held:
            floor.wrong.append(f"{self.service.node} offered {call_id}, which it does not hold")
        if agent_id in floor.ringing or agent_id in floor.talking:
            floor.wrong.append(f"{agent_id} offered {call_id} while busy with another call")
        floor.ringing[agent_id] = call_id
        entry = self.service.state.waiting[call_id]
        # Offer ids are made from the log entry that decided them: they sort in decision order.
        _, millis, seq, number = offer_id.rsplit("-", 3)
        floor.offers.append(((int(millis), int(seq), int(number)), call_id, entry.priority, entry.sequence))
        if self.answer:
            asyncio.get_running_loop().call_later(
                random.uniform(0.001, 0.02), self.service.submit, acd.OfferAnswered(offer_id, agent_id))

    async def withdraw(self, offer_id: str, agent_id: str) -> None:
        self.floor.ringing.pop(agent_id, None)

    async def connect(self, call_id: str, offer_id: str, agent_id: str, entry=None) -> None:
        floor = self.floor
        floor.ringing.pop(agent_id, None)
        floor.talking[agent_id] = call_id
        floor.connected.append((call_id, agent_id))

        def hang_up() -> None:
            del floor.talking[agent_id]
            self.service.submit(acd.CallEnded(call_id, agent_id, 1))

        asyncio.get_running_loop().call_later(random.uniform(0.005, 0.03), hang_up)

    async def overflow(self, call_id: str, reason: str, queue: str = "",
                       destination: QueueDestination | None = None) -> None:
        self.floor.overflowed.append((call_id, reason))

    async def announce(self, call_id: str, queue: str, position: int, eta_s: int | None) -> None:
        pass

    async def moved(self, call_id: str, queue: str, from_queue: str, agent_id: str,
                    entered_at: datetime) -> None:
        if call_id not in self.held:
            self.floor.wrong.append(f"{self.service.node} told of a move of {call_id}, not its own")
        self.floor.moved.append((call_id, from_queue, queue, agent_id))


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


async def start(redis_client: redis.Redis, cluster: str, node: str, phones: Phones) -> AcdService:
    service = AcdService(AcdLog(redis_client, cluster), node, tick_s=0.2, heartbeat_ms=600)
    service.legs = phones
    phones.service = service
    await service.start()
    return service


AGENTS = [Agent(f"agent{i:02}", f"Agent {i}", f"Local/{i}@x") for i in range(10)]
QUEUE = QueueConfig("sales", Strategy.LONGEST_IDLE, tuple((a.id, 0) for a in AGENTS), wrap_up_s=0,
                    max_misses_before_pause=0)


def same_state(a: AcdService, b: AcdService) -> bool:
    return a.applied_id == b.applied_id and encode(a.state) == encode(b.state)


async def test_100_callers_on_10_agents_across_two_processes(redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor)
    a = await start(redis_client, cluster, "node-a", phones_a)
    b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        await a.configure(list(AGENTS), [QUEUE])
        await b.settled()
        for agent in AGENTS:  # logged in but paused, so that every caller can wait first
            await b.agent_action(agent.id, "login")
            await a.agent_action(agent.id, "pause", "briefing")
        now = datetime.now(UTC)
        for n in range(100):
            holder, service = (phones_a, a) if n % 2 == 0 else (phones_b, b)
            call_id = f"call-{n:03}"
            holder.held.add(call_id)
            service.submit(acd.CallQueued(QueueEntry(call_id, "sales", now, priority=(n * 7) % 3)))
        await a.settled()
        await b.settled()
        await eventually(lambda: len(a.state.waiting) == 100 and same_state(a, b), 5, what="100 waiting")
        for agent in AGENTS:
            (a if int(agent.id[-1]) % 2 else b).submit(acd.AgentUnpaused(agent.id))

        await eventually(lambda: len(floor.connected) == 100 and not a.state.talking, 30,
                         what="every caller connected once and every call ended")
        await eventually(lambda: same_state(a, b), 5, what="both processes at the same state")
    finally:
        await a.close()
        await b.close()

    assert floor.wrong == []
    assert sorted(call for call, _ in floor.connected) == [f"call-{n:03}" for n in range(100)]
    assert floor.overflowed == []
    # Priority first, then first come first served, in the order the offers were decided.
    order = [(-priority, sequence) for _, _, priority, sequence in sorted(floor.offers)]
    assert order == sorted(order)
    assert len(floor.offers) == 100
    assert all(agent.state is AgentState.AVAILABLE for agent in a.state.agents.values())
    assert sum(agent.calls_taken for agent in a.state.agents.values()) == 100
    stats = a.queue_stats("sales", datetime.now(UTC))
    assert (stats["answered"], stats["abandoned"], stats["waiting"]) == (100, 0, 0)
    assert b.queue_stats("sales", datetime.now(UTC))["answered"] == 100


async def test_the_leader_ticks_for_callers_another_process_holds(redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor, answer=False)
    a = await start(redis_client, cluster, "node-a", phones_a)
    await eventually(lambda: a.is_leader, 5, what="node-a leads")
    b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        queue = QueueConfig("short", Strategy.LINEAR, (("agent00", 0),), max_wait_s=1)
        await b.configure([Agent("agent00", "Zero", "Local/0@x")], [queue])
        await b.agent_action("agent00", "login")
        await b.agent_action("agent00", "pause", "lunch")
        phones_b.held.add("waits")
        b.submit(acd.CallQueued(QueueEntry("waits", "short", datetime.now(UTC))))
        await eventually(lambda: floor.overflowed == [("waits", "max_wait")], 5,
                         what="the caller held by node-b overflowed after its max wait")
        assert not b.is_leader and "waits" not in b.state.waiting and "waits" not in a.state.waiting
    finally:
        await a.close()
        await b.close()
    assert floor.wrong == []


async def test_a_lost_process_frees_the_agents_it_had_ringing(redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor, answer=False)
    a = await start(redis_client, cluster, "node-a", phones_a)
    await eventually(lambda: a.is_leader, 5, what="node-a leads")
    b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        await a.configure([Agent("agent00", "Zero", "Local/0@x")],
                          [QueueConfig("q", Strategy.LINEAR, (("agent00", 0),), ring_timeout_s=300)])
        await a.agent_action("agent00", "login")
        phones_b.held.add("orphan")
        b.submit(acd.CallQueued(QueueEntry("orphan", "q", datetime.now(UTC))))
        await eventually(lambda: a.state.agents["agent00"].state is AgentState.RESERVED, 5,
                         what="agent00 reserved for node-b's caller")
        await b.close()  # as if it died: no more heartbeats, the offer is never answered
        await eventually(lambda: a.state.agents["agent00"].state is AgentState.AVAILABLE, 5,
                         what="agent00 freed once node-b's heartbeat expired")
        assert a.state.waiting == {} and a.state.offers == {}
    finally:
        await a.close()
    assert floor.wrong == []


async def test_a_process_started_later_builds_the_same_state_from_snapshot_and_log(
        redis_client, cluster) -> None:
    floor = Floor()
    a = await start(redis_client, cluster, "node-a", Phones(floor))
    try:
        await a.configure(list(AGENTS[:3]), [QueueConfig("q", members=(("agent00", 0), ("agent01", 0)))])
        await a.agent_action("agent00", "login")
        await eventually(lambda: a._snapshot_id != "", 10, what="a snapshot written")
        await a.agent_action("agent01", "login")  # after the snapshot: read from the log
        await a.agent_action("agent01", "pause", "training")
        c = await start(redis_client, cluster, "node-c", Phones(floor))
        try:
            await eventually(lambda: same_state(a, c), 5, what="node-c caught up")
            assert stream_position(c.applied_id) >= stream_position(a._snapshot_id)
            assert c.state.agents["agent01"].paused_reason == "training"
        finally:
            await c.close()
    finally:
        await a.close()


async def test_a_callback_is_offered_by_the_process_that_asked_for_it(redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor)
    a = await start(redis_client, cluster, "node-a", phones_a)
    b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        queue = QueueConfig("later", Strategy.LINEAR, (("agent00", 0),))
        await a.configure([Agent("agent00", "Zero", "Local/0@x")], [queue])
        await b.settled()
        await a.agent_action("agent00", "login")
        await a.agent_action("agent00", "pause", "lunch")
        phones_b.held.update({"caller", "callback"})
        b.submit(acd.CallQueued(QueueEntry("caller", "later", datetime.now(UTC))))
        b.submit(acd.CallbackRequested("caller", "callback"))
        await b.settled()
        await a.settled()
        await a.agent_action("agent00", "unpause")  # asked through the other process
        await eventually(lambda: floor.connected == [("callback", "agent00")], 5,
                         what="the callback offered and connected by node-b")
    finally:
        await a.close()
        await b.close()
    assert floor.wrong == []


async def test_a_move_asked_of_one_process_is_carried_out_by_the_one_holding_the_caller(
        redis_client, cluster) -> None:
    floor = Floor()
    phones_a, phones_b = Phones(floor), Phones(floor)
    a = await start(redis_client, cluster, "node-a", phones_a)
    b = await start(redis_client, cluster, "node-b", phones_b)
    try:
        agents = [Agent("agent00", "Zero", "Local/0@x"), Agent("agent01", "One", "Local/1@x"),
                  Agent("agent02", "Two", "Local/2@x")]
        first = QueueConfig("first", Strategy.LINEAR, (("agent00", 0),), join_when_empty=True,
                            leave_when_empty=False)
        second = QueueConfig("second", Strategy.LINEAR, (("agent01", 0),))
        await a.configure(agents, [first, second])
        await b.settled()
        await a.agent_action("agent01", "login")
        await a.agent_action("agent01", "pause", "lunch")
        phones_a.held.update({"waiter", "vip"})
        a.submit(acd.CallQueued(QueueEntry("waiter", "first", datetime.now(UTC), priority=3)))
        await a.settled()
        await b.settled()

        # Asked of node-b, which does not hold the caller: the verdict comes back to node-b.
        with pytest.raises(Conflict, match="logged out"):
            await b.move("waiter", agent_id="agent02")
        with pytest.raises(InvalidRequest, match="no queue"):
            await b.move("waiter", queue="third")
        with pytest.raises(Conflict, match="not waiting"):
            await b.move("nobody", queue="second")
        entry = await b.move("waiter", queue="second")
        assert (entry.queue, entry.priority, entry.target_agent) == ("second", 3, None)
        await a.settled()
        assert a.state.waiting["waiter"].queue == "second" and same_state(a, b)
        assert b.queue_stats("first", datetime.now(UTC))["moved_out"] == 1

        # To an agent of another queue: it waits while the agent is paused, then it rings.
        await a.agent_action("agent02", "login")
        await a.agent_action("agent02", "pause", "lunch")
        targeted = await b.move("waiter", agent_id="agent02")
        assert (targeted.queue, targeted.target_agent) == ("second", "agent02")
        await b.agent_action("agent01", "unpause")  # free, of the caller's queue: not for it
        await b.agent_action("agent02", "unpause")
        await eventually(lambda: floor.connected == [("waiter", "agent02")], 5,
                         what="the caller connected to the agent it was moved to, by node-a")
    finally:
        await a.close()
        await b.close()
    assert floor.wrong == []
    assert floor.moved == [("waiter", "first", "second", ""), ("waiter", "second", "second", "agent02")]
