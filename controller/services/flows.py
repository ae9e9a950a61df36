"""IVR flows: versioned documents, validated before they are stored, parsed once per version.

Every write (create or update) stores a new immutable version and makes it current; a call runs
the version that was current when it entered (``current``) and asks for that same version
later (``version``), so an edit never changes a call in progress. Parsed versions are cached in
memory: a version never changes, so the cache is never stale. Deleting is soft, and creating a
deleted name again revives it with the next version number, so (name, version) names one
document forever.

Validation is ``controller.domain.flows``: ``parse_flow`` for the document itself, then
``check_references`` against the uploaded prompts, the schedules and Asterisk's sound catalog
(an injectable callable; when the catalog cannot be had, sounds are not checked).

Also here, shared by the other inbound services: resource names, and the check that a document
can be stored as JSONB.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from controller.domain.errors import Conflict, ControllerError, NotFound, SwitchError
from controller.domain.flows import Flow, FlowError, FlowInvalid, check_references, parse_flow
from controller.storage import acd as acd_store
from controller.storage import inbound as store
from controller.storage.db import Database
from controller.storage.inbound import FlowVersion

log = logging.getLogger(__name__)

# Flows, routes and schedules: a letter or digit, then letters, digits, '_', '.', '-'.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN[1:-1])
MAX_DOCUMENT_BYTES = 512 * 1024
VERSION_MAX = 2**31 - 1

SoundCatalogSource = Callable[[], Awaitable[set[str] | None]]


class InvalidName(ControllerError, ValueError):
    """A name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit."""

    code = "invalid-name"
    status = 422


class PayloadTooLarge(ControllerError):
    """The request is larger than this resource accepts."""

    code = "payload-too-large"
    status = 413


def check_name(name: object, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidName(f"{what} must be 1 to 64 letters, digits, '_', '.' or '-', starting with a "
                          "letter or digit")
    return name


def storable(document: object, invalid: Callable[[str], ControllerError]) -> dict[str, Any]:
    """``document`` as plain JSON that Postgres' jsonb accepts (no NaN, no NUL, no lone
    surrogate, string keys), or the error ``invalid(message)``; PayloadTooLarge past
    MAX_DOCUMENT_BYTES."""
    if not isinstance(document, dict):
        raise invalid("the document must be a JSON object")
    try:
        # default=str: YAML's dates and times become the text they were written as.
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, default=str)
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON "\\udxxx" escape
        raise invalid("the document holds a character that is not valid Unicode") from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise invalid(f"the document cannot be stored as JSON: {exc}") from exc
    if "\\u0000" in text:
        raise invalid("the document holds a NUL character")
    if size > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"the document is {size} bytes; at most {MAX_DOCUMENT_BYTES} are accepted")
    return json.loads(text)


def _flow_invalid(message: str) -> FlowInvalid:
    return FlowInvalid([FlowError(None, None, message)])


class SoundCatalog:
    """Asterisk's sound ids, fetched at most once per ``ttl`` seconds; None when the switch
    cannot say (then flows are stored without checking their sounds, and it is asked again
    after ``retry_after`` seconds)."""

    def __init__(self, fetch: Callable[[], Awaitable[Any]], *, ttl: float = 300.0,
                 retry_after: float = 30.0, timeout: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._retry_after = retry_after
        self._timeout = timeout
        self._clock = clock
        self._ids: set[str] | None = None
        self._expires = float("-inf")
        self._lock = asyncio.Lock()

    async def __call__(self) -> set[str] | None:
        async with self._lock:
            if self._clock() < self._expires:
                return self._ids
            try:
                async with asyncio.timeout(self._timeout):
                    answer = await self._fetch()
                ids = {item["id"] for item in answer if isinstance(item.get("id"), str)}
            except (SwitchError, TimeoutError, TypeError, AttributeError, ValueError) as exc:
                log.warning("sound catalog unavailable, sounds are not checked: %s", exc)
                self._ids, self._expires = None, self._clock() + self._retry_after
                return None
            self._ids, self._expires = ids, self._clock() + self._ttl
            return ids


async def _no_catalog() -> set[str] | None:
    return None


class FlowService:
    def __init__(self, db: Database, sound_catalog: SoundCatalogSource = _no_catalog,
                 cache_size: int = 1024) -> None:
        self._db = db
        self._sound_catalog = sound_catalog
        self._parsed: OrderedDict[tuple[str, int], Flow] = OrderedDict()
        self._cache_size = cache_size

    # ---- for the API --------------------------------------------------------------------

    async def create(self, name: str, document: object, created_by: UUID | None = None) -> FlowVersion:
        """A new flow at version 1, or a deleted one revived at its next version. Conflict if a
        live flow has this name; FlowInvalid (422, every error by node) if the document is not
        a valid flow."""
        check_name(name, "flow name")
        document = await self.validate(document)
        async with self._db.connection() as conn:
            existing = await store.flow_for_update(conn, name)
            if existing is not None and existing.deleted_at is None:
                raise Conflict(f"flow {name} exists; PUT /v1/flows/{name} makes a new version")
            if existing is not None:
                flow = await store.bump_flow(conn, existing.id)
            else:
                inserted = await store.insert_flow(conn, uuid4(), name)
                if inserted is None:
                    raise Conflict(f"flow {name} was created meanwhile")
                flow = inserted
            version = await store.insert_version(conn, flow, document, created_by)
        log.info("flow created", extra={"flow": name, "version": version.version})
        return version

    async def update(self, name: str, document: object, created_by: UUID | None = None) -> FlowVersion:
        """The next version of a live flow, now current. NotFound if there is no such flow."""
        check_name(name, "flow name")
        document = await self.validate(document)
        async with self._db.connection() as conn:
            existing = await store.flow_for_update(conn, name)
            if existing is None or existing.deleted_at is not None:
                raise NotFound(f"no flow {name}")
            flow = await store.bump_flow(conn, existing.id)
            version = await store.insert_version(conn, flow, document, created_by)
        log.info("flow updated", extra={"flow": name, "version": version.version})
        return version

    async def list(self) -> list[tuple[FlowVersion, datetime]]:
        """Every live flow's current version and when the flow last changed, by name."""
        async with self._db.connection() as conn:
            return await store.current_flows(conn)

    async def get(self, name: str) -> tuple[FlowVersion, datetime]:
        check_name(name, "flow name")
        async with self._db.connection() as conn:
            found = await store.current_flow(conn, name)
        if found is None:
            raise NotFound(f"no flow {name}")
        return found

    async def get_version(self, name: str, version: int) -> FlowVersion:
        """Any version of a flow, deleted flows included (calls may still run it)."""
        check_name(name, "flow name")
        if not 1 <= version <= VERSION_MAX:
            raise NotFound(f"flow {name} has no version {version}")
        async with self._db.connection() as conn:
            found = await store.flow_version(conn, name, version)
        if found is None:
            raise NotFound(f"flow {name} has no version {version}")
        return found

    async def delete(self, name: str) -> None:
        """Soft delete: new calls cannot enter it; calls in progress finish their version.
        Conflict while a route or a queue's overflow sends calls to it."""
        check_name(name, "flow name")
        async with self._db.connection() as conn:
            routes = await store.routes_using_flow(conn, name)
            if routes:
                raise Conflict(f"flow {name} is used by route(s) {', '.join(routes)}; change them first")
            queues = await acd_store.queues_overflowing_to_flow(conn, name)
            if queues:
                raise Conflict(f"flow {name} is the overflow of queue(s) {', '.join(queues)}; change them "
                               "first")
            deleted = await store.delete_flow(conn, name)
        if deleted is None:
            raise NotFound(f"no flow {name}")
        log.info("flow deleted", extra={"flow": name})

    async def validate(self, document: object) -> dict[str, Any]:
        """The document as it will be stored, or FlowInvalid listing every problem."""
        document = storable(document, _flow_invalid)
        flow = parse_flow(document)
        async with self._db.connection() as conn:
            prompts = await store.prompt_names(conn)
            schedules = await store.schedule_names(conn)
        sounds = await self._sound_catalog() if flow.sounds_used() else None
        errors = check_references(flow, prompts=prompts, sounds=sounds, schedules=schedules)
        if errors:
            raise FlowInvalid(errors)
        return document

    # ---- for the call service -----------------------------------------------------------

    async def current(self, name: str) -> tuple[int, Flow]:
        """The version a call entering ``name`` now runs, parsed. NotFound if no live flow."""
        check_name(name, "flow name")
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT current_version FROM flows WHERE name = %s AND deleted_at IS NULL", (name,))
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"no flow {name}")
        version = row["current_version"]
        return version, await self.version(name, version)

    async def version(self, name: str, version: int) -> Flow:
        """A version of a flow, parsed (cached: versions never change)."""
        key = (name, version)
        flow = self._parsed.get(key)
        if flow is not None:
            self._parsed.move_to_end(key)
            return flow
        stored = await self.get_version(name, version)
        flow = parse_flow(stored.document)
        self._parsed[key] = flow
        if len(self._parsed) > self._cache_size:
            self._parsed.popitem(last=False)
        return flow

    # ---- for prompts and schedules --------------------------------------------------------

    async def users_of(self, *, prompt: str | None = None, schedule: str | None = None) -> list[str]:
        """What would break without this prompt or schedule: current flow versions naming it
        ("flow <name>"), and for a prompt, routes announcing it on overflow ("route <name>")."""
        async with self._db.connection() as conn:
            current = await store.current_flows(conn)
            overflows = await store.announce_overflows(conn) if prompt is not None else []
        users = []
        for stored, _ in current:
            try:
                flow = await self._cached(stored)
            except FlowInvalid:
                log.warning("stored flow does not parse", extra={"flow": stored.flow_name,
                                                                "version": stored.version})
                continue
            if (prompt is not None and prompt in flow.prompts_used()) or (
                    schedule is not None and schedule in flow.schedules_used()):
                users.append(f"flow {stored.flow_name}")
        for route, overflow in overflows:
            announce = announcement_flow(overflow.get("prompt"))
            if announce is not None and prompt in announce.prompts_used():
                users.append(f"route {route}")
        return users

    async def _cached(self, stored: FlowVersion) -> Flow:
        key = (stored.flow_name, stored.version)
        flow = self._parsed.get(key)
        if flow is None:
            flow = parse_flow(stored.document)
            self._parsed[key] = flow
            if len(self._parsed) > self._cache_size:
                self._parsed.popitem(last=False)
        return flow

    async def check_media(self, items: object) -> list[FlowError]:
        """Problems with a list of media items used outside a flow (a route's overflow
        announcement), found by the same rules as a flow's ``prompts``."""
        try:
            flow = announcement_flow(items, strict=True)
        except FlowInvalid as exc:
            return exc.errors
        assert flow is not None
        async with self._db.connection() as conn:
            prompts = await store.prompt_names(conn)
        sounds = await self._sound_catalog() if flow.sounds_used() else None
        return check_references(flow, prompts=prompts, sounds=sounds, schedules=set())


def announcement_flow(items: object, *, strict: bool = False) -> Flow | None:
    """A one-node flow playing ``items``: media items are checked by the flow rules."""
    document = {"start": "announce", "nodes": {"announce": {"type": "hangup", "prompts": items}}}
    try:
        return parse_flow(document)
    except FlowInvalid:
        if strict:
            raise
        return None
