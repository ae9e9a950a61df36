"""IVR flows: versioned documents (docs/flows.md). Admins and supervisors write; integrations read.

A flow is sent as JSON (``{"name", "document"}``) or as YAML (the document itself, with
``Content-Type: application/yaml`` and the name in the query). Every write makes a new immutable
version; an invalid document is 422 with ``errors`` naming each node and field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import yaml
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problem, problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.errors import ControllerError
from controller.domain.flows import DocumentInvalid, FlowInvalid
from controller.services.flows import MAX_DOCUMENT_BYTES, NAME_PATTERN, VERSION_MAX, PayloadTooLarge
from controller.storage.inbound import FlowVersion

router = APIRouter(prefix="/v1/flows", tags=["flows"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
FlowName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN,
                               description="The flow's name")]


class UnsupportedMediaType(ControllerError):
    """Send the flow as application/json or application/yaml."""

    code = "unsupported-media-type"
    status = 415


class NewFlow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN, examples=["support"])
    document: dict[str, Any] = Field(description="The flow document (docs/flows.md)")


class FlowUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] = Field(description="The flow document (docs/flows.md)")


class FlowOut(BaseModel):
    name: str
    version: int = Field(description="This document's version; versions never change")
    document: dict[str, Any]
    created_at: datetime = Field(description="When this version was made")
    created_by: UUID | None = Field(description="The API key that made this version")

    @classmethod
    def of(cls, version: FlowVersion) -> FlowOut:
        return cls(name=version.flow_name, version=version.version, document=version.document,
                   created_at=version.created_at, created_by=version.created_by)


class FlowSummaryOut(BaseModel):
    name: str
    version: int = Field(description="The current version")
    updated_at: datetime


def _request_body(schema_ref: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}},
        "application/yaml": {"schema": {"type": "object", "description": "The flow document"}},
    }}}


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases, which can blow a small text up to a huge tree."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _invalid_body(message: str, kind: str = "value_error", *where: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *where), "msg": message, "type": kind}])


async def _read_document(request: Request, model: type[BaseModel]) -> tuple[BaseModel | None, Any]:
    """(the JSON body as ``model``, None) or (None, the YAML document)."""
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type not in YAML_TYPES and media_type != "application/json":
        raise UnsupportedMediaType(f"cannot read {media_type or 'a body without a type'}; send "
                                   "application/json or application/yaml")
    body = await request.body()
    if len(body) > 2 * MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"the body is larger than {2 * MAX_DOCUMENT_BYTES} bytes")
    if media_type == "application/json":
        try:
            return model.model_validate_json(body), None
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from exc
    try:
        document = yaml.load(body.decode("utf-8"), Loader=_NoAliasLoader)
    except UnicodeDecodeError as exc:
        raise _invalid_body("the YAML is not UTF-8 text", "yaml_invalid") from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise _invalid_body(f"invalid YAML: {exc}", "yaml_invalid") from exc
    if not isinstance(document, dict):
        raise _invalid_body("the YAML document must be a mapping (start, nodes)", "yaml_invalid")
    return None, document


@router.post(
    "",
    status_code=201,
    response_model=FlowOut,
    summary="Create a flow at version 1 (admin, supervisor); JSON {name, document} or a YAML "
            "document with ?name=",
    responses=problems(401, 403, 409, 413, 415, 422, 503),
    openapi_extra=_request_body("NewFlow"),
)
async def create_flow(
    request: Request,
    name: str | None = Query(None, min_length=1, max_length=64, pattern=NAME_PATTERN,
                             description="The flow's name, for a YAML body"),
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(WRITERS),
) -> FlowOut:
    body, document = await _read_document(request, NewFlow)
    if isinstance(body, NewFlow):
        if name is not None and name != body.name:
            raise _invalid_body("the query names another flow than the body", "value_error", "name")
        name, document = body.name, body.document
    if name is None:
        raise RequestValidationError([{"loc": ("query", "name"), "type": "missing",
                                       "msg": "a YAML flow needs ?name="}])
    return FlowOut.of(await runtime.flows.create(name, document, principal.key_id))


@router.get("", response_model=list[FlowSummaryOut], summary="Every flow and its current version",
            responses=problems(401, 403, 503))
async def list_flows(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[FlowSummaryOut]:
    return [FlowSummaryOut(name=version.flow_name, version=version.version, updated_at=updated_at)
            for version, updated_at in await runtime.flows.list()]


@router.get("/{name}", response_model=FlowOut, summary="A flow's current version",
            responses=problems(401, 403, 404, 422, 503))
async def get_flow(
    name: FlowName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> FlowOut:
    version, _updated = await runtime.flows.get(name)
    return FlowOut.of(version)


@router.get("/{name}/versions/{version}", response_model=FlowOut,
            summary="One version of a flow (deleted flows included)",
            responses=problems(401, 403, 404, 422, 503))
async def get_flow_version(
    name: FlowName,
    version: Annotated[int, Path(ge=1, le=VERSION_MAX)],
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> FlowOut:
    return FlowOut.of(await runtime.flows.get_version(name, version))


@router.put(
    "/{name}",
    response_model=FlowOut,
    summary="Store a new version of a flow and make it current (admin, supervisor); calls in "
            "progress keep theirs. JSON {document} or a YAML document",
    responses=problems(401, 403, 404, 413, 415, 422, 503),
    openapi_extra=_request_body("FlowUpdate"),
)
async def update_flow(
    name: FlowName,
    request: Request,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(WRITERS),
) -> FlowOut:
    body, document = await _read_document(request, FlowUpdate)
    if isinstance(body, FlowUpdate):
        document = body.document
    return FlowOut.of(await runtime.flows.update(name, document, principal.key_id))


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a flow (admin, supervisor): new calls cannot enter it; calls in "
                       "progress finish. 409 while a route uses it",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_flow(
    name: FlowName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.flows.delete(name)
    return Response(status_code=204)


async def document_invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 for an invalid flow or schedule, one entry in ``errors`` per problem, naming its node
    and field (``location`` points into the request body)."""
    assert isinstance(exc, DocumentInvalid)
    errors = []
    for error in exc.errors:
        location = ["body", "document"] if isinstance(exc, FlowInvalid) else ["body"]
        if error.node is not None:
            location += ["nodes", error.node]
        if error.field is not None:
            location.append(error.field)
        errors.append({"location": location, "message": error.message, "type": exc.code,
                       "node": error.node, "field": error.field})
    return problem(exc.status, exc.code, exc.detail, errors=errors)
