"""Staffing (docs/staffing.md): agents needed per interval by Erlang C (or Erlang A when the
callers' patience is given), and next week's forecast from a queue's history.

``POST /v1/staffing`` is a computation: it reads and stores nothing (a POST because a day of
intervals does not fit a query string). ``GET /v1/staffing/forecast`` reads the queue's calls.
Admins, supervisors and integrations."""

from __future__ import annotations

from datetime import date, datetime
from enum import IntEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.errors import InvalidRequest
from controller.engines.erlang import Target
from controller.engines.staffing import MAX_TRAFFIC_ERLANGS, Demand, IntervalPlan, Plan, Staffing
from controller.services.agents import ID_PATTERN
from controller.services.staffing import MAX_WEEKS, Forecast

router = APIRouter(prefix="/v1/staffing", tags=["staffing"])

READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)


class IntervalMinutes(IntEnum):
    """Interval lengths a forecast cuts a day into (engines/forecast.py INTERVAL_MINUTES)."""

    five = 5
    ten = 10
    fifteen = 15
    twenty = 20
    thirty = 30
    sixty = 60


MAX_INTERVALS = 2016  # a week of 5-minute intervals
MAX_CALLS = 10_000_000.0
# Handle times below 10 s are not calls; with patience capped at an hour this also bounds the
# work of an Erlang A evaluation (its sums run over about sqrt(agents * patience / AHT) terms).
MIN_AHT_S, MAX_AHT_S = 10.0, 86_400.0
MAX_PATIENCE_S = 3600.0
MAX_ANSWER_TIME_S = 3600.0
DEFAULT_SERVICE_LEVEL_PCT = 80.0
TZ_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]{0,30}(/[A-Za-z0-9_+-]{1,30}){0,2}$"

ServiceLevelPct = Field(None, gt=0, lt=100, description="Target: this percentage of the calls answered "
                                                       "within answer_time_s (100 is never reached)")
MaxAsa = Field(None, gt=0, le=MAX_ANSWER_TIME_S,
               description="Target: mean wait of the answered calls, seconds")
MaxOccupancy = Field(None, gt=0, le=100, description="Limit: percentage of the agents' time on calls")
MaxAbandon = Field(None, gt=0, lt=100, description="Limit: percentage of callers who hang up while "
                                                   "waiting (Erlang A: needs patience_s)")
Shrinkage = Field(0.0, ge=0, lt=100, description="Percentage of paid time not available for calls "
                                                 "(breaks, training, absence): scheduled = ceil(agents / "
                                                 "(1 - shrinkage))")
Patience = Field(None, ge=1, le=MAX_PATIENCE_S, description="Callers' mean patience, seconds: given, the "
                                                            "model is Erlang A (callers hang up); absent, "
                                                            "Erlang C (callers wait as long as it takes)")


def _staffing(service_level_pct: float | None, answer_time_s: float, max_asa_s: float | None,
              max_occupancy_pct: float | None, max_abandon_pct: float | None, shrinkage_pct: float,
              patience_s: float | None) -> Staffing:
    if max_abandon_pct is not None and patience_s is None:
        raise InvalidRequest("max_abandon_pct needs patience_s (abandons exist in Erlang A only)")
    if all(limit is None for limit in (service_level_pct, max_asa_s, max_occupancy_pct, max_abandon_pct)):
        service_level_pct = DEFAULT_SERVICE_LEVEL_PCT
    try:
        target = Target(
            answer_time_s=answer_time_s,
            service_level=None if service_level_pct is None else service_level_pct / 100,
            max_asa_s=max_asa_s,
            max_occupancy=None if max_occupancy_pct is None else max_occupancy_pct / 100,
            max_abandon=None if max_abandon_pct is None else max_abandon_pct / 100,
        )
    except ValueError as exc:  # a percentage so small it is 0 as a fraction
        raise InvalidRequest(str(exc)) from exc
    return Staffing(target, shrinkage_pct / 100, patience_s)


# ---- documents ---------------------------------------------------------------------------------


class IntervalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: float = Field(ge=0, le=MAX_CALLS, description="Calls offered in the interval (a forecast "
                                                         "may be fractional)")
    aht_s: float | None = Field(None, ge=MIN_AHT_S, le=MAX_AHT_S,
                                description="This interval's handle time, if not the request's aht_s")
    label: str | None = Field(None, max_length=64, description="Echoed back, e.g. 09:00")


class StaffingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: int = Field(30, ge=1, le=1440, description="Interval length, minutes")
    aht_s: float | None = Field(None, ge=MIN_AHT_S, le=MAX_AHT_S,
                                description="Handle time of a call (talk, hold and wrap-up), seconds, "
                                            "for the intervals without their own")
    service_level_pct: float | None = ServiceLevelPct
    answer_time_s: float = Field(20, ge=0, le=MAX_ANSWER_TIME_S,
                                 description="The service level's answer time, seconds")
    max_asa_s: float | None = MaxAsa
    max_occupancy_pct: float | None = MaxOccupancy
    max_abandon_pct: float | None = MaxAbandon
    shrinkage_pct: float = Shrinkage
    patience_s: float | None = Patience
    intervals: list[IntervalIn] = Field(min_length=1, max_length=MAX_INTERVALS,
                                        description="One for a single interval; 48 for a day of "
                                                    "30-minute intervals; ...")

    @model_validator(mode="after")
    def _consistent(self) -> StaffingRequest:
        if self.max_abandon_pct is not None and self.patience_s is None:
            raise ValueError("max_abandon_pct needs patience_s (abandons exist in Erlang A only)")
        for index, item in enumerate(self.intervals):
            aht = item.aht_s if item.aht_s is not None else self.aht_s
            if item.calls > 0 and aht is None:
                raise ValueError(f"intervals[{index}] has calls but no aht_s, and the request gives none")
            traffic = item.calls * (aht or 0) / (self.interval * 60)
            if traffic > MAX_TRAFFIC_ERLANGS:
                raise ValueError(f"intervals[{index}]: {traffic:,.0f} Erlangs of traffic (calls x AHT / "
                                 f"interval) is over the {MAX_TRAFFIC_ERLANGS:,.0f} this sizes")
        return self


class IntervalOut(BaseModel):
    label: str | None = None
    start: datetime | None = Field(None, description="Forecasts: the interval's start, local time with "
                                                     "its offset")
    calls: float
    aht_s: float | None
    traffic_erlangs: float = Field(description="calls x AHT / interval")
    agents: int = Field(description="The fewest agents meeting every target")
    scheduled_agents: int = Field(description="agents / (1 - shrinkage), rounded up")
    service_level_pct: float = Field(description="Calls answered within answer_time_s, of all calls")
    asa_s: float = Field(description="Mean wait of the answered calls")
    mean_wait_s: float = Field(description="Mean wait of all callers (those who hang up: until they do)")
    occupancy_pct: float
    wait_pct: float = Field(description="Calls not answered at once")
    abandon_pct: float = Field(description="Callers who hang up while waiting (0 with Erlang C)")

    @classmethod
    def of(cls, item: IntervalPlan) -> IntervalOut:
        figures = item.figures
        return cls(label=item.demand.label, start=item.demand.start, calls=item.demand.calls,
                   aht_s=item.demand.aht_s, traffic_erlangs=figures.traffic, agents=figures.agents,
                   scheduled_agents=item.scheduled, service_level_pct=100 * figures.service_level,
                   asa_s=figures.asa_s, mean_wait_s=figures.mean_wait_s,
                   occupancy_pct=100 * figures.occupancy, wait_pct=100 * figures.p_wait,
                   abandon_pct=100 * figures.p_abandon)


class TotalsOut(BaseModel):
    calls: float
    agent_hours: float = Field(description="Agents needed x interval length, summed")
    scheduled_agent_hours: float
    peak_agents: int
    peak_scheduled_agents: int
    service_level_pct: float = Field(description="Over all the calls")
    abandon_pct: float
    asa_s: float = Field(description="Over the answered calls")


class PlanOut(BaseModel):
    model: Literal["erlang_c", "erlang_a"]
    interval: int = Field(description="Minutes")
    answer_time_s: float
    intervals: list[IntervalOut]
    total: TotalsOut

    @classmethod
    def of(cls, plan: Plan, answer_time_s: float, **extra: object) -> PlanOut:
        totals = plan.totals
        return cls.model_validate({
            "model": plan.model, "interval": round(plan.interval_s / 60), "answer_time_s": answer_time_s,
            "intervals": [IntervalOut.of(item) for item in plan.intervals],
            "total": TotalsOut(calls=totals.calls, agent_hours=totals.agent_hours,
                               scheduled_agent_hours=totals.scheduled_hours, peak_agents=totals.peak_agents,
                               peak_scheduled_agents=totals.peak_scheduled,
                               service_level_pct=100 * totals.service_level,
                               abandon_pct=100 * totals.p_abandon, asa_s=totals.asa_s),
            **extra,
        })


