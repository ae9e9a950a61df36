"""ACD benchmark on the real local Asterisk: routing latency of the controller's ACD next to
Asterisk's own app_queue with the same agents on the same box, and the calls per second the
ACD sustains.

Run with `make bench` (it provisions Asterisk, Postgres and Redis like `make test`), or
`python -m bench.acd --calls 200 --rates 5,10,20` with them already up.

Routing latency: the caller enters the queue → the agent's channel is created.

* app_queue: the caller's channel runs ``Queue()`` (AMI ``Newexten``, application Queue) → the
  member channel appears (``Newchannel`` of the ``AgentCalled`` event's ``DestUniqueid``), both
  on Asterisk's clock (AMI events with ``timestampevents``).
* controller: the call service hands the ACD the queue entry (``CallQueued``; its
  ``entered_at``, the controller's clock, taken by wrapping ``AcdService.submit`` here) → the
  agent channel the ACD originates appears (``Newchannel``; its id is the agent leg id in the
  call's ``AgentOffered`` record; Asterisk's clock: the same host clock). In between: the ACD
  task, the engine's decision, the originate request over ARI and Asterisk creating the
  channel. Also reported from the caller's entry into ``Stasis()`` (the ARI event, the flow
  answering the caller, then the queue).

Both run with the same 30 agents (Local channels into ``[ccc-test-agent]``, which answer and
echo), a free agent always there (a few callers at a time), each caller held 1 s.

Calls per second: callers arrive at a fixed rate, each held 1 s once answered, 120 agents;
a rate passes when every caller was connected to an agent. Rates go up until one fails.
The callers run in this process, on the same 2 cores as Asterisk, Postgres, Redis and the
controller, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from bench.ivr import ARI_AUTH, ARI_URL, DATABASE_URL, percentile, started_runtime
from controller.adapters.asterisk.ami import AmiClient
from controller.domain.agents import Strategy
from controller.engines import acd as acd_engine
from controller.services.acd import AcdService
from controller.services.agents import AgentSpec
from controller.services.number_routes import RouteSpec
from controller.services.queues import QueueSpec
from tests.integration.phones import PhoneBank

NUMBER = "7998"
APP_QUEUE_CONTEXT = "ccc-bench-queue"
LATENCY_AGENTS = range(1200, 1230)  # the same devices as dialplan/queues.conf [ccc-bench]
RATE_AGENTS = range(1300, 1390)
HOLD_S = 1.0  # app_queue's dialplan Answer() alone takes 500 ms before Queue() runs


class AmiTimes:
    """Asterisk's timestamps of the events the latency is computed from, by channel id."""

    def __init__(self, ami: AmiClient) -> None:
        self.stasis_entry: dict[str, float] = {}
        self.queue_entry: dict[str, float] = {}  # app_queue: the caller runs Queue()
        self.acd_entry: dict[str, float] = {}  # controller: call id -> CallQueued.entered_at
        self.created: dict[str, float] = {}
        self.called: dict[str, str] = {}  # caller uniqueid -> first member channel uniqueid
        ami.on_event("Newchannel", self._newchannel)
        ami.on_event("Newexten", self._newexten)
        ami.on_event("AgentCalled", self._agent_called)

    def _newchannel(self, event: dict[str, str]) -> None:
        self.created.setdefault(event["Uniqueid"], float(event["Timestamp"]))

    def _newexten(self, event: dict[str, str]) -> None:
        uid, at = event["Uniqueid"], float(event["Timestamp"])
        if event.get("Application") == "Stasis":
            self.stasis_entry.setdefault(uid, at)
        elif event.get("Context") == APP_QUEUE_CONTEXT and event.get("Application") == "Queue":
            self.queue_entry.setdefault(uid, at)

    def _agent_called(self, event: dict[str, str]) -> None:
        self.called.setdefault(event["Uniqueid"], event["DestUniqueid"])

    def watch_acd(self, acd: AcdService) -> None:
        """Note when each call is handed to the ACD (instrumentation for this bench only)."""
        submit = acd.submit

        def noting(event: acd_engine.AcdEvent) -> None:
            if isinstance(event, acd_engine.CallQueued):
                self.acd_entry.setdefault(event.entry.call_id, event.entry.entered_at.timestamp())
            submit(event)

        acd.submit = noting  # type: ignore[method-assign]


def summary(values_s: list[float]) -> dict[str, float | int]:
    ms = [v * 1000 for v in values_s]
    return {"samples": len(ms), "p50_ms": round(percentile(ms, 0.5), 2),
            "p99_ms": round(percentile(ms, 0.99), 2), "max_ms": round(max(ms), 2) if ms else float("nan")}


