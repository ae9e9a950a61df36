"""Channels left in the Stasis application while no controller listened are adopted: by the
call a previous run tracked (from Redis, with where its flow was), or as new calls when nobody
knew them. Real Asterisk; the "controller going away" is a runtime closed mid-call."""

from __future__ import annotations

import uuid

import pytest

from controller.domain.access import Role
from controller.domain.agents import AgentState
from controller.engines.acd import BusyCall
from tests.conftest import eventually
from tests.integration.helpers import event_kinds, flow, route

pytestmark = pytest.mark.asterisk

SIX_SECONDS = "sound:demo-enterkeywords"
THREE_SECONDS = "sound:agent-pass"


async def _call_in_progress(runtime, phones, number: str):
    await phones.call(number, caller_id='"Bob" <5559876>')
    await eventually(lambda: len(runtime.calls.live_calls()) == 1, 10, what="a call in progress")
    call = runtime.calls.live_calls()[0]
    await eventually(lambda: _flow_saved(runtime, call.id), 5, what="the call's flow in Redis")
    return call


async def _flow_saved(runtime, call_id: str) -> bool:
    saved = (await runtime.live.live_calls()).get(call_id)
    return bool(saved and saved["driver"])


async def _ended_normally(db_conn, call_id: str) -> dict:
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
    row = await cursor.fetchone()
    assert row["state"] == "ended" and row["hangup_cause"] == 16
    return row


async def test_a_restarted_controller_picks_up_the_flow_where_it_was(start_runtime, phones, db_conn):
    first = await start_runtime(default_prompt=SIX_SECONDS)
    call = await _call_in_progress(first, phones, "400")
    leg_id = next(iter(call.legs))
    await first.close()  # the controller goes away while the prompt plays

    second = await start_runtime(default_prompt="sound:this-is-never-played")
    await eventually(lambda: second.calls.find(call.id) is not None, 10,
                     what="the second run to adopt the call")
    adopted = second.calls.find(call.id)
    assert list(adopted.legs) == [leg_id] and adopted.caller_number == "5559876"
    # The prompt the first run started finishes, and the adopted flow hangs up after it.
    await second.calls.wait_ended(call.id, timeout=20)
    await second.records.flushed()
    await _ended_normally(db_conn, call.id)
    cursor = await db_conn.execute(
        "SELECT kind, data FROM call_events WHERE call_id = %s ORDER BY id", (call.id,))
    events = await cursor.fetchall()
    assert [e["kind"] for e in events].count("LegArrived") == 1  # one call, not a new one
    assert not any(e["kind"] == "PlaybackStarted" and "never" in str(e["data"]) for e in events)
    assert call.id not in await second.live.live_calls()


async def test_a_prompt_that_ended_while_nobody_listened_moves_the_flow_on(start_runtime, phones,
                                                                           db_conn):
    first = await start_runtime(default_prompt=THREE_SECONDS)
    call = await _call_in_progress(first, phones, "401")
    playback_id = (await first.live.live_calls())[call.id]["driver"]["playback_id"]
    await first.close()

    async def playback_over() -> bool:
        return (await phones.client.get(f"/playbacks/{playback_id}")).status_code == 404

    await eventually(playback_over, 10, what="the prompt to end while no controller listens")
    second = await start_runtime()

    async def ended() -> bool:
        await second.records.flushed()
        cursor = await db_conn.execute("SELECT state FROM calls WHERE id = %s", (call.id,))
        return (await cursor.fetchone())["state"] == "ended"

    await eventually(ended, 10, what="the adopted call to be hung up")
    await _ended_normally(db_conn, call.id)


async def test_channels_nobody_tracked_are_taken_over_as_new_calls(start_runtime, phones, db_conn):
    first = await start_runtime(default_prompt=SIX_SECONDS)
    call = await _call_in_progress(first, phones, "500")
    leg_id = next(iter(call.legs))
    await first.close()
    await first.live.redis.delete(first.live.calls_key)  # as if Redis had lost its state too

    second = await start_runtime()
    await eventually(lambda: second.calls.call_of_leg(leg_id) is not None, 10,
                     what="the orphan channel to be taken over")
    new_id = second.calls.call_of_leg(leg_id)
    assert new_id != call.id
    await phones.client.delete(f"/channels/{leg_id}")  # the caller hangs up
    await second.calls.wait_ended(new_id, timeout=10)
    await second.records.flushed()
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (new_id,))
    row = await cursor.fetchone()
    assert row["state"] == "ended" and row["caller_number"] == "5559876" and row["dialed"] == "500"


# ---- agents on adopted calls --------------------------------------------------------------


