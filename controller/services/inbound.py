"""Inbound calls: which flow a dialed number gets, within its route's concurrency limit.

``admit`` is asked once per new inbound call. It finds the route for the dialed number,
takes a place under the route's limit (shared by every controller process through Redis),
and returns the driver that will run the call: the route's flow at its current version, the
route's overflow when the limit is reached, or the default greeting when no route matches
or the route store cannot be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.domain import commands as c
from controller.domain.errors import ControllerError
from controller.services.drivers import Driver, GreetingDriver, IvrDriver
from controller.services.flows import FlowService
from controller.services.number_routes import NumberRouteService
from controller.services.schedules import ScheduleService
from controller.storage.limits import ConcurrencyLimits

log = logging.getLogger(__name__)

USER_BUSY = "busy"


@dataclass(slots=True)
class Admission:
    driver: Driver | None
    commands: tuple[c.Command, ...]
    route: str | None = None
    limited: bool = False  # holds a place under the route's limit, to release at the end
    flow: str | None = None
    version: int | None = None
    overflowed: bool = False


class InboundRouter:
    def __init__(self, routes: NumberRouteService, flows: FlowService, schedules: ScheduleService,
                 limits: ConcurrencyLimits) -> None:
        self.routes = routes
        self.flows = flows
        self.schedules = schedules
        self.limits = limits

    async def admit(self, call_id: str, leg_id: str, dialed: str, data: dict[str, str],
                    answered: bool, now: datetime, default_prompt: str) -> Admission:
        try:
            route = await self.routes.match(dialed)
        except ControllerError as exc:
            log.error("routes unavailable, call %s gets the default greeting: %s", call_id, exc.detail)
            route = None
        if route is None:
            return self._greeting(leg_id, (default_prompt,), answered)

        limited = False
        if route.max_concurrent is not None:
            if not await self.limits.admit(route.name, call_id, route.max_concurrent):
                log.warning("route %s full (%d calls): call %s overflows", route.name,
                            route.max_concurrent, call_id)
                return await self._overflow(route.name, route.overflow or {"action": "busy"},
                                            leg_id, data, answered, now, default_prompt)
            limited = True
        try:
            admission = await self._flow(route.flow_name, leg_id, data, answered, now)
        except ControllerError as exc:
            log.error("flow %s of route %s unavailable, call %s gets the default greeting: %s",
                      route.flow_name, route.name, call_id, exc.detail)
            admission = self._greeting(leg_id, (default_prompt,), answered)
        admission.route, admission.limited = route.name, limited
        return admission

    async def release(self, admission_route: str, call_id: str) -> None:
        await self.limits.release(admission_route, call_id)

    async def start_flow(self, name: str, leg_id: str, data: dict[str, str], now: datetime) -> Admission:
        """Flow ``name`` (its current version) from its start, on a caller already answered: a
        queue's overflow sends its caller on this way. ControllerError if it cannot be had."""
        return await self._flow(name, leg_id, data, True, now)

    async def resume(self, saved: dict[str, Any]) -> Driver:
        """The driver a previous run saved, for adoption."""
        if saved["kind"] == "greeting":
            return GreetingDriver.from_dict(saved)
        flow = await self.flows.version(saved["flow"], saved["version"])
        return IvrDriver.resume(saved, flow, await self.schedules.all())

    async def _flow(self, name: str, leg_id: str, data: dict[str, str], answered: bool,
                    now: datetime) -> Admission:
        version, flow = await self.flows.current(name)
        driver = IvrDriver(name, version, flow, await self.schedules.all())
        commands = () if answered else (c.Answer(leg_id),)
        commands += driver.begin(leg_id, data, now)
        return Admission(driver, commands, flow=name, version=version)

    async def _overflow(self, route: str, overflow: dict[str, Any], leg_id: str, data: dict[str, str],
                        answered: bool, now: datetime, default_prompt: str) -> Admission:
        action = overflow.get("action")
        if action == "announce":
            admission = self._greeting(leg_id, tuple(overflow.get("prompt") or (default_prompt,)),
                                       answered)
        elif action == "flow":
            admission = await self._flow(overflow["flow"], leg_id, data, answered, now)
        else:
            admission = Admission(None, (c.Hangup(leg_id, reason=USER_BUSY),))
        admission.route, admission.overflowed = route, True
        return admission

    @staticmethod
    def _greeting(leg_id: str, media: tuple[str, ...], answered: bool) -> Admission:
        driver, commands = GreetingDriver.begin(leg_id, media, answered)
        return Admission(driver, commands)
