"""Dependencies going away and coming back, with the real services.

Asterisk is really stopped and started (the local one that `make test` runs). Redis is a
private redis-server process that the test kills and restarts. Postgres is reached through a
loopback proxy the test cuts, so the shared server keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from datetime import timedelta

import pytest

from controller.services.call_recovery import LOST_CAUSE_TEXT
from tests.conftest import TEST_DATABASE_URL, eventually
from tests.integration.conftest import local_asterisk
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.asterisk


async def readiness(client) -> tuple[int, dict[str, bool]]:
    response = await client.get("/readyz")
    body = response.json()
    return response.status_code, {d["name"]: d["ok"] for d in body["dependencies"]}


async def place_call_and_wait(runtime, phones, number: str = "100") -> str:
    known = {c.id for c in runtime.calls.live_calls()}
    await phones.call(number)
    await eventually(lambda: any(c.id not in known for c in runtime.calls.live_calls()), 10,
                     what="the call to arrive")
    call_id = next(c.id for c in runtime.calls.live_calls() if c.id not in known)
    await runtime.calls.wait_ended(call_id, timeout=20)
    await runtime.records.flushed(timeout=20)
    return call_id


async def call_row(db_conn, call_id: str) -> dict:
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
    return await cursor.fetchone()


@pytest.mark.parametrize("how", ["stop", "crash"])
async def test_asterisk_going_away_is_reported_and_the_controller_reconnects_by_itself(
        how, start_runtime, api_client, phones, db_conn):
    # A long prompt keeps a call up while Asterisk goes away.
    runtime = await start_runtime(default_prompt="sound:demo-congrats")
    async with api_client(runtime) as client:
        assert (await readiness(client))[0] == 200

        await phones.call("200")
        await eventually(lambda: len(runtime.calls.live_calls()) == 1, 10, what="a call in progress")
        in_progress = runtime.calls.live_calls()[0].id

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(local_asterisk, how)
        gone_at = loop.time()
        await eventually(lambda: _not_ready(client, "asterisk-ari"), 5,
                         what="/readyz to report Asterisk down")
        assert loop.time() - gone_at < 5
        await eventually(lambda: _not_ready(client, "asterisk-ami"), 5,
                         what="/readyz to report AMI down")
        status, deps = await readiness(client)
        assert status == 503 and deps["postgres"] and deps["redis"]

        await asyncio.to_thread(local_asterisk, "start")
        await eventually(lambda: _ready(client), 20, what="/readyz to recover")

        # The call that died with Asterisk is closed in the records, not left open. A clean
        # stop hangs channels up (Asterisk reports the cause); after a crash the controller
        # finds the channels gone when it reconnects.
        await runtime.calls.wait_ended(in_progress, timeout=10)
        await runtime.records.flushed()
        lost = await call_row(db_conn, in_progress)
        assert lost["state"] == "ended" and lost["ended_at"] is not None
        if how == "crash":
            assert lost["hangup_cause_text"] == LOST_CAUSE_TEXT

    # The next call works, with no help from the test.
    runtime.calls.default_prompt = "sound:hello-world"
    call_id = await place_call_and_wait(runtime, phones)
    row = await call_row(db_conn, call_id)
    assert row["state"] == "ended" and row["hangup_cause"] == 16


async def _ready(client) -> bool:
    return (await readiness(client))[0] == 200


async def _not_ready(client, name: str) -> bool:
    status, deps = await readiness(client)
    return status == 503 and not deps[name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(port: int) -> subprocess.Popen:
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by `make` (scripts/system-deps)"
    return subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)


async def test_redis_stop_is_reported_calls_go_on_and_live_state_returns(
        start_runtime, api_client, phones, db_conn):
    port = _free_port()
    redis_process = _start_redis(port)
    try:
        runtime = await start_runtime(redis_url=f"redis://127.0.0.1:{port}/0")
        async with api_client(runtime) as client:
            await eventually(lambda: _ready(client), 5, what="ready with the private Redis")

            redis_process.terminate()
            redis_process.wait(5)
            await eventually(lambda: _not_ready(client, "redis"), 5,
                             what="/readyz to report Redis down")
            status, deps = await readiness(client)
            assert status == 503 and deps["asterisk-ari"] and deps["postgres"]

            # Calls are still handled and recorded while Redis is away.
            call_id = await place_call_and_wait(runtime, phones)
            assert (await call_row(db_conn, call_id))["state"] == "ended"

            # A call in progress while Redis is down shows up in Redis once it is back.
            runtime.calls.default_prompt = "sound:demo-congrats"
            await phones.call("300")
            await eventually(lambda: len(runtime.calls.live_calls()) == 1, 10, what="a live call")
            live_id = runtime.calls.live_calls()[0].id

            redis_process = _start_redis(port)
            await eventually(lambda: _ready(client), 10, what="/readyz to recover")
            await eventually(lambda: _in_redis(runtime, live_id), 10,
                             what="the live call written to Redis after the outage")
            for call in runtime.calls.live_calls():
                for leg in call.live_legs():
                    await phones.client.delete(f"/channels/{leg.id}")
    finally:
        redis_process.terminate()
        redis_process.wait(5)


async def _in_redis(runtime, call_id: str) -> bool:
    return call_id in await runtime.live.live_calls()


async def test_postgres_outage_buffers_call_records_and_writes_them_after(
        start_runtime, api_client, phones, db_conn):
    host_port = TEST_DATABASE_URL.rsplit("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        proxied = TEST_DATABASE_URL.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
        runtime = await start_runtime(database_url=proxied)
        async with api_client(runtime) as client:
            await eventually(lambda: _ready(client), 5, what="ready through the proxy")
            await proxy.cut()
            await eventually(lambda: _not_ready(client, "postgres"), 5,
                             what="/readyz to report Postgres down")

            known = set()
            await phones.call("100")
            await eventually(lambda: len(runtime.calls.live_calls()) == 1, 10, what="a call")
            call_id = runtime.calls.live_calls()[0].id
            known.add(call_id)
            await runtime.calls.wait_ended(call_id, timeout=20)
            assert runtime.records.pending > 0
            assert (await client.get("/readyz")).json()["buffered_records"] > 0
            assert await call_row(db_conn, call_id) is None

            await proxy.restore()
            await runtime.records.flushed(timeout=20)
            await eventually(lambda: _ready(client), 10, what="/readyz to recover")
        row = await call_row(db_conn, call_id)
        assert row["state"] == "ended" and row["hangup_cause"] == 16
        assert row["ended_at"] - row["answered_at"] >= timedelta(seconds=1)
        cursor = await db_conn.execute("SELECT count(*) AS n FROM call_events WHERE call_id = %s",
                                       (call_id,))
        assert (await cursor.fetchone())["n"] >= 5
    finally:
        await proxy.close()
