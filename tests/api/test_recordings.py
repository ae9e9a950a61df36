"""Recording policies and the recordings API without a live call: validation, not-found and
conflict outcomes (never 500)."""

from __future__ import annotations

from uuid import uuid4

import httpx

from tests.api.conftest import bearer


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


async def test_invalid_policies_and_actions_are_422(client: httpx.AsyncClient, admin_key: str):
    auth = bearer(admin_key)
    for path, body in (("/v1/recording-policies/campaign/x", {"policy": "always"}),
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
