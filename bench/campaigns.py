"""Campaign benchmark on the real Postgres and Redis (no PBX): how fast contacts are imported,
how long a hopper feed takes on a large list, and the latency of the dialer's side of the cycle
(``next_contact`` then ``record_outcome``).

Run with `make bench` (it provisions Postgres and Redis like `make test`), or
`python -m bench.campaigns --contacts 50000` with them up. It resets the bench database's schema.

* Import: one CSV of ``--contacts`` rows (national US numbers, a default region, two lead
  fields, 1% invalid rows, 1% duplicates) through ``ContactService`` as the worker reads it:
  normalized, zoned, upserted in batches of 500.
* Feed: ``OutboundService.feed`` filling a hopper of 500 from that list (zones are worked out,
  due contacts locked and read, do-not-call checked, chosen, marked queued, pushed to Redis).
* Cycle: ``next_contact`` (pop, lock, DNC and window re-check, attempt opened) and
  ``record_outcome`` (busy: retry scheduled), one contact at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis.asyncio as redis

from bench.ivr import DATABASE_URL, percentile
from controller.domain.campaigns import CampaignAction, Outcome
from controller.services.campaigns import CampaignService, CampaignSpec
from controller.services.contacts import ContactService, ImportMapping
from controller.services.outbound import OutboundService
from controller.services.queues import QueueService, QueueSpec
from controller.storage.db import Database
from controller.storage.hopper import HopperStore
from controller.storage.migrate import upgrade

REDIS_URL = "redis://127.0.0.1:6379/12"
AREA_CODES = ("212", "312", "415", "617", "713", "206", "305", "404")


def leads(count: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = ["phone,first_name,account"]
    for n in range(count):
        if n % 100 == 99:
            lines.append(f"not-a-number-{n},Bad,A{n}")
        elif n % 100 == 98 and n > 0:
            lines.append(lines[-1])  # a duplicate row
        else:
            area = rng.choice(AREA_CODES)
            lines.append(f"({area}) {200 + n // 10_000}-{n % 10_000:04d},Lead{n},A{n}")
    return ("\n".join(lines) + "\n").encode()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--out", default="bench/results/campaigns.json")
    args = parser.parse_args()

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(DATABASE_URL)
    db = Database(DATABASE_URL, min_size=1, max_size=4)
    await db.open()
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    hopper = HopperStore(client, "bench")
    outbound = OutboundService(db, hopper)
    campaigns = CampaignService(db, hopper)
    contacts = ContactService(db, inline_rows=10**9)
    await QueueService(db).create("bench", QueueSpec())
    always = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}]
    await campaigns.create("bench", CampaignSpec(
        name="bench", mode="progressive", queue="bench",
        config={"calling_windows": always, "hopper_size": 500, "max_attempts": 10**2,
                "retry_rules": [{"outcome": "busy", "delays_s": [3600]}]}))
    await campaigns.act("bench", CampaignAction.START)

    data = leads(args.contacts)
    started = time.perf_counter()
    imported = await contacts.upload("bench", data, ImportMapping(phone_column="phone", default_region="US"))
    import_s = time.perf_counter() - started

    at = datetime.now(UTC) + timedelta(minutes=1)
    started = time.perf_counter()
    fed = await outbound.feed("bench", at)
    feed_ms = (time.perf_counter() - started) * 1000

    take_ms: list[float] = []
    outcome_ms: list[float] = []
    for i in range(args.cycles):
        if i % 400 == 399:
            await outbound.feed("bench", at)
        t0 = time.perf_counter()
        dial = await outbound.next_contact("bench", at=at)
        t1 = time.perf_counter()
        assert dial is not None, "the hopper ran dry"
        await outbound.record_outcome(dial.attempt_id, Outcome.BUSY, at=at)
        t2 = time.perf_counter()
        take_ms.append((t1 - t0) * 1000)
        outcome_ms.append((t2 - t1) * 1000)

    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "import": {"rows": imported.total_rows, "imported": imported.imported, "merged": imported.merged,
                   "invalid": imported.invalid, "seconds": round(import_s, 2),
                   "rows_per_s": round(imported.total_rows / import_s)},
        "feed": {"queued": fed.queued, "ms": round(feed_ms, 1)},
        "cycle": {"n": args.cycles,
                  "next_contact_ms": {"p50": round(percentile(take_ms, 0.5), 2),
                                      "p95": round(percentile(take_ms, 0.95), 2)},
                  "record_outcome_ms": {"p50": round(percentile(outcome_ms, 0.5), 2),
                                        "p95": round(percentile(outcome_ms, 0.95), 2)}},
    }
    print(json.dumps(report, indent=2))
    await asyncio.to_thread(Path(args.out).write_text, json.dumps(report, indent=2) + "\n")
    keys = [key async for key in client.scan_iter("ccc:bench:campaign:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
