"""Reports (docs/reports.md): the call detail records, the queue interval report, the agent
report, the campaign report, one number's interaction history and the open items.

Postgres selects the period's rows (storage/reports.py); engines/reports.py cuts the period into
local buckets and counts. A supervisor key limited to queues sees those queues' calls only; an
agent key reads its own agent's row of the agent report and nothing else.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from controller.domain.access import Principal, Role
from controller.domain.errors import Forbidden, InvalidRequest
from controller.engines import reports as engine
from controller.storage import reports as store
from controller.storage.db import Database

# The longest period each cut may cover: bounded work per request (and rows per answer).
MAX_DAYS = {engine.Interval.m15: 31, engine.Interval.m30: 31, engine.Interval.m60: 62,
            engine.Interval.day: 366, engine.Interval.week: 371}
MAX_CDR_DAYS = 366
MAX_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date
    tz: ZoneInfo
    interval: engine.Interval

    def cuts(self) -> list[engine.Bucket]:
        if self.last < self.first:
            raise InvalidRequest(f"the period ends ({self.last}) before it starts ({self.first})")
        days = (self.last - self.first).days + 1
        if days > MAX_DAYS[self.interval]:
            raise InvalidRequest(f"a report by {self.interval.value} covers at most "
                                 f"{MAX_DAYS[self.interval]} days; {self.first} to {self.last} is {days}")
        return engine.buckets(self.first, self.last, self.tz, self.interval)


@dataclass(frozen=True, slots=True)
class QueueReport:
    cuts: list[engine.Bucket]
    rows: list[engine.QueueRow]


@dataclass(frozen=True, slots=True)
class CampaignReport:
    cuts: list[engine.Bucket]
    rows: list[engine.CampaignRow]


@dataclass(frozen=True, slots=True)
class AgentReport:
    cuts: list[engine.Bucket]
    rows: list[engine.AgentRow]


def _scope(reader: Principal, queues: Sequence[str] | None) -> list[str] | None:
    """The queues a reader may see of those asked (None: all)."""
    scope = reader.queue_scope
    if scope is None:
        return list(queues) if queues else None
    if not queues:
        return list(scope)
    outside = sorted(set(queues) - set(scope))
    if outside:
        raise Forbidden(f"this key oversees queues {', '.join(scope)}, not {', '.join(outside)}")
    return list(queues)


class ReportService:
    def __init__(self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._clock = clock

    # ---- call detail records -----------------------------------------------------------------

    async def calls(self, reader: Principal, *, since: datetime, until: datetime,
                    queues: Sequence[str] | None, agent: str | None, number: str | None,
                    campaign: str | None, outcome: str | None, after: tuple[datetime, str] | None,
                    limit: int) -> list[dict[str, Any]]:
        if until <= since:
            raise InvalidRequest("'until' must be after 'since'")
        if until - since > timedelta(days=MAX_CDR_DAYS):
            raise InvalidRequest(f"the call records are read {MAX_CDR_DAYS} days at a time at most")
        scope = _scope(reader, queues)
        async with self._db.connection() as conn:
            rows = await store.cdr_page(conn, since=since, until=until, queues=scope, agent=agent,
                                        number=number, campaign=campaign, outcome=outcome, after=after,
                                        limit=limit)
            ids = [row["id"] for row in rows]
            if not ids:
                return []
            legs = await store.legs_of(conn, ids)
            dispositions = {d["call_id"]: d for d in await store.dispositions_of(conn, ids)}
            recordings = await store.recordings_of(conn, ids)
            events = await store.queue_events_of(conn, ids)
            first = min(r["started_at"] for r in rows)
            wraps = await store.wrap_ups_of(conn, ids, first - store.WRAP_UP_SLACK,
                                            max(r["started_at"] for r in rows))
        legs_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for leg in legs:
            legs_by[leg["call_id"]].append(leg)
        recordings_by: dict[str, list[str]] = defaultdict(list)
        for recording in recordings:
            recordings_by[recording["call_id"]].append(str(recording["id"]))
        events_by = _events_by_call(events)
        out = []
        for row in rows:
            stays = engine.queue_entries(row["id"], events_by.get(row["id"], []), row["ended_at"],
                                         wrap_s=wraps.get(row["id"]),
                                         fallback_entered_at=row["answered_at"] or row["started_at"],
                                         fallback_queue=row["queue"])
            answered = next((s for s in reversed(stays) if s.outcome is engine.Outcome.answered), None)
            disposition = dispositions.get(row["id"])
            out.append({
                **row,
                "legs": [{"id": leg["id"], "role": leg["role"], "created_at": leg["created_at"],
                          "answered_at": leg["answered_at"], "ended_at": leg["ended_at"]}
                         for leg in legs_by.get(row["id"], [])],
                "queues": list(dict.fromkeys(s.queue for s in stays)),
                # Every stay's wait added up (a caller sent on from queue to queue waited in each).
                "wait_s": sum(s.wait_s for s in stays if s.wait_s is not None) if stays else None,
                # A caller who waited and was never answered by an agent talked to nobody.
                "talk_s": answered.talk_s if answered else None if stays else _plain_talk(row),
                "hold_s": answered.hold_s if answered else None,
                "wrap_s": wraps.get(row["id"]),
                "transferred": any(s.transferred for s in stays),
                "disposition": disposition["code"] if disposition else None,
                "disposition_notes": disposition["notes"] if disposition else None,
                "follow_up": disposition["follow_up"] if disposition else None,
                "recording_ids": recordings_by.get(row["id"], []),
            })
        return out

    # ---- the queue interval report -----------------------------------------------------------

    async def queues(self, reader: Principal, period: Period, queues: Sequence[str] | None, *,
                     threshold_s: float, short_abandon_s: float,
                     wait_edges: Sequence[int] = engine.WAIT_EDGES_S) -> QueueReport:
        cuts = period.cuts()
        scope = _scope(reader, queues)
        since, until = cuts[0].start_utc, cuts[-1].end_utc
        async with self._db.connection() as conn:
            calls = await store.queued_calls(conn, since, until, scope)
            ids = [c["id"] for c in calls]
            events = await store.queue_events_of(conn, ids) if ids else []
            wraps = await store.wrap_ups_of(conn, ids, since - store.WRAP_UP_SLACK, until) if ids else {}
        events_by = _events_by_call(events)
        entries = []
        for call in calls:
            for stay in engine.queue_entries(call["id"], events_by.get(call["id"], []), call["ended_at"],
                                             wrap_s=wraps.get(call["id"]),
                                             fallback_entered_at=call["answered_at"] or call["started_at"],
                                             fallback_queue=call["queue"]):
                if scope is None or stay.queue in scope:
                    entries.append(stay)
        rows = await asyncio.to_thread(engine.queue_report, entries, cuts, threshold_s=threshold_s,
                                       short_abandon_s=short_abandon_s, wait_edges=wait_edges,
                                       queues=scope or ())
        return QueueReport(cuts, rows)

    # ---- the agent report ----------------------------------------------------------------------

    async def agents(self, reader: Principal, period: Period, agents: Sequence[str] | None) -> AgentReport:
        cuts = period.cuts()
        if reader.role is Role.AGENT:
            if agents and set(agents) != {reader.agent_id}:
                raise Forbidden("an agent key reads its own agent's report only")
            if reader.agent_id is None:
                return AgentReport(cuts, [])  # it acts for nobody: nobody's report
            agents = [reader.agent_id]
        since, until = cuts[0].start_utc, cuts[-1].end_utc
        async with self._db.connection() as conn:
            rows = await store.agent_states(conn, since, until, list(agents) if agents else None)
        changes = [engine.StateChange(r["agent_id"], r["at"], r["state"], r["reason"], r["call_id"])
                   for r in rows]
        now = self._clock()
        report = await asyncio.to_thread(engine.agent_report, changes, cuts, min(now, until), agents or ())
        return AgentReport(cuts, report)

    # ---- the campaign report -------------------------------------------------------------------

    async def campaigns(self, reader: Principal, period: Period,
                        campaigns: Sequence[str] | None) -> CampaignReport:
        """Attempts per campaign and bucket; a supervisor limited to queues: campaigns of those
        queues. Talk per agent hour divides by the logged-in time of the agents who made the
        campaign's attempts in the period (all of it: they may have taken other calls too)."""
        cuts = period.cuts()
        scope = _scope(reader, None)
        since, until = cuts[0].start_utc, cuts[-1].end_utc
        async with self._db.connection() as conn:
            rows = await store.campaign_attempts(conn, since, until, list(campaigns) if campaigns else None,
                                                 scope)
            agents = sorted({r["agent_id"] for r in rows if r["agent_id"]})
            states = await store.agent_states(conn, since, until, agents) if agents else []
        attempts = [engine.Attempt(r["campaign_id"], r["contact_id"], r["started_at"], r["outcome"],
                                   r["disposition"], r["agent_id"], r["talk_s"]) for r in rows]
        changes = [engine.StateChange(r["agent_id"], r["at"], r["state"], r["reason"], r["call_id"])
                   for r in states]
        agent_rows = engine.agent_report(changes, cuts, min(self._clock(), until), agents)
        seconds: dict[str, list[float]] = defaultdict(list)
        for row in agent_rows:
            if row.bucket is not None:
                seconds[row.agent_id].append(row.figures.logged_in_s)
        return CampaignReport(cuts, await asyncio.to_thread(engine.campaign_report, attempts, cuts, seconds))

    # ---- open items ------------------------------------------------------------------------------

    async def open_items(self, reader: Principal, *, agent: str | None, queues: Sequence[str] | None,
                         after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        """Calls whose disposition asks for a follow-up; an agent key: its own agent's."""
        if reader.role is Role.AGENT:
            if agent is not None and agent != reader.agent_id:
                raise Forbidden("an agent key reads its own agent's open items only")
            if reader.agent_id is None:
                return []  # it acts for nobody: nobody's items
            agent = reader.agent_id
        scope = _scope(reader, queues)
        async with self._db.connection() as conn:
            return await store.open_items(conn, agent=agent, queues=scope, after=after, limit=limit)

    # ---- one number's history ------------------------------------------------------------------

    async def history(self, reader: Principal, number: str, *, since: datetime | None, until: datetime | None,
                      limit: int) -> list[dict[str, Any]]:
        if since is not None and until is not None and until <= since:
            raise InvalidRequest("'until' must be after 'since'")
        scope = _scope(reader, None)
        async with self._db.connection() as conn:
            items = await store.history(conn, number, since, until, scope, min(limit, MAX_HISTORY))
            ids = [i["call_id"] for i in items if i["kind"] == "call"]
            dispositions = {d["call_id"]: d for d in await store.dispositions_of(conn, ids)} if ids else {}
            recordings = await store.recordings_of(conn, ids) if ids else []
        out: list[dict[str, Any]] = []
        for item in items:
            out.append(item)
            if item["kind"] != "call":
                continue
            disposition = dispositions.get(item["call_id"])
            if disposition is not None:
                out.append({"at": disposition["updated_at"], "kind": "disposition",
                            "call_id": item["call_id"], "agent_id": disposition["agent_id"],
                            "outcome": disposition["code"],
                            "notes": disposition["notes"], "follow_up": disposition["follow_up"]})
            for recording in recordings:
                if recording["call_id"] == item["call_id"]:
                    out.append({"at": recording["started_at"], "kind": "recording",
                                "call_id": item["call_id"], "detail_id": str(recording["id"]),
                                "ended_at": recording["ended_at"],
                                "duration_s": recording["duration_s"]})
        out.sort(key=lambda i: (i["at"], i["kind"]))  # time order, oldest first
        return out


def _events_by_call(rows: Sequence[dict[str, Any]]) -> dict[str, list[engine.CallEvent]]:
    by: dict[str, list[engine.CallEvent]] = defaultdict(list)
    for row in rows:
        data = {k: row[k] for k in ("queue", "from_queue", "agent_id") if row[k] is not None}
        by[row["call_id"]].append(engine.CallEvent(row["at"], row["kind"], data, row["leg_ended_at"]))
    return by


def _plain_talk(row: dict[str, Any]) -> float | None:
    """A call no agent was connected to through a queue (a click-to-dial, an IVR call): its
    answered time."""
    if row["answered_at"] is None or row["ended_at"] is None:
        return None
    return (row["ended_at"] - row["answered_at"]).total_seconds()
