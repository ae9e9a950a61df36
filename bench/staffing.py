"""Workforce math benchmark: how long the agents needed take to compute (engines/erlang.py).

Run with `make bench` or `scripts/bench staffing`, or `python -m bench.staffing` (pure
arithmetic: no service needed).

For each traffic (10, 100, 1,000, 10,000 Erlangs; AHT 300 s; 80% answered in 20 s), the time of
one `agents_needed` with Erlang C and with Erlang A (mean patience 120 s; and 3,600 s with a
10 s AHT, the slowest case the API admits), the median of several runs; then a 96-interval day
(15-minute intervals, a day-shaped curve peaking at 1,000 Erlangs) sized by `plan`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from controller.engines.erlang import Load, Target, agents_needed
from controller.engines.staffing import Demand, Staffing, plan

TARGET = Target(answer_time_s=20, service_level=0.8)
TRAFFICS = (10.0, 100.0, 1_000.0, 10_000.0)


def timed(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time (ms) of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def day_curve(peak_erlangs: float, aht_s: float, interval_s: float) -> list[Demand]:
    """96 quarter hours: quiet at night, a morning and an afternoon peak."""
    demands = []
    for index in range(96):
        hour = index / 4
        shape = max(0.0, math.sin(math.pi * (hour - 7) / 12)) ** 1.5 if 7 <= hour <= 19 else 0.02
        shape *= 1.0 if hour < 13 else 0.85
        erlangs = peak_erlangs * shape
        label = f"{int(hour):02d}:{index % 4 * 15:02d}"
        demands.append(Demand(erlangs * interval_s / aht_s, aht_s, label=label))
    return demands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is kept)")
    parser.add_argument("--out", default="bench/results/staffing.json")
    args = parser.parse_args()
    report: dict = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                    "python": platform.python_version(),
                    "at": datetime.now(UTC).isoformat(timespec="seconds"), "agents_needed": []}
    print(f"{'Erlangs':>8} {'model':<24} {'agents':>7} {'SL':>7} {'ms':>9}")
    for traffic in TRAFFICS:
        for model, load in (
                ("erlang_c", Load(traffic / 300, 300)),
                ("erlang_a patience 120 s", Load(traffic / 300, 300, patience_s=120)),
                ("erlang_a AHT 10 s, 3600 s", Load(traffic / 10, 10, patience_s=3600))):
            ms, result = timed(lambda load=load: agents_needed(load, TARGET), args.repeat)
            report["agents_needed"].append({
                "erlangs": traffic, "model": model, "agents": result.agents,
                "service_level": round(result.service_level, 4), "ms": round(ms, 3)})
            print(f"{traffic:>8,.0f} {model:<24} {result.agents:>7} {result.service_level:>7.4f} {ms:>9.3f}")
    report["day"] = []
    demands = day_curve(1_000.0, 300, 900)
    for patience in (None, 120.0):
        ms, result = timed(lambda patience=patience: plan(demands, 900, Staffing(TARGET, 0.3, patience)),
                           args.repeat)
        row = {"intervals": len(demands), "peak_erlangs": 1_000, "model": result.model, "ms": round(ms, 1),
               "agent_hours": round(result.totals.agent_hours, 1), "peak_agents": result.totals.peak_agents}
        report["day"].append(row)
        print(f"96-interval day ({result.model}): {ms:.1f} ms, peak {result.totals.peak_agents} agents, "
              f"{result.totals.agent_hours:.1f} agent-hours")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"(results in {args.out})")


if __name__ == "__main__":
    main()
