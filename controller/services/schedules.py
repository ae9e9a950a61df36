"""Schedules: named opening hours that flows test with ``{"schedule": name, "open": ...}``.

A document is validated by ``controller.domain.flows.parse_schedule`` before it is stored;
``all`` gives the flow engine every schedule parsed (re-parsed only when one changed).
A schedule a current flow version names cannot be deleted (409).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import uuid4

import psycopg

from controller.domain.errors import Conflict, NotFound
from controller.domain.flows import FlowError, Schedule, ScheduleInvalid, parse_schedule
from controller.services.flows import FlowService, check_name, storable
from controller.storage import inbound as store
from controller.storage.db import Database
from controller.storage.inbound import ScheduleRecord

log = logging.getLogger(__name__)


def _schedule_invalid(message: str) -> ScheduleInvalid:
    return ScheduleInvalid([FlowError(None, None, message)])


class ScheduleService:
    def __init__(self, db: Database, flows: FlowService) -> None:
        self._db = db
        self._flows = flows
        self._parsed: dict[str, tuple[datetime, Schedule]] = {}

    async def list(self) -> list[ScheduleRecord]:
        async with self._db.connection() as conn:
            return await store.list_schedules(conn)

    async def get(self, name: str) -> ScheduleRecord:
        check_name(name, "schedule name")
        async with self._db.connection() as conn:
            found = await store.get_schedule(conn, name)
        if found is None:
            raise NotFound(f"no schedule {name}")
        return found

    async def create(self, name: str, document: object) -> ScheduleRecord:
        """A new schedule; Conflict if the name is taken, ScheduleInvalid if the document is
        not a valid schedule."""
        document = self._validated(name, document)
        try:
            async with self._db.connection() as conn:
                created = await store.insert_schedule(conn, uuid4(), name, document)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"schedule {name} exists; PUT /v1/schedules/{name} replaces it") from exc
        log.info("schedule created", extra={"schedule": name})
        return created

    async def update(self, name: str, document: object) -> ScheduleRecord:
        document = self._validated(name, document)
        async with self._db.connection() as conn:
            updated = await store.update_schedule(conn, name, document)
        if updated is None:
            raise NotFound(f"no schedule {name}")
        log.info("schedule updated", extra={"schedule": name})
        return updated

    async def delete(self, name: str) -> None:
        check_name(name, "schedule name")
        users = await self._flows.users_of(schedule=name)
        if users:
            raise Conflict(f"schedule {name} is used by {', '.join(users)}")
        async with self._db.connection() as conn:
            deleted = await store.delete_schedule(conn, name)
        if not deleted:
            raise NotFound(f"no schedule {name}")
        self._parsed.pop(name, None)
        log.info("schedule deleted", extra={"schedule": name})

    async def all(self) -> dict[str, Schedule]:
        """Every schedule by name, parsed."""
        async with self._db.connection() as conn:
            records = await store.list_schedules(conn)
        out: dict[str, Schedule] = {}
        for record in records:
            cached = self._parsed.get(record.name)
            if cached is not None and cached[0] == record.updated_at:
                out[record.name] = cached[1]
                continue
            try:
                schedule = parse_schedule(record.document)
            except ScheduleInvalid as exc:
                log.warning("stored schedule does not parse: %s", exc.detail,
                            extra={"schedule": record.name})
                continue
            self._parsed[record.name] = (record.updated_at, schedule)
            out[record.name] = schedule
        for gone in self._parsed.keys() - out.keys():
            del self._parsed[gone]
        return out

    def _validated(self, name: str, document: object) -> dict[str, Any]:
        check_name(name, "schedule name")
        document = storable(document, _schedule_invalid)
        if document.get("name", name) != name:
            message = f"the document names schedule {document['name']!r}, not {name!r}"
            raise ScheduleInvalid([FlowError(None, "name", message)])
        document = {**document, "name": name}
        parse_schedule(document)
        return document
