"""Campaigns through the API: settings and their validation, the state table, CSV contact
imports (bad rows, duplicates, lead fields, progress), exports, callbacks, do-not-call lists."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from controller.bootstrap import Runtime
from tests.api.conftest import bearer
from tests.api.test_acd_agents import make_agent
from tests.api.test_inbound_flows import unique


@pytest.fixture
async def queue(client: httpx.AsyncClient, admin_key: str) -> str:
    name = unique("outbound")
    made = await client.post("/v1/queues", headers=bearer(admin_key), json={"name": name})
    assert made.status_code == 201, made.text
    return name


async def make_campaign(client: httpx.AsyncClient, key: str, queue: str, **fields: Any) -> str:
    campaign_id = unique("camp")
    made = await client.post("/v1/campaigns", headers=bearer(key), json={
        "id": campaign_id, "name": "Renewals", "mode": "progressive", "queue": queue, **fields})
    assert made.status_code == 201, made.text
    return campaign_id


async def upload(client: httpx.AsyncClient, key: str, campaign_id: str, text: str | bytes,
                 **form: str) -> httpx.Response:
    data = text.encode() if isinstance(text, str) else text
    return await client.post(f"/v1/campaigns/{campaign_id}/contacts", headers=bearer(key),
                             files={"file": ("leads.csv", data, "text/csv")}, data=form)


# ---- settings ---------------------------------------------------------------------------


async def test_create_read_replace_delete(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    campaign_id = unique("camp")
    body = {"id": campaign_id, "name": "Spring renewals", "mode": "power", "ratio": 2.5, "queue": queue,
            "timezone": "America/Chicago",
            "caller_id": {"pool": ["+14155550100", "+12125550100"]},
            "calling_windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
                                 "end": "21:00"},
                                {"days": ["sat"], "start": "10:00", "end": "18:00"}],
            "max_attempts": 4,
            "retry_rules": [{"outcome": "busy", "delays_s": [120, 600]},
                            {"outcome": "no_answer", "delays_s": [3600], "max_retries": 2}],
            "dispositions": ["sale", "no-sale", "callback"],
            "amd": {"enabled": True, "initial_silence_ms": 3000},
            "abandon_target_pct": 2.5}
    created = await client.post("/v1/campaigns", headers=bearer(admin_key), json=body)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["state"] == "draft" and out["ratio"] == 2.5 and out["mode"] == "power"
    assert out["caller_id"] == {"fixed": None, "pool": ["+14155550100", "+12125550100"],
                                "local_presence": True}
    assert out["retry_rules"][1] == {"outcome": "no_answer", "delays_s": [3600], "max_retries": 2}
    assert out["amd"]["enabled"] is True and out["amd"]["initial_silence_ms"] == 3000
    assert out["amd"]["greeting_ms"] == 1500 and out["amd"]["on_machine"] == "hangup"
    assert out["hopper_size"] == 50 and out["abandon_window_h"] == 24

    again = await client.post("/v1/campaigns", headers=bearer(admin_key), json=body)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"

    got = await client.get(f"/v1/campaigns/{campaign_id}", headers=bearer(admin_key))
    assert got.status_code == 200
    states = ("ready", "queued", "dialing", "done", "exhausted", "dnc")
    assert got.json()["contacts"] == {s: 0 for s in states}
    listed = await client.get("/v1/campaigns", headers=bearer(admin_key))
    assert campaign_id in [c["id"] for c in listed.json()]

    replaced = await client.put(f"/v1/campaigns/{campaign_id}", headers=bearer(admin_key),
                                json={"name": "Renewals", "mode": "progressive", "queue": queue})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["ratio"] is None and replaced.json()["max_attempts"] == 5
    assert replaced.json()["timezone"] == "UTC"

    assert (await client.delete(f"/v1/campaigns/{campaign_id}", headers=bearer(admin_key))).status_code == 204
    assert (await client.get(f"/v1/campaigns/{campaign_id}", headers=bearer(admin_key))).status_code == 404


def base(queue: str) -> dict[str, Any]:
    return {"id": unique("camp"), "name": "x", "mode": "progressive", "queue": queue}


BAD_CAMPAIGNS: dict[str, tuple[dict[str, Any], str]] = {
    "no mode": ({"mode": None}, "mode"),
    "unknown mode": ({"mode": "robot"}, "mode"),
    "bad id": ({"id": "Has Spaces"}, "id"),
    "unknown field": ({"colour": "red"}, "colour"),
    "control char in name": ({"name": "a\nb"}, "name"),
    "unknown queue": ({"queue": "no-such-queue"}, "queue"),
    "ratio without power": ({"ratio": 2}, "ratio"),
    "power without ratio": ({"mode": "power"}, "ratio"),
    "ratio too high": ({"mode": "power", "ratio": 50}, "ratio"),
    "unknown zone": ({"timezone": "Mars/Olympus"}, "timezone"),
    "window end before start": ({"calling_windows": [{"days": ["mon"], "start": "18:00", "end": "09:00"}]},
                                "calling_windows"),
    "window bad hour": ({"calling_windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]},
                        "calling_windows"),
    "window unknown day": ({"calling_windows": [{"days": ["funday"], "start": "09:00", "end": "10:00"}]},
                           "calling_windows"),
    "no windows": ({"calling_windows": []}, "calling_windows"),
    "retry for answered": ({"retry_rules": [{"outcome": "answered", "delays_s": [60]}]}, "retry_rules"),
    "two rules one outcome": ({"retry_rules": [{"outcome": "busy", "delays_s": [60]},
                                               {"outcome": "busy", "delays_s": [60]}]}, "retry_rules"),
    "negative delay": ({"retry_rules": [{"outcome": "busy", "delays_s": [-5]}]}, "retry_rules"),
    "caller id not e164": ({"caller_id": {"fixed": "4155550100"}}, "caller_id"),
    "caller id no such range": ({"caller_id": {"fixed": "+10005550100"}}, "caller_id"),
    "fixed and pool": ({"caller_id": {"fixed": "+14155550100", "pool": ["+14155550101"]}}, "caller_id"),
    "max attempts zero": ({"max_attempts": 0}, "max_attempts"),
    "abandon target over 100": ({"abandon_target_pct": 150}, "abandon_target_pct"),
    "amd message without prompt": ({"amd": {"on_machine": "message"}}, "amd.message_prompt"),
    "amd message unknown prompt": ({"amd": {"on_machine": "message", "message_prompt": "nope-nope"}},
                                   "amd.message_prompt"),
    "amd unknown setting": ({"amd": {"beep": True}}, "amd"),
    "disposition twice": ({"dispositions": ["sale", "sale"]}, "dispositions"),
    "hopper size zero": ({"hopper_size": 0}, "hopper_size"),
    "abandon message with a separator": ({"abandon_message": "im-sorry,hangup"}, "abandon_message"),
    "abandon message with CR LF": ({"abandon_message": "im-sorry\r\nx"}, "abandon_message"),
    "abandon message not text": ({"abandon_message": 5}, "abandon_message"),
}


@pytest.mark.parametrize("case", list(BAD_CAMPAIGNS))
async def test_bad_campaigns_are_422_naming_the_field(client: httpx.AsyncClient, admin_key: str, queue: str,
                                                      case: str) -> None:
    change, field = BAD_CAMPAIGNS[case]
    body = {k: v for k, v in {**base(queue), **change}.items() if v is not None}
    response = await client.post("/v1/campaigns", headers=bearer(admin_key), json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"], response.json()
    left = await client.get(f"/v1/campaigns/{body.get('id')}", headers=bearer(admin_key))
    assert left.status_code in (404, 422)  # nothing half-written


async def test_an_abandon_message_is_kept(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    body = {**base(queue), "abandon_message": "custom/sorry-we-called"}
    made = await client.post("/v1/campaigns", headers=bearer(admin_key), json=body)
    assert made.status_code == 201, made.text
    assert made.json()["abandon_message"] == "custom/sorry-we-called"
    without = await client.post("/v1/campaigns", headers=bearer(admin_key), json={**base(queue)})
    assert without.status_code == 201 and without.json()["abandon_message"] is None


async def test_stats_of_a_new_campaign(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    await upload(client, admin_key, campaign_id, "phone\n+14155550181\n+14155550182\n")
    stats = await client.get(f"/v1/campaigns/{campaign_id}/stats", headers=bearer(admin_key))
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["contacts"]["ready"] == 2 and body["state"] == "draft"
    assert (body["dialed"], body["attempts_open"], body["contacts_reached"]) == (0, 0, 0)
    assert body["answer_rate"] is body["abandon_rate_total"] is body["abandon_rate_window"] is None
    assert body["in_flight"] == {"dialing_here": False, "ringing": 0, "waiting": 0, "abandoning": 0}
    missing = await client.get("/v1/campaigns/no-such-campaign/stats", headers=bearer(admin_key))
    assert missing.status_code == 404
    bad = await client.get("/v1/campaigns/bad%20id!/stats", headers=bearer(admin_key))
    assert bad.status_code == 422


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient, admin_key: str) -> None:
    assert (await client.get("/v1/campaigns/nobody-here", headers=bearer(admin_key))).status_code == 404
    start = await client.post("/v1/campaigns/nobody-here/start", headers=bearer(admin_key))
    assert start.status_code == 404
    bad = await client.get("/v1/campaigns/NOT%20OK", headers=bearer(admin_key))
    assert bad.status_code == 422 and "campaign_id" in bad.json()["detail"]


# ---- the state table ----------------------------------------------------------------------


async def test_start_pause_stop_follow_the_state_table(client: httpx.AsyncClient, admin_key: str,
                                                       queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    path = f"/v1/campaigns/{campaign_id}"

    async def act(action: str) -> httpx.Response:
        return await client.post(f"{path}/{action}", headers=bearer(admin_key))

    assert (await act("pause")).status_code == 409  # a draft was never running
    started = await act("start")
    assert started.status_code == 200 and started.json()["state"] == "running"
    assert started.json()["started_at"] is not None
    conflict = await act("start")
    assert conflict.status_code == 409
    assert conflict.json()["type"].endswith("/campaign-state") and "running" in conflict.json()["detail"]
    delete_running = await client.delete(path, headers=bearer(admin_key))
    assert delete_running.status_code == 409
    assert (await act("pause")).json()["state"] == "paused"
    assert (await act("pause")).status_code == 409
    assert (await act("start")).json()["state"] == "running"
    stopped = await act("stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    for action in ("start", "pause", "stop"):
        assert (await act(action)).status_code == 409
    put = await client.put(path, headers=bearer(admin_key),
                           json={"name": "x", "mode": "preview", "queue": queue})
    assert put.status_code == 409
    assert (await upload(client, admin_key, campaign_id, "phone\n+14155550100\n")).status_code == 409
    assert (await client.delete(path, headers=bearer(admin_key))).status_code == 204


async def test_integrations_read_but_do_not_write(client: httpx.AsyncClient, admin_key: str,
                                                  keys: dict[Any, str], queue: str) -> None:
    from controller.domain.access import Role

    campaign_id = await make_campaign(client, admin_key, queue)
    integration = keys[Role.INTEGRATION]
    assert (await client.get(f"/v1/campaigns/{campaign_id}", headers=bearer(integration))).status_code == 200
    assert (await client.post(f"/v1/campaigns/{campaign_id}/start",
                              headers=bearer(integration))).status_code == 403
    supervisor = keys[Role.SUPERVISOR]
    assert (await client.post(f"/v1/campaigns/{campaign_id}/start",
                              headers=bearer(supervisor))).status_code == 200


# ---- contacts ---------------------------------------------------------------------------


LEADS = """Phone,First name,Account,TZ
+1 415 555 0100,Ada,A-1,
(212) 555-0123,Grace,A-2,
not a number,Bad,A-3,
+1 099 555 0100,NoSuchArea,A-4,
415-555-0100,Ada again,,
+44 20 7946 0000,Alan,A-5,Europe/London
+1 907 555 0100,Sam,A-6,
+33 6 12 34 56 78,Marie,A-7,Mars/Base
,Empty,A-8,
+1 212 555 0199,Hopper,=HYPERLINK("http://evil"),America/Chicago
"""


async def test_a_csv_import_keeps_good_rows_and_reports_bad_ones(client: httpx.AsyncClient, admin_key: str,
                                                                 queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue, timezone="Europe/Paris")
    response = await upload(client, admin_key, campaign_id, LEADS, phone_column="Phone", timezone_column="TZ",
                            default_region="US")
    assert response.status_code == 202, response.text
    imported = response.json()
    assert imported["state"] == "done" and imported["file_name"] == "leads.csv"
    assert imported["total_rows"] == 10 and imported["rows_done"] == 10
    assert imported["imported"] == 5 and imported["merged"] == 1 and imported["invalid"] == 4
    reasons = {e["line"]: e["reason"] for e in imported["errors"]}
    assert set(reasons) == {4, 5, 9, 10}
    assert "Phone: not a phone number" in reasons[4]
    assert "not a valid number" in reasons[5]
    assert "TZ: unknown time zone 'Mars/Base'" == reasons[9]
    assert "Phone: empty" == reasons[10]

    listed = await client.get(f"/v1/campaigns/{campaign_id}/contacts", headers=bearer(admin_key))
    assert listed.status_code == 200
    contacts = {c["number"]: c for c in listed.json()}
    assert set(contacts) == {"+14155550100", "+12125550123", "+442079460000", "+19075550100", "+12125550199"}
    ada = contacts["+14155550100"]
    # The duplicate merged: its non-empty fields won, its empty Account did not erase A-1.
    assert ada["fields"] == {"First name": "Ada again", "Account": "A-1"}
    assert ada["timezones"] == ["America/Los_Angeles"] and ada["timezone_source"] == "number"
    assert ada["state"] == "ready" and ada["attempts"] == 0
    assert contacts["+442079460000"]["timezones"] == ["Europe/London"]
    assert contacts["+442079460000"]["timezone_source"] == "column"
    assert set(contacts["+19075550100"]["timezones"]) == {"America/Adak", "America/Anchorage"}
    assert contacts["+12125550199"]["timezones"] == ["America/Chicago"]

    detail = await client.get(f"/v1/campaigns/{campaign_id}/contacts/{ada['id']}", headers=bearer(admin_key))
    assert detail.status_code == 200 and detail.json()["attempts_made"] == []

    counts = (await client.get(f"/v1/campaigns/{campaign_id}", headers=bearer(admin_key))).json()["contacts"]
    assert counts["ready"] == 5

    imports = await client.get(f"/v1/campaigns/{campaign_id}/imports", headers=bearer(admin_key))
    assert [i["id"] for i in imports.json()] == [imported["id"]]
    one = await client.get(f"/v1/campaigns/{campaign_id}/imports/{imported['id']}", headers=bearer(admin_key))
    assert one.json()["imported"] == 5

    # Uploading the same file again merges every good row.
    again = (await upload(client, admin_key, campaign_id, LEADS, phone_column="Phone", timezone_column="TZ",
                          default_region="US")).json()
    assert again["imported"] == 0 and again["merged"] == 6 and again["invalid"] == 4


async def test_the_export_never_runs_formulas(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    text = 'phone,note,@who\n+14155550100,=cmd|" /C calc"!A0,-1+2\n+14155550101,fine,+3\n'
    assert (await upload(client, admin_key, campaign_id, text)).json()["imported"] == 2
    exported = await client.get(f"/v1/campaigns/{campaign_id}/contacts/export", headers=bearer(admin_key))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(exported.text)))
    header = table[0]
    assert header[:3] == ["id", "number", "state"] and header[-2:] == ["'@who", "note"]
    first = dict(zip(header, table[1], strict=True))
    assert first["number"] == "+14155550100"  # a plain number stays a number
    assert first["note"] == "'=cmd|\" /C calc\"!A0" and first["'@who"] == "'-1+2"
    second = dict(zip(header, table[2], strict=True))
    assert second["note"] == "fine" and second["'@who"] == "+3"


BAD_FILES: dict[str, tuple[bytes, dict[str, str], int, str]] = {
    "empty": (b"", {}, 422, "empty"),
    "not utf-8": ("phone\n+14155550100\nJos\xe9\n".encode("latin-1"), {}, 422, "UTF-8"),
    "no phone column": (b"number\n+14155550100\n", {}, 422, "phone_column"),
    "no timezone column": (b"phone\n+14155550100\n", {"timezone_column": "tz"}, 422, "timezone_column"),
    "unknown region": (b"phone\n4155550100\n", {"default_region": "XX"}, 422, "region"),
    "malformed region": (b"phone\n4155550100\n", {"default_region": "usa"}, 422, "default_region"),
    "unknown delimiter": (b"phone\n+14155550100\n", {"delimiter": ":"}, 422, "delimiter"),
    "duplicate columns": (b"phone,a,a\n+14155550100,1,2\n", {}, 422, "twice"),
    "nul bytes": (b"phone\n+1415\x005550100\n", {}, 422, "NUL"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_unusable_files_are_refused_whole(client: httpx.AsyncClient, admin_key: str, queue: str,
                                                case: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    data, form, status, words = BAD_FILES[case]
    response = await upload(client, admin_key, campaign_id, data, **form)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]
    imports = await client.get(f"/v1/campaigns/{campaign_id}/imports", headers=bearer(admin_key))
    assert imports.json() == []  # nothing half-written


async def test_other_delimiters_and_national_numbers(client: httpx.AsyncClient, admin_key: str,
                                                     queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    text = "tel;name\n020 7946 0000;Alan\n07911 123456;Mobile\n"
    done = (await upload(client, admin_key, campaign_id, text, phone_column="tel", delimiter=";",
                         default_region="GB")).json()
    assert done["imported"] == 2 and done["invalid"] == 0, done
    contacts = (await client.get(f"/v1/campaigns/{campaign_id}/contacts", headers=bearer(admin_key))).json()
    assert sorted(c["number"] for c in contacts) == ["+442079460000", "+447911123456"]


async def test_too_large_a_file_is_413(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    big = b"phone\n" + b"+14155550100\n" * (20 * 1024 * 1024 // 13 + 10)
    response = await upload(client, admin_key, campaign_id, big)
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"


async def test_a_large_import_is_handed_over_and_its_progress_shown(client: httpx.AsyncClient, admin_key: str,
                                                                   runtime: Runtime, queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    handed: list[UUID] = []

    async def enqueue(import_id: UUID) -> None:
        handed.append(import_id)

    saved = runtime.contacts.inline_rows, runtime.contacts.enqueue
    runtime.contacts.inline_rows, runtime.contacts.enqueue = 3, enqueue
    try:
        rows = "".join(f"+1415555{n:04d},lead {n}\n" for n in range(1200))
        response = await upload(client, admin_key, campaign_id, "phone,name\n" + rows + "bad,row\n")
    finally:
        runtime.contacts.inline_rows, runtime.contacts.enqueue = saved
    assert response.status_code == 202
    pending = response.json()
    assert pending["state"] == "pending" and pending["total_rows"] == 1201 and pending["rows_done"] == 0
    assert handed == [UUID(pending["id"])]

    # What the worker's task does (tests/services runs the Celery task itself).
    await runtime.contacts.process(handed[0])
    done = (await client.get(f"/v1/campaigns/{campaign_id}/imports/{pending['id']}",
                             headers=bearer(admin_key))).json()
    assert done["state"] == "done" and done["rows_done"] == 1201
    assert done["imported"] == 1200 and done["invalid"] == 1 and done["errors"][0]["line"] == 1202
    assert done["started_at"] is not None and done["finished_at"] is not None
    # A second delivery of the task finds nothing to do.
    assert await runtime.contacts.process(handed[0]) is None


async def test_contact_listing_pages_and_filters(client: httpx.AsyncClient, admin_key: str,
                                                  queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    rows = "".join(f"+1415555{n:04d}\n" for n in range(5))
    await upload(client, admin_key, campaign_id, "phone\n" + rows)
    path = f"/v1/campaigns/{campaign_id}/contacts"
    first = (await client.get(path, params={"limit": 2}, headers=bearer(admin_key))).json()
    rest = (await client.get(path, params={"after_id": first[-1]["id"]}, headers=bearer(admin_key))).json()
    assert len(first) == 2 and len(rest) == 3
    assert (await client.get(path, params={"state": "done"}, headers=bearer(admin_key))).json() == []
    bad = await client.get(path, params={"state": "sleeping"}, headers=bearer(admin_key))
    assert bad.status_code == 422 and "state" in bad.json()["detail"]
    missing = await client.get(f"{path}/999999999", headers=bearer(admin_key))
    assert missing.status_code == 404


async def test_scheduled_callbacks(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    await upload(client, admin_key, campaign_id, "phone\n+14155550100\n")
    [contact] = (await client.get(f"/v1/campaigns/{campaign_id}/contacts", headers=bearer(admin_key))).json()
    agent = await make_agent(client, admin_key)
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    path = f"/v1/campaigns/{campaign_id}/contacts/{contact['id']}/callback"
    made = await client.post(path, headers=bearer(admin_key),
                             json={"at": when.isoformat(), "agent_id": agent})
    assert made.status_code == 200, made.text
    assert datetime.fromisoformat(made.json()["callback_at"]) == when
    assert datetime.fromisoformat(made.json()["next_attempt_at"]) == when
    assert made.json()["callback_agent_id"] == agent
    unknown = await client.post(path, headers=bearer(admin_key),
                                json={"at": when.isoformat(), "agent_id": "ghost"})
    assert unknown.status_code == 422 and "agent_id" in unknown.json()["detail"]
    naive = await client.post(path, headers=bearer(admin_key), json={"at": "2026-12-01T10:00:00"})
    assert naive.status_code == 422


# ---- do not call ------------------------------------------------------------------------


async def test_dnc_add_list_remove(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    number = f"+1415555{int(unique('n')[-4:], 16) % 10000:04d}"
    added = await client.post("/v1/dnc", headers=bearer(admin_key),
                              json={"number": number, "reason": "asked"})
    assert added.status_code == 201, added.text
    assert added.json()["new"] is True and added.json()["campaign_id"] is None
    national = await client.post("/v1/dnc", headers=bearer(admin_key),
                                 json={"number": number[2:], "default_region": "US"})
    assert national.status_code == 200 and national.json()["new"] is False  # the same number

    campaign_id = await make_campaign(client, admin_key, queue)
    own = await client.post("/v1/dnc", headers=bearer(admin_key),
                            json={"number": "+12125550123", "campaign_id": campaign_id})
    assert own.status_code == 201 and own.json()["campaign_id"] == campaign_id

    listed = (await client.get("/v1/dnc", params={"number": number}, headers=bearer(admin_key))).json()
    assert [(d["number"], d["reason"]) for d in listed] == [(number, "asked")]
    scoped = (await client.get("/v1/dnc", params={"campaign_id": campaign_id},
                               headers=bearer(admin_key))).json()
    assert [d["number"] for d in scoped] == ["+12125550123"]

    async def delete(number: str, **params: str) -> int:
        response = await client.delete("/v1/dnc", params={"number": number, **params},
                                       headers=bearer(admin_key))
        return response.status_code

    assert await delete(number) == 204
    assert await delete(number) == 404
    # The campaign's entry is not on the global list.
    assert await delete("+12125550123") == 404
    assert await delete("+12125550123", campaign_id=campaign_id) == 204
    assert await delete("4155550100") == 422  # E.164 only


BAD_DNC = {
    "not a number": ({"number": "hello"}, "number"),
    "no country": ({"number": "4155550100"}, "number"),
    "invalid range": ({"number": "+10995550100"}, "number"),
    "unknown campaign": ({"number": "+14155550100", "campaign_id": "no-such-campaign"}, "campaign"),
    "bad region": ({"number": "4155550100", "default_region": "ZZ"}, "region"),
    "unknown field": ({"number": "+14155550100", "why": "x"}, "why"),
    "control char in reason": ({"number": "+14155550100", "reason": "a\nb"}, "reason"),
}


@pytest.mark.parametrize("case", list(BAD_DNC))
async def test_bad_dnc_entries(client: httpx.AsyncClient, admin_key: str, case: str) -> None:
    body, field = BAD_DNC[case]
    response = await client.post("/v1/dnc", headers=bearer(admin_key), json=body)
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"]


async def test_dnc_bulk_import(client: httpx.AsyncClient, admin_key: str, queue: str) -> None:
    campaign_id = await make_campaign(client, admin_key, queue)
    text = "name,number\nA,+1 415 555 0170\nB,nope\nC,(415) 555-0171\nD,+14155550170\nE,\n"
    response = await client.post("/v1/dnc/import", headers=bearer(admin_key),
                                 files={"file": ("dnc.csv", text.encode(), "text/csv")},
                                 data={"column": "number", "default_region": "US",
                                       "campaign_id": campaign_id})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result == {"total_rows": 5, "added": 2, "already_listed": 1, "invalid": 2,
                      "errors": [{"line": 3, "reason": "number: not a phone number"},
                                 {"line": 6, "reason": "number: empty"}]}
    listed = (await client.get("/v1/dnc", params={"campaign_id": campaign_id},
                               headers=bearer(admin_key))).json()
    assert sorted(d["number"] for d in listed) == ["+14155550170", "+14155550171"]

    headerless = await client.post("/v1/dnc/import", headers=bearer(admin_key),
                                   files={"file": ("dnc.csv", b"+14155550172\n+14155550173\n", "text/csv")},
                                   data={"campaign_id": campaign_id})
    assert headerless.json()["added"] == 2
    missing = await client.post("/v1/dnc/import", headers=bearer(admin_key),
                                files={"file": ("dnc.csv", b"phone\n+14155550172\n", "text/csv")},
                                data={"column": "number"})
    assert missing.status_code == 422 and "number" in missing.json()["detail"]
