"""Event feed benchmark: fan-out of the public event feed to many subscribers.

Run with `make bench` (it provisions Asterisk, Postgres and Redis like `make test`), or
`python -m bench.events` with them already up (`scripts/bench events`).

Two measurements:

* **In-process subscriptions** (the feed core, services/feed.py, on the real Redis): N
  subscriptions in this process (1, 100, 1000 by default) follow one feed; M events are
  published at a fixed rate, each carrying its publication time (``perf_counter``), and every
  subscription notes when it receives it. Latency is publish → receive (through the Lua script
  that numbers the entry, ``XADD``, the one ``XREAD`` reader of the process and the
  subscription's queue); events/s is the deliveries (N × M) per second of the run. Then a burst
  of events published at once gives the most deliveries per second the process makes. CPU is
  this process's (user + system) over the run.
* **WebSocket clients, from the ARI socket** (the whole path, on the real Asterisk): a
  controller runtime with its API served by uvicorn in this process; N WebSocket clients
  (1, 100, 500) in a separate process, each following ``GET /v1/events?types=call.started``
  with a supervisor key. Calls are placed at a fixed rate to a number without a route (the
  default greeting). Latency is from the moment the ARI ``StasisStart`` event of the call,
  parsed and translated, reaches the call service (``LegArrived``, noted by wrapping
  ``CallService.submit``) to each client receiving that call's ``call.started`` (both on the
  host's wall clock). The client process runs on the same 2 cores as the controller, Asterisk,
  Postgres and Redis, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from bench.ivr import ARI_AUTH, ARI_URL, percentile, started_runtime
from controller.api.app import create_app
from controller.domain import events as e
from controller.domain.access import Role
from controller.domain.feed import FeedEntry, FeedEvent, Topic
from controller.services.feed import FeedService
from controller.storage.feed import FeedStream
from tests.integration.phones import PhoneBank
from tests.serving import serving

REDIS_URL = os.environ.get("CCC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
UNROUTED = "79970"  # no route: the default greeting, then the controller hangs up
FIRST_CALLER = 700000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(latencies_ms: list[float]) -> dict[str, Any]:
    return {"p50_ms": round(percentile(latencies_ms, 0.5), 2),
            "p99_ms": round(percentile(latencies_ms, 0.99), 2),
            "max_ms": round(max(latencies_ms), 2) if latencies_ms else None, "samples": len(latencies_ms)}


# ---- in-process subscriptions ---------------------------------------------------------------------


async def in_process(client: redis.Redis, subscribers: int, events: int, rate: float, burst: int) -> dict:
    cluster = f"bench{uuid.uuid4().hex[:8]}"
    feed = FeedService(FeedStream(client, cluster), "bench")
    await feed.start()
    latencies: list[float] = []
    counts = [0] * subscribers
    expected = events + burst
    done = asyncio.Event()
    finished = 0

    async def follow(index: int) -> None:
        nonlocal finished
        subscription = feed.subscribe(None, lambda entry: True, max_pending=10_000)
        async for item in subscription:
            if not isinstance(item, FeedEntry):
                continue
            sent = item.event.data.get("t")
            if sent is not None:
                latencies.append((time.perf_counter() - sent) * 1000)
            counts[index] += 1
            if counts[index] == expected:
                finished += 1
                if finished == subscribers:
                    done.set()
                return

    followers = [asyncio.create_task(follow(i)) for i in range(subscribers)]
    await asyncio.sleep(0.2)
    try:
        cpu_before, started = cpu_seconds(), time.monotonic()
        for n in range(events):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            feed.publish(FeedEvent(Topic.CALLS, "bench.tick", {"n": n, "t": time.perf_counter()}))
        async with asyncio.timeout(120):
            while min(counts) < events:  # noqa: ASYNC110 - counting is the point
                await asyncio.sleep(0.01)
        paced_wall, paced_cpu = time.monotonic() - started, cpu_seconds() - cpu_before
        paced = summary(latencies)

        # A burst: everything published at once; how fast does it reach every subscriber?
        cpu_before, started = cpu_seconds(), time.monotonic()
        for n in range(burst):
            feed.publish(FeedEvent(Topic.CALLS, "bench.burst", {"n": n}))
        async with asyncio.timeout(300):
            await done.wait()
        burst_wall, burst_cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        await feed.close()
        keys = [k async for k in client.scan_iter(f"ccc:{cluster}:*")]
        if keys:
            await client.delete(*keys)
    return {
        "subscribers": subscribers, "events": events, "rate": rate,
        "publish_to_receive": paced,
        "deliveries_per_s": round(subscribers * events / paced_wall),
        "cpu_s": round(paced_cpu, 2), "wall_s": round(paced_wall, 2),
        "burst": {"events": burst, "wall_s": round(burst_wall, 3), "cpu_s": round(burst_cpu, 2),
                  "events_per_s": round(burst / burst_wall),
                  "deliveries_per_s": round(subscribers * burst / burst_wall)},
    }


# ---- WebSocket clients, from the ARI socket ----------------------------------------------------------


async def clients_main(url: str, count: int, expected: int, timeout: float) -> None:
    """The client process: ``count`` sockets; prints 'ready', then one JSON line of results."""
    from websockets.asyncio.client import connect

    received: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    ready = 0
    all_ready = asyncio.Event()

    async def one(index: int) -> None:
        nonlocal ready
        async with connect(url, max_queue=None, ping_interval=None) as socket:
            json.loads(await socket.recv())  # feed.subscribed
            ready += 1
            if ready == count:
                all_ready.set()
            while len(received[index]) < expected:
                message = json.loads(await socket.recv())
                if message["type"] == "call.started":
                    received[index].append((message["data"]["caller"]["number"], time.time()))

    cpu_before = cpu_seconds()
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    async with asyncio.timeout(60):
        await all_ready.wait()
    print("ready", flush=True)
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    print(json.dumps({"received": received, "cpu_s": cpu_seconds() - cpu_before}), flush=True)


async def websocket_fanout(base_url: str, key: str, phones: PhoneBank, clients: int, calls: int,
                           rate: float, first: int, arrived: dict[str, float]) -> dict:
    url = base_url.replace("http", "ws", 1) + f"/v1/events?types=call.started&token={key}"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.events", "--clients-worker", url, str(clients), str(calls),
        str(calls / rate + 30), stdout=subprocess.PIPE, limit=1 << 26)
    assert worker.stdout is not None
    line = await asyncio.wait_for(worker.stdout.readline(), 90)
    if line.strip() != b"ready":
        raise RuntimeError(f"the client process did not get ready: {line!r}")
    numbers = [str(first + i) for i in range(calls)]
    cpu_before, started = cpu_seconds(), time.monotonic()
    placed = []
    for i, number in enumerate(numbers):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        placed.append(await phones.call(UNROUTED, caller_id=f'"bench" <{number}>'))
    output = await asyncio.wait_for(worker.stdout.readline(), calls / rate + 60)
    await worker.wait()
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    for phone in placed:
        await phone.hang_up()
    result = json.loads(output)
    latencies = [(at - arrived[number]) * 1000 for per_client in result["received"]
                 for number, at in per_client if number in arrived]
    delivered = sum(len(per_client) for per_client in result["received"])
    return {"clients": clients, "calls": calls, "rate": rate, "delivered": delivered,
            "expected": clients * calls, "ari_event_to_client": summary(latencies),
            "controller_cpu_s": round(cpu, 2), "clients_cpu_s": round(result["cpu_s"], 2),
            "wall_s": round(wall, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", default="1,100,1000", help="in-process subscriptions, in order")
    parser.add_argument("--events", type=int, default=1000, help="events published at --rate per run")
    parser.add_argument("--rate", type=float, default=200, help="events per second")
    parser.add_argument("--burst", type=int, default=2000, help="events published at once per run")
    parser.add_argument("--clients", default="1,100,500", help="WebSocket clients, in order")
    parser.add_argument("--calls", type=int, default=30, help="calls placed per WebSocket run")
    parser.add_argument("--call-rate", type=float, default=5, help="calls per second")
    parser.add_argument("--out", default="bench/results/events.json")
    parser.add_argument("--clients-worker", nargs=4, metavar=("URL", "COUNT", "EXPECTED", "TIMEOUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_worker:
        url, count, expected, timeout = args.clients_worker
        await clients_main(url, int(count), int(expected), float(timeout))
        return

    report: dict[str, Any] = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                              "python": platform.python_version(),
                              "at": datetime.now(UTC).isoformat(timespec="seconds"), "in_process": [],
                              "websocket": []}
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for n in [int(x) for x in args.subscribers.split(",") if x]:
            print(f"in-process: {n} subscriptions, {args.events} events at {args.rate:g}/s, "
                  f"then a burst of {args.burst} ...")
            result = await in_process(client, n, args.events, args.rate, args.burst)
            report["in_process"].append(result)
            print("   ", json.dumps(result))
    finally:
        await client.aclose()

    runtime = await started_runtime()
    arrived: dict[str, float] = {}
    submit = runtime.calls.submit

    def noting(event: e.Event) -> None:
        if isinstance(event, e.LegArrived) and event.caller_number not in arrived:
            arrived[event.caller_number] = time.time()
        submit(event)

    runtime.calls.submit = noting  # type: ignore[method-assign]
    _, key = await runtime.api_keys.create("bench events", Role.SUPERVISOR, None)
    phones = PhoneBank(ARI_URL, ARI_AUTH)
    await phones.start()
    report["asterisk"] = (await runtime.switch.ari.request("GET", "/asterisk/info"))["system"]["version"]
    try:
        async with serving(create_app(runtime)) as base_url:
            for run, n in enumerate(int(x) for x in args.clients.split(",") if x):
                print(f"WebSocket: {n} clients, {args.calls} calls at {args.call_rate:g}/s ...")
                result = await websocket_fanout(base_url, key, phones, n, args.calls, args.call_rate,
                                                FIRST_CALLER + 10_000 * run, arrived)
                report["websocket"].append(result)
                print("   ", json.dumps(result))
                await asyncio.sleep(3)  # the greetings end
    finally:
        await phones.close()
        await runtime.close()
    out = Path(args.out)
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2) + "\n")
    print(f"(results in {args.out})")


if __name__ == "__main__":
    asyncio.run(main())
