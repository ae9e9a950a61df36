"""Schedules: named opening hours that flows test (docs/flows.md, "Schedules"). Admins and
supervisors write; integrations read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.services.flows import NAME_PATTERN
from controller.storage.inbound import ScheduleRecord

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

ScheduleName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN,
                                   description="The schedule's name")]
Interval = Annotated[list[str], Field(description='["HH:MM", "HH:MM"], end exclusive',
                                      examples=[["08:00", "18:00"]])]


class Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: str = Field(description="YYYY-MM-DD", examples=["2026-12-25"])
    name: str = Field("", max_length=200)
    hours: list[Interval] | None = Field(None, description="Open hours that day; absent: closed")


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(max_length=64, examples=["Europe/Paris"])
    weekly: dict[str, list[Interval]] = Field(
        default_factory=dict, description="Day (mon … sun) → opening intervals",
        examples=[{"mon": [["08:00", "18:00"]]}])
    holidays: list[Holiday] = Field(default_factory=list, max_length=1000)


class NewSchedule(ScheduleBody):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN, examples=["office"])


class ScheduleOut(ScheduleBody):
    name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ScheduleRecord) -> ScheduleOut:
        document: dict[str, Any] = record.document
        return cls.model_validate({
            "timezone": document.get("timezone", ""), "weekly": document.get("weekly", {}),
            "holidays": document.get("holidays", []), "name": record.name,
            "created_at": record.created_at, "updated_at": record.updated_at,
        })


def _document(body: ScheduleBody) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True, exclude={"name"})


@router.post("", status_code=201, response_model=ScheduleOut,
             summary="Create a schedule (admin, supervisor)",
             responses=problems(400, 401, 403, 409, 422, 503))
async def create_schedule(
    body: NewSchedule,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> ScheduleOut:
    return ScheduleOut.of(await runtime.schedules.create(body.name, _document(body)))


@router.get("", response_model=list[ScheduleOut], summary="Every schedule, by name",
            responses=problems(401, 403, 503))
async def list_schedules(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[ScheduleOut]:
    return [ScheduleOut.of(record) for record in await runtime.schedules.list()]


@router.get("/{name}", response_model=ScheduleOut, summary="One schedule",
            responses=problems(401, 403, 404, 422, 503))
async def get_schedule(
    name: ScheduleName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> ScheduleOut:
    return ScheduleOut.of(await runtime.schedules.get(name))


@router.put("/{name}", response_model=ScheduleOut,
            summary="Replace a schedule (admin, supervisor); flows see it at once",
            responses=problems(400, 401, 403, 404, 422, 503))
async def update_schedule(
    name: ScheduleName,
    body: ScheduleBody,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> ScheduleOut:
    return ScheduleOut.of(await runtime.schedules.update(name, _document(body)))


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a schedule (admin, supervisor); 409 while a current flow uses it",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_schedule(
    name: ScheduleName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.schedules.delete(name)
    return Response(status_code=204)