class HistoryOut(BaseModel):
    since: datetime = Field(description="Local midnight the history starts at")
    until: datetime = Field(description="Local midnight it ends at (excluded)")
    calls: int = Field(description="Calls offered to the queue in the history")
    answered: int = Field(description="Of which answered by an agent, with a known handle time")


class ForecastOut(PlanOut):
    queue: str
    tz: str
    weeks: int
    history: HistoryOut

    @classmethod
    def of_forecast(cls, forecast: Forecast, answer_time_s: float) -> ForecastOut:
        history = HistoryOut(since=forecast.history_since, until=forecast.history_until,
                             calls=forecast.history_calls, answered=forecast.history_handled)
        return cls.model_validate(PlanOut.of(forecast.plan, answer_time_s).model_dump() | {
            "queue": forecast.queue, "tz": forecast.tz, "weeks": forecast.weeks, "history": history})


# ---- routes --------------------------------------------------------------------------------------


@router.post("", response_model=PlanOut, summary="Agents needed for one interval or a day of them "
                                                 "(admin, supervisor, integration); computes, stores nothing",
             responses=problems(400, 401, 403, 422))
async def plan_staffing(
    body: StaffingRequest,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> PlanOut:
    staffing = _staffing(body.service_level_pct, body.answer_time_s, body.max_asa_s, body.max_occupancy_pct,
                         body.max_abandon_pct, body.shrinkage_pct, body.patience_s)
    demands = [Demand(item.calls, item.aht_s if item.aht_s is not None else body.aht_s, label=item.label)
               for item in body.intervals]
    plan = await runtime.staffing.plan(demands, body.interval * 60, staffing)
    return PlanOut.of(plan, staffing.target.answer_time_s)


@router.get("/forecast", response_model=ForecastOut,
            summary="Next week's calls, handle time and agents per interval, from the queue's history "
                    "(admin, supervisor, integration)",
            responses=problems(401, 403, 404, 422, 503))
async def forecast_staffing(
    queue: str = Query(min_length=1, max_length=64, pattern=ID_PATTERN, description="The queue"),
    weeks: int = Query(4, ge=1, le=MAX_WEEKS, description="Whole weeks of history to average"),
    interval: IntervalMinutes = Query(IntervalMinutes.thirty, description="Interval length, minutes"),
    tz: str = Query("UTC", max_length=64, pattern=TZ_PATTERN,
                    description="IANA time zone the weekdays and times of day are in, e.g. Europe/Paris"),
    start: date | None = Query(None, description="First day of the 7 forecast (default: next Monday)"),
    service_level_pct: float | None = Query(None, gt=0, lt=100, description=ServiceLevelPct.description),
    answer_time_s: float | None = Query(None, ge=0, le=MAX_ANSWER_TIME_S,
                                        description="The service level's answer time, seconds (default: "
                                                    "the queue's service_level_s)"),
    max_asa_s: float | None = Query(None, gt=0, le=MAX_ANSWER_TIME_S, description=MaxAsa.description),
    max_occupancy_pct: float | None = Query(None, gt=0, le=100, description=MaxOccupancy.description),
    max_abandon_pct: float | None = Query(None, gt=0, lt=100, description=MaxAbandon.description),
    shrinkage_pct: float = Query(0.0, ge=0, lt=100, description=Shrinkage.description),
    patience_s: float | None = Query(None, ge=1, le=MAX_PATIENCE_S, description=Patience.description),
    aht_s: float | None = Query(None, ge=MIN_AHT_S, le=MAX_AHT_S,
                                description="Handle time to use when the history has no answered call"),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> ForecastOut:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidRequest(f"unknown time zone {tz!r}") from exc
    staffing = _staffing(service_level_pct, answer_time_s if answer_time_s is not None else 0.0, max_asa_s,
                         max_occupancy_pct, max_abandon_pct, shrinkage_pct, patience_s)
    forecast = await runtime.staffing.forecast(
        queue, weeks=weeks, interval_min=int(interval), tz=zone, staffing=staffing, start=start,
        answer_time_s=answer_time_s, fallback_aht_s=aht_s)
    return ForecastOut.of_forecast(forecast, forecast.answer_time_s)
