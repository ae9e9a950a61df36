"""Supervisor monitoring on the real Asterisk: a queue call bridged with an auto-answering agent
is monitored by a supervisor (a Local channel that answers), who listens, whispers, barges and
listens again on the same session; each arrangement is checked in ARI (snoop leg on the agent's
leg with its directions, members of the monitor bridge and of the call's bridge). When the
agent hangs up, the session ends cleanly: no monitor leg nor bridge is left on Asterisk."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import httpx
import pytest

from controller.domain.access import Role
from tests.conftest import eventually
from tests.integration.conftest import LOCAL_ASTERISK
from tests.integration.helpers import event_kinds, flow, route

pytestmark = pytest.mark.asterisk

SUPERVISOR = "Local/1003@ccc-test-agent"


async def ari_state(ari: httpx.AsyncClient) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    channels = {ch["id"]: ch for ch in (await ari.get("/channels")).json()}
    bridges = {b["id"]: b for b in (await ari.get("/bridges")).json()}
    return channels, bridges


def core_show_channel(channel_name: str) -> str:
    return subprocess.run([str(LOCAL_ASTERISK), "rx", f"core show channel {channel_name}"],
                          capture_output=True, text=True, timeout=30, check=True).stdout


async def test_listen_whisper_barge_on_one_session_and_a_clean_end(inbound, dtmf_phones):
    runtime, client = inbound
    ari = dtmf_phones.client
    created = await client.post("/v1/agents", json={"id": "mon-agent", "name": "Agent",
                                                    "device": "Local/1001@ccc-test-agent"})
    assert created.status_code == 201, created.text
    queue = await client.post("/v1/queues", json={"name": "monitored", "strategy": "linear",
                                                  "members": [{"agent_id": "mon-agent", "penalty": 0}]})
    assert queue.status_code == 201, queue.text
    await flow(client, "to-monitored", {"q": {"type": "queue", "queue": "monitored"}}, "q")
    await route(client, "monitored", "7800", "to-monitored")
    assert (await client.post("/v1/agents/mon-agent/login")).status_code == 200

    phone = await dtmf_phones.call("7800")
    await phone.wait_answered()

    async def connected() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == "7800"]
        return bool(live) and live[0].data.get("agent_id") == "mon-agent"

    await eventually(connected, 15, what="the caller bridged with the agent")
    # The caller talks (a tone, without end), as a real phone's RTP always flows: Asterisk
    # detaches a hung-up snoop from the agent's leg only while audio passes through that leg.
    talking = await ari.post(f"/channels/{phone.id}/play", params={"media": "tone:440/500,0/500"})
    assert talking.status_code == 201, talking.text
    call = next(c for c in runtime.calls.live_calls() if c.dialed == "7800")
    agent_leg = next(leg for leg in call.legs.values() if leg.id.endswith(".mon-agent"))
    caller_leg = next(leg for leg in call.legs.values() if leg.role.value == "caller")
    call_bridge = f"br-{call.id}"

    # Bad input never reaches Asterisk; a call without an agent cannot be monitored.
    for bad in ({"device": "Local/1003@x,evil", "mode": "listen"},
                {"device": "Local/1003@x\r\nAction: Originate", "mode": "listen"},
                {"device": SUPERVISOR, "mode": "spy"}):
        refused = await client.post(f"/v1/calls/{call.id}/monitor", json=bad)
        assert refused.status_code == 422, refused.text
    missing = await client.post("/v1/calls/no-such-call/monitor", json={"device": SUPERVISOR})
    assert missing.status_code == 404

    started = await client.post(f"/v1/calls/{call.id}/monitor", json={"device": SUPERVISOR, "mode": "listen"})
    assert started.status_code == 202, started.text
    monitor = started.json()
    monitor_id, supervisor, monitor_bridge = monitor["id"], monitor["supervisor_leg_id"], monitor["bridge_id"]
    assert monitor["mode"] == "listen" and monitor["call_id"] == call.id

    async def arranged(mode: str) -> dict[str, Any] | None:
        """The session's state once ARI shows the arrangement for ``mode``, else None."""
        state = (await client.get(f"/v1/monitors/{monitor_id}")).json()
        if state["state"] != "active" or state["mode"] != mode:
            return None
        channels, bridges = await ari_state(ari)
        members = {name: set(b["channels"]) for name, b in bridges.items()}
        if mode == "barge":
            ok = (members.get(call_bridge) == {caller_leg.id, agent_leg.id, supervisor}
                  and not any(ch.startswith(monitor_id + ".snoop") for ch in channels))
        else:
            snoop = state["snoop_leg_id"]
            ok = (snoop in channels and members.get(monitor_bridge) == {supervisor, snoop}
                  and members.get(call_bridge) == {caller_leg.id, agent_leg.id}
                  and len([ch for ch in channels if ch.startswith(monitor_id + ".snoop")]) == 1)
        return state if ok else None

    seen_snoops = []
    for mode in ("listen", "whisper", "barge", "listen"):
        if mode != "listen" or seen_snoops:
            switched = await client.patch(f"/v1/monitors/{monitor_id}", json={"mode": mode})
            assert switched.status_code == 202, switched.text
            assert switched.json()["supervisor_leg_id"] == supervisor  # the same session
        await eventually(lambda m=mode: arranged(m), 15, what=f"the {mode} arrangement in ARI")
        state = await arranged(mode)
        assert state is not None
        channels, _ = await ari_state(ari)
        if mode == "barge":
            seen_snoops.append(None)
            continue
        snoop = channels[state["snoop_leg_id"]]
        # The snoop spies on the agent's leg: Asterisk names it after the spied channel.
        assert snoop["name"].startswith("Snoop/" + agent_leg.id)
        spy, whisper = snoop_directions(snoop)
        assert spy == "both"
        assert whisper == ("out" if mode == "whisper" else "none")
        seen_snoops.append(state["snoop_leg_id"])
    assert len({s for s in seen_snoops if s}) == 3  # a new snoop leg for each snooping arrangement

    # A second session on the same call, ended by the supervisor: its legs and bridge go.
    second = await client.post(f"/v1/calls/{call.id}/monitor", json={"device": SUPERVISOR})
    assert second.status_code == 202 and second.json()["mode"] == "listen", second.text
    second_id = second.json()["id"]

    async def second_active() -> bool:
        return (await client.get(f"/v1/monitors/{second_id}")).json()["state"] == "active"

    await eventually(second_active, 15, what="the second session active")
    stopped = await client.delete(f"/v1/monitors/{second_id}")
    assert stopped.status_code == 202 and stopped.json()["state"] == "ended", stopped.text

    async def second_gone() -> bool:
        channels, bridges = await ari_state(ari)
        return not any(x.startswith(second_id) for x in [*channels, *bridges])

    await eventually(second_gone, 15, what="the second session's legs and bridge gone")
    assert await arranged("listen") is not None  # the first session is untouched

    # The agent hangs up: the call ends, and so does the session, leaving nothing behind.
    await ari.delete(f"/channels/{agent_leg.id}")
    await phone.wait_gone()

    async def nothing_left() -> bool:
        channels, bridges = await ari_state(ari)
        return (not any(x.startswith(monitor_id) for x in [*channels, *bridges])
                and call_bridge not in bridges)

    await eventually(nothing_left, 15, what="the monitor's legs and bridges gone")
    assert (await client.get(f"/v1/monitors/{monitor_id}")).status_code == 404
    assert (await client.patch(f"/v1/monitors/{monitor_id}", json={"mode": "barge"})).status_code == 404
    assert not [c for c in runtime.calls.live_calls() if c.dialed in ("7800", "1003")]


