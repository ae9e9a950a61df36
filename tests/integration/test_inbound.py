"""Inbound calls on the real Asterisk: routes, IVR menus driven by real DTMF, collect with
validation, schedules, voicemail, CRM lookups, route limits and flow versions.

Each caller is a Local channel whose caller side the test holds in its own Stasis
application (tests/integration/phones.py): it waits for the answer, presses real DTMF keys on
its channel, plays audio into the call and hangs up. Flows, routes and schedules are created
through the REST API, as a user would.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from tests.conftest import eventually
from tests.integration.helpers import call_clock, ended_call, event_kinds, flow, played, put, route

pytestmark = pytest.mark.asterisk

SHORT = "sound:beep"
PROMPT = "sound:agent-pass"  # about 3 s


MENU = {
    "menu": {"type": "menu", "prompts": [PROMPT], "options": {"1": "one", "2": "account"},
             "timeout_s": 1.5, "retries": 2, "invalid_prompts": [SHORT], "timeout_prompts": [SHORT],
             "on_failure": "failed"},
    "one": {"type": "set", "values": {"branch": "one"}, "next": "bye"},
    "account": {"type": "collect", "prompts": [SHORT], "variable": "account", "min_digits": 3,
                "max_digits": 6, "terminator": "#", "timeout_s": 2, "pattern": "^1[0-9]*$",
                "retries": 2, "invalid_prompts": [SHORT], "next": "got", "on_failure": "failed"},
    "got": {"type": "set", "values": {"branch": "collected"}, "next": "bye"},
    "failed": {"type": "set", "values": {"branch": "failed"}, "next": "bye"},
    "bye": {"type": "hangup"},
}


async def test_menu_branches_retries_timeouts_and_collect(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    await flow(client, "menu-test", MENU, "menu")
    await route(client, "menu-test", "7001", "menu-test")

    # Option 1, pressed during the greeting (barge-in).
    since = call_clock()
    phone = await dtmf_phones.call("7001")
    await phone.wait_answered()
    await asyncio.sleep(0.5)
    await phone.press("1")
    call = await ended_call(runtime, db_conn, "7001", since)
    assert call["data"]["branch"] == "one"
    assert call["flow_name"] == "menu-test" and call["route_name"] == "menu-test"
    assert played(await event_kinds(db_conn, call["id"]))[0] == PROMPT
    await phone.wait_gone()

    # An invalid key, then option 2, then digits that fail the pattern, then good ones.
    since = call_clock()
    phone = await dtmf_phones.call("7001")
    await phone.wait_answered()
    await asyncio.sleep(0.5)
    await phone.press("9")
    await asyncio.sleep(1.0)
    await phone.press("2")
    await asyncio.sleep(1.0)
    await phone.press("999#")
    await asyncio.sleep(1.0)
    await phone.press("12345#")
    call = await ended_call(runtime, db_conn, "7001", since)
    assert call["data"]["branch"] == "collected"
    assert call["data"]["account"] == "12345"
    events = await event_kinds(db_conn, call["id"])
    digits = "".join(data["digit"] for kind, data in events if kind == "DtmfReceived")
    assert digits == "92999#12345#"
    assert played(events).count(SHORT) >= 3  # invalid option, collect prompt, invalid digits

    # No key at all: the timeout path twice, then on_failure.
    since = call_clock()
    phone = await dtmf_phones.call("7001")
    await phone.wait_answered()
    call = await ended_call(runtime, db_conn, "7001", since, timeout=40)
    assert call["data"]["branch"] == "failed"
    assert played(await event_kinds(db_conn, call["id"])).count(PROMPT) == 2


async def test_closed_hours_take_the_closed_branch_and_leave_a_voicemail(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    today = datetime.now(UTC).date()
    # Closed today and tomorrow by the schedule itself, whatever the machine's clock says.
    await put(client, "/v1/schedules", {"name": "office-closed", "timezone": "UTC",
              "weekly": {day: [["00:00", "23:59"]] for day in
                         ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
              "holidays": [{"date": str(today), "name": "test"},
                           {"date": str(today + timedelta(days=1)), "name": "test"}]})
    nodes = {
        "hours": {"type": "condition", "when": [{"schedule": "office-closed", "open": False,
                                                 "next": "closed"}], "else": "open"},
        "open": {"type": "set", "values": {"branch": "open"}, "next": "bye"},
        "closed": {"type": "voicemail", "mailbox": "sales", "prompts": [SHORT],
                   "max_duration_s": 30},
        "bye": {"type": "hangup"},
    }
    await flow(client, "after-hours", nodes, "hours")
    await route(client, "after-hours", "7002", "after-hours")

    since = call_clock()
    phone = await dtmf_phones.call("7002", caller_id='"Carol" <5554321>')
    await phone.wait_answered()
    await asyncio.sleep(1.0)  # the prompt and the beep
    speak = await dtmf_phones.client.post(f"/channels/{phone.id}/play",
                                          params={"media": "sound:demo-congrats"})
    speak.raise_for_status()
    await asyncio.sleep(3.0)
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7002", since)
    assert call["data"].get("branch") != "open"

    async def voicemail_listed() -> bool:
        listed = (await client.get("/v1/voicemails", params={"mailbox": "sales"})).json()
        return any(v["call_id"] == call["id"] for v in listed)

    await eventually(voicemail_listed, 10, what="the voicemail in the API")
    listed = (await client.get("/v1/voicemails", params={"mailbox": "sales"})).json()
    message = next(v for v in listed if v["call_id"] == call["id"])
    assert message["caller_number"] == "5554321"
    assert 1.5 <= message["duration_s"] <= 5
    audio = await client.get(f"/v1/voicemails/{message['id']}/audio")
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    assert len(audio.content) > 8000 * 2 * 1.5  # 8 kHz 16-bit: at least 1.5 s of sound
    part = await client.get(f"/v1/voicemails/{message['id']}/audio", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100

    # Same flow with an open schedule: the open branch.
    await put(client, "/v1/schedules", {"name": "office-closed", "timezone": "UTC",
              "weekly": {day: [["00:00", "23:59"]] for day in
                         ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "holidays": []})
    if datetime.now(UTC).strftime("%H:%M") < "23:59":
        since = call_clock()
        await dtmf_phones.call("7002")
        call = await ended_call(runtime, db_conn, "7002", since)
        assert call["data"]["branch"] == "open"


class Crm:
    """A CRM the flow looks callers up in: answers, answers slowly, or fails."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.requests: list[dict[str, str]] = []
        self.server = uvicorn.Server(uvicorn.Config(
            Starlette(routes=[Route("/caller", self.caller), Route("/slow", self.slow),
                              Route("/broken", self.broken)]),
            host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))

    async def caller(self, request: Request) -> JSONResponse:
        self.requests.append(dict(request.query_params))
        return JSONResponse({"name": "Dana Scully", "tier": "gold", "account": 4242})

    async def slow(self, request: Request) -> JSONResponse:
        await asyncio.sleep(5)
        return JSONResponse({"tier": "gold"})

    async def broken(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=500)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def crm():
    server = Crm()
    task = asyncio.create_task(server.server.serve())
    await eventually(lambda: server.server.started, 5, what="the test CRM to listen")
    yield server
    server.server.should_exit = True
    await task


