"""/v1/alarm-rules and /v1/alarms through the API: rules validated (a clear 422 for thresholds
the wrong way round, unknown queues), defaults for the clearing levels, listing with filters,
acknowledging. Raising and clearing: tests/services/test_alarms.py and the integration test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.access import Role
from tests.api.conftest import bearer


@pytest.fixture
def admin(client: httpx.AsyncClient, admin_key: str) -> httpx.AsyncClient:
    client.headers.update(bearer(admin_key))
    return client


@pytest.fixture
async def queue(admin: httpx.AsyncClient) -> str:
    name = f"alarm-q-{uuid.uuid4().hex[:6]}"
    response = await admin.post("/v1/queues", json={"name": name, "strategy": "ring_all"})
    assert response.status_code == 201, response.text
    return name


async def test_queue_rules(admin: httpx.AsyncClient, queue: str) -> None:
    put = await admin.put(f"/v1/alarm-rules/queues/{queue}", json={
        "callers_waiting": {"raise_at": 5}, "longest_wait_s": {"raise_at": 120, "clear_at": 60},
        "service_level": {"raise_at": 0.8}, "agents_available": {"raise_at": 0}, "clear_after_s": 30})
    assert put.status_code == 200, put.text
    rule = put.json()
    # Clearing levels left out are one step or a fraction back from the raising level.
    assert rule["callers_waiting"] == {"raise_at": 5, "clear_at": 4}
    assert rule["longest_wait_s"] == {"raise_at": 120, "clear_at": 60}
    assert rule["service_level"]["clear_at"] == pytest.approx(0.85)
    assert rule["agents_available"] == {"raise_at": 0, "clear_at": 1}
    assert (rule["raise_after_s"], rule["clear_after_s"]) == (0, 30)
    assert (await admin.get(f"/v1/alarm-rules/queues/{queue}")).json() == rule
    assert rule in (await admin.get("/v1/alarm-rules/queues")).json()
    assert (await admin.delete(f"/v1/alarm-rules/queues/{queue}")).status_code == 204
    assert (await admin.get(f"/v1/alarm-rules/queues/{queue}")).status_code == 404
    assert (await admin.delete(f"/v1/alarm-rules/queues/{queue}")).status_code == 404


@pytest.mark.parametrize(("body", "detail"), [
    ({"callers_waiting": {"raise_at": 5, "clear_at": 5}}, "callers_waiting: clear_at (5) must be below"),
    ({"service_level": {"raise_at": 0.8, "clear_at": 0.7}}, "service_level: clear_at (0.7) must be above"),
    ({"service_level": {"raise_at": 1}}, "service_level"),
    ({"agents_available": {"raise_at": 2, "clear_at": 1}}, "agents_available"),
    ({}, "at least one threshold"),
    ({"callers_waiting": {"raise_at": 0}}, "callers_waiting.raise_at"),
    ({"callers_waiting": {"raise_at": "many"}}, "callers_waiting.raise_at"),
    ({"longest_wait_s": {"raise_at": -1}}, "longest_wait_s.raise_at"),
    ({"service_level": {"raise_at": 80}}, "service_level.raise_at"),
    ({"callers_waiting": {"raise_at": 5}, "clear_after_s": -1}, "clear_after_s"),
    ({"callers_waiting": {"raise_at": 5}, "colour": "red"}, "colour"),
    ({"callers_waiting": {"raise_at": 5, "lower": 1}}, "lower"),
])
async def test_bad_queue_rules_are_422(admin: httpx.AsyncClient, queue: str, body: dict, detail: str) -> None:
    response = await admin.put(f"/v1/alarm-rules/queues/{queue}", json=body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert (await admin.get(f"/v1/alarm-rules/queues/{queue}")).status_code == 404  # nothing half-written


async def test_a_rule_for_an_unknown_queue_is_422(admin: httpx.AsyncClient) -> None:
    response = await admin.put("/v1/alarm-rules/queues/no-such-queue",
                               json={"callers_waiting": {"raise_at": 1}})
    assert response.status_code == 422 and "no queue no-such-queue" in response.json()["detail"]
    assert (await admin.put("/v1/alarm-rules/queues/Bad Name", json={})).status_code == 422


async def test_the_system_rule(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    async with runtime.db.connection() as conn:
        await conn.execute("DELETE FROM alarm_rules WHERE scope = 'system'")
    defaults = (await admin.get("/v1/alarm-rules/system")).json()
    assert defaults == {"pbx_link_down": True, "dialer_abandon_rate": {"raise_at": 0.9, "clear_at": 0.8},
                        "raise_after_s": 5, "clear_after_s": 5, "updated_at": None}
    put = await admin.put("/v1/alarm-rules/system", json={"pbx_link_down": False, "dialer_abandon_rate": None,
                                                          "raise_after_s": 10})
    assert put.status_code == 200, put.text
    assert put.json()["pbx_link_down"] is False and put.json()["dialer_abandon_rate"] is None
    assert put.json()["updated_at"] is not None and put.json()["raise_after_s"] == 10
    bad = await admin.put("/v1/alarm-rules/system", json={"dialer_abandon_rate": {"raise_at": 0.5,
                                                                                 "clear_at": 0.9}})
    assert bad.status_code == 422 and "dialer_abandon_rate" in bad.json()["detail"]
    assert (await admin.put("/v1/alarm-rules/system", json={"pbx_link_down": "no"})).status_code == 422
    async with runtime.db.connection() as conn:
        await conn.execute("DELETE FROM alarm_rules WHERE scope = 'system'")


async def insert_alarm(runtime: Runtime, kind: str, subject: str, queue: str | None, raised_at: datetime,
                       cleared: bool = False) -> uuid.UUID:
    alarm_id = uuid.uuid4()
    async with runtime.db.connection() as conn:
        await conn.execute(
            "INSERT INTO alarms (id, kind, subject, queue, severity, message, value, threshold, raised_at, "
            "cleared_at, clear_reason) VALUES (%s, %s, %s, %s, 'warning', 'm', 3, 1, %s, %s, %s)",
            (alarm_id, kind, subject, queue, raised_at, raised_at + timedelta(seconds=5) if cleared else None,
             "back to normal" if cleared else None))
    return alarm_id


async def test_listing_filtering_and_acknowledging(admin: httpx.AsyncClient, client: httpx.AsyncClient,
                                                   runtime: Runtime, keys: dict[Role, str]) -> None:
    q = f"list-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC) - timedelta(hours=1)
    old = await insert_alarm(runtime, "queue.callers_waiting", q, q, t0, cleared=True)
    active = await insert_alarm(runtime, "queue.callers_waiting", q, q, t0 + timedelta(minutes=10))
    other = await insert_alarm(runtime, "queue.longest_wait", q, q, t0 + timedelta(minutes=20))

    listed = (await admin.get("/v1/alarms", params={"queue": q})).json()
    assert [a["id"] for a in listed] == [str(other), str(active)]  # active only, newest first
    assert all(a["state"] == "active" for a in listed)
    everything = (await admin.get("/v1/alarms", params={"queue": q, "state": "all"})).json()
    assert [a["id"] for a in everything] == [str(other), str(active), str(old)]
    cleared = (await admin.get("/v1/alarms", params={"queue": q, "state": "cleared"})).json()
    assert [(a["id"], a["clear_reason"]) for a in cleared] == [(str(old), "back to normal")]
    by_kind = (await admin.get("/v1/alarms", params={"queue": q, "kind": "queue.longest_wait"})).json()
    assert [a["id"] for a in by_kind] == [str(other)]
    since = (t0 + timedelta(minutes=15)).isoformat()
    assert [a["id"] for a in (await admin.get("/v1/alarms", params={"queue": q, "state": "all",
                                                                     "since": since})).json()] == [str(other)]
    for bad in ({"state": "open"}, {"kind": "queue.weather"}, {"since": "yesterday"}, {"limit": 0},
                {"queue": "Bad Name"}):
        assert (await admin.get("/v1/alarms", params=bad)).status_code == 422, bad

    supervisor = bearer(keys[Role.SUPERVISOR])
    acked = await client.post(f"/v1/alarms/{active}/ack", headers=supervisor)
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"] == "test-supervisor" and acked.json()["acknowledged_at"]
    again = await admin.post(f"/v1/alarms/{active}/ack")
    assert again.json()["acknowledged_by"] == "test-supervisor"
    assert (await admin.get(f"/v1/alarms/{active}")).json()["acknowledged_by"] == "test-supervisor"
    assert (await admin.post(f"/v1/alarms/{uuid.uuid4()}/ack")).status_code == 404
    assert (await admin.get(f"/v1/alarms/{uuid.uuid4()}")).status_code == 404
    integration = bearer(keys[Role.INTEGRATION])
    assert (await client.get("/v1/alarms", headers=integration)).status_code == 200
    assert (await client.post(f"/v1/alarms/{active}/ack", headers=integration)).status_code == 403
