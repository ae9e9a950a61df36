"""Prompts: uploaded audio that flows play by name (docs/flows.md, "Prompts"). Admins and
supervisors upload and delete; integrations read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, Path, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.services.prompts import PROMPT_NAME_PATTERN

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

PromptName = Annotated[str, Path(min_length=1, max_length=64, pattern=PROMPT_NAME_PATTERN,
                                 description="The prompt's name")]

WAV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The audio, 8 kHz mono 16-bit WAV",
          "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
}


class PromptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str = Field(description="Played in flows as `name` or `prompt:name`; by Asterisk as "
                                  "`sound:ccc/name`")
    file_name: str
    duration_s: float
    sample_rate: int
    rms_db: float = Field(description="RMS level, dBFS")
    peak_db: float = Field(description="Peak level, dBFS")
    size_bytes: int
    original_filename: str | None
    created_at: datetime


@router.post(
    "",
    status_code=201,
    response_model=PromptOut,
    summary="Upload a prompt (admin, supervisor): WAV or MP3 up to 20 MB, converted to 8 kHz "
            "mono WAV; 422 if unreadable, empty, too long or near silence",
    responses=problems(400, 401, 403, 409, 413, 422, 503),
)
async def upload_prompt(
    name: Annotated[str, Form(min_length=1, max_length=64, pattern=PROMPT_NAME_PATTERN,
                              description="a-z, 0-9, '_' and '-'")],
    file: Annotated[UploadFile, File(description="The audio: WAV or MP3, at most 20 MB")],
    replace: Annotated[bool, Form(description="Replace a prompt of this name")] = False,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> PromptOut:
    prompt = await runtime.prompts.upload(name, file, file.filename, replace=replace)
    return PromptOut.model_validate(prompt)


@router.get("", response_model=list[PromptOut], summary="Every prompt, by name",
            responses=problems(401, 403, 503))
async def list_prompts(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[PromptOut]:
    return [PromptOut.model_validate(prompt) for prompt in await runtime.prompts.list()]


@router.get("/{name}", response_model=PromptOut, summary="One prompt and its measurements",
            responses=problems(401, 403, 404, 422, 503))
async def get_prompt(
    name: PromptName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> PromptOut:
    return PromptOut.model_validate(await runtime.prompts.get(name))


@router.get("/{name}/audio", response_class=FileResponse,
            summary="The prompt's audio as converted (audio/wav; range requests)",
            responses={**WAV_RESPONSE, **problems(401, 403, 404, 410, 422, 503)})
async def get_prompt_audio(
    name: PromptName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> FileResponse:
    audio = await runtime.prompts.audio(name)
    return FileResponse(audio.path, media_type="audio/wav", stat_result=audio.stat,
                        filename=f"{name}.wav", content_disposition_type="inline")


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a prompt and its file (admin, supervisor); 409 while a current "
                       "flow or a route uses it",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_prompt(
    name: PromptName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.prompts.delete(name)
    return Response(status_code=204)
