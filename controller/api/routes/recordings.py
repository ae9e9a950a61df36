"""Call recordings (services/recordings.py): control on a live call, search, listen, delete, and
the recording policy per queue and per agent.

Who sees which recordings is the service's rule (``visibility_of``): admins and integrations all,
supervisors all or those of their queues (a key made with ``queues``), agents those of calls they
took part in; any other is 404 to them, as calls are to agent keys. Integrations (CRMs) control
recording and read metadata but do not listen or delete; agents control the recording of their
own calls and listen to their own recordings. Every audio request is audited (api/audit.py);
every deletion leaves an audit record naming who deleted what.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.routes.voicemails import AUDIO_RESPONSES
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.services.recordings import PolicyScope, RecordingAction, RecordingPolicy
from controller.storage.recordings import Recording, RecordingFilter

router = APIRouter(tags=["recordings"])

CONTROLLERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)
SEARCHERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT)
LISTENERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.AGENT)
MANAGERS = authorize(Role.ADMIN, Role.SUPERVISOR)
POLICY_READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CALL_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=CALL_ID_PATTERN)]
RecordingId = Annotated[UUID, Path(description="The recording's id")]
PolicyName = Annotated[str, Path(description="The queue's name or the agent's id", pattern=NAME_PATTERN)]


class RecordingControl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: RecordingAction
    dual_channel: bool | None = Field(
        None, description="With start: also keep each party on its own channel (a stereo file: left "
                          "the caller, right the others). Absent: as the call's recording policy says")

    @model_validator(mode="after")
    def _dual_with_start_only(self) -> RecordingControl:
        if self.dual_channel is not None and self.action is not RecordingAction.START:
            raise ValueError("dual_channel goes with the action start only")
        return self


class DualFileOut(BaseModel):
    """The recording with each party on its own channel."""

    left: str = Field("caller", description="Who is on the left channel: the caller (or customer)")
    right: str = Field("others", description="Who is on the right channel: everyone the caller heard")
    duration_s: float
    size_bytes: int
    sha256: str


class RecordingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    call_id: str
    queue: str | None = Field(description="The call's queue when the recording started")
    agent_id: str | None = Field(description="The call's agent when the recording started")
    agents: list[str] = Field(description="Every agent connected to the call while it was recorded")
    queues: list[str] = Field(description="Every queue the call was connected from while it was recorded")
    campaign: str | None = None
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
    dual_channel: bool = Field(description="Each party is also kept on its own channel "
                                           "(`GET …/audio?channels=dual`)")
    dual: DualFileOut | None = Field(None, description="The stereo file, once made")
    dual_error: str | None = Field(None, description="Why the stereo file could not be made")

    @classmethod
    def of(cls, recording: Recording) -> RecordingOut:
        out = cls.model_validate(recording)
        if recording.dual_sha256 is not None:
            out.dual = DualFileOut(duration_s=recording.dual_duration_s or 0.0,
                                   size_bytes=recording.dual_size_bytes or 0, sha256=recording.dual_sha256)
        return out


class AudioChannels(StrEnum):
    mixed = "mixed"
    dual = "dual"


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: RecordingPolicy
    dual_channel: bool = Field(False, description="Also keep each party on its own channel (stereo)")


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    scope: PolicyScope
    name: str
    policy: RecordingPolicy
    dual_channel: bool
    updated_at: datetime


@router.post("/v1/calls/{call_id}/recording", status_code=202, response_model=RecordingOut,
             summary="Start, stop, pause or resume recording a connected call; the paused part is "
                     "not in the file", responses=problems(400, 401, 403, 404, 409, 422, 503))
async def control_recording(
    call_id: CallId, body: RecordingControl,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(CONTROLLERS),
) -> RecordingOut:
    recording = await runtime.recordings.control(call_id, body.action, principal, body.dual_channel)
    return RecordingOut.of(recording)


@router.get("/v1/recordings", response_model=list[RecordingOut],
            summary="Recordings the key may see, newest first", responses=problems(401, 403, 422, 503))
async def list_recordings(
    call_id: str | None = Query(None, min_length=1, max_length=64, pattern=CALL_ID_PATTERN),
    agent_id: str | None = Query(None, pattern=NAME_PATTERN, description="An agent who took part"),
    queue: str | None = Query(None, pattern=NAME_PATTERN, description="A queue the call was connected from"),
    campaign: str | None = Query(None, pattern=NAME_PATTERN),
    caller_number: str | None = Query(None, min_length=1, max_length=64,
                                      pattern=r"^[^\x00-\x1f\x7f-\x9f]{1,64}$"),
    since: Timestamp | None = Query(None, description="Recordings started at or after this time"),
    before: Timestamp | None = Query(None, description="Recordings started before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(SEARCHERS),
) -> list[RecordingOut]:
    filters = RecordingFilter(call_id=call_id, agent_id=agent_id, queue=queue, campaign=campaign,
                              caller_number=caller_number, since=since, before=before, limit=limit)
    return [RecordingOut.of(r) for r in await runtime.recordings.list(filters, principal)]


@router.get("/v1/recordings/{recording_id}", response_model=RecordingOut, summary="One recording",
            responses=problems(401, 403, 404, 422, 503))
async def get_recording(
    recording_id: RecordingId,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(SEARCHERS),
) -> RecordingOut:
    return RecordingOut.of(await runtime.recordings.get(recording_id, principal))


@router.get("/v1/recordings/{recording_id}/audio", response_class=FileResponse,
            summary="The recording's audio (audio/wav); honours `Range`; every request is audited",
            responses={**AUDIO_RESPONSES, **problems(401, 403, 404, 409, 410, 422, 503)})
async def get_recording_audio(
    recording_id: RecordingId,
    channels: AudioChannels = Query(AudioChannels.mixed, description="mixed: both parties in one channel; "
                                    "dual: the stereo file, each party on its own channel"),
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(LISTENERS),
) -> FileResponse:
    dual = channels is AudioChannels.dual
    audio = await runtime.recordings.audio(recording_id, principal, dual=dual)
    return FileResponse(audio.path, media_type="audio/wav", stat_result=audio.stat,
                        filename=f"recording-{recording_id}{'-dual' if dual else ''}.wav",
                        content_disposition_type="inline")


@router.delete("/v1/recordings/{recording_id}", status_code=204, response_class=Response,
               summary="Delete a finished recording's files and mark it deleted (admin, supervisor)",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_recording(
    recording_id: RecordingId,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(MANAGERS),
) -> Response:
    await runtime.recordings.delete(recording_id, reason="api", by=principal)
    return Response(status_code=204)


@router.get("/v1/recording-policies", response_model=list[PolicyOut],
            summary="Recording policies of queues and agents (an agent's wins; default on_demand)",
            responses=problems(401, 403, 503))
async def list_policies(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(POLICY_READERS),
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
    return PolicyOut.model_validate(await runtime.recordings.set_policy(scope, name, body.policy,
                                                                          body.dual_channel))


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