async def _agent_bridged_before_a_restart(start_runtime, api_client, dtmf_phones, agent_id: str,
                                          number: str, cluster: str):
    """A queue caller bridged with an auto-answering agent (wrap-up 300 s) on a first run, which
    then goes away once Redis knows whom the call connects. Returns (phone, call id, admin key)."""
    first = await start_runtime(acd_cluster=cluster)
    _, key = await first.api_keys.create("adoption tests", Role.ADMIN, None)
    async with api_client(first) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id,
                                                        "device": "Local/1005@ccc-test-agent"})
        assert created.status_code == 201, created.text
        queue = await client.post("/v1/queues", json={
            "name": agent_id, "strategy": "linear", "wrap_up_s": 300,
            "members": [{"agent_id": agent_id, "penalty": 0}]})
        assert queue.status_code == 201, queue.text
        await flow(client, f"to-{agent_id}", {"q": {"type": "queue", "queue": agent_id}}, "q")
        await route(client, agent_id, number, f"to-{agent_id}")
        assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200
    phone = await dtmf_phones.call(number, caller_id='"Bob" <5559876>')
    await phone.wait_answered()

    async def connection_saved() -> bool:
        live = [c for c in first.calls.live_calls() if c.dialed == number]
        saved = (await first.live.live_calls()).get(live[0].id) if live else None
        return bool(saved and (saved.get("connection") or {}).get("agent_id") == agent_id)

    await eventually(connection_saved, 15, what="the caller bridged with the agent, in Redis")
    call_id = next(c.id for c in first.calls.live_calls() if c.dialed == number)
    assert first.acd.agent(agent_id).state is AgentState.ON_CALL
    await first.close()  # the controller goes away mid-call
    return phone, call_id, key


async def _bridge_of(ari, call_id: str) -> set[str]:
    bridges = {b["id"]: b for b in (await ari.get("/bridges")).json()}
    return set(bridges.get(f"br-{call_id}", {}).get("channels", ()))


async def test_an_agent_on_an_adopted_call_stays_busy_and_wraps_up_when_it_ends(
        start_runtime, api_client, dtmf_phones, db_conn):
    cluster = f"t{uuid.uuid4().hex[:12]}"  # one ACD for both runs, as after a real restart
    phone, call_id, key = await _agent_bridged_before_a_restart(
        start_runtime, api_client, dtmf_phones, "adopt-a", "7900", cluster)
    ari = dtmf_phones.client
    bridged = await _bridge_of(ari, call_id)
    assert len(bridged) == 2  # the caller and the agent talk on while no controller listens

    second = await start_runtime(acd_cluster=cluster)
    await eventually(lambda: second.calls.find(call_id) is not None, 10, what="the call adopted")
    # Only the call: the far half of the agent's Local channel, which the application watches,
    # is not taken for a new call.
    assert [c.id for c in second.calls.live_calls()] == [call_id]
    await second.acd.settled()
    agent = second.acd.agent("adopt-a")
    assert agent is not None and agent.state is AgentState.ON_CALL
    assert second.acd.state.talking["adopt-a"] == (BusyCall(call_id, "adopt-a"),)  # counted once

    async with api_client(second) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        # A second caller waits: the agent is not offered it while it talks with the first.
        other = await dtmf_phones.call("7900", caller_id='"Carol" <5550199>')
        await other.wait_answered()
        await eventually(lambda: len(second.acd.state.waiting) == 1, 10, what="the second caller queued")
        await second.acd.settled()
        assert not second.acd.state.offers
        assert await _bridge_of(ari, call_id) == bridged

        # The first caller hangs up: the adopted call ends (bridge torn down, agent leg hung
        # up) and the ACD hears it: the agent goes to wrap-up, as after any call.
        await phone.hang_up()
        await second.calls.wait_ended(call_id, timeout=15)
        status = await _agent_status(client, "adopt-a", "wrap_up")
        assert status["state"] == "wrap_up"
        assert f"br-{call_id}" not in {b["id"] for b in (await ari.get("/bridges")).json()}
        # Its wrap-up ended, the agent takes the caller who waited.
        ended = await client.post("/v1/agents/adopt-a/end-wrap-up")
        assert ended.status_code == 200, ended.text

        def second_connected() -> bool:
            return any(c.id != call_id and c.data.get("agent_id") == "adopt-a"
                       for c in second.calls.live_calls())

        await eventually(second_connected, 15, what="the waiting caller bridged with the agent")
        await other.hang_up()

    await second.records.flushed()
    row = await _ended_normally(db_conn, call_id)
    assert row["data"]["agent_id"] == "adopt-a"
    kinds = [kind for kind, _ in await event_kinds(db_conn, call_id)]
    assert kinds.count("LegArrived") == 2 and kinds.count("AgentConnected") == 1  # caller and agent, once
    cursor = await db_conn.execute(
        "SELECT count(*) AS n FROM calls WHERE dialed = '7900' AND caller_number = '5559876'")
    assert (await cursor.fetchone())["n"] == 1  # one call, adopted, not a new one
    cursor = await db_conn.execute("SELECT count(*) AS n FROM legs WHERE id LIKE %s", ("%.adopt-a;2",))
    assert (await cursor.fetchone())["n"] == 0  # the agent's far Local half was never a call


