"""Call recording on the real Asterisk.

A queue call bridged with an auto-answering agent is recorded by policy (the file's duration,
read from its WAV header, is the bridged time); a recording started on demand and paused leaves
the paused part out; a call that is put on hold, blind transferred to a second agent (who rings
longer than a bridge recording would survive) or sent to another queue stays one recording that
covers every part; each party can also be kept on its own channel of a stereo file; a recording
whose end the controller missed (it was down) is finished from its file when the controller
comes back. The audio streams with Range to the roles and keys that may hear it (an agent its
own, a supervisor its queues) and is "not found" to the others; deletion and retention (also
through the real Celery worker) remove the files and leave audit records."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import wave
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from controller.domain.access import Role
from controller.storage import recordings as store
from controller.storage.recordings import FileFacts
from tests.conftest import ROOT, eventually
from tests.integration.helpers import call_clock, ended_call, flow, route
from tests.integration.test_processes import BROKER, CLI, cli_env

pytestmark = pytest.mark.asterisk


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def add_agent(client, agent_id: str, device: str) -> None:
    created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
    assert created.status_code == 201, created.text
    assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200


async def add_queue(client, queue: str, members: list[str]) -> None:
    made = await client.post("/v1/queues", json={
        "name": queue, "strategy": "linear", "ring_timeout_s": 10, "wrap_up_s": 0,
        "members": [{"agent_id": m, "penalty": 0} for m in members]})
    assert made.status_code == 201, made.text


async def setup_queue(client, agent_id: str, device: str, queue: str, number: str) -> None:
    await add_agent(client, agent_id, device)
    await add_queue(client, queue, [agent_id])
    await flow(client, f"to-{queue}", {"q": {"type": "queue", "queue": queue}}, "q")
    await route(client, queue, number, f"to-{queue}")


async def key_of(client, name: str, role: str, **scope) -> dict[str, str]:
    made = await client.post("/v1/api-keys", json={"name": name, "role": role, **scope})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


async def connected_call(runtime, dialed: str, agent_id: str) -> str:
    async def connected() -> bool:
        live = [c for c in runtime.calls.live_calls() if c.dialed == dialed]
        return bool(live) and live[0].data.get("agent_id") == agent_id and \
            runtime.calls.connected_call(live[0].id) is not None

    await eventually(connected, 15, what=f"the caller bridged with {agent_id}")
    return next(c.id for c in runtime.calls.live_calls() if c.dialed == dialed)


async def finished_recording(client, call_id: str) -> dict:
    async def finished() -> bool:
        found = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
        return bool(found) and found[0]["state"] in ("finished", "failed")

    await eventually(finished, 15, what="the recording finished")
    [recording] = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    assert recording["state"] == "finished", recording
    return recording


async def bridged_seconds(db_conn, call_id: str) -> float:
    """From the first agent's connection (AgentConnected) to the caller's hang-up, by the call
    records."""
    cursor = await db_conn.execute(
        "SELECT min(at) AS at FROM call_events WHERE call_id = %s AND kind = 'AgentConnected'", (call_id,))
    connected = (await cursor.fetchone())["at"]
    cursor = await db_conn.execute(
        "SELECT ended_at FROM legs WHERE call_id = %s AND role = 'caller'", (call_id,))
    ended = (await cursor.fetchone())["ended_at"]
    return (ended - connected).total_seconds()


async def test_a_queue_call_recorded_by_policy_streams_to_the_right_keys(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await setup_queue(client, "rec-agent", "Local/1001@ccc-test-agent", "recq", "7810")
    await add_agent(client, "rec-other", "Local/1002@ccc-test-agent")
    await add_queue(client, "recq-other", ["rec-other"])
    policy = await client.put("/v1/recording-policies/queue/recq", json={"policy": "always"})
    assert policy.status_code == 200 and policy.json()["policy"] == "always", policy.text
    own_agent = await key_of(client, "rec own agent", "agent", agent_id="rec-agent")
    other_agent = await key_of(client, "rec other agent", "agent", agent_id="rec-other")
    unlinked_agent = await key_of(client, "rec unlinked agent", "agent")
    integration = await key_of(client, "rec crm", "integration")
    floor = await key_of(client, "rec floor supervisor", "supervisor")
    own_queue = await key_of(client, "rec recq supervisor", "supervisor", queues=["recq"])
    other_queue = await key_of(client, "rec other supervisor", "supervisor", queues=["recq-other"])

    since = call_clock()
    phone = await dtmf_phones.call("7810", caller_id='"Rita" <5553333>')
    await phone.wait_answered()
    call_id = await connected_call(runtime, "7810", "rec-agent")
    await runtime.recordings.finished()  # the policy's start runs on its own task
    live = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    assert [r["state"] for r in live] == ["recording"] and live[0]["started_by"] == "policy"
    assert (live[0]["queue"], live[0]["agent_id"], live[0]["caller_number"]) == (
        "recq", "rec-agent", "5553333")
    assert (live[0]["agents"], live[0]["queues"], live[0]["dual_channel"]) == (["rec-agent"], ["recq"], False)
    assert (await client.get(f"/v1/recordings/{live[0]['id']}/audio")).status_code == 409  # not yet
    # The agent of the call controls its recording; another agent may not.
    control = f"/v1/calls/{call_id}/recording"
    refused = await client.post(control, headers=other_agent, json={"action": "pause"})
    assert refused.status_code == 403, refused.text
    for action in ("pause", "resume"):
        done = await client.post(control, headers=own_agent, json={"action": action})
        assert done.status_code == 202, done.text

    await asyncio.sleep(3)
    await phone.hang_up()
    await ended_call(runtime, db_conn, "7810", since)
    recording = await finished_recording(client, call_id)
    await runtime.records.flushed()

    path = runtime.recordings.recordings_dir / f"callrec-{recording['id']}.wav"
    data = path.read_bytes()
    seconds = wav_seconds(path)
    bridged = await bridged_seconds(db_conn, call_id)
    assert bridged > 2.5
    assert abs(seconds - bridged) <= 1.0, (seconds, bridged)
    assert recording["duration_s"] == pytest.approx(seconds)
    assert recording["size_bytes"] == len(data) and recording["format"] == "wav"
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()

    # Search by agent, queue, caller and time find it; another agent's search does not.
    for params in ({"agent_id": "rec-agent"}, {"queue": "recq"}, {"caller_number": "5553333"},
                   {"since": since.isoformat()}):
        found = (await client.get("/v1/recordings", params=params)).json()
        assert recording["id"] in [r["id"] for r in found]
    assert (await client.get("/v1/recordings", params={"agent_id": "nobody"})).json() == []

    # Who finds it: its agent, the floor and its queue's supervisor; not another agent, an agent
    # key linked to no agent, nor a supervisor of other queues (for them it does not exist).
    meta_url, audio_url = f"/v1/recordings/{recording['id']}", f"/v1/recordings/{recording['id']}/audio"
    for headers, sees in ((own_agent, True), (floor, True), (own_queue, True), (integration, True),
                          (other_agent, False), (unlinked_agent, False), (other_queue, False)):
        listed = (await client.get("/v1/recordings", headers=headers, params={"call_id": call_id})).json()
        assert [r["id"] for r in listed] == ([recording["id"]] if sees else []), headers
        assert (await client.get(meta_url, headers=headers)).status_code == (200 if sees else 404)

    # An admin streams a byte range; so do the call's agent and its queue's supervisor. Other
    # agents and supervisors get 404; integrations never listen (403).
    ranged = await client.get(audio_url, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206, ranged.text
    assert ranged.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert ranged.content == data[:100]
    full = await client.get(audio_url)
    assert full.status_code == 200 and full.content == data
    for headers, status in ((own_agent, 200), (own_queue, 200), (other_agent, 404), (other_queue, 404),
                            (integration, 403)):
        response = await client.get(audio_url, headers=headers)
        assert response.status_code == status, response.text
        if status == 200:
            assert response.content == data

    # A supervisor of other queues cannot delete it (not found); its queue's supervisor can.
    assert (await client.delete(meta_url, headers=other_queue)).status_code == 404
    assert path.exists()
    assert (await client.delete(meta_url, headers=own_queue)).status_code == 204
    assert not path.exists()
    gone = await client.get(audio_url)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    await runtime.records.flushed()
    cursor = await db_conn.execute(
        "SELECT role, key_name, status FROM audit_log WHERE path = %s AND method = 'GET' ORDER BY id",
        (audio_url,))
    accesses = [(row["role"], row["key_name"], row["status"]) for row in await cursor.fetchall()]
    assert accesses == [
        ("admin", "inbound tests", 409), ("admin", "inbound tests", 206), ("admin", "inbound tests", 200),
        ("agent", "rec own agent", 200), ("supervisor", "rec recq supervisor", 200),
        ("agent", "rec other agent", 404), ("supervisor", "rec other supervisor", 404),
        ("integration", "rec crm", 403), ("admin", "inbound tests", 404)]
    cursor = await db_conn.execute(
        "SELECT key_name, detail FROM audit_log WHERE action = 'recording_deleted' AND target = %s",
        (recording["id"],))
    [deletion] = await cursor.fetchall()
    assert deletion["key_name"] == "rec recq supervisor"
    assert deletion["detail"]["reason"] == "api" and deletion["detail"]["file_removed"] is True


async def test_a_paused_part_is_left_out_of_an_on_demand_recording(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await setup_queue(client, "rec-pauser", "Local/1005@ccc-test-agent", "recp", "7811")
    never = await client.put("/v1/recording-policies/agent/rec-pauser", json={"policy": "never"})
    assert never.status_code == 200, never.text

    since = call_clock()
    phone = await dtmf_phones.call("7811")
    await phone.wait_answered()
    call_id = await connected_call(runtime, "7811", "rec-pauser")
    await runtime.recordings.finished()
    assert (await client.get("/v1/recordings", params={"call_id": call_id})).json() == []
    # The agent's policy (never) refuses a start; taken away, on demand is the default.
    refused = await client.post(f"/v1/calls/{call_id}/recording", json={"action": "start"})
    assert refused.status_code == 409, refused.text
    assert (await client.delete("/v1/recording-policies/agent/rec-pauser")).status_code == 204

    loop = asyncio.get_running_loop()
    started = await client.post(f"/v1/calls/{call_id}/recording", json={"action": "start"})
    assert started.status_code == 202 and started.json()["started_by"] == "api", started.text
    again = await client.post(f"/v1/calls/{call_id}/recording", json={"action": "start"})
    assert again.status_code == 409, again.text
    await asyncio.sleep(1.5)
    paused = await client.post(f"/v1/calls/{call_id}/recording", json={"action": "pause"})
    paused_at = loop.time()
    assert paused.status_code == 202 and paused.json()["state"] == "paused", paused.text
    await asyncio.sleep(2)
    resumed = await client.post(f"/v1/calls/{call_id}/recording", json={"action": "resume"})
    paused_for = loop.time() - paused_at
    assert resumed.status_code == 202 and resumed.json()["state"] == "recording", resumed.text
    await asyncio.sleep(1.5)
    await phone.hang_up()
    await ended_call(runtime, db_conn, "7811", since)
    recording = await finished_recording(client, call_id)

    cursor = await db_conn.execute("SELECT ended_at FROM legs WHERE call_id = %s AND role = 'caller'",
                                   (call_id,))
    ended = (await cursor.fetchone())["ended_at"]
    recorded_span = (ended - datetime.fromisoformat(recording["started_at"])).total_seconds()
    seconds = wav_seconds(runtime.recordings.recordings_dir / f"callrec-{recording['id']}.wav")
    assert paused_for >= 2
    assert abs(seconds - (recorded_span - paused_for)) <= 1.0, (seconds, recorded_span, paused_for)
    assert recording["duration_s"] == pytest.approx(seconds)


async def test_a_blind_transfer_to_a_second_agent_stays_one_recording(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    ari = dtmf_phones.client
    await setup_queue(client, "bt-first", "Local/2401@ccc-test-agent", "btq", "7840")
    # The second agent rings for 6 s before it answers: a recording of the call's bridge stops
    # when the bridge is left without audio that long (the caller waits outside it, on hold).
    await add_agent(client, "bt-second", "Local/2402@ccc-test-agent-slow")
    always = await client.put("/v1/recording-policies/queue/btq", json={"policy": "always"})
    assert always.status_code == 200, always.text
    first_key = await key_of(client, "bt first", "agent", agent_id="bt-first")
    second_key = await key_of(client, "bt second", "agent", agent_id="bt-second")

    since = call_clock()
    phone = await dtmf_phones.call("7840", caller_id='"Tess" <5554444>')
    await phone.wait_answered()
    call_id = await connected_call(runtime, "7840", "bt-first")
    await runtime.recordings.finished()
    [live] = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    assert live["state"] == "recording"
    await asyncio.sleep(2)

    transfer = await client.post(f"/v1/calls/{call_id}/transfer", headers=first_key,
                                 json={"mode": "blind", "to": {"agent": "bt-second"}})
    assert transfer.status_code == 202, transfer.text

    async def with_second() -> bool:
        call = runtime.calls.find(call_id)
        if call is None or call.data.get("agent_id") != "bt-second":
            return False
        bridges = (await ari.get("/bridges")).json()
        members = next((set(b["channels"]) for b in bridges if b["id"] == f"br-{call_id}"), set())
        return len(members) == 2

    await eventually(with_second, 20, what="the caller bridged with the second agent")
    await runtime.recordings.finished()
    # Still the same recording, going on, now naming both agents.
    [still] = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    assert (still["id"], still["state"]) == (live["id"], "recording")
    assert still["agents"] == ["bt-first", "bt-second"]
    await asyncio.sleep(2)
    await phone.hang_up()
    await ended_call(runtime, db_conn, "7840", since)
    recording = await finished_recording(client, call_id)

    cursor = await db_conn.execute(
        "SELECT at FROM call_events WHERE call_id = %s AND kind = 'TransferAnswered'", (call_id,))
    answered = (await cursor.fetchone())["at"]
    started = datetime.fromisoformat(recording["started_at"])
    seconds = wav_seconds(runtime.recordings.recordings_dir / f"callrec-{recording['id']}.wav")
    bridged = await bridged_seconds(db_conn, call_id)
    # One file from the first agent's connection to the caller's hang-up: the first agent's
    # part, the 6 s of ringing, and the second agent's part.
    assert (answered - started).total_seconds() >= 7
    assert abs(seconds - bridged) <= 1.0, (seconds, bridged)
    assert recording["duration_s"] == pytest.approx(seconds) and seconds > 9
    assert (recording["agents"], recording["queues"]) == (["bt-first", "bt-second"], ["btq"])
    # Both agents took part: each finds it and may listen to it.
    for headers in (first_key, second_key):
        listed = (await client.get("/v1/recordings", headers=headers, params={"call_id": call_id})).json()
        assert [r["id"] for r in listed] == [recording["id"]]
        audio = await client.get(f"/v1/recordings/{recording['id']}/audio", headers=headers)
        assert audio.status_code == 200 and len(audio.content) == recording["size_bytes"]


async def test_hold_and_a_transfer_back_into_a_queue_stay_one_recording(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await setup_queue(client, "qt-first", "Local/2411@ccc-test-agent", "qt-sales", "7841")
    await add_agent(client, "qt-next", "Local/2412@ccc-test-agent")
    await add_queue(client, "qt-billing", ["qt-next"])
    assert (await client.put("/v1/recording-policies/queue/qt-sales",
                             json={"policy": "always"})).status_code == 200
    billing = await key_of(client, "qt billing supervisor", "supervisor", queues=["qt-billing"])

    since = call_clock()
    phone = await dtmf_phones.call("7841")
    await phone.wait_answered()
    call_id = await connected_call(runtime, "7841", "qt-first")
    await runtime.recordings.finished()
    assert (await client.post(f"/v1/calls/{call_id}/hold")).status_code == 202
    await asyncio.sleep(1)
    assert (await client.post(f"/v1/calls/{call_id}/unhold")).status_code == 202
    # A supervisor of billing does not see the recording of a sales call...
    assert (await client.get("/v1/recordings", headers=billing, params={"call_id": call_id})).json() == []
    moved = await client.post(f"/v1/calls/{call_id}/transfer", json={"to": {"queue": "qt-billing"}})
    assert moved.status_code == 202, moved.text
    await connected_call(runtime, "7841", "qt-next")
    await runtime.recordings.finished()
    # ... until the call is connected from billing: the same recording, with both queues.
    [live] = (await client.get("/v1/recordings", headers=billing, params={"call_id": call_id})).json()
    assert (live["state"], live["queues"], live["agents"]) == (
        "recording", ["qt-sales", "qt-billing"], ["qt-first", "qt-next"])
    await asyncio.sleep(1)
    await phone.hang_up()
    await ended_call(runtime, db_conn, "7841", since)
    recording = await finished_recording(client, call_id)
    seconds = wav_seconds(runtime.recordings.recordings_dir / f"callrec-{recording['id']}.wav")
    bridged = await bridged_seconds(db_conn, call_id)
    assert abs(seconds - bridged) <= 1.0, (seconds, bridged)
    cursor = await db_conn.execute("SELECT count(*) AS n FROM recordings WHERE call_id = %s", (call_id,))
    assert (await cursor.fetchone())["n"] == 1


def pitch(samples: array, rate: int) -> float:
    """The frequency of a steady tone, from how often the signal crosses zero."""
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate)


async def test_each_party_on_its_own_channel_of_a_stereo_file(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    # The agent's phone speaks a 1 kHz tone; the caller's speaks 440 Hz.
    await setup_queue(client, "dual-agent", "Local/2501@ccc-test-agent-tone", "dualq", "7850")
    policy = await client.put("/v1/recording-policies/queue/dualq",
                              json={"policy": "always", "dual_channel": True})
    assert policy.status_code == 200 and policy.json()["dual_channel"] is True, policy.text

    since = call_clock()
    phone = await dtmf_phones.call("7850")
    await phone.wait_answered()
    played = await dtmf_phones.client.post(f"/channels/{phone.id}/play/tone-{uuid4().hex[:8]}",
                                           params={"media": "tone:440"})
    assert played.status_code == 201, played.text
    call_id = await connected_call(runtime, "7850", "dual-agent")
    await runtime.recordings.finished()
    [live] = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    assert live["dual_channel"] is True and live["dual"] is None
    await asyncio.sleep(3)
    await phone.hang_up()
    await ended_call(runtime, db_conn, "7850", since)
    recording = await finished_recording(client, call_id)

    spool = runtime.recordings.recordings_dir
    mixed, stereo = spool / f"callrec-{recording['id']}.wav", spool / f"callrec-{recording['id']}-dual.wav"
    assert recording["dual_error"] is None and recording["dual"] is not None, recording
    data = stereo.read_bytes()
    assert recording["dual"]["size_bytes"] == len(data)
    assert recording["dual"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (recording["dual"]["left"], recording["dual"]["right"]) == ("caller", "others")
    # The two one-direction parts were merged and removed.
    assert not (spool / f"callrec-{recording['id']}-in.wav").exists()
    assert not (spool / f"callrec-{recording['id']}-out.wav").exists()
    with wave.open(str(stereo), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        rate, frames = wav.getframerate(), wav.getnframes()
        samples = array("h", wav.readframes(frames))
    assert abs(frames / rate - wav_seconds(mixed)) <= 0.5
    assert recording["dual"]["duration_s"] == pytest.approx(frames / rate)
    # One second from the middle: the caller alone on the left, the agent alone on the right.
    middle = slice(2 * (frames // 2 - rate // 2), 2 * (frames // 2 + rate // 2))
    left, right = samples[middle][0::2], samples[middle][1::2]
    assert abs(pitch(left, rate) - 440) < 40, pitch(left, rate)
    assert abs(pitch(right, rate) - 1000) < 60, pitch(right, rate)

    # The stereo file streams on request, with Range; the mixed file stays the default.
    url = f"/v1/recordings/{recording['id']}/audio"
    ranged = await client.get(url, params={"channels": "dual"}, headers={"Range": "bytes=0-43"})
    assert ranged.status_code == 206 and ranged.content == data[:44]
    assert (await client.get(url)).content == mixed.read_bytes()
    assert (await client.get(url, params={"channels": "both"})).status_code == 422


async def test_a_recording_whose_end_was_missed_is_finished_from_its_file(start_runtime, api_client,
                                                                           dtmf_phones, db_conn):
    first = await start_runtime()
    _, admin = await first.api_keys.create("missed end", Role.ADMIN, None)
    async with api_client(first) as client:
        client.headers["Authorization"] = f"Bearer {admin}"
        await setup_queue(client, "miss-agent", "Local/2601@ccc-test-agent", "missq", "7860")
        assert (await client.put("/v1/recording-policies/queue/missq",
                                 json={"policy": "always"})).status_code == 200
        phone = await dtmf_phones.call("7860")
        await phone.wait_answered()
        call_id = await connected_call(first, "7860", "miss-agent")
        await first.recordings.finished()
        [live] = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    recording_id = live["id"]
    # A recording in progress of this controller that the switch has never heard of: its end
    # cannot come, and it has no file.
    lost_id = uuid4()
    async with first.db.connection() as conn:
        await store.insert_recording(
            conn, id=lost_id, name=f"callrec-{lost_id}", call_id=f"lost-{lost_id}",
            app=first.settings.ari_app, queue=None, agent_id=None, caller_number="", started_by="api",
            format="wav", started_at=datetime.now(UTC) - timedelta(minutes=5))

    # The controller goes away; back while the call goes on, it keeps recording it.
    await first.close()
    second = await start_runtime()
    await eventually(lambda: second.recordings.reconciliations >= 1, 10, what="the recordings reconciled")
    async with second.db.connection() as conn:
        kept = await store.get_recording(conn, UUID(recording_id))
        lost = await store.get_recording(conn, lost_id)
    assert kept.state == "recording"
    assert lost.state == "failed" and "not connected" in lost.error and "missing" in lost.error
    assert await second.switch.recording_active(kept.name)

    # It goes away again, and the caller hangs up meanwhile: the RecordingFinished is lost.
    await second.close()
    await phone.hang_up()
    hung_up = datetime.now(UTC)
    ari = dtmf_phones.client

    async def over_on_the_switch() -> bool:
        return (await ari.get(f"/recordings/live/{kept.name}")).status_code == 404

    await eventually(over_on_the_switch, 10, what="the switch to finish the recording")
    cursor = await db_conn.execute("SELECT state FROM recordings WHERE id = %s", (kept.id,))
    assert (await cursor.fetchone())["state"] == "recording"  # nobody heard it end

    third = await start_runtime()
    await eventually(lambda: third.recordings.reconciliations >= 1, 10, what="the recordings reconciled")
    async with third.db.connection() as conn:
        finished = await store.get_recording(conn, kept.id)
    path = third.recordings.recordings_dir / finished.file_name
    data = path.read_bytes()
    assert finished.state == "finished" and finished.error is None
    assert finished.size_bytes == len(data) and finished.sha256 == hashlib.sha256(data).hexdigest()
    assert finished.duration_s == pytest.approx(wav_seconds(path))
    assert abs(finished.duration_s - (hung_up - finished.started_at).total_seconds()) <= 1.0
    assert abs((finished.ended_at - hung_up).total_seconds()) <= 1.0
    async with api_client(third) as client:
        client.headers["Authorization"] = f"Bearer {admin}"
        audio = await client.get(f"/v1/recordings/{kept.id}/audio")
    assert audio.status_code == 200 and audio.content == data


async def test_retention_deletes_old_recordings_and_an_absent_file_is_410(inbound, db_conn):
    runtime, client = inbound
    spool = runtime.recordings.recordings_dir
    spool.mkdir(parents=True, exist_ok=True)
    ids = []
    await runtime.recordings.expire(30)  # recordings other tests left behind: only ours below
    async with runtime.db.connection() as conn:
        for age_days, with_file in ((40, True), (40, False), (1, True)):
            recording_id = uuid4()
            name = f"callrec-{recording_id}"
            await store.insert_recording(
                conn, id=recording_id, name=name, call_id=f"retention-{recording_id}", bridge_id="br-x",
                queue=None, agent_id=None, caller_number="", started_by="api", format="wav",
                started_at=datetime.now(UTC) - timedelta(days=age_days))
            await store.finish(conn, recording_id=recording_id, state="finished", ended_at=datetime.now(UTC),
                               facts=FileFacts(1.0, 4, "0" * 64), error=None)
            if with_file:
                (spool / f"{name}.wav").write_bytes(b"RIFF")
            ids.append(recording_id)
    old, old_without_file, young = ids

    # A row whose file has gone answers 410, never 500.
    missing = await client.get(f"/v1/recordings/{old_without_file}/audio")
    assert missing.status_code == 410 and missing.headers["content-type"] == "application/problem+json"

    assert await runtime.recordings.expire(30) == 2
    assert not (spool / f"callrec-{old}.wav").exists()
    assert (spool / f"callrec-{young}.wav").exists()
    assert (await client.get(f"/v1/recordings/{old}")).status_code == 404
    assert (await client.get(f"/v1/recordings/{young}")).status_code == 200
    await runtime.records.flushed()
    cursor = await db_conn.execute(
        "SELECT target, detail FROM audit_log WHERE action = 'recording_deleted' AND target = ANY(%s)",
        ([str(old), str(old_without_file)],))
    rows = {row["target"]: row["detail"] for row in await cursor.fetchall()}
    assert rows[str(old)] == {"reason": "retention", "file_removed": True, "call_id": f"retention-{old}",
                              "files_removed": [f"callrec-{old}.wav"]}
    assert rows[str(old_without_file)]["file_removed"] is False
    await runtime.recordings.delete(young, reason="test")


async def test_the_celery_worker_expires_old_recordings(db_conn, tmp_path):
    recording_id = uuid4()
    name = f"callrec-{recording_id}"
    await db_conn.execute(
        "INSERT INTO recordings (id, name, call_id, bridge_id, started_by, state, format, started_at)"
        " VALUES (%s, %s, 'worker-call', 'br-x', 'api', 'finished', 'wav', now() - interval '200 days')",
        (recording_id, name))
    (tmp_path / f"{name}.wav").write_bytes(b"RIFF")
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then only polls
        [*CLI, "worker", "--no-beat"], env=cli_env(CCC_RECORDINGS_DIR=str(tmp_path)), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from celery import Celery

        Celery(broker=BROKER).send_task("controller.worker.tasks.expire_recordings", args=[90])

        async def expired() -> bool:
            cursor = await db_conn.execute("SELECT deleted_at FROM recordings WHERE id = %s", (recording_id,))
            return (await cursor.fetchone())["deleted_at"] is not None

        await eventually(expired, 60, interval=0.5, what="the worker to expire the old recording")
        assert not (tmp_path / f"{name}.wav").exists()
        cursor = await db_conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'recording_deleted' AND target = %s",
            (str(recording_id),))
        [row] = await cursor.fetchall()
        assert row["detail"]["reason"] == "retention" and row["detail"]["file_removed"] is True
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
