"""Flows through the API and the service: versions, validation naming the node, YAML, delete."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.errors import NotFound, SwitchUnavailable
from controller.domain.flows import FlowInvalid
from controller.services.flows import FlowService, SoundCatalog
from tests.api.conftest import bearer

PROBLEM_JSON = "application/problem+json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


def simple_flow(greeting: str = "digits:1234") -> dict[str, Any]:
    return {
        "start": "welcome",
        "nodes": {
            "welcome": {"type": "play", "prompts": [greeting], "next": "menu"},
            "menu": {"type": "menu", "prompts": ["digits:1"], "options": {"1": "bye"},
                     "on_failure": "bye"},
            "bye": {"type": "hangup"},
        },
    }


async def test_create_read_version_and_delete(client: httpx.AsyncClient, admin_key: str,
                                              keys: dict, runtime: Runtime) -> None:
    name = unique("support")
    created = await client.post("/v1/flows", headers=bearer(admin_key),
                                json={"name": name, "document": simple_flow()})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert created.json()["document"] == simple_flow()
    assert created.json()["created_by"] is not None

    again = await client.post("/v1/flows", headers=bearer(admin_key),
                              json={"name": name, "document": simple_flow()})
    assert again.status_code == 409

    updated = await client.put(f"/v1/flows/{name}", headers=bearer(admin_key),
                               json={"document": simple_flow("digits:42")})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2

    current = await client.get(f"/v1/flows/{name}", headers=bearer(admin_key))
    assert current.json()["version"] == 2
    assert current.json()["document"]["nodes"]["welcome"]["prompts"] == ["digits:42"]
    first = await client.get(f"/v1/flows/{name}/versions/1", headers=bearer(admin_key))
    assert first.status_code == 200
    assert first.json()["document"] == simple_flow()
    missing = await client.get(f"/v1/flows/{name}/versions/3", headers=bearer(admin_key))
    assert missing.status_code == 404

    listed = await client.get("/v1/flows", headers=bearer(admin_key))
    assert {"name": name, "version": 2} in [
        {"name": f["name"], "version": f["version"]} for f in listed.json()]

    # The call service's view: the current version parsed, and any version by number.
    version, flow = await runtime.flows.current(name)
    assert version == 2 and flow.start == "welcome"
    assert (await runtime.flows.version(name, 1)).node("welcome").prompts == ["digits:1234"]

    deleted = await client.delete(f"/v1/flows/{name}", headers=bearer(admin_key))
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/flows/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.delete(f"/v1/flows/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.put(f"/v1/flows/{name}", headers=bearer(admin_key),
                             json={"document": simple_flow()})).status_code == 404
    with pytest.raises(NotFound):
        await runtime.flows.current(name)
    # Calls that entered before the delete still run their version.
    assert (await runtime.flows.version(name, 2)).start == "welcome"
    old = await client.get(f"/v1/flows/{name}/versions/2", headers=bearer(admin_key))
    assert old.status_code == 200

    # Creating the name again revives it; its numbering goes on.
    revived = await client.post("/v1/flows", headers=bearer(admin_key),
                                json={"name": name, "document": simple_flow()})
    assert revived.status_code == 201
    assert revived.json()["version"] == 3


async def test_roles(client: httpx.AsyncClient, keys: dict) -> None:
    from controller.domain.access import Role

    name = unique("by-supervisor")
    made = await client.post("/v1/flows", headers=bearer(keys[Role.SUPERVISOR]),
                             json={"name": name, "document": simple_flow()})
    assert made.status_code == 201
    read = await client.get(f"/v1/flows/{name}", headers=bearer(keys[Role.INTEGRATION]))
    assert read.status_code == 200
    write = await client.put(f"/v1/flows/{name}", headers=bearer(keys[Role.INTEGRATION]),
                             json={"document": simple_flow()})
    assert write.status_code == 403
    agent = await client.get("/v1/flows", headers=bearer(keys[Role.AGENT]))
    assert agent.status_code == 403


INVALID_FLOWS: dict[str, tuple[dict[str, Any], str | None, str]] = {
    "unknown node type": (
        {"start": "a", "nodes": {"a": {"type": "dance", "next": "a"}}}, "a", "type"),
    "next names no node": (
        {"start": "a", "nodes": {"a": {"type": "play", "prompts": ["digits:1"], "next": "nowhere"}}},
        "a", "next"),
    "unreachable node": (
        {"start": "a", "nodes": {"a": {"type": "hangup"}, "island": {"type": "hangup"}}},
        "island", None),
    "menu option not one key": (
        {"start": "m", "nodes": {"m": {"type": "menu", "options": {"12": "bye"}},
                                 "bye": {"type": "hangup"}}}, "m", "options"),
    "unknown prompt": (
        {"start": "a", "nodes": {"a": {"type": "hangup", "prompts": ["never-uploaded"]}}},
        "a", "prompts"),
    "unknown schedule": (
        {"start": "c", "nodes": {"c": {"type": "condition",
                                       "when": [{"schedule": "nope", "open": True, "next": "b"}],
                                       "else": "b"},
                                 "b": {"type": "hangup"}}}, "c", "when[0].schedule"),
    "loop without exit": (
        {"start": "a", "nodes": {"a": {"type": "play", "prompts": ["digits:1"], "next": "b"},
                                 "b": {"type": "set", "values": {"x": "1"}, "next": "a"}}},
        None, None),
    "field of the wrong type": (
        {"start": "m", "nodes": {"m": {"type": "menu", "options": {"1": "m"}, "retries": "three"}}},
        "m", "retries"),
}


@pytest.mark.parametrize("case", list(INVALID_FLOWS))
async def test_invalid_flow_is_422_naming_the_node(client: httpx.AsyncClient, admin_key: str,
                                                   case: str) -> None:
    document, node, field = INVALID_FLOWS[case]
    response = await client.post("/v1/flows", headers=bearer(admin_key),
                                 json={"name": unique("bad"), "document": document})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"].endswith("/invalid-flow")
    assert problem["errors"], problem
    if node is not None:
        assert f"'{node}'" in problem["detail"]
        assert any(e["node"] == node for e in problem["errors"]), problem
        assert any(node in e["location"] for e in problem["errors"])
    if field is not None:
        assert any(e["field"] == field for e in problem["errors"]), problem
    for error in problem["errors"]:
        assert set(error) >= {"location", "message", "type", "node", "field"}


BAD_DOCUMENTS = {
    "not an object": {"name": "x", "document": [1, 2]},
    "no document": {"name": "x"},
    "name with a newline": {"name": "a\nb", "document": {"start": "a", "nodes": {}}},
    "name with a space": {"name": "a b", "document": {"start": "a", "nodes": {}}},
    "unknown field": {"name": "x", "document": {}, "extra": 1},
}


@pytest.mark.parametrize("case", list(BAD_DOCUMENTS))
async def test_bad_bodies(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    response = await client.post("/v1/flows", headers=bearer(admin_key), json=BAD_DOCUMENTS[case])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_unstorable_json_is_422_not_500(client: httpx.AsyncClient, admin_key: str) -> None:
    for raw in ('{"name": "nul", "document": {"start": "a\\u0000", "nodes": {}}}',
                '{"name": "surrogate", "document": {"start": "\\ud800", "nodes": {}}}',
                '{"name": "nan", "document": {"start": NaN, "nodes": {}}}',
                '{"name": "broken", "document": {',
                '\xff\xfe'):
        response = await client.post("/v1/flows", content=raw.encode("utf-8", "surrogateescape"),
                                     headers={**bearer(admin_key), "Content-Type": "application/json"})
        assert response.status_code == 422, (raw, response.text)
    other = await client.post("/v1/flows", content=b"start: a",
                              headers={**bearer(admin_key), "Content-Type": "text/plain"})
    assert other.status_code == 415


YAML_FLOW = """\
start: welcome
nodes:
  welcome:
    type: play
    prompts: ["digits:1234"]
    next: menu
  menu:
    type: menu
    options:
      1: bye      # an unquoted digit: YAML reads an int key, stored as "1"
    on_failure: bye
  bye:
    type: hangup