async def caller(phones: PhoneBank, number: str, context: str, failures: list[str]) -> None:
    phone = await phones.call(number, context=context)
    try:
        await phone.wait_answered(timeout=15)
        await asyncio.sleep(HOLD_S)
    except TimeoutError:
        failures.append("not answered within 15 s")
    finally:
        await phone.hang_up()


async def place(phones: PhoneBank, number: str, context: str, calls: int, concurrency: int) -> list[str]:
    """``calls`` callers, at most ``concurrency`` at a time."""
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await caller(phones, number, context, failures)
            await asyncio.sleep(0.05)  # let the agent's channel go before the next caller

    await asyncio.gather(*(one() for _ in range(calls)))
    return failures


async def controller_calls(since: datetime, number: str) -> list[dict]:
    """Per call: the caller leg, the first agent leg offered, whether an agent was connected."""
    async with await psycopg.AsyncConnection.connect(DATABASE_URL, row_factory=dict_row) as conn:
        cursor = await conn.execute(
            """
            SELECT c.id,
                   (SELECT l.id FROM legs l WHERE l.call_id = c.id AND l.role = 'caller'
                    ORDER BY l.created_at LIMIT 1) AS caller_leg,
                   (SELECT e.leg_id FROM call_events e WHERE e.call_id = c.id AND e.kind = 'AgentOffered'
                    ORDER BY e.id LIMIT 1) AS agent_leg,
                   EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id
                           AND e.kind = 'AgentConnected') AS connected
            FROM calls c WHERE c.dialed = %s AND c.started_at >= %s
            """, (number, since))
        return await cursor.fetchall()


async def measure_controller(runtime, phones: PhoneBank, times: AmiTimes, calls: int,
                             concurrency: int) -> dict:
    since = datetime.now(UTC)
    failures = await place(phones, NUMBER, "ccc-inbound", calls, concurrency)
    await asyncio.sleep(1)
    await runtime.records.flushed(timeout=60)
    rows = await controller_calls(since, NUMBER)
    return {"calls": calls, "failed": len(failures), "connected": sum(r["connected"] for r in rows),
            "queue_entry_to_agent_channel": summary(from_queue_entry(times, rows)),
            "stasis_entry_to_agent_channel": summary(from_stasis_entry(times, rows))}


def from_queue_entry(times: AmiTimes, rows: list[dict]) -> list[float]:
    return [times.created[r["agent_leg"]] - times.acd_entry[r["id"]] for r in rows
            if r["agent_leg"] in times.created and r["id"] in times.acd_entry]


def from_stasis_entry(times: AmiTimes, rows: list[dict]) -> list[float]:
    return [times.created[r["agent_leg"]] - times.stasis_entry[r["caller_leg"]] for r in rows
            if r["agent_leg"] in times.created and r["caller_leg"] in times.stasis_entry]


async def measure_app_queue(phones: PhoneBank, times: AmiTimes, calls: int, concurrency: int) -> dict:
    before = set(times.called)
    failures = await place(phones, NUMBER, APP_QUEUE_CONTEXT, calls, concurrency)
    await asyncio.sleep(1)
    callers = [uid for uid in times.called if uid not in before]
    from_queue = [times.created[times.called[uid]] - times.queue_entry[uid] for uid in callers
                  if times.called[uid] in times.created and uid in times.queue_entry]
    return {"calls": calls, "failed": len(failures), "connected_callers": len(callers),
            "queue_entry_to_agent_channel": summary(from_queue)}


async def run_rate(runtime, phones: PhoneBank, times: AmiTimes, rate: float, seconds: float) -> dict:
    since = datetime.now(UTC)
    failures: list[str] = []
    started = time.monotonic()
    tasks = []
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(caller(phones, NUMBER, "ccc-inbound", failures)))
    placing = time.monotonic() - started
    await asyncio.gather(*tasks)
    await asyncio.sleep(1)
    await runtime.records.flushed(timeout=60)
    rows = await controller_calls(since, NUMBER)
    connected = sum(r["connected"] for r in rows)
    return {"rate_offered": rate, "achieved_rate": round(len(tasks) / placing, 2) if placing else rate,
            "calls": len(tasks), "connected": connected, "not_connected": len(tasks) - connected,
            "phone_failures": len(failures),
            "queue_entry_to_agent_channel": summary(from_queue_entry(times, rows)),
            "stasis_entry_to_agent_channel": summary(from_stasis_entry(times, rows))}


