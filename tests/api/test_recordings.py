"""Recording policies and the recordings API without a live call: validation, not-found and
conflict outcomes (never 500), and which recordings each key finds (agents their own, supervisors
their queues) with rows and files made as the recording service leaves them."""

from __future__ import annotations

import wave
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx

from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.services.recordings import file_facts
from controller.storage import recordings as store
from tests.api.conftest import audit_of, bearer


async def test_policies_are_set_listed_replaced_and_removed(client: httpx.AsyncClient, admin_key: str):
    auth = bearer(admin_key)
    put = await client.put("/v1/recording-policies/queue/sales", json={"policy": "always"}, headers=auth)
    assert put.status_code == 200 and put.json()["policy"] == "always", put.text
    put = await client.put("/v1/recording-policies/queue/sales", json={"policy": "never"}, headers=auth)
    assert put.json()["policy"] == "never"
    await client.put("/v1/recording-policies/agent/bob", json={"policy": "on_demand"}, headers=auth)
    listed = {(p["scope"], p["name"]): p["policy"]
              for p in (await client.get("/v1/recording-policies", headers=auth)).json()}
    assert listed[("queue", "sales")] == "never" and listed[("agent", "bob")] == "on_demand"
    for scope, name in (("queue", "sales"), ("agent", "bob")):
        deleted = await client.delete(f"/v1/recording-policies/{scope}/{name}", headers=auth)
        assert deleted.status_code == 204
    assert (await client.delete("/v1/recording-policies/queue/sales", headers=auth)).status_code == 404


async def test_a_campaign_policy_sits_between_the_agent_and_the_queue(client: httpx.AsyncClient,
                                                                       admin_key: str, runtime: Runtime):
    auth = bearer(admin_key)
    for scope, name, policy in (("queue", "sales", "on_demand"), ("campaign", "spring-sale", "always"),
                                ("agent", "bob", "never")):
        put = await client.put(f"/v1/recording-policies/{scope}/{name}", json={"policy": policy},
                               headers=auth)
        assert put.status_code == 200 and put.json()["scope"] == scope, put.text
    recordings = runtime.recordings
    assert await recordings.policy_for("sales", "alice", "spring-sale") == "always"  # campaign over queue
    assert await recordings.policy_for("sales", "bob", "spring-sale") == "never"  # agent over campaign
    assert await recordings.policy_for("sales", "alice", None) == "on_demand"
    assert await recordings.policy_for(None, None, "other-campaign") == "on_demand"  # none: on demand
    for scope, name in (("queue", "sales"), ("campaign", "spring-sale"), ("agent", "bob")):
        deleted = await client.delete(f"/v1/recording-policies/{scope}/{name}", headers=auth)
        assert deleted.status_code == 204


async def test_invalid_policies_and_actions_are_422(client: httpx.AsyncClient, admin_key: str):
    auth = bearer(admin_key)
    for path, body in (("/v1/recording-policies/team/x", {"policy": "always"}),
                       ("/v1/recording-policies/campaign/Bad Name", {"policy": "always"}),
                       ("/v1/recording-policies/queue/Bad Name", {"policy": "always"}),
                       ("/v1/recording-policies/queue/ok", {"policy": "sometimes"}),
                       ("/v1/recording-policies/queue/ok", {"policy": "always", "extra": 1})):
        assert (await client.put(path, json=body, headers=auth)).status_code == 422, path
    for body in ({"action": "rewind"}, {}, {"action": "start", "name": "../x"}):
        response = await client.post("/v1/calls/abc/recording", json=body, headers=auth)
        assert response.status_code == 422, body


async def test_no_live_call_and_no_recording_are_404_or_409(client: httpx.AsyncClient, admin_key: str):
    auth = bearer(admin_key)
    start = await client.post("/v1/calls/no-such-call/recording", json={"action": "start"}, headers=auth)
    assert start.status_code == 404 and start.headers["content-type"] == "application/problem+json"
    pause = await client.post("/v1/calls/no-such-call/recording", json={"action": "pause"}, headers=auth)
    assert pause.status_code == 409, pause.text
    missing = uuid4()
    for method, path in (("GET", f"/v1/recordings/{missing}"), ("GET", f"/v1/recordings/{missing}/audio"),
                         ("DELETE", f"/v1/recordings/{missing}")):
        assert (await client.request(method, path, headers=auth)).status_code == 404, path
    bad = await client.get("/v1/recordings", params={"caller_number": "a\x00b"}, headers=auth)
    assert bad.status_code == 422


