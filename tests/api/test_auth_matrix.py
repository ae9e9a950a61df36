"""Who may call what: every /v1 route × every role, from one table.

ROUTE_ROLES must name every (method, path) the app serves under /v1: a new route without an
entry fails ``test_table_covers_every_route``, so nobody ships a route without deciding who
may call it. WebSocket routes have their own table, WEBSOCKET_ROLES, checked over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect

from controller.bootstrap import Runtime
from controller.domain.access import Role
from tests.api.conftest import bearer
from tests.serving import serving

ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
WRITERS = frozenset({Role.ADMIN, Role.SUPERVISOR})
READERS = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION})
# Until keys carry an agent identity, an agent key reads every agent (not only its own).
AGENT_READERS = READERS | {Role.AGENT}
CALL_ACTORS = READERS | {Role.AGENT}
# An agent key acts for its own agent only (checked after the agent is found).
AGENT_ACTORS = WRITERS | {Role.AGENT}

ROUTE_ROLES: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/v1/me"): ALL,
    ("GET", "/v1/api-keys"): ADMIN,
    ("POST", "/v1/api-keys"): ADMIN,
    ("DELETE", "/v1/api-keys/{key_id}"): ADMIN,
    ("GET", "/v1/audit"): ADMIN,
    # An agent key reads only its own agent's calls (others are 404 to it): tests/api/test_call_control.py.
    ("GET", "/v1/calls"): CALL_ACTORS,
    ("GET", "/v1/calls/{call_id}"): CALL_ACTORS,
    ("GET", "/v1/flows"): READERS,
    ("POST", "/v1/flows"): WRITERS,
    ("GET", "/v1/flows/{name}"): READERS,
    ("PUT", "/v1/flows/{name}"): WRITERS,
    ("DELETE", "/v1/flows/{name}"): WRITERS,
    ("GET", "/v1/flows/{name}/versions/{version}"): READERS,
    ("GET", "/v1/routes"): READERS,
    ("POST", "/v1/routes"): WRITERS,
    ("GET", "/v1/routes/{name}"): READERS,
    ("PUT", "/v1/routes/{name}"): WRITERS,
    ("DELETE", "/v1/routes/{name}"): WRITERS,
    ("GET", "/v1/schedules"): READERS,
    ("POST", "/v1/schedules"): WRITERS,
    ("GET", "/v1/schedules/{name}"): READERS,
    ("PUT", "/v1/schedules/{name}"): WRITERS,
    ("DELETE", "/v1/schedules/{name}"): WRITERS,
    ("GET", "/v1/prompts"): READERS,
    ("POST", "/v1/prompts"): WRITERS,
    ("GET", "/v1/prompts/{name}"): READERS,
    ("GET", "/v1/prompts/{name}/audio"): READERS,
    ("DELETE", "/v1/prompts/{name}"): WRITERS,
    ("GET", "/v1/voicemails"): READERS,
    ("GET", "/v1/voicemails/{voicemail_id}"): WRITERS,
    ("GET", "/v1/voicemails/{voicemail_id}/audio"): READERS,
    ("POST", "/v1/voicemails/{voicemail_id}/heard"): WRITERS,
    ("DELETE", "/v1/voicemails/{voicemail_id}"): WRITERS,
    ("GET", "/v1/agents"): AGENT_READERS,
    ("POST", "/v1/agents"): WRITERS,
    ("GET", "/v1/agents/{agent_id}"): AGENT_READERS,
    ("PUT", "/v1/agents/{agent_id}"): WRITERS,
    ("DELETE", "/v1/agents/{agent_id}"): WRITERS,
    ("GET", "/v1/agents/{agent_id}/states"): READERS,
    ("GET", "/v1/agents/{agent_id}/status"): AGENT_READERS,
    # Call control: an agent key may act, but only on its own agent's calls (checked per call,
    # tests/integration/test_call_control.py); these ids name no call, so every role gets 404.
    ("POST", "/v1/calls"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/hangup"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/hold"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/unhold"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/transfer"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/transfer/complete"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/transfer/cancel"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/conference"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/dtmf"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/disposition"): CALL_ACTORS,
    ("POST", "/v1/calls/{call_id}/monitor"): WRITERS,
    # Supervisors move waiting callers; these ids name no call, so allowed roles get 404.
    ("POST", "/v1/calls/{call_id}/move"): WRITERS,
    ("GET", "/v1/monitors/{monitor_id}"): WRITERS,
    ("PATCH", "/v1/monitors/{monitor_id}"): WRITERS,
    ("DELETE", "/v1/monitors/{monitor_id}"): WRITERS,
    ("GET", "/v1/queues/{name}/stats"): READERS,
    ("GET", "/v1/queues/{name}/calls"): READERS,
    ("POST", "/v1/agents/{agent_id}/login"): AGENT_ACTORS,
    ("POST", "/v1/agents/{agent_id}/logout"): AGENT_ACTORS,
    ("POST", "/v1/agents/{agent_id}/pause"): AGENT_ACTORS,
    ("POST", "/v1/agents/{agent_id}/unpause"): AGENT_ACTORS,
    ("POST", "/v1/agents/{agent_id}/end-wrap-up"): AGENT_ACTORS,
    ("GET", "/v1/queues"): READERS,
    ("POST", "/v1/queues"): WRITERS,
    ("GET", "/v1/queues/{name}"): READERS,
    ("PUT", "/v1/queues/{name}"): WRITERS,
    ("DELETE", "/v1/queues/{name}"): WRITERS,
    # Recordings: an agent key controls the recording of its own agent's calls and finds and
    # hears only recordings its agent took part in; a supervisor key made with queues only those
    # of calls in its queues (deletion too). Others are 404 to them (these ids name nothing, so
    # every allowed role gets 404 here): tests/api/test_recordings.py and
    # tests/integration/test_recordings.py. Integrations search and control but never listen.
    ("POST", "/v1/calls/{call_id}/recording"): CALL_ACTORS,
    ("GET", "/v1/recordings"): CALL_ACTORS,
    ("GET", "/v1/recordings/{recording_id}"): CALL_ACTORS,
    ("GET", "/v1/recordings/{recording_id}/audio"): WRITERS | {Role.AGENT},
    ("DELETE", "/v1/recordings/{recording_id}"): WRITERS,
    ("GET", "/v1/recording-policies"): READERS,
    ("PUT", "/v1/recording-policies/{scope}/{name}"): WRITERS,
    ("DELETE", "/v1/recording-policies/{scope}/{name}"): WRITERS,
    # Outbound campaigns and do-not-call lists: admins and supervisors write, integrations read.
    ("GET", "/v1/campaigns"): READERS,
    ("POST", "/v1/campaigns"): WRITERS,
    ("GET", "/v1/campaigns/{campaign_id}"): READERS,
    ("PUT", "/v1/campaigns/{campaign_id}"): WRITERS,
    ("DELETE", "/v1/campaigns/{campaign_id}"): WRITERS,
    ("POST", "/v1/campaigns/{campaign_id}/start"): WRITERS,
    ("POST", "/v1/campaigns/{campaign_id}/pause"): WRITERS,
    ("POST", "/v1/campaigns/{campaign_id}/stop"): WRITERS,
    ("POST", "/v1/campaigns/{campaign_id}/contacts"): WRITERS,
    ("GET", "/v1/campaigns/{campaign_id}/contacts"): READERS,
    ("GET", "/v1/campaigns/{campaign_id}/contacts/export"): READERS,
    ("GET", "/v1/campaigns/{campaign_id}/contacts/{contact_id}"): READERS,
    ("POST", "/v1/campaigns/{campaign_id}/contacts/{contact_id}/callback"): WRITERS,
    ("GET", "/v1/campaigns/{campaign_id}/imports"): READERS,
    ("GET", "/v1/campaigns/{campaign_id}/imports/{import_id}"): READERS,
    ("GET", "/v1/campaigns/{campaign_id}/hopper"): READERS,
    ("GET", "/v1/campaigns/{campaign_id}/stats"): READERS,
    # A previewed contact is accepted or skipped by its agent (or a supervisor).
    ("POST", "/v1/campaigns/{campaign_id}/preview/{attempt_id}/accept"): AGENT_ACTORS,
    ("POST", "/v1/campaigns/{campaign_id}/preview/{attempt_id}/skip"): AGENT_ACTORS,
    ("GET", "/v1/dnc"): READERS,
    ("POST", "/v1/dnc"): WRITERS,
    ("POST", "/v1/dnc/import"): WRITERS,
    ("DELETE", "/v1/dnc"): WRITERS,
    # Workforce math: a computation, and a forecast from the call history.
    ("POST", "/v1/staffing"): READERS,
    ("GET", "/v1/staffing/forecast"): READERS,
    # Reports: an agent key reads its own agent's agent report only (tests/api/test_reports.py).
    ("GET", "/v1/reports/calls"): READERS,
    ("GET", "/v1/reports/queues"): READERS,
    ("GET", "/v1/reports/agents"): AGENT_READERS,
    ("GET", "/v1/reports/history"): READERS,
    ("GET", "/v1/reports/open-items"): AGENT_READERS,
    ("GET", "/v1/reports/campaigns"): READERS,
    # Webhooks send the floor's events to a URL of the key's choosing: admins only.
    ("GET", "/v1/webhooks"): ADMIN,
    ("POST", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("PUT", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("DELETE", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): ADMIN,
    ("GET", "/v1/alarms"): READERS,
    ("GET", "/v1/alarms/{alarm_id}"): READERS,
    ("POST", "/v1/alarms/{alarm_id}/ack"): WRITERS,
    ("GET", "/v1/alarm-rules/system"): READERS,
    ("PUT", "/v1/alarm-rules/system"): WRITERS,
    ("GET", "/v1/alarm-rules/queues"): READERS,
    ("GET", "/v1/alarm-rules/queues/{queue}"): READERS,
    ("PUT", "/v1/alarm-rules/queues/{queue}"): WRITERS,
    ("DELETE", "/v1/alarm-rules/queues/{queue}"): WRITERS,
    # The event feed as Server-Sent Events: any role, scoped per entry (an agent key to its own
    # agent, and only when linked to one: tests/api/test_events.py).
    ("GET", "/v1/events"): ALL,
}

# Routes whose answer is an endless stream get a query that is refused once the key is checked,
# so an allowed role is seen to get past authorization without opening the stream.
QUERIES: dict[tuple[str, str], str] = {
    ("GET", "/v1/events"): "topics=no-such-topic",
}

# WebSocket routes under /v1, and who may open them (the same feed as GET /v1/events).
WEBSOCKET_ROLES: dict[str, frozenset[Role]] = {
    "/v1/events": ALL,
}

# A valid body for each route that takes one, so an allowed role gets past validation.
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/v1/api-keys"): {"name": "matrix", "role": "agent"},
    ("POST", "/v1/flows"): {"name": "matrix", "document": {
        "start": "bye", "nodes": {"bye": {"type": "hangup"}}}},
    ("PUT", "/v1/flows/{name}"): {"document": {"start": "bye", "nodes": {"bye": {"type": "hangup"}}}},
    ("POST", "/v1/schedules"): {"name": "matrix", "timezone": "UTC", "weekly": {}},
    ("PUT", "/v1/schedules/{name}"): {"timezone": "UTC"},
    ("POST", "/v1/routes"): {"name": "matrix", "pattern": "_99X.", "flow": "matrix"},
    ("PUT", "/v1/routes/{name}"): {"pattern": "_98X.", "flow": "matrix"},
    ("POST", "/v1/agents"): {"id": "matrix", "name": "Matrix", "device": "PJSIP/matrix"},
    ("PUT", "/v1/agents/{agent_id}"): {"name": "Matrix", "device": "PJSIP/matrix"},
    ("POST", "/v1/agents/{agent_id}/pause"): {"reason": "lunch"},
    # An agent nobody created: 422 for every role, before anything is dialed.
    ("POST", "/v1/calls"): {"agent_id": "matrix-nobody", "to": {"number": "100"}},
    ("POST", "/v1/calls/{call_id}/transfer"): {"mode": "blind", "to": {"number": "100"}},
    ("POST", "/v1/calls/{call_id}/conference"): {"to": {"extension": "1001"}},
    ("POST", "/v1/calls/{call_id}/dtmf"): {"digits": "12#"},
    ("POST", "/v1/calls/{call_id}/disposition"): {"code": "sale"},
    ("POST", "/v1/queues"): {"name": "matrix", "strategy": "ring_all"},
    ("PUT", "/v1/queues/{name}"): {"strategy": "linear"},
    ("POST", "/v1/calls/{call_id}/recording"): {"action": "start"},
    ("PUT", "/v1/recording-policies/{scope}/{name}"): {"policy": "always"},
    ("POST", "/v1/calls/{call_id}/monitor"): {"device": "PJSIP/2001", "mode": "listen"},
    ("PATCH", "/v1/monitors/{monitor_id}"): {"mode": "whisper"},
    ("POST", "/v1/campaigns"): {"id": "matrix", "name": "Matrix", "mode": "preview", "queue": "matrix"},
    ("PUT", "/v1/campaigns/{campaign_id}"): {"name": "Matrix", "mode": "preview", "queue": "matrix"},
    ("POST", "/v1/campaigns/{campaign_id}/contacts/{contact_id}/callback"): {"at": "2030-01-01T09:00:00Z"},
    ("POST", "/v1/dnc"): {"number": "+12025550199", "reason": "matrix"},
    ("POST", "/v1/calls/{call_id}/move"): {"queue": "matrix"},
    ("POST", "/v1/staffing"): {"aht_s": 180, "intervals": [{"calls": 100}]},
    # Disabled: nothing is ever sent to it.
    ("POST", "/v1/webhooks"): {"url": "https://crm.example.com/matrix", "enabled": False},
    ("PUT", "/v1/webhooks/{webhook_id}"): {"url": "https://crm.example.com/matrix", "enabled": False},
    # A queue named like a uuid exists nowhere: 422 for the roles allowed.
    ("PUT", "/v1/alarm-rules/queues/{queue}"): {"callers_waiting": {"raise_at": 3}},
    ("PUT", "/v1/alarm-rules/system"): {"pbx_link_down": True},
}


def v1_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route under /v1, included routers flattened."""
    routes = list(iter_route_contexts(app.routes))  # included routers flattened
    return {
        (method, route.path)
        for route in routes
        if isinstance(route.path, str) and route.path.startswith("/v1")
        for method in route.methods or ()
    }


