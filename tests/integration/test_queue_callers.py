"""The waiting caller's side of queues on the real Asterisk: periodic position announcements
between hold music, overflow to a flow, to another queue and to voicemail, join-when-empty, the
exit key to voicemail, and the exit key to a callback that keeps the caller's place and is
dialed agent first. Agents, queues, flows and routes are created through the REST API; callers
send real DTMF."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from controller.domain.access import Role
from tests.conftest import eventually
from tests.integration.helpers import call_clock, ended_call, event_kinds, flow, played, route

pytestmark = pytest.mark.asterisk


@pytest.fixture
async def callback_runtime(start_runtime, api_client):
    """A runtime whose callbacks dial into [ccc-test-agent] (answers and echoes) instead of the
    outbound trunk, with an admin API client."""
    runtime = await start_runtime(callback_context="ccc-test-agent")
    _, key = await runtime.api_keys.create("queue caller tests", Role.ADMIN, None)
    async with api_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield runtime, client


async def make_agent(client, agent_id: str, device: str = "Local/1001@ccc-test-agent") -> None:
    created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
    assert created.status_code == 201, created.text


async def make_queue(client, name: str, **fields) -> None:
    response = await client.post("/v1/queues", json={"name": name, **fields})
    assert response.status_code == 201, response.text


async def act(client, agent_id: str, action: str) -> None:
    response = await client.post(f"/v1/agents/{agent_id}/{action}", json={"reason": "break"}
                                 if action == "pause" else None)
    assert response.status_code == 200, response.text


def live(runtime, dialed: str):
    return [c for c in runtime.calls.live_calls() if c.dialed == dialed]


async def test_announcements_then_overflow_to_a_flow_after_max_wait(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await make_agent(client, "qc-resting")
    await flow(client, "qc-after-wait", {"bye": {"type": "hangup", "prompts": ["digits:42"]}}, "bye")
    await make_queue(client, "qc-waiting", members=[{"agent_id": "qc-resting"}], max_wait_s=5,
                     announce_every_s=2, overflow={"action": "flow", "flow": "qc-after-wait"})
    await flow(client, "qc-to-waiting", {"q": {"type": "queue", "queue": "qc-waiting"}}, "q")
    await route(client, "qc-waiting", "7810", "qc-to-waiting")
    await act(client, "qc-resting", "login")
    await act(client, "qc-resting", "pause")  # staffed, but nobody takes the call

    since = call_clock()
    phone = await dtmf_phones.call("7810")
    await phone.wait_answered()
    await phone.wait_gone(30)  # the announcement(s), max wait, the flow's goodbye, hang-up

    call = await ended_call(runtime, db_conn, "7810", since)
    events = await event_kinds(db_conn, call["id"])
    kinds = [kind for kind, _ in events]
    announced = [data for kind, data in events if kind == "QueueAnnouncementDue"]
    assert announced and announced[0]["position"] == 1 and announced[0]["eta_s"] is None
    media = played(events)
    assert "sound:queue-youarenext" in media  # position 1, no estimate yet: no hold time said
    assert media[-1] == "digits:42"  # the overflow flow ran on the caller
    overflowed = next(data for kind, data in events if kind == "QueueOverflowed")
    assert overflowed["reason"] == "max_wait" and overflowed["destination"] == "flow"
    assert overflowed["target"] == "qc-after-wait"
    # Music stopped for the announcement and came back after it.
    first_play = kinds.index("QueueAnnouncementDue")
    assert "PlaybackFinished" in kinds[first_play:]
    assert call["data"]["queue_overflow"] == "max_wait" and call["flow_name"] == "qc-after-wait"
    assert call["data"]["flow_outcome"] == "hangup"


async def test_no_agents_overflows_to_another_queue_and_an_empty_queue_can_be_joined(
        inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await make_agent(client, "qc-away")
    await make_agent(client, "qc-late", "Local/1005@ccc-test-agent")
    # Nobody logged in on the first queue: no_agents sends the caller to the second, which may
    # be joined empty and keeps its callers while empty; an agent who logs in later answers.
    await make_queue(client, "qc-second", members=[{"agent_id": "qc-late"}], join_when_empty=True,
                     leave_when_empty=False)
    await make_queue(client, "qc-first", members=[{"agent_id": "qc-away"}],
                     overflow={"action": "queue", "queue": "qc-second"})
    await flow(client, "qc-to-first", {"q": {"type": "queue", "queue": "qc-first", "priority": 3}}, "q")
    await route(client, "qc-first", "7820", "qc-to-first")

    since = call_clock()
    phone = await dtmf_phones.call("7820")
    await phone.wait_answered()

    async def waiting_in_second() -> bool:
        return len((await client.get("/v1/queues/qc-second/calls")).json()) == 1

    await eventually(waiting_in_second, 10, what="the caller waiting in qc-second")
    [entry] = (await client.get("/v1/queues/qc-second/calls")).json()
    assert entry["priority"] == 3  # the caller's priority goes with it
    await asyncio.sleep(2)  # ticks pass: an empty queue with leave_when_empty false keeps it
    assert len((await client.get("/v1/queues/qc-second/calls")).json()) == 1
    await act(client, "qc-late", "login")

    async def answered_by_late() -> bool:
        calls = live(runtime, "7820")
        return bool(calls) and calls[0].data.get("agent_id") == "qc-late"

    await eventually(answered_by_late, 10, what="qc-late to take the overflowed call")
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7820", since)
    assert call["data"]["queue"] == "qc-second" and call["data"]["queue_overflow"] == "no_agents"
    assert call["data"]["queue_hops"] == "1"
    overflowed = [data for kind, data in await event_kinds(db_conn, call["id"]) if kind == "QueueOverflowed"]
    assert overflowed == [{"queue": "qc-first", "reason": "no_agents", "destination": "queue",
                           "target": "qc-second"}]


async def test_full_queue_overflows_to_voicemail(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await make_agent(client, "qc-full-agent")
    mailbox = f"qc-full-{datetime.now(UTC).strftime('%H%M%S%f')}"
    await make_queue(client, "qc-full", members=[{"agent_id": "qc-full-agent"}], max_length=1,
                     overflow={"action": "voicemail", "mailbox": mailbox})
    await flow(client, "qc-to-full", {"q": {"type": "queue", "queue": "qc-full"}}, "q")
    await route(client, "qc-full", "7830", "qc-to-full")
    await act(client, "qc-full-agent", "login")
    await act(client, "qc-full-agent", "pause")

    first = await dtmf_phones.call("7830")
    await first.wait_answered()
    await eventually(lambda: _waiting(client, "qc-full", 1), 10, what="the first caller waiting")
    since = call_clock()
    second = await dtmf_phones.call("7830", caller_id='"Second" <5553333>')
    await second.wait_answered()

    def overflowed() -> bool:
        calls = [c for c in live(runtime, "7830") if c.caller_number == "5553333"]
        return bool(calls) and calls[0].data.get("queue_overflow") == "max_length"

    await eventually(overflowed, 10, what="the second caller overflowed")
    [second_call] = [c for c in live(runtime, "7830") if c.caller_number == "5553333"]
    await recording(runtime, db_conn, second_call.id)
    await second.hang_up()

    async def stored() -> bool:
        return len((await client.get("/v1/voicemails", params={"mailbox": mailbox})).json()) == 1

    await eventually(stored, 15, what="the voicemail stored in the overflow mailbox")
    [message] = (await client.get("/v1/voicemails", params={"mailbox": mailbox})).json()
    assert message["caller_number"] == "5553333"
    await first.hang_up()
    call = await ended_call(runtime, db_conn, "7830", since)
    assert played(await event_kinds(db_conn, call["id"]))[0] == "sound:vm-intro"


async def _waiting(client, queue: str, n: int) -> bool:
    return len((await client.get(f"/v1/queues/{queue}/calls")).json()) == n


async def recording(runtime, db_conn, call_id: str) -> None:
    """Wait until the voicemail greeting (vm-intro) has played on the call: the beep and the
    recording follow it."""
    async def greeted() -> bool:
        await runtime.records.flushed()
        events = await event_kinds(db_conn, call_id)
        started = [data["playback_id"] for kind, data in events
                   if kind == "PlaybackStarted" and data.get("media") == "sound:vm-intro"]
        return bool(started) and any(kind == "PlaybackFinished" and data["playback_id"] == started[-1]
                                     for kind, data in events)

    await eventually(greeted, 15, what="the voicemail greeting played")
    await asyncio.sleep(1.5)  # the beep, then a little of a message


async def test_exit_key_to_voicemail(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await make_agent(client, "qc-exit-agent")
    mailbox = f"qc-exit-{datetime.now(UTC).strftime('%H%M%S%f')}"
    await make_queue(client, "qc-exit", members=[{"agent_id": "qc-exit-agent"}], exit_key="5",
                     exit_action="voicemail", exit_mailbox=mailbox)
    await flow(client, "qc-to-exit", {"q": {"type": "queue", "queue": "qc-exit"}}, "q")
    await route(client, "qc-exit", "7840", "qc-to-exit")
    await act(client, "qc-exit-agent", "login")
    await act(client, "qc-exit-agent", "pause")

    since = call_clock()
    phone = await dtmf_phones.call("7840", caller_id='"Vera" <5554444>')
    await phone.wait_answered()
    await eventually(lambda: _waiting(client, "qc-exit", 1), 10, what="the caller waiting")
    await phone.press("3")  # not the exit key: nothing happens
    await asyncio.sleep(0.5)
    assert await _waiting(client, "qc-exit", 1)
    await phone.press("5")
    await eventually(lambda: _waiting(client, "qc-exit", 0), 10, what="the caller out of the queue")
    [waiting_call] = live(runtime, "7840")
    await recording(runtime, db_conn, waiting_call.id)
    await phone.press("#")  # ends the message; the line is hung up
    await phone.wait_gone(15)

    async def stored() -> bool:
        return len((await client.get("/v1/voicemails", params={"mailbox": mailbox})).json()) == 1

    await eventually(stored, 15, what="the voicemail stored")
    call = await ended_call(runtime, db_conn, "7840", since)
    events = await event_kinds(db_conn, call["id"])
    exited = next(data for kind, data in events if kind == "QueueExited")
    assert exited == {"queue": "qc-exit", "action": "voicemail", "mailbox": mailbox}
    assert call["data"]["queue_exit"] == "voicemail"
    assert (await client.get("/v1/queues/qc-exit/stats")).json()["abandoned"] == 1


async def test_exit_key_callback_keeps_the_place_and_dials_the_agent_first(
        callback_runtime, dtmf_phones, db_conn):
    runtime, client = callback_runtime
    await make_agent(client, "qc-cb-agent", "Local/1006@ccc-test-agent")
    await make_queue(client, "qc-cb", members=[{"agent_id": "qc-cb-agent"}], exit_key="9",
                     exit_action="callback", max_wait_s=600)
    await flow(client, "qc-to-cb", {"q": {"type": "queue", "queue": "qc-cb"}}, "q")
    await route(client, "qc-cb", "7850", "qc-to-cb")
    await act(client, "qc-cb-agent", "login")
    await act(client, "qc-cb-agent", "pause")

    since = call_clock()
    first = await dtmf_phones.call("7850", caller_id='"Cal" <5556666>')
    await first.wait_answered()
    await eventually(lambda: _waiting(client, "qc-cb", 1), 10, what="the first caller waiting")
    second = await dtmf_phones.call("7850", caller_id='"Later" <5557777>')
    await second.wait_answered()
    await eventually(lambda: _waiting(client, "qc-cb", 2), 10, what="the second caller waiting")

    [first_call] = [c for c in live(runtime, "7850") if c.caller_number == "5556666"]
    await first.press("9")
    await first.wait_gone(15)  # "thank you, goodbye", then hung up
    # The callback keeps the first place in line, under the callback call's id.
    line = (await client.get("/v1/queues/qc-cb/calls")).json()
    assert [entry["position"] for entry in line] == [1, 2]
    await runtime.calls.wait_ended(first_call.id, 15)
    await runtime.records.flushed()
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (first_call.id,))
    original = await cursor.fetchone()
    assert original["state"] == "ended" and original["started_at"] >= since
    callback_id = original["data"]["callback_call_id"]
    assert line[0]["call_id"] == callback_id
    assert original["data"]["queue_exit"] == "callback"
    requested = [data for kind, data in await event_kinds(db_conn, original["id"])
                 if kind == "CallbackRequested"]
    assert requested == [{"queue": "qc-cb", "callback_call_id": callback_id, "number": "5556666"}]

    # An agent frees up: the callback is served before the second caller, agent first.
    await act(client, "qc-cb-agent", "unpause")

    async def bridged() -> bool:
        callback = runtime.calls.find(callback_id)
        if callback is None:
            return False
        legs = {leg.id for leg in callback.legs.values() if leg.state.value == "up"}
        bridges = (await dtmf_phones.client.get("/bridges")).json()
        return len(legs) == 2 and any(set(b["channels"]) == legs for b in bridges)

    await eventually(bridged, 20, what="the agent bridged with the caller called back")
    callback = runtime.calls.find(callback_id)
    assert callback is not None and callback.caller_number == "5556666"
    assert callback.data["agent_id"] == "qc-cb-agent" and callback.data["callback_of"] == original["id"]
    waiting = (await client.get("/v1/queues/qc-cb/calls")).json()
    assert len(waiting) == 1 and waiting[0]["call_id"] != callback_id  # the second caller waits on

    assert (await client.post(f"/v1/calls/{callback_id}/hangup")).status_code == 202
    await runtime.calls.wait_ended(callback_id, 15)
    await runtime.records.flushed()
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (callback_id,))
    record = await cursor.fetchone()
    assert record["state"] == "ended" and record["direction"] == "outbound"
    kinds = [kind for kind, _ in await event_kinds(db_conn, callback_id)]
    assert kinds.index("CallbackQueued") < kinds.index("AgentOffered") < kinds.index("CallbackDialed")
    assert kinds.index("CallbackDialed") < kinds.index("AgentConnected")
    cursor = await db_conn.execute(
        "SELECT id, role, answered_at FROM legs WHERE call_id = %s ORDER BY created_at", (callback_id,))
    legs = await cursor.fetchall()
    assert {leg["role"] for leg in legs} == {"caller", "agent"}
    agent_leg = next(leg for leg in legs if leg["role"] == "agent")
    caller_leg = next(leg for leg in legs if leg["role"] == "caller")
    assert agent_leg["answered_at"] < caller_leg["answered_at"]  # the agent first
    await second.hang_up()


async def test_two_queues_overflowing_to_each_other_do_not_loop(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await make_queue(client, "qc-ping")
    await make_queue(client, "qc-pong", overflow={"action": "queue", "queue": "qc-ping"})
    updated = await client.put("/v1/queues/qc-ping",
                               json={"overflow": {"action": "queue", "queue": "qc-pong"}})
    assert updated.status_code == 200, updated.text
    await flow(client, "qc-to-ping", {"q": {"type": "queue", "queue": "qc-ping"}}, "q")
    await route(client, "qc-ping", "7860", "qc-to-ping")

    since = call_clock()
    phone = await dtmf_phones.call("7860")
    await phone.wait_answered()
    await phone.wait_gone(15)  # no agents anywhere: bounced from queue to queue, then hung up
    call = await ended_call(runtime, db_conn, "7860", since)
    events = await event_kinds(db_conn, call["id"])
    hops = [data["target"] for kind, data in events if kind == "QueueOverflowed"]
    assert hops == ["qc-pong", "qc-ping", "qc-pong", "qc-ping", "qc-pong", "qc-ping"]
    assert call["data"]["queue_hops"] == "6"