async def test_an_adopted_call_tells_an_acd_that_lost_its_state_who_is_on_it(
        start_runtime, api_client, dtmf_phones):
    phone, call_id, key = await _agent_bridged_before_a_restart(
        start_runtime, api_client, dtmf_phones, "adopt-b", "7901", f"t{uuid.uuid4().hex[:12]}")
    # The second run's ACD starts empty (another cluster: as if its log in Redis were lost).
    second = await start_runtime()
    await eventually(lambda: second.calls.find(call_id) is not None, 10, what="the call adopted")
    await eventually(lambda: "adopt-b" in second.acd.state.talking, 10, what="the ACD told of the agent")
    assert second.acd.agent("adopt-b").state is AgentState.LOGGED_OUT  # as configured, but busy
    async with api_client(second) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        # Logging in while bridged with the caller: on call, not available for a new one.
        login = await client.post("/v1/agents/adopt-b/login")
        assert login.status_code == 200 and login.json()["state"] == "on_call", login.text
        await phone.hang_up()
        await second.calls.wait_ended(call_id, timeout=15)
        assert (await _agent_status(client, "adopt-b", "wrap_up"))["state"] == "wrap_up"
    assert "adopt-b" not in second.acd.state.talking


async def _agent_status(client, agent_id: str, wanted: str) -> dict:
    async def reached() -> bool:
        return (await client.get(f"/v1/agents/{agent_id}/status")).json()["state"] == wanted

    await eventually(reached, 10, what=f"agent {agent_id} {wanted}")
    return (await client.get(f"/v1/agents/{agent_id}/status")).json()


async def test_an_adopted_click_to_dial_keeps_its_agent_busy_until_it_ends(
        start_runtime, api_client, dtmf_phones, db_conn):
    cluster = f"t{uuid.uuid4().hex[:12]}"
    ari = dtmf_phones.client
    first = await start_runtime(acd_cluster=cluster)
    _, key = await first.api_keys.create("adoption tests", Role.ADMIN, None)
    async with api_client(first) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        created = await client.post("/v1/agents", json={"id": "adopt-c", "name": "adopt-c",
                                                        "device": "Local/1007@ccc-test-agent"})
        assert created.status_code == 201, created.text
        assert (await client.post("/v1/agents/adopt-c/login")).status_code == 200
        dialed = await client.post("/v1/calls", json={"agent_id": "adopt-c",
                                                      "to": {"endpoint": "Local/5550088@ccc-test-agent"}})
        assert dialed.status_code == 202, dialed.text
        call_id = dialed.json()["call_id"]

    async def saved_bridged() -> bool:
        saved = (await first.live.live_calls()).get(call_id)
        return bool(saved and (saved.get("connection") or {}).get("bridge_id")
                    and len(await _bridge_of(ari, call_id)) == 2)

    await eventually(saved_bridged, 15, what="agent and customer bridged, in Redis")
    customer = next(leg for leg in first.calls.find(call_id).legs if ".customer" in leg)
    await first.close()

    second = await start_runtime(acd_cluster=cluster)
    await eventually(lambda: second.calls.find(call_id) is not None, 10, what="the call adopted")
    assert [c.id for c in second.calls.live_calls()] == [call_id]  # no flow started on its legs
    await second.acd.settled()
    assert second.acd.agent("adopt-c").state is AgentState.ON_CALL
    assert second.acd.state.talking["adopt-c"] == (BusyCall(call_id),)

    await ari.delete(f"/channels/{customer}")  # the customer hangs up
    await second.calls.wait_ended(call_id, timeout=15)
    async with api_client(second) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        # No queue named: no wrap-up, available at once.
        assert (await _agent_status(client, "adopt-c", "available"))["state"] == "available"
    assert f"br-{call_id}" not in {b["id"] for b in (await ari.get("/bridges")).json()}
    await second.records.flushed()
    cursor = await db_conn.execute("SELECT role, state FROM legs WHERE call_id = %s ORDER BY created_at",
                                   (call_id,))
    assert [(leg["role"], leg["state"]) for leg in await cursor.fetchall()] == [
        ("agent", "ended"), ("customer", "ended")]
