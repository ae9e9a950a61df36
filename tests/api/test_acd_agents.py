"""Agents through the API and AgentService: CRUD, validation, soft delete, the state log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.domain.agents import Agent, AgentState
from controller.services.agents import AgentService, AgentSpec
from tests.api.conftest import bearer
from tests.api.test_inbound_flows import unique

ALICE = {"name": "Alice Martin", "device": "PJSIP/1001", "skills": {"french": 8, "billing": 3},
         "groups": ["tier-1"]}


async def make_agent(client: httpx.AsyncClient, key: str, **fields: object) -> str:
    agent_id = unique("agent")
    made = await client.post("/v1/agents", headers=bearer(key), json={"id": agent_id, **ALICE, **fields})
    assert made.status_code == 201, made.text
    return agent_id


async def test_crud_round_trip(client: httpx.AsyncClient, admin_key: str, runtime: Runtime) -> None:
    agent_id = unique("alice")
    created = await client.post("/v1/agents", headers=bearer(admin_key), json={"id": agent_id, **ALICE})
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["id"] == agent_id and out["device"] == "PJSIP/1001"
    assert out["skills"] == {"french": 8, "billing": 3} and out["groups"] == ["tier-1"]

    clash = await client.post("/v1/agents", headers=bearer(admin_key), json={"id": agent_id, **ALICE})
    assert clash.status_code == 409
    assert clash.json()["type"].endswith("/conflict")

    replaced = await client.put(f"/v1/agents/{agent_id}", headers=bearer(admin_key),
                                json={"name": "Alice M.", "device": "Local/1001@agents/n"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["skills"] == {} and replaced.json()["groups"] == []
    assert replaced.json()["device"] == "Local/1001@agents/n"

    got = await client.get(f"/v1/agents/{agent_id}", headers=bearer(admin_key))
    assert got.json()["name"] == "Alice M."
    listed = await client.get("/v1/agents", headers=bearer(admin_key))
    assert agent_id in [a["id"] for a in listed.json()]

    domain = runtime.agents.to_domain(await runtime.agents.get(agent_id))
    assert isinstance(domain, Agent)
    assert domain.device == "Local/1001@agents/n" and domain.state is AgentState.LOGGED_OUT

    assert (await client.delete(f"/v1/agents/{agent_id}", headers=bearer(admin_key))).status_code == 204
    assert (await client.get(f"/v1/agents/{agent_id}", headers=bearer(admin_key))).status_code == 404
    listed = await client.get("/v1/agents", headers=bearer(admin_key))
    assert agent_id not in [a["id"] for a in listed.json()]
    assert (await client.delete(f"/v1/agents/{agent_id}", headers=bearer(admin_key))).status_code == 404
    assert (await client.put(f"/v1/agents/{agent_id}", headers=bearer(admin_key),
                             json=ALICE)).status_code == 404

    # A deleted id can be created again: the same agent, revived.
    revived = await client.post("/v1/agents", headers=bearer(admin_key),
                                json={"id": agent_id, **ALICE, "name": "Alice again"})
    assert revived.status_code == 201, revived.text
    assert revived.json()["name"] == "Alice again" and revived.json()["skills"] == ALICE["skills"]


async def test_agent_keys_read_agents(client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    agent_id = await make_agent(client, keys[Role.ADMIN])
    as_agent = bearer(keys[Role.AGENT])
    assert (await client.get("/v1/agents", headers=as_agent)).status_code == 200
    assert (await client.get(f"/v1/agents/{agent_id}", headers=as_agent)).status_code == 200
    assert (await client.put(f"/v1/agents/{agent_id}", headers=as_agent, json=ALICE)).status_code == 403
    assert (await client.get(f"/v1/agents/{agent_id}/states", headers=as_agent)).status_code == 403


INVALID = {
    "comma in the device": ({"device": "PJSIP/1001,20"}, "device"),
    "CR/LF in the device": ({"device": "PJSIP/1001\r\nAction: Originate"}, "device"),
    "space in the device": ({"device": "PJSIP/10 01"}, "device"),
    "two devices": ({"device": "PJSIP/1001&PJSIP/1002"}, "device"),
    "no technology": ({"device": "1001"}, "device"),
    "skill level 11": ({"skills": {"french": 11}}, "french"),
    "skill level 0": ({"skills": {"french": 0}}, "french"),
    "skill level not a number": ({"skills": {"french": "high"}}, "french"),
    "bad skill name": ({"skills": {"a b": 3}}, "skills"),
    "control character in the name": ({"name": "Al\nice"}, "name"),
    "empty name": ({"name": ""}, "name"),
    "unknown field": ({"extension": "1001"}, "extension"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_invalid_agents_are_422(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    fields, field = INVALID[case]
    response = await client.post("/v1/agents", headers=bearer(admin_key),
                                 json={"id": unique("bad"), **ALICE, **fields})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    assert field in problem["detail"]


@pytest.mark.parametrize("agent_id", ["Alice", "-alice", "a" * 65, "al.ice", "al ice"])
async def test_invalid_agent_ids_are_422(client: httpx.AsyncClient, admin_key: str,
                                         agent_id: str) -> None:
    response = await client.post("/v1/agents", headers=bearer(admin_key), json={"id": agent_id, **ALICE})
    assert response.status_code == 422, response.text
    assert "id" in response.json()["detail"]


SERVICE_INVALID = {
    "comma in the device": (AgentSpec("A", "PJSIP/1,2"), "device"),
    "CR/LF in the device": (AgentSpec("A", "PJSIP/1\r\n2"), "device"),
    "unicode space in the device": (AgentSpec("A", "PJSIP/1\u20282"), "device"),
    "skill level 11": (AgentSpec("A", "PJSIP/1", {"french": 11}), "skills.french"),
    "skill level true": (AgentSpec("A", "PJSIP/1", {"french": True}), "skills.french"),  # type: ignore[dict-item]
    "group twice": (AgentSpec("A", "PJSIP/1", groups=("g", "g")), "groups"),
    "lone surrogate in the name": (AgentSpec("\ud800", "PJSIP/1"), "name"),
}


@pytest.mark.parametrize("case", list(SERVICE_INVALID))
async def test_the_service_checks_too(runtime: Runtime, case: str) -> None:
    """Callers other than the API (the CLI, imports) get the same checks, with the field named."""
    spec, field = SERVICE_INVALID[case]
    with pytest.raises(Exception) as raised:
        await runtime.agents.create(unique("svc"), spec)
    assert getattr(raised.value, "code", None) == "invalid-agent"
    assert str(raised.value).startswith(field)


async def test_on_change_follows_every_write(runtime: Runtime) -> None:
    calls: list[str] = []

    async def changed() -> None:
        calls.append("changed")

    service = AgentService(runtime.db, on_change=changed)
    agent_id = unique("cb")
    await service.create(agent_id, AgentSpec("C", "PJSIP/cb"))
    await service.update(agent_id, AgentSpec("C2", "PJSIP/cb"))
    with pytest.raises(Exception, match="exists"):
        await service.create(agent_id, AgentSpec("C", "PJSIP/cb"))
    await service.delete(agent_id)
    assert calls == ["changed"] * 3


async def test_state_log(client: httpx.AsyncClient, admin_key: str, runtime: Runtime,
                         db_conn: psycopg.AsyncConnection) -> None:
    agent_id = await make_agent(client, admin_key)
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    await runtime.agents.log_state(agent_id, t0, AgentState.AVAILABLE)
    await runtime.agents.log_state(agent_id, t0 + timedelta(minutes=1), AgentState.RESERVED,
                                   queue="support", call_id="call-1")
    await runtime.agents.log_state(agent_id, t0 + timedelta(minutes=2), AgentState.PAUSED, "lunch")

    everything = await client.get(f"/v1/agents/{agent_id}/states", headers=bearer(admin_key))
    assert everything.status_code == 200, everything.text
    rows = everything.json()
    assert [r["state"] for r in rows] == ["available", "reserved", "paused"]
    assert rows[1]["queue"] == "support" and rows[1]["call_id"] == "call-1"
    assert rows[2]["reason"] == "lunch"

    window = await client.get(f"/v1/agents/{agent_id}/states", headers=bearer(admin_key), params={
        "since": "2026-11-25T09:01:00Z", "until": "2026-11-25T10:02:00+01:00"})
    assert [r["state"] for r in window.json()] == ["reserved"]

    bad = await client.get(f"/v1/agents/{agent_id}/states", headers=bearer(admin_key),
                           params={"since": "2026-11-25T09:01:00"})
    assert bad.status_code == 422 and "since" in bad.json()["detail"]

    # Append-only: the database refuses to change history.
    with pytest.raises(psycopg.errors.RaiseException):
        await db_conn.execute("UPDATE agent_state_log SET state = 'available' WHERE agent_id = %s",
                              (agent_id,))

    # A deleted agent's log stays readable; an agent that never was is 404.
    assert (await client.delete(f"/v1/agents/{agent_id}", headers=bearer(admin_key))).status_code == 204
    after = await client.get(f"/v1/agents/{agent_id}/states", headers=bearer(admin_key))
    assert len(after.json()) == 3
    missing = await client.get(f"/v1/agents/{unique('nobody')}/states", headers=bearer(admin_key))
    assert missing.status_code == 404


async def test_an_agent_key_acts_for_its_own_agent_only(client: httpx.AsyncClient, admin_key: str,
                                                        runtime: Runtime) -> None:
    mine, other = unique("self"), unique("other")
    for agent_id in (mine, other):
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id,
                                                        "device": "Local/1@ccc-test-agent"},
                                    headers=bearer(admin_key))
        assert created.status_code == 201, created.text
    _, key = await runtime.api_keys.create("agent self", Role.AGENT, None, agent_id=mine)
    own = bearer(key)

    login = await client.post(f"/v1/agents/{mine}/login", headers=own)
    assert login.status_code == 200 and login.json()["state"] == "available", login.text
    nap = await client.post(f"/v1/agents/{mine}/pause", json={"reason": "nap"}, headers=own)
    assert nap.status_code == 422 and "lunch" in nap.json()["detail"]  # not a configured reason code
    paused = await client.post(f"/v1/agents/{mine}/pause", json={"reason": "lunch"}, headers=own)
    assert paused.json()["state"] == "paused" and paused.json()["paused_reason"] == "lunch"
    # Ending a wrap-up the agent is not in changes nothing.
    assert (await client.post(f"/v1/agents/{mine}/end-wrap-up", headers=own)).json()["state"] == "paused"
    assert (await client.post(f"/v1/agents/{mine}/logout", headers=own)).json()["state"] == "logged_out"

    for action in ("login", "logout", "unpause", "end-wrap-up"):
        refused = await client.post(f"/v1/agents/{other}/{action}", headers=own)
        assert refused.status_code == 403, refused.text
    refused = await client.post(f"/v1/agents/{other}/pause", json={"reason": "lunch"}, headers=own)
    assert refused.status_code == 403
    # A supervisor forces any agent's state.
    forced = await client.post(f"/v1/agents/{other}/login", headers=bearer(admin_key))
    assert forced.status_code == 200 and forced.json()["state"] == "available"
    status = (await client.get(f"/v1/agents/{other}/status", headers=own)).json()
    assert status["state"] == "available"
    await client.post(f"/v1/agents/{other}/logout", headers=bearer(admin_key))
