"""Call control on the real Asterisk: click-to-dial, transfers (blind, attended, to a queue),
conference, DTMF and dispositions through the REST API, with agent keys that may act only on
their own calls. Who talks with whom is read from ARI (GET /bridges), and the call detail
records (legs, events, disposition) from Postgres.

Agents and customers are Local channels that answer and echo ([ccc-test-agent])."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import eventually
from tests.integration.helpers import call_clock, ended_call, event_kinds, flow, route

pytestmark = pytest.mark.asterisk


async def bridged(ari, call_id: str) -> set[str]:
    """The channels in the call's bridge, as ARI lists them."""
    bridges = (await ari.get("/bridges")).json()
    return next((set(b["channels"]) for b in bridges if b["id"] == f"br-{call_id}"), set())


async def agent(client, agent_id: str, device: str, login: bool = True) -> None:
    created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
    assert created.status_code == 201, created.text
    if login:
        assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200


async def agent_key(client, agent_id: str) -> dict[str, str]:
    made = await client.post("/v1/api-keys", json={"name": f"key of {agent_id}", "role": "agent",
                                                    "agent_id": agent_id})
    assert made.status_code == 201, made.text
    assert made.json()["agent_id"] == agent_id
    return {"Authorization": f"Bearer {made.json()['key']}"}


async def queue(client, name: str, members: list[str]) -> None:
    created = await client.post("/v1/queues", json={
        "name": name, "strategy": "linear", "ring_timeout_s": 10, "wrap_up_s": 0,
        "members": [{"agent_id": m, "penalty": 0} for m in members]})
    assert created.status_code == 201, created.text


def legs_of(runtime, call_id: str, role: str) -> list[str]:
    call = runtime.calls.find(call_id)
    assert call is not None, f"call {call_id} is not live"
    return [leg.id for leg in call.legs.values() if leg.role.value == role and leg.state.value != "ended"]


async def queued_call(runtime, client, dtmf_phones, number: str, agent_id: str):
    """A caller queued by a flow and bridged with ``agent_id``: (phone, call id, caller leg, agent leg)."""
    phone = await dtmf_phones.call(number, caller_id='"Ada" <5553333>')
    await phone.wait_answered()

    async def connected() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == number]
        return bool(live) and live[0].data.get("agent_id") == agent_id

    await eventually(connected, 15, what=f"the caller connected to {agent_id}")
    call_id = next(c.id for c in runtime.calls.live_calls() if c.dialed == number)
    caller, agent_leg = legs_of(runtime, call_id, "caller")[0], legs_of(runtime, call_id, "agent")[0]
    await eventually(lambda: _has(dtmf_phones.client, call_id, {caller, agent_leg}), 10,
                     what="caller and agent bridged")
    return phone, call_id, caller, agent_leg


async def _has(ari, call_id: str, channels: set[str]) -> bool:
    return await bridged(ari, call_id) == channels


