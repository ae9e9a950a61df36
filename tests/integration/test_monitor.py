"""Supervisor monitoring on the real Asterisk: a queue call bridged with an auto-answering agent
is monitored by a supervisor (a Local channel that answers), who listens, whispers, barges and
listens again on the same session; each arrangement is checked in ARI (snoop leg on the agent's
leg with its directions, members of the monitor bridge and of the call's bridge). When the
agent hangs up, the session ends cleanly: no monitor leg nor bridge is left on Asterisk."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from tests.conftest import eventually
from tests.integration.conftest import LOCAL_ASTERISK
from tests.integration.helpers import flow, route

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