async def test_lookup_fills_call_data_and_slow_or_failing_lookups_take_the_fallback(
        inbound, crm, dtmf_phones, db_conn):
    runtime, client = inbound
    for name, path in (("lookup-ok", "/caller"), ("lookup-slow", "/slow"), ("lookup-broken", "/broken")):
        nodes = {
            "lookup": {"type": "lookup", "url": crm.url(path), "timeout_s": 1,
                       "fields": {"customer_name": "name", "vip": "tier"}, "next": "check",
                       "on_failure": "fallback"},
            "check": {"type": "condition", "when": [{"data": "vip", "equals": "gold", "next": "vip"}],
                      "else": "fallback"},
            "vip": {"type": "set", "values": {"branch": "vip"}, "next": "bye"},
            "fallback": {"type": "set", "values": {"branch": "fallback"}, "next": "bye"},
            "bye": {"type": "hangup"},
        }
        await flow(client, name, nodes, "lookup")
    await route(client, "lookup-ok", "7101", "lookup-ok")
    await route(client, "lookup-slow", "7102", "lookup-slow")
    await route(client, "lookup-broken", "7103", "lookup-broken")

    since = call_clock()
    await dtmf_phones.call("7101", caller_id='"Dana" <5551111>')
    call = await ended_call(runtime, db_conn, "7101", since)
    assert (call["data"]["branch"], call["data"]["customer_name"], call["data"]["vip"]) == (
        "vip", "Dana Scully", "gold")
    assert crm.requests[-1]["caller_number"] == "5551111" and crm.requests[-1]["dialed"] == "7101"

    for number in ("7102", "7103"):
        since = call_clock()
        started = time.monotonic()
        await dtmf_phones.call(number)
        call = await ended_call(runtime, db_conn, number, since)
        assert call["data"]["branch"] == "fallback" and "vip" not in call["data"]
        events = await event_kinds(db_conn, call["id"])
        assert ("LookupFinished" in [k for k, _ in events])
        assert time.monotonic() - started < 4  # the 5 s CRM did not hold the call