async def _made(client: httpx.AsyncClient, admin_key: str, path: str, body: dict) -> None:
    made = await client.post(path, headers=bearer(admin_key), json=body)
    assert made.status_code == 201, made.text


async def _key(client: httpx.AsyncClient, admin_key: str, name: str, role: str, **scope: object) -> dict:
    made = await client.post("/v1/api-keys", headers=bearer(admin_key),
                             json={"name": name, "role": role, **scope})
    assert made.status_code == 201, made.text
    return bearer(made.json()["key"])


async def _finished_recording(runtime: Runtime, agents: tuple[str, ...], queues: tuple[str, ...],
                              state: str = "finished") -> UUID:
    """A recording as the service leaves it, with a file in the spool."""
    recording_id = uuid4()
    spool = runtime.recordings.recordings_dir
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"callrec-{recording_id}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(1600))
    async with runtime.db.connection() as conn:
        await store.insert_recording(
            conn, id=recording_id, name=f"callrec-{recording_id}", call_id=f"vis-{recording_id}",
            queue=queues[0] if queues else None, agent_id=agents[0] if agents else None, agents=agents,
            queues=queues, caller_number="5550000", started_by="policy", format="wav",
            started_at=datetime.now(UTC))
        if state == "finished":
            await store.finish(conn, recording_id=recording_id, state="finished", ended_at=datetime.now(UTC),
                               facts=file_facts(path), error=None)
    return recording_id


async def test_each_key_finds_only_the_recordings_it_may_see(client: httpx.AsyncClient, admin_key: str,
                                                             keys: dict[Role, str], runtime: Runtime):
    for agent in ("vis-ann", "vis-bob"):
        await _made(client, admin_key, "/v1/agents", {"id": agent, "name": agent, "device": f"PJSIP/{agent}"})
    for queue in ("vis-sales", "vis-support"):
        await _made(client, admin_key, "/v1/queues", {"name": queue, "strategy": "linear"})
    ann = await _key(client, admin_key, "vis ann", "agent", agent_id="vis-ann")
    bob = await _key(client, admin_key, "vis bob", "agent", agent_id="vis-bob")
    sales = await _key(client, admin_key, "vis sales lead", "supervisor", queues=["vis-sales"])
    floor = await _key(client, admin_key, "vis floor", "supervisor")
    unlinked, integration = bearer(keys[Role.AGENT]), bearer(keys[Role.INTEGRATION])
    ann_sales = await _finished_recording(runtime, ("vis-ann",), ("vis-sales",))
    bob_support = await _finished_recording(runtime, ("vis-bob",), ("vis-support",))
    # Transferred from sales (Ann) to support (Bob): both agents and both queues' supervisors.
    both = await _finished_recording(runtime, ("vis-ann", "vis-bob"), ("vis-sales", "vis-support"))
    ours = {ann_sales, bob_support, both}
    sees = {
        "admin": (bearer(admin_key), ours), "integration": (integration, ours), "floor": (floor, ours),
        "sales": (sales, {ann_sales, both}), "ann": (ann, {ann_sales, both}),
        "bob": (bob, {bob_support, both}),
        "unlinked agent": (unlinked, set()),
    }
    for who, (headers, visible) in sees.items():
        listed = await client.get("/v1/recordings", headers=headers, params={"limit": 1000})
        assert listed.status_code == 200, (who, listed.text)
        assert {UUID(r["id"]) for r in listed.json()} & ours == visible, who
        for recording_id in ours:
            one = await client.get(f"/v1/recordings/{recording_id}", headers=headers)
            assert one.status_code == (200 if recording_id in visible else 404), (who, recording_id)
    # Filters narrow what a key sees, never widen it.
    by_bob = await client.get("/v1/recordings", headers=ann, params={"agent_id": "vis-bob", "limit": 1000})
    assert {UUID(r["id"]) for r in by_bob.json()} & ours == {both}
    by_queue = await client.get("/v1/recordings", headers=bearer(admin_key), params={"queue": "vis-support"})
    assert {UUID(r["id"]) for r in by_queue.json()} & ours == {bob_support, both}

    # Audio: an agent its own (others are not found); integrations never listen.
    assert (await client.get(f"/v1/recordings/{ann_sales}/audio", headers=ann)).status_code == 200
    assert (await client.get(f"/v1/recordings/{bob_support}/audio", headers=ann)).status_code == 404
    assert (await client.get(f"/v1/recordings/{bob_support}/audio", headers=unlinked)).status_code == 404
    assert (await client.get(f"/v1/recordings/{ann_sales}/audio", headers=integration)).status_code == 403
    assert (await client.get(f"/v1/recordings/{ann_sales}/audio", headers=sales,
                             params={"channels": "dual"})).status_code == 404  # no stereo file made

    # Deleting: a supervisor of sales cannot delete a support recording, agents cannot delete.
    assert (await client.delete(f"/v1/recordings/{bob_support}", headers=sales)).status_code == 404
    assert (await client.delete(f"/v1/recordings/{ann_sales}", headers=ann)).status_code == 403
    assert (await client.delete(f"/v1/recordings/{ann_sales}", headers=sales)).status_code == 204
    assert not (runtime.recordings.recordings_dir / f"callrec-{ann_sales}.wav").exists()
    entries = await audit_of(runtime, path_prefix=f"/v1/recordings/{ann_sales}")
    [deletion] = [entry for entry in entries if entry.action == "recording_deleted"]
    assert (deletion.key_name, deletion.role) == ("vis sales lead", "supervisor")
    assert deletion.detail["reason"] == "api" and deletion.detail["file_removed"] is True
    refusals = await audit_of(runtime, method="DELETE", path_prefix=f"/v1/recordings/{bob_support}")
    assert [(entry.key_name, entry.status) for entry in refusals] == [("vis sales lead", 404)]
    for recording_id in (bob_support, both):
        await runtime.recordings.delete(recording_id, reason="test")


