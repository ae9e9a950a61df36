"""Number routes: which flow a dialed number enters, with an optional concurrency limit.

Writes are validated here (pattern syntax, the flow exists, the overflow's shape and media), so
every stored route can be matched. ``match`` is what the call service asks on every inbound
call: it reads the enabled routes and lets ``controller.domain.number_routes.match`` pick the
most specific one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import psycopg

from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.domain.number_routes import NumberRoute, match, parse_pattern
from controller.services.flows import FlowService, check_name
from controller.storage import inbound as store
from controller.storage.db import Database

log = logging.getLogger(__name__)

PRIORITY_LIMIT = 1_000_000
MAX_CONCURRENT_LIMIT = 1_000_000
OVERFLOW_ACTIONS = ("busy", "announce", "flow")


class InvalidRoute(ControllerError, ValueError):
    """The route is not valid."""

    code = "invalid-route"
    status = 422


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """What a client says about a route."""

    pattern: str
    flow: str
    max_concurrent: int | None = None
    overflow: dict[str, Any] | None = None
    priority: int = 0
    enabled: bool = True


class NumberRouteService:
    def __init__(self, db: Database, flows: FlowService) -> None:
        self._db = db
        self._flows = flows

    async def list(self) -> list[NumberRoute]:
        async with self._db.connection() as conn:
            return await store.list_routes(conn)

    async def get(self, name: str) -> NumberRoute:
        check_name(name, "route name")
        async with self._db.connection() as conn:
            route = await store.get_route(conn, name)
        if route is None:
            raise NotFound(f"no route {name}")
        return route

    async def create(self, name: str, spec: RouteSpec) -> NumberRoute:
        route = await self._validated(name, spec)
        try:
            async with self._db.connection() as conn:
                created = await store.insert_route(conn, route)
        except psycopg.errors.UniqueViolation as exc:
            raise _clash(exc, name, spec) from exc
        log.info("route created", extra={"route": name, "pattern": spec.pattern})
        return created

    async def update(self, name: str, spec: RouteSpec) -> NumberRoute:
        route = await self._validated(name, spec)
        try:
            async with self._db.connection() as conn:
                updated = await store.update_route(conn, route)
        except psycopg.errors.UniqueViolation as exc:
            raise _clash(exc, name, spec) from exc
        if updated is None:
            raise NotFound(f"no route {name}")
        log.info("route updated", extra={"route": name, "pattern": spec.pattern})
        return updated

    async def delete(self, name: str) -> None:
        check_name(name, "route name")
        async with self._db.connection() as conn:
            deleted = await store.delete_route(conn, name)
        if not deleted:
            raise NotFound(f"no route {name}")
        log.info("route deleted", extra={"route": name})

    async def match(self, dialed: str) -> NumberRoute | None:
        """The enabled route a call to ``dialed`` takes, or None (the default greeting)."""
        async with self._db.connection() as conn:
            routes = await store.list_routes(conn, enabled_only=True)
        return match(routes, dialed)

    async def _validated(self, name: str, spec: RouteSpec) -> NumberRoute:
        check_name(name, "route name")
        parse_pattern(spec.pattern)  # InvalidPattern (422) says what is wrong
        check_name(spec.flow, "flow")
        if spec.max_concurrent is not None and not (
                isinstance(spec.max_concurrent, int) and 1 <= spec.max_concurrent <= MAX_CONCURRENT_LIMIT):
            raise InvalidRoute(f"max_concurrent must be null or 1 to {MAX_CONCURRENT_LIMIT}")
        if not isinstance(spec.priority, int) or abs(spec.priority) > PRIORITY_LIMIT:
            raise InvalidRoute(f"priority must be an integer from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT}")
        async with self._db.connection() as conn:
            flows = await store.live_flow_names(conn)
        if spec.flow not in flows:
            raise InvalidRoute(f"flow: no flow {spec.flow}")
        overflow = await self._overflow(spec.overflow, flows)
        return NumberRoute(uuid4(), name, spec.pattern, spec.flow, spec.max_concurrent, overflow,
                           spec.priority, bool(spec.enabled))

    async def _overflow(self, overflow: object, flows: set[str]) -> dict[str, Any] | None:
        if overflow is None:
            return None
        if not isinstance(overflow, dict) or overflow.get("action") not in OVERFLOW_ACTIONS:
            raise InvalidRoute('overflow must be {"action": "busy"}, {"action": "announce", '
                               '"prompt": [...]} or {"action": "flow", "flow": "<name>"}')
        action = overflow["action"]
        expected = {"busy": {"action"}, "announce": {"action", "prompt"}, "flow": {"action", "flow"}}[action]
        if set(overflow) != expected:
            fields = ", ".join(sorted(expected))
            raise InvalidRoute(f"overflow with action {action} has exactly the fields {fields}")
        if action == "announce":
            if not isinstance(overflow["prompt"], list) or not overflow["prompt"]:
                raise InvalidRoute("overflow.prompt must be a non-empty list of media items")
            errors = await self._flows.check_media(overflow["prompt"])
            if errors:
                raise InvalidRoute(f"overflow.prompt: {errors[0].message}")
            return {"action": action, "prompt": list(overflow["prompt"])}
        if action == "flow":
            target = overflow["flow"]
            if not isinstance(target, str) or target not in flows:
                raise InvalidRoute(f"overflow.flow: no flow {target}")
            return {"action": action, "flow": target}
        return {"action": action}


def _clash(exc: psycopg.errors.UniqueViolation, name: str, spec: RouteSpec) -> Conflict:
    constraint = exc.diag.constraint_name or ""
    if "pattern" in constraint:
        return Conflict(f"another route has the pattern {spec.pattern}")
    return Conflict(f"route {name} exists")
