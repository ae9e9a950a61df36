"""Every ACD strategy on the real Asterisk, with the order of offers checked against the
definitions in controller/engines/acd.py (test_acd.py covers linear and ring_all).

Agents are Local channels that auto-answer (``ccc-test-agent``) or ring forever
(``ccc-test-noanswer``); callers are test phones. Each scenario is built so that the strategy
under test gives a different order than the others would (e.g. longest-idle vs. round-robin),
and the order is read back from the call records: the ``AgentOffered`` events, in the order
they were written. Lower bounds on waits (a wait-time rule, wrap-up) are correctness, not speed.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from tests.conftest import eventually
from tests.integration.helpers import flow, route
from tests.integration.phones import Phone

pytestmark = pytest.mark.asterisk

ANSWERS = "Local/{n}@ccc-test-agent"
NEVER_ANSWERS = "Local/{n}@ccc-test-noanswer"
_numbers = itertools.count(5551000)


@dataclass
class Desk:
    """One queue with its agents, flow and route(s), set up through the REST API."""

    runtime: object
    client: object
    phones: object
    db: object
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    numbers: dict[str, str] = field(default_factory=dict)  # caller number -> label
    calls: dict[str, str] = field(default_factory=dict)  # label -> call id

    def agent_id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def name_of(self, agent_id: str) -> str:
        return agent_id.rsplit("-", 1)[0]

    @property
    def queue(self) -> str:
        return f"q-{self.tag}"

    async def setup(self, strategy: str, agents: dict[str, dict], *, penalties: dict[str, int] | None = None,
                    **queue: object) -> None:
        """``agents``: name -> {"device": ..., "skills": {...}}; all are logged in."""
        for n, (name, spec) in enumerate(agents.items()):
            body = {"id": self.agent_id(name), "name": name, "skills": spec.get("skills", {}),
                    "device": spec.get("device", ANSWERS).format(n=1100 + n)}
            created = await self.client.post("/v1/agents", json=body)
            assert created.status_code == 201, created.text
        members = [{"agent_id": self.agent_id(name), "penalty": (penalties or {}).get(name, 0)}
                   for name in agents]
        body = {"name": self.queue, "strategy": strategy, "ring_timeout_s": 5, "wrap_up_s": 0,
                "max_misses_before_pause": 0, "members": members, **queue}
        created = await self.client.post("/v1/queues", json=body)
        assert created.status_code == 201, created.text
        for name in agents:
            login = await self.client.post(f"/v1/agents/{self.agent_id(name)}/login")
            assert login.json()["state"] == "available", login.text

    async def number(self, dialed: str, priority: int = 0, skills: dict[str, int] | None = None) -> str:
        """A dialed number whose flow puts the caller in the queue with this priority and skills."""
        name = f"f-{self.tag}-{dialed}"
        await flow(self.client, name, {"q": {"type": "queue", "queue": self.queue, "priority": priority,
                                             "skills": skills or {}}}, "q")
        await route(self.client, f"r-{self.tag}-{dialed}", dialed, name)
        return dialed

    async def act(self, name: str, action: str) -> None:
        body = {"reason": "break"} if action == "pause" else None
        response = await self.client.post(f"/v1/agents/{self.agent_id(name)}/{action}", json=body)
        assert response.status_code == 200, response.text

    async def state(self, name: str) -> str:
        return (await self.client.get(f"/v1/agents/{self.agent_id(name)}/status")).json()["state"]

    async def call(self, dialed: str, label: str) -> Phone:
        number = str(next(_numbers))
        self.numbers[number] = label
        phone = await self.phones.call(dialed, caller_id=f'"{label}" <{number}>')
        await phone.wait_answered()
        return phone

    def _live(self, label: str):
        return next((c for c in self.runtime.calls.live_calls()
                     if self.numbers.get(c.caller_number) == label), None)

    async def connected(self, label: str, timeout: float = 15) -> str:
        """Wait until the caller ``label`` is talking to an agent; return the agent's name."""
        async def talking() -> bool:
            call = self._live(label)
            if call is None or "agent_id" not in call.data:
                return False
            agent_legs = [leg for leg in call.legs.values() if leg.id.endswith("." + call.data["agent_id"])]
            return any(leg.answered_at is not None for leg in agent_legs)

        await eventually(talking, timeout, what=f"caller {label} connected to an agent")
        call = self._live(label)
        self.calls[label] = call.id
        return self.name_of(call.data["agent_id"])

    async def end(self, phone: Phone, agent: str, *, free: bool = True) -> None:
        """Hang up and wait until the call has ended and, with ``free``, the agent is free (when
        callers are waiting, the agent may be offered the next one at once: ``free=False``)."""
        await phone.hang_up()
        await phone.wait_gone()
        if free:
            await eventually(lambda: self._off_call(agent), 10, what=f"agent {agent} off the call")

    async def _off_call(self, agent: str) -> bool:
        return await self.state(agent) not in ("on_call", "reserved")

    async def serve(self, dialed: str, label: str, hold_s: float = 0) -> str:
        """One caller, from dialing to the agent free again; returns who took it."""
        phone = await self.call(dialed, label)
        agent = await self.connected(label)
        if hold_s:
            await asyncio.sleep(hold_s)
        await self.end(phone, agent)
        return agent

    async def offers(self) -> list[tuple[str, str]]:
        """(caller label, agent name) of every offer made in this test, in the order made."""
        await self.runtime.records.flushed()
        cursor = await self.db.execute(
            """
            SELECT c.caller_number, e.data->>'agent_id' AS agent_id
            FROM call_events e JOIN calls c ON c.id = e.call_id
            WHERE e.kind = 'AgentOffered' AND c.started_at >= %s ORDER BY e.id
            """, (self.since,))
        return [(self.numbers[row["caller_number"]], self.name_of(row["agent_id"]))
                for row in await cursor.fetchall() if row["caller_number"] in self.numbers]

    async def offered_agents(self) -> list[str]:
        return [agent for _, agent in await self.offers()]