async def setup(runtime) -> None:
    members = []
    for n in (*LATENCY_AGENTS, *RATE_AGENTS):
        agent_id = f"bench{n}"
        await runtime.agents.create(agent_id, AgentSpec(agent_id, f"Local/{n}@ccc-test-agent"))
        members.append((agent_id, 0))
    spec = QueueSpec(strategy=Strategy.LONGEST_IDLE.value, members=tuple(members), ring_timeout_s=15,
                     wrap_up_s=0, max_misses_before_pause=0)
    await runtime.queues.create("bench", spec)
    await runtime.flows.create("bench-queue", {"start": "q", "nodes": {"q": {"type": "queue",
                                                                              "queue": "bench"}}})
    await runtime.number_routes.create("bench", RouteSpec(pattern=NUMBER, flow="bench-queue"))
    await runtime.reload_acd()


async def login(runtime, numbers: range) -> None:
    for n in numbers:
        await runtime.login_agent(f"bench{n}")


async def logout(runtime, numbers: range) -> None:
    for n in numbers:
        await runtime.acd.agent_action(f"bench{n}", "logout")


def ratio(controller: dict, app_queue: dict, key: str) -> float | None:
    ours = controller["queue_entry_to_agent_channel"][key]
    theirs = app_queue["queue_entry_to_agent_channel"][key]
    return round(ours / theirs, 2) if theirs else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="callers for each latency measurement")
    parser.add_argument("--concurrency", type=int, default=4, help="callers at a time for the latency")
    parser.add_argument("--rates", default="10,20,30,40,60,80", help="calls per second to offer, in order")
    parser.add_argument("--seconds", type=float, default=8, help="how long each rate is offered")
    parser.add_argument("--out", default="bench/results/acd.json")
    args = parser.parse_args()

    runtime = await started_runtime()
    settings = runtime.settings
    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_user,
                    settings.ami_secret.get_secret_value())
    times = AmiTimes(ami)
    times.watch_acd(runtime.acd)
    await ami.start()
    phones = PhoneBank(ARI_URL, ARI_AUTH)
    await phones.start()
    await setup(runtime)
    info = await runtime.switch.ari.request("GET", "/asterisk/info")
    report: dict = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                    "asterisk": info["system"]["version"],
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "agents_latency": len(LATENCY_AGENTS), "hold_s": HOLD_S}
    try:
        await login(runtime, LATENCY_AGENTS)
        print(f"controller ACD: {args.calls} callers, {args.concurrency} at a time ...")
        report["controller"] = await measure_controller(runtime, phones, times, args.calls, args.concurrency)
        print("   ", json.dumps(report["controller"]))
        print(f"app_queue: {args.calls} callers, {args.concurrency} at a time ...")
        report["app_queue"] = await measure_app_queue(phones, times, args.calls, args.concurrency)
        print("   ", json.dumps(report["app_queue"]))
        report["ratio_p50"] = ratio(report["controller"], report["app_queue"], "p50_ms")
        report["ratio_p99"] = ratio(report["controller"], report["app_queue"], "p99_ms")
        await login(runtime, RATE_AGENTS)
        report["agents_rates"] = len(LATENCY_AGENTS) + len(RATE_AGENTS)
        report["rates"] = []
        for rate in [float(r) for r in args.rates.split(",")]:
            print(f"offering {rate:g} queue calls/s for {args.seconds:g} s ...")
            result = await run_rate(runtime, phones, times, rate, args.seconds)
            report["rates"].append(result)
            print("   ", json.dumps(result))
            if result["not_connected"] or result["phone_failures"]:
                break
            await asyncio.sleep(2)
    finally:
        await phones.close()
        await ami.close()
        await runtime.close()
    passed = [r for r in report.get("rates", []) if not r["not_connected"] and not r["phone_failures"]]
    report["sustained_calls_per_s"] = max((r["achieved_rate"] for r in passed), default=0)
    print("\nrouting latency (caller enters the queue -> agent channel created):")
    print(f"  {'':40} {'p50':>10} {'p99':>10}")
    for label, figures in (
            ("controller ACD", report["controller"]["queue_entry_to_agent_channel"]),
            ("app_queue", report["app_queue"]["queue_entry_to_agent_channel"]),
            ("controller, from Stasis() entry", report["controller"]["stasis_entry_to_agent_channel"])):
        print(f"  {label:40} {figures['p50_ms']:>7} ms {figures['p99_ms']:>7} ms")
    print(f"  ratio controller / app_queue: p50 {report['ratio_p50']}x, p99 {report['ratio_p99']}x")
    print(f"highest rate with every caller connected: {report['sustained_calls_per_s']:g} calls/s")
    out = Path(args.out)
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2) + "\n")
    print(f"(results in {args.out})")


if __name__ == "__main__":
    asyncio.run(main())
