"""API keys through the API and the service: create, list, revoke, authenticate, storage."""

from __future__ import annotations

import hashlib
from uuid import uuid4

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.services.api_keys import InvalidKeyName, Unauthorized
from controller.storage.audit import AuditFilter
from tests.api.conftest import bearer

PROBLEM_JSON = "application/problem+json"


async def test_create_list_revoke_round_trip(client: httpx.AsyncClient, admin_key: str) -> None:
    created = await client.post("/v1/api-keys", headers=bearer(admin_key),
                                json={"name": "crm integration", "role": "integration"})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    key_id, plaintext = body["id"], body["key"]
    assert body["name"] == "crm integration"
    assert body["role"] == "integration"
    assert body["revoked_at"] is None
    assert plaintext.startswith(f"ccc_{body['prefix']}_")
    assert body["prefix"].isalnum() and len(body["prefix"]) == 8
    assert len(plaintext.split("_", 2)[2]) >= 43  # 32 random bytes, url-safe base64

    me = await client.get("/v1/me", headers=bearer(plaintext))
    assert me.status_code == 200
    assert me.json() == {"key_id": key_id, "name": "crm integration", "role": "integration",
                         "agent_id": None, "queues": []}

    listed = await client.get("/v1/api-keys", headers=bearer(admin_key))
    assert listed.status_code == 200
    entry = next(k for k in listed.json() if k["id"] == key_id)
    assert "key" not in entry and "secret_hash" not in entry
    assert plaintext not in listed.text
    assert plaintext.split("_", 2)[2] not in listed.text
    assert entry["last_used_at"] is not None  # the /v1/me call above

    revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=bearer(admin_key))
    assert revoked.status_code == 204
    assert revoked.content == b""

    after = await client.get("/v1/me", headers=bearer(plaintext))
    assert after.status_code == 401
    assert after.headers["content-type"] == PROBLEM_JSON
    assert after.headers["www-authenticate"] == "Bearer"
    assert after.json()["type"].endswith("/unauthorized")

    listed = await client.get("/v1/api-keys", headers=bearer(admin_key))
    entry = next(k for k in listed.json() if k["id"] == key_id)
    assert entry["revoked_at"] is not None

    # Revoking again is idempotent and keeps the first revocation time.
    again = await client.delete(f"/v1/api-keys/{key_id}", headers=bearer(admin_key))
    assert again.status_code == 204
    listed = await client.get("/v1/api-keys", headers=bearer(admin_key))
    assert next(k for k in listed.json() if k["id"] == key_id)["revoked_at"] == entry["revoked_at"]