"""


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml"])
async def test_yaml_upload(client: httpx.AsyncClient, admin_key: str, content_type: str) -> None:
    name = unique("yaml")
    headers = {**bearer(admin_key), "Content-Type": content_type}
    created = await client.post("/v1/flows", params={"name": name}, content=YAML_FLOW, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["document"]["nodes"]["menu"]["options"] == {"1": "bye"}
    updated = await client.put(f"/v1/flows/{name}", content=YAML_FLOW.replace("1234", "99"),
                               headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2

    no_name = await client.post("/v1/flows", content=YAML_FLOW, headers=headers)
    assert no_name.status_code == 422
    assert "name" in no_name.json()["detail"]
    for bad in ("start: [unclosed", "- just\n- a list\n", "a: &x [1]\nb: *x\n", "\tstart: a"):
        response = await client.post("/v1/flows", params={"name": unique("bad-yaml")}, content=bad,
                                     headers=headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
    invalid_flow = await client.post("/v1/flows", params={"name": unique("bad")},
                                     content="start: x\nnodes:\n  x: {type: nope}\n", headers=headers)
    assert invalid_flow.status_code == 422
    assert invalid_flow.json()["errors"][0]["node"] == "x"


async def test_route_using_a_flow_blocks_its_delete(client: httpx.AsyncClient, admin_key: str) -> None:
    name = unique("routed")
    await client.post("/v1/flows", headers=bearer(admin_key), json={"name": name, "document": simple_flow()})
    route = unique("r")
    made = await client.post("/v1/routes", headers=bearer(admin_key),
                             json={"name": route, "pattern": f"_7{uuid4().int % 10**6:06d}X",
                                   "flow": name})
    assert made.status_code == 201, made.text
    blocked = await client.delete(f"/v1/flows/{name}", headers=bearer(admin_key))
    assert blocked.status_code == 409
    assert route in blocked.json()["detail"]
    await client.delete(f"/v1/routes/{route}", headers=bearer(admin_key))
    assert (await client.delete(f"/v1/flows/{name}", headers=bearer(admin_key))).status_code == 204


async def test_sounds_are_checked_against_the_catalog(runtime: Runtime) -> None:
    async def catalog() -> set[str] | None:
        return {"hello-world", "digits/1"}

    service = FlowService(runtime.db, catalog)
    document = simple_flow("sound:hello-world")
    assert await service.validate(document) == document
    with pytest.raises(FlowInvalid) as caught:
        await service.validate(simple_flow("sound:no-such-sound"))
    assert caught.value.errors[0].node == "welcome"
    assert "no-such-sound" in caught.value.errors[0].message

    async def unknown() -> set[str] | None:
        return None

    # Without a catalog, sounds are not checked.
    lenient = FlowService(runtime.db, unknown)
    assert await lenient.validate(simple_flow("sound:no-such-sound"))


async def test_sound_catalog_caches_and_survives_switch_errors() -> None:
    now = [0.0]
    calls = []

    async def fetch() -> Any:
        calls.append(now[0])
        if len(calls) == 2:
            raise SwitchUnavailable("down")
        return [{"id": "hello-world", "formats": []}, {"id": "digits/1"}, {"no": "id"}]

    catalog = SoundCatalog(fetch, ttl=300, retry_after=30, clock=lambda: now[0])
    assert await catalog() == {"hello-world", "digits/1"}
    now[0] = 299
    assert await catalog() == {"hello-world", "digits/1"}
    assert len(calls) == 1
    now[0] = 301
    assert await catalog() is None  # the switch is down: unknown, asked again later
    now[0] = 320
    assert await catalog() is None
    now[0] = 332
    assert await catalog() == {"hello-world", "digits/1"}
    assert len(calls) == 3


async def test_versions_are_immutable_in_the_database(client: httpx.AsyncClient, admin_key: str,
                                                      db_conn) -> None:
    import psycopg

    name = unique("immutable")
    await client.post("/v1/flows", headers=bearer(admin_key), json={"name": name, "document": simple_flow()})
    for statement in ("UPDATE flow_versions SET document = '{}' WHERE flow_id = "
                      "(SELECT id FROM flows WHERE name = %s)",
                      "DELETE FROM flow_versions WHERE flow_id = (SELECT id FROM flows WHERE name = %s)"):
        with pytest.raises(psycopg.errors.RaiseException, match="immutable"):
            await db_conn.execute(statement, (name,))