def snoop_directions(snoop: dict[str, Any]) -> tuple[str, str]:
    """The snoop leg's spy and whisper directions, from Asterisk's own account of the channel:
    the Stasis arguments it was created with (``Data:`` of ``core show channel``)."""
    shown = core_show_channel(snoop["name"])
    data = next(line.split(":", 1)[1].strip() for line in shown.splitlines()
                if line.strip().startswith("Data:"))
    assert data == snoop["dialplan"]["app_data"]  # ARI and the CLI agree
    fields = dict(arg.split("=", 1) for arg in data.split(",") if "=" in arg)
    return fields["spy"], fields["whisper"]


async def _queue_call_with_agent(runtime, client, dtmf_phones, agent_id: str, device: str, queue: str,
                                 number: str, wrap_up_s: int):
    """A caller bridged with an auto-answering agent through a queue; the caller's phone
    sends a tone without end (see the first test). Returns (phone, call, agent leg, caller leg)."""
    created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
    assert created.status_code == 201, created.text
    made = await client.post("/v1/queues", json={"name": queue, "strategy": "linear", "wrap_up_s": wrap_up_s,
                                                 "members": [{"agent_id": agent_id, "penalty": 0}]})
    assert made.status_code == 201, made.text
    await flow(client, f"to-{queue}", {"q": {"type": "queue", "queue": queue}}, "q")
    await route(client, queue, number, f"to-{queue}")
    assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200
    phone = await dtmf_phones.call(number)
    await phone.wait_answered()

    def connected() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == number]
        return bool(live) and live[0].data.get("agent_id") == agent_id

    await eventually(connected, 15, what="the caller bridged with the agent")
    tone = await dtmf_phones.client.post(f"/channels/{phone.id}/play", params={"media": "tone:440/500,0/500"})
    assert tone.status_code == 201, tone.text
    call = next(c for c in runtime.calls.live_calls() if c.dialed == number)
    agent_leg = next(leg for leg in call.legs.values() if leg.id.endswith(f".{agent_id}"))
    caller_leg = next(leg for leg in call.legs.values() if leg.role.value == "caller")
    return phone, call, agent_leg, caller_leg


