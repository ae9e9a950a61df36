"""Webhook delivery benchmark: feed entries → deliveries at a local receiver, through the whole
path (the feed in Redis, the dispatcher writing deliveries to Postgres, Celery over the Redis
broker, a worker process POSTing signed requests, the attempt recorded in Postgres).

Run with `make bench` (or `python -m bench.webhooks --events 2000 --rate 100 --seconds 10`) with
Postgres and Redis up. No Asterisk is needed.

Two measurements:

* burst: ``--events`` entries published at once; deliveries per second is deliveries / (last
  delivery received − first entry published).
* paced: ``--rate`` entries per second for ``--seconds``; the latency of each delivery is the
  receiver's clock when the request arrives − the entry's ``at`` (when it was published), so it
  covers the feed, the dispatcher, the broker and the worker, on one host clock.

The worker runs with the threads pool (``--concurrency``, default 16), the receiver is Python's
``ThreadingHTTPServer`` in this process; everything shares the machine's cores, so the figures
are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
import redis.asyncio as redis

from bench.ivr import DATABASE_URL, percentile
from controller.domain.feed import FeedEvent, Topic
from controller.domain.webhooks import AddressPolicy
from controller.services.feed import FeedService
from controller.services.webhooks import WebhookDispatcher, WebhookService, WebhookSpec
from controller.storage.db import Database
from controller.storage.feed import FeedStream
from controller.storage.lease import Lease
from controller.storage.migrate import upgrade
from controller.worker.sender import CelerySender
from tests.celery_worker import stop_worker
from tests.receiver import Receiver

REDIS_URL = os.environ.get("CCC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BROKER_URL = os.environ.get("CCC_BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
QUEUE = "ccc-bench-webhooks"
RESULTS = Path(__file__).parent / "results" / "webhooks.json"


def start_worker(concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CCC_DATABASE_URL=DATABASE_URL, CCC_CELERY_BROKER_URL=BROKER_URL,
               CCC_WEBHOOK_QUEUE=QUEUE, CCC_CONFIG_FILE="/nonexistent", CCC_LOG_LEVEL="WARNING")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controller.worker.app", "worker", "--queues", QUEUE,
         "--pool", "threads", "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--loglevel", "WARNING"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def wait_for(receiver: Receiver, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(receiver.received)} of {count} deliveries received")
        await asyncio.sleep(0.05)


async def run(events: int, rate: float, seconds: float, concurrency: int, webhooks: int) -> dict[str, object]:
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(DATABASE_URL)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    broker = redis.Redis.from_url(BROKER_URL)
    await broker.flushdb()  # the bench's own broker database: no tasks left from another run
    cluster = f"bench{uuid.uuid4().hex[:8]}"
    db = Database(DATABASE_URL)
    await db.open()
    feed = FeedService(FeedStream(client, cluster), "bench")
    await feed.start()
    sender = CelerySender(BROKER_URL, QUEUE)
    dispatcher = WebhookDispatcher(db, FeedStream(client, cluster), Lease(client, f"ccc:{cluster}:wh"),
                                   sender, cluster, "bench")
    receiver = Receiver().start()
    log = Path(tempfile.gettempdir()) / "ccc-bench-webhooks-worker.log"
    worker = start_worker(concurrency, log)
    try:
        service = WebhookService(db, AddressPolicy(), sender)
        for n in range(webhooks):
            await service.create(WebhookSpec(url=f"{receiver.url}/hook{n}"))
        await dispatcher.start()
        async with asyncio.timeout(15):
            while dispatcher.cursor is None:  # noqa: ASYNC110 - the dispatcher has no event
                await asyncio.sleep(0.05)
        # Warm-up: the worker's threads, connections and pools.
        feed.publish(FeedEvent(Topic.ALARMS, "bench.warmup", {}))
        await wait_for(receiver, webhooks, 60)
        receiver.received.clear()

        # Burst.
        started = time.time()
        for n in range(events):
            feed.publish(FeedEvent(Topic.ALARMS, "bench.burst", {"n": n}))
        await wait_for(receiver, events * webhooks, 600)
        burst_s = max(r.at for r in receiver.received) - started
        burst = {"events": events, "deliveries": len(receiver.received), "seconds": round(burst_s, 3),
                 "deliveries_per_s": round(len(receiver.received) / burst_s, 1)}
        receiver.received.clear()

        # Paced.
        total = int(rate * seconds)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for n in range(total):
            await asyncio.sleep(max(0.0, begin + n / rate - loop.time()))
            feed.publish(FeedEvent(Topic.ALARMS, "bench.paced", {"n": n}))
        await wait_for(receiver, total * webhooks, 600)
        latencies = [(r.at - datetime.fromisoformat(r.json["at"]).timestamp()) * 1000
                     for r in receiver.received]
        async with db.connection() as conn:
            cursor = await conn.execute("SELECT last_latency_ms FROM webhook_deliveries "
                                        "WHERE event_type = 'bench.paced'")
            http = [row["last_latency_ms"] for row in await cursor.fetchall()]
            cursor = await conn.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE attempts <> 1")
            retried = (await cursor.fetchone())["n"]
        paced = {"rate": rate, "seconds": seconds, "deliveries": len(latencies),
                 "publish_to_receiver_ms": {"p50": round(percentile(latencies, 0.5), 2),
                                            "p99": round(percentile(latencies, 0.99), 2),
                                            "max": round(max(latencies), 2)},
                 "http_round_trip_ms": {"p50": round(percentile(http, 0.5), 2),
                                        "p99": round(percentile(http, 0.99), 2)}}
        return {"when": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
                "cpus": os.cpu_count(), "worker_concurrency": concurrency, "webhooks": webhooks,
                "burst": burst, "paced": paced, "deliveries_not_at_first_attempt": retried}
    finally:
        stop_worker(worker)
        await dispatcher.close()
        await feed.close()
        await asyncio.to_thread(sender.close)
        receiver.stop()
        await db.close()
        await client.aclose()
        await broker.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--webhooks", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.rate, args.seconds, args.concurrency, args.webhooks))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