async def test_revoke_unknown_key_is_404(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.delete(f"/v1/api-keys/{uuid4()}", headers=bearer(admin_key))
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_revoke_malformed_id_is_422(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.delete("/v1/api-keys/not-a-uuid", headers=bearer(admin_key))
    assert response.status_code == 422
    assert "key_id" in response.json()["detail"]


async def test_admin_cannot_revoke_its_own_key(client: httpx.AsyncClient, runtime: Runtime) -> None:
    key, plaintext = await runtime.api_keys.create("self-revoker", Role.ADMIN, None)
    response = await client.delete(f"/v1/api-keys/{key.id}", headers=bearer(plaintext))
    assert response.status_code == 409
    assert response.json()["type"].endswith("/conflict")
    assert (await client.get("/v1/me", headers=bearer(plaintext))).status_code == 200


async def test_only_hashes_are_stored(runtime: Runtime) -> None:
    key, plaintext = await runtime.api_keys.create("hash-check", Role.AGENT, None)
    secret = plaintext.split("_", 2)[2]
    async with runtime.db.connection() as conn:
        cursor = await conn.execute("SELECT * FROM api_keys WHERE id = %s", (key.id,))
        row = await cursor.fetchone()
    assert row is not None
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    for value in row.values():
        text = value.hex() if isinstance(value, bytes | memoryview) else str(value)
        assert secret not in text and plaintext not in text


async def test_authenticate_rejects_bad_tokens(runtime: Runtime) -> None:
    key, plaintext = await runtime.api_keys.create("auth-check", Role.SUPERVISOR, None)
    principal = await runtime.api_keys.authenticate(plaintext)
    assert (principal.key_id, principal.key_name, principal.role) == (key.id, "auth-check",
                                                                       Role.SUPERVISOR)
    prefix = plaintext.split("_", 2)[1]
    wrong_secret = f"ccc_{prefix}_{'A' * 43}"
    for token in (None, "", "ccc_", plaintext + "x", plaintext[:-1], wrong_secret,
                  "ccc_zzzzzzzz_" + "B" * 43, plaintext.replace("ccc_", "xyz_", 1)):
        with pytest.raises(Unauthorized):
            await runtime.api_keys.authenticate(token)


async def test_last_used_is_written_at_most_once_a_minute(runtime: Runtime) -> None:
    key, plaintext = await runtime.api_keys.create("touch-check", Role.AGENT, None)
    assert key.last_used_at is None
    await runtime.api_keys.authenticate(plaintext)
    first = (await runtime.api_keys.get(key.id)).last_used_at
    assert first is not None
    await runtime.api_keys.authenticate(plaintext)
    assert (await runtime.api_keys.get(key.id)).last_used_at == first


async def test_out_of_band_key_needs_no_principal_and_is_audited(runtime: Runtime) -> None:
    key, plaintext = await runtime.api_keys.create_admin_key("first admin")
    assert key.role is Role.ADMIN and key.created_by is None
    assert (await runtime.api_keys.authenticate(plaintext)).role is Role.ADMIN
    entries = [e for e in await runtime.audit.list(AuditFilter(method="CLI")) if e.target == str(key.id)]
    assert len(entries) == 1
    assert entries[0].action == "create_api_key" and entries[0].status == 201
    assert plaintext not in str(entries[0])


async def test_service_validates_names(runtime: Runtime) -> None:
    for name in ("", "x" * 101, "tab\there", "new\nline", "nul\x00", "c1\x85"):
        with pytest.raises(InvalidKeyName):
            await runtime.api_keys.create(name, Role.AGENT, None)


async def test_keys_made_through_the_api_name_their_creator(
        client: httpx.AsyncClient, runtime: Runtime, admin_key: str) -> None:
    admin = await runtime.api_keys.authenticate(admin_key)
    created = await client.post("/v1/api-keys", headers=bearer(admin_key),
                                json={"name": "child", "role": "agent"})
    assert created.json()["created_by"] == str(admin.key_id)


async def test_a_supervisor_key_may_be_limited_to_existing_queues(
        client: httpx.AsyncClient, runtime: Runtime, admin_key: str) -> None:
    for name in ("scope-sales", "scope-support"):
        made = await client.post("/v1/queues", headers=bearer(admin_key),
                                 json={"name": name, "strategy": "linear"})
        assert made.status_code == 201, made.text
    created = await client.post("/v1/api-keys", headers=bearer(admin_key), json={
        "name": "sales lead", "role": "supervisor",
        "queues": ["scope-support", "scope-sales", "scope-sales"]})
    assert created.status_code == 201, created.text
    assert created.json()["queues"] == ["scope-sales", "scope-support"]  # sorted, once each
    plaintext = created.json()["key"]
    me = (await client.get("/v1/me", headers=bearer(plaintext))).json()
    assert (me["role"], me["queues"]) == ("supervisor", ["scope-sales", "scope-support"])
    principal = await runtime.api_keys.authenticate(plaintext)
    assert principal.queue_scope == ("scope-sales", "scope-support")
    listed = (await client.get("/v1/api-keys", headers=bearer(admin_key))).json()
    entry = next(k for k in listed if k["id"] == created.json()["id"])
    assert entry["queues"] == ["scope-sales", "scope-support"]

    # Absent or empty: the whole floor.
    floor = await client.post("/v1/api-keys", headers=bearer(admin_key),
                              json={"name": "floor", "role": "supervisor", "queues": []})
    assert floor.status_code == 201 and floor.json()["queues"] == []
    assert (await runtime.api_keys.authenticate(floor.json()["key"])).queue_scope is None

    # Only supervisor keys, only existing queues, only queue names.
    for body in ({"name": "x", "role": "agent", "queues": ["scope-sales"]},
                 {"name": "x", "role": "admin", "queues": ["scope-sales"]},
                 {"name": "x", "role": "supervisor", "queues": ["scope-nowhere"]},
                 {"name": "x", "role": "supervisor", "queues": ["Bad Queue"]},
                 {"name": "x", "role": "supervisor", "queues": "scope-sales"},
                 {"name": "x", "role": "supervisor", "queues": [f"q{n}" for n in range(101)]}):
        refused = await client.post("/v1/api-keys", headers=bearer(admin_key), json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == PROBLEM_JSON
    unknown = await client.post("/v1/api-keys", headers=bearer(admin_key),
                                json={"name": "x", "role": "supervisor", "queues": ["scope-nowhere"]})
    assert "scope-nowhere" in unknown.json()["detail"]
    async with runtime.db.connection() as conn:
        cursor = await conn.execute("SELECT count(*) AS n FROM api_keys WHERE name = 'x'")
        assert (await cursor.fetchone())["n"] == 0  # nothing half-written