async def _taken_over_in_ari(ari, monitor_id: str, call_bridge: str, caller_leg: str, agent_leg: str) -> bool:
    """ARI shows the take-over: the caller and the supervisor alone in the call's bridge, the
    agent's leg gone, no snoop leg and no monitor bridge left."""
    channels, bridges = await ari_state(ari)
    return (call_bridge in bridges
            and set(bridges[call_bridge]["channels"]) == {caller_leg, f"{monitor_id}.supervisor"}
            and agent_leg not in channels
            and not any(x.startswith(monitor_id) for x in bridges)
            and not any(ch.startswith(f"{monitor_id}.snoop") for ch in channels))


async def test_a_supervisor_takes_a_call_over_from_listen_and_the_call_ends_normally(
        inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    phone, call, agent_leg, caller_leg = await _queue_call_with_agent(
        runtime, client, dtmf_phones, "to-agent", "Local/1001@ccc-test-agent", "takeovers", "7810", 300)
    call_bridge = f"br-{call.id}"

    started = await client.post(f"/v1/calls/{call.id}/monitor", json={"device": SUPERVISOR, "mode": "listen"})
    assert started.status_code == 202, started.text
    monitor_id = started.json()["id"]

    async def listening() -> bool:
        state = (await client.get(f"/v1/monitors/{monitor_id}")).json()
        channels, _ = await ari_state(ari)
        return state["state"] == "active" and state["snoop_leg_id"] in channels

    await eventually(listening, 15, what="the supervisor listening")
    assert await agent_state(client, "to-agent") == "on_call"

    taken = await client.patch(f"/v1/monitors/{monitor_id}", json={"mode": "takeover"})
    assert taken.status_code == 202, taken.text
    assert taken.json()["mode"] == "takeover" and taken.json()["snoop_leg_id"] is None
    await eventually(lambda: _taken_over_in_ari(ari, monitor_id, call_bridge, caller_leg.id, agent_leg.id),
                     15, what="caller and supervisor bridged, the agent's leg gone")
    # The ACD heard the agent's call end: wrap-up (300 s here), as after any call.
    await eventually(lambda: _state_is(client, "to-agent", "wrap_up"), 10, what="the agent in wrap-up")

    # The call goes on, with the supervisor's device as its handling leg.
    live = runtime.calls.find(call.id)
    assert live is not None and live.state.value == "answered"
    supervisor = live.legs[f"{monitor_id}.supervisor"]
    assert supervisor.role.value == "supervisor" and supervisor.state.value == "up"
    assert supervisor.channel_name == SUPERVISOR
    assert live.data["taken_over_by"] == SUPERVISOR and live.data["taken_over_from"] == "to-agent"
    assert "agent_id" not in live.data
    await runtime.records.flushed()
    shown = (await client.get(f"/v1/calls/{call.id}")).json()
    assert shown["state"] == "answered" and shown["data"]["taken_over_by"] == SUPERVISOR

    # One way only: no switching back; monitoring the taken-over call again is refused.
    for mode in ("listen", "whisper", "barge"):
        back = await client.patch(f"/v1/monitors/{monitor_id}", json={"mode": mode})
        assert back.status_code == 409, back.text
    again = await client.patch(f"/v1/monitors/{monitor_id}", json={"mode": "takeover"})
    assert again.status_code == 202 and again.json()["mode"] == "takeover"
    assert (await client.post(f"/v1/calls/{call.id}/monitor", json={"device": SUPERVISOR})).status_code == 409
    assert await _taken_over_in_ari(ari, monitor_id, call_bridge, caller_leg.id, agent_leg.id)

    # The caller hangs up: the call ends as any call does, with the supervisor's leg recorded.
    await phone.hang_up()
    await runtime.calls.wait_ended(call.id, timeout=15)

    async def nothing_left() -> bool:
        channels, bridges = await ari_state(ari)
        return (not any(x.startswith(monitor_id) for x in [*channels, *bridges])
                and call_bridge not in bridges)

    await eventually(nothing_left, 15, what="the supervisor's leg and the call's bridge gone")
    assert (await client.get(f"/v1/monitors/{monitor_id}")).status_code == 404
    await runtime.records.flushed()
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (call.id,))
    row = await cursor.fetchone()
    assert row["state"] == "ended" and row["data"]["taken_over_by"] == SUPERVISOR
    cursor = await db_conn.execute("SELECT id, role, state, answered_at, ended_at FROM legs "
                                   "WHERE call_id = %s ORDER BY created_at", (call.id,))
    legs = {leg["id"]: leg for leg in await cursor.fetchall()}
    assert [leg["role"] for leg in legs.values()] == ["caller", "agent", "supervisor"]
    assert all(leg["state"] == "ended" and leg["answered_at"] for leg in legs.values())
    # The agent left first (at the take-over), the supervisor stayed until the end.
    assert legs[agent_leg.id]["ended_at"] < legs[f"{monitor_id}.supervisor"]["ended_at"]
    kinds = [kind for kind, _ in await event_kinds(db_conn, call.id)]
    assert kinds.index("AgentConnected") < kinds.index("TakenOver")
    assert await agent_state(client, "to-agent") == "wrap_up"  # the call's end changed nothing more
    states = [s["state"] for s in (await client.get("/v1/agents/to-agent/states")).json()]
    assert states[-3:] == ["reserved", "on_call", "wrap_up"]  # wrapped up once, at the take-over


