"""A day (or a week) of intervals staffed: agents needed and scheduled per interval, and totals.

Pure: each interval is sized on its own by :func:`controller.engines.erlang.agents_needed`
(the usual stationary, interval-by-interval approximation: every interval is taken as if its
calls kept arriving at the same rate for long), then shrinkage turns agents needed into agents
to schedule. Totals weigh each interval's figures by its calls (service level, abandons) or its
answered calls (ASA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.engines.erlang import Figures, Load, Target, agents_needed, scheduled_agents

# Beyond this many Erlangs in one interval the answer is refused rather than computed: no queue
# of one controller is that large, and a mistyped forecast should fail loudly.
MAX_TRAFFIC_ERLANGS = 10_000.0


class TrafficTooLarge(ValueError):
    """An interval's traffic is over MAX_TRAFFIC_ERLANGS."""


@dataclass(frozen=True, slots=True)
class Demand:
    """What one interval is expected to bring."""

    calls: float
    aht_s: float | None  # None only when there are no calls
    label: str | None = None
    start: datetime | None = None


@dataclass(frozen=True, slots=True)
class Staffing:
    """How an interval is to be sized: the targets, the callers' patience (None: Erlang C) and
    the shrinkage (a fraction of paid time)."""

    target: Target
    shrinkage: float = 0.0
    patience_s: float | None = None

    @property
    def model(self) -> str:
        return "erlang_c" if self.patience_s is None else "erlang_a"


@dataclass(frozen=True, slots=True)
class IntervalPlan:
    demand: Demand
    figures: Figures
    scheduled: int


@dataclass(frozen=True, slots=True)
class Totals:
    calls: float
    agent_hours: float
    scheduled_hours: float
    peak_agents: int
    peak_scheduled: int
    service_level: float  # over all calls
    p_abandon: float  # over all calls
    asa_s: float  # over the answered calls


@dataclass(frozen=True, slots=True)
class Plan:
    model: str
    interval_s: float
    intervals: tuple[IntervalPlan, ...]
    totals: Totals


def plan(demands: Sequence[Demand], interval_s: float, staffing: Staffing) -> Plan:
    """Every interval sized; ``TrafficTooLarge`` or ``ValueError`` for impossible inputs."""
    if not interval_s > 0:
        raise ValueError("interval_s must be > 0")
    sized = []
    for index, demand in enumerate(demands):
        if demand.calls < 0:
            raise ValueError(f"interval {index}: calls must be >= 0")
        if demand.calls == 0:
            load = Load(0.0, demand.aht_s or 1.0, staffing.patience_s)
        elif demand.aht_s is None:
            raise ValueError(f"interval {index}: calls without a handle time")
        else:
            load = Load.of_interval(demand.calls, interval_s, demand.aht_s, staffing.patience_s)
        if load.traffic > MAX_TRAFFIC_ERLANGS:
            raise TrafficTooLarge(f"interval {index}: {load.traffic:,.0f} Erlangs of traffic (calls x AHT / "
                                  f"interval) is over the {MAX_TRAFFIC_ERLANGS:,.0f} this sizes")
        result = agents_needed(load, staffing.target)
        sized.append(IntervalPlan(demand, result, scheduled_agents(result.agents, staffing.shrinkage)))
    return Plan(staffing.model, interval_s, tuple(sized), _totals(sized, interval_s))


def _totals(sized: Sequence[IntervalPlan], interval_s: float) -> Totals:
    calls = sum(p.demand.calls for p in sized)
    answered = sum(p.demand.calls * (1 - p.figures.p_abandon) for p in sized)
    hours = interval_s / 3600
    return Totals(
        calls=calls,
        agent_hours=sum(p.figures.agents for p in sized) * hours,
        scheduled_hours=sum(p.scheduled for p in sized) * hours,
        peak_agents=max((p.figures.agents for p in sized), default=0),
        peak_scheduled=max((p.scheduled for p in sized), default=0),
        service_level=(sum(p.demand.calls * p.figures.service_level for p in sized) / calls
                       if calls else 1.0),
        p_abandon=(sum(p.demand.calls * p.figures.p_abandon for p in sized) / calls) if calls else 0.0,
        asa_s=(sum(p.demand.calls * (1 - p.figures.p_abandon) * p.figures.asa_s for p in sized) / answered
               if answered else 0.0),
    )