def concrete(path: str) -> str:
    """The path with every parameter filled with a well-formed id that exists nowhere."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid4()), path)


async def call(client: httpx.AsyncClient, method: str, path: str,
               headers: dict[str, str]) -> httpx.Response:
    body = BODIES.get((method, path))
    query = QUERIES.get((method, path))
    url = concrete(path) + (f"?{query}" if query else "")
    return await client.request(method, url, headers=headers, json=body)


async def test_table_covers_every_route(app: FastAPI) -> None:
    served = v1_routes(app)
    missing = served - ROUTE_ROLES.keys()
    stale = ROUTE_ROLES.keys() - served
    assert not missing, f"routes without an entry in ROUTE_ROLES: {sorted(missing)}"
    assert not stale, f"ROUTE_ROLES entries for routes the app does not serve: {sorted(stale)}"


@pytest.mark.parametrize("route", sorted(ROUTE_ROLES), ids=" ".join)
@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_role(client: httpx.AsyncClient, keys: dict[Role, str], route: tuple[str, str],
                    role: Role) -> None:
    method, path = route
    response = await call(client, method, path, bearer(keys[role]))
    if role in ROUTE_ROLES[route]:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/forbidden")


BAD_CREDENTIALS = {
    "no header": {},
    "empty bearer": {"Authorization": "Bearer "},
    "other scheme": {"Authorization": "Basic Y2NjOmNjYw=="},
    "not an api key": {"Authorization": "Bearer hello"},
    "unknown key": {"Authorization": "Bearer ccc_AAAAAAAA_" + "A" * 43},
}


@pytest.mark.parametrize("route", sorted(ROUTE_ROLES), ids=" ".join)
@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
async def test_bad_credentials_are_401(client: httpx.AsyncClient, route: tuple[str, str],
                                       credentials: str) -> None:
    method, path = route
    response = await call(client, method, path, BAD_CREDENTIALS[credentials])
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


# ---- WebSocket routes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def socket_base(app: FastAPI) -> AsyncIterator[str]:
    async with serving(app) as url:
        yield url.replace("http", "ws", 1)


async def test_websocket_table_covers_every_websocket_route(app: FastAPI) -> None:
    served = {route.path for route in iter_route_contexts(app.routes)
              if isinstance(route.original_route, WebSocketRoute) and str(route.path).startswith("/v1")}
    assert served == set(WEBSOCKET_ROLES)


async def first_message_or_close(url: str, headers: dict[str, str]) -> tuple[str, int | None, str]:
    """(the first message's type, or "", and the close code and reason if the server closed)."""
    async with connect(url, additional_headers=headers) as socket:
        try:
            message = json.loads(await asyncio.wait_for(socket.recv(), 10))
            return message["type"], None, ""
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return "", closed.rcvd.code, closed.rcvd.reason


@pytest.mark.parametrize("path", sorted(WEBSOCKET_ROLES))
@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_websocket_role(socket_base: str, keys: dict[Role, str], runtime: Runtime,
                              client: httpx.AsyncClient, path: str, role: Role) -> None:
    key = keys[role]
    if role is Role.AGENT:  # an agent key follows its agent: make one linked to an agent
        agent_id = f"matrix-ws-{uuid4().hex[:6]}"
        made = await client.post("/v1/agents", headers=bearer(keys[Role.ADMIN]),
                                 json={"id": agent_id, "name": agent_id, "device": "PJSIP/matrix"})
        assert made.status_code == 201, made.text
        _, key = await runtime.api_keys.create("matrix ws agent", Role.AGENT, None, agent_id)
    kind, code, reason = await first_message_or_close(socket_base + path, bearer(key))
    if role in WEBSOCKET_ROLES[path]:
        assert kind == "feed.subscribed", reason
    else:
        assert (code, reason[:13]) == (1008, "403 forbidden")


@pytest.mark.parametrize("path", sorted(WEBSOCKET_ROLES))
@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
async def test_websocket_bad_credentials_are_401(socket_base: str, path: str, credentials: str) -> None:
    kind, code, reason = await first_message_or_close(socket_base + path, BAD_CREDENTIALS[credentials])
    assert (kind, code) == ("", 1008) and reason.startswith("401 unauthorized"), reason
