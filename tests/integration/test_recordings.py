"""Call recording on the real Asterisk: a queue call bridged with an auto-answering agent is
recorded by policy (the file's duration, read from its WAV header, is the bridged time); a
recording started on demand and paused leaves the paused part out; the audio streams with Range
to an admin and not to an agent; deletion and retention (also through the real Celery worker)
remove the file and leave audit records."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from controller.domain.access import Role
from controller.storage import recordings as store
from tests.conftest import ROOT, eventually
from tests.integration.helpers import call_clock, ended_call, flow, route
from tests.integration.test_processes import BROKER, CLI, cli_env

pytestmark = pytest.mark.asterisk


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def setup_queue(client, agent_id: str, device: str, queue: str, number: str) -> None:
    created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
    assert created.status_code == 201, created.text
    made = await client.post("/v1/queues", json={
        "name": queue, "strategy": "linear", "ring_timeout_s": 10, "wrap_up_s": 0,
        "members": [{"agent_id": agent_id, "penalty": 0}]})
    assert made.status_code == 201, made.text
    await flow(client, f"to-{queue}", {"q": {"type": "queue", "queue": queue}}, "q")
    await route(client, queue, number, f"to-{queue}")
    assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200


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
    """From the agent's connection (AgentConnected) to the caller's hang-up, by the call records."""
    cursor = await db_conn.execute(
        "SELECT at FROM call_events WHERE call_id = %s AND kind = 'AgentConnected'", (call_id,))
    connected = (await cursor.fetchone())["at"]
    cursor = await db_conn.execute(
        "SELECT ended_at FROM legs WHERE call_id = %s AND role = 'caller'", (call_id,))
    ended = (await cursor.fetchone())["ended_at"]
    return (ended - connected).total_seconds()


async def test_a_queue_call_recorded_by_policy_streams_to_admins_only(inbound, dtmf_phones, db_conn,
                                                                        api_client):
    runtime, client = inbound
    await setup_queue(client, "rec-agent", "Local/1001@ccc-test-agent", "recq", "7810")
    policy = await client.put("/v1/recording-policies/queue/recq", json={"policy": "always"})
    assert policy.status_code == 200 and policy.json()["policy"] == "always", policy.text

    since = call_clock()
    phone = await dtmf_phones.call("7810", caller_id='"Rita" <5553333>')
    await phone.wait_answered()
    call_id = await connected_call(runtime, "7810", "rec-agent")
    await runtime.recordings.finished()  # the policy's start runs on its own task
    live = (await client.get("/v1/recordings", params={"call_id": call_id})).json()
    assert [r["state"] for r in live] == ["recording"] and live[0]["started_by"] == "policy"
    assert (live[0]["queue"], live[0]["agent_id"], live[0]["caller_number"]) == (
        "recq", "rec-agent", "5553333")
    assert (await client.get(f"/v1/recordings/{live[0]['id']}/audio")).status_code == 409  # not yet

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

    # An admin streams a byte range; an agent key and an integration key are refused.
    audio_url = f"/v1/recordings/{recording['id']}/audio"
    ranged = await client.get(audio_url, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206, ranged.text
    assert ranged.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert ranged.content == data[:100]
    full = await client.get(audio_url)
    assert full.status_code == 200 and full.content == data
    for role in (Role.AGENT, Role.INTEGRATION):
        _, key = await runtime.api_keys.create(f"rec {role.value}", role, None)
        refused = await client.get(audio_url, headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 403, refused.text

    # Deleting removes the file; the audio is then 404. Every access and the deletion are audited.
    assert (await client.delete(f"/v1/recordings/{recording['id']}")).status_code == 204
    assert not path.exists()
    gone = await client.get(audio_url)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    await runtime.records.flushed()
    cursor = await db_conn.execute(
        "SELECT action, role, status FROM audit_log WHERE path = %s ORDER BY id", (audio_url,))
    accesses = [(row["role"], row["status"]) for row in await cursor.fetchall()]
    assert accesses == [("admin", 409), ("admin", 206), ("admin", 200), ("agent", 403),
                        ("integration", 403), ("admin", 404)]
    cursor = await db_conn.execute(
        "SELECT detail FROM audit_log WHERE action = 'recording_deleted' AND target = %s", (recording["id"],))
    [deletion] = await cursor.fetchall()
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


async def test_retention_deletes_old_recordings_and_an_absent_file_is_410(inbound, db_conn):
    runtime, client = inbound
    spool = runtime.recordings.recordings_dir
    spool.mkdir(parents=True, exist_ok=True)
    ids = []
    async with runtime.db.connection() as conn:
        for age_days, with_file in ((40, True), (40, False), (1, True)):
            recording_id = uuid4()
            name = f"callrec-{recording_id}"
            await store.insert_recording(
                conn, id=recording_id, name=name, call_id=f"retention-{recording_id}", bridge_id="br-x",
                queue=None, agent_id=None, caller_number="", started_by="api", format="wav",
                started_at=datetime.now(UTC) - timedelta(days=age_days))
            await store.finish(conn, name=name, state="finished", ended_at=datetime.now(UTC), duration_s=1.0,
                               size_bytes=4, sha256="0" * 64, error=None)
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
    assert rows[str(old)] == {"reason": "retention", "file_removed": True, "call_id": f"retention-{old}"}
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
