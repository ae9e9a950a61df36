"""Queues through the API and QueueService: CRUD with members, validation, what the ACD loads."""

from __future__ import annotations

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.agents import (
    DestinationKind,
    ExitAction,
    QueueConfig,
    QueueDestination,
    QueueMember,
    QueueRule,
    Strategy,
)
from controller.services.queues import QueueService, QueueSpec
from tests.api.conftest import bearer
from tests.api.test_acd_agents import make_agent
from tests.api.test_inbound_flows import simple_flow, unique


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


# --- what happens to a waiting caller: overflow, empty queues, announcements, exit key --------


async def test_caller_settings_round_trip_and_reach_the_acd(client: httpx.AsyncClient, admin_key: str,
                                                            runtime: Runtime) -> None:
    spill, main = unique("spill"), unique("main")
    flow_name = unique("after-hours")
    made_flow = await client.post("/v1/flows", headers=bearer(admin_key),
                                  json={"name": flow_name, "document": simple_flow()})
    assert made_flow.status_code == 201, made_flow.text
    spilled = await client.post("/v1/queues", headers=bearer(admin_key), json={"name": spill})
    assert spilled.status_code == 201, spilled.text
    body = {"name": main, "max_wait_s": 60, "overflow": {"action": "queue", "queue": spill},
            "join_when_empty": True, "leave_when_empty": False, "announce_every_s": 30,
            "exit_key": "9", "exit_action": "callback"}
    created = await client.post("/v1/queues", headers=bearer(admin_key), json=body)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["overflow"] == {"action": "queue", "queue": spill}
    assert (out["join_when_empty"], out["leave_when_empty"], out["announce_every_s"]) == (True, False, 30)
    assert (out["exit_key"], out["exit_action"], out["exit_mailbox"]) == ("9", "callback", None)
    config = runtime.queues.to_domain(await runtime.queues.get(main))
    assert config.overflow == QueueDestination(DestinationKind.QUEUE, spill)
    assert config.exit_action is ExitAction.CALLBACK and config.announce_every_s == 30

    # The queue it overflows to cannot go while it does.
    refused = await client.delete(f"/v1/queues/{spill}", headers=bearer(admin_key))
    assert refused.status_code == 409 and main in refused.json()["detail"]

    for overflow, expected in (({"action": "flow", "flow": flow_name}, DestinationKind.FLOW),
                               ({"action": "voicemail", "mailbox": "sales"}, DestinationKind.VOICEMAIL),
                               ({"action": "hangup"}, DestinationKind.HANGUP)):
        replaced = await client.put(f"/v1/queues/{main}", headers=bearer(admin_key), json={
            "overflow": overflow, "exit_key": "#", "exit_action": "voicemail", "exit_mailbox": "sales"})
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["overflow"] == overflow
        assert runtime.queues.to_domain(await runtime.queues.get(main)).overflow.kind is expected
        if expected is DestinationKind.FLOW:  # the flow cannot go while the queue overflows to it
            blocked = await client.delete(f"/v1/flows/{flow_name}", headers=bearer(admin_key))
            assert blocked.status_code == 409 and main in blocked.json()["detail"]
    defaults = (await client.put(f"/v1/queues/{main}", headers=bearer(admin_key), json={})).json()
    assert defaults["overflow"] == {"action": "hangup"} and defaults["exit_key"] is None
    assert (defaults["join_when_empty"], defaults["leave_when_empty"], defaults["announce_every_s"]) == (
        False, True, 0)
    assert (await client.delete(f"/v1/queues/{spill}", headers=bearer(admin_key))).status_code == 204


async def test_overflow_must_name_an_existing_queue_or_flow(client: httpx.AsyncClient,
                                                            admin_key: str) -> None:
    name = unique("ovf")
    for overflow, field in (({"action": "queue", "queue": unique("nowhere")}, "overflow.queue"),
                            ({"action": "flow", "flow": unique("no-flow")}, "overflow.flow"),
                            ({"action": "queue", "queue": name}, "overflow.queue")):
        response = await client.post("/v1/queues", headers=bearer(admin_key),
                                     json={"name": name, "overflow": overflow})
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/invalid-queue")
        assert response.json()["detail"].startswith(field)


CALLER_INVALID = {
    "unknown overflow action": ({"overflow": {"action": "dance"}}, "overflow"),
    "overflow queue without a name": ({"overflow": {"action": "queue"}}, "queue"),
    "overflow with a stray field": ({"overflow": {"action": "hangup", "queue": "x"}}, "queue"),
    "overflow mailbox with a comma": ({"overflow": {"action": "voicemail", "mailbox": "a,b"}}, "mailbox"),
    "two exit keys": ({"exit_key": "12", "exit_action": "callback"}, "exit_key"),
    "unknown exit action": ({"exit_key": "1", "exit_action": "dance"}, "exit_action"),
    "negative announcement period": ({"announce_every_s": -5}, "announce_every_s"),
    "join_when_empty as a string": ({"join_when_empty": "yes"}, "join_when_empty"),
}


