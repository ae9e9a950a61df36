"""Outbound campaigns: settings, life (start, pause, stop), contacts and their imports
(docs/campaigns.md). Admins and supervisors write; integrations read."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.api.uploads import read_upload
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.campaigns import (
    DAY_NAMES,
    RETRYABLE_OUTCOMES,
    CampaignAction,
    CampaignMode,
    ContactState,
)
from controller.domain.phone_numbers import E164_PATTERN, REGION_PATTERN
from controller.services.agents import ID_PATTERN
from controller.services.campaigns import (
    ABANDON_WINDOW_MAX_H,
    AMD_PARAMETERS,
    DEFAULT_RETRY_RULES,
    DEFAULT_WINDOWS,
    DELAY_MAX_S,
    DISPOSITION_PATTERN,
    HOPPER_SIZE_MAX,
    HOPPER_TTL_MAX_S,
    MAX_ATTEMPTS_MAX,
    MAX_DELAYS,
    MAX_DISPOSITIONS,
    MAX_POOL,
    MAX_WINDOWS,
    RATIO_MAX,
    RING_TIMEOUT_MAX_S,
    TIME_PATTERN,
    CampaignSpec,
)
from controller.services.contacts import MAX_UPLOAD_BYTES, ImportMapping
from controller.storage.campaigns import AttemptRecord, CampaignRecord, ContactRecord, ImportRecord

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

CampaignId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN,
                                 description="The campaign's id")]
ContactId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The contact's id")]
PROMPT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
COLUMN_PATTERN = r"^[^\x00-\x1f\x7f]{1,100}$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
assert tuple(Day.__args__) == DAY_NAMES  # type: ignore[attr-defined]
RetryOutcome = Literal["busy", "no_answer", "machine", "failed", "abandoned", "callback"]
assert tuple(RetryOutcome.__args__) == tuple(o.value for o in RETRYABLE_OUTCOMES)  # type: ignore[attr-defined]
E164 = Annotated[str, Field(pattern=E164_PATTERN, examples=["+14155550100"])]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Day] = Field(min_length=1, max_length=7, description="Days of the week")
    start: str = Field(pattern=TIME_PATTERN, description="Local time HH:MM, in the contact's zone")
    end: str = Field(pattern=TIME_PATTERN, description="Local time HH:MM (24:00 for midnight), after start")


class RetryRuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: RetryOutcome
    delays_s: list[Annotated[int, Field(ge=0, le=DELAY_MAX_S)]] = Field(
        min_length=1, max_length=MAX_DELAYS,
        description="Wait before the 1st, 2nd, ... retry after this outcome (the last repeats)")
    max_retries: int | None = Field(None, ge=0, le=MAX_ATTEMPTS_MAX,
                                    description="At most this many retries after this outcome (null: "
                                                "until max_attempts)")


class CallerIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fixed: E164 | None = Field(None, description="Always this number")
    pool: list[E164] = Field(default_factory=list, max_length=MAX_POOL,
                             description="Or one of these (not with fixed)")
    local_presence: StrictBool = Field(True, description="From the pool, prefer a number of the contact's "
                                                         "area code, then of its country")


class AmdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool = Field(False, description="Run answering-machine detection on answered calls")
    on_machine: Literal["hangup", "message"] = Field("hangup", description="What a machine gets")
    message_prompt: str | None = Field(None, pattern=PROMPT_PATTERN,
                                       description="The prompt left on a machine (on_machine message)")
    initial_silence_ms: int = Field(2500, ge=100, le=30_000)
    greeting_ms: int = Field(1500, ge=100, le=30_000)
    after_greeting_silence_ms: int = Field(800, ge=100, le=30_000)
    total_analysis_time_ms: int = Field(5000, ge=500, le=60_000)
    min_word_length_ms: int = Field(100, ge=10, le=5000)
    between_words_silence_ms: int = Field(50, ge=10, le=5000)
    maximum_number_of_words: int = Field(2, ge=1, le=100)
    silence_threshold: int = Field(256, ge=1, le=32_767)
    maximum_word_length_ms: int = Field(5000, ge=100, le=30_000)


assert [n for n, *_ in AMD_PARAMETERS] == [n for n in AmdBody.model_fields if n not in (
    "enabled", "on_machine", "message_prompt")]


CONFIG_FIELDS = ("caller_id", "timezone", "calling_windows", "max_attempts", "retry_rules", "dispositions",
                 "amd", "abandon_target_pct", "abandon_window_h", "ring_timeout_s", "hopper_size",
                 "hopper_ttl_s")


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN, examples=["Spring renewals"])
    mode: CampaignMode = Field(description="preview, progressive (one call per free agent), predictive "
                                           "(paced), power (ratio calls per free agent)")
    ratio: float | None = Field(None, ge=1, le=RATIO_MAX, allow_inf_nan=False,
                                description="Calls per available agent; power mode only")
    queue: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN,
                       description="The queue whose agents take the calls")
    caller_id: CallerIdBody = Field(default_factory=CallerIdBody)
    timezone: str = Field("UTC", min_length=1, max_length=64,
                          description="The zone of contacts whose number and row say none")
    calling_windows: list[Window] = Field(
        default_factory=lambda: [Window.model_validate(w) for w in DEFAULT_WINDOWS],
        min_length=1, max_length=MAX_WINDOWS,
        description="When contacts may be called, in each contact's own zone")
    max_attempts: int = Field(5, ge=1, le=MAX_ATTEMPTS_MAX, description="Attempts per contact, at most")
    retry_rules: list[RetryRuleBody] = Field(
        default_factory=lambda: [RetryRuleBody.model_validate(r) for r in DEFAULT_RETRY_RULES],
        max_length=len(RETRYABLE_OUTCOMES),
        description="One per outcome; an outcome without a rule is not retried")
    dispositions: list[Annotated[str, Field(pattern=DISPOSITION_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_DISPOSITIONS,
        description="The codes agents may choose (empty: any)")
    amd: AmdBody = Field(default_factory=AmdBody, description="Answering-machine detection (Asterisk AMD())")
    abandon_target_pct: float = Field(3.0, ge=0, le=100, allow_inf_nan=False,
                                      description="Abandoned calls at most this share of answered ones")
    abandon_window_h: int = Field(24, ge=1, le=ABANDON_WINDOW_MAX_H,
                                  description="The rolling window the abandonment rate is measured over")
    ring_timeout_s: int = Field(25, ge=5, le=RING_TIMEOUT_MAX_S, description="Ring a contact this long")
    hopper_size: int = Field(50, ge=1, le=HOPPER_SIZE_MAX, description="Contacts kept ready to dial")
    hopper_ttl_s: int = Field(300, ge=30, le=HOPPER_TTL_MAX_S,
                              description="A contact left this long in the hopper goes back to the list")
    abandon_message: str | None = Field(
        None, max_length=260, pattern=r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$",
        description="The core sound an answered contact hears when no agent is free within the hold "
                    "(null: the dialer's default, CCC_DIALER_ABANDON_MESSAGE)")

    def spec(self) -> CampaignSpec:
        config = self.model_dump(include=set(CONFIG_FIELDS))
        if self.abandon_message is not None:
            config["abandon_message"] = self.abandon_message
        return CampaignSpec(name=self.name, mode=self.mode.value, queue=self.queue, ratio=self.ratio,
                            config=config)


class NewCampaign(CampaignBody):
    id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["spring-renewals"])


class CampaignOut(CampaignBody):
    model_config = ConfigDict(extra="ignore")

    id: str
    state: Literal["draft", "running", "paused", "stopped"]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    contacts: dict[str, int] | None = Field(None, description="Contacts by state (one campaign only)")

    @classmethod
    def of(cls, record: CampaignRecord, contacts: dict[str, int] | None = None) -> CampaignOut:
        return cls.model_validate({
            **record.config, "id": record.id, "name": record.name, "mode": record.mode, "ratio": record.ratio,
            "queue": record.queue, "state": record.state, "created_at": record.created_at,
            "updated_at": record.updated_at, "started_at": record.started_at,
            "stopped_at": record.stopped_at, "contacts": contacts})


class ImportRowError(BaseModel):
    line: int = Field(description="The line the row starts on (the header is line 1)")
    reason: str


class ImportOut(BaseModel):
    id: UUID
    campaign_id: str
    state: Literal["pending", "running", "done", "failed"]
    file_name: str | None
    mapping: dict[str, str | None]
    total_rows: int = Field(description="Rows in the file, header and blank lines not counted")
    rows_done: int
    imported: int = Field(description="New contacts")
    merged: int = Field(description="Rows whose number was already a contact of the campaign")
    invalid: int
    errors: list[ImportRowError] = Field(description="Invalid rows, at most the first 1,000")
    error: str | None = Field(description="Why a failed import failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, record: ImportRecord) -> ImportOut:
        return cls.model_validate({
            "id": record.id, "campaign_id": record.campaign_id, "state": record.state,
            "file_name": record.file_name, "mapping": record.mapping, "total_rows": record.total_rows,
            "rows_done": record.rows_done, "imported": record.imported, "merged": record.merged,
            "invalid": record.invalid, "errors": record.errors, "error": record.error,
            "created_at": record.created_at, "started_at": record.started_at,
            "finished_at": record.finished_at})


class ContactOut(BaseModel):
    id: int
    campaign_id: str
    number: str
    timezones: list[str]
    timezone_source: Literal["column", "number", "campaign"]
    fields: dict[str, str] = Field(description="Lead fields: the file's other columns")
    state: Literal["ready", "queued", "dialing", "done", "exhausted", "dnc"]
    attempts: int
    outcome_counts: dict[str, int]
    last_outcome: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    callback_at: datetime | None
    callback_agent_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ContactRecord) -> ContactOut:
        return cls.model_validate({
            "id": record.id, "campaign_id": record.campaign_id, "number": record.number,
            "timezones": list(record.timezones), "timezone_source": record.timezone_source,
            "fields": record.fields, "state": record.state, "attempts": record.attempts,
            "outcome_counts": record.outcome_counts, "last_outcome": record.last_outcome,
            "last_attempt_at": record.last_attempt_at, "next_attempt_at": record.next_attempt_at,
            "callback_at": record.callback_at, "callback_agent_id": record.callback_agent_id,
            "created_at": record.created_at, "updated_at": record.updated_at})


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    number: str
    caller_id: str | None
    agent_id: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    reason: str | None
    disposition: str | None
    call_id: str | None
    callback_at: datetime | None

    @classmethod
    def of(cls, record: AttemptRecord) -> AttemptOut:
        return cls.model_validate(record)


class ContactDetail(ContactOut):
    attempts_made: list[AttemptOut] = Field(description="Every attempt, oldest first")


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Timestamp = Field(description="When to call back")
    agent_id: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN,
                                 description="Only this agent takes it (null: any agent of the campaign)")


class InFlightOut(BaseModel):
    dialing_here: bool = Field(description="This controller process holds the campaign's dialer lease; "
                                           "the counts below are its calls (zero in other processes)")
    ringing: int
    waiting: int = Field(description="Answered, waiting for an agent (at most 1.5 s)")
    abandoning: int = Field(description="Answered, given the message, not yet hung up")


class StatsOut(BaseModel):
    campaign_id: str
    state: str
    contacts: dict[str, int] = Field(description="Contacts by state")
    attempts: dict[str, int] = Field(description="Ended attempts by outcome")
    attempts_open: int = Field(description="Attempts being dialed (taken by the dialer, no outcome yet)")
    dialed: int = Field(description="Ended attempts that were dialed (every outcome but cancelled)")
    answer_rate: float | None = Field(description="Answered (person or machine) / dialed; null: none dialed")
    contacts_reached: int = Field(description="Contacts with an attempt answered or called back")
    abandon_rate_total: float | None = Field(
        description="Abandoned / answered by a person (answered, callback, abandoned), since the start")
    abandon_rate_window: float | None = Field(description="The same over the rolling window")
    abandon_window_h: int
    abandon_target_pct: float
    in_flight: InFlightOut


class HopperEntry(BaseModel):
    contact_id: int
    score: float = Field(description="Lower is dialed first")


@router.post("", status_code=201, response_model=CampaignOut,
             summary="Create a campaign (admin, supervisor); it starts in draft",
             responses=problems(400, 401, 403, 409, 422, 503))
async def create_campaign(
    body: NewCampaign,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> CampaignOut:
    return CampaignOut.of(await runtime.campaigns.create(body.id, body.spec()))


@router.get("", response_model=list[CampaignOut], summary="Every campaign, by id",
            responses=problems(401, 403, 503))
async def list_campaigns(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[CampaignOut]:
    return [CampaignOut.of(record) for record in await runtime.campaigns.list()]


@router.get("/{campaign_id}", response_model=CampaignOut, summary="One campaign, with its contacts by state",
            responses=problems(401, 403, 404, 422, 503))
async def get_campaign(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> CampaignOut:
    record = await runtime.campaigns.get(campaign_id)
    return CampaignOut.of(record, await runtime.campaigns.contact_counts(campaign_id))


@router.put("/{campaign_id}", response_model=CampaignOut,
            summary="Replace a campaign's settings (admin, supervisor); 409 once stopped",
            responses=problems(400, 401, 403, 404, 409, 422, 503))
async def update_campaign(
    campaign_id: CampaignId,
    body: CampaignBody,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> CampaignOut:
    return CampaignOut.of(await runtime.campaigns.update(campaign_id, body.spec()))


@router.delete("/{campaign_id}", status_code=204, response_class=Response,
               summary="Delete a draft or stopped campaign with its contacts and attempts (admin, "
                       "supervisor); 409 while running or paused",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_campaign(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.campaigns.delete(campaign_id)
    return Response(status_code=204)


async def _act(runtime: Runtime, campaign_id: str, action: CampaignAction) -> CampaignOut:
    record = await runtime.campaigns.act(campaign_id, action)
    return CampaignOut.of(record, await runtime.campaigns.contact_counts(campaign_id))


@router.post("/{campaign_id}/start", response_model=CampaignOut,
             summary="Start (or resume) dialing (admin, supervisor); 409 unless draft or paused",
             responses=problems(401, 403, 404, 409, 422, 503))
async def start_campaign(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> CampaignOut:
    return await _act(runtime, campaign_id, CampaignAction.START)


@router.post("/{campaign_id}/pause", response_model=CampaignOut,
             summary="Pause dialing; the hopper is emptied (admin, supervisor); 409 unless running",
             responses=problems(401, 403, 404, 409, 422, 503))
async def pause_campaign(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> CampaignOut:
    return await _act(runtime, campaign_id, CampaignAction.PAUSE)


@router.post("/{campaign_id}/stop", response_model=CampaignOut,
             summary="Stop for good (admin, supervisor); 409 once stopped",
             responses=problems(401, 403, 404, 409, 422, 503))
async def stop_campaign(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> CampaignOut:
    return await _act(runtime, campaign_id, CampaignAction.STOP)


@router.post("/{campaign_id}/contacts", status_code=202, response_model=ImportOut,
             summary="Upload contacts as CSV (admin, supervisor): 202 with the import; small files are "
                     "read at once (state done), large ones by the worker (follow the import)",
             responses=problems(400, 401, 403, 404, 409, 413, 422, 503))
async def upload_contacts(
    campaign_id: CampaignId,
    file: Annotated[UploadFile, File(description="CSV, UTF-8, with a header row; at most 20 MB")],
    phone_column: Annotated[str, Form(pattern=COLUMN_PATTERN, description="The column with the number")]
    = "phone",
    timezone_column: Annotated[str | None, Form(pattern=COLUMN_PATTERN,
                                                description="A column with an IANA zone (optional)")] = None,
    default_region: Annotated[str | None, Form(pattern=REGION_PATTERN,
                                               description="Country of numbers written without +<country "
                                                           "code> (ISO 3166, e.g. US)")] = None,
    delimiter: Annotated[Literal[",", ";", "tab", "|"], Form(description="The column separator")] = ",",
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> ImportOut:
    data = await read_upload(file, MAX_UPLOAD_BYTES)
    mapping = ImportMapping(phone_column=phone_column.strip(),
                            timezone_column=timezone_column.strip() if timezone_column else None,
                            default_region=default_region, delimiter=delimiter)
    return ImportOut.of(await runtime.contacts.upload(campaign_id, data, mapping, file.filename))


@router.get("/{campaign_id}/contacts", response_model=list[ContactOut],
            summary="A campaign's contacts, by id (page with after_id)",
            responses=problems(401, 403, 404, 422, 503))
async def list_contacts(
    campaign_id: CampaignId,
    state: Annotated[ContactState | None, Query(description="Only contacts in this state")] = None,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1, description="Contacts after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[ContactOut]:
    contacts = await runtime.contacts.list(campaign_id, state=state, after_id=after_id, limit=limit)
    return [ContactOut.of(contact) for contact in contacts]


CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Contacts as CSV (cells that a spreadsheet would run as formulas are prefixed "
                         "with an apostrophe)",
          "content": {"text/csv": {"schema": {"type": "string"}}}},
}


@router.get("/{campaign_id}/contacts/export", response_class=Response,
            summary="Every contact as CSV: number, state, attempts, then the lead fields",
            responses={**CSV_RESPONSE, **problems(401, 403, 404, 422, 503)})
async def export_contacts(
    campaign_id: CampaignId,
    state: Annotated[ContactState | None, Query(description="Only contacts in this state")] = None,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> Response:
    body = await runtime.contacts.export_csv(campaign_id, state)
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{campaign_id}-contacts.csv"'})


@router.get("/{campaign_id}/contacts/{contact_id}", response_model=ContactDetail,
            summary="One contact with every attempt", responses=problems(401, 403, 404, 422, 503))
async def get_contact(
    campaign_id: CampaignId,
    contact_id: ContactId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> ContactDetail:
    contact, attempts = await runtime.contacts.get(campaign_id, contact_id)
    return ContactDetail.model_validate({**ContactOut.of(contact).model_dump(),
                                         "attempts_made": [AttemptOut.of(a) for a in attempts]})


@router.post("/{campaign_id}/contacts/{contact_id}/callback", response_model=ContactOut,
             summary="Schedule a callback at a time, for one agent or any (admin, supervisor)",
             responses=problems(400, 401, 403, 404, 409, 422, 503))
async def schedule_callback(
    campaign_id: CampaignId,
    contact_id: ContactId,
    body: CallbackBody,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> ContactOut:
    return ContactOut.of(await runtime.contacts.schedule_callback(campaign_id, contact_id, body.at,
                                                                  body.agent_id))


@router.get("/{campaign_id}/imports", response_model=list[ImportOut],
            summary="A campaign's imports, newest first", responses=problems(401, 403, 404, 422, 503))
async def list_imports(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[ImportOut]:
    return [ImportOut.of(record) for record in await runtime.contacts.list_imports(campaign_id)]


@router.get("/{campaign_id}/imports/{import_id}", response_model=ImportOut,
            summary="One import: its progress and invalid rows", responses=problems(401, 403, 404, 422, 503))
async def get_import(
    campaign_id: CampaignId,
    import_id: UUID,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> ImportOut:
    return ImportOut.of(await runtime.contacts.get_import(campaign_id, import_id))


class PreviewAccepted(BaseModel):
    call_id: str = Field(description="The call: the agent's device rings, then the contact's number")


class PreviewSkipped(BaseModel):
    attempt_id: UUID
    outcome: Literal["cancelled"]


PREVIEWERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.AGENT)


@router.post("/{campaign_id}/preview/{attempt_id}/accept", status_code=202, response_model=PreviewAccepted,
             summary="Accept a previewed contact (its agent, or a supervisor): the agent is dialed, then the "
                     "contact", responses=problems(401, 403, 404, 409, 422, 503))
async def accept_preview(
    campaign_id: CampaignId,
    attempt_id: UUID,
    runtime: Runtime = Depends(get_runtime),
    actor: Principal = Depends(PREVIEWERS),
) -> PreviewAccepted:
    return PreviewAccepted(call_id=await runtime.dialer.accept(actor, campaign_id, attempt_id))


@router.post("/{campaign_id}/preview/{attempt_id}/skip", response_model=PreviewSkipped,
             summary="Skip a previewed contact: the attempt is cancelled (not counted), the contact is due "
                     "again",
             responses=problems(401, 403, 404, 409, 422, 503))
async def skip_preview(
    campaign_id: CampaignId,
    attempt_id: UUID,
    runtime: Runtime = Depends(get_runtime),
    actor: Principal = Depends(PREVIEWERS),
) -> PreviewSkipped:
    await runtime.dialer.skip(actor, campaign_id, attempt_id)
    return PreviewSkipped(attempt_id=attempt_id, outcome="cancelled")


@router.get("/{campaign_id}/stats", response_model=StatsOut,
            summary="Contacts by state, attempts by outcome, answer and abandonment rates, calls in flight",
            responses=problems(401, 403, 404, 422, 503))
async def get_stats(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> StatsOut:
    stats = await runtime.outbound.stats(campaign_id)
    return StatsOut(**asdict(stats), in_flight=InFlightOut(**runtime.dialer.in_flight(campaign_id)))


@router.get("/{campaign_id}/hopper", response_model=list[HopperEntry],
            summary="The contacts queued to be dialed next, in order (callbacks for one agent not shown)",
            responses=problems(401, 403, 404, 422, 503))
async def get_hopper(
    campaign_id: CampaignId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[HopperEntry]:
    await runtime.campaigns.get(campaign_id)
    return [HopperEntry(contact_id=c, score=s) for c, s in await runtime.outbound.hopper_entries(campaign_id)]

