"""Supervisors move waiting callers (POST /v1/calls/{id}/move) without a switch: the ACD runs
on the real Redis, a caller is queued into it directly. What the caller hears and the agent's
phone ringing: tests/integration/test_queue_moves.py."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.domain.agents import QueueEntry
from controller.engines import acd
from tests.api.conftest import bearer
from tests.api.test_call_control import _ended_call
from tests.api.test_inbound_flows import unique


async def _queue(client: httpx.AsyncClient, key: str, members: list[str], **fields: object) -> str:
    name = unique("mq")
    made = await client.post("/v1/queues", headers=bearer(key), json={
        "name": name, "members": [{"agent_id": a} for a in members], **fields})
    assert made.status_code == 201, made.text
    return name


async def _paused_agent(client: httpx.AsyncClient, key: str) -> str:
    agent_id = unique("ma")
    made = await client.post("/v1/agents", headers=bearer(key), json={
        "id": agent_id, "name": agent_id, "device": f"PJSIP/{agent_id}"})
    assert made.status_code == 201, made.text
    assert (await client.post(f"/v1/agents/{agent_id}/login", headers=bearer(key))).status_code == 200
    paused = await client.post(f"/v1/agents/{agent_id}/pause", headers=bearer(key), json={"reason": "lunch"})
    assert paused.status_code == 200, paused.text
    return agent_id


async def test_a_waiting_caller_moves_to_another_queue_and_to_an_agent(
        client: httpx.AsyncClient, keys: dict[Role, str], runtime: Runtime) -> None:
    key = keys[Role.SUPERVISOR]
    ann, bob = await _paused_agent(client, key), await _paused_agent(client, key)
    first = await _queue(client, key, [ann], join_when_empty=True, leave_when_empty=False)
    second = await _queue(client, key, [ann])
    call_id = f"waiting-{uuid4().hex[:12]}"
    runtime.acd.submit(acd.CallQueued(QueueEntry(call_id, first, datetime.now(UTC), priority=4)))
    await runtime.acd.settled()
    try:
        moved = await client.post(f"/v1/calls/{call_id}/move", headers=bearer(key), json={"queue": second})
        assert moved.status_code == 200, moved.text
        out = moved.json()
        assert (out["call_id"], out["queue"], out["target_agent"], out["position"], out["priority"]) == (
            call_id, second, None, 1, 4)
        assert out["waited_s"] < 5
        assert (await client.get(f"/v1/queues/{first}/calls", headers=bearer(key))).json() == []
        stats = (await client.get(f"/v1/queues/{first}/stats", headers=bearer(key))).json()
        assert stats["moved_out"] == 1

        # bob is no member of the queue: the caller waits for him while he is paused.
        targeted = await client.post(f"/v1/calls/{call_id}/move", headers=bearer(keys[Role.ADMIN]),
                                     json={"agent": bob})
        assert targeted.status_code == 200, targeted.text
        assert (targeted.json()["queue"], targeted.json()["target_agent"]) == (second, bob)
        [waiting] = (await client.get(f"/v1/queues/{second}/calls", headers=bearer(key))).json()
        assert (waiting["call_id"], waiting["target_agent"], waiting["ringing"]) == (call_id, bob, [])

        assert (await client.post(f"/v1/agents/{bob}/logout", headers=bearer(key))).status_code == 200
        refused = await client.post(f"/v1/calls/{call_id}/move", headers=bearer(key), json={"agent": bob})
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == f"agent {bob} is logged out"
        # The agent it waited for logged out: it went back to its queue's agents.
        assert runtime.acd.state.waiting[call_id].target_agent is None

        for body, status, words in (({"queue": unique("nowhere")}, 422, "no queue"),
                                    ({"agent": unique("nobody")}, 422, "no agent")):
            response = await client.post(f"/v1/calls/{call_id}/move", headers=bearer(key), json=body)
            assert response.status_code == status, response.text
            assert words in response.json()["detail"]
    finally:
        runtime.acd.submit(acd.CallAbandoned(call_id))
        await runtime.acd.settled()


async def test_a_queue_nobody_staffs_that_sheds_its_callers_is_refused(
        client: httpx.AsyncClient, admin_key: str, runtime: Runtime) -> None:
    ann = await _paused_agent(client, admin_key)
    first = await _queue(client, admin_key, [ann])
    empty = await _queue(client, admin_key, [])
    call_id = f"waiting-{uuid4().hex[:12]}"
    runtime.acd.submit(acd.CallQueued(QueueEntry(call_id, first, datetime.now(UTC))))
    await runtime.acd.settled()
    try:
        refused = await client.post(f"/v1/calls/{call_id}/move", headers=bearer(admin_key),
                                    json={"queue": empty})
        assert refused.status_code == 409, refused.text
        assert "no agent logged in" in refused.json()["detail"]
        assert runtime.acd.state.waiting[call_id].queue == first
    finally:
        runtime.acd.submit(acd.CallAbandoned(call_id))
        await runtime.acd.settled()


async def test_a_call_that_does_not_wait_is_409_and_an_unknown_one_404(
        client: httpx.AsyncClient, admin_key: str, migrated_database: str) -> None:
    ended = await _ended_call(migrated_database, "nobody")
    not_waiting = await client.post(f"/v1/calls/{ended}/move", headers=bearer(admin_key),
                                    json={"queue": "anything"})
    assert not_waiting.status_code == 409, not_waiting.text
    assert not_waiting.json()["detail"] == f"call {ended} is not waiting in a queue"
    unknown = await client.post(f"/v1/calls/{uuid4()}/move", headers=bearer(admin_key),
                                json={"queue": "anything"})
    assert unknown.status_code == 404, unknown.text


@pytest.mark.parametrize("body", [{}, {"queue": "a", "agent": "b"}, {"queue": None}, {"queue": "A B"},
                                  {"agent": "x", "priority": 3}])
async def test_a_move_names_exactly_one_queue_or_agent(client: httpx.AsyncClient, admin_key: str,
                                                       body: dict[str, object]) -> None:
    response = await client.post(f"/v1/calls/{uuid4()}/move", headers=bearer(admin_key), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/validation-error")


async def test_agents_and_integrations_may_not_move_calls(client: httpx.AsyncClient,
                                                          keys: dict[Role, str]) -> None:
    for role in (Role.AGENT, Role.INTEGRATION):
        response = await client.post(f"/v1/calls/{uuid4()}/move", headers=bearer(keys[role]),
                                     json={"queue": "q"})
        assert response.status_code == 403, response.text
