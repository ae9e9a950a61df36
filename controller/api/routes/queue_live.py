"""A queue's live view from the ACD: who waits (in order) and the queue's figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Role

router = APIRouter(prefix="/v1/queues", tags=["queues"])

READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
QueueName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class QueueStats(BaseModel):
    queue: str
    waiting: int
    longest_wait_s: float
    agents: dict[str, int]
    answered: int
    abandoned: int
    overflowed: int
    moved_out: int = Field(description="Callers a supervisor moved to another queue")
    average_wait_answered_s: float | None
    service_level_s: int
    service_level: float | None


class WaitingCall(BaseModel):
    call_id: str
    position: int
    priority: int
    waited_s: float
    skills: dict[str, int]
    ringing: list[str]
    target_agent: str | None = Field(None, description="A supervisor moved the caller to this agent: "
                                                       "offered to it alone")


@router.get("/{name}/stats", response_model=QueueStats,
            summary="Live figures: callers waiting, longest wait, agents by state, service level "
                    "(counted since the controller started)",
            responses=problems(401, 403, 404, 422))
async def queue_stats(name: QueueName, runtime: Runtime = Depends(get_runtime),
                      _: object = Depends(READERS)) -> dict[str, object]:
    return runtime.acd.queue_stats(name, datetime.now(UTC))


@router.get("/{name}/calls", response_model=list[WaitingCall],
            summary="Callers waiting in the queue, in the order they will be served",
            responses=problems(401, 403, 404, 422))
async def queue_calls(name: QueueName, runtime: Runtime = Depends(get_runtime),
                      _: object = Depends(READERS)) -> list[dict[str, object]]:
    return runtime.acd.queue_calls(name, datetime.now(UTC))
