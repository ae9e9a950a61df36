"""Helpers for tests about inbound calls: create flows, routes and schedules through the API,
and read the call records back."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import eventually


async def put(client, path: str, body: dict) -> dict:
    name = body["name"]
    response = await client.put(f"{path}/{name}", json={k: v for k, v in body.items() if k != "name"})
    if response.status_code == 404:
        response = await client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def flow(client, name: str, nodes: dict, start: str) -> None:
    await put(client, "/v1/flows", {"name": name, "document": {"start": start, "nodes": nodes}})


async def route(client, name: str, pattern: str, flow_name: str, **extra) -> None:
    await put(client, "/v1/routes", {"name": name, "pattern": pattern, "flow": flow_name, **extra})


def call_clock() -> datetime:
    """Now, in whole milliseconds: a call's start is its channel's creation time from ARI, which
    has millisecond precision, so a call made in the same millisecond as a finer ``since`` would
    seem to start before it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def ended_call(runtime, db_conn, dialed: str, since: datetime, timeout: float = 30) -> dict:
    """The call to ``dialed`` started after ``since``, once it has ended and is in Postgres."""
    since = since.replace(microsecond=since.microsecond // 1000 * 1000)  # see call_clock()
    async def ended() -> bool:
        await runtime.records.flushed()
        cursor = await db_conn.execute(
            "SELECT state FROM calls WHERE dialed = %s AND started_at >= %s ORDER BY started_at DESC",
            (dialed, since))
        row = await cursor.fetchone()
        return row is not None and row["state"] == "ended"

    await eventually(ended, timeout, what=f"the call to {dialed} to end")
    cursor = await db_conn.execute(
        "SELECT * FROM calls WHERE dialed = %s AND started_at >= %s ORDER BY started_at DESC",
        (dialed, since))
    return await cursor.fetchone()


async def event_kinds(db_conn, call_id: str) -> list[tuple[str, dict]]:
    cursor = await db_conn.execute(
        "SELECT kind, data FROM call_events WHERE call_id = %s ORDER BY id", (call_id,))
    return [(row["kind"], row["data"]) for row in await cursor.fetchall()]


def played(events: list[tuple[str, dict]]) -> list[str]:
    return [data.get("media", "") for kind, data in events if kind == "PlaybackStarted"]
