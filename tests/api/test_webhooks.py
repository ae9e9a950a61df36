"""/v1/webhooks through the API: the secret shown once, validation (every bad input a clear
422), the delivery log and redelivery. Deliveries themselves: tests/services/test_webhooks.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from controller.bootstrap import Runtime
from tests.api.conftest import bearer


@pytest.fixture
async def admin(client: httpx.AsyncClient, admin_key: str,
                runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    client.headers.update(bearer(admin_key))
    yield client
    # No webhook made here outlives its test (a later test's dispatcher would send to it).
    async with runtime.db.connection() as conn:
        await conn.execute("DELETE FROM webhooks")


async def make(admin: httpx.AsyncClient, **body: object) -> dict:
    response = await admin.post("/v1/webhooks", json={"url": "https://crm.example.com/hooks", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_secret_is_shown_once(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    made = await make(admin, description="CRM", topics=["alarms", "calls"], types=["alarm.", "call.answered"],
                      queue="support")
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
    assert (made["topics"], made["types"], made["queue"], made["enabled"]) == (
        ["alarms", "calls"], ["alarm.", "call.answered"], "support", True)
    shown = (await admin.get(f"/v1/webhooks/{made['id']}")).json()
    assert "secret" not in shown and shown["description"] == "CRM"
    listed = (await admin.get("/v1/webhooks")).json()
    assert any(w["id"] == made["id"] for w in listed) and all("secret" not in w for w in listed)
    # Replacing keeps the secret unless one is given.
    replaced = await admin.put(f"/v1/webhooks/{made['id']}", json={"url": "https://crm.example.com/v2",
                                                                    "enabled": False})
    assert replaced.status_code == 200 and "secret" not in replaced.json()
    assert replaced.json()["enabled"] is False and replaced.json()["topics"] == []
    assert (await runtime.webhooks.get(uuid.UUID(made["id"]))).secret == made["secret"]
    given = "my-own-secret-of-32-characters!!"
    await admin.put(f"/v1/webhooks/{made['id']}", json={"url": "https://crm.example.com/v2", "secret": given})
    assert (await runtime.webhooks.get(uuid.UUID(made["id"]))).secret == given
    rotated = await admin.post(f"/v1/webhooks/{made['id']}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (given, made["secret"])
    assert (await runtime.webhooks.get(uuid.UUID(made["id"]))).secret == rotated.json()["secret"]
    # Deleted: gone.
    assert (await admin.delete(f"/v1/webhooks/{made['id']}")).status_code == 204
    assert (await admin.get(f"/v1/webhooks/{made['id']}")).status_code == 404
    assert (await admin.delete(f"/v1/webhooks/{made['id']}")).status_code == 404


async def test_a_given_secret_is_used(admin: httpx.AsyncClient) -> None:
    made = await make(admin, secret="0123456789abcdef")
    assert made["secret"] == "0123456789abcdef"


@pytest.mark.parametrize(("body", "where"), [
    ({"url": "ftp://crm.example.com/"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
    ({"url": "http://[fe80::1]/"}, "url"),
    ({"url": "https://user:pw@crm.example.com/"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://crm.example.com/\u0000"}, "url"),
    ({"url": ""}, "url"),
    ({}, "url"),
    ({"url": "https://crm.example.com/", "topics": ["weather"]}, "topics"),
    ({"url": "https://crm.example.com/", "types": ["Call Answered"]}, "types"),
    ({"url": "https://crm.example.com/", "types": ["call..x"]}, "types"),
    ({"url": "https://crm.example.com/", "queue": "Bad Name"}, "queue"),
    ({"url": "https://crm.example.com/", "agent_id": "a/b"}, "agent_id"),
    ({"url": "https://crm.example.com/", "secret": "short"}, "secret"),
    ({"url": "https://crm.example.com/", "secret": "has spaces in it, sixteen+"}, "secret"),
    ({"url": "https://crm.example.com/", "enabled": "yes"}, "enabled"),
    ({"url": "https://crm.example.com/", "description": "line\nbreak"}, "description"),
    ({"url": "https://crm.example.com/", "colour": "blue"}, "colour"),
])
async def test_bad_webhooks_are_422_naming_the_field(admin: httpx.AsyncClient, body: dict,
                                                     where: str) -> None:
    response = await admin.post("/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert where in response.json()["detail"]


async def test_unknown_and_malformed_ids(admin: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for method, path in (("GET", f"/v1/webhooks/{missing}"), ("GET", f"/v1/webhooks/{missing}/deliveries"),
                         ("POST", f"/v1/webhooks/{missing}/rotate-secret"),
                         ("GET", f"/v1/webhooks/{missing}/deliveries/{uuid.uuid4()}"),
                         ("POST", f"/v1/webhooks/{missing}/deliveries/{uuid.uuid4()}/redeliver")):
        assert (await admin.request(method, path)).status_code == 404, path
    assert (await admin.get("/v1/webhooks/not-a-uuid")).status_code == 422
    put = await admin.put(f"/v1/webhooks/{missing}", json={"url": "https://crm.example.com/"})
    assert put.status_code == 404


async def test_the_delivery_log_and_redelivery(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    made = await make(admin)
    hook_id = uuid.UUID(made["id"])
    pending, failed = uuid.uuid4(), uuid.uuid4()
    payload = {"seq": 41, "id": "evt-41", "type": "alarm.raised", "topic": "alarms", "data": {}}
    async with runtime.db.connection() as conn:
        await conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, feed_epoch, seq, event_type, payload, status, "
            "attempts, round_attempts, last_status_code, last_error) VALUES "
            "(%s, %s, 1, 41, 'alarm.raised', %s, 'pending', 0, 0, NULL, NULL), "
            "(%s, %s, 1, 42, 'alarm.raised', %s, 'failed', 1, 1, 404, 'HTTP 404: nope; not retried')",
            (pending, hook_id, json.dumps(payload), failed, hook_id, json.dumps({**payload, "seq": 42})))
        await conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error, "
            "outcome) VALUES (%s, 1, now(), 404, 12.5, 'HTTP 404: nope; not retried', 'failed')", (failed,))
    listed = (await admin.get(f"/v1/webhooks/{hook_id}/deliveries")).json()
    assert [d["seq"] for d in listed] in ([42, 41], [41, 42])
    by_id = {d["id"]: d for d in listed}
    (logged,) = by_id[str(failed)]["attempt_log"]
    assert logged == {"attempt": 1, "at": logged["at"], "status_code": 404, "latency_ms": 12.5,
                      "error": "HTTP 404: nope; not retried", "outcome": "failed"}
    assert by_id[str(pending)]["next_attempt_at"] is not None
    assert by_id[str(failed)]["next_attempt_at"] is None
    path = f"/v1/webhooks/{hook_id}/deliveries"
    only_failed = (await admin.get(path, params={"status": "failed"})).json()
    assert [d["id"] for d in only_failed] == [str(failed)]
    assert (await admin.get(path, params={"status": "lost"})).status_code == 422
    assert (await admin.get(path, params={"limit": 0})).status_code == 422
    # A pending delivery is not redelivered (it will be attempted); a failed one starts a new round.
    busy = await admin.post(f"/v1/webhooks/{hook_id}/deliveries/{pending}/redeliver")
    assert busy.status_code == 409 and busy.json()["type"].endswith("/conflict")
    again = await admin.post(f"/v1/webhooks/{hook_id}/deliveries/{failed}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending" and again.json()["attempts"] == 1
    async with runtime.db.connection() as conn:
        row = await (await conn.execute("SELECT round_attempts FROM webhook_deliveries WHERE id = %s",
                                        (failed,))).fetchone()
    assert row["round_attempts"] == 0
    # Another webhook's delivery is not found under this one.
    other = await make(admin)
    assert (await admin.get(f"/v1/webhooks/{other['id']}/deliveries/{failed}")).status_code == 404
