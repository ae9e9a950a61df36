"""Call control without a switch: agent-linked API keys, dispositions of ended calls (found in
Postgres) and who may record them, and click-to-dial refused before anything is dialed.
Dialing, transfers and conferences on the real Asterisk: tests/integration/test_call_control.py."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import httpx
import psycopg
from psycopg.types.json import Jsonb

from controller.domain.access import Role
from tests.api.conftest import bearer

PROBLEM_JSON = "application/problem+json"


async def _agent(client: httpx.AsyncClient, admin_key: str, agent_id: str) -> None:
    created = await client.post("/v1/agents", headers=bearer(admin_key), json={
        "id": agent_id, "name": agent_id, "device": f"PJSIP/{agent_id}"})
    assert created.status_code == 201, created.text


async def _agent_key(client: httpx.AsyncClient, admin_key: str, agent_id: str | None) -> str:
    body = {"name": f"agent {agent_id}", "role": "agent"}
    if agent_id is not None:
        body["agent_id"] = agent_id
    made = await client.post("/v1/api-keys", headers=bearer(admin_key), json=body)
    assert made.status_code == 201, made.text
    return made.json()["key"]


async def _ended_call(database: str, agent_id: str) -> str:
    call_id = f"ended-{uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO calls (id, direction, state, switch, started_at, ended_at, data)"
            " VALUES (%s, 'inbound', 'ended', 'asterisk', %s, %s, %s)",
            (call_id, datetime.now(UTC), datetime.now(UTC), Jsonb({"agent_id": agent_id})))
    return call_id


async def test_an_agent_key_is_linked_to_an_existing_agent_only(client, admin_key) -> None:
    await _agent(client, admin_key, "link-ok")
    key = await _agent_key(client, admin_key, "link-ok")
    me = (await client.get("/v1/me", headers=bearer(key))).json()
    assert (me["role"], me["agent_id"]) == ("agent", "link-ok")
    listed = (await client.get("/v1/api-keys", headers=bearer(admin_key))).json()
    assert any(k["agent_id"] == "link-ok" for k in listed)
    for body in ({"name": "x", "role": "supervisor", "agent_id": "link-ok"},
                 {"name": "x", "role": "agent", "agent_id": "link-nobody"},
                 {"name": "x", "role": "agent", "agent_id": "Bad Id"}):
        refused = await client.post("/v1/api-keys", headers=bearer(admin_key), json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == PROBLEM_JSON


async def test_a_disposition_of_an_ended_call_is_its_agents_or_an_overseers(
        client, admin_key, keys, migrated_database) -> None:
    await _agent(client, admin_key, "disp-own")
    await _agent(client, admin_key, "disp-other")
    own = await _agent_key(client, admin_key, "disp-own")
    other = await _agent_key(client, admin_key, "disp-other")
    unlinked = await _agent_key(client, admin_key, None)
    call_id = await _ended_call(migrated_database, "disp-own")

    for key in (other, unlinked):
        refused = await client.post(f"/v1/calls/{call_id}/disposition", headers=bearer(key),
                                    json={"code": "sale"})
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
    first = await client.post(f"/v1/calls/{call_id}/disposition", headers=bearer(own),
                              json={"code": "no-sale", "notes": "call back\nin May", "follow_up": True})
    assert first.status_code == 200, first.text
    assert first.json()["agent_id"] == "disp-own" and first.json()["follow_up"] is True
    # A supervisor corrects it: the new one replaces the first.
    second = await client.post(f"/v1/calls/{call_id}/disposition", headers=bearer(keys["supervisor"]),
                               json={"code": "sale"})
    assert second.status_code == 200, second.text
    detail = (await client.get(f"/v1/calls/{call_id}", headers=bearer(admin_key))).json()
    assert detail["disposition"]["code"] == "sale" and detail["disposition"]["notes"] == ""
    assert detail["disposition"]["created_at"] == first.json()["created_at"]

    missing = await client.post("/v1/calls/no-such-call/disposition", headers=bearer(own), json={"code": "x"})
    assert missing.status_code == 404
    bad = await client.post(f"/v1/calls/{call_id}/disposition", headers=bearer(own),
                            json={"code": "sale", "notes": "a\u0000b"})
    assert bad.status_code == 422


async def test_click_to_dial_is_refused_before_dialing(client, admin_key) -> None:
    await _agent(client, admin_key, "ctd-nodial")
    unlinked = await _agent_key(client, admin_key, None)
    refused = await client.post("/v1/calls", headers=bearer(unlinked), json={"to": {"number": "5550100"}})
    assert refused.status_code == 403, refused.text
    reserved = await client.post("/v1/calls", headers=bearer(admin_key), json={
        "agent_id": "ctd-nodial", "to": {"number": "5550100"}, "data": {"agent_id": "someone"}})
    assert reserved.status_code == 422, reserved.text
    # The switch is not started in these tests: 503, and nothing is dialed.
    down = await client.post("/v1/calls", headers=bearer(admin_key), json={
        "agent_id": "ctd-nodial", "to": {"number": "5550100"}, "reference": "crm-1"})
    assert down.status_code == 503, down.text
    assert down.headers["content-type"] == PROBLEM_JSON


async def _call_with_event(database: str, kind: str, agent_id: str) -> str:
    """An ended call whose data names no agent, with one event naming ``agent_id``."""
    call_id = f"ev-{uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO calls (id, direction, state, switch, started_at, ended_at, data)"
            " VALUES (%s, 'inbound', 'ended', 'asterisk', %s, %s, '{}')",
            (call_id, datetime.now(UTC), datetime.now(UTC)))
        await conn.execute("INSERT INTO call_events (call_id, at, kind, data) VALUES (%s, %s, %s, %s)",
                           (call_id, datetime.now(UTC), kind, Jsonb({"agent_id": agent_id})))
    return call_id


async def test_an_agent_key_reads_only_its_own_agents_calls(
        client, admin_key, keys, migrated_database) -> None:
    await _agent(client, admin_key, "read-ann")
    await _agent(client, admin_key, "read-bob")
    ann = bearer(await _agent_key(client, admin_key, "read-ann"))
    unlinked = bearer(await _agent_key(client, admin_key, None))
    connected = await _ended_call(migrated_database, "read-ann")
    offered = await _call_with_event(migrated_database, "AgentOffered", "read-ann")
    dialed = await _call_with_event(migrated_database, "ClickToDial", "read-ann")
    others = [await _ended_call(migrated_database, "read-bob"),
              await _call_with_event(migrated_database, "AgentOffered", "read-bob"),
              await _call_with_event(migrated_database, "CallHeld", "read-ann")]  # names, but not its call

    mine = {c["id"] for c in (await client.get("/v1/calls", headers=ann)).json()}
    assert mine == {connected, offered, dialed}
    assert (await client.get("/v1/calls", headers=unlinked)).json() == []
    supervisor, integration = bearer(keys[Role.SUPERVISOR]), bearer(keys[Role.INTEGRATION])
    everything = {c["id"] for c in (await client.get("/v1/calls", headers=supervisor)).json()}
    assert {connected, offered, dialed, *others} <= everything

    for call_id in (connected, offered, dialed):
        detail = await client.get(f"/v1/calls/{call_id}", headers=ann)
        assert detail.status_code == 200 and detail.json()["id"] == call_id
    for call_id in others:
        hidden = await client.get(f"/v1/calls/{call_id}", headers=ann)
        assert hidden.status_code == 404 and hidden.headers["content-type"] == PROBLEM_JSON
        assert (await client.get(f"/v1/calls/{call_id}", headers=unlinked)).status_code == 404
        assert (await client.get(f"/v1/calls/{call_id}", headers=integration)).status_code == 200
