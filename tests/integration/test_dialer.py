"""The campaign dialer on the real Asterisk. Contacts' numbers lead, through the test dialplan
([ccc-test-campaign]), to scripted customers: one who answers and stays on the line, busy,
never answering, congested. Agents are Local channels that auto-answer. A power campaign with
one agent places two calls per free agent, so of two customers answering together one talks
with the agent and the other hears the safe-harbor message within two seconds and is counted
abandoned. Retries follow the campaign's rules and stop at their limit; a contact on the
campaign's do-not-call list is never dialed. Everything is set up through the REST API."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.asterisk

HUMAN_A, HUMAN_B, HUMAN_DNC = "+14155550110", "+14155550111", "+14155550112"
BUSY, NO_ANSWER, CONGESTED = "+14155550120", "+14155550130", "+14155550140"
MESSAGE = "vm-goodbye"


@pytest.fixture
async def dialer(start_runtime, api_client):
    from controller.domain.access import Role

    runtime = await start_runtime(dialer_context="ccc-test-campaign", dialer_tick_s=0.3)
    _, key = await runtime.api_keys.create("dialer tests", Role.ADMIN, None)
    async with api_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield runtime, client


async def contacts_by_number(db_conn, campaign_id: str) -> dict[str, dict]:
    cursor = await db_conn.execute(
        "SELECT id, number, state, attempts, last_outcome FROM campaign_contacts WHERE campaign_id = %s",
        (campaign_id,))
    return {row["number"]: row for row in await cursor.fetchall()}


async def attempts_of(db_conn, campaign_id: str, number: str) -> list[dict]:
    cursor = await db_conn.execute(
        "SELECT outcome, reason, call_id, started_at, ended_at FROM campaign_attempts"
        " WHERE campaign_id = %s AND number = %s ORDER BY started_at", (campaign_id, number))
    return list(await cursor.fetchall())


async def test_a_power_campaign_dials_every_contact_to_its_outcome(dialer, db_conn):
    runtime, client = dialer
    suffix = uuid.uuid4().hex[:6]
    agent_id, queue, campaign_id = f"dial-{suffix}", f"outq-{suffix}", f"camp-{suffix}"
    created = await client.post("/v1/agents", json={"id": agent_id, "name": "Dialer agent",
                                                    "device": "Local/2001@ccc-test-agent-talk"})
    assert created.status_code == 201, created.text
    made = await client.post("/v1/queues", json={
        "name": queue, "strategy": "linear", "ring_timeout_s": 5, "wrap_up_s": 0,
        "members": [{"agent_id": agent_id, "penalty": 0}]})
    assert made.status_code == 201, made.text
    made = await client.post("/v1/campaigns", json={
        "id": campaign_id, "name": "Dialer test", "mode": "power", "ratio": 2.0, "queue": queue,
        "calling_windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                             "start": "00:00", "end": "24:00"}],
        "max_attempts": 3, "ring_timeout_s": 5, "abandon_message": MESSAGE,
        "dispositions": ["sale", "no-sale"],
        "retry_rules": [{"outcome": "busy", "delays_s": [1], "max_retries": 1},
                        {"outcome": "abandoned", "delays_s": [3600], "max_retries": 1}]})
    assert made.status_code == 201, made.text
    csv = "phone,name\n" + "\n".join(f"{n},Lead {i}" for i, n in enumerate(
        (HUMAN_A, HUMAN_B, HUMAN_DNC, BUSY, NO_ANSWER, CONGESTED)))
    uploaded = await client.post(f"/v1/campaigns/{campaign_id}/contacts",
                                 files={"file": ("leads.csv", csv.encode(), "text/csv")})
    assert uploaded.status_code == 202 and uploaded.json()["imported"] == 6, uploaded.text
    listed = await client.post("/v1/dnc", json={"number": HUMAN_DNC, "campaign_id": campaign_id})
    assert listed.status_code == 201, listed.text
    assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200

    started = await client.post(f"/v1/campaigns/{campaign_id}/start")
    assert started.status_code == 200, started.text

    async def settled() -> bool:
        await runtime.outbound.feed(campaign_id)  # the worker's beat, every round here
        contacts = await contacts_by_number(db_conn, campaign_id)
        return all(row["state"] in ("done", "exhausted", "dnc") for n, row in contacts.items()
                   if n not in (HUMAN_A, HUMAN_B)) and \
            {contacts[HUMAN_A]["state"], contacts[HUMAN_B]["state"]} == {"done", "ready"}

    try:
        await eventually(settled, 60, interval=0.5, what="every contact dialed to its outcome")
    except BaseException:
        print("contacts:", await contacts_by_number(db_conn, campaign_id))  # shown with the failure
        raise
    finally:
        await client.post(f"/v1/campaigns/{campaign_id}/stop")
    contacts = await contacts_by_number(db_conn, campaign_id)

    # The two customers answered together: one talked with the only agent, the other heard
    # the campaign's message and is called again later (abandoned: one retry after an hour).
    reached, abandoned = sorted((HUMAN_A, HUMAN_B), key=lambda n: contacts[n]["state"])
    assert (contacts[reached]["state"], contacts[reached]["last_outcome"]) == ("done", "answered")
    assert (contacts[abandoned]["state"], contacts[abandoned]["last_outcome"]) == ("ready", "abandoned")
    [talked] = await attempts_of(db_conn, campaign_id, reached)
    [given_up] = await attempts_of(db_conn, campaign_id, abandoned)
    assert given_up["reason"].startswith("no agent within the hold")

    await runtime.records.flushed()
    events = await _events(db_conn, given_up["call_id"])
    kinds = [kind for kind, _, _ in events]
    assert "CampaignAnswered" in kinds and "CampaignAbandoned" in kinds and "AgentConnected" not in kinds
    answered_at = next(at for kind, _, at in events if kind == "CampaignAnswered")
    playing = [(data, at) for kind, data, at in events if kind == "PlaybackStarted"]
    assert playing and playing[0][0]["media"] == f"sound:{MESSAGE}"
    assert (playing[0][1] - answered_at).total_seconds() < 2.0  # the safe-harbor limit
    assert "PlaybackFinished" in kinds  # heard to the end, then hung up

    # The agent's disposition of the call goes on its attempt, from the campaign's codes only.
    wrong = await client.post(f"/v1/calls/{talked['call_id']}/disposition", json={"code": "maybe"})
    assert wrong.status_code == 422 and "dispositions" in wrong.json()["detail"], wrong.text
    disposed = await client.post(f"/v1/calls/{talked['call_id']}/disposition", json={"code": "sale"})
    assert disposed.status_code == 200, disposed.text
    [talked] = await attempts_of(db_conn, campaign_id, reached)
    cursor = await db_conn.execute("SELECT disposition FROM campaign_attempts WHERE call_id = %s",
                                   (talked["call_id"],))
    assert (await cursor.fetchone())["disposition"] == "sale"

    call = await _call(db_conn, talked["call_id"])
    assert call["data"]["campaign"] == campaign_id and call["data"]["agent_id"] == agent_id
    assert call["data"]["lead_name"].startswith("Lead ") and call["direction"] == "outbound"
    assert "AgentConnected" in [kind for kind, _, _ in await _events(db_conn, talked["call_id"])]

    # Busy: retried once after its 1 s delay, then no retry left.
    busy = await attempts_of(db_conn, campaign_id, BUSY)
    assert [(a["outcome"], a["reason"]) for a in busy] == [("busy", "busy"), ("busy", "busy")]
    assert (busy[1]["started_at"] - busy[0]["ended_at"]).total_seconds() >= 1.0
    assert (contacts[BUSY]["state"], contacts[BUSY]["attempts"]) == ("exhausted", 2)
    # No answer within the 5 s ring timeout; congestion is a failure; neither has a rule.
    [rang] = await attempts_of(db_conn, campaign_id, NO_ANSWER)
    assert (rang["outcome"], rang["reason"]) == ("no_answer", "no answer")
    assert (rang["ended_at"] - rang["started_at"]).total_seconds() >= 4.5
    [congested] = await attempts_of(db_conn, campaign_id, CONGESTED)
    assert (congested["outcome"], congested["reason"]) == ("failed", "congestion")
    assert contacts[NO_ANSWER]["state"] == contacts[CONGESTED]["state"] == "exhausted"
    # Do-not-call: never dialed.
    assert (contacts[HUMAN_DNC]["state"], contacts[HUMAN_DNC]["attempts"]) == ("dnc", 0)
    assert await attempts_of(db_conn, campaign_id, HUMAN_DNC) == []
    cursor = await db_conn.execute("SELECT count(*) AS n FROM calls WHERE dialed = %s"
                                   " AND data->>'campaign' = %s", (HUMAN_DNC, campaign_id))
    assert (await cursor.fetchone())["n"] == 0

    # The figures add up to the same.
    await eventually(lambda: _no_calls(runtime, campaign_id), 15, what="the campaign's calls over")
    stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats")).json()
    assert stats["contacts"] == {"ready": 1, "queued": 0, "dialing": 0, "done": 1, "exhausted": 3, "dnc": 1}
    assert stats["attempts"] == {"answered": 1, "busy": 2, "no_answer": 1, "machine": 0, "failed": 1,
                                 "abandoned": 1, "callback": 0, "cancelled": 0}
    assert (stats["attempts_open"], stats["dialed"], stats["contacts_reached"]) == (0, 6, 1)
    assert stats["answer_rate"] == pytest.approx(2 / 6)
    assert stats["abandon_rate_total"] == stats["abandon_rate_window"] == 0.5
    assert stats["in_flight"]["ringing"] == stats["in_flight"]["waiting"] == 0

    # Stopped: nothing more is dialed, no campaign call is left.
    await eventually(lambda: _no_calls(runtime, campaign_id), 15, what="the campaign's calls over")
    before = await _attempt_count(db_conn, campaign_id)
    await asyncio.sleep(1)
    assert await _attempt_count(db_conn, campaign_id) == before


async def _attempt_count(db_conn, campaign_id: str) -> int:
    cursor = await db_conn.execute("SELECT count(*) AS n FROM campaign_attempts WHERE campaign_id = %s",
                                   (campaign_id,))
    return (await cursor.fetchone())["n"]


async def _no_calls(runtime, campaign_id: str) -> bool:
    return not runtime.dialer.calls_of(campaign_id)


async def _events(db_conn, call_id: str) -> list[tuple[str, dict, object]]:
    cursor = await db_conn.execute(
        "SELECT kind, data, at FROM call_events WHERE call_id = %s ORDER BY id", (call_id,))
    return [(row["kind"], row["data"], row["at"]) for row in await cursor.fetchall()]


async def _call(db_conn, call_id: str) -> dict:
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
    row = await cursor.fetchone()
    assert row is not None
    return row


async def test_a_progressive_campaign_never_leaves_an_answered_customer_without_an_agent(dialer, db_conn):
    runtime, client = dialer
    suffix = uuid.uuid4().hex[:6]
    queue, campaign_id = f"progq-{suffix}", f"prog-{suffix}"
    agents = [f"prog-{suffix}-{i}" for i in range(2)]
    for i, agent_id in enumerate(agents):
        created = await client.post("/v1/agents", json={"id": agent_id, "name": agent_id,
                                                        "device": f"Local/210{i}@ccc-test-agent-talk"})
        assert created.status_code == 201, created.text
    made = await client.post("/v1/queues", json={
        "name": queue, "strategy": "longest_idle", "ring_timeout_s": 5, "wrap_up_s": 0,
        "members": [{"agent_id": a, "penalty": 0} for a in agents]})
    assert made.status_code == 201, made.text
    made = await client.post("/v1/campaigns", json={
        "id": campaign_id, "name": "Progressive test", "mode": "progressive", "queue": queue,
        "calling_windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                             "start": "00:00", "end": "24:00"}]})
    assert made.status_code == 201, made.text
    humans = ["+14155550113", "+14155550114", "+14155550115"]
    csv = ("phone\n" + "\n".join(humans)).encode()
    uploaded = await client.post(f"/v1/campaigns/{campaign_id}/contacts",
                                 files={"file": ("leads.csv", csv, "text/csv")})
    assert uploaded.status_code == 202 and uploaded.json()["imported"] == 3, uploaded.text
    for agent_id in agents:
        assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200
    assert (await client.post(f"/v1/campaigns/{campaign_id}/start")).status_code == 200

    async def all_reached() -> bool:
        contacts = await contacts_by_number(db_conn, campaign_id)
        return all(contacts[n]["state"] == "done" for n in humans)

    try:
        await eventually(all_reached, 40, interval=0.5, what="three customers reached by two agents")
    except BaseException:
        print("contacts:", await contacts_by_number(db_conn, campaign_id))
        raise
    finally:
        await client.post(f"/v1/campaigns/{campaign_id}/stop")
    attempts = [a for n in humans for a in await attempts_of(db_conn, campaign_id, n)]
    assert sorted(a["outcome"] for a in attempts) == ["answered"] * 3  # nobody abandoned
    first, second, third = sorted(attempts, key=lambda a: a["started_at"])
    # Two agents, two lines: the third customer is dialed only once an agent is free again,
    # after its four seconds of talk.
    assert (second["started_at"] - first["started_at"]).total_seconds() < 1
    assert (third["started_at"] - second["started_at"]).total_seconds() > 3.5
    stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats")).json()
    assert (stats["attempts"]["answered"], stats["contacts_reached"]) == (3, 3)
    assert stats["abandon_rate_total"] == 0.0


async def test_a_preview_agent_accepts_and_talks_or_skips(dialer, db_conn):
    from controller.domain.access import Role

    runtime, client = dialer
    suffix = uuid.uuid4().hex[:6]
    agent_id, other_id = f"prev-{suffix}", f"prev2-{suffix}"
    queue, campaign_id = f"prevq-{suffix}", f"prev-{suffix}"
    devices = ((agent_id, "Local/2201@ccc-test-agent-talk"), (other_id, "Local/2202@ccc-test-agent"))
    for agent, device in devices:
        created = await client.post("/v1/agents", json={"id": agent, "name": agent, "device": device})
        assert created.status_code == 201, created.text
    made = await client.post("/v1/queues", json={"name": queue,
                                                  "members": [{"agent_id": agent_id, "penalty": 0}]})
    assert made.status_code == 201, made.text
    made = await client.post("/v1/campaigns", json={
        "id": campaign_id, "name": "Preview test", "mode": "preview", "queue": queue,
        "calling_windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                             "start": "00:00", "end": "24:00"}]})
    assert made.status_code == 201, made.text
    human, busy = "+14155550116", "+14155550121"
    csv = f"phone,name\n{human},Ann\n{busy},Bob\n".encode()
    uploaded = await client.post(f"/v1/campaigns/{campaign_id}/contacts",
                                 files={"file": ("leads.csv", csv, "text/csv")})
    assert uploaded.status_code == 202 and uploaded.json()["imported"] == 2, uploaded.text
    _, agent_key = await runtime.api_keys.create("preview agent", Role.AGENT, None, agent_id=agent_id)
    _, other_key = await runtime.api_keys.create("another agent", Role.AGENT, None, agent_id=other_id)
    assert (await client.post(f"/v1/agents/{agent_id}/login")).status_code == 200
    assert (await client.post(f"/v1/campaigns/{campaign_id}/start")).status_code == 200

    async def offered() -> dict | None:
        await runtime.outbound.feed(campaign_id)
        cursor = await db_conn.execute(
            "SELECT id, number FROM campaign_attempts WHERE campaign_id = %s AND agent_id = %s"
            " AND ended_at IS NULL AND call_id IS NULL", (campaign_id, agent_id))
        return await cursor.fetchone()

    try:
        await eventually(offered, 10, what="a contact offered to the agent")
        first = await offered()
        assert first["number"] == human  # the list's order
        base = f"/v1/campaigns/{campaign_id}/preview/{first['id']}"
        forbidden = await client.post(f"{base}/accept", headers={"Authorization": f"Bearer {other_key}"})
        assert forbidden.status_code == 403, forbidden.text
        accepted = await client.post(f"{base}/accept", headers={"Authorization": f"Bearer {agent_key}"})
        assert accepted.status_code == 202, accepted.text
        again = await client.post(f"{base}/accept", headers={"Authorization": f"Bearer {agent_key}"})
        assert again.status_code == 409, again.text

        async def reached() -> bool:
            return (await contacts_by_number(db_conn, campaign_id))[human]["state"] == "done"

        await eventually(reached, 20, what="the previewed customer reached")
        [attempt] = await attempts_of(db_conn, campaign_id, human)
        assert attempt["outcome"] == "answered" and attempt["call_id"] == accepted.json()["call_id"]
        await runtime.records.flushed()
        kinds = [kind for kind, _, _ in await _events(db_conn, attempt["call_id"])]
        assert "CampaignPreviewAccepted" in kinds and "CampaignAnswered" in kinds

        await eventually(offered, 10, what="the next contact offered")
        second = await offered()
        assert second["number"] == busy
        skipped = await client.post(f"/v1/campaigns/{campaign_id}/preview/{second['id']}/skip",
                                    headers={"Authorization": f"Bearer {agent_key}"})
        assert skipped.status_code == 200 and skipped.json()["outcome"] == "cancelled", skipped.text
        missing = await client.post(f"/v1/campaigns/{campaign_id}/preview/{uuid.uuid4()}/skip")
        assert missing.status_code == 404
        malformed = await client.post(f"/v1/campaigns/{campaign_id}/preview/not-a-uuid/accept")
        assert malformed.status_code == 422
    finally:
        await client.post(f"/v1/campaigns/{campaign_id}/stop")
    cursor = await db_conn.execute("SELECT outcome, reason FROM campaign_attempts WHERE id = %s",
                                   (second["id"],))
    assert await cursor.fetchone() == {"outcome": "cancelled", "reason": "skipped by the agent"}
    contacts = await contacts_by_number(db_conn, campaign_id)
    assert (contacts[busy]["state"], contacts[busy]["attempts"]) == ("ready", 0)  # a skip is no attempt
