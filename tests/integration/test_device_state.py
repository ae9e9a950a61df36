"""Device state on the real Asterisk: an agent whose phone is not registered logs in as
``unavailable``; an agent following a custom device state (``Custom:...``, set over AMI the way
a presence system or the dialplan's DEVICE_STATE() would) goes unavailable and back as it
changes, gets offers only while reachable, and after a call on a lost device ends up
unavailable rather than available."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import eventually
from tests.integration.helpers import call_clock, ended_call, event_kinds, flow, route

pytestmark = pytest.mark.asterisk


async def status(client, agent_id: str) -> dict:
    response = await client.get(f"/v1/agents/{agent_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


async def set_custom_state(runtime, device: str, state: str) -> None:
    """What a presence integration does: DEVICE_STATE(Custom:...) = state, over AMI."""
    await runtime.switch.ami.send_action({"Action": "Setvar", "Variable": f"DEVICE_STATE({device})",
                                          "Value": state})


async def test_an_agent_on_an_unregistered_phone_logs_in_unavailable(inbound):
    runtime, client = inbound
    # pjsip.conf's endpoint 1002 exists but nothing registers it in the tests.
    created = await client.post("/v1/agents", json={"id": "unreg", "name": "Unregistered",
                                                    "device": "PJSIP/1002"})
    assert created.status_code == 201, created.text
    queue = await client.post("/v1/queues", json={
        "name": "unreg-q", "strategy": "linear", "members": [{"agent_id": "unreg", "penalty": 0}]})
    assert queue.status_code == 201, queue.text

    login = await client.post("/v1/agents/unreg/login")
    assert login.status_code == 200, login.text
    assert login.json()["state"] == "unavailable"
    assert (login.json()["device"], login.json()["device_state"]) == ("PJSIP/1002", "unavailable")
    stats = (await client.get("/v1/queues/unreg-q/stats")).json()
    assert stats["agents"] == {"unavailable": 1}
    # Unpausing cannot make it available either while the phone is away.
    assert (await client.post("/v1/agents/unreg/pause", json={"reason": "break"})).json()["state"] == "paused"
    assert (await client.post("/v1/agents/unreg/unpause")).json()["state"] == "unavailable"


async def test_an_agent_follows_its_custom_device_state_through_a_call(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    device = f"Custom:ccc-{uuid.uuid4().hex[:10]}"
    await set_custom_state(runtime, device, "UNAVAILABLE")
    created = await client.post("/v1/agents", json={
        "id": "presence", "name": "Presence", "device": "Local/1001@ccc-test-agent", "state_device": device})
    assert created.status_code == 201, created.text
    assert created.json()["state_device"] == device
    queue = await client.post("/v1/queues", json={
        "name": "presence-q", "strategy": "linear", "ring_timeout_s": 5, "wrap_up_s": 1,
        "members": [{"agent_id": "presence", "penalty": 0}]})
    assert queue.status_code == 201, queue.text
    await flow(client, "to-presence", {"q": {"type": "queue", "queue": "presence-q"}}, "q")
    await route(client, "presence", "7810", "to-presence")

    login = (await client.post("/v1/agents/presence/login")).json()
    assert (login["state"], login["device_state"]) == ("unavailable", "unavailable")

    await set_custom_state(runtime, device, "NOT_INUSE")

    async def state_is(wanted: str) -> bool:
        return (await status(client, "presence"))["state"] == wanted

    await eventually(lambda: state_is("available"), 5, what="the agent available once its device is")

    since = call_clock()
    phone = await dtmf_phones.call("7810")
    await phone.wait_answered()
    await eventually(lambda: state_is("on_call"), 10, what="the agent to take the call")
    # The device is lost during the call: the call goes on, and afterwards the agent is unavailable.
    await set_custom_state(runtime, device, "UNAVAILABLE")
    await eventually(lambda: _device_state_is(client, "unavailable"), 5, what="the device state to arrive")
    assert (await status(client, "presence"))["state"] == "on_call"
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7810", since)
    kinds = [kind for kind, _ in await event_kinds(db_conn, call["id"])]
    assert "AgentConnected" in kinds
    await eventually(lambda: state_is("unavailable"), 10, what="unavailable after wrap-up")
    await runtime.records.flushed()
    states = [s["state"] for s in (await client.get("/v1/agents/presence/states")).json()]
    assert states == ["unavailable", "available", "reserved", "on_call", "wrap_up", "unavailable"]


async def _device_state_is(client, wanted: str) -> bool:
    return (await status(client, "presence"))["device_state"] == wanted