async def test_route_limit_sends_the_call_over_it_to_the_overflow(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    hold = {"wait": {"type": "menu", "prompts": ["sound:demo-congrats"], "options": {"1": "bye"},
                     "timeout_s": 30, "retries": 1, "on_failure": "bye"},
            "bye": {"type": "hangup"}}
    await flow(client, "hold", hold, "wait")
    await route(client, "limited", "7200", "hold", max_concurrent=3, overflow={"action": "busy"})

    since = call_clock()
    inside = [await dtmf_phones.call("7200") for _ in range(3)]
    for phone in inside:
        await phone.wait_answered()
    fourth = await dtmf_phones.call("7200")
    await fourth.wait_gone(timeout=10)
    assert not fourth.answered.is_set()

    await runtime.records.flushed()
    cursor = await db_conn.execute(
        "SELECT * FROM calls WHERE dialed = '7200' AND started_at >= %s ORDER BY started_at", (since,))
    calls = await cursor.fetchall()
    assert len(calls) == 4
    over = [c for c in calls if c["data"].get("overflow") == "yes"]
    assert len(over) == 1 and over[0]["state"] == "ended" and over[0]["answered_at"] is None
    assert over[0]["hangup_cause"] == 17

    # A place frees up when a caller leaves; the next caller gets in.
    await inside[0].press("1")
    await inside[0].wait_gone()
    again = await dtmf_phones.call("7200")
    await again.wait_answered()
    for phone in (*inside[1:], again):
        await phone.hang_up()


async def test_a_flow_edit_does_not_change_calls_already_in_it(inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    def nodes(label: str) -> dict:
        return {"menu": {"type": "menu", "prompts": [PROMPT], "options": {"1": "mark"},
                         "timeout_s": 10, "retries": 1, "on_failure": "bye"},
                "mark": {"type": "set", "values": {"version_label": label}, "next": "bye"},
                "bye": {"type": "hangup"}}

    await flow(client, "edited", nodes("first"), "menu")
    await route(client, "edited", "7300", "edited")
    since = call_clock()
    phone = await dtmf_phones.call("7300")
    await phone.wait_answered()
    await flow(client, "edited", nodes("second"), "menu")  # version 2, mid-call
    await phone.press("1")
    call = await ended_call(runtime, db_conn, "7300", since)
    assert call["data"]["version_label"] == "first" and call["flow_version"] == 1

    since = call_clock()
    phone = await dtmf_phones.call("7300")
    await phone.wait_answered()
    await phone.press("1")
    call = await ended_call(runtime, db_conn, "7300", since)
    assert call["data"]["version_label"] == "second" and call["flow_version"] == 2


async def test_an_invalid_flow_is_refused_naming_the_node(inbound):
    _, client = inbound
    response = await client.post("/v1/flows", json={"name": "broken", "document": {
        "start": "a", "nodes": {"a": {"type": "menu", "prompts": [SHORT], "options": {"1": "nowhere"}}}}})
    assert response.status_code == 422
    assert "'a'" in response.json()["detail"] or "a" in [e.get("node") for e in response.json()["errors"]]


async def test_transfer_bridges_the_caller_to_the_answered_leg_or_takes_on_failure(
        inbound, dtmf_phones, db_conn):
    runtime, client = inbound
    nodes = {
        "xfer": {"type": "transfer", "to": "Local/100@ccc-test-agent", "timeout_s": 10,
                 "on_failure": "failed"},
        "failed": {"type": "set", "values": {"branch": "failed"}, "next": "bye"},
        "bye": {"type": "hangup"},
    }
    await flow(client, "transfer-ok", nodes, "xfer")
    nodes_nobody = {**nodes, "xfer": {**nodes["xfer"], "to": "Local/100@ccc-test-noanswer",
                                      "timeout_s": 2}}
    await flow(client, "transfer-nobody", nodes_nobody, "xfer")
    await route(client, "transfer-ok", "7400", "transfer-ok")
    await route(client, "transfer-nobody", "7401", "transfer-nobody")

    since = call_clock()
    phone = await dtmf_phones.call("7400")
    await phone.wait_answered()

    async def bridged() -> bool:
        bridges = (await dtmf_phones.client.get("/bridges")).json()
        return any(len(b["channels"]) == 2 and b["id"].startswith("br-") for b in bridges)

    await eventually(bridged, 10, what="the caller bridged with the transfer leg")
    bridge = next(b for b in (await dtmf_phones.client.get("/bridges")).json() if b["id"].startswith("br-"))
    live = [c for c in runtime.calls.live_calls() if c.dialed == "7400"]
    assert len(live) == 1
    assert set(bridge["channels"]) == set(live[0].legs)  # the caller's leg and the transfer leg
    await phone.hang_up()
    call = await ended_call(runtime, db_conn, "7400", since)
    assert call["data"]["flow_outcome"] == "transferred"
    cursor = await db_conn.execute("SELECT role, state, answered_at FROM legs WHERE call_id = %s",
                                   (call["id"],))
    legs = {row["role"]: row for row in await cursor.fetchall()}
    assert set(legs) == {"caller", "transfer"}
    assert all(leg["state"] == "ended" and leg["answered_at"] for leg in legs.values())
    await eventually(lambda: _no_bridge(dtmf_phones), 5, what="the bridge to go")

    since = call_clock()
    await dtmf_phones.call("7401")
    call = await ended_call(runtime, db_conn, "7401", since)
    assert call["data"]["branch"] == "failed"


async def _no_bridge(phones) -> bool:
    return not any(b["id"].startswith("br-") for b in (await phones.client.get("/bridges")).json())


async def test_an_uploaded_prompt_plays_in_a_call_and_a_full_route_can_announce(
        inbound, dtmf_phones, db_conn, tmp_path):
    runtime, client = inbound
    tone = tmp_path / "tone.wav"
    await asyncio.to_thread(subprocess.run, ["sox", "-n", "-r", "44100", "-c", "2", str(tone), "synth",
                                             "1.5", "sine", "440"], check=True)
    with tone.open("rb") as audio:
        uploaded = await client.post("/v1/prompts", data={"name": "it-welcome", "replace": "true"},
                                     files={"file": ("tone.wav", audio, "audio/wav")})
    assert uploaded.status_code in (200, 201), uploaded.text
    nodes = {"hello": {"type": "play", "prompts": ["it-welcome"], "next": "bye"},
             "bye": {"type": "hangup"}}
    await flow(client, "uploaded", nodes, "hello")
    hold = {"wait": {"type": "menu", "prompts": ["sound:demo-congrats"], "options": {"1": "bye"},
                     "timeout_s": 30, "retries": 1, "on_failure": "bye"},
            "bye": {"type": "hangup"}}
    await flow(client, "hold-one", hold, "wait")
    await route(client, "uploaded", "7500", "uploaded")
    await route(client, "one-line", "7501", "hold-one", max_concurrent=1,
                overflow={"action": "announce", "prompt": ["it-welcome"]})

    since = call_clock()
    await dtmf_phones.call("7500")
    call = await ended_call(runtime, db_conn, "7500", since)
    events = await event_kinds(db_conn, call["id"])
    assert played(events) == ["sound:ccc/it-welcome"]
    finished = [data for kind, data in events if kind == "PlaybackFinished"]
    assert finished and finished[0]["completed"] is True
    # The whole tone was heard: the hang-up came after about 1.5 s of prompt.
    assert (call["ended_at"] - call["answered_at"]).total_seconds() >= 1.3

    since = call_clock()
    first = await dtmf_phones.call("7501")
    await first.wait_answered()
    await dtmf_phones.call("7501")
    await runtime.records.flushed()

    async def announced() -> bool:
        await runtime.records.flushed()
        cursor = await db_conn.execute(
            "SELECT * FROM calls WHERE dialed = '7501' AND started_at >= %s AND data->>'overflow' = 'yes'",
            (since,))
        row = await cursor.fetchone()
        return row is not None and row["state"] == "ended"

    await eventually(announced, 15, what="the second caller to hear the announcement")
    cursor = await db_conn.execute(
        "SELECT * FROM calls WHERE dialed = '7501' AND started_at >= %s AND data->>'overflow' = 'yes'",
        (since,))
    over = await cursor.fetchone()
    assert over["answered_at"] is not None  # answered to hear the announcement
    assert played(await event_kinds(db_conn, over["id"])) == ["sound:ccc/it-welcome"]
    await first.hang_up()
