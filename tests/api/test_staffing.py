"""/v1/staffing over HTTP: one interval, a day, Erlang A, and clear 4xx for impossible inputs.
(Who may call it: tests/api/test_auth_matrix.py; the forecast's arithmetic on a real history:
tests/services/test_staffing_forecast.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from controller.domain.access import Role
from controller.engines.erlang import Load, Target, agents_needed
from tests.api.conftest import bearer

# The Call Centre Helper example (tests/unit/test_erlang.py, [CCH]).
ONE_INTERVAL: dict[str, Any] = {
    "interval": 30, "aht_s": 180, "service_level_pct": 80, "answer_time_s": 20,
    "max_occupancy_pct": 85, "shrinkage_pct": 30, "intervals": [{"calls": 100, "label": "09:00"}],
}


async def post(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/staffing", json=body, headers=bearer(key))


async def test_one_interval(client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    response = await post(client, keys[Role.INTEGRATION], ONE_INTERVAL)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["model"] == "erlang_c" and plan["interval"] == 30 and plan["answer_time_s"] == 20
    [interval] = plan["intervals"]
    assert interval["label"] == "09:00" and interval["start"] is None
    assert interval["traffic_erlangs"] == pytest.approx(10.0)
    assert interval["agents"] == 14 and interval["scheduled_agents"] == 20
    assert interval["service_level_pct"] == pytest.approx(88.83500191794669)
    assert interval["wait_pct"] == pytest.approx(17.41319335950498)
    assert interval["occupancy_pct"] == pytest.approx(71.42857142857143)
    assert interval["asa_s"] == pytest.approx(7.83593701177724)
    assert interval["abandon_pct"] == 0
    assert plan["total"] == {
        "calls": 100.0, "agent_hours": 7.0, "scheduled_agent_hours": 10.0, "peak_agents": 14,
        "peak_scheduled_agents": 20, "service_level_pct": pytest.approx(88.83500191794669),
        "abandon_pct": 0.0, "asa_s": pytest.approx(7.83593701177724)}


async def test_a_day_of_intervals(client: httpx.AsyncClient, admin_key: str) -> None:
    calls = [0, 0, 12, 40, 100, 160, 180, 150, 120, 90, 60, 30] * 4  # 48 half hours
    labels = [f"{i // 2:02d}:{30 * (i % 2):02d}" for i in range(48)]
    body = {"interval": 30, "aht_s": 240, "service_level_pct": 90, "answer_time_s": 15, "shrinkage_pct": 25,
            "intervals": [{"calls": c, "label": label} for c, label in zip(calls, labels, strict=True)]}
    body["intervals"][5]["aht_s"] = 300  # this one's own handle time
    response = await post(client, admin_key, body)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert len(plan["intervals"]) == 48
    agents = []
    for index, (item, count) in enumerate(zip(plan["intervals"], calls, strict=True)):
        aht = 300 if index == 5 else 240
        expected = agents_needed(Load.of_interval(count, 1800, aht), Target(15, service_level=0.9))
        assert item["agents"] == expected.agents
        assert item["aht_s"] == aht and item["calls"] == count
        assert item["scheduled_agents"] >= item["agents"]
        agents.append(item["agents"])
    assert plan["intervals"][0]["agents"] == 0 and plan["intervals"][0]["service_level_pct"] == 100
    total = plan["total"]
    assert total["calls"] == sum(calls)
    assert total["agent_hours"] == pytest.approx(sum(agents) / 2)
    assert total["peak_agents"] == max(agents)
    assert total["service_level_pct"] >= 90


async def test_erlang_a_when_patience_is_given(client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    body = {**ONE_INTERVAL, "patience_s": 60, "max_occupancy_pct": None}
    response = await post(client, keys[Role.SUPERVISOR], body)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["model"] == "erlang_a"
    [interval] = plan["intervals"]
    assert interval["service_level_pct"] >= 80 and interval["abandon_pct"] > 0
    assert interval["mean_wait_s"] == pytest.approx(interval["abandon_pct"] / 100 * 60)
    # Callers who hang up relieve the queue: fewer agents than Erlang C's 14 for 80% in 20 s ...
    assert interval["agents"] < 14
    # ... but at the price of abandons; capping them at 3% takes more.
    capped = await post(client, keys[Role.SUPERVISOR], {**body, "max_abandon_pct": 3})
    [interval] = capped.json()["intervals"]
    load = Load.of_interval(100, 1800, 180, patience_s=60)
    expected = agents_needed(load, Target(20, service_level=0.8, max_abandon=0.03))
    assert interval["agents"] == expected.agents > 14 and interval["abandon_pct"] <= 3


async def test_default_target_is_80_percent(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await post(client, admin_key, {"aht_s": 180, "intervals": [{"calls": 100}]})
    assert response.status_code == 200, response.text
    assert response.json()["intervals"][0]["agents"] == 14  # 80% in 20 s


@pytest.mark.parametrize(("change", "where"), [
    ({"intervals": [{"calls": -1}]}, "calls"),
    ({"interval": 0}, "interval"),
    ({"service_level_pct": 100}, "service_level_pct"),
    ({"service_level_pct": 120}, "service_level_pct"),
    ({"service_level_pct": 0}, "service_level_pct"),
    ({"answer_time_s": -5}, "answer_time_s"),
    ({"max_occupancy_pct": 0}, "max_occupancy_pct"),
    ({"shrinkage_pct": 100}, "shrinkage_pct"),
    ({"aht_s": 0}, "aht_s"),
    ({"patience_s": 0}, "patience_s"),
    ({"intervals": []}, "intervals"),
    ({"surprise": 1}, "surprise"),
    ({"aht_s": None}, "no aht_s"),  # calls without a handle time
    ({"max_abandon_pct": 5}, "needs patience_s"),
    # 5 million calls x 180 s in half an hour is 500,000 Erlangs: not a queue.
    ({"intervals": [{"calls": 5_000_000}]}, "Erlangs"),
])
async def test_impossible_inputs_are_422(client: httpx.AsyncClient, admin_key: str, change: dict[str, Any],
                                         where: str) -> None:
    response = await post(client, admin_key, {**ONE_INTERVAL, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert where in response.text


async def test_forecast_route(client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    """The route's shape and refusals (the figures themselves: tests/services/test_staffing_forecast.py)."""
    key = keys[Role.ADMIN]
    name = f"fc{uuid.uuid4().hex[:8]}"
    created = await client.post("/v1/queues", json={"name": name, "service_level_s": 25}, headers=bearer(key))
    assert created.status_code == 201, created.text
    response = await client.get("/v1/staffing/forecast", headers=bearer(keys[Role.INTEGRATION]), params={
        "queue": name, "weeks": 2, "interval": 60, "tz": "Europe/Paris", "start": "2030-04-01",
        "shrinkage_pct": 20})
    assert response.status_code == 200, response.text
    forecast = response.json()
    assert forecast["queue"] == name and forecast["tz"] == "Europe/Paris" and forecast["weeks"] == 2
    assert forecast["answer_time_s"] == 25  # the queue's service level time
    assert forecast["interval"] == 60 and len(forecast["intervals"]) == 7 * 24
    assert forecast["intervals"][0]["start"] == "2030-04-01T00:00:00+02:00"
    assert forecast["history"]["calls"] == 0  # a new queue: nothing to forecast from
    assert all(item["calls"] == 0 and item["agents"] == 0 for item in forecast["intervals"])

    def get(**params: Any) -> Any:
        return client.get("/v1/staffing/forecast", headers=bearer(key), params={"queue": name, **params})

    assert (await get(tz="Mars/Olympus")).status_code == 422
    assert (await get(interval=7)).status_code == 422
    assert (await get(weeks=0)).status_code == 422
    assert (await get(max_abandon_pct=5)).status_code == 422  # without patience_s
    missing = await client.get("/v1/staffing/forecast", headers=bearer(key),
                               params={"queue": "no-such-queue"})
    assert missing.status_code == 404


def test_the_route_offers_the_intervals_the_forecast_cuts() -> None:
    from controller.api.routes.staffing import IntervalMinutes
    from controller.engines.forecast import INTERVAL_MINUTES

    assert tuple(IntervalMinutes) == INTERVAL_MINUTES
