"""Two controller processes, one Asterisk, one shared ACD: 100 callers on 10 agents.

Process A runs in the test (Stasis app ``ccc``); process B is a real ``cc-controller run``
subprocess (Stasis app ``ccc-b``), reached through [ccc-test-inbound-b]. Half the callers
dial into each. Both processes share agents and queues through the ACD log in Redis
(controller/services/acd.py); each rings agents only for the callers it holds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from datetime import datetime

import httpx
import pytest

from tests.conftest import ROOT, TEST_DATABASE_URL, TEST_REDIS_URL, eventually
from tests.integration.helpers import call_clock, flow, route

pytestmark = pytest.mark.asterisk

AGENTS = [f"agent{i:02}" for i in range(10)]
CALLERS = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offer_order(offer_id: str) -> tuple[int, int, int]:
    # Offer ids are made from the ACD log entry that decided them: "offer-<ms>-<seq>-<n>".
    _, millis, seq, number = offer_id.rsplit("-", 3)
    return int(millis), int(seq), int(number)


async def test_100_callers_on_10_agents_across_two_controller_processes(
        start_runtime, api_client, dtmf_phones, db_conn) -> None:
    cluster = f"t{uuid.uuid4().hex[:12]}"
    runtime = await start_runtime(acd_cluster=cluster)
    _, key = await runtime.api_keys.create("cluster test", "admin", None)
    async with api_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        for agent_id in AGENTS:
            response = await client.post("/v1/agents", json={
                "id": agent_id, "name": agent_id, "device": f"Local/{agent_id[-2:]}@ccc-test-agent-brief"})
            assert response.status_code == 201, response.text
        response = await client.post("/v1/queues", json={
            "name": "cluster", "strategy": "longest_idle", "ring_timeout_s": 15, "wrap_up_s": 0,
            "members": [{"agent_id": a, "penalty": 0} for a in AGENTS]})
        assert response.status_code == 201, response.text
        await flow(client, "cluster-vip", {"q": {"type": "queue", "queue": "cluster", "priority": 5}}, "q")
        await flow(client, "cluster-std", {"q": {"type": "queue", "queue": "cluster", "priority": 0}}, "q")
        await route(client, "cluster-vip", "7711", "cluster-vip")
        await route(client, "cluster-std", "7712", "cluster-std")
        for agent_id in AGENTS:  # logged in but paused, so that every caller waits first
            assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200
            assert (await client.post(f"/v1/agents/{agent_id}/pause", json={"reason": "meeting"})
                    ).status_code == 200

        port = free_port()
        env = dict(os.environ, CCC_DATABASE_URL=TEST_DATABASE_URL, CCC_REDIS_URL=TEST_REDIS_URL,
                   CCC_ARI_APP="ccc-b", CCC_ACD_CLUSTER=cluster, CCC_API_PORT=str(port),
                   CCC_CONFIG_FILE="/nonexistent", CCC_LOG_LEVEL="WARNING")
        b_log = tempfile.NamedTemporaryFile(prefix="ccc-b-", suffix=".log", delete=False)  # noqa: SIM115
        other = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then only polls
            [sys.executable, "-m", "controller", "run"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=b_log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as b_client:
                async def b_ready() -> bool:
                    try:
                        return (await b_client.get("/readyz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await eventually(b_ready, 30, what="process B ready")
                since = call_clock()
                phones = []
                for n in range(CALLERS):
                    number = "7711" if n % 4 == 0 else "7712"  # a quarter are VIPs
                    context = "ccc-inbound" if n % 2 == 0 else "ccc-test-inbound-b"
                    phones.append(await dtmf_phones.call(number, caller_id=f'"Caller {n}" <555{n:04}>',
                                                         context=context))

                async def all_waiting() -> bool:
                    stats = (await client.get("/v1/queues/cluster/stats")).json()
                    return stats["waiting"] == CALLERS

                await eventually(all_waiting, 40, interval=0.5, what="100 callers waiting in the queue")
                for agent_id in AGENTS:
                    assert (await client.post(f"/v1/agents/{agent_id}/unpause")).status_code == 200

                async def all_served() -> bool:
                    cursor = await db_conn.execute(
                        "SELECT count(*) AS n FROM calls WHERE started_at >= %s"
                        " AND dialed IN ('7711', '7712') AND ended_at IS NOT NULL", (since,))
                    return (await cursor.fetchone())["n"] == CALLERS

                await eventually(all_served, 90, interval=0.5, what="every caller served and ended")
        finally:
            other.terminate()
            try:
                other.wait(15)
            except subprocess.TimeoutExpired:
                other.kill()
            b_log.close()
            print(f"process B's log: {b_log.name}")

    cursor = await db_conn.execute(
        "SELECT c.id, c.dialed, c.data, e.kind, e.data AS event FROM calls c "
        "JOIN call_events e ON e.call_id = c.id "
        "WHERE c.started_at >= %s AND c.dialed IN ('7711', '7712') "
        "AND e.kind IN ('AgentOffered', 'AgentConnected')", (since,))
    rows = await cursor.fetchall()
    connected: dict[str, int] = defaultdict(int)
    offers: list[tuple[tuple[int, int, int], str]] = []
    for row in rows:
        if row["kind"] == "AgentConnected":
            connected[row["id"]] += 1
        else:
            offers.append((offer_order(row["event"]["offer_id"]), row["dialed"]))
    # Every caller answered by an agent, once.
    assert len(connected) == CALLERS and set(connected.values()) == {1}
    # Every VIP offer was decided before any standard caller's (all waited before agents came).
    kinds = [dialed for _, dialed in sorted(offers)]
    assert kinds.count("7711") == CALLERS // 4
    assert kinds.index("7712") == CALLERS // 4, kinds[:40]

    # No agent double-booked: each agent's legs (offers and calls) never overlap in time.
    cursor = await db_conn.execute(
        "SELECT l.id, l.created_at, l.ended_at FROM legs l JOIN calls c ON c.id = l.call_id "
        "WHERE c.started_at >= %s AND c.dialed IN ('7711', '7712') AND l.role = 'agent' "
        "ORDER BY l.created_at", (since,))
    by_agent: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for leg in await cursor.fetchall():
        assert leg["ended_at"] is not None, leg
        by_agent[leg["id"].rsplit(".", 1)[1]].append((leg["created_at"], leg["ended_at"]))
    assert set(by_agent) <= set(AGENTS) and len(by_agent) == len(AGENTS)
    for agent_id, spans in by_agent.items():
        for (_, ended), (started, _) in zip(spans, spans[1:], strict=False):
            assert started >= ended, f"{agent_id} rang for a call before its previous one ended"
    # Both processes held callers and rang agents for them.
    cursor = await db_conn.execute(
        "SELECT DISTINCT data->>'agent_id' AS agent FROM calls WHERE started_at >= %s "
        "AND dialed IN ('7711', '7712')", (since,))
    assert len(await cursor.fetchall()) == len(AGENTS)
