"""Schedules through the API and ScheduleService.all."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from controller.bootstrap import Runtime
from tests.api.conftest import bearer
from tests.api.test_inbound_flows import unique

OFFICE = {
    "timezone": "Europe/Paris",
    "weekly": {"mon": [["08:00", "12:00"], ["14:00", "18:00"]], "sat": [["09:00", "12:00"]]},
    "holidays": [{"date": "2026-12-25", "name": "Christmas"},
                 {"date": "2026-12-24", "hours": [["08:00", "12:00"]]}],
}


async def test_crud_round_trip(client: httpx.AsyncClient, admin_key: str, runtime: Runtime) -> None:
    name = unique("office")
    created = await client.post("/v1/schedules", headers=bearer(admin_key), json={"name": name, **OFFICE})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    assert created.json()["weekly"] == OFFICE["weekly"]
    assert (await client.post("/v1/schedules", headers=bearer(admin_key),
                              json={"name": name, **OFFICE})).status_code == 409

    schedules = await runtime.schedules.all()
    assert schedules[name].timezone == "Europe/Paris"
    assert schedules[name].intervals_on(date(2026, 12, 25)) == ()
    assert schedules[name].intervals_on(date(2026, 12, 24)) == ((480, 720),)

    replaced = await client.put(f"/v1/schedules/{name}", headers=bearer(admin_key),
                                json={"timezone": "UTC", "weekly": {"sun": [["00:00", "24:00"]]}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["holidays"] == []
    assert (await runtime.schedules.all())[name].timezone == "UTC"
    got = await client.get(f"/v1/schedules/{name}", headers=bearer(admin_key))
    assert got.json()["weekly"] == {"sun": [["00:00", "24:00"]]}
    assert name in [s["name"] for s in (await client.get("/v1/schedules", headers=bearer(admin_key))).json()]

    assert (await client.delete(f"/v1/schedules/{name}", headers=bearer(admin_key))).status_code == 204
    assert (await client.get(f"/v1/schedules/{name}", headers=bearer(admin_key))).status_code == 404
    assert name not in await runtime.schedules.all()
    assert (await client.put(f"/v1/schedules/{name}", headers=bearer(admin_key),
                             json={"timezone": "UTC"})).status_code == 404


INVALID = {
    "unknown timezone": ({"timezone": "Mars/Olympus"}, "timezone"),
    "unknown day": ({"timezone": "UTC", "weekly": {"monday": [["08:00", "09:00"]]}}, "weekly.monday"),
    "end before start": ({"timezone": "UTC", "weekly": {"mon": [["18:00", "08:00"]]}}, "weekly.mon[0]"),
    "bad time": ({"timezone": "UTC", "weekly": {"mon": [["8h", "9h"]]}}, "weekly.mon[0]"),
    "bad holiday date": ({"timezone": "UTC", "holidays": [{"date": "25/12/2026"}]}, "holidays[0].date"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_invalid_schedule_is_422(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    body, field = INVALID[case]
    response = await client.post("/v1/schedules", headers=bearer(admin_key),
                                 json={"name": unique("bad"), **body})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/invalid-schedule")
    assert any(error["field"] == field for error in problem["errors"]), problem


async def test_schedule_used_by_a_flow(client: httpx.AsyncClient, admin_key: str) -> None:
    schedule = unique("hours")
    flow = {"start": "c", "nodes": {
        "c": {"type": "condition", "when": [{"schedule": schedule, "open": False, "next": "closed"}],
              "else": "bye"},
        "closed": {"type": "hangup", "prompts": ["digits:0"]},
        "bye": {"type": "hangup"}}}
    name = unique("uses-schedule")
    before = await client.post("/v1/flows", headers=bearer(admin_key), json={"name": name, "document": flow})
    assert before.status_code == 422  # the schedule does not exist yet
    await client.post("/v1/schedules", headers=bearer(admin_key), json={"name": schedule, **OFFICE})
    made = await client.post("/v1/flows", headers=bearer(admin_key), json={"name": name, "document": flow})
    assert made.status_code == 201, made.text

    blocked = await client.delete(f"/v1/schedules/{schedule}", headers=bearer(admin_key))
    assert blocked.status_code == 409
    assert name in blocked.json()["detail"]
    # Once the current version no longer names it, it may go.
    await client.put(f"/v1/flows/{name}", headers=bearer(admin_key),
                     json={"document": {"start": "bye", "nodes": {"bye": {"type": "hangup"}}}})
    assert (await client.delete(f"/v1/schedules/{schedule}", headers=bearer(admin_key))).status_code == 204
