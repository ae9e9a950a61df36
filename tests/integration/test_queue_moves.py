"""Queue members through groups, and supervisors moving waiting callers, on the real Asterisk.

An agent who is a member of a queue only through a group (and joined the group after the queue
was written) gets the queue's call. A caller waiting in a queue nobody staffs is moved by a
supervisor to another queue, whose auto-answering agent is bridged with it; another caller is
moved to one agent, waits while that agent is paused, and is bridged with it once it is free.
Agents, queues, flows and routes are created through the REST API; bridges are read in ARI."""

from __future__ import annotations

import pytest

from controller.domain.access import Role
from tests.conftest import eventually
from tests.integration.helpers import call_clock, ended_call, event_kinds, flow, route

pytestmark = pytest.mark.asterisk


async def make_agent(client, agent_id: str, device: str, **fields) -> None:
    created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device,
                                                    **fields})
    assert created.status_code == 201, created.text


async def make_queue(client, name: str, **fields) -> dict:
    response = await client.post("/v1/queues", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def act(client, agent_id: str, action: str) -> None:
    response = await client.post(f"/v1/agents/{agent_id}/{action}",
                                 json={"reason": "break"} if action == "pause" else None)
    assert response.status_code == 200, response.text


async def bridged_with(runtime, ari, dialed: str, agent_id: str) -> bool:
    """The live call to ``dialed`` is connected to ``agent_id``: the caller and that agent's leg
    are the two channels of one bridge on Asterisk."""
    live = [c for c in runtime.calls.live_calls() if c.dialed == dialed]
    if not live or live[0].data.get("agent_id") != agent_id:
        return False
    agent_legs = {leg for leg in live[0].legs if leg.endswith(f".{agent_id}")}
    callers = {leg.id for leg in live[0].legs.values() if leg.role.value == "caller"}
    bridges = (await ari.get("/bridges")).json()
    return any(set(b["channels"]) & agent_legs and set(b["channels"]) & callers
               and len(b["channels"]) == 2 for b in bridges)


async def test_an_agent_in_a_group_gets_the_queues_call(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await make_agent(client, "grp-solo", "Local/1501@ccc-test-agent")
    queue = await make_queue(client, "grp-q", strategy="linear",
                             members=[{"group": "grp-sales", "penalty": 1}])
    assert queue["resolved_members"] == [] and queue["empty_groups"] == ["grp-sales"]
    # The agent joins the group after the queue was written; the queue is not touched.
    joined = await client.put("/v1/agents/grp-solo", json={
        "name": "grp-solo", "device": "Local/1501@ccc-test-agent", "groups": ["grp-sales"]})
    assert joined.status_code == 200, joined.text
    got = (await client.get("/v1/queues/grp-q")).json()
    assert got["members"] == [{"group": "grp-sales", "penalty": 1}]
    assert got["resolved_members"] == [{"agent_id": "grp-solo", "penalty": 1, "group": "grp-sales"}]
    await flow(client, "grp-to-q", {"q": {"type": "queue", "queue": "grp-q"}}, "q")
    await route(client, "grp-route", "7910", "grp-to-q")
    await act(client, "grp-solo", "login")

    since = call_clock()
    phone = await dtmf_phones.call("7910")
    await phone.wait_answered()
    await eventually(lambda: bridged_with(runtime, dtmf_phones.client, "7910", "grp-solo"), 15,
                     what="the caller bridged with grp-solo, a member through its group")
    stats = (await client.get("/v1/queues/grp-q/stats")).json()
    assert stats["agents"] == {"on_call": 1} and stats["answered"] == 1
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7910", since)
    assert call["data"]["agent_id"] == "grp-solo" and call["data"]["queue"] == "grp-q"


@pytest.fixture
async def supervisor(inbound, api_client):
    """The runtime, its admin client, and a client holding a supervisor key."""
    runtime, client = inbound
    _, key = await runtime.api_keys.create("move tests", Role.SUPERVISOR, None)
    async with api_client(runtime) as boss:
        boss.headers["Authorization"] = f"Bearer {key}"
        yield runtime, client, boss


async def test_a_caller_nobody_takes_is_moved_to_a_queue_whose_agent_answers(
        supervisor, dtmf_phones, db_conn):
    runtime, client, boss = supervisor
    await make_agent(client, "mv-away", "Local/1502@ccc-test-agent")
    await make_agent(client, "mv-bee", "Local/1503@ccc-test-agent")
    # Queue A keeps its callers although nobody is logged in; queue B has an agent who answers.
    await make_queue(client, "mv-a", members=[{"agent_id": "mv-away"}], join_when_empty=True,
                     leave_when_empty=False)
    await make_queue(client, "mv-b", members=[{"agent_id": "mv-bee"}])
    await flow(client, "mv-to-a", {"q": {"type": "queue", "queue": "mv-a", "priority": 2}}, "q")
    await route(client, "mv-route-a", "7920", "mv-to-a")
    await act(client, "mv-bee", "login")

    since = call_clock()
    phone = await dtmf_phones.call("7920")
    await phone.wait_answered()

    async def waiting_in_a() -> bool:
        return len((await client.get("/v1/queues/mv-a/calls")).json()) == 1

    await eventually(waiting_in_a, 10, what="the caller waiting in mv-a")
    [entry] = (await client.get("/v1/queues/mv-a/calls")).json()
    denied = await client.post(f"/v1/calls/{entry['call_id']}/move", json={"queue": "mv-b"},
                               headers={"Authorization": "Bearer nope"})
    assert denied.status_code == 401
    moved = await boss.post(f"/v1/calls/{entry['call_id']}/move", json={"queue": "mv-b"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["queue"], moved.json()["priority"]) == ("mv-b", 2)

    await eventually(lambda: bridged_with(runtime, dtmf_phones.client, "7920", "mv-bee"), 15,
                     what="the moved caller bridged with mv-bee")
    assert (await client.get("/v1/queues/mv-a/stats")).json()["moved_out"] == 1
    assert (await client.get("/v1/queues/mv-b/stats")).json()["answered"] == 1
    again = await boss.post(f"/v1/calls/{entry['call_id']}/move", json={"queue": "mv-a"})
    assert again.status_code == 409 and "not waiting" in again.json()["detail"]  # talking now
    await phone.hang_up()

    call = await ended_call(runtime, db_conn, "7920", since)
    data = call["data"]
    assert (data["queue"], data["queue_moved_from"], data["agent_id"]) == ("mv-b", "mv-a", "mv-bee")
    assert data["queue_first_entered_at"] and "queue_target_agent" not in data
    events = await event_kinds(db_conn, call["id"])
    kinds = [kind for kind, _ in events]
    # The caller took its new queue's side before the agent was connected (the offer itself is
    # recorded by the ACD's side, which may come first).
    assert kinds.index("QueueMoved") < kinds.index("AgentConnected")
    assert [d["agent_id"] for kind, d in events if kind == "AgentOffered"] == ["mv-bee"]
    moved_event = next(d for kind, d in events if kind == "QueueMoved")
    assert (moved_event["queue"], moved_event["from_queue"], moved_event["agent_id"]) == ("mv-b", "mv-a", "")


async def test_a_caller_moved_to_an_agent_waits_for_it_and_is_connected_to_it(
        supervisor, dtmf_phones, db_conn):
    runtime, client, boss = supervisor
    await make_agent(client, "mv-member", "Local/1504@ccc-test-agent")
    await make_agent(client, "mv-dee", "Local/1505@ccc-test-agent")  # in no queue
    await make_agent(client, "mv-off", "Local/1506@ccc-test-agent")
    await make_queue(client, "mv-c", members=[{"agent_id": "mv-member"}])
    await flow(client, "mv-to-c", {"q": {"type": "queue", "queue": "mv-c"}}, "q")
    await route(client, "mv-route-c", "7930", "mv-to-c")
    await act(client, "mv-member", "login")
    await act(client, "mv-member", "pause")  # staffed, but nobody takes the call
    await act(client, "mv-dee", "login")
    await act(client, "mv-dee", "pause")

    since = call_clock()
    phone = await dtmf_phones.call("7930")
    await phone.wait_answered()

    async def waiting_in_c() -> bool:
        return len((await client.get("/v1/queues/mv-c/calls")).json()) == 1

    await eventually(waiting_in_c, 10, what="the caller waiting in mv-c")
    [entry] = (await client.get("/v1/queues/mv-c/calls")).json()
    call_id = entry["call_id"]
    logged_out = await boss.post(f"/v1/calls/{call_id}/move", json={"agent": "mv-off"})
    assert logged_out.status_code == 409 and logged_out.json()["detail"] == "agent mv-off is logged out"
    moved = await boss.post(f"/v1/calls/{call_id}/move", json={"agent": "mv-dee"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["queue"], moved.json()["target_agent"]) == ("mv-c", "mv-dee")

    # The queue's own agent comes back, but the caller waits for mv-dee (paused).
    await act(client, "mv-member", "unpause")
    [entry] = (await client.get("/v1/queues/mv-c/calls")).json()
    assert (entry["target_agent"], entry["ringing"]) == ("mv-dee", [])
    assert (await client.get("/v1/agents/mv-member/status")).json()["state"] == "available"
    await act(client, "mv-dee", "unpause")
    await eventually(lambda: bridged_with(runtime, dtmf_phones.client, "7930", "mv-dee"), 15,
                     what="the caller bridged with mv-dee, the agent it was moved to")
    await phone.hang_up()

    call = await ended_call(runtime, db_conn, "7930", since)
    assert (call["data"]["queue"], call["data"]["agent_id"], call["data"]["queue_target_agent"]) == (
        "mv-c", "mv-dee", "mv-dee")
    cursor = await db_conn.execute("SELECT id FROM legs WHERE call_id = %s AND role = 'agent'", (call["id"],))
    assert [row["id"].rsplit(".", 1)[1] for row in await cursor.fetchall()] == ["mv-dee"]
