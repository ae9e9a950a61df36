"""Reports benchmark: how long the queue interval report takes over many calls.

Run with `scripts/bench reports` or `python -m bench.reports`.

Two parts:

- **engine** (always; no service needed): ``--calls`` queue entries (default 1,000,000) spread
  over a month of one queue in Europe/Paris (answered, abandoned, sent on, a few waiting), cut
  into 30-minute buckets by ``engines/reports.py queue_report``; and the same entries made from
  call events by ``queue_entries`` (what the service does for each call read).
- **database** (with ``--db URL``, a database this benchmark may fill: it creates its own
  tables' rows under the queue ``bench-rq`` and deletes them afterwards): ``--db-calls`` calls
  (default 20,000) with their events and agent state rows are inserted, then the whole
  ``ReportService.queues`` (SQL, events, wrap-ups, engine) is timed for the month.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from controller.engines.reports import (
    CallEvent,
    Interval,
    Outcome,
    QueueEntry,
    buckets,
    queue_entries,
    queue_report,
)

TZ = ZoneInfo("Europe/Paris")
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 31)  # holds the change to summer time
QUEUE = "bench-rq"


def timed(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time (ms) of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def entries(count: int, seed: int = 7) -> list[QueueEntry]:
    rng = random.Random(seed)
    start = datetime.combine(FIRST, datetime.min.time(), TZ).astimezone(UTC)
    span = (datetime.combine(LAST + timedelta(days=1), datetime.min.time(), TZ).astimezone(UTC) - start)
    span_s = span.total_seconds()
    made = []
    for n in range(count):
        at = start + timedelta(seconds=rng.random() * span_s)
        wait = rng.expovariate(1 / 30)
        roll = rng.random()
        if roll < 0.85:
            made.append(QueueEntry(f"c{n}", QUEUE, at, Outcome.answered, at + timedelta(seconds=wait),
                                   agent_id="a1", talk_s=rng.expovariate(1 / 240), wrap_s=15.0))
        elif roll < 0.97:
            made.append(QueueEntry(f"c{n}", QUEUE, at, Outcome.abandoned, at + timedelta(seconds=wait)))
        else:
            made.append(QueueEntry(f"c{n}", QUEUE, at, Outcome.overflowed, at + timedelta(seconds=wait)))
    return made


def events_of(entry: QueueEntry) -> list[CallEvent]:
    made = [CallEvent(entry.entered_at, "QueueEntered", {"queue": entry.queue})]
    if entry.outcome is Outcome.answered and entry.left_at is not None:
        made.append(CallEvent(entry.left_at, "AgentConnected", {"agent_id": "a1"},
                              entry.left_at + timedelta(seconds=entry.talk_s or 0)))
    elif entry.outcome is Outcome.overflowed and entry.left_at is not None:
        made.append(CallEvent(entry.left_at, "QueueOverflowed", {"queue": entry.queue}))
    return made


async def database_part(url: str, calls: int, repeat: int) -> dict[str, object]:
    import psycopg

    from controller.domain.access import Principal, Role
    from controller.services.reports import Period, ReportService
    from controller.storage.db import Database

    made = entries(calls, seed=11)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DELETE FROM call_events WHERE call_id LIKE 'bench-rq-%'")
        await conn.execute("DELETE FROM legs WHERE call_id LIKE 'bench-rq-%'")
        await conn.execute("DELETE FROM calls WHERE id LIKE 'bench-rq-%'")
        start = time.perf_counter()
        async with conn.cursor() as cursor:
            async with cursor.copy("COPY calls (id, direction, state, switch, started_at, answered_at, "
                                   "ended_at, data) FROM STDIN") as copy:
                for e in made:
                    ended = (e.left_at or e.entered_at) + timedelta(seconds=e.talk_s or 0)
                    await copy.write_row((f"bench-rq-{e.call_id}", "inbound", "ended", "bench",
                                          e.entered_at, e.entered_at, ended, json.dumps({"queue": QUEUE})))
            async with cursor.copy("COPY legs (id, call_id, role, channel_name, state, created_at, ended_at) "
                                   "FROM STDIN") as copy:
                for e in made:
                    if e.outcome is Outcome.answered and e.left_at is not None:
                        ended = e.left_at + timedelta(seconds=e.talk_s or 0)
                        await copy.write_row((f"bench-rq-{e.call_id}.agent", f"bench-rq-{e.call_id}",
                                              "agent", "x", "ended", e.left_at, ended))
            async with cursor.copy("COPY call_events (call_id, leg_id, at, kind, data) FROM STDIN") as copy:
                for e in made:
                    for ev in events_of(e):
                        leg = f"bench-rq-{e.call_id}.agent" if ev.kind == "AgentConnected" else None
                        await copy.write_row((f"bench-rq-{e.call_id}", leg, ev.at, ev.kind,
                                              json.dumps(ev.data)))
        await conn.execute("ANALYZE calls; ANALYZE legs; ANALYZE call_events")
        load_s = time.perf_counter() - start
    db = Database(url)
    await db.open()
    try:
        service = ReportService(db)
        reader = Principal(key_id=uuid.uuid4(), key_name="bench", role=Role.ADMIN)
        period = Period(FIRST, LAST, TZ, Interval.m30)
        times = []
        report = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            report = await service.queues(reader, period, [QUEUE], threshold_s=20, short_abandon_s=5)
            times.append((time.perf_counter() - t0) * 1000)
        assert report is not None
        total = report.rows[-1].figures
    finally:
        await db.close()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DELETE FROM call_events WHERE call_id LIKE 'bench-rq-%'")
        await conn.execute("DELETE FROM legs WHERE call_id LIKE 'bench-rq-%'")
        await conn.execute("DELETE FROM calls WHERE id LIKE 'bench-rq-%'")
    return {"calls": calls, "load_s": round(load_s, 1), "report_ms": round(statistics.median(times), 1),
            "offered": total.offered, "answered": total.answered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000, help="queue entries for the engine part")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is kept)")
    parser.add_argument("--db", help="a database URL this benchmark may write to (the database part)")
    parser.add_argument("--db-calls", type=int, default=20_000)
    parser.add_argument("--out", default="bench/results/reports.json")
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    made = entries(args.calls)
    cuts = buckets(FIRST, LAST, TZ, Interval.m30)
    ms, rows = timed(lambda: queue_report(made, cuts, threshold_s=20, short_abandon_s=5), args.repeat)
    total = rows[-1].figures  # type: ignore[index]
    print(f"queue_report: {args.calls:,} entries, {len(cuts)} buckets: {ms:,.0f} ms "
          f"(offered {total.offered:,}, service level {100 * total.service_level:.1f}%)")
    sample = made[: min(len(made), 200_000)]
    events = [(e.call_id, events_of(e)) for e in sample]
    ms_entries, _ = timed(lambda: [queue_entries(c, ev, None) for c, ev in events], args.repeat)
    per_million = ms_entries * 1_000_000 / len(sample)
    print(f"queue_entries: {len(sample):,} calls' events in {ms_entries:,.0f} ms "
          f"({per_million:,.0f} ms per million)")
    report["engine"] = {"entries": args.calls, "buckets": len(cuts), "queue_report_ms": round(ms, 1),
                        "queue_entries_ms_per_million": round(per_million, 1)}
    if args.db:
        result = asyncio.run(database_part(args.db, args.db_calls, args.repeat))
        print(f"ReportService.queues on Postgres: {result['calls']:,} calls: {result['report_ms']:,} ms "
              f"(loaded in {result['load_s']} s)")
        report["database"] = result
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"(results in {args.out})")


if __name__ == "__main__":
    main()
