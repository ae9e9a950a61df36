"""IVR benchmark on the real local Asterisk: how many IVR calls per second the controller
sustains, and how long from a caller's DTMF key to the next prompt starting.

Run with `make bench` (it provisions Asterisk, Postgres and Redis like `make test`), or
`python -m bench.ivr --rates 5,10,20 --seconds 10` with them already up.

Each caller is a Local channel: it waits for the answer, presses 1 during the menu prompt,
hears the next prompt, and is hung up by the flow. Latency is measured from Asterisk's own
timestamps in the call's event log: DtmfReceived → the next PlaybackStarted, so it covers
the ARI event, the controller's decision and the play request, not the test's clocks.
A rate passes when every call it placed completed its flow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from controller.bootstrap import Runtime, build_runtime
from controller.services.number_routes import RouteSpec
from controller.settings import Settings
from controller.storage.migrate import upgrade
from tests.integration.phones import PhoneBank

DATABASE_URL = os.environ.get("CCC_BENCH_DATABASE_URL", "postgresql://ccc:ccc@127.0.0.1:5432/ccc_test")
ARI_URL = os.environ.get("CCC_ARI_URL", "http://127.0.0.1:8088")
ARI_AUTH = (os.environ.get("CCC_ARI_USER", "ccc"), os.environ.get("CCC_ARI_PASSWORD", "ccc-local"))
NUMBER = "7999"

FLOW = {
    "start": "menu",
    "nodes": {
        "menu": {"type": "menu", "prompts": ["sound:beep"], "options": {"1": "next"},
                 "timeout_s": 5, "retries": 1, "on_failure": "bye"},
        "next": {"type": "play", "prompts": ["sound:beep"], "next": "bye"},
        "bye": {"type": "hangup"},
    },
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def one_caller(phones: PhoneBank, results: dict[str, int]) -> None:
    phone = await phones.call(NUMBER)
    try:
        await phone.wait_answered(timeout=15)
        await asyncio.sleep(0.05)
        await phone.press("1", duration_ms=80)
        await phone.wait_gone(timeout=30)
        results["completed"] += 1
    except (TimeoutError, OSError) as exc:
        results["failed"] += 1
        results.setdefault("errors", 0)
        print(f"    caller failed: {type(exc).__name__}: {exc}")
        await phone.hang_up()


async def run_rate(runtime, phones: PhoneBank, rate: float, seconds: float) -> dict:
    results = {"completed": 0, "failed": 0}
    since = datetime.now(UTC)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    callers = []
    total = int(rate * seconds)
    for i in range(total):
        target = started + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        callers.append(asyncio.create_task(one_caller(phones, results)))
    placing = time.monotonic() - started
    await asyncio.gather(*callers)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    await runtime.records.flushed(timeout=60)
    latencies = await dtmf_to_prompt(since)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "rate_offered": rate,
        "calls": total,
        "completed": results["completed"],
        "failed": results["failed"],
        "achieved_rate": round(total / placing, 2) if placing else rate,
        "wall_s": round(wall, 2),
        "bench_process_cpu_s": round(cpu, 2),
        "dtmf_to_prompt_ms_p50": round(percentile(latencies, 0.5), 1),
        "dtmf_to_prompt_ms_p99": round(percentile(latencies, 0.99), 1),
        "dtmf_to_prompt_ms_mean": round(statistics.fmean(latencies), 1) if latencies else None,
        "samples": len(latencies),
    }


async def dtmf_to_prompt(since: datetime) -> list[float]:
    async with await psycopg.AsyncConnection.connect(DATABASE_URL, row_factory=dict_row) as conn:
        cursor = await conn.execute(
            """
            SELECT e.call_id, e.kind, e.at FROM call_events e JOIN calls c ON c.id = e.call_id
            WHERE c.dialed = %s AND c.started_at >= %s AND e.kind IN ('DtmfReceived', 'PlaybackStarted')
            ORDER BY e.call_id, e.id
            """, (NUMBER, since))
        rows = await cursor.fetchall()
    latencies, pressed = [], {}
    for row in rows:
        if row["kind"] == "DtmfReceived":
            pressed.setdefault(row["call_id"], row["at"])
        elif row["call_id"] in pressed:
            latencies.append((row["at"] - pressed.pop(row["call_id"])).total_seconds() * 1000)
    return latencies


async def started_runtime() -> Runtime:
    """A controller runtime on a fresh bench schema, with its ARI and AMI links up."""
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(DATABASE_URL)
    settings = Settings(database_url=DATABASE_URL, redis_url="redis://127.0.0.1:6379/12",
                        prompts_dir="", recordings_dir="", log_level="WARNING")
    runtime = build_runtime(settings)
    await runtime.start()
    async with asyncio.timeout(15):
        while not all(runtime.switch.links.values()):  # noqa: ASYNC110 - links have no event
            await asyncio.sleep(0.1)
    return runtime


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="2,5,10,20", help="calls per second to offer, in order")
    parser.add_argument("--seconds", type=float, default=10, help="how long each rate is offered")
    parser.add_argument("--out", default="bench/results/ivr.json")
    args = parser.parse_args()

    runtime = await started_runtime()
    await runtime.flows.create("bench", FLOW)
    await runtime.number_routes.create("bench", RouteSpec(pattern=NUMBER, flow="bench"))
    phones = PhoneBank(ARI_URL, ARI_AUTH)
    await phones.start()
    report = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
              "asterisk": (await runtime.switch.ari.request("GET", "/asterisk/info"))["system"]["version"],
              "at": datetime.now(UTC).isoformat(timespec="seconds"), "rates": []}
    try:
        for rate in [float(r) for r in args.rates.split(",")]:
            print(f"offering {rate:g} IVR calls/s for {args.seconds:g} s ...")
            result = await run_rate(runtime, phones, rate, args.seconds)
            report["rates"].append(result)
            print("   ", json.dumps(result))
            if result["failed"]:
                break
            await asyncio.sleep(2)
    finally:
        await phones.close()
        await runtime.close()
    passed = [r for r in report["rates"] if not r["failed"]]
    report["sustained_calls_per_s"] = max((r["achieved_rate"] for r in passed), default=0)
    out = Path(args.out)
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2) + "\n")
    print(f"highest rate with no failed call: {report['sustained_calls_per_s']:g} calls/s "
          f"(results in {args.out})")


if __name__ == "__main__":
    asyncio.run(main())