async def test_click_to_dial_rings_the_agent_then_the_customer_and_only_its_agent_controls_it(
        inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    await agent(client, "ctd-ann", "Local/3001@ccc-test-agent", login=False)
    await agent(client, "ctd-bob", "Local/3002@ccc-test-agent", login=False)
    ann, bob = await agent_key(client, "ctd-ann"), await agent_key(client, "ctd-bob")

    # An agent key dials from its own device only.
    response = await client.post("/v1/calls", headers=ann, json={
        "agent_id": "ctd-bob", "to": {"endpoint": "Local/5550001@ccc-test-agent"}})
    assert response.status_code == 403, response.text
    response = await client.post("/v1/calls", headers=ann, json={
        "to": {"endpoint": "Local/5550001@ccc-test-agent"}, "reference": "crm-7",
        "data": {"campaign": "spring"}})
    assert response.status_code == 202, response.text
    call_id = response.json()["call_id"]

    async def talking() -> bool:
        call = runtime.calls.find(call_id)
        customers = [x for x in (call.legs if call else {}) if ".customer" in x]
        return bool(customers) and await bridged(ari, call_id) == {f"{call_id}.agent", customers[0]}

    await eventually(talking, 15, what="agent and customer bridged")
    customer = legs_of(runtime, call_id, "customer")[0]

    # Another agent's key may not touch the call; the call's own agent may.
    for path, body in (("hangup", None), ("hold", None), ("dtmf", {"digits": "1"}),
                       ("conference", {"to": {"extension": "1001"}}), ("disposition", {"code": "x"})):
        refused = await client.post(f"/v1/calls/{call_id}/{path}", headers=bob, json=body)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    for action in ("hold", "unhold"):
        assert (await client.post(f"/v1/calls/{call_id}/{action}", headers=ann)).status_code == 202

    # Three-way: a third party joins the same bridge.
    response = await client.post(f"/v1/calls/{call_id}/conference", headers=ann,
                                 json={"to": {"endpoint": "Local/5550002@ccc-test-agent"}})
    assert response.status_code == 202, response.text

    async def three() -> bool:
        third = legs_of(runtime, call_id, "conference")
        return bool(third) and await bridged(ari, call_id) == {f"{call_id}.agent", customer, third[0]}

    await eventually(three, 15, what="the third party in the bridge")
    again = await client.post(f"/v1/calls/{call_id}/conference", headers=ann,
                              json={"to": {"endpoint": "Local/5550003@ccc-test-agent"}})
    assert again.status_code == 409, again.text

    # The customer leaves the conference: agent and third party go on talking.
    await ari.delete(f"/channels/{customer}")
    third = legs_of(runtime, call_id, "conference")[0]
    await eventually(lambda: _has(ari, call_id, {f"{call_id}.agent", third}), 10,
                     what="agent and third party left in the bridge")
    assert (await client.post(f"/v1/calls/{call_id}/hangup", headers=ann)).status_code == 202

    since = datetime(2000, 1, 1, tzinfo=UTC)
    call = await ended_call(runtime, db_conn, "Local/5550001@ccc-test-agent", since)
    assert call["id"] == call_id and call["direction"] == "outbound"
    assert call["data"]["reference"] == "crm-7" and call["data"]["campaign"] == "spring"
    assert call["data"]["agent_id"] == "ctd-ann"
    cursor = await db_conn.execute(
        "SELECT role, answered_at, ended_at FROM legs WHERE call_id = %s ORDER BY created_at", (call_id,))
    legs = await cursor.fetchall()
    assert [leg["role"] for leg in legs] == ["agent", "customer", "conference"]
    assert all(leg["answered_at"] is not None and leg["ended_at"] is not None for leg in legs)
    kinds = [kind for kind, _ in await event_kinds(db_conn, call_id)]
    for kind in ("ClickToDial", "CustomerAnswered", "CallHeld", "CallResumed", "ConferenceJoined"):
        assert kind in kinds, kind

    # Dispositions after the end: by the call's agent, not by another; the call shows it.
    refused = await client.post(f"/v1/calls/{call_id}/disposition", headers=bob, json={"code": "sale"})
    assert refused.status_code == 403
    done = await client.post(f"/v1/calls/{call_id}/disposition", headers=ann,
                             json={"code": "sale", "notes": "wants a call back\nafter 5", "follow_up": True})
    assert done.status_code == 200, done.text
    detail = (await client.get(f"/v1/calls/{call_id}")).json()
    assert detail["disposition"]["code"] == "sale" and detail["disposition"]["follow_up"] is True
    assert detail["disposition"]["agent_id"] == "ctd-ann"
    gone = await client.post(f"/v1/calls/{call_id}/hangup", headers=ann)
    assert gone.status_code == 404


async def test_an_agent_on_its_click_to_dial_call_is_busy_for_the_acd(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    await agent(client, "busy-ann", "Local/3101@ccc-test-agent")
    await queue(client, "busy-queue", ["busy-ann"])
    await flow(client, "to-busy-queue", {"q": {"type": "queue", "queue": "busy-queue"}}, "q")
    await route(client, "busy-route", "7840", "to-busy-queue")
    ann = await agent_key(client, "busy-ann")

    response = await client.post("/v1/calls", headers=ann, json={
        "to": {"endpoint": "Local/5550021@ccc-test-agent"}})
    assert response.status_code == 202, response.text
    dialed = response.json()["call_id"]

    async def talking() -> bool:
        customers = legs_of(runtime, dialed, "customer")
        return bool(customers) and await bridged(ari, dialed) == {f"{dialed}.agent", customers[0]}

    await eventually(talking, 15, what="agent and customer bridged")
    status = (await client.get("/v1/agents/busy-ann/status", headers=ann)).json()
    assert status["state"] == "on_call", status

    # A caller queues for the agent's only queue: the ACD does not offer it to the busy agent.
    phone = await dtmf_phones.call("7840", caller_id='"Bo" <5554444>')
    await phone.wait_answered()

    async def waiting() -> list[dict]:
        return (await client.get("/v1/queues/busy-queue/calls")).json()

    await eventually(lambda: _count(waiting, 1), 15, what="the caller waiting in the queue")
    # The offer would go out in the same ACD step that queued the caller: none did.
    [entry] = await waiting()
    assert entry["ringing"] == [], entry
    assert runtime.acd.agent("busy-ann").state.value == "on_call"
    waiting_call = runtime.calls.find(entry["call_id"])
    assert not [leg for leg in waiting_call.legs.values() if leg.role.value == "agent"]

    # The click-to-dial call ends: the agent is back (no wrap-up for a call of no queue) and
    # the waiting caller is offered to it and connected.
    assert (await client.post(f"/v1/calls/{dialed}/hangup", headers=ann)).status_code == 202

    async def connected() -> bool:
        call = runtime.calls.find(entry["call_id"])
        return call is not None and call.data.get("agent_id") == "busy-ann"

    await eventually(connected, 15, what="the queued caller connected to the agent")
    await phone.hang_up()
    await eventually(lambda: runtime.acd.agent("busy-ann").state.value == "available", 10,
                     what="the agent available after the queued call")
    await runtime.records.flushed()
    cursor = await db_conn.execute(
        "SELECT state, reason, call_id FROM agent_state_log WHERE agent_id = 'busy-ann' ORDER BY at, id")
    rows = await cursor.fetchall()
    states = [row["state"] for row in rows]
    assert states[:5] == ["available", "on_call", "available", "reserved", "on_call"], rows
    assert rows[1]["reason"] == f"on call {dialed}" and rows[1]["call_id"] == dialed
    assert rows[2]["reason"] == "call ended"


async def _count(read, n: int) -> bool:
    return len(await read()) == n


async def test_attended_transfer_cancel_then_complete_then_blind(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    await agent(client, "at-first", "Local/2101@ccc-test-agent")
    await agent(client, "at-second", "Local/2102@ccc-test-agent", login=False)
    await queue(client, "at-queue", ["at-first"])
    await flow(client, "to-at-queue", {"q": {"type": "queue", "queue": "at-queue"}}, "q")
    await route(client, "at-route", "7810", "to-at-queue")
    since = call_clock()
    phone, call_id, caller, first = await queued_call(runtime, client, dtmf_phones, "7810", "at-first")

    nothing = await client.post(f"/v1/calls/{call_id}/transfer/complete")
    assert nothing.status_code == 409 and nothing.headers["content-type"] == "application/problem+json"

    # Consult, then cancel: the consulted party goes, the agent is back with the caller.
    response = await client.post(f"/v1/calls/{call_id}/transfer", json={
        "mode": "attended", "to": {"endpoint": "Local/2199@ccc-test-agent"}})
    assert response.status_code == 202, response.text

    async def consulting() -> bool:
        consult = [x for x in runtime.calls.find(call_id).legs if ".consult" in x]
        return bool(consult) and await bridged(ari, call_id) == {first, consult[-1]}

    await eventually(consulting, 15, what="the agent talking with the consulted party")
    busy = await client.post(f"/v1/calls/{call_id}/transfer", json={"to": {"extension": "1001"}})
    assert busy.status_code == 409, busy.text
    assert (await client.post(f"/v1/calls/{call_id}/transfer/cancel")).status_code == 202
    await eventually(lambda: _has(ari, call_id, {caller, first}), 10, what="the caller back with the agent")

    # Consult an agent, then complete: the caller talks with that agent, the first one leaves.
    response = await client.post(f"/v1/calls/{call_id}/transfer", json={
        "mode": "attended", "to": {"agent": "at-second"}})
    assert response.status_code == 202, response.text
    await eventually(consulting, 15, what="the agent talking with the second agent")
    second = [x for x in runtime.calls.find(call_id).legs if ".consult" in x][-1]
    assert (await client.post(f"/v1/calls/{call_id}/transfer/complete")).status_code == 202
    await eventually(lambda: _has(ari, call_id, {caller, second}), 10,
                     what="the caller with the second agent")
    assert runtime.calls.find(call_id).data["agent_id"] == "at-second"
    # The first agent is free again (no wrap-up in this queue).
    await eventually(lambda: runtime.acd.agent("at-first").state.value == "available", 10,
                     what="the first agent available")

    # DTMF to the caller: the caller's phone hears the digits.
    bad = await client.post(f"/v1/calls/{call_id}/dtmf", json={"digits": "1\r\n"})
    assert bad.status_code == 422
    assert (await client.post(f"/v1/calls/{call_id}/dtmf", json={"digits": "4#"})).status_code == 202

    def heard() -> list[str]:
        return [m["digit"] for m in phone.events if m["type"] == "ChannelDtmfReceived"]

    await eventually(lambda: heard() == ["4", "#"], 10, what="the caller's phone to receive 4#")

    # Blind, by the second agent: the caller goes on to the destination, the agent leaves.
    response = await client.post(f"/v1/calls/{call_id}/transfer", json={
        "mode": "blind", "to": {"endpoint": "Local/2198@ccc-test-agent"}})
    assert response.status_code == 202, response.text

    async def with_destination() -> bool:
        target = [x for x in runtime.calls.find(call_id).legs if ".transfer" in x]
        return bool(target) and await bridged(ari, call_id) == {caller, target[-1]}

    await eventually(with_destination, 15, what="the caller bridged with the blind destination")
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7810", since)
    cursor = await db_conn.execute(
        "SELECT id, role, answered_at, ended_at FROM legs WHERE call_id = %s ORDER BY created_at", (call_id,))
    legs = await cursor.fetchall()
    assert [leg["role"] for leg in legs] == ["caller", "agent", "transfer", "agent", "transfer"]
    assert all(leg["answered_at"] is not None and leg["ended_at"] is not None for leg in legs)
    kinds = [kind for kind, _ in await event_kinds(db_conn, call["id"])]
    for kind in ("TransferStarted", "ConsultAnswered", "TransferCancelled", "TransferCompleted",
                 "DtmfSent", "TransferAnswered"):
        assert kind in kinds, kind


async def test_blind_transfer_to_a_queue_hands_the_caller_to_the_acd(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    await agent(client, "bq-first", "Local/2201@ccc-test-agent")
    await agent(client, "bq-next", "Local/2202@ccc-test-agent")
    await queue(client, "bq-sales", ["bq-first"])
    await queue(client, "bq-billing", ["bq-next"])
    await flow(client, "to-bq-sales", {"q": {"type": "queue", "queue": "bq-sales"}}, "q")
    await route(client, "bq-route", "7820", "to-bq-sales")
    since = call_clock()
    phone, call_id, caller, _ = await queued_call(runtime, client, dtmf_phones, "7820", "bq-first")

    unknown = await client.post(f"/v1/calls/{call_id}/transfer", json={"to": {"queue": "bq-nowhere"}})
    assert unknown.status_code == 422, unknown.text
    attended = await client.post(f"/v1/calls/{call_id}/transfer",
                                 json={"mode": "attended", "to": {"queue": "bq-billing"}})
    assert attended.status_code == 422, attended.text
    response = await client.post(f"/v1/calls/{call_id}/transfer", json={"to": {"queue": "bq-billing"}})
    assert response.status_code == 202, response.text

    async def with_next() -> bool:
        call = runtime.calls.find(call_id)
        if call is None or call.data.get("agent_id") != "bq-next":
            return False
        agents = [x for x in call.legs if x.endswith(".bq-next")]
        return bool(agents) and await bridged(ari, call_id) == {caller, agents[0]}

    await eventually(with_next, 15, what="the caller bridged with the billing agent")
    await eventually(lambda: runtime.acd.agent("bq-first").state.value == "available", 10,
                     what="the first agent available")
    assert runtime.acd.agent("bq-next").state.value == "on_call"
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7820", since)
    assert call["data"]["queue"] == "bq-billing"
    kinds = [kind for kind, _ in await event_kinds(db_conn, call["id"])]
    assert kinds.count("AgentConnected") == 2 and "TransferStarted" in kinds


async def test_call_control_refuses_unknown_calls_and_unsafe_input(inbound):
    _, client = inbound
    missing = await client.post("/v1/calls/no-such-call/transfer", json={"to": {"extension": "1001"}})
    assert missing.status_code == 404
    for body in ({"to": {"number": "555\r\n0100"}}, {"to": {"endpoint": "PJSIP/a&PJSIP/b"}},
                 {"to": {"extension": "1001", "number": "1"}}, {"to": {}}):
        response = await client.post("/v1/calls", json={"endpoint": "Local/1@ccc-test-agent", **body})
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    response = await client.post("/v1/calls/no-such-call/dtmf", json={"digits": "1\nAction: Hangup"})
    assert response.status_code == 422


async def test_an_agent_who_dials_out_during_a_queue_call_is_busy_until_both_end(inbound, dtmf_phones):
    runtime, client = inbound
    ari = dtmf_phones.client
    await agent(client, "two-calls", "Local/3101@ccc-test-agent")
    created = await client.post("/v1/queues", json={
        "name": "two-calls", "strategy": "linear", "wrap_up_s": 300,
        "members": [{"agent_id": "two-calls", "penalty": 0}]})
    assert created.status_code == 201, created.text
    await flow(client, "to-two-calls", {"q": {"type": "queue", "queue": "two-calls"}}, "q")
    await route(client, "two-calls", "7950", "to-two-calls")
    phone, queue_call, _, _ = await queued_call(runtime, client, dtmf_phones, "7950", "two-calls")

    # While the queue call is up, the agent dials a customer (its own key, its own device).
    headers = await agent_key(client, "two-calls")
    dialed = await client.post("/v1/calls", headers=headers,
                               json={"to": {"endpoint": "Local/5550077@ccc-test-agent"}})
    assert dialed.status_code == 202, dialed.text
    dial_call = dialed.json()["call_id"]

    async def dial_bridged() -> bool:
        return len(await bridged(ari, dial_call)) == 2

    await eventually(dial_bridged, 15, what="the agent and the customer bridged")
    await runtime.acd.settled()
    assert {busy.call_id for busy in runtime.acd.state.talking["two-calls"]} == {queue_call, dial_call}

    # The queue caller leaves: the agent is still on its own call, so no wrap-up yet.
    await phone.hang_up()
    await runtime.calls.wait_ended(queue_call, timeout=15)
    await runtime.acd.settled()
    status = (await client.get("/v1/agents/two-calls/status")).json()
    assert status["state"] == "on_call", status
    # Its last call ends: the wrap-up the queue call owes follows.
    assert (await client.post(f"/v1/calls/{dial_call}/hangup", headers=headers)).status_code == 202
    await runtime.calls.wait_ended(dial_call, timeout=15)

    async def wrapping_up() -> bool:
        return (await client.get("/v1/agents/two-calls/status")).json()["state"] == "wrap_up"

    await eventually(wrapping_up, 10, what="the agent in wrap-up after its last call")
    assert "two-calls" not in runtime.acd.state.talking
