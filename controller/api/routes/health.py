"""Liveness and readiness probes (no authentication: load balancers and orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from controller.api.deps import get_runtime
from controller.bootstrap import Runtime

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Dependency(BaseModel):
    name: str
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str
    dependencies: list[Dependency]
    buffered_records: int
    buffered_live_updates: int


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Each dependency is usable: Asterisk ARI and AMI, Postgres, Redis",
    responses={503: {"model": Readiness, "description": "At least one dependency is down"}},
)
async def readyz(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    statuses = await runtime.health.readiness()
    ready = all(s.ok for s in statuses)
    body = Readiness(
        status="ready" if ready else "not ready: " + ", ".join(s.name for s in statuses if not s.ok),
        dependencies=[Dependency(name=s.name, ok=s.ok, detail=s.detail) for s in statuses],
        buffered_records=runtime.records.pending,
        buffered_live_updates=runtime.live.pending,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
