"""Queues through the API and QueueService: CRUD with members, validation, what the ACD loads."""

from __future__ import annotations

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.agents import QueueConfig, QueueRule, Strategy
from controller.services.queues import QueueService, QueueSpec
from tests.api.conftest import bearer
from tests.api.test_acd_agents import make_agent
from tests.api.test_inbound_flows import unique


@pytest.fixture
async def two_agents(client: httpx.AsyncClient, admin_key: str) -> tuple[str, str]:
    return (await make_agent(client, admin_key, device="PJSIP/2001"),
            await make_agent(client, admin_key, device="PJSIP/2002", skills={"french": 5}))


async def test_crud_round_trip(client: httpx.AsyncClient, admin_key: str, runtime: Runtime,
                               two_agents: tuple[str, str]) -> None:
    a, b = two_agents
    name = unique("support")
    body = {"name": name, "strategy": "linear", "ring_timeout_s": 15, "wrap_up_s": 10,
            "max_wait_s": 300, "max_penalty": 0,
            "members": [{"agent_id": b, "penalty": 1}, {"agent_id": a}],
            "rules": [{"after_wait_s": 60, "max_penalty": 1}, {"after_wait_s": 30, "min_skill_level": 2}]}
    created = await client.post("/v1/queues", headers=bearer(admin_key), json=body)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["members"] == [{"agent_id": b, "penalty": 1}, {"agent_id": a, "penalty": 0}]
    assert out["strategy"] == "linear" and out["max_wait_s"] == 300 and out["max_length"] is None
    assert out["max_misses_before_pause"] == 3 and out["moh_class"] == "default"
    assert out["rules"][0] == {"after_wait_s": 60, "max_penalty": 1, "min_skill_level": None}

    assert (await client.post("/v1/queues", headers=bearer(admin_key), json=body)).status_code == 409

    config = runtime.queues.to_domain(await runtime.queues.get(name))
    assert isinstance(config, QueueConfig)
    assert config.strategy is Strategy.LINEAR and config.members == ((b, 1), (a, 0))
    assert config.rules == (QueueRule(30, min_skill_level=2), QueueRule(60, max_penalty=1))
    assert config.limits(45, {"french": 5}) == (0, {"french": 2})

    replaced = await client.put(f"/v1/queues/{name}", headers=bearer(admin_key),
                                json={"strategy": "ring_all", "members": [{"agent_id": a, "penalty": 2}]})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["members"] == [{"agent_id": a, "penalty": 2}]
    assert replaced.json()["rules"] == [] and replaced.json()["max_wait_s"] is None

    got = await client.get(f"/v1/queues/{name}", headers=bearer(admin_key))
    assert got.json()["strategy"] == "ring_all"
    assert name in [q["name"] for q in (await client.get("/v1/queues", headers=bearer(admin_key))).json()]

    # A member cannot be deleted; an agent no longer in any queue can.
    refused = await client.delete(f"/v1/agents/{a}", headers=bearer(admin_key))
    assert refused.status_code == 409, refused.text
    assert name in refused.json()["detail"]
    assert (await client.delete(f"/v1/agents/{b}", headers=bearer(admin_key))).status_code == 204

    assert (await client.delete(f"/v1/queues/{name}", headers=bearer(admin_key))).status_code == 204
    assert (await client.get(f"/v1/queues/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.delete(f"/v1/queues/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.put(f"/v1/queues/{name}", headers=bearer(admin_key),
                             json={})).status_code == 404
    assert (await client.delete(f"/v1/agents/{a}", headers=bearer(admin_key))).status_code == 204


async def test_members_must_be_live_agents(client: httpx.AsyncClient, admin_key: str,
                                           two_agents: tuple[str, str]) -> None:
    a, b = two_agents
    ghost = unique("ghost")
    response = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": unique("q"), "members": [{"agent_id": a}, {"agent_id": ghost}]})
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/invalid-queue")
    assert response.json()["detail"].startswith("members[1].agent_id")
    assert ghost in response.json()["detail"]

    assert (await client.delete(f"/v1/agents/{b}", headers=bearer(admin_key))).status_code == 204
    deleted = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": unique("q"), "members": [{"agent_id": b}]})
    assert deleted.status_code == 422
    assert "members[0].agent_id" in deleted.json()["detail"]

    twice = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": unique("q"), "members": [{"agent_id": a}, {"agent_id": a, "penalty": 1}]})
    assert twice.status_code == 422
    assert twice.json()["detail"].startswith("members[1].agent_id")


INVALID = {
    "unknown strategy": ({"strategy": "loudest"}, "strategy"),
    "ring timeout zero": ({"ring_timeout_s": 0}, "ring_timeout_s"),
    "negative wrap-up": ({"wrap_up_s": -1}, "wrap_up_s"),
    "negative penalty": ({"members": [{"agent_id": "x", "penalty": -1}]}, "penalty"),
    "rule without after_wait_s": ({"rules": [{"max_penalty": 1}]}, "after_wait_s"),
    "rule skill level 11": ({"rules": [{"after_wait_s": 5, "min_skill_level": 11}]}, "min_skill_level"),
    "rule with an unknown field": ({"rules": [{"after_wait_s": 5, "louder": True}]}, "louder"),
    "bad moh class": ({"moh_class": "a b"}, "moh_class"),
    "bad member id": ({"members": [{"agent_id": "Not An Id"}]}, "agent_id"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_invalid_queues_are_422(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    fields, field = INVALID[case]
    response = await client.post("/v1/queues", headers=bearer(admin_key),
                                 json={"name": unique("bad"), **fields})
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/validation-error")
    assert field in response.json()["detail"]


SERVICE_INVALID = {
    "unknown strategy": (QueueSpec(strategy="loudest"), "strategy"),
    "ring timeout zero": (QueueSpec(ring_timeout_s=0), "ring_timeout_s"),
    "negative penalty": (QueueSpec(members=(("x", -1),)), "members[0].penalty"),
    "rule skill level 11": (QueueSpec(rules=({"after_wait_s": 5, "min_skill_level": 11},)),
                            "rules[0].min_skill_level"),
    "rule with an unknown field": (QueueSpec(rules=({"after_wait_s": 5, "x": 1},)), "rules[0]"),
    "member that is no agent": (QueueSpec(members=(("nobody-at-all", 0),)), "members[0].agent_id"),
}


@pytest.mark.parametrize("case", list(SERVICE_INVALID))
async def test_the_service_checks_too(runtime: Runtime, case: str) -> None:
    spec, field = SERVICE_INVALID[case]
    with pytest.raises(Exception) as raised:
        await runtime.queues.create(unique("svc"), spec)
    assert getattr(raised.value, "code", None) == "invalid-queue"
    assert str(raised.value).startswith(field)


async def test_all_configs_is_what_the_acd_loads(runtime: Runtime, client: httpx.AsyncClient,
                                                 admin_key: str, two_agents: tuple[str, str]) -> None:
    a, b = two_agents
    name = unique("sales")
    made = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": name, "strategy": "skills_based", "members": [{"agent_id": a}, {"agent_id": b}]})
    assert made.status_code == 201
    agents, queues = await runtime.queues.all_configs()
    by_id = {agent.id: agent for agent in agents}
    assert by_id[b].skills == {"french": 5} and by_id[a].device == "PJSIP/2001"
    queue = next(q for q in queues if q.name == name)
    assert queue.strategy is Strategy.SKILLS_BASED and queue.members == ((a, 0), (b, 0))


async def test_on_change_follows_every_write(runtime: Runtime, two_agents: tuple[str, str]) -> None:
    calls: list[str] = []

    async def changed() -> None:
        calls.append("changed")

    service = QueueService(runtime.db, on_change=changed)
    name = unique("cb")
    await service.create(name, QueueSpec(members=((two_agents[0], 0),)))
    await service.update(name, QueueSpec(strategy="random"))
    with pytest.raises(Exception, match="exists"):
        await service.create(name, QueueSpec())
    with pytest.raises(Exception, match="agent_id"):
        await service.update(name, QueueSpec(members=(("nobody-at-all", 0),)))
    await service.delete(name)
    assert calls == ["changed"] * 3