@pytest.fixture
async def desk(inbound, dtmf_phones, db_conn) -> Desk:
    runtime, client = inbound
    return Desk(runtime, client, dtmf_phones, db_conn)


async def test_longest_idle_offers_the_agent_whose_last_call_ended_longest_ago(desk: Desk):
    await desk.setup("longest_idle", {"a": {}, "b": {}, "c": {}})
    dialed = await desk.number("7821")
    await desk.act("c", "pause")
    # a takes a call and keeps it; b takes the next and ends first; then a ends.
    first = await desk.call(dialed, "1")
    assert await desk.connected("1") == "a"
    assert await desk.serve(dialed, "2") == "b"
    await desk.end(first, "a")
    # b's call ended before a's: b has been idle longest (round-robin or linear would pick a).
    assert await desk.serve(dialed, "3") == "b"
    assert await desk.offered_agents() == ["a", "b", "b"]


async def test_round_robin_goes_on_after_the_agent_last_offered(desk: Desk):
    await desk.setup("round_robin", {"a": {}, "b": {}, "c": {}})
    dialed = await desk.number("7822")
    assert await desk.serve(dialed, "1") == "a"
    assert await desk.serve(dialed, "2") == "b"
    await desk.act("c", "pause")
    assert await desk.serve(dialed, "3") == "a"  # after b comes c, paused: wrap round to a
    await desk.act("c", "unpause")
    # The memory says a was last: b is next, although c has never had a call (longest-idle: c).
    assert await desk.serve(dialed, "4") == "b"
    assert await desk.offered_agents() == ["a", "b", "a", "b"]


async def test_fewest_calls_offers_the_agent_with_fewest_calls_taken(desk: Desk):
    await desk.setup("fewest_calls", {"a": {}, "b": {}})
    dialed = await desk.number("7823")
    await desk.act("b", "pause")
    assert await desk.serve(dialed, "1") == "a"
    assert await desk.serve(dialed, "2") == "a"
    await desk.act("b", "unpause")
    await desk.act("a", "pause")
    assert await desk.serve(dialed, "3") == "b"
    await desk.act("a", "unpause")
    # b has taken 1 call, a 2: b again, although a has been idle longer and comes first.
    assert await desk.serve(dialed, "4") == "b"
    assert await desk.offered_agents() == ["a", "a", "b", "b"]
    status = (await desk.client.get(f"/v1/agents/{desk.agent_id('a')}/status")).json()
    assert status["calls_taken"] == 2


async def test_least_talk_time_offers_the_agent_who_talked_least(desk: Desk):
    await desk.setup("least_talk_time", {"a": {}, "b": {}})
    dialed = await desk.number("7824")
    assert await desk.serve(dialed, "1", hold_s=2.5) == "a"  # a talks 2 s or more
    assert await desk.serve(dialed, "2") == "b"  # b talks under a second
    # b has talked least: b again, although a has been idle longer and comes first.
    assert await desk.serve(dialed, "3") == "b"
    assert await desk.offered_agents() == ["a", "b", "b"]


