"""Voicemail messages (docs/flows.md, "Voicemail"). Admins and supervisors list, listen, mark
heard and delete; integrations list and listen; agents have no access."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.services.voicemails import MAILBOX_PATTERN
from controller.storage.inbound import VoicemailFilter

router = APIRouter(prefix="/v1/voicemails", tags=["voicemails"])

MANAGERS = authorize(Role.ADMIN, Role.SUPERVISOR)
LISTENERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

VoicemailId = Annotated[UUID, Path(description="The message's id")]

AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The message, audio/wav",
          "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
    206: {"description": "The requested byte range of the message (`Range: bytes=…`)",
          "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
    416: {"description": "The range lies outside the file; `Content-Range` gives its size"},
}


class VoicemailOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    mailbox: str
    call_id: str | None
    caller_number: str
    caller_name: str
    duration_s: float
    created_at: datetime
    heard_at: datetime | None


@router.get("", response_model=list[VoicemailOut], summary="Messages, newest first",
            responses=problems(401, 403, 422, 503))
async def list_voicemails(
    mailbox: str | None = Query(None, min_length=1, max_length=64, pattern=MAILBOX_PATTERN),
    heard: bool | None = Query(None, description="Only heard (true) or unheard (false) messages"),
    since: Timestamp | None = Query(None, description="Messages left at or after this time"),
    before: Timestamp | None = Query(None, description="Messages left before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(LISTENERS),
) -> list[VoicemailOut]:
    filters = VoicemailFilter(mailbox=mailbox, heard=heard, since=since, before=before, limit=limit)
    return [VoicemailOut.model_validate(v) for v in await runtime.voicemails.list(filters)]


@router.get("/{voicemail_id}", response_model=VoicemailOut, summary="One message",
            responses=problems(401, 403, 404, 422, 503))
async def get_voicemail(
    voicemail_id: VoicemailId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(MANAGERS),
) -> VoicemailOut:
    return VoicemailOut.model_validate(await runtime.voicemails.get(voicemail_id))


@router.get("/{voicemail_id}/audio", response_class=FileResponse,
            summary="The message's audio (audio/wav); honours `Range` for seeking",
            responses={**AUDIO_RESPONSES, **problems(401, 403, 404, 410, 422, 503)})
async def get_voicemail_audio(
    voicemail_id: VoicemailId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(LISTENERS),
) -> FileResponse:
    audio = await runtime.voicemails.audio(voicemail_id)
    return FileResponse(audio.path, media_type="audio/wav", stat_result=audio.stat,
                        filename=f"voicemail-{voicemail_id}.wav", content_disposition_type="inline")


@router.post("/{voicemail_id}/heard", response_model=VoicemailOut,
             summary="Mark a message heard (admin, supervisor); idempotent",
             responses=problems(401, 403, 404, 422, 503))
async def mark_voicemail_heard(
    voicemail_id: VoicemailId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(MANAGERS),
) -> VoicemailOut:
    return VoicemailOut.model_validate(await runtime.voicemails.mark_heard(voicemail_id))


@router.delete("/{voicemail_id}", status_code=204, response_class=Response,
               summary="Delete a message and its audio (admin, supervisor)",
               responses=problems(401, 403, 404, 422, 503))
async def delete_voicemail(
    voicemail_id: VoicemailId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(MANAGERS),
) -> Response:
    await runtime.voicemails.delete(voicemail_id)
    return Response(status_code=204)
