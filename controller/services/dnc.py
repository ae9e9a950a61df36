"""Do-not-call lists: numbers never to dial, for every campaign (global) or for one.

Numbers are stored in E.164 (normalized with the same rules as contacts), so "+1 415-555-0100"
and "(415) 555-0100" with region US are one entry. ``blocked`` is the one question the hopper
and the dialer ask; they ask it twice (when a contact goes into the hopper, and right before
its number is dialed), so a number added at any time is never dialed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from controller.domain.errors import ControllerError, NotFound
from controller.domain.phone_numbers import InvalidNumber, check_region, is_e164, normalize
from controller.services.agents import check_id
from controller.services.csv_files import CsvError, InvalidCsv, decode, delimiter_of, read_header, rows
from controller.storage import campaigns as store
from controller.storage.campaigns import DncRecord
from controller.storage.db import Database

log = logging.getLogger(__name__)

MAX_REASON = 200
MAX_ERRORS = 1000
BATCH = 1000


class InvalidDnc(ControllerError, ValueError):
    """The do-not-call request is not valid."""

    code = "invalid-dnc"
    status = 422


@dataclass(frozen=True, slots=True)
class DncImportResult:
    total_rows: int
    added: int
    already_listed: int
    invalid: int
    errors: list[dict[str, Any]] = field(default_factory=list)


class DncService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, number: str, *, campaign_id: str | None = None, reason: str | None = None,
                  region: str | None = None) -> tuple[DncRecord, bool]:
        """The entry for ``number`` and whether it is new (adding twice is harmless)."""
        e164 = self.normalize(number, region, "number")
        reason = _reason(reason)
        async with self._db.connection() as conn:
            await self._check_campaign(conn, campaign_id)
            added = await store.insert_dnc(conn, [e164], campaign_id, reason)
            [entry] = await store.list_dnc(conn, campaign_id=campaign_id, all_scopes=False, number=e164,
                                           limit=1, offset=0)
        log.info("dnc number added", extra={"campaign": campaign_id, "new": bool(added)})
        return entry, bool(added)

    async def remove(self, number: str, *, campaign_id: str | None = None) -> None:
        """Take an E.164 number off a list (NotFound when it is not on it)."""
        if not is_e164(number):
            raise InvalidDnc("number: E.164 (+<country code><number>)")
        e164 = number
        if campaign_id is not None:
            check_id(campaign_id, "campaign_id", InvalidDnc)
        async with self._db.connection() as conn:
            removed = await store.delete_dnc(conn, e164, campaign_id)
        if not removed:
            scope = f"campaign {campaign_id}'s list" if campaign_id else "the global list"
            raise NotFound(f"{e164} is not on {scope}")

    async def list(self, *, campaign_id: str | None, all_scopes: bool, number: str | None,
                   limit: int, offset: int) -> list[DncRecord]:
        if number is not None and not is_e164(number):
            raise InvalidDnc("number: E.164 (+<country code><number>)")
        e164 = number
        async with self._db.connection() as conn:
            return await store.list_dnc(conn, campaign_id=campaign_id, all_scopes=all_scopes, number=e164,
                                        limit=limit, offset=offset)

    async def blocked(self, numbers: list[str], campaign_id: str | None) -> frozenset[str]:
        """Which of ``numbers`` (E.164) are on the global list or the campaign's."""
        async with self._db.connection() as conn:
            return await store.blocked_numbers(conn, numbers, campaign_id)

    async def import_csv(self, data: bytes, *, column: str | None, campaign_id: str | None,
                         region: str | None, reason: str | None, delimiter: str = ",") -> DncImportResult:
        """Add every valid number of a CSV file; invalid rows are reported (line and reason)
        and skipped. With ``column`` None the file has no header and numbers are in column 1."""
        region = self._region(region)
        reason = _reason(reason)
        sep = delimiter_of(delimiter)
        text = decode(data)
        index = 0
        if column is not None:
            header = read_header(text, sep)
            if column not in header:
                raise InvalidCsv(f"line 1: no column {column!r} (columns: {', '.join(header)})")
            index = header.index(column)
        numbers, errors, total, invalid = await asyncio.to_thread(
            _parse_numbers, text, sep, column is not None, index, region)
        async with self._db.connection() as conn:
            await self._check_campaign(conn, campaign_id)
            added = 0
            for start in range(0, len(numbers), BATCH):
                added += await store.insert_dnc(conn, numbers[start:start + BATCH], campaign_id, reason)
        log.info("dnc import", extra={"campaign": campaign_id, "rows": total, "added": added})
        # Valid rows that added nothing: on the list already, or repeated in the file.
        return DncImportResult(total, added, total - invalid - added, invalid, errors)

    @staticmethod
    def normalize(number: str, region: str | None, what: str) -> str:
        try:
            return normalize(number, check_region(region))
        except InvalidNumber as exc:
            raise InvalidDnc(f"{what}: {exc}") from exc

    @staticmethod
    def _region(region: str | None) -> str | None:
        try:
            return check_region(region)
        except InvalidNumber as exc:
            raise InvalidDnc(f"default_region: {exc}") from exc

    @staticmethod
    async def _check_campaign(conn: Any, campaign_id: str | None) -> None:
        if campaign_id is None:
            return
        check_id(campaign_id, "campaign_id", InvalidDnc)
        if await store.get_campaign(conn, campaign_id) is None:
            raise NotFound(f"no campaign {campaign_id}")


def _reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        raise InvalidDnc(f"reason: at most {MAX_REASON} printable characters")
    return reason


def _parse_numbers(text: str, sep: str, has_header: bool, index: int,
                   region: str | None) -> tuple[list[str], list[dict[str, Any]], int, int]:
    """(distinct valid numbers, row errors, rows read, invalid rows)."""
    seen: dict[str, None] = {}
    errors: list[dict[str, Any]] = []
    total = invalid = 0
    for row in rows(text, sep, skip_header=has_header):
        total += 1
        if isinstance(row, CsvError):
            invalid += 1
            if len(errors) < MAX_ERRORS:
                errors.append({"line": row.line, "reason": row.reason})
            break
        raw = row.values[index] if index < len(row.values) else ""
        try:
            seen.setdefault(normalize(raw, region), None)
        except InvalidNumber as exc:
            invalid += 1
            if len(errors) < MAX_ERRORS:
                errors.append({"line": row.line, "reason": f"number: {exc}"})
    return list(seen), errors, total, invalid