async def test_random_offers_only_eligible_agents_and_serves_every_caller(desk: Desk):
    await desk.setup("random", {"a": {}, "b": {}, "c": {}, "d": {}})
    dialed = await desk.number("7825")
    await desk.act("c", "pause")
    await desk.act("d", "logout")
    callers = {str(i): await desk.call(dialed, str(i)) for i in range(1, 7)}
    # Two agents for six callers: served in arrival order as agents free up.
    for label, phone in callers.items():
        agent = await desk.connected(label)
        await desk.end(phone, agent, free=False)
    offers = await desk.offers()
    assert {agent for _, agent in offers} <= {"a", "b"}
    assert sorted({label for label, _ in offers}) == sorted(callers)
    assert set(desk.calls) == set(callers)
    stats = (await desk.client.get(f"/v1/queues/{desk.queue}/stats")).json()
    assert (stats["answered"], stats["abandoned"], stats["overflowed"]) == (6, 0, 0)


async def test_skills_based_offers_the_best_match_first_among_qualified_agents(desk: Desk):
    await desk.setup("skills_based", {
        "weak": {"skills": {"billing": 3}},  # below the required level: never offered
        "best": {"skills": {"billing": 8, "french": 2}, "device": NEVER_ANSWERS},
        "good": {"skills": {"billing": 5}},
        "none": {},  # without the skill: never offered
    }, ring_timeout_s=1)
    dialed = await desk.number("7826", skills={"billing": 4})
    assert await desk.serve(dialed, "1") == "good"
    # best (8) first; it never answers; then good (5). weak (3 < 4) and none are passed over.
    assert await desk.offered_agents() == ["best", "good"]


async def test_a_wait_time_rule_lets_a_higher_tier_take_the_call(desk: Desk):
    await desk.setup("linear", {"first": {}, "second": {}}, penalties={"first": 0, "second": 1},
                     max_penalty=0, rules=[{"after_wait_s": 2, "max_penalty": 1}])
    dialed = await desk.number("7827")
    await desk.act("first", "pause")  # tier 0 is staffed but busy; tier 1 only after 2 s of waiting
    phone = await desk.call(dialed, "1")
    calls = (await desk.client.get(f"/v1/queues/{desk.queue}/calls")).json()
    assert len(calls) == 1 and calls[0]["ringing"] == []
    assert await desk.connected("1") == "second"
    await desk.end(phone, "second")
    await desk.runtime.records.flushed()
    cursor = await desk.db.execute(
        "SELECT c.started_at, e.at FROM call_events e JOIN calls c ON c.id = e.call_id "
        "WHERE e.call_id = %s AND e.kind = 'AgentOffered'", (desk.calls["1"],))
    [row] = await cursor.fetchall()
    assert (row["at"] - row["started_at"]).total_seconds() >= 2


async def test_a_vip_who_enters_later_is_served_first_when_the_agent_frees(desk: Desk):
    await desk.setup("linear", {"solo": {}})
    normal = await desk.number("7828", priority=0)
    vip = await desk.number("7829", priority=9)
    busy = await desk.call(normal, "busy")
    assert await desk.connected("busy") == "solo"
    waiting = {"early": await desk.call(normal, "early")}

    async def queued(n: int) -> bool:
        return len((await desk.client.get(f"/v1/queues/{desk.queue}/calls")).json()) == n

    await eventually(lambda: queued(1), 5, what="the early caller queued")
    waiting["vip"] = await desk.call(vip, "vip")
    await eventually(lambda: queued(2), 5, what="the VIP queued")
    line = (await desk.client.get(f"/v1/queues/{desk.queue}/calls")).json()
    assert [entry["priority"] for entry in line] == [9, 0]

    await desk.end(busy, "solo", free=False)
    assert await desk.connected("vip") == "solo"
    await desk.end(waiting["vip"], "solo", free=False)
    assert await desk.connected("early") == "solo"
    await desk.end(waiting["early"], "solo")
    assert [label for label, _ in await desk.offers()] == ["busy", "vip", "early"]


async def test_wrap_up_delays_the_next_offer(desk: Desk):
    await desk.setup("linear", {"solo": {}}, wrap_up_s=2)
    dialed = await desk.number("7830")
    first = await desk.call(dialed, "1")
    assert await desk.connected("1") == "solo"
    second = await desk.call(dialed, "2")
    await desk.end(first, "solo", free=False)
    assert await desk.connected("2") == "solo"
    await desk.end(second, "solo")
    await desk.runtime.records.flushed()
    log = (await desk.client.get(f"/v1/agents/{desk.agent_id('solo')}/states")).json()
    states = [entry["state"] for entry in log]
    assert states[-6:] == ["on_call", "wrap_up", "available", "reserved", "on_call", "wrap_up"]
    wrap_up, reserved = log[-5], log[-3]
    waited = datetime.fromisoformat(reserved["at"]) - datetime.fromisoformat(wrap_up["at"])
    assert waited.total_seconds() >= 2
