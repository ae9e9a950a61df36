"""Fixtures for tests about calls: a controller runtime wired to the real Asterisk, and a
plain ARI client that plays the part of callers' phones."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import psycopg
import pytest

from controller.api.app import create_app
from controller.bootstrap import Runtime, build_runtime
from controller.domain.access import Role
from tests.conftest import ROOT, eventually, make_settings
from tests.integration.phones import PhoneBank

ARI_URL = os.environ.get("CCC_ARI_URL", "http://127.0.0.1:8088")
ARI_AUTH = (os.environ.get("CCC_ARI_USER", "ccc"), os.environ.get("CCC_ARI_PASSWORD", "ccc-local"))
LOCAL_ASTERISK = ROOT / "scripts" / "local-asterisk"


def local_asterisk(action: str) -> None:
    """Stop or start the Asterisk that `make test` provisioned (only when it is ours)."""
    if os.environ.get("CCC_EXTERNAL_PBX"):
        pytest.skip("Asterisk is an external box; the test will not stop it")
    subprocess.run([str(LOCAL_ASTERISK), action], check=True, timeout=120)


class Phones:
    """Callers' phones: Local channels originated over ARI into the dialplan."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, number: str, caller_id: str = '"Test Caller" <5550100>',
                   context: str = "ccc-inbound") -> dict[str, Any]:
        """Dial ``number`` in ``context``; the phone side waits in [ccc-test-caller]."""
        response = await self.client.post("/channels", params={
            "endpoint": f"Local/{number}@{context}",
            "context": "ccc-test-caller", "extension": "s", "priority": "1",
            "callerId": caller_id, "timeout": "30", "formats": "slin",  # see phones.py
        })
        response.raise_for_status()
        return response.json()


@pytest.fixture
async def dtmf_phones() -> AsyncIterator[PhoneBank]:
    """Phones whose caller side the test controls (answer, DTMF, hang-up)."""
    phones = PhoneBank(ARI_URL, ARI_AUTH)
    await phones.start()
    yield phones
    await phones.close()


@pytest.fixture
async def phones() -> AsyncIterator[Phones]:
    async with httpx.AsyncClient(base_url=ARI_URL + "/ari", auth=ARI_AUTH, timeout=10) as client:
        yield Phones(client)


RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start_runtime(migrated_database: str) -> AsyncIterator[RuntimeFactory]:
    """Start a controller runtime (one at a time: they share the Stasis app name)."""
    started: list[Runtime] = []
    # Each test about calls routes only the numbers it set up itself.
    async with await psycopg.AsyncConnection.connect(migrated_database, autocommit=True) as conn:
        await conn.execute("DELETE FROM number_routes")

    async def start(**overrides: object) -> Runtime:
        # Prompts and recordings where the local Asterisk reads and writes them.
        overrides = {"prompts_dir": "", "recordings_dir": "", **overrides}
        runtime = build_runtime(make_settings(**overrides))
        await runtime.start()
        started.append(runtime)
        await eventually(lambda: all(runtime.switch.links.values()), 10,
                         what="ARI and AMI links up")
        return runtime

    yield start
    for runtime in started:
        await runtime.close()


@pytest.fixture
def api_client() -> Callable[[Runtime], httpx.AsyncClient]:
    def make(runtime: Runtime) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://controller")
    return make


@pytest.fixture
async def inbound(start_runtime, api_client):
    """A started runtime and an API client holding an admin key."""
    runtime = await start_runtime()
    _, key = await runtime.api_keys.create("inbound tests", Role.ADMIN, None)
    async with api_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield runtime, client
