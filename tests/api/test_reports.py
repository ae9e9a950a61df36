"""/v1/reports over HTTP on the real Postgres: rows inserted directly (calls, legs, events, the
agent state log, a disposition, a recording, a voicemail, a campaign attempt), figures checked
against values worked out by hand; CSV, paging, scopes and 422s. (The arithmetic of every case,
across changes of the clocks: tests/unit/test_reports.py.)

The day: Sunday 2026-03-08 in New York, when 02:00 EST (UTC-5) jumps to 03:00 EDT (UTC-4).
Hour buckets: 01:00 EST = 06:00-07:00Z, 03:00 EDT = 07:00-08:00Z.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from controller.bootstrap import Runtime
from controller.domain.access import Role
from tests.api.conftest import bearer

SALES, SUPPORT, AGENT = "rp-sales", "rp-support", "rp-a1"
NUMBER = "+15550001"


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _call(conn: psycopg.AsyncConnection, call_id: str, started: str, ended: str, data: dict[str, Any],
                number: str = "+15559999", answered: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO calls (id, direction, state, switch, caller_number, dialed, started_at, answered_at, "
        "ended_at, data) VALUES (%s, 'inbound', 'ended', 'asterisk', %s, '7000', %s, %s, %s, %s)",
        (call_id, number, z(started), z(answered) if answered else z(started), z(ended), json.dumps(data)))
    await conn.execute(
        "INSERT INTO legs (id, call_id, role, channel_name, state, created_at, answered_at, ended_at) "
        "VALUES (%s, %s, 'caller', 'PJSIP/x', 'ended', %s, %s, %s)",
        (f"{call_id}.caller", call_id, z(started), z(started), z(ended)))


async def _event(conn: psycopg.AsyncConnection, call_id: str, at: str, kind: str, leg: str | None = None,
                 **data: str) -> None:
    await conn.execute("INSERT INTO call_events (call_id, leg_id, at, kind, data) "
                       "VALUES (%s, %s, %s, %s, %s)",
                       (call_id, leg, z(at), kind, json.dumps(data)))


async def _connected(conn: psycopg.AsyncConnection, call_id: str, at: str, leg_end: str) -> None:
    leg = f"{call_id}.agent"
    await conn.execute(
        "INSERT INTO legs (id, call_id, role, channel_name, state, created_at, answered_at, ended_at) "
        "VALUES (%s, %s, 'agent', 'PJSIP/1001', 'ended', %s, %s, %s)",
        (leg, call_id, z(at), z(at), z(leg_end)))
    await _event(conn, call_id, at, "AgentConnected", leg, agent_id=AGENT)


STATES = [
    ("2026-03-08 04:00:00", "available", "logged in", None),  # before New York's day
    ("2026-03-08 06:30:00", "paused", "break", None),
    ("2026-03-08 06:40:00", "available", "", None),
    ("2026-03-08 06:50:00", "reserved", "offer o1", None),
    ("2026-03-08 06:50:15", "on_call", "answered rp1", "rp1"),
    ("2026-03-08 06:52:15", "wrap_up", "call ended", None),
    ("2026-03-08 06:52:45", "available", "wrap-up ended", None),
    ("2026-03-08 06:55:00", "reserved", "offer o2", None),
    ("2026-03-08 06:55:20", "available", "no answer", None),  # a missed offer
    ("2026-03-08 06:58:00", "paused", "lunch", None),
    ("2026-03-08 07:05:00", "available", "", None),
    ("2026-03-08 07:10:30", "reserved", "offer o3", None),
    ("2026-03-08 07:10:40", "on_call", "answered rp3", "rp3"),
    ("2026-03-08 07:15:40", "wrap_up", "call ended", None),
    ("2026-03-08 07:15:40", "available", "wrap-up ended", None),
    ("2026-03-08 08:10:00", "logged_out", "logged out", None),
]


@pytest.fixture(scope="module")
async def dataset(migrated_database: str, runtime: Runtime) -> None:
    async with await psycopg.AsyncConnection.connect(migrated_database, autocommit=True) as conn:
        await conn.execute("INSERT INTO agents (id, name, device) VALUES (%s, 'Report agent', 'PJSIP/1001') "
                           "ON CONFLICT DO NOTHING", (AGENT,))
        for queue in (SALES, SUPPORT):
            await conn.execute("INSERT INTO queues (name, strategy, ring_timeout_s, wrap_up_s, "
                               "max_misses_before_pause, service_level_s) "
                               "VALUES (%s, 'ring_all', 15, 0, 0, 20) "
                               "ON CONFLICT DO NOTHING", (queue,))
        for at, state, reason, call_id in STATES:
            await conn.execute("INSERT INTO agent_state_log (agent_id, at, state, reason, call_id) "
                               "VALUES (%s, %s, %s, %s, %s)", (AGENT, z(at), state, reason, call_id))
        # rp1: answered after 15 s, 120 s talk, 30 s wrap-up; a disposition and a recording
        await _call(conn, "rp1", "2026-03-08 06:49:50", "2026-03-08 06:52:15",
                    {"queue": SALES, "agent_id": AGENT}, number=NUMBER)
        await _event(conn, "rp1", "2026-03-08 06:50:00", "QueueEntered", "rp1.caller", queue=SALES)
        await _connected(conn, "rp1", "2026-03-08 06:50:15", "2026-03-08 06:52:15")
        await conn.execute("INSERT INTO call_dispositions (call_id, code, notes, follow_up, agent_id, "
                           "updated_at) "
                           "VALUES ('rp1', 'sale', '=HYPERLINK(\"x\")', true, %s, %s)",
                           (AGENT, z("2026-03-08 06:53:00")))
        recording = uuid.uuid4()
        await conn.execute(
            "INSERT INTO recordings (id, name, call_id, bridge_id, caller_number, started_by, state, format, "
            "started_at, ended_at, duration_s) VALUES (%s, 'rp1-rec', 'rp1', 'br-rp1', %s, 'policy', "
            "'finished', 'wav', %s, %s, 120)", (recording, NUMBER, z("2026-03-08 06:50:15"),
                                                z("2026-03-08 06:52:15")))
        # rp2: hung up after 3 s (a short abandon)
        await _call(conn, "rp2", "2026-03-08 06:59:45", "2026-03-08 06:59:53", {"queue": SALES})
        await _event(conn, "rp2", "2026-03-08 06:59:50", "QueueEntered", queue=SALES)
        # rp3: answered after 40 s, 300 s talk of which 20 on hold, transferred, no wrap-up
        await _call(conn, "rp3", "2026-03-08 07:09:55", "2026-03-08 07:15:40",
                    {"queue": SALES, "agent_id": AGENT})
        await _event(conn, "rp3", "2026-03-08 07:10:00", "QueueEntered", queue=SALES)
        await _connected(conn, "rp3", "2026-03-08 07:10:40", "2026-03-08 07:15:40")
        await _event(conn, "rp3", "2026-03-08 07:11:00", "CallHeld")
        await _event(conn, "rp3", "2026-03-08 07:11:20", "CallResumed")
        await _event(conn, "rp3", "2026-03-08 07:15:00", "TransferStarted")
        # rp4: hung up after 65 s
        await _call(conn, "rp4", "2026-03-08 07:19:58", "2026-03-08 07:21:05", {"queue": SALES})
        await _event(conn, "rp4", "2026-03-08 07:20:00", "QueueEntered", queue=SALES)
        # rp5: asked for a callback after 25 s
        await _call(conn, "rp5", "2026-03-08 07:29:58", "2026-03-08 07:30:30",
                    {"queue": SALES, "queue_exit": "callback"})
        await _event(conn, "rp5", "2026-03-08 07:30:00", "QueueEntered", queue=SALES)
        await _event(conn, "rp5", "2026-03-08 07:30:25", "CallbackRequested", queue=SALES)
        # rp3's disposition asks for nothing more; rp4's (no agent: a CRM's) asks for a follow-up
        await conn.execute("INSERT INTO call_dispositions (call_id, code, follow_up, updated_at) VALUES "
                           "('rp3', 'info', false, %s), ('rp4', 'call-back', true, %s)",
                           (z("2026-03-08 07:16:00"), z("2026-03-08 07:22:00")))
        # rp6, another queue: sent on after 90 s
        await _call(conn, "rp6", "2026-03-08 07:39:58", "2026-03-08 07:42:00",
                    {"queue": SUPPORT, "queue_overflow": "max wait"})
        await _event(conn, "rp6", "2026-03-08 07:40:00", "QueueEntered", queue=SUPPORT)
        await _event(conn, "rp6", "2026-03-08 07:41:30", "QueueOverflowed", queue=SUPPORT)
        # the number's voicemail and a campaign attempt at it
        await conn.execute("INSERT INTO voicemails (id, mailbox, call_id, caller_number, duration_s, "
                           "file_name, "
                           "created_at) VALUES (%s, 'sales', 'rp-vm', %s, 12, 'vm.wav', %s)",
                           (uuid.uuid4(), NUMBER, z("2026-03-09 10:00:00")))
        await conn.execute("INSERT INTO campaigns (id, name, mode, queue, config) VALUES "
                           "('rp-camp', 'Reports', 'preview', %s, '{}') ON CONFLICT DO NOTHING", (SALES,))
        cursor = await conn.execute(
            "INSERT INTO campaign_contacts (campaign_id, number, timezones, timezone_source, area_key) "
            "VALUES ('rp-camp', %s, '{America/New_York}', 'campaign', 'x') RETURNING id", (NUMBER,))
        contact = (await cursor.fetchone())[0]  # type: ignore[index]
        await conn.execute("INSERT INTO campaign_attempts (id, campaign_id, contact_id, number, started_at, "
                           "ended_at, outcome) VALUES (%s, 'rp-camp', %s, %s, %s, %s, 'no_answer')",
                           (uuid.uuid4(), contact, NUMBER, z("2026-03-10 15:00:00"),
                            z("2026-03-10 15:00:30")))
        # March 10 (New York): another contact answered (300 s with the agent), then abandoned
        # (nobody free), then a cancelled attempt, which counts as none; the agent works 2 hours.
        cursor = await conn.execute(
            "INSERT INTO campaign_contacts (campaign_id, number, timezones, timezone_source, area_key) "
            "VALUES ('rp-camp', '+15550002', '{America/New_York}', 'campaign', 'x') RETURNING id")
        other = (await cursor.fetchone())[0]  # type: ignore[index]
        await _call(conn, "rp-out1", "2026-03-10 16:00:00", "2026-03-10 16:05:10", {"agent_id": AGENT},
                    answered="2026-03-10 16:00:10")
        for at, outcome, disposition, agent, call_id in (
                ("2026-03-10 16:00:00", "answered", "sale", AGENT, "rp-out1"),
                ("2026-03-10 17:00:00", "abandoned", None, None, None),
                ("2026-03-10 18:00:00", "cancelled", None, None, None)):
            await conn.execute("INSERT INTO campaign_attempts (id, campaign_id, contact_id, number, "
                               "started_at, outcome, disposition, agent_id, call_id) "
                               "VALUES (%s, 'rp-camp', %s, '+15550002', %s, %s, %s, %s, %s)",
                               (uuid.uuid4(), other, z(at), outcome, disposition, agent, call_id))
        for at, state in (("2026-03-10 15:30:00", "available"), ("2026-03-10 17:30:00", "logged_out")):
            await conn.execute("INSERT INTO agent_state_log (agent_id, at, state) VALUES (%s, %s, %s)",
                               (AGENT, z(at), state))


async def get(client: httpx.AsyncClient, key: str, path: str, **params: Any) -> httpx.Response:
    return await client.get(path, params=params, headers=bearer(key))


# ---- the queue interval report ----------------------------------------------------------------------


async def test_queue_report_by_hour_in_new_york(client: httpx.AsyncClient, admin_key: str,
                                                dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/queues", **{
        "from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York", "interval": "60",
        "queue": [SALES, SUPPORT], "threshold_s": 20, "short_abandon_s": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["wait_buckets_s"] == ["0-10", "10-20", "20-30", "30-60", "60-120", "120-180", "180-300",
                                      "300+"]
    sales, support = body["queues"]
    assert sales["queue"] == SALES and len(sales["intervals"]) == 23  # the short day
    one, two = sales["intervals"][1], sales["intervals"][2]
    assert (one["start"], two["start"]) == ("2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00")
    assert (one["offered"], one["answered"], one["abandoned"], one["short_abandoned"]) == (2, 1, 1, 1)
    assert one["service_level_pct"] == 100.0  # 1 in 20 s / (2 - 1 short)
    # AHT: 120 talk + 30 wrap-up
    assert (one["asa_s"], one["aht_s"], one["longest_wait_s"]) == (15.0, 150.0, 15.0)
    assert one["answered_waits"] == [0, 1, 0, 0, 0, 0, 0, 0]
    assert one["abandoned_waits"] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert (two["offered"], two["answered"], two["abandoned"]) == (3, 1, 1)
    assert (two["callbacks"], two["transfers"]) == (1, 1)
    assert two["service_level_pct"] == 0.0
    assert (two["asa_s"], two["aht_s"], two["hold_s"], two["longest_wait_s"]) == (40.0, 300.0, 20.0, 65.0)
    total = sales["total"]
    assert (total["offered"], total["answered"], total["abandoned"], total["short_abandoned"]) == (5, 2, 2, 1)
    assert total["service_level_pct"] == 25.0  # 1 / (5 - 1)
    assert (total["asa_s"], total["aht_s"]) == (27.5, 225.0)
    assert support["total"]["offered"] == 1 and support["total"]["overflowed"] == 1
    assert support["intervals"][2]["overflowed"] == 1


async def test_queue_report_by_day_in_two_zones_and_as_csv(client: httpx.AsyncClient, admin_key: str,
                                                           dataset: None) -> None:
    # Every call is on March 8 in both zones; New York's day has 23 hours, Paris' 24.
    for tz in ("America/New_York", "Europe/Paris"):
        response = await get(client, admin_key, "/v1/reports/queues", **{
            "from": "2026-03-08", "to": "2026-03-08", "tz": tz, "interval": "day", "queue": SALES})
        [sales] = response.json()["queues"]
        [day] = sales["intervals"]
        assert day["offered"] == 5 and day["service_level_pct"] == 25.0
    response = await get(client, admin_key, "/v1/reports/queues", **{
        "from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York", "interval": "60", "queue": SALES,
        "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 24  # 23 hours and the total
    assert rows[2]["start"] == "2026-03-08T03:00:00-04:00" and rows[2]["offered"] == "3"
    assert rows[-1]["start"] == "total" and rows[-1]["service_level_pct"] == "25.0"
    assert rows[1]["answered_wait_10-20"] == "1"


# ---- the agent report -----------------------------------------------------------------------------------


async def test_agent_report_by_day_in_new_york_and_paris(client: httpx.AsyncClient, admin_key: str,
                                                         dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/agents", **{
        "from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York", "interval": "day",
        "agent": AGENT})
    assert response.status_code == 200, response.text
    [agent] = response.json()["agents"]
    [day] = agent["intervals"]
    # New York's day starts at 05:00Z. available 5400 + 600 + 135 + 160 + 330 + 3260 and ringing
    # 15 + 20 + 10 = 9930; talk 120 + 300; wrap-up 30; paused break 600, lunch 420; 05:00-08:10Z.
    assert (day["available_s"], day["ringing_s"], day["talk_s"], day["wrap_s"]) == (9930, 45, 420, 30)
    assert day["pause_by_reason"] == {"break": 600, "lunch": 420} and day["paused_s"] == 1020
    assert day["logged_in_s"] == 11400
    assert (day["calls_handled"], day["missed_offers"], day["aht_s"]) == (2, 1, 225)  # (150 + 300) / 2
    assert day["occupancy_pct"] == pytest.approx(round(100 * 450 / 10380, 3))
    # Paris' March 8 starts at 23:00Z the day before: 04:00-05:00Z available as well.
    response = await get(client, admin_key, "/v1/reports/agents", **{
        "from": "2026-03-08", "to": "2026-03-08", "tz": "Europe/Paris", "interval": "day", "agent": AGENT})
    [agent] = response.json()["agents"]
    assert agent["intervals"][0]["available_s"] == 13530 and agent["total"]["logged_in_s"] == 15000


async def test_agent_report_by_hour_splits_at_the_boundaries(client: httpx.AsyncClient, admin_key: str,
                                                             dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/agents", **{
        "from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York", "interval": "60", "agent": AGENT,
        "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 24
    # 01:00 EST (06-07Z): break 600, lunch 120, talk 120, wrap 30, available 1800+600+15+135+20+160
    assert rows[1]["start"] == "2026-03-08T01:00:00-05:00"
    assert (rows[1]["available_s"], rows[1]["pause_break"], rows[1]["pause_lunch"]) == (
        "2730.0", "600.0", "120.0")
    # 03:00 EDT (07-08Z): lunch 300, available 330 + 10 + 2660, talk 300
    assert (rows[2]["pause_lunch"], rows[2]["available_s"], rows[2]["talk_s"]) == ("300.0", "3000.0", "300.0")
    assert rows[3]["logged_in_s"] == "600.0"  # 08:00-08:10Z


async def test_an_agent_key_reads_its_own_agent_report_only(client: httpx.AsyncClient, runtime: Runtime,
                                                            dataset: None) -> None:
    _, own = await runtime.api_keys.create("rp-agent", Role.AGENT, None, agent_id=AGENT)
    params = {"from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York"}
    response = await get(client, own, "/v1/reports/agents", **params)
    assert response.status_code == 200, response.text
    assert [a["agent_id"] for a in response.json()["agents"]] == [AGENT]
    assert (await get(client, own, "/v1/reports/agents", agent="someone-else", **params)).status_code == 403
    assert (await get(client, own, "/v1/reports/queues", **params)).status_code == 403
    assert (await get(client, own, "/v1/reports/calls", since="2026-03-08T00:00:00Z",
                      until="2026-03-09T00:00:00Z")).status_code == 403


async def test_a_supervisor_limited_to_queues(client: httpx.AsyncClient, runtime: Runtime,
                                              dataset: None) -> None:
    _, key = await runtime.api_keys.create("rp-sup", Role.SUPERVISOR, None, queues=[SUPPORT])
    params = {"from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York", "interval": "day"}
    response = await get(client, key, "/v1/reports/queues", **params)
    assert [q["queue"] for q in response.json()["queues"]] == [SUPPORT]
    assert (await get(client, key, "/v1/reports/queues", queue=SALES, **params)).status_code == 403
    response = await get(client, key, "/v1/reports/calls", since="2026-03-08T06:00:00Z",
                         until="2026-03-08T08:00:00Z")
    assert [c["id"] for c in response.json()["calls"]] == ["rp6"]


# ---- call detail records ----------------------------------------------------------------------------------


async def test_call_records_paged_and_filtered(client: httpx.AsyncClient, admin_key: str,
                                               dataset: None) -> None:
    period = {"since": "2026-03-08T06:00:00Z", "until": "2026-03-08T08:00:00Z", "queue": SALES}
    seen, after = [], None
    for _ in range(4):
        response = await get(client, admin_key, "/v1/reports/calls", limit=2, **period,
                             **({"after": after} if after else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        seen.append([c["id"] for c in page["calls"]])
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == [["rp5", "rp4"], ["rp3", "rp2"], ["rp1"]]
    response = await get(client, admin_key, "/v1/reports/calls", **period)
    calls = {c["id"]: c for c in response.json()["calls"]}
    rp1, rp3 = calls["rp1"], calls["rp3"]
    assert (rp1["outcome"], rp1["queue"], rp1["agent_id"], rp1["wait_s"], rp1["talk_s"], rp1["wrap_s"]) == (
        "answered", SALES, AGENT, 15.0, 120.0, 30.0)
    assert rp1["disposition"] == "sale" and rp1["follow_up"] is True and len(rp1["recording_ids"]) == 1
    assert [leg["role"] for leg in rp1["legs"]] == ["caller", "agent"]
    assert (rp3["hold_s"], rp3["transferred"], rp3["wrap_s"]) == (20.0, True, 0.0)
    assert [calls[c]["outcome"] for c in ("rp2", "rp4", "rp5")] == ["abandoned", "abandoned", "callback"]
    assert (calls["rp2"]["wait_s"], calls["rp2"]["talk_s"]) == (3.0, None)
    response = await get(client, admin_key, "/v1/reports/calls", outcome="abandoned", **period)
    assert [c["id"] for c in response.json()["calls"]] == ["rp4", "rp2"]
    response = await get(client, admin_key, "/v1/reports/calls", agent=AGENT, **period)
    assert [c["id"] for c in response.json()["calls"]] == ["rp3", "rp1"]
    response = await get(client, admin_key, "/v1/reports/calls", number=NUMBER, **period)
    assert [c["id"] for c in response.json()["calls"]] == ["rp1"]
    response = await get(client, admin_key, "/v1/reports/calls", queue=SUPPORT, outcome="overflowed",
                         since=period["since"], until=period["until"])
    assert [c["id"] for c in response.json()["calls"]] == ["rp6"]


async def test_call_records_as_csv_are_safe_in_a_spreadsheet(client: httpx.AsyncClient, admin_key: str,
                                                             dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/calls", since="2026-03-08T06:00:00Z",
                         until="2026-03-08T07:00:00Z", queue=SALES, number=NUMBER, format="csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["id"] == "rp1" and row["disposition_notes"] == "'=HYPERLINK(\"x\")"
    assert row["legs"] == "caller:rp1.caller;agent:rp1.agent" and row["wait_s"] == "15.0"


# ---- the campaign report -----------------------------------------------------------------------------


async def test_campaign_report_by_day(client: httpx.AsyncClient, admin_key: str, dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/campaigns", **{
        "from": "2026-03-10", "to": "2026-03-10", "tz": "America/New_York", "campaign": "rp-camp"})
    assert response.status_code == 200, response.text
    [campaign] = response.json()["campaigns"]
    day = campaign["total"]
    # 3 attempts (no answer, answered, abandoned; the cancelled one is none) at 2 contacts
    assert (day["attempts"], day["contacts_dialed"], day["contacts_reached"]) == (3, 2, 1)
    assert (day["answered_by_person"], day["abandoned"]) == (2, 1)
    assert day["answer_rate_pct"] == pytest.approx(66.667) and day["abandon_pct"] == 50.0
    assert day["outcomes"] == {"abandoned": 1, "answered": 1, "no_answer": 1}
    assert day["dispositions"] == {"sale": 1}
    # 300 s of talk (16:00:10-16:05:10) over the agent's 2 logged-in hours
    assert (day["talk_s"], day["agent_hours"], day["talk_per_agent_hour_s"]) == (300.0, 2.0, 150.0)
    response = await get(client, admin_key, "/v1/reports/campaigns", **{
        "from": "2026-03-10", "to": "2026-03-10", "tz": "America/New_York", "campaign": "rp-camp",
        "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[-1]["start"] == "total" and rows[-1]["outcome_answered"] == "1"
    assert rows[-1]["disposition_sale"] == "1"


# ---- open items ---------------------------------------------------------------------------------------


async def test_open_items_oldest_first_and_paged(client: httpx.AsyncClient, admin_key: str, runtime: Runtime,
                                                 dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/open-items", queue=SALES)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["call_id"], i["code"], i["agent_id"]) for i in items] == [("rp1", "sale", AGENT),
                                                                          ("rp4", "call-back", None)]
    assert items[0]["notes"] == '=HYPERLINK("x")' and items[0]["caller_number"] == NUMBER
    first = (await get(client, admin_key, "/v1/reports/open-items", queue=SALES, limit=1)).json()
    second = (await get(client, admin_key, "/v1/reports/open-items", queue=SALES, limit=1,
                        after=first["next_cursor"])).json()
    assert [i["call_id"] for i in first["items"] + second["items"]] == ["rp1", "rp4"]
    response = await get(client, admin_key, "/v1/reports/open-items", queue=SALES, format="csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["call_id"] for r in rows] == ["rp1", "rp4"] and rows[0]["notes"] == "'=HYPERLINK(\"x\")"
    _, own = await runtime.api_keys.create("rp-agent-open", Role.AGENT, None, agent_id=AGENT)
    response = await get(client, own, "/v1/reports/open-items")
    assert [i["call_id"] for i in response.json()["items"]] == ["rp1"]
    assert (await get(client, own, "/v1/reports/open-items", agent="someone-else")).status_code == 403


# ---- one number's history ---------------------------------------------------------------------------


async def test_history_of_a_number_in_time_order(client: httpx.AsyncClient, admin_key: str,
                                                 dataset: None) -> None:
    response = await get(client, admin_key, "/v1/reports/history", number=NUMBER)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["kind"] for i in items] == ["call", "recording", "disposition", "voicemail", "campaign_attempt"]
    assert items[0]["call_id"] == "rp1" and items[0]["outcome"] == "answered"
    assert items[2]["outcome"] == "sale" and items[4]["campaign_id"] == "rp-camp"
    assert items[4]["outcome"] == "no_answer"
    response = await get(client, admin_key, "/v1/reports/history", number=NUMBER,
                         since="2026-03-09T00:00:00Z")
    assert [i["kind"] for i in response.json()["items"]] == ["voicemail", "campaign_attempt"]


# ---- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "words"), [
    ("/v1/reports/queues", {"from": "2026-03-08", "to": "2026-03-08", "tz": "Mars/Olympus"}, "time zone"),
    ("/v1/reports/queues", {"from": "2026-03-08", "to": "2026-03-08", "interval": "45"}, "interval"),
    ("/v1/reports/queues", {"from": "2026-03-09", "to": "2026-03-08"}, "before it starts"),
    ("/v1/reports/queues", {"from": "2026-01-01", "to": "2026-03-08", "interval": "15"}, "at most 31 days"),
    ("/v1/reports/agents", {"from": "2025-01-01", "to": "2026-03-08", "interval": "day"}, "at most 366 days"),
    ("/v1/reports/queues", {"from": "2026-03-08", "to": "2026-03-08", "queue": "Bad Name"}, "not a valid"),
    ("/v1/reports/queues", {"from": "2026-02-30", "to": "2026-03-08"}, "from"),
    ("/v1/reports/calls", {"since": "2026-03-09T00:00:00Z", "until": "2026-03-08T00:00:00Z"},
     "after 'since'"),
    ("/v1/reports/calls", {"since": "2024-01-01T00:00:00Z", "until": "2026-03-08T00:00:00Z"}, "366 days"),
    ("/v1/reports/calls", {"since": "2026-03-08T00:00:00Z", "until": "2026-03-09T00:00:00Z", "after": "!!"},
     "cursor"),
    ("/v1/reports/calls", {"since": "2026-03-08T00:00:00Z", "until": "2026-03-09T00:00:00Z",
                           "outcome": "lost"}, "outcome"),
    ("/v1/reports/calls", {"since": "2026-03-08", "until": "2026-03-09T00:00:00Z"}, "since"),
    ("/v1/reports/history", {"number": "=cmd"}, "number"),
    ("/v1/reports/queues", {"from": "2026-03-08", "to": "2026-03-08", "format": "xml"}, "format"),
])
async def test_bad_parameters_are_422(client: httpx.AsyncClient, admin_key: str, path: str,
                                      params: dict[str, str], words: str) -> None:
    response = await get(client, admin_key, path, **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.text
