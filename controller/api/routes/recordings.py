"""Call recordings (services/recordings.py): control on a live call, search, listen, delete, and
the recording policy per queue and per agent.

API keys carry no agent identity yet, so an agent key cannot be limited to its own calls: agents
have no access to recordings at all. Admins and supervisors listen and delete; integrations (CRMs)
control recording on a call and search the metadata. Every audio request is audited (api/audit.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.routes.voicemails import AUDIO_RESPONSES
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.services.recordings import PolicyScope, RecordingAction, RecordingPolicy
from controller.storage.recordings import RecordingFilter

router = APIRouter(tags=["recordings"])

CONTROLLERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
SEARCHERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)
LISTENERS = authorize(Role.ADMIN, Role.SUPERVISOR)
MANAGERS = authorize(Role.ADMIN, Role.SUPERVISOR)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CALL_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=CALL_ID_PATTERN)]
RecordingId = Annotated[UUID, Path(description="The recording's id")]
PolicyName = Annotated[str, Path(description="The queue's name or the agent's id", pattern=NAME_PATTERN)]


class RecordingControl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: RecordingAction


class RecordingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    call_id: str
    queue: str | None
    agent_id: str | None
    caller_number: str
    started_by: str
    state: str
    format: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    sha256: str | None
    error: str | None


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: RecordingPolicy


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    scope: PolicyScope
    name: str
    policy: RecordingPolicy
    updated_at: datetime


@router.post("/v1/calls/{call_id}/recording", status_code=202, response_model=RecordingOut,
             summary="Start, stop, pause or resume recording a connected call; the paused part is "
                     "not in the file", responses=problems(400, 401, 403, 404, 409, 422, 503))
async def control_recording(
    call_id: CallId, body: RecordingControl,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(CONTROLLERS),
) -> RecordingOut:
    return RecordingOut.model_validate(await runtime.recordings.control(call_id, body.action))


@router.get("/v1/recordings", response_model=list[RecordingOut], summary="Recordings, newest first",
            responses=problems(401, 403, 422, 503))
async def list_recordings(
    call_id: str | None = Query(None, min_length=1, max_length=64, pattern=CALL_ID_PATTERN),
    agent_id: str | None = Query(None, pattern=NAME_PATTERN),
    queue: str | None = Query(None, pattern=NAME_PATTERN),
    caller_number: str | None = Query(None, min_length=1, max_length=64,
                                      pattern=r"^[^\x00-\x1f\x7f-\x9f]{1,64}$"),
    since: Timestamp | None = Query(None, description="Recordings started at or after this time"),
    before: Timestamp | None = Query(None, description="Recordings started before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(SEARCHERS),
) -> list[RecordingOut]:
    filters = RecordingFilter(call_id=call_id, agent_id=agent_id, queue=queue, caller_number=caller_number,
                              since=since, before=before, limit=limit)
    return [RecordingOut.model_validate(r) for r in await runtime.recordings.list(filters)]


@router.get("/v1/recordings/{recording_id}", response_model=RecordingOut, summary="One recording",
            responses=problems(401, 403, 404, 422, 503))
async def get_recording(
    recording_id: RecordingId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(SEARCHERS),
) -> RecordingOut:
    return RecordingOut.model_validate(await runtime.recordings.get(recording_id))


@router.get("/v1/recordings/{recording_id}/audio", response_class=FileResponse,
            summary="The recording's audio (audio/wav); honours `Range`; every request is audited",
            responses={**AUDIO_RESPONSES, **problems(401, 403, 404, 409, 410, 422, 503)})
async def get_recording_audio(
    recording_id: RecordingId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(LISTENERS),
) -> FileResponse:
    audio = await runtime.recordings.audio(recording_id)
    return FileResponse(audio.path, media_type="audio/wav", stat_result=audio.stat,
                        filename=f"recording-{recording_id}.wav", content_disposition_type="inline")


@router.delete("/v1/recordings/{recording_id}", status_code=204, response_class=Response,
               summary="Delete a recording's file and mark it deleted (admin, supervisor)",
               responses=problems(401, 403, 404, 422, 503))
async def delete_recording(
    recording_id: RecordingId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(MANAGERS),
) -> Response:
    await runtime.recordings.delete(recording_id, reason="api")
    return Response(status_code=204)


@router.get("/v1/recording-policies", response_model=list[PolicyOut],
            summary="Recording policies of queues and agents (an agent's wins; default on_demand)",
            responses=problems(401, 403, 503))
async def list_policies(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(SEARCHERS),
) -> list[PolicyOut]:
    return [PolicyOut.model_validate(p) for p in await runtime.recordings.policies()]


@router.put("/v1/recording-policies/{scope}/{name}", response_model=PolicyOut,
            summary="Set the recording policy of a queue or an agent",
            responses=problems(400, 401, 403, 422, 503))
async def put_policy(
    scope: PolicyScope, name: PolicyName, body: PolicyIn,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(MANAGERS),
) -> PolicyOut:
    return PolicyOut.model_validate(await runtime.recordings.set_policy(scope, name, body.policy))


@router.delete("/v1/recording-policies/{scope}/{name}", status_code=204, response_class=Response,
               summary="Remove a queue's or an agent's recording policy",
               responses=problems(401, 403, 404, 422, 503))
async def delete_policy(
    scope: PolicyScope, name: PolicyName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(MANAGERS),
) -> Response:
    await runtime.recordings.delete_policy(scope, name)
    return Response(status_code=204)
