"""Number routes through the API and NumberRouteService.match."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest

from controller.bootstrap import Runtime
from tests.api.conftest import bearer
from tests.api.test_inbound_flows import simple_flow, unique


@pytest.fixture
async def flow(client: httpx.AsyncClient, admin_key: str) -> str:
    name = unique("routes-flow")
    made = await client.post("/v1/flows", headers=bearer(admin_key),
                             json={"name": name, "document": simple_flow()})
    assert made.status_code == 201
    return name


def digits() -> str:
    """A prefix no other test uses, so matches stay between this test's routes."""
    return f"{uuid4().int % 10**8:08d}"


async def test_crud_round_trip(client: httpx.AsyncClient, admin_key: str, flow: str) -> None:
    name = unique("france")
    prefix = digits()
    body = {"name": name, "pattern": f"_{prefix}X.", "flow": flow, "max_concurrent": 5,
            "overflow": {"action": "flow", "flow": flow}, "priority": 3}
    created = await client.post("/v1/routes", headers=bearer(admin_key), json=body)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["flow"] == flow and out["max_concurrent"] == 5 and out["enabled"] is True
    assert out["overflow"] == {"action": "flow", "flow": flow}

    clash = await client.post("/v1/routes", headers=bearer(admin_key), json=body)
    assert clash.status_code == 409
    same_pattern = await client.post("/v1/routes", headers=bearer(admin_key),
                                     json={**body, "name": unique("other")})
    assert same_pattern.status_code == 409
    assert "pattern" in same_pattern.json()["detail"]

    replaced = await client.put(f"/v1/routes/{name}", headers=bearer(admin_key),
                                json={"pattern": prefix, "flow": flow, "enabled": False,
                                      "overflow": {"action": "busy"}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["pattern"] == prefix
    assert replaced.json()["max_concurrent"] is None
    assert replaced.json()["enabled"] is False

    got = await client.get(f"/v1/routes/{name}", headers=bearer(admin_key))
    assert got.json()["overflow"] == {"action": "busy"}
    listed = await client.get("/v1/routes", headers=bearer(admin_key))
    assert name in [r["name"] for r in listed.json()]

    assert (await client.delete(f"/v1/routes/{name}", headers=bearer(admin_key))).status_code == 204
    assert (await client.get(f"/v1/routes/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.delete(f"/v1/routes/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.put(f"/v1/routes/{name}", headers=bearer(admin_key),
                             json={"pattern": prefix, "flow": flow})).status_code == 404


INVALID = {
    "bad pattern": ({"pattern": "_1[", "flow": "{flow}"}, "invalid-pattern"),
    "dot in the middle": ({"pattern": "_1.2", "flow": "{flow}"}, "invalid-pattern"),
    "letters in an exact number": ({"pattern": "abc", "flow": "{flow}"}, "invalid-pattern"),
    "no such flow": ({"pattern": "_5X", "flow": "no-such-flow"}, "invalid-route"),
    "overflow to no flow": ({"pattern": "_5X", "flow": "{flow}",
                             "overflow": {"action": "flow", "flow": "nope"}}, "invalid-route"),
    "overflow announcing no prompt": ({"pattern": "_5X", "flow": "{flow}",
                                       "overflow": {"action": "announce", "prompt": ["nope"]}},
                                      "invalid-route"),
    "overflow of no known action": ({"pattern": "_5X", "flow": "{flow}",
                                     "overflow": {"action": "dance"}}, "validation-error"),
    "overflow with extra fields": ({"pattern": "_5X", "flow": "{flow}",
                                    "overflow": {"action": "busy", "prompt": ["x"]}},
                                   "validation-error"),
    "max_concurrent zero": ({"pattern": "_5X", "flow": "{flow}", "max_concurrent": 0},
                            "validation-error"),
    "control character in the flow": ({"pattern": "_5X", "flow": "a\tb"}, "validation-error"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_invalid_routes_are_422(client: httpx.AsyncClient, admin_key: str, flow: str,
                                      case: str) -> None:
    body, kind = INVALID[case]
    body = {k: (v.replace("{flow}", flow) if isinstance(v, str) else v) for k, v in body.items()}
    response = await client.post("/v1/routes", headers=bearer(admin_key),
                                 json={"name": unique("bad"), **body})
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith(f"/{kind}")


async def test_announce_overflow_checks_media(client: httpx.AsyncClient, admin_key: str,
                                              flow: str) -> None:
    response = await client.post("/v1/routes", headers=bearer(admin_key), json={
        "name": unique("announce"), "pattern": f"_{digits()}X", "flow": flow, "max_concurrent": 1,
        "overflow": {"action": "announce", "prompt": ["digits:42", "tone:busy"]}})
    assert response.status_code == 201, response.text
    assert response.json()["overflow"]["prompt"] == ["digits:42", "tone:busy"]


async def test_match_picks_the_most_specific_route(client: httpx.AsyncClient, admin_key: str,
                                                   flow: str, runtime: Runtime) -> None:
    p = digits()
    routes = {
        "any": (f"_{p}!", 100),
        "long": (f"_{p}1XXX", 0),
        "short-high": (f"_{p}1X.", 50),
        "exact": (f"{p}1234", 0),
        "same-length-high": (f"_{p}[1-2]XXX", 10),
    }
    names = {}
    for label, (pattern, priority) in routes.items():
        names[label] = unique(label)
        made = await client.post("/v1/routes", headers=bearer(admin_key), json={
            "name": names[label], "pattern": pattern, "flow": flow, "priority": priority})
        assert made.status_code == 201, made.text

    async def chosen(dialed: str) -> str | None:
        found = await runtime.number_routes.match(dialed)
        return None if found is None else next(k for k, v in names.items() if v == found.name)

    assert await chosen(f"{p}1234") == "exact"
    assert await chosen(f"{p}1235") == "same-length-high"
    assert await chosen(f"{p}123") == "short-high"
    assert await chosen(f"{p}9") == "any"
    assert await chosen(p) == "any"
    disabled = await client.put(f"/v1/routes/{names['exact']}", headers=bearer(admin_key),
                                json={"pattern": f"{p}1234", "flow": flow, "enabled": False})
    assert disabled.status_code == 200
    assert await chosen(f"{p}1234") == "same-length-high"
    for name in names.values():
        await client.delete(f"/v1/routes/{name}", headers=bearer(admin_key))
    left = await runtime.number_routes.match(f"{p}1234")
    assert left is None or left.name not in names.values()
