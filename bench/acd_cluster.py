"""Two controller processes sharing one ACD, on the real local Asterisk: the calls per second
the pair sustains next to one process alone, at the same offered rates, with the same agents.

Process A runs in this process (as in bench/acd.py); process B is a real ``cc-controller run``
subprocess with its own Stasis app (``ccc-b``, reached through ``[ccc-test-inbound-b]``) and the
same ``CCC_ACD_CLUSTER``. In the two-process runs every other caller enters through B, so half
the ACD's events cross from one process to the other through the shared log in Redis.

A rate passes when every caller was connected to an agent. Latency is from the caller's entry
into ``Stasis()`` (AMI ``Newexten``, Asterisk's clock) to the agent channel's creation
(``Newchannel``), for the callers of each process: it includes the flow answering the caller,
the ACD log round trip through Redis and the originate.

Run with `scripts/bench acd_cluster` (provisions the services) or
`python -m bench.acd_cluster --rates 10,20,30` with them up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.acd import (
    NUMBER,
    RATE_AGENTS,
    AmiTimes,
    caller,
    controller_calls,
    from_stasis_entry,
    login,
    setup,
    summary,
)
from bench.ivr import ARI_AUTH, ARI_URL, DATABASE_URL, started_runtime
from controller.adapters.asterisk.ami import AmiClient
from tests.integration.phones import PhoneBank

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_process_b(runtime) -> tuple[subprocess.Popen[bytes], str]:
    settings = runtime.settings
    port = free_port()
    env = dict(os.environ, CCC_DATABASE_URL=DATABASE_URL, CCC_REDIS_URL=settings.redis_url,
               CCC_ARI_APP="ccc-b", CCC_ACD_CLUSTER=settings.acd_cluster, CCC_API_PORT=str(port),
               CCC_CONFIG_FILE="/nonexistent", CCC_LOG_LEVEL="WARNING", CCC_PROMPTS_DIR="",
               CCC_RECORDINGS_DIR="")
    log_file = tempfile.NamedTemporaryFile(prefix="ccc-bench-b-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "controller", "run"], env=env, cwd=ROOT,  # noqa: ASYNC220
                               stdout=subprocess.DEVNULL, stderr=log_file)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return process, log_file.name
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                break
            await asyncio.sleep(0.3)
    process.kill()
    raise SystemExit(f"process B did not become ready; its log: {log_file.name}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


async def run_rate(runtime, phones: PhoneBank, times: AmiTimes, rate: float, seconds: float,
                   contexts: tuple[str, ...]) -> dict:
    since = datetime.now(UTC)
    failures: list[str] = []
    started = time.monotonic()
    tasks = []
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        context = contexts[i % len(contexts)]
        tasks.append(asyncio.create_task(caller(phones, NUMBER, context, failures)))
    placing = time.monotonic() - started
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.5)
    await runtime.records.flushed(timeout=60)
    rows = await controller_calls(since, NUMBER)
    connected = sum(r["connected"] for r in rows)
    return {"processes": len(contexts), "rate_offered": rate,
            "achieved_rate": round(len(tasks) / placing, 2) if placing else rate,
            "calls": len(tasks), "recorded": len(rows), "connected": connected,
            "not_connected": len(tasks) - connected, "phone_failures": len(failures),
            "stasis_entry_to_agent_channel": summary(from_stasis_entry(times, rows))}


async def sweep(runtime, phones: PhoneBank, times: AmiTimes, rates: list[float], seconds: float,
                contexts: tuple[str, ...]) -> list[dict]:
    results = []
    for rate in rates:
        print(f"{len(contexts)} process(es): offering {rate:g} queue calls/s for {seconds:g} s ...")
        result = await run_rate(runtime, phones, times, rate, seconds, contexts)
        results.append(result)
        print("   ", json.dumps(result))
        if result["not_connected"] or result["phone_failures"]:
            break
        await asyncio.sleep(2)
    return results


def sustained(results: list[dict]) -> float:
    return max((r["achieved_rate"] for r in results if not r["not_connected"] and not r["phone_failures"]),
               default=0.0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="10,20,30,40", help="calls per second to offer, in order")
    parser.add_argument("--seconds", type=float, default=8, help="how long each rate is offered")
    parser.add_argument("--out", default="bench/results/acd_cluster.json")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    runtime = await started_runtime()
    settings = runtime.settings
    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_user,
                    settings.ami_secret.get_secret_value())
    times = AmiTimes(ami)
    await ami.start()
    phones = PhoneBank(ARI_URL, ARI_AUTH)
    await phones.start()
    await setup(runtime)
    info = await runtime.switch.ari.request("GET", "/asterisk/info")
    report: dict = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                    "asterisk": info["system"]["version"],
                    "at": datetime.now(UTC).isoformat(timespec="seconds"), "agents": len(RATE_AGENTS)}
    process_b = None
    try:
        await login(runtime, RATE_AGENTS)
        report["one_process"] = await sweep(runtime, phones, times, rates, args.seconds, ("ccc-inbound",))
        process_b, b_log = await start_process_b(runtime)
        print(f"process B up (log: {b_log})")
        report["two_processes"] = await sweep(runtime, phones, times, rates, args.seconds,
                                              ("ccc-inbound", "ccc-test-inbound-b"))
    finally:
        if process_b is not None:
            stop(process_b)
        await phones.close()
        await ami.close()
        await runtime.close()
    one, two = sustained(report["one_process"]), sustained(report["two_processes"])
    report["sustained_calls_per_s"] = {"one_process": one, "two_processes": two}
    print("\nhighest rate with every caller connected:")
    print(f"  one process   {one:g} calls/s")
    print(f"  two processes {two:g} calls/s (ratio {round(two / one, 2) if one else 'n/a'})")
    print("Stasis() entry -> agent channel, at each rate both passed:")
    for a, b in zip(report["one_process"], report["two_processes"], strict=False):
        fa, fb = a["stasis_entry_to_agent_channel"], b["stasis_entry_to_agent_channel"]
        print(f"  {a['rate_offered']:>5g}/s   one: p50 {fa['p50_ms']} ms p99 {fa['p99_ms']} ms"
              f"   two: p50 {fb['p50_ms']} ms p99 {fb['p99_ms']} ms")
    out = ROOT / args.out
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2) + "\n")
    print(f"(results in {args.out})")


if __name__ == "__main__":
    asyncio.run(main())
