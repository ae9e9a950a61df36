"""The event feed on the real Asterisk: a caller goes through an IVR (a menu, digits, a CRM
lookup) into a queue and is answered by an auto-answering agent. The agent's WebSocket gets the
screen pop (caller ID, IVR path, digits, lookup answer) before the call is connected, and its
own state changes reserved → on_call → wrap_up → available; a reconnect after the last sequence
number it saw gives it what it missed; it never sees another agent's call, which a second caller
has at the same time. A supervisor's stream, following the queue, sees the callers join and leave.
Everything is set up through the REST API; the WebSockets are real (uvicorn on a loopback port)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect

from controller.api.app import create_app
from tests.conftest import eventually
from tests.integration.helpers import flow, route
from tests.serving import serving

pytestmark = pytest.mark.asterisk


async def crm_answer(request: Request) -> JSONResponse:
    return JSONResponse({"name": "Erin Example", "tier": "gold"})


@pytest.fixture
async def crm() -> AsyncIterator[str]:
    async with serving(Starlette(routes=[Route("/caller", crm_answer)])) as url:  # type: ignore[arg-type]
        yield url


async def messages_until(socket: ClientConnection, done: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Messages (heartbeats aside) up to and including the first for which ``done`` holds."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "feed.heartbeat":
                continue
            got.append(message)
            if done(message):
                return got


def state_change(message: dict[str, Any]) -> tuple[str, str] | None:
    if message["type"] != "agent.state_changed":
        return None
    return message["data"]["old_state"], message["data"]["new_state"]


async def test_screen_pop_state_changes_replay_and_scoping_on_a_real_call(inbound, crm, dtmf_phones):
    runtime, client = inbound
    for agent_id, device in (("ev-agent", "Local/1001@ccc-test-agent"),
                             ("ev-other", "Local/1002@ccc-test-agent")):
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id, "device": device})
        assert created.status_code == 201, created.text
    for queue, agent_id in (("ev-q", "ev-agent"), ("ev-q2", "ev-other")):
        made = await client.post("/v1/queues", json={"name": queue, "strategy": "linear", "wrap_up_s": 1,
                                                     "members": [{"agent_id": agent_id}]})
        assert made.status_code == 201, made.text
    await flow(client, "ev-ivr", {
        "menu": {"type": "menu", "prompts": ["sound:agent-pass"], "options": {"1": "account"},
                 "timeout_s": 5, "retries": 2},
        "account": {"type": "collect", "prompts": ["sound:beep"], "variable": "account", "min_digits": 4,
                    "max_digits": 8, "terminator": "#", "timeout_s": 5, "next": "crm"},
        "crm": {"type": "lookup", "url": f"{crm}/caller", "timeout_s": 2,
                "fields": {"customer_name": "name", "tier": "tier"}, "next": "q"},
        "q": {"type": "queue", "queue": "ev-q", "priority": 2},
    }, "menu")
    await flow(client, "ev-direct", {"q": {"type": "queue", "queue": "ev-q2"}}, "q")
    await route(client, "ev-ivr", "7650", "ev-ivr")
    await route(client, "ev-direct", "7651", "ev-direct")
    keys = {}
    for name, body in (("agent", {"role": "agent", "agent_id": "ev-agent"}),
                       ("supervisor", {"role": "supervisor"})):
        made = await client.post("/v1/api-keys", json={"name": f"events {name}", **body})
        assert made.status_code == 201, made.text
        keys[name] = made.json()["key"]

    async with serving(create_app(runtime)) as base:
        url = base.replace("http", "ws", 1) + "/v1/events"
        agent_socket = await connect(f"{url}?token={keys['agent']}")
        supervisor = await connect(f"{url}?queue=ev-q", additional_headers={
            "Authorization": f"Bearer {keys['supervisor']}"})
        try:
            for socket in (agent_socket, supervisor):
                assert json.loads(await socket.recv())["type"] == "feed.subscribed"
            for agent_id in ("ev-agent", "ev-other"):
                assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200
            phone = await dtmf_phones.call("7650", caller_id='"Erin" <5552222>')
            other = await dtmf_phones.call("7651", caller_id='"Frank" <5553333>')
            await phone.wait_answered()
            await asyncio.sleep(0.5)
            await phone.press("1")
            await asyncio.sleep(1.0)
            await phone.press("4321#")

            # The agent's stream, up to the screen pop; then the agent's desktop goes away.
            first = await messages_until(agent_socket, lambda m: m["type"] == "call.offered")
            await agent_socket.close()
            assert state_change(first[0]) == ("logged_out", "available")
            assert state_change(first[-2]) == ("available", "reserved")
            pop = first[-1]
            call_id = pop["call_id"]
            assert first[-2]["data"]["call_id"] == call_id and pop["agents"] == ["ev-agent"]
            data = pop["data"]
            assert data["caller"] == {"number": "5552222", "name": "Erin"} and data["dialed"] == "7650"
            assert data["ivr"]["flow"] == "ev-ivr" and data["ivr"]["path"] == ["menu", "account", "crm", "q"]
            assert data["ivr"]["digits"] == {"account": "4321"}
            assert data["ivr"]["lookup"] == {"customer_name": "Erin Example", "tier": "gold"}
            assert data["queue"] == "ev-q" and data["waited_s"] >= 0 and data["route"] == "ev-ivr"

            # Connected to the auto-answering agent; the caller hangs up after a moment.
            async def connected() -> bool:
                live = runtime.calls.find(call_id)
                return live is not None and live.data.get("agent_id") == "ev-agent"

            await eventually(connected, 15, what="the caller connected to ev-agent")
            await asyncio.sleep(1.0)
            await phone.hang_up()
            await other.hang_up()

            async def available() -> bool:
                status = (await client.get("/v1/agents/ev-agent/status")).json()
                return status["state"] == "available"

            await eventually(available, 15, what="ev-agent back to available after its wrap-up")

            # The agent comes back with the last sequence number it saw, and gets what it missed.
            again = await connect(f"{url}?token={keys['agent']}&after={pop['seq']}")
            try:
                hello = json.loads(await again.recv())
                assert hello["after"] == pop["seq"]
                missed = await messages_until(again, lambda m: state_change(m) == ("wrap_up", "available"))
            finally:
                await again.close()
            seqs = [m["seq"] for m in missed]
            assert seqs == sorted(seqs) and seqs[0] > pop["seq"]
            types = [m["type"] for m in missed]
            assert types.index("call.connected") < types.index("call.ended")
            changes = [state_change(m) for m in missed if state_change(m)]
            assert changes == [("reserved", "on_call"), ("on_call", "wrap_up"), ("wrap_up", "available")]
            assert types.index("agent.state_changed") < types.index("call.connected")  # on_call first
            ended = next(m for m in missed if m["type"] == "call.ended")
            assert ended["data"]["agent_id"] == "ev-agent" and ended["data"]["talk_s"] >= 0.5
            assert ended["data"]["queue_wait_s"] is not None and ended["data"]["duration_s"] > 1
            # Only its own: every event names ev-agent, and the other caller's call never shows.
            for message in first + missed:
                assert "ev-agent" in message["agents"], message
                assert message["call_id"] in (None, call_id), message

            # The supervisor follows the queue: the caller joined, was answered, and left.
            seen = await messages_until(supervisor,
                                        lambda m: m["type"] == "call.ended" and m["call_id"] == call_id)
            kinds = [(m["type"], m.get("call_id")) for m in seen]
            assert kinds.index(("queue.caller_joined", call_id)) < kinds.index(("call.offered", call_id))
            assert kinds.index(("call.offered", call_id)) < kinds.index(("call.connected", call_id))
            left = next(m for m in seen if m["type"] == "queue.caller_left")
            assert (left["call_id"], left["data"]["reason"], left["data"]["agent_id"]) == (
                call_id, "answered", "ev-agent")
            assert all("ev-q" in m["queues"] for m in seen)
        finally:
            await agent_socket.close()
            await supervisor.close()
