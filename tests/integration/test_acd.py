"""The ACD on the real Asterisk: a caller routed by a flow's queue node waits on hold, the
queue's strategy rings agents' devices (Local channels that auto-answer or never answer), a
missed offer goes to the next agent and pauses the one who missed it, the answering agent is
bridged with the caller (checked in ARI), and the agent goes through wrap-up back to available.
Agents, queues, flows and routes are created through the REST API."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import eventually
from tests.integration.helpers import call_clock, ended_call, event_kinds, flow, route

pytestmark = pytest.mark.asterisk


async def agent_state(client, agent_id: str) -> str:
    return (await client.get(f"/v1/agents/{agent_id}/status")).json()["state"]


async def test_a_queued_caller_reaches_the_next_agent_after_a_missed_offer(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    for agent_id, device in (("sleepy", "Local/1002@ccc-test-noanswer"),
                             ("eager", "Local/1001@ccc-test-agent")):
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id.title(),
                                                        "device": device})
        assert created.status_code == 201, created.text
    queue = await client.post("/v1/queues", json={
        "name": "support", "strategy": "linear", "ring_timeout_s": 2, "wrap_up_s": 1,
        "max_misses_before_pause": 1,
        "members": [{"agent_id": "sleepy", "penalty": 0}, {"agent_id": "eager", "penalty": 0}]})
    assert queue.status_code == 201, queue.text
    await flow(client, "to-support", {"q": {"type": "queue", "queue": "support", "priority": 5}}, "q")
    await route(client, "support", "7600", "to-support")
    for agent_id in ("sleepy", "eager"):
        response = await client.post(f"/v1/agents/{agent_id}/login")
        assert response.status_code == 200 and response.json()["state"] == "available", response.text

    since = call_clock()
    phone = await dtmf_phones.call("7600", caller_id='"Erin" <5552222>')
    await phone.wait_answered()

    # Linear: sleepy rings first, does not answer in 2 s, is paused; eager answers.
    async def bridged_with_eager() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == "7600"]
        if not live or live[0].data.get("agent_id") != "eager":
            return False
        bridges = (await dtmf_phones.client.get("/bridges")).json()
        return any(set(b["channels"]) >= {leg for leg in live[0].legs if leg.endswith(".eager")}
                   and len(b["channels"]) == 2 for b in bridges)

    # While sleepy rings, the caller is first (and only) in line, ringing sleepy.
    waiting = (await client.get("/v1/queues/support/calls")).json()
    assert len(waiting) == 1 and waiting[0]["position"] == 1 and waiting[0]["priority"] == 5

    await eventually(bridged_with_eager, 15, what="the caller bridged with agent eager")
    stats = (await client.get("/v1/queues/support/stats")).json()
    assert (stats["waiting"], stats["answered"], stats["abandoned"]) == (0, 1, 0)
    assert stats["agents"] == {"paused": 1, "on_call": 1}
    assert stats["average_wait_answered_s"] >= 2  # sleepy's 2 s ring timeout came first
    assert await agent_state(client, "sleepy") == "paused"
    assert await agent_state(client, "eager") == "on_call"

    await asyncio.sleep(1)
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7600", since)
    assert call["data"]["agent_id"] == "eager" and call["data"]["queue"] == "support"
    cursor = await db_conn.execute(
        "SELECT id, role, answered_at, hangup_cause FROM legs WHERE call_id = %s ORDER BY created_at",
        (call["id"],))
    legs = await cursor.fetchall()
    assert [leg["role"] for leg in legs] == ["caller", "agent", "agent"]
    assert legs[1]["id"].endswith(".sleepy") and legs[1]["answered_at"] is None
    assert legs[2]["id"].endswith(".eager") and legs[2]["answered_at"] is not None
    kinds = [kind for kind, _ in await event_kinds(db_conn, call["id"])]
    assert kinds.count("AgentOffered") == 2 and "AgentConnected" in kinds

    # Wrap-up (1 s), then available again; every change is in the state log.
    await eventually(lambda: _state_is(client, "eager", "available"), 10, what="eager back to available")
    await runtime.records.flushed()
    states = [s["state"] for s in (await client.get("/v1/agents/eager/states")).json()]
    assert states[-4:] == ["reserved", "on_call", "wrap_up", "available"]
    sleepy = [s["state"] for s in (await client.get("/v1/agents/sleepy/states")).json()]
    assert sleepy[-2:] == ["reserved", "paused"]


async def _state_is(client, agent_id: str, state: str) -> bool:
    return await agent_state(client, agent_id) == state


async def test_ring_all_rings_every_free_agent_and_the_first_answer_wins(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    for agent_id, device in (("ra-slow", "Local/1003@ccc-test-noanswer"),
                             ("ra-fast", "Local/1004@ccc-test-agent")):
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
        assert created.status_code == 201, created.text
    queue = await client.post("/v1/queues", json={
        "name": "everyone", "strategy": "ring_all", "ring_timeout_s": 10,
        "members": [{"agent_id": "ra-slow", "penalty": 0}, {"agent_id": "ra-fast", "penalty": 0}]})
    assert queue.status_code == 201, queue.text
    await flow(client, "to-everyone", {"q": {"type": "queue", "queue": "everyone"}}, "q")
    await route(client, "everyone", "7700", "to-everyone")
    for agent_id in ("ra-slow", "ra-fast"):
        assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200

    since = call_clock()
    phone = await dtmf_phones.call("7700")
    await phone.wait_answered()

    async def connected() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == "7700"]
        return bool(live) and live[0].data.get("agent_id") == "ra-fast"

    await eventually(connected, 10, what="ra-fast to take the call")
    # The other agent's ringing leg is withdrawn; it is free again, not counted as a miss.
    await eventually(lambda: _state_is(client, "ra-slow", "available"), 5, what="ra-slow freed")
    assert (await client.get("/v1/agents/ra-slow/status")).json()["missed_in_a_row"] == 0
    # Call control through the API: hold, unhold, then the CRM hangs the call up.
    call_id = next(c.id for c in runtime.calls.live_calls() if c.dialed == "7700")
    for action in ("hold", "unhold"):
        response = await client.post(f"/v1/calls/{call_id}/{action}")
        assert response.status_code == 202, response.text
    hung = await client.post(f"/v1/calls/{call_id}/hangup")
    assert hung.status_code == 202
    await phone.wait_gone()
    call = await ended_call(runtime, db_conn, "7700", since)
    kinds = [kind for kind, _ in await event_kinds(db_conn, call["id"])]
    assert kinds.index("CallHeld") < kinds.index("CallResumed")
    missing = await client.post(f"/v1/calls/{call_id}/hangup")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    cursor = await db_conn.execute(
        "SELECT id, created_at, answered_at FROM legs WHERE call_id = %s AND role = 'agent'", (call["id"],))
    legs = {row["id"].rsplit(".", 1)[1]: row for row in await cursor.fetchall()}
    assert set(legs) == {"ra-slow", "ra-fast"}
    assert abs((legs["ra-slow"]["created_at"] - legs["ra-fast"]["created_at"]).total_seconds()) < 1
    assert legs["ra-fast"]["answered_at"] is not None and legs["ra-slow"]["answered_at"] is None


async def test_an_agent_who_hangs_up_as_it_answers_is_freed_and_the_caller_keeps_waiting(
        inbound, dtmf_phones, db_conn):
    # The ACD makes an agent busy when it answers; the bridge follows a log round trip later.
    # An agent gone by then must not stay busy, nor may its caller stay on hold for nobody.
    runtime, client = inbound
    for agent_id, device in (("quitter", "Local/1003@ccc-test-agent-hangup"),
                             ("steady", "Local/1004@ccc-test-agent")):
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id.title(),
                                                        "device": device})
        assert created.status_code == 201, created.text
    queue = await client.post("/v1/queues", json={
        "name": "race", "strategy": "linear", "ring_timeout_s": 5, "wrap_up_s": 0,
        "max_misses_before_pause": 2,
        "members": [{"agent_id": "quitter", "penalty": 0}, {"agent_id": "steady", "penalty": 0}]})
    assert queue.status_code == 201, queue.text
    await flow(client, "to-race", {"q": {"type": "queue", "queue": "race"}}, "q")
    await route(client, "race", "7601", "to-race")
    assert (await client.post("/v1/agents/quitter/login")).status_code == 200
    assert (await client.post("/v1/agents/steady/login")).status_code == 200
    assert (await client.post("/v1/agents/steady/pause", json={"reason": "meeting"})).status_code == 200

    since = call_clock()
    phone = await dtmf_phones.call("7601", caller_id='"Race" <5552323>')
    await phone.wait_answered()

    async def quitter_gone_before_connect() -> bool:
        cursor = await db_conn.execute(
            "SELECT count(*) AS n FROM call_events e JOIN calls c ON c.id = e.call_id "
            "WHERE c.started_at >= %s AND c.dialed = '7601' AND e.kind = 'AgentGoneBeforeConnect'", (since,))
        return (await cursor.fetchone())["n"] >= 1

    await eventually(quitter_gone_before_connect, 15, what="the agent gone before the bridge")

    # Each drop counts as a miss: after two in a row quitter is paused (not stuck on a call),
    # and the caller still waits, first in line, for steady.
    async def quitter_paused() -> bool:
        status = (await client.get("/v1/agents/quitter/status")).json()
        return status["state"] == "paused"

    await eventually(quitter_paused, 10, what="quitter paused after its misses")
    assert [c["position"] for c in (await client.get("/v1/queues/race/calls")).json()] == [1]
    assert (await client.post("/v1/agents/steady/unpause")).status_code == 200

    async def bridged_with_steady() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == "7601"]
        return bool(live) and live[0].data.get("agent_id") == "steady"

    await eventually(bridged_with_steady, 15, what="the caller connected with agent steady")
    assert not phone.gone.is_set()
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7601", since)
    kinds = [kind for kind, _ in await event_kinds(db_conn, call["id"])]
    assert kinds.count("AgentConnected") == 1
    steady_state = await agent_state(client, "steady")
    assert steady_state in ("available", "wrap_up"), steady_state