@pytest.mark.parametrize("case", list(CALLER_INVALID))
async def test_invalid_caller_settings_are_422(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    fields, field = CALLER_INVALID[case]
    response = await client.post("/v1/queues", headers=bearer(admin_key),
                                 json={"name": unique("bad"), **fields})
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


SERVICE_CALLER_INVALID = {
    "exit key without an action": (QueueSpec(exit_key="9"), "exit_key and exit_action"),
    "exit action without a key": (QueueSpec(exit_action="callback"), "exit_key and exit_action"),
    "voicemail without a mailbox": (QueueSpec(exit_key="9", exit_action="voicemail"), "exit_mailbox"),
    "mailbox without voicemail": (QueueSpec(exit_key="9", exit_action="callback", exit_mailbox="m"),
                                  "exit_mailbox"),
    "exit key that is no DTMF key": (QueueSpec(exit_key="x", exit_action="callback"), "exit_key"),
    "overflow with two targets": (QueueSpec(overflow={"action": "flow", "flow": "a", "queue": "b"}),
                                  "overflow"),
    "announce too often": (QueueSpec(announce_every_s=-1), "announce_every_s"),
}


@pytest.mark.parametrize("case", list(SERVICE_CALLER_INVALID))
async def test_the_service_checks_caller_settings(runtime: Runtime, case: str) -> None:
    spec, field = SERVICE_CALLER_INVALID[case]
    with pytest.raises(Exception) as raised:
        await runtime.queues.create(unique("svc"), spec)
    assert getattr(raised.value, "code", None) == "invalid-queue"
    assert str(raised.value).startswith(field)


# --- groups as members ---------------------------------------------------------------------


async def test_groups_as_members_resolve_into_agents_and_follow_agent_changes(
        client: httpx.AsyncClient, admin_key: str, runtime: Runtime) -> None:
    group, other, nobody = unique("Sales"), unique("night"), unique("empty")
    ann = await make_agent(client, admin_key, groups=[group])
    bob = await make_agent(client, admin_key, groups=[group, other])
    cid = await make_agent(client, admin_key, groups=[])
    name = unique("grouped")
    created = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": name, "strategy": "linear",
        "members": [{"agent_id": ann, "penalty": 3}, {"group": group, "penalty": 1},
                    {"group": other}, {"group": nobody, "penalty": 2}]})
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["members"] == [{"agent_id": ann, "penalty": 3}, {"group": group, "penalty": 1},
                              {"group": other, "penalty": 0}, {"group": nobody, "penalty": 2}]
    # ann is listed by herself (her entry wins over her group's better penalty); bob gets the
    # lowest penalty of his two groups, in that group's place; nobody is in the last group.
    assert out["resolved_members"] == [{"agent_id": ann, "penalty": 3, "group": None},
                                       {"agent_id": bob, "penalty": 0, "group": other}]
    assert out["empty_groups"] == [nobody]
    assert runtime.acd.state.queues[name].members == ((ann, 3), (bob, 0))

    # cid joins the group: a member at once, in the group's place, the queue untouched.
    joined = await client.put(f"/v1/agents/{cid}", headers=bearer(admin_key), json={
        "name": "Cid", "device": "PJSIP/1003", "groups": [group]})
    assert joined.status_code == 200, joined.text
    assert runtime.acd.state.queues[name].members == ((ann, 3), (cid, 1), (bob, 0))
    got = (await client.get(f"/v1/queues/{name}", headers=bearer(admin_key))).json()
    assert got["resolved_members"][1] == {"agent_id": cid, "penalty": 1, "group": group}
    listed = next(q for q in (await client.get("/v1/queues", headers=bearer(admin_key))).json()
                  if q["name"] == name)
    assert listed["resolved_members"] == got["resolved_members"]

    # An agent who is a member only through a group may be deleted: it leaves the queue.
    assert (await client.delete(f"/v1/agents/{bob}", headers=bearer(admin_key))).status_code == 204
    assert runtime.acd.state.queues[name].members == ((ann, 3), (cid, 1))
    refused = await client.delete(f"/v1/agents/{ann}", headers=bearer(admin_key))
    assert refused.status_code == 409 and name in refused.json()["detail"]

    # The group's agents are offered calls like any member (the ACD only ever sees agents).
    assert (await client.post(f"/v1/agents/{cid}/login", headers=bearer(admin_key))).status_code == 200
    assert runtime.acd.agent(cid).state.value == "available"
    assert (await client.post(f"/v1/agents/{cid}/logout", headers=bearer(admin_key))).status_code == 200
    assert (await client.delete(f"/v1/queues/{name}", headers=bearer(admin_key))).status_code == 204


GROUP_INVALID = {
    "bad group name": ({"members": [{"group": "a b"}]}, "group"),
    "both an agent and a group": ({"members": [{"group": "sales", "agent_id": "x"}]}, "agent_id"),
    "neither": ({"members": [{"penalty": 1}]}, "agent_id"),
    "negative group penalty": ({"members": [{"group": "sales", "penalty": -1}]}, "penalty"),
}


@pytest.mark.parametrize("case", list(GROUP_INVALID))
async def test_invalid_group_members_are_422(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    fields, field = GROUP_INVALID[case]
    response = await client.post("/v1/queues", headers=bearer(admin_key),
                                 json={"name": unique("bad"), **fields})
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/validation-error")
    assert field in response.json()["detail"]


async def test_a_group_listed_twice_is_refused(client: httpx.AsyncClient, admin_key: str,
                                              runtime: Runtime) -> None:
    twice = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": unique("q"), "members": [{"group": "sales"}, {"group": "sales", "penalty": 1}]})
    assert twice.status_code == 422
    assert twice.json()["detail"].startswith("members[1].group: group sales is listed twice")
    with pytest.raises(Exception) as raised:
        await runtime.queues.create(unique("svc"), QueueSpec(members=(QueueMember.group("a b"),)))
    assert str(raised.value).startswith("members[0].group")
    # A group nobody is in yet is accepted, and reported.
    name = unique("q")
    same = await client.post("/v1/queues", headers=bearer(admin_key), json={
        "name": name, "members": [{"group": "shared"}]})
    assert same.status_code == 201 and same.json()["empty_groups"] == ["shared"]
    assert (await client.delete(f"/v1/queues/{name}", headers=bearer(admin_key))).status_code == 204
