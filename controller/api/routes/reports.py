"""Reports (docs/reports.md): call detail records, the queue interval report, the agent report,
the campaign report, one number's interaction history and the open items, as JSON or
(``?format=csv``) CSV.

Admins, supervisors (a key limited to queues: those queues' calls) and integrations (CRMs) read
them; an agent key reads only its own agent's agent report and open items. Every parameter is checked: a bad
zone, interval, date order or a period too long is a 422 naming it."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.destinations import AGENT_ID_PATTERN, QUEUE_PATTERN
from controller.domain.errors import InvalidRequest
from controller.engines import reports as engine
from controller.services.agents import ID_PATTERN
from controller.services.csv_files import write_rows
from controller.services.reports import AgentReport, CampaignReport, Period, QueueReport
from controller.storage.reports import OUTCOMES

router = APIRouter(prefix="/v1/reports", tags=["reports"])

READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
# An agent key reads its own agent's row only (services/reports.py).
AGENT_REPORT_READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)

TZ_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]{0,30}(/[A-Za-z0-9_+-]{1,30}){0,2}$"
REPORT_NUMBER = r"^\+?[0-9*#]{1,32}$"
MAX_LIST = 50
CSV = {200: {"description": "JSON, or CSV with format=csv (cells a spreadsheet would run as formulas "
                            "get a leading apostrophe)",
             "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}}}
PROBLEMS = problems(401, 403, 422, 503)


class Format(StrEnum):
    json = "json"
    csv = "csv"


Outcome = StrEnum("Outcome", {name: name for name in OUTCOMES})  # type: ignore[misc]

Zone = Annotated[str, Query(max_length=64, pattern=TZ_PATTERN,
                            description="IANA time zone the dates and intervals are in, e.g. Europe/Paris")]
FirstDay = Annotated[date, Query(alias="from", description="First local day of the report")]
LastDay = Annotated[date, Query(alias="to", description="Last local day of the report (included)")]
Fmt = Annotated[Format, Query(alias="format", description="json (default) or csv")]


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidRequest(f"unknown time zone {tz!r}") from exc


def _names(values: list[str] | None, pattern: str, what: str) -> list[str] | None:
    if not values:
        return None
    if len(values) > MAX_LIST:
        raise InvalidRequest(f"at most {MAX_LIST} {what}s")
    for value in values:
        if not re.fullmatch(pattern[1:-1], value):
            raise InvalidRequest(f"{what} {value[:70]!r} is not a valid name")
    return values


def _csv(name: str, header: list[str], records: list[list[object]], headers: dict[str, str] | None = None,
         ) -> Response:
    return Response(write_rows(header, records), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}.csv"', **(headers or {})})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ---- call detail records ---------------------------------------------------------------------------


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    try:
        at, call_id = base64.urlsafe_b64decode(value.encode() + b"==").decode().split("|", 1)
        instant = datetime.fromisoformat(at)
        if instant.tzinfo is None or not call_id:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("'after' is not a cursor this API gave (next_cursor of a previous page)",
                             ) from exc
    return instant, call_id


def _next_cursor(at: datetime, key: str) -> str:
    raw = f"{at.isoformat()}|{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CDR_FIELDS = ["id", "direction", "state", "started_at", "answered_at", "ended_at", "caller_number",
              "caller_name", "dialed", "queue", "queues", "agent_id", "outcome", "wait_s", "talk_s",
              "hold_s", "wrap_s", "transferred", "disposition", "disposition_notes", "follow_up",
              "recording_ids", "legs", "callback_of", "hangup_cause_text"]


@router.get("/calls", summary="Call detail records: every call with its legs, queue, agent, wait, talk, "
                              "outcome, disposition and recordings; newest first, keyset paged",
            responses={**CSV, **PROBLEMS})
async def call_records(
    since: Annotated[Timestamp, Query(description="Calls started at or after this time")],
    until: Annotated[Timestamp, Query(description="Calls started before this time")],
    queue: Annotated[list[str] | None, Query(description="Only calls in these queues")] = None,
    agent: Annotated[str | None, Query(pattern=AGENT_ID_PATTERN,
                                       description="Only this agent's calls")] = None,
    campaign: Annotated[str | None, Query(pattern=ID_PATTERN,
                                          description="Only this campaign's calls")] = None,
    number: Annotated[str | None, Query(pattern=REPORT_NUMBER,
                                        description="Calls from or to this number")] = None,
    outcome: Annotated[Outcome | None, Query(description="Only calls with this outcome")] = None,
    after: Annotated[str | None, Query(max_length=200,
                                       description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    fmt: Fmt = Format.json,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(READERS),
) -> Response:
    rows = await runtime.reports.calls(
        principal, since=since, until=until, queues=_names(queue, QUEUE_PATTERN, "queue"), agent=agent,
        number=number, campaign=campaign, outcome=outcome.value if outcome else None, after=_cursor(after),
        limit=limit)
    next_cursor = _next_cursor(rows[-1]["started_at"], rows[-1]["id"]) if len(rows) == limit else None
    if fmt is Format.csv:
        records = [[_cell(row[name]) for name in CDR_FIELDS] for row in rows]
        return _csv("calls", CDR_FIELDS, records, {"X-Next-Cursor": next_cursor} if next_cursor else None)
    calls = [{name: row[name] for name in CDR_FIELDS} for row in rows]
    return JSONResponse(_jsonable({"calls": calls, "next_cursor": next_cursor}))


def _cell(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return ";".join(f"{v['role']}:{v['id']}" if isinstance(v, dict) else str(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 3)
    return value


# ---- the queue interval report ---------------------------------------------------------------------


QUEUE_FIELDS = ["offered", "answered", "abandoned", "short_abandoned", "overflowed", "callbacks",
                "voicemails", "waiting", "answered_in_threshold", "service_level_pct", "abandon_pct",
                "asa_s", "aht_s", "hold_s", "longest_wait_s", "transfers", "handled"]


def _queue_figures(f: engine.QueueFigures) -> dict[str, Any]:
    return {
        "offered": f.offered, "answered": f.answered, "abandoned": f.abandoned,
        "short_abandoned": f.short_abandoned, "overflowed": f.overflowed, "callbacks": f.callbacks,
        "voicemails": f.voicemails, "waiting": f.waiting, "answered_in_threshold": f.answered_in_threshold,
        "service_level_pct": _round(None if f.service_level is None else 100 * f.service_level),
        "abandon_pct": _round(None if f.abandon_rate is None else 100 * f.abandon_rate),
        "asa_s": _round(f.asa_s), "aht_s": _round(f.aht_s), "hold_s": _round(f.hold_s),
        "longest_wait_s": _round(f.longest_wait_s), "transfers": f.transfers, "handled": f.handled,
        "answered_waits": list(f.answered_waits), "abandoned_waits": list(f.abandoned_waits),
    }


def _wait_labels(edges: tuple[int, ...]) -> list[str]:
    bounds = [0, *edges]
    return [f"{lo}-{hi}" for lo, hi in zip(bounds, edges, strict=False)] + [f"{bounds[-1]}+"]


@router.get("/queues", summary="Queue interval report: offered, answered, abandoned, service level, ASA, "
                               "AHT, ... per queue and interval",
            responses={**CSV, **PROBLEMS})
async def queue_report(
    first: FirstDay,
    last: LastDay,
    tz: Zone = "UTC",
    interval: Annotated[engine.Interval, Query(description="15, 30 or 60 minutes, day or week")
                        ] = engine.Interval.m30,
    queue: Annotated[list[str] | None, Query(description="Only these queues (default: every queue with "
                                                         "calls)")] = None,
    threshold_s: Annotated[float, Query(ge=0, le=3600, description="Service level: answered within this "
                                                                   "many seconds")] = 20,
    short_abandon_s: Annotated[float, Query(ge=0, le=600, description="Abandoned within this many seconds: "
                                                                      "a short abandon, reported apart")] = 5,
    fmt: Fmt = Format.json,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(READERS),
) -> Response:
    zone = _zone(tz)
    report: QueueReport = await runtime.reports.queues(
        principal, Period(first, last, zone, interval), _names(queue, QUEUE_PATTERN, "queue"),
        threshold_s=threshold_s, short_abandon_s=short_abandon_s)
    labels = _wait_labels(engine.WAIT_EDGES_S)
    if fmt is Format.csv:
        header = ["queue", "start", "end", *QUEUE_FIELDS, *(f"answered_wait_{x}" for x in labels),
                  *(f"abandoned_wait_{x}" for x in labels)]
        records = []
        for row in report.rows:
            figures = _queue_figures(row.figures)
            start, end = (_iso(row.bucket.start), _iso(row.bucket.end)) if row.bucket else ("total", "")
            records.append([row.queue, start, end, *(figures[name] for name in QUEUE_FIELDS),
                            *figures["answered_waits"], *figures["abandoned_waits"]])
        return _csv("queues", header, records)
    queues: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        item = queues.setdefault(row.queue, {"queue": row.queue, "intervals": [], "total": None})
        if row.bucket is None:
            item["total"] = _queue_figures(row.figures)
        else:
            item["intervals"].append({"start": _iso(row.bucket.start), "end": _iso(row.bucket.end),
                                      **_queue_figures(row.figures)})
    return JSONResponse({"tz": zone.key, "interval": interval.value, "from": first.isoformat(),
                         "to": last.isoformat(), "threshold_s": threshold_s,
                         "short_abandon_s": short_abandon_s, "wait_buckets_s": labels,
                         "queues": list(queues.values())})


# ---- the agent report --------------------------------------------------------------------------------


AGENT_FIELDS = ["logged_in_s", "available_s", "ringing_s", "talk_s", "wrap_s", "paused_s", "unavailable_s",
                "calls_handled", "missed_offers", "occupancy_pct", "aht_s"]


def _agent_figures(f: engine.AgentFigures) -> dict[str, Any]:
    return {
        "logged_in_s": _round(f.logged_in_s), "available_s": _round(f.available_s),
        "ringing_s": _round(f.ringing_s), "talk_s": _round(f.talk_s), "wrap_s": _round(f.wrap_s),
        "paused_s": _round(f.paused_s), "unavailable_s": _round(f.unavailable_s),
        "calls_handled": f.calls_handled, "missed_offers": f.missed_offers,
        "occupancy_pct": _round(None if f.occupancy is None else 100 * f.occupancy), "aht_s": _round(f.aht_s),
        "pause_by_reason": {k: _round(v) for k, v in sorted(f.pause_by_reason.items())},
    }


@router.get("/agents", summary="Agent report: logged-in, available, talk, wrap-up and pause time, calls "
                               "handled, missed offers, occupancy, AHT per agent and interval "
                               "(an agent key: its own)",
            responses={**CSV, **PROBLEMS})
async def agent_report(
    first: FirstDay,
    last: LastDay,
    tz: Zone = "UTC",
    interval: Annotated[engine.Interval, Query(description="15, 30 or 60 minutes, day or week")
                        ] = engine.Interval.day,
    agent: Annotated[list[str] | None, Query(description="Only these agents (default: every agent with "
                                                         "states)")] = None,
    fmt: Fmt = Format.json,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(AGENT_REPORT_READERS),
) -> Response:
    zone = _zone(tz)
    report: AgentReport = await runtime.reports.agents(principal, Period(first, last, zone, interval),
                                                       _names(agent, AGENT_ID_PATTERN, "agent"))
    if fmt is Format.csv:
        reasons = sorted({r for row in report.rows for r in row.figures.pause_by_reason})
        header = ["agent_id", "start", "end", *AGENT_FIELDS, *(f"pause_{r}" for r in reasons)]
        records = []
        for row in report.rows:
            figures = _agent_figures(row.figures)
            start, end = (_iso(row.bucket.start), _iso(row.bucket.end)) if row.bucket else ("total", "")
            records.append([row.agent_id, start, end, *(figures[name] for name in AGENT_FIELDS),
                            *(figures["pause_by_reason"].get(r, 0) for r in reasons)])
        return _csv("agents", header, records)
    agents: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        item = agents.setdefault(row.agent_id, {"agent_id": row.agent_id, "intervals": [], "total": None})
        if row.bucket is None:
            item["total"] = _agent_figures(row.figures)
        else:
            item["intervals"].append({"start": _iso(row.bucket.start), "end": _iso(row.bucket.end),
                                      **_agent_figures(row.figures)})
    return JSONResponse({"tz": zone.key, "interval": interval.value, "from": first.isoformat(),
                         "to": last.isoformat(), "agents": list(agents.values())})


# ---- the campaign report -----------------------------------------------------------------------------


CAMPAIGN_FIELDS = ["attempts", "contacts_dialed", "contacts_reached", "answered_by_person", "abandoned",
                   "answer_rate_pct", "abandon_pct", "talk_s", "agent_hours", "talk_per_agent_hour_s"]


def _campaign_figures(f: engine.CampaignFigures) -> dict[str, Any]:
    return {
        "attempts": f.attempts, "contacts_dialed": f.contacts_dialed, "contacts_reached": f.contacts_reached,
        "answered_by_person": f.answered_by_person, "abandoned": f.abandoned,
        "answer_rate_pct": _round(None if f.answer_rate is None else 100 * f.answer_rate),
        "abandon_pct": _round(None if f.abandon_rate is None else 100 * f.abandon_rate),
        "talk_s": _round(f.talk_s), "agent_hours": _round(f.agent_s / 3600),
        "talk_per_agent_hour_s": _round(f.talk_per_agent_hour_s),
        "outcomes": dict(sorted(f.outcomes.items())), "dispositions": dict(sorted(f.dispositions.items())),
    }


@router.get("/campaigns", summary="Campaign report: attempts, contacts reached, answer and abandonment "
                                  "rates, outcomes and dispositions, talk per agent hour, per campaign and "
                                  "interval",
            responses={**CSV, **PROBLEMS})
async def campaign_report(
    first: FirstDay,
    last: LastDay,
    tz: Zone = "UTC",
    interval: Annotated[engine.Interval, Query(description="15, 30 or 60 minutes, day or week")
                        ] = engine.Interval.day,
    campaign: Annotated[list[str] | None, Query(description="Only these campaigns (default: every campaign "
                                                            "with attempts)")] = None,
    fmt: Fmt = Format.json,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(READERS),
) -> Response:
    zone = _zone(tz)
    report: CampaignReport = await runtime.reports.campaigns(principal, Period(first, last, zone, interval),
                                                             _names(campaign, ID_PATTERN, "campaign"))
    if fmt is Format.csv:
        outcomes = sorted({k for row in report.rows for k in row.figures.outcomes})
        dispositions = sorted({k for row in report.rows for k in row.figures.dispositions})
        header = ["campaign_id", "start", "end", *CAMPAIGN_FIELDS, *(f"outcome_{k}" for k in outcomes),
                  *(f"disposition_{k}" for k in dispositions)]
        records = []
        for row in report.rows:
            figures = _campaign_figures(row.figures)
            start, end = (_iso(row.bucket.start), _iso(row.bucket.end)) if row.bucket else ("total", "")
            records.append([row.campaign_id, start, end, *(figures[name] for name in CAMPAIGN_FIELDS),
                            *(figures["outcomes"].get(k, 0) for k in outcomes),
                            *(figures["dispositions"].get(k, 0) for k in dispositions)])
        return _csv("campaigns", header, records)
    campaigns: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        item = campaigns.setdefault(row.campaign_id, {"campaign_id": row.campaign_id, "intervals": [],
                                                      "total": None})
        if row.bucket is None:
            item["total"] = _campaign_figures(row.figures)
        else:
            item["intervals"].append({"start": _iso(row.bucket.start), "end": _iso(row.bucket.end),
                                      **_campaign_figures(row.figures)})
    return JSONResponse({"tz": zone.key, "interval": interval.value, "from": first.isoformat(),
                         "to": last.isoformat(), "campaigns": list(campaigns.values())})


# ---- open items ----------------------------------------------------------------------------------------


OPEN_FIELDS = ["call_id", "code", "notes", "agent_id", "created_at", "updated_at", "direction", "started_at",
               "caller_number", "dialed", "queue"]


@router.get("/open-items", summary="Calls whose disposition asks for a follow-up, oldest first (an agent "
                                   "key: its own agent's)",
            responses={**CSV, **PROBLEMS})
async def open_items(
    queue: Annotated[list[str] | None, Query(description="Only calls whose last queue is one of "
                                                         "these")] = None,
    agent: Annotated[str | None, Query(pattern=AGENT_ID_PATTERN,
                                       description="Only items this agent recorded")] = None,
    after: Annotated[str | None, Query(max_length=200,
                                       description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    fmt: Fmt = Format.json,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(AGENT_REPORT_READERS),
) -> Response:
    rows = await runtime.reports.open_items(principal, agent=agent,
                                            queues=_names(queue, QUEUE_PATTERN, "queue"),
                                            after=_cursor(after), limit=limit)
    next_cursor = _next_cursor(rows[-1]["updated_at"], rows[-1]["call_id"]) if len(rows) == limit else None
    items = [{name: row[name] for name in OPEN_FIELDS} for row in rows]
    if fmt is Format.csv:
        records = [[_cell(item[name]) for name in OPEN_FIELDS] for item in items]
        return _csv("open-items", OPEN_FIELDS, records,
                    {"X-Next-Cursor": next_cursor} if next_cursor else None)
    return JSONResponse(_jsonable({"items": items, "next_cursor": next_cursor}))


# ---- one number's history ------------------------------------------------------------------------------


HISTORY_FIELDS = ["at", "kind", "call_id", "direction", "caller_number", "dialed", "queue", "agent_id",
                  "outcome", "answered_at", "ended_at", "detail_id", "campaign_id", "duration_s", "notes",
                  "follow_up"]


@router.get("/history", summary="Everything about one phone number in time order: calls, voicemails, "
                                "campaign attempts, dispositions, recordings",
            responses={**CSV, **PROBLEMS})
async def number_history(
    number: Annotated[str, Query(pattern=REPORT_NUMBER, description="The phone number, as the calls "
                                                                    "recorded it (e.g. +14155550100)")],
    since: Annotated[Timestamp | None, Query(description="Only from this time")] = None,
    until: Annotated[Timestamp | None, Query(description="Only before this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="The latest this many calls, voicemails and "
                                                           "attempts")] = 200,
    fmt: Fmt = Format.json,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(READERS),
) -> Response:
    items = await runtime.reports.history(principal, number, since=since, until=until, limit=limit)
    rows = [{name: item.get(name) for name in HISTORY_FIELDS} for item in items]
    if fmt is Format.csv:
        records = [[_cell(row[name]) for name in HISTORY_FIELDS] for row in rows]
        return _csv("history", HISTORY_FIELDS, records)
    return JSONResponse(_jsonable({"number": number, "items": rows}))