async def test_a_recording_going_on_cannot_be_deleted(client: httpx.AsyncClient, admin_key: str,
                                                      runtime: Runtime):
    live = await _finished_recording(runtime, (), (), state="recording")
    refused = await client.delete(f"/v1/recordings/{live}", headers=bearer(admin_key))
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"/v1/recordings/{live}/audio", headers=bearer(admin_key))).status_code == 409
    async with runtime.db.connection() as conn:
        await store.finish(conn, recording_id=live, state="failed", ended_at=datetime.now(UTC), facts=None,
                           error="test over")
    gone = await client.get(f"/v1/recordings/{live}/audio", headers=bearer(admin_key))
    assert gone.status_code == 410 and "test over" in gone.json()["detail"]
    assert (await client.delete(f"/v1/recordings/{live}", headers=bearer(admin_key))).status_code == 204


async def test_dual_channel_goes_with_policies_and_starts(client: httpx.AsyncClient, admin_key: str):
    auth = bearer(admin_key)
    put = await client.put("/v1/recording-policies/queue/dual-sales", headers=auth,
                           json={"policy": "always", "dual_channel": True})
    assert put.status_code == 200 and put.json()["dual_channel"] is True, put.text
    policies = (await client.get("/v1/recording-policies", headers=auth)).json()
    listed = {(p["scope"], p["name"]): p for p in policies}
    assert listed[("queue", "dual-sales")]["dual_channel"] is True
    plain = await client.put("/v1/recording-policies/queue/dual-sales", headers=auth,
                             json={"policy": "always"})
    assert plain.json()["dual_channel"] is False
    assert (await client.delete("/v1/recording-policies/queue/dual-sales", headers=auth)).status_code == 204
    for body in ({"action": "pause", "dual_channel": True}, {"action": "start", "dual_channel": "sometimes"}):
        response = await client.post("/v1/calls/abc/recording", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
    start = await client.post("/v1/calls/abc/recording", json={"action": "start", "dual_channel": True},
                              headers=auth)
    assert start.status_code == 404, start.text
