"""Alarms (docs/alarms.md): thresholds per queue and for the system, the alarms they raise and
clear, and acknowledging them. Admins and supervisors write rules and acknowledge; integrations
read too."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.alarms import (
    Alarm,
    AlarmKind,
    QueueAlarmRule,
    SystemAlarmRule,
    Threshold,
    default_clear_at,
)
from controller.services.agents import ID_PATTERN
from controller.storage.alarms import AlarmFilter

router = APIRouter(tags=["alarms"])

READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)

QueueName = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN,
                                description="The queue's name")]
AlarmId = Annotated[UUID, Path(description="The alarm's id")]
MAX_DELAY_S = 3600


class Levels(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raise_at: float = Field(description="The level that raises the alarm")
    clear_at: float | None = Field(None, description="The level that clears it (see docs/alarms.md for "
                                                     "the default); must be on the good side of raise_at")

    def threshold(self, kind: AlarmKind) -> Threshold:
        clear = self.clear_at if self.clear_at is not None else default_clear_at(kind, self.raise_at)
        return Threshold(self.raise_at, clear)


class Count(Levels):
    raise_at: float = Field(ge=0, le=100_000, description="The level that raises the alarm")
    clear_at: float | None = Field(None, ge=0, le=100_000)


class Waiting(Levels):
    raise_at: float = Field(ge=1, le=100_000, description="Callers waiting that raise the alarm")
    clear_at: float | None = Field(None, ge=0, le=100_000)


class Seconds(Levels):
    raise_at: float = Field(gt=0, le=86_400, description="Seconds that raise the alarm")
    clear_at: float | None = Field(None, ge=0, le=86_400)


class Fraction(Levels):
    raise_at: float = Field(ge=0, le=1, description="A fraction: 0.8 is 80 %")
    clear_at: float | None = Field(None, ge=0, le=1)


class ShareOfCap(Levels):
    raise_at: float = Field(gt=0, le=10, description="A share of the campaign's cap: 0.9 is 90 % of it")
    clear_at: float | None = Field(None, ge=0, le=10)


class QueueRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    callers_waiting: Waiting | None = Field(None, description="Callers waiting: raised at raise_at or more")
    longest_wait_s: Seconds | None = Field(None, description="The longest current wait: raised at raise_at "
                                                             "seconds or more")
    service_level: Fraction | None = Field(None, description="Today's service level: raised at raise_at "
                                                             "or less")
    agents_available: Count | None = Field(None, description="Member agents available: raised at raise_at "
                                                             "or fewer")
    raise_after_s: float = Field(0, ge=0, le=MAX_DELAY_S,
                                 description="How long the raising level must hold")
    clear_after_s: float = Field(15, ge=0, le=MAX_DELAY_S,
                                 description="How long the clearing level must hold")

    def rule(self, queue: str) -> QueueAlarmRule:
        def level(levels: Levels | None, kind: AlarmKind) -> Threshold | None:
            return None if levels is None else levels.threshold(kind)

        return QueueAlarmRule(queue, level(self.callers_waiting, AlarmKind.CALLERS_WAITING),
                              level(self.longest_wait_s, AlarmKind.LONGEST_WAIT),
                              level(self.service_level, AlarmKind.SERVICE_LEVEL),
                              level(self.agents_available, AlarmKind.AGENTS_AVAILABLE),
                              self.raise_after_s, self.clear_after_s)


class LevelsOut(BaseModel):
    raise_at: float
    clear_at: float


class QueueRuleOut(BaseModel):
    queue: str
    callers_waiting: LevelsOut | None
    longest_wait_s: LevelsOut | None
    service_level: LevelsOut | None
    agents_available: LevelsOut | None
    raise_after_s: float
    clear_after_s: float
    updated_at: datetime

    @classmethod
    def of(cls, rule: QueueAlarmRule, updated_at: datetime) -> QueueRuleOut:
        def out(threshold: Threshold | None) -> LevelsOut | None:
            return None if threshold is None else LevelsOut(raise_at=threshold.raise_at,
                                                            clear_at=threshold.clear_at)

        return cls(queue=rule.queue, callers_waiting=out(rule.callers_waiting),
                   longest_wait_s=out(rule.longest_wait_s), service_level=out(rule.service_level),
                   agents_available=out(rule.agents_available), raise_after_s=rule.raise_after_s,
                   clear_after_s=rule.clear_after_s, updated_at=updated_at)


class SystemRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pbx_link_down: StrictBool = Field(True, description="Raise an alarm when a PBX link (ARI, AMI) of a "
                                                        "controller process is down")
    dialer_abandon_rate: ShareOfCap | None = Field(
        default_factory=lambda: ShareOfCap(raise_at=0.9, clear_at=0.8),
        description="A campaign's abandonment rate as a share of its cap; null: no dialer alarms")
    raise_after_s: float = Field(5, ge=0, le=MAX_DELAY_S)
    clear_after_s: float = Field(5, ge=0, le=MAX_DELAY_S)

    def rule(self) -> SystemAlarmRule:
        rate = self.dialer_abandon_rate
        return SystemAlarmRule(self.pbx_link_down,
                               None if rate is None else rate.threshold(AlarmKind.DIALER_ABANDON_RATE),
                               self.raise_after_s, self.clear_after_s)


class SystemRuleOut(BaseModel):
    pbx_link_down: bool
    dialer_abandon_rate: LevelsOut | None
    raise_after_s: float
    clear_after_s: float
    updated_at: datetime | None = Field(description="None while the defaults apply")

    @classmethod
    def of(cls, rule: SystemAlarmRule, updated_at: datetime | None) -> SystemRuleOut:
        rate = rule.dialer_abandon_rate
        return cls(pbx_link_down=rule.pbx_link_down,
                   dialer_abandon_rate=None if rate is None else LevelsOut(raise_at=rate.raise_at,
                                                                           clear_at=rate.clear_at),
                   raise_after_s=rule.raise_after_s, clear_after_s=rule.clear_after_s, updated_at=updated_at)


class AlarmOut(BaseModel):
    id: UUID
    kind: str = Field(description="; ".join(k.value for k in AlarmKind))
    subject: str = Field(description="What it is about: a queue, a process's link (`ccc/ari`), a campaign")
    queue: str | None
    severity: Literal["warning", "critical"]
    state: Literal["active", "cleared"]
    message: str
    value: float | None = Field(description="The figure when raised")
    threshold: float | None = Field(description="The raising level")
    raised_at: datetime
    cleared_at: datetime | None
    clear_value: float | None
    clear_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="The name of the API key that acknowledged it")

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        return cls.model_validate(alarm.to_json())


@router.get("/v1/alarms", response_model=list[AlarmOut],
            summary="Alarms, newest first: the active ones, or with ?state=all every one",
            responses=problems(401, 403, 422, 503))
async def list_alarms(
    state: Literal["active", "cleared", "all"] = Query("active"),
    queue: str | None = Query(None, min_length=1, max_length=64, pattern=ID_PATTERN),
    kind: AlarmKind | None = Query(None),
    since: Timestamp | None = Query(None, description="Raised at or after this time"),
    before: Timestamp | None = Query(None, description="Raised before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[AlarmOut]:
    filters = AlarmFilter(state=state, queue=queue, kind=kind.value if kind else None, since=since,
                          before=before, limit=limit)
    return [AlarmOut.of(a) for a in await runtime.alarms.list(filters)]


@router.get("/v1/alarms/{alarm_id}", response_model=AlarmOut, summary="One alarm",
            responses=problems(401, 403, 404, 422, 503))
async def get_alarm(alarm_id: AlarmId, runtime: Runtime = Depends(get_runtime),
                    _: Principal = Depends(READERS)) -> AlarmOut:
    return AlarmOut.of(await runtime.alarms.get(alarm_id))


@router.post("/v1/alarms/{alarm_id}/ack", response_model=AlarmOut,
             summary="Acknowledge an alarm (active or cleared); a second acknowledgement keeps the first",
             responses=problems(401, 403, 404, 422, 503))
async def acknowledge_alarm(alarm_id: AlarmId, runtime: Runtime = Depends(get_runtime),
                            principal: Principal = Depends(WRITERS)) -> AlarmOut:
    return AlarmOut.of(await runtime.alarms.acknowledge(alarm_id, principal))


@router.get("/v1/alarm-rules/system", response_model=SystemRuleOut,
            summary="The system's alarm rule (PBX links, dialer abandonment)",
            responses=problems(401, 403, 503))
async def get_system_rule(runtime: Runtime = Depends(get_runtime),
                          _: Principal = Depends(READERS)) -> SystemRuleOut:
    return SystemRuleOut.of(*await runtime.alarms.system_rule())


@router.put("/v1/alarm-rules/system", response_model=SystemRuleOut, summary="Set the system's alarm rule",
            responses=problems(400, 401, 403, 422, 503))
async def put_system_rule(body: SystemRuleIn, runtime: Runtime = Depends(get_runtime),
                          _: Principal = Depends(WRITERS)) -> SystemRuleOut:
    return SystemRuleOut.of(*await runtime.alarms.put_system_rule(body.rule()))


@router.get("/v1/alarm-rules/queues", response_model=list[QueueRuleOut], summary="Queues' alarm rules",
            responses=problems(401, 403, 503))
async def list_queue_rules(runtime: Runtime = Depends(get_runtime),
                           _: Principal = Depends(READERS)) -> list[QueueRuleOut]:
    return [QueueRuleOut.of(rule, at) for rule, at in await runtime.alarms.queue_rules()]


@router.get("/v1/alarm-rules/queues/{queue}", response_model=QueueRuleOut, summary="A queue's alarm rule",
            responses=problems(401, 403, 404, 422, 503))
async def get_queue_rule(queue: QueueName, runtime: Runtime = Depends(get_runtime),
                         _: Principal = Depends(READERS)) -> QueueRuleOut:
    return QueueRuleOut.of(*await runtime.alarms.queue_rule(queue))


@router.put("/v1/alarm-rules/queues/{queue}", response_model=QueueRuleOut,
            summary="Set a queue's alarm thresholds (the queue must exist)",
            responses=problems(400, 401, 403, 422, 503))
async def put_queue_rule(queue: QueueName, body: QueueRuleIn, runtime: Runtime = Depends(get_runtime),
                         _: Principal = Depends(WRITERS)) -> QueueRuleOut:
    return QueueRuleOut.of(*await runtime.alarms.put_queue_rule(body.rule(queue)))


@router.delete("/v1/alarm-rules/queues/{queue}", status_code=204, response_class=Response,
               summary="Remove a queue's alarm rule (its active alarms clear)",
               responses=problems(401, 403, 404, 422, 503))
async def delete_queue_rule(queue: QueueName, runtime: Runtime = Depends(get_runtime),
                            _: Principal = Depends(WRITERS)) -> Response:
    await runtime.alarms.delete_queue_rule(queue)
    return Response(status_code=204)
