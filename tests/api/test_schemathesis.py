"""Property-based tests of the whole API from its own OpenAPI document (schemathesis 4).

For every operation, generated inputs (valid and invalid) must never cause a 5xx, and every
response must conform to the document: status declared, content type declared, body valid.

The app runs in a real uvicorn server on its own thread and event loop (with its own runtime:
the psycopg pool and the record writer belong to the loop that started them), so schemathesis
speaks plain HTTP to it, the way a client would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from controller.api.app import create_app
from controller.bootstrap import build_runtime
from controller.settings import Settings
from tests.conftest import make_settings

MAX_EXAMPLES = 25


class LiveServer:
    """The controller's API (no switch) served by uvicorn on a loopback port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()),
                                        name="api-under-test", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not (self._server is not None and self._server.started):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        runtime = build_runtime(self._settings)
        await runtime.db.open()
        await runtime.records.start()
        await runtime.live.start()
        config = uvicorn.Config(create_app(runtime), lifespan="off", log_level="warning",
                                access_log=False)
        self._server = uvicorn.Server(config)
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            await runtime.records.close()
            await runtime.live.close()
            await runtime.db.close()


@pytest.fixture(scope="session")
def live_server(migrated_database: str) -> Iterator[str]:
    server = LiveServer(make_settings(database_url=migrated_database))
    server.start()
    yield server.url
    server.stop()


# /readyz rightly answers 503 here (the switch is not started) and schemathesis counts every
# 5xx as a server error; tests/integration covers it against the real services.
NOT_READY_HERE = r"^/readyz$"
# GET /v1/events answers an endless text/event-stream: a valid request never completes, so
# every generated example would end in schemathesis' request timeout. Its refusals (401, 403,
# 406, 422) and its stream are tested over a real socket in tests/api/test_events.py.
ENDLESS_STREAM = r"^/v1/events$"

# Flows, schedules, routes, prompts, queues, campaigns, do-not-call entries, webhooks and alarm
# rules are checked beyond what a JSON schema can say (a flow's graph and the prompts it names, a
# schedule's timezone and hours, the flow a route enters, the audio itself, the agents a queue
# lists, a campaign's queue and zone, a phone number's validity, a CSV file's rows, a webhook
# URL's host and address, the queue an alarm rule names and the order of its levels), so a
# schema-valid write may rightly be refused with 422 (or 413 when too big).
CHECKED_BEYOND_SCHEMA = {
    "include-path-regex": r"^/v1/(flows|schedules|routes|prompts|queues|campaigns|dnc|webhooks|alarm-rules)",
    "include-method-regex": r"^(POST|PUT)$",
    "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "413", "422", "429", "5xx"]}},
}

# Click-to-dial names agents that must exist (422 otherwise) and needs the switch, which is not
# started here: a schema-valid request is rightly refused with 422, or 503 before anything is
# dialed (tests/integration/test_call_control.py dials for real).
CLICK_TO_DIAL = {
    "include-path-regex": r"^/v1/calls$",
    "include-method-regex": r"^POST$",
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422", "503"]},
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
    },
}

# Staffing sizes what the schema cannot bound field by field: an interval's traffic (calls x
# AHT / interval) over 10,000 Erlangs, calls without a handle time, an abandon limit without a
# patience, an unknown time zone or queue are refused with 422 (or 404).
STAFFING = {
    "include-path-regex": r"^/v1/staffing",
    "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "401", "403", "404", "422"]}},
}

# Reports check what the schema cannot say: the order of the period's dates, its length for the
# interval, the time zone, the paging cursor (422); a supervisor key asking for a queue outside
# its scope, or an agent key for another agent, is refused (403).
REPORTS = {
    "include-path-regex": r"^/v1/reports/",
    "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "401", "403", "422"]}},
}

# The document is the app's own, built the real way; no I/O happens until the app serves.
schema = schemathesis.openapi.from_dict(
    create_app(build_runtime(make_settings())).openapi(),
    config=SchemathesisConfig.from_dict({
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        "request-timeout": 10,
        "operations": [CHECKED_BEYOND_SCHEMA, CLICK_TO_DIAL, STAFFING, REPORTS],
    }),
).exclude(path_regex=NOT_READY_HERE).exclude(path_regex=ENDLESS_STREAM)


@schema.auth(refresh_interval=None, retry_on=[])
class AdminKey:
    """Every generated request carries the session's admin key (schemathesis knows it as auth,
    so it can still probe what happens without it)."""

    token: str | None = None

    def get(self, case: schemathesis.Case, ctx: object) -> str | None:
        return AdminKey.token

    def set(self, case: schemathesis.Case, data: str, ctx: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def as_admin(admin_key: str) -> None:
    AdminKey.token = admin_key


@schema.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_server: str,
                                    as_admin: None) -> None:
    case.call_and_validate(base_url=live_server)


def test_405_names_the_allowed_methods(live_server: str) -> None:
    response = httpx.request("TRACE", f"{live_server}/v1/api-keys")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