async def test_a_session_started_in_takeover_frees_the_agent_for_the_next_caller(
        inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    _, call, agent_leg, caller_leg = await _queue_call_with_agent(
        runtime, client, dtmf_phones, "to-agent2", "Local/1004@ccc-test-agent", "takeovers2", "7811", 0)
    call_bridge = f"br-{call.id}"

    started = await client.post(f"/v1/calls/{call.id}/monitor",
                                json={"device": SUPERVISOR, "mode": "takeover"})
    assert started.status_code == 202, started.text
    assert started.json()["mode"] == "takeover"
    monitor_id = started.json()["id"]
    await eventually(lambda: _taken_over_in_ari(ari, monitor_id, call_bridge, caller_leg.id, agent_leg.id),
                     15, what="caller and supervisor bridged, the agent's leg gone")
    # No wrap-up in this queue: the agent is available at once, and takes the next caller
    # while the supervisor still talks with the first.
    await eventually(lambda: _state_is(client, "to-agent2", "available"), 10, what="the agent available")
    second = await dtmf_phones.call("7811")
    await second.wait_answered()

    def second_connected() -> bool:
        return any(c.id != call.id and c.data.get("agent_id") == "to-agent2"
                   for c in runtime.calls.live_calls())

    await eventually(second_connected, 15, what="the second caller bridged with the freed agent")
    assert runtime.calls.find(call.id) is not None  # the first call goes on with the supervisor

    # The supervisor ends the session: its leg hangs up, and the first call ends with it.
    stopped = await client.delete(f"/v1/monitors/{monitor_id}")
    assert stopped.status_code == 202, stopped.text
    await runtime.calls.wait_ended(call.id, timeout=15)
    await runtime.records.flushed()
    cursor = await db_conn.execute("SELECT state, data FROM calls WHERE id = %s", (call.id,))
    row = await cursor.fetchone()
    assert row["state"] == "ended" and row["data"]["taken_over_from"] == "to-agent2"
    # The agent's second call is untouched by the first one's end.
    assert await agent_state(client, "to-agent2") == "on_call"
    assert second_connected()
    await second.hang_up()


async def agent_state(client, agent_id: str) -> str:
    return (await client.get(f"/v1/agents/{agent_id}/status")).json()["state"]


async def _state_is(client, agent_id: str, state: str) -> bool:
    return await agent_state(client, agent_id) == state


async def test_a_taken_over_call_is_adopted_with_the_supervisor_after_a_restart(
        start_runtime, api_client, dtmf_phones, db_conn):
    cluster = f"t{uuid.uuid4().hex[:12]}"
    ari = dtmf_phones.client
    first = await start_runtime(acd_cluster=cluster)
    _, key = await first.api_keys.create("take-over restart", Role.ADMIN, None)
    async with api_client(first) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        phone, call, agent_leg, caller_leg = await _queue_call_with_agent(
            first, client, dtmf_phones, "to-agent3", "Local/1006@ccc-test-agent", "takeovers3", "7812", 300)
        started = await client.post(f"/v1/calls/{call.id}/monitor",
                                    json={"device": SUPERVISOR, "mode": "takeover"})
        assert started.status_code == 202, started.text
        monitor_id = started.json()["id"]
    supervisor_leg = f"{monitor_id}.supervisor"
    call_bridge = f"br-{call.id}"
    await eventually(lambda: _taken_over_in_ari(ari, monitor_id, call_bridge, caller_leg.id, agent_leg.id),
                     15, what="caller and supervisor bridged, the agent's leg gone")

    async def saved_with_supervisor() -> bool:
        saved = (await first.live.live_calls()).get(call.id)
        return bool(saved and supervisor_leg in saved["legs"])

    await eventually(saved_with_supervisor, 10, what="the supervisor's leg in the call's snapshot")
    await first.close()  # the controller goes away; the supervisor's leg stays with the call
    assert await _taken_over_in_ari(ari, monitor_id, call_bridge, caller_leg.id, agent_leg.id)

    second = await start_runtime(acd_cluster=cluster)
    await eventually(lambda: second.calls.find(call.id) is not None, 10, what="the call adopted")
    adopted = second.calls.find(call.id)
    assert adopted.legs[supervisor_leg].role.value == "supervisor"
    # Not hung up as a monitor leg nobody owns: it is the call's.
    assert await _taken_over_in_ari(ari, monitor_id, call_bridge, caller_leg.id, agent_leg.id)
    assert second.acd.agent("to-agent3").state.value == "wrap_up"

    await phone.hang_up()
    await second.calls.wait_ended(call.id, timeout=15)
    channels, bridges = await ari_state(ari)
    assert supervisor_leg not in channels and call_bridge not in bridges
    await second.records.flushed()
    cursor = await db_conn.execute("SELECT role, state FROM legs WHERE call_id = %s ORDER BY created_at",
                                   (call.id,))
    assert [(leg["role"], leg["state"]) for leg in await cursor.fetchall()] == [
        ("caller", "ended"), ("agent", "ended"), ("supervisor", "ended")]
    cursor = await db_conn.execute("SELECT state, hangup_cause FROM calls WHERE id = %s", (call.id,))
    assert (await cursor.fetchone())["state"] == "ended"
