"""The FastAPI application: routes, error rendering, audit of writes."""

from __future__ import annotations

from fastapi import FastAPI

from controller import __version__
from controller.api.audit import install_audit
from controller.api.errors import install_error_handlers
from controller.api.routes import (
    agent_state,
    agents,
    alarms,
    api_keys,
    audit,
    calls,
    campaigns,
    dnc,
    events,
    flows,
    health,
    me,
    monitors,
    number_routes,
    prompts,
    queue_live,
    queues,
    recordings,
    reports,
    schedules,
    staffing,
    voicemails,
    webhooks,
)
from controller.bootstrap import Runtime
from controller.domain.flows import DocumentInvalid

DESCRIPTION = """
REST API of the contact-center controller.

Authenticate with an API key: `Authorization: Bearer <key>`. Each key has one role
(admin, supervisor, agent, integration); each operation lists the roles it accepts.
Errors are RFC 9457 `application/problem+json` documents with a stable `type`.
"""


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="cc-controller",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_audit(app)
    app.include_router(health.router)
    app.include_router(me.router)
    app.include_router(api_keys.router)
    app.include_router(audit.router)
    app.include_router(calls.router)
    app.include_router(monitors.router)
    app.add_exception_handler(DocumentInvalid, flows.document_invalid)
    app.include_router(flows.router)
    app.include_router(number_routes.router)
    app.include_router(schedules.router)
    app.include_router(prompts.router)
    app.include_router(voicemails.router)
    app.include_router(agent_state.router)
    app.include_router(agents.router)
    app.include_router(queue_live.router)
    app.include_router(queues.router)
    app.include_router(recordings.router)
    app.include_router(campaigns.router)
    app.include_router(dnc.router)
    app.include_router(staffing.router)
    app.include_router(reports.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(alarms.router)
    return app
