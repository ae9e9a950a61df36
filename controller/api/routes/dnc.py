"""Do-not-call lists (docs/campaigns.md): global, or one campaign's. Numbers on them are never
dialed. Admins and supervisors write; integrations read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.routes.campaigns import COLUMN_PATTERN
from controller.api.uploads import read_upload
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.phone_numbers import E164_PATTERN, REGION_PATTERN
from controller.services.agents import ID_PATTERN
from controller.services.contacts import MAX_UPLOAD_BYTES
from controller.services.dnc import MAX_REASON
from controller.storage.campaigns import DncRecord

router = APIRouter(prefix="/v1/dnc", tags=["do-not-call"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

REASON_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NUMBER_PATTERN = r"^[0-9+()./ -]{1,64}$"
CampaignQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN,
                                            description="A campaign's own list (absent: the global list)")]


class DncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=64, pattern=NUMBER_PATTERN,
                        description="E.164, or national with default_region", examples=["+14155550100"])
    campaign_id: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN,
                                    description="Only for this campaign (absent: every campaign)")
    reason: str | None = Field(None, max_length=MAX_REASON, pattern=REASON_PATTERN)
    default_region: str | None = Field(None, pattern=REGION_PATTERN,
                                       description="Country of a number written without +<country code>")


class DncOut(BaseModel):
    number: str
    campaign_id: str | None = Field(description="null: the global list")
    reason: str | None
    created_at: datetime
    new: bool | None = Field(None, description="On a write: whether the number was not listed before")

    @classmethod
    def of(cls, record: DncRecord, new: bool | None = None) -> DncOut:
        return cls(number=record.number, campaign_id=record.campaign_id, reason=record.reason,
                   created_at=record.created_at, new=new)


class RowError(BaseModel):
    line: int
    reason: str


class DncImportOut(BaseModel):
    total_rows: int
    added: int
    already_listed: int = Field(description="Valid rows already on the list, or repeated in the file")
    invalid: int
    errors: list[RowError] = Field(description="Invalid rows, at most the first 1,000")


@router.get("", response_model=list[DncOut], summary="Do-not-call numbers",
            responses=problems(401, 403, 422, 503))
async def list_dnc(
    campaign_id: CampaignQuery = None,
    scope: Annotated[Literal["list", "all"], Query(
        description="list: the global list, or campaign_id's; all: every list")] = "list",
    number: Annotated[str | None, Query(pattern=E164_PATTERN, description="Only this number (E.164)")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[DncOut]:
    records = await runtime.dnc.list(campaign_id=campaign_id, all_scopes=scope == "all", number=number,
                                     limit=limit, offset=offset)
    return [DncOut.of(record) for record in records]


@router.post("", status_code=201, response_model=DncOut,
             summary="Add a number (admin, supervisor): 201, or 200 when it was listed already",
             responses={200: {"model": DncOut, "description": "Listed already"},
                        **problems(400, 401, 403, 404, 422, 503)})
async def add_dnc(
    body: DncBody,
    response: Response,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> DncOut:
    record, new = await runtime.dnc.add(body.number, campaign_id=body.campaign_id, reason=body.reason,
                                        region=body.default_region)
    if not new:
        response.status_code = 200
    return DncOut.of(record, new)


@router.post("/import", response_model=DncImportOut,
             summary="Add every number of a CSV file (admin, supervisor); invalid rows are reported "
                     "with their line and reason, the others added",
             responses=problems(400, 401, 403, 404, 413, 422, 503))
async def import_dnc(
    file: Annotated[UploadFile, File(description="CSV, UTF-8; at most 20 MB")],
    column: Annotated[str | None, Form(pattern=COLUMN_PATTERN,
                                       description="The header's column with the numbers (absent: the "
                                                   "file has no header and numbers are in column 1)")]
    = None,
    campaign_id: Annotated[str | None, Form(min_length=1, max_length=64, pattern=ID_PATTERN,
                                            description="Only for this campaign")] = None,
    default_region: Annotated[str | None, Form(pattern=REGION_PATTERN)] = None,
    reason: Annotated[str | None, Form(max_length=MAX_REASON, pattern=REASON_PATTERN)] = None,
    delimiter: Annotated[Literal[",", ";", "tab", "|"], Form()] = ",",
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> DncImportOut:
    data = await read_upload(file, MAX_UPLOAD_BYTES)
    result = await runtime.dnc.import_csv(data, column=column.strip() if column else None,
                                          campaign_id=campaign_id, region=default_region, reason=reason,
                                          delimiter=delimiter)
    return DncImportOut(total_rows=result.total_rows, added=result.added,
                        already_listed=result.already_listed, invalid=result.invalid,
                        errors=[RowError(**e) for e in result.errors])


@router.delete("", status_code=204, response_class=Response,
               summary="Take a number off the global list, or off campaign_id's (admin, supervisor)",
               responses=problems(401, 403, 404, 422, 503))
async def delete_dnc(
    number: Annotated[str, Query(pattern=E164_PATTERN, description="E.164, e.g. +14155550100")],
    campaign_id: CampaignQuery = None,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.dnc.remove(number, campaign_id=campaign_id)
    return Response(status_code=204)
