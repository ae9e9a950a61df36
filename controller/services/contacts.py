"""A campaign's contacts: CSV imports, reading them back, exports, scheduled callbacks.

An upload is checked as a whole first (UTF-8, a header, the mapped columns present: 422
otherwise), stored as an *import* with its row count, then read row by row: each number is
normalized to E.164 (``domain.phone_numbers``; a national number needs ``default_region``),
its time zone taken from the mapped column or else from the number (several zones when the
number spans some; the campaign's zone when it tells none), and every other column is kept as
a lead field. A row that fails is reported with its line and reason (at most 1,000 reasons are
kept; ``invalid`` counts them all) and the others go on. A number already in the campaign, from
this file or an earlier one, is merged into the existing contact (``merged``).

Imports of up to ``inline_rows`` rows are read within the request; larger ones are handed to
the worker (``enqueue``) and their progress (``rows_done`` of ``total_rows``) can be followed
through the API. The reading goes in batches of 500 rows, each in one transaction with the
progress, so a worker that dies leaves a consistent import that the next one resumes where it
stopped (an import whose heartbeat is older than ``STALE_IMPORT_S`` may be claimed again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from controller.domain.campaigns import CampaignState, ContactState
from controller.domain.errors import Conflict, ControllerError, NotFound, StorageUnavailable
from controller.domain.phone_numbers import (
    InvalidNumber,
    area_key,
    check_region,
    is_zone,
    normalize,
    timezones_of,
)
from controller.services.agents import check_id
from controller.services.campaigns import InvalidCampaign
from controller.services.csv_files import (
    CsvError,
    InvalidCsv,
    count_rows,
    decode,
    delimiter_of,
    read_header,
    rows,
    write_rows,
)
from controller.storage import acd as acd_store
from controller.storage import campaigns as store
from controller.storage.campaigns import AttemptRecord, ContactRecord, ImportRecord, NewContact
from controller.storage.db import Database

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_FIELD_LENGTH = 1000
MAX_ERRORS = 1000
BATCH_ROWS = 500
STALE_IMPORT_S = 300.0
EXPORT_PAGE = 5000

Enqueue = Callable[[UUID], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ImportMapping:
    phone_column: str = "phone"
    timezone_column: str | None = None
    default_region: str | None = None
    delimiter: str = ","

    def to_dict(self) -> dict[str, Any]:
        return {"phone_column": self.phone_column, "timezone_column": self.timezone_column,
                "default_region": self.default_region, "delimiter": self.delimiter}

    @classmethod
    def of(cls, raw: dict[str, Any]) -> ImportMapping:
        return cls(raw["phone_column"], raw.get("timezone_column"), raw.get("default_region"),
                   raw.get("delimiter", ","))


@dataclass(slots=True)
class _Progress:
    rows_done: int
    imported: int
    merged: int
    invalid: int
    errors: list[dict[str, Any]]

    def error(self, line: int, reason: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "reason": reason})


class ContactService:
    def __init__(self, db: Database, *, inline_rows: int = 2000, enqueue: Enqueue | None = None) -> None:
        self._db = db
        self.inline_rows = inline_rows
        self.enqueue = enqueue

    # ---- imports -----------------------------------------------------------------------

    async def upload(self, campaign_id: str, data: bytes, mapping: ImportMapping,
                     file_name: str | None = None) -> ImportRecord:
        """Store an upload as an import and read it now (small) or hand it to the worker."""
        check_id(campaign_id, "campaign id", InvalidCampaign)
        _check_mapping(mapping)
        text = decode(data)
        sep = delimiter_of(mapping.delimiter)
        header = read_header(text, sep)
        for what, column in (("phone_column", mapping.phone_column),
                             ("timezone_column", mapping.timezone_column)):
            if column is not None and column not in header:
                raise InvalidCsv(f"{what}: the file has no column {column!r} (columns: {', '.join(header)})")
        total = await asyncio.to_thread(count_rows, text, sep, skip_header=True)
        import_id = uuid4()
        async with self._db.connection() as conn:
            campaign = await store.get_campaign(conn, campaign_id)
            if campaign is None:
                raise NotFound(f"no campaign {campaign_id}")
            if campaign.state == CampaignState.STOPPED:
                raise Conflict(f"campaign {campaign_id} is stopped; it takes no more contacts")
            await store.insert_import(conn, import_id=import_id, campaign_id=campaign_id,
                                      file_name=_clean_name(file_name), mapping=mapping.to_dict(),
                                      payload=data, total_rows=total)
        log.info("contact import stored", extra={"campaign": campaign_id, "import": str(import_id),
                                                 "rows": total})
        if total <= self.inline_rows or self.enqueue is None:
            await self.process(import_id)
        else:
            try:
                await self.enqueue(import_id)
            except Exception as exc:  # whatever the broker raises: the worker's resume round takes it
                log.warning("import %s not handed to the worker now (%s); the worker's next round "
                            "takes it", import_id, exc)
        return await self.get_import(campaign_id, import_id)

    async def process(self, import_id: UUID) -> ImportRecord | None:
        """Read a stored import to its end (or resume it); None if it is not claimable now
        (done, failed, or running elsewhere with a fresh heartbeat)."""
        async with self._db.connection() as conn:
            claimed = await store.claim_import(conn, import_id, STALE_IMPORT_S)
            campaign = None
            if claimed is not None:
                campaign = await store.get_campaign(conn, claimed[0].campaign_id)
        if claimed is None or campaign is None:
            return None
        record, payload = claimed
        try:
            await self._read(record, payload, campaign.config["timezone"])
        except StorageUnavailable:
            raise  # left running: resumed once its heartbeat is stale
        except ControllerError as exc:
            await self._finish(record.id, "failed", exc.detail)
        except Exception as exc:
            log.exception("contact import %s failed", record.id)
            await self._finish(record.id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        else:
            await self._finish(record.id, "done")
        async with self._db.connection() as conn:
            return await store.get_import(conn, record.campaign_id, record.id)

    async def resume_stale(self) -> int:
        """Read every import left pending or abandoned by a worker; how many were read."""
        async with self._db.connection() as conn:
            ids = await store.resumable_imports(conn, STALE_IMPORT_S / 5)
        done = 0
        for import_id in ids:
            if await self.process(import_id) is not None:
                done += 1
        return done

    async def _read(self, record: ImportRecord, payload: bytes, default_zone: str) -> None:
        mapping = ImportMapping.of(record.mapping)
        region = check_region(mapping.default_region)
        sep = delimiter_of(mapping.delimiter)
        text = payload.decode("utf-8-sig")
        header = read_header(text, sep)
        progress = _Progress(record.rows_done, record.imported, record.merged, record.invalid,
                             list(record.errors))
        batch: list[NewContact] = []
        seen = 0
        for row in rows(text, sep, skip_header=True):
            seen += 1
            if seen <= record.rows_done:
                continue  # read by an earlier run of this import
            if isinstance(row, CsvError):
                progress.error(row.line, row.reason)
                progress.rows_done += 1
                break
            contact = _contact(row.values, row.line, header, mapping, region, default_zone, progress)
            if contact is not None:
                batch.append(contact)
            progress.rows_done += 1
            if progress.rows_done % BATCH_ROWS == 0:
                await self._write(record, batch, progress)
                batch = []
        await self._write(record, batch, progress)

    async def _write(self, record: ImportRecord, batch: list[NewContact], progress: _Progress) -> None:
        async with self._db.connection() as conn:
            inserted, merged = await store.upsert_contacts(conn, record.campaign_id, record.id, batch)
            progress.imported += inserted
            progress.merged += merged
            await store.import_progress(conn, record.id, rows_done=progress.rows_done,
                                        imported=progress.imported, merged=progress.merged,
                                        invalid=progress.invalid, errors=progress.errors)

    async def _finish(self, import_id: UUID, state: str, error: str | None = None) -> None:
        async with self._db.connection() as conn:
            await store.finish_import(conn, import_id, state=state, error=error)
        log.info("contact import %s", state, extra={"import": str(import_id), "error": error})

    async def get_import(self, campaign_id: str, import_id: UUID) -> ImportRecord:
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            found = await store.get_import(conn, campaign_id, import_id)
        if found is None:
            raise NotFound(f"no import {import_id} in campaign {campaign_id}")
        return found

    async def list_imports(self, campaign_id: str) -> list[ImportRecord]:
        async with self._db.connection() as conn:
            await _require_campaign(conn, campaign_id)
            return await store.list_imports(conn, campaign_id)

    # ---- contacts ----------------------------------------------------------------------

    async def list(self, campaign_id: str, *, state: ContactState | None = None, after_id: int = 0,
                   limit: int = 100) -> list[ContactRecord]:
        async with self._db.connection() as conn:
            await _require_campaign(conn, campaign_id)
            return await store.list_contacts(conn, campaign_id, state=state.value if state else None,
                                             after_id=after_id, limit=limit)

    async def get(self, campaign_id: str, contact_id: int) -> tuple[ContactRecord, list[AttemptRecord]]:
        async with self._db.connection() as conn:
            await _require_campaign(conn, campaign_id)
            contact = await store.get_contact(conn, campaign_id, contact_id)
            if contact is None:
                raise NotFound(f"no contact {contact_id} in campaign {campaign_id}")
            return contact, await store.attempts_of(conn, contact_id)

    async def export_csv(self, campaign_id: str, state: ContactState | None = None) -> str:
        """Every contact as CSV (number, state, attempts, ..., then the lead fields), with
        cells a spreadsheet would run as formulas neutralized (services/csv_files.py)."""
        contacts: list[ContactRecord] = []
        async with self._db.connection() as conn:
            await _require_campaign(conn, campaign_id)
            after = 0
            while True:
                page = await store.list_contacts(conn, campaign_id, state=state.value if state else None,
                                                 after_id=after, limit=EXPORT_PAGE)
                contacts.extend(page)
                if len(page) < EXPORT_PAGE:
                    break
                after = page[-1].id
        fixed = ["id", "number", "state", "attempts", "last_outcome", "last_attempt_at", "next_attempt_at",
                 "callback_at", "callback_agent_id", "timezones"]
        lead_names: dict[str, None] = {}
        for contact in contacts:
            for name in contact.fields:
                lead_names.setdefault(name, None)
        lead = sorted(name for name in lead_names if name not in fixed)  # jsonb keeps no column order
        records = ([c.id, c.number, c.state, c.attempts, c.last_outcome, _iso(c.last_attempt_at),
                    _iso(c.next_attempt_at), _iso(c.callback_at), c.callback_agent_id, " ".join(c.timezones),
                    *(c.fields.get(name, "") for name in lead)] for c in contacts)
        return await asyncio.to_thread(write_rows, fixed + lead, list(records))

    async def schedule_callback(self, campaign_id: str, contact_id: int, at: datetime,
                                agent_id: str | None) -> ContactRecord:
        """Call a contact back at ``at`` (for one agent, or any agent of the campaign)."""
        if at.tzinfo is None:
            raise InvalidCampaign("at: a time with its zone")
        if agent_id is not None:
            check_id(agent_id, "agent_id", InvalidCampaign)
        async with self._db.connection() as conn:
            await _require_campaign(conn, campaign_id)
            contact = await store.get_contact(conn, campaign_id, contact_id, lock=True)
            if contact is None:
                raise NotFound(f"no contact {contact_id} in campaign {campaign_id}")
            if contact.state in (ContactState.DNC, ContactState.DIALING, ContactState.QUEUED):
                raise Conflict(f"contact {contact_id} is {contact.state}; a callback cannot be scheduled now")
            if agent_id is not None and await acd_store.get_agent(conn, agent_id) is None:
                raise InvalidCampaign(f"agent_id: no agent {agent_id}")
            await store.schedule_callback(conn, contact_id, at.astimezone(UTC), agent_id)
            updated = await store.get_contact(conn, campaign_id, contact_id)
        assert updated is not None
        log.info("callback scheduled", extra={"campaign": campaign_id, "contact": contact_id})
        return updated


async def _require_campaign(conn: Any, campaign_id: str) -> None:
    check_id(campaign_id, "campaign id", InvalidCampaign)
    if await store.get_campaign(conn, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")


def _check_mapping(mapping: ImportMapping) -> None:
    try:
        check_region(mapping.default_region)
    except InvalidNumber as exc:
        raise InvalidCsv(f"default_region: {exc}") from exc
    delimiter_of(mapping.delimiter)
    if mapping.timezone_column is not None and mapping.timezone_column == mapping.phone_column:
        raise InvalidCsv("timezone_column: it cannot be the phone column")


def _contact(values: list[str], line: int, header: list[str], mapping: ImportMapping, region: str | None,
             default_zone: str, progress: _Progress) -> NewContact | None:
    """The contact of one row, or None (the reason recorded in ``progress``)."""
    if len(values) > len(header):
        progress.error(line, f"{len(values)} values for {len(header)} columns")
        return None
    record = dict(zip(header, values, strict=False))
    for name, value in record.items():
        if len(value) > MAX_FIELD_LENGTH:
            progress.error(line, f"{name}: longer than {MAX_FIELD_LENGTH} characters")
            return None
    try:
        number = normalize(record.get(mapping.phone_column, ""), region)
    except InvalidNumber as exc:
        progress.error(line, f"{mapping.phone_column}: {exc}")
        return None
    zone_text = record.get(mapping.timezone_column, "").strip() if mapping.timezone_column else ""
    if zone_text:
        if not is_zone(zone_text):
            progress.error(line, f"{mapping.timezone_column}: unknown time zone {zone_text!r}")
            return None
        zones, source = (zone_text,), "column"
    else:
        zones, source = timezones_of(number), "number"
        if not zones:
            zones, source = (default_zone,), "campaign"
    fields = {name: value for name, value in record.items()
              if name not in (mapping.phone_column, mapping.timezone_column)}
    return NewContact(number=number, timezones=zones, timezone_source=source, area_key=area_key(number),
                      fields=fields)


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = "".join(c if c.isprintable() else "\ufffd" for c in name)
    return cleaned.encode("utf-8", "replace").decode("utf-8")[:200]


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else ""
