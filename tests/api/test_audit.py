"""Every write under /v1 is audited, whatever its outcome; only admins read the log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import httpx
import pytest

from controller.api.app import create_app
from controller.bootstrap import Runtime, build_runtime
from controller.domain.access import Role
from controller.storage.records import AuditRow
from tests.api.conftest import CLIENT_IP, audit_of, bearer
from tests.conftest import eventually, make_settings
from tests.tcp_proxy import TcpProxy


@pytest.fixture
async def admin(runtime: Runtime) -> tuple[UUID, str]:
    """A fresh admin key, so a test sees only its own entries when filtering by key."""
    key, plaintext = await runtime.api_keys.create(f"audit-admin-{uuid4().hex[:8]}", Role.ADMIN, None)
    return key.id, plaintext


async def test_successful_writes_are_audited(client: httpx.AsyncClient, runtime: Runtime,
                                             admin: tuple[UUID, str]) -> None:
    admin_id, admin_key = admin
    created = await client.post("/v1/api-keys", headers=bearer(admin_key),
                                json={"name": "audited", "role": "agent"})
    new_id, plaintext = created.json()["id"], created.json()["key"]
    revoked = await client.delete(f"/v1/api-keys/{new_id}", headers=bearer(admin_key))
    assert (created.status_code, revoked.status_code) == (201, 204)

    revoke, create = await audit_of(runtime, admin_id)
    assert (create.method, create.path, create.action, create.status) == (
        "POST", "/v1/api-keys", "create_api_key", 201)
    assert create.target is None
    assert (revoke.method, revoke.path, revoke.action, revoke.target, revoke.status) == (
        "DELETE", f"/v1/api-keys/{new_id}", "revoke_api_key", new_id, 204)
    for entry in (create, revoke):
        assert (entry.key_id, entry.role, entry.client_ip) == (admin_id, "admin", CLIENT_IP)
        assert entry.key_name is not None and entry.key_name.startswith("audit-admin-")
        assert entry.detail == {}
        assert plaintext not in str(entry)
    assert create.request_id == created.headers["x-request-id"]
    assert revoke.request_id == revoked.headers["x-request-id"]
    assert create.request_id != revoke.request_id


async def test_failed_writes_are_audited(client: httpx.AsyncClient, runtime: Runtime,
                                         admin: tuple[UUID, str], keys: dict[Role, str]) -> None:
    admin_id, admin_key = admin
    marker = f"/v1/api-keys/{uuid4()}"
    invalid = await client.post("/v1/api-keys", headers=bearer(admin_key), json={"name": ""})
    missing = await client.delete(marker, headers=bearer(admin_key))
    assert (invalid.status_code, missing.status_code) == (422, 404)
    entries = await audit_of(runtime, admin_id)
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("DELETE", marker, 404), ("POST", "/v1/api-keys", 422)]

    # No key at all: recorded without a key, with the client's address.
    anonymous = await client.delete(marker, headers={"X-Request-ID": "anon-1"})
    assert anonymous.status_code == 401
    entry = (await audit_of(runtime, path_prefix=marker, method="DELETE"))[0]
    assert (entry.key_id, entry.status, entry.client_ip, entry.request_id) == (
        None, 401, CLIENT_IP, "anon-1")

    # A valid key of the wrong role: recorded with that key.
    agent = await runtime.api_keys.authenticate(keys[Role.AGENT])
    forbidden = await client.post("/v1/api-keys", headers=bearer(keys[Role.AGENT]),
                                  json={"name": "nope", "role": "admin"})
    assert forbidden.status_code == 403
    latest = (await audit_of(runtime, agent.key_id))[0]
    assert (latest.method, latest.status, latest.role) == ("POST", 403, "agent")


async def test_reads_are_not_audited(client: httpx.AsyncClient, runtime: Runtime,
                                     admin: tuple[UUID, str]) -> None:
    admin_id, admin_key = admin
    assert (await client.get("/v1/me", headers=bearer(admin_key))).status_code == 200
    assert (await client.get("/v1/api-keys", headers=bearer(admin_key))).status_code == 200
    assert await audit_of(runtime, admin_id) == []


async def test_writes_outside_v1_and_unknown_routes(client: httpx.AsyncClient, runtime: Runtime,
                                                    admin: tuple[UUID, str]) -> None:
    admin_id, admin_key = admin
    unknown = f"/v1/nothing-here/{uuid4()}"
    assert (await client.post(unknown, headers=bearer(admin_key))).status_code == 404
    assert (await client.post("/healthz")).status_code == 405
    [entry] = await audit_of(runtime, path_prefix=unknown)
    # No route ran, so no principal was established: the entry is anonymous.
    assert (entry.action, entry.status, entry.key_id) == (f"POST {unknown}", 404, None)
    assert await audit_of(runtime, path_prefix="/healthz") == []


async def test_request_ids(client: httpx.AsyncClient, admin_key: str) -> None:
    given = await client.get("/v1/me", headers={**bearer(admin_key), "X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    for insane in ("", "has space", "x" * 200, "é"):
        response = await client.get("/v1/me", headers={**bearer(admin_key),
                                                       "X-Request-ID": insane.encode()})
        assert response.headers["x-request-id"] != insane
        assert UUID(response.headers["x-request-id"])
    assert UUID((await client.get("/healthz")).headers["x-request-id"])


async def test_hostile_paths_are_stored_safely(client: httpx.AsyncClient, runtime: Runtime) -> None:
    marker = uuid4().hex
    response = await client.delete(f"/v1/{marker}/%00%0a%ff" + "x" * 2000)
    assert response.status_code == 404
    [entry] = await audit_of(runtime, path_prefix=f"/v1/{marker}/")
    assert "\x00" not in entry.path and "\n" not in entry.path
    assert len(entry.path) <= 512


async def test_list_filters_and_paging(client: httpx.AsyncClient, runtime: Runtime,
                                       admin: tuple[UUID, str]) -> None:
    admin_id, admin_key = admin
    ids = []
    for i in range(5):
        created = await client.post("/v1/api-keys", headers=bearer(admin_key),
                                    json={"name": f"page-{i}", "role": "agent"})
        ids.append(created.json()["id"])
    for key_id in ids[:2]:
        await client.delete(f"/v1/api-keys/{key_id}", headers=bearer(admin_key))
    await runtime.records.flushed()

    def get(**params: object) -> asyncio.Future[httpx.Response]:
        query = {"key_id": str(admin_id), **params}
        return client.get("/v1/audit", params=query, headers=bearer(admin_key))

    everything = (await get()).json()
    assert [e["method"] for e in everything] == ["DELETE"] * 2 + ["POST"] * 5
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert all(e["key_id"] == str(admin_id) for e in everything)

    posts = (await get(method="POST")).json()
    assert len(posts) == 5 and {e["status"] for e in posts} == {201}
    deletes = (await get(path_prefix=f"/v1/api-keys/{ids[0]}")).json()
    assert [e["target"] for e in deletes] == [ids[0]]

    pages, before = [], None
    while True:
        page = (await get(limit=3, **({"before_id": before} if before else {}))).json()
        if not page:
            break
        pages.append(page)
        before = page[-1]["id"]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e["id"] for p in pages for e in p] == [e["id"] for e in everything]

    newest = datetime.fromisoformat(everything[0]["at"])
    oldest = datetime.fromisoformat(everything[-1]["at"])
    assert len((await get(since=newest.isoformat())).json()) >= 1
    assert (await get(until=oldest.isoformat())).json() == []
    assert len((await get(since=oldest.isoformat(),
                          until=(newest + timedelta(seconds=1)).isoformat())).json()) == 7
    assert (await get(since=(newest + timedelta(seconds=1)).isoformat())).json() == []
    assert (await get(key_id=str(uuid4()))).json() == []


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.AGENT, Role.INTEGRATION])
async def test_only_admins_read_the_log(client: httpx.AsyncClient, keys: dict[Role, str],
                                        role: Role) -> None:
    assert (await client.get("/v1/audit", headers=bearer(keys[role]))).status_code == 403
    assert (await client.get("/v1/audit")).status_code == 401


async def test_entries_survive_a_postgres_outage(runtime: Runtime, migrated_database: str) -> None:
    """Entries go through the record writer: made while Postgres is away, written after."""
    target = urlsplit(migrated_database)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    netloc = target.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    cut_off = build_runtime(make_settings(database_url=urlunsplit(target._replace(netloc=netloc))))
    await cut_off.db.open()
    await cut_off.records.start()
    marker = f"/v1/api-keys/{uuid4()}"
    try:
        await proxy.cut()
        transport = httpx.ASGITransport(app=create_app(cut_off), client=(CLIENT_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://controller") as client:
            # No key: answered without Postgres, but the attempt must still be on record.
            assert (await client.delete(marker)).status_code == 401
        await eventually(lambda: not cut_off.records.healthy, 20, what="the writer to notice")
        assert cut_off.records.pending == 1
        assert await audit_of(runtime, path_prefix=marker) == []
        await proxy.restore()
        await cut_off.records.flushed(timeout=30)
    finally:
        await cut_off.records.close()
        await cut_off.db.close()
        await proxy.close()
    [entry] = await audit_of(runtime, path_prefix=marker)
    assert (entry.method, entry.status, entry.client_ip) == ("DELETE", 401, CLIENT_IP)


async def test_prune(runtime: Runtime) -> None:
    marker = f"/v1/prune/{uuid4()}"
    old = datetime.now(UTC) - timedelta(days=40)
    runtime.audit.record(_row(marker + "/old", at=old))
    runtime.audit.record(_row(marker + "/new"))
    await runtime.records.flushed()
    assert await runtime.audit.prune(30) >= 1
    assert [e.path for e in await audit_of(runtime, path_prefix=marker)] == [marker + "/new"]
    with pytest.raises(ValueError):
        await runtime.audit.prune(-1)


def _row(path: str, at: datetime | None = None) -> AuditRow:
    return AuditRow(at=at or datetime.now(UTC), key_id=None, key_name=None, role=None,
                    method="POST", path=path, action="test", target=None, status=200,
                    client_ip=None, request_id=None)


async def test_unhandled_errors_are_audited_as_500(runtime: Runtime) -> None:
    app = create_app(runtime)  # a private app: the shared one must keep exactly its routes

    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/v1/boom", boom, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(CLIENT_IP, 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://controller") as client:
        response = await client.post("/v1/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    entry = (await audit_of(runtime, path_prefix="/v1/boom"))[0]
    assert (entry.action, entry.status) == ("boom", 500)
