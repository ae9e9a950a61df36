"""Malformed requests are 422 problem+json documents naming the offending field."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import bearer

BAD_BODIES = {
    "no name": ({"role": "agent"}, "name"),
    "empty name": ({"name": "", "role": "agent"}, "name"),
    "long name": ({"name": "x" * 101, "role": "agent"}, "name"),
    "control char in name": ({"name": "a\nb", "role": "agent"}, "name"),
    "nul in name": ({"name": "a\x00b", "role": "agent"}, "name"),
    "lone surrogate in name": ('{"name": "a\\ud800", "role": "agent"}', "name"),
    "name not a string": ({"name": 42, "role": "agent"}, "name"),
    "unknown role": ({"name": "x", "role": "root"}, "role"),
    "no role": ({"name": "x"}, "role"),
    "unknown field": ({"name": "x", "role": "agent", "secret": "mine"}, "secret"),
    "not an object": ([1, 2], "body"),
    "not json": ("{nope", "body"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_bodies(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    body, field = BAD_BODIES[case]
    if isinstance(body, str):
        response = await client.post("/v1/api-keys", content=body, headers={
            **bearer(admin_key), "Content-Type": "application/json"})
    else:
        response = await client.post("/v1/api-keys", json=body, headers=bearer(admin_key))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"].endswith("/validation-error")
    assert field in problem["detail"]
    assert any(field in error["location"] for error in problem["errors"])


BAD_QUERIES = {
    "limit too small": ({"limit": 0}, "limit"),
    "limit too large": ({"limit": 1001}, "limit"),
    "limit not a number": ({"limit": "many"}, "limit"),
    "before_id not a number": ({"before_id": "x"}, "before_id"),
    "key_id not a uuid": ({"key_id": "nope"}, "key_id"),
    "unknown method": ({"method": "GET"}, "method"),
    "since not a time": ({"since": "yesterday"}, "since"),
    "since without zone": ({"since": "2026-01-01T00:00:00"}, "since"),
    "path prefix with a nul": ({"path_prefix": "/v1\x00"}, "path_prefix"),
}


@pytest.mark.parametrize("case", list(BAD_QUERIES))
async def test_bad_audit_queries(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    params, field = BAD_QUERIES[case]
    response = await client.get("/v1/audit", params=params, headers=bearer(admin_key))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"]
