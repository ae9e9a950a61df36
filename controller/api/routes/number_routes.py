"""Number routes: which flow a dialed number enters (docs/flows.md, "Routes"). Admins and
supervisors write; integrations read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.number_routes import PATTERN_MAX_LENGTH, NumberRoute
from controller.services.flows import NAME_PATTERN
from controller.services.number_routes import MAX_CONCURRENT_LIMIT, PRIORITY_LIMIT, RouteSpec

router = APIRouter(prefix="/v1/routes", tags=["routes"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

RouteName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN,
                                description="The route's name")]
_MEDIA_ITEM = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"


class BusyOverflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["busy"] = Field(description="Hang up with cause 17 (user busy)")


class AnnounceOverflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["announce"] = Field(description="Play the prompt, then hang up")
    prompt: list[Annotated[str, Field(pattern=_MEDIA_ITEM)]] = Field(
        min_length=1, max_length=20, description="Media items, as in a flow's `prompts`")


class FlowOverflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["flow"] = Field(description="Run another flow instead")
    flow: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)


Overflow = Annotated[BusyOverflow | AnnounceOverflow | FlowOverflow, Field(discriminator="action")]


class RouteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(min_length=1, max_length=PATTERN_MAX_LENGTH, pattern=r"^[0-9A-Za-z_+*#.!\[\]-]+$",
                         description="An exact number (`+33123456789`, `100`) or an Asterisk-style "
                                     "pattern starting with `_` (`_X.`, `_0[1-5]XXXXXXXX`)",
                         examples=["_01XXXXXXXX"])
    flow: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description="The flow calls enter")
    max_concurrent: int | None = Field(None, ge=1, le=MAX_CONCURRENT_LIMIT,
                                       description="At most this many calls in the route at once")
    overflow: Overflow | None = Field(None, description="What a call over max_concurrent gets "
                                                        "(busy when absent)")
    priority: int = Field(0, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT,
                          description="Between patterns of the same length, higher wins")
    enabled: bool = True

    def spec(self) -> RouteSpec:
        return RouteSpec(pattern=self.pattern, flow=self.flow, max_concurrent=self.max_concurrent,
                         overflow=self.overflow.model_dump() if self.overflow else None,
                         priority=self.priority, enabled=self.enabled)


class NewRoute(RouteBody):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN, examples=["france"])


class RouteOut(BaseModel):
    name: str
    pattern: str
    flow: str
    max_concurrent: int | None
    overflow: BusyOverflow | AnnounceOverflow | FlowOverflow | None
    priority: int
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, route: NumberRoute) -> RouteOut:
        return cls.model_validate({
            "name": route.name, "pattern": route.pattern, "flow": route.flow_name,
            "max_concurrent": route.max_concurrent, "overflow": route.overflow,
            "priority": route.priority, "enabled": route.enabled,
            "created_at": route.created_at, "updated_at": route.updated_at,
        })


@router.post("", status_code=201, response_model=RouteOut,
             summary="Create a route (admin, supervisor)",
             responses=problems(400, 401, 403, 409, 422, 503))
async def create_route(
    body: NewRoute,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> RouteOut:
    return RouteOut.of(await runtime.number_routes.create(body.name, body.spec()))


@router.get("", response_model=list[RouteOut], summary="Every route, by name",
            responses=problems(401, 403, 503))
async def list_routes(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[RouteOut]:
    return [RouteOut.of(route) for route in await runtime.number_routes.list()]


@router.get("/{name}", response_model=RouteOut, summary="One route",
            responses=problems(401, 403, 404, 422, 503))
async def get_route(
    name: RouteName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> RouteOut:
    return RouteOut.of(await runtime.number_routes.get(name))


@router.put("/{name}", response_model=RouteOut, summary="Replace a route (admin, supervisor)",
            responses=problems(400, 401, 403, 404, 409, 422, 503))
async def update_route(
    name: RouteName,
    body: RouteBody,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> RouteOut:
    return RouteOut.of(await runtime.number_routes.update(name, body.spec()))


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a route (admin, supervisor)",
               responses=problems(401, 403, 404, 422, 503))
async def delete_route(
    name: RouteName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.number_routes.delete(name)
    return Response(status_code=204)
