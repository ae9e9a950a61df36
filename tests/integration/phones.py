"""Callers' phones that a test can drive: Local channels whose caller side sits in a Stasis
application of the test's own, so the test can wait for answer, send real DTMF into the call
and hang up, all over ARI on the real Asterisk."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from typing import Any

import httpx
import websockets

TEST_APP = "ccc-test-phone"


class Phone:
    def __init__(self, phones: PhoneBank, channel_id: str) -> None:
        self.phones = phones
        self.id = channel_id
        self.events: list[dict[str, Any]] = []
        self.answered = asyncio.Event()
        self.gone = asyncio.Event()

    async def wait_answered(self, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            await self.answered.wait()

    async def wait_gone(self, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            await self.gone.wait()

    async def press(self, digits: str, between_ms: int = 100, duration_ms: int = 100) -> None:
        """Send real DTMF on the caller's channel; it reaches the controller's leg."""
        response = await self.phones.client.post(f"/channels/{self.id}/dtmf", params={
            "dtmf": digits, "between": str(between_ms), "duration": str(duration_ms)})
        response.raise_for_status()

    async def hang_up(self) -> None:
        with contextlib.suppress(httpx.HTTPStatusError):
            (await self.phones.client.delete(f"/channels/{self.id}")).raise_for_status()


class PhoneBank:
    def __init__(self, ari_url: str, auth: tuple[str, str]) -> None:
        self.client = httpx.AsyncClient(base_url=ari_url + "/ari", auth=auth, timeout=10)
        self._ws_url = ari_url.replace("http", "ws", 1) + f"/ari/events?app={TEST_APP}"
        self._token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._phones: dict[str, Phone] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())
        async with asyncio.timeout(10):
            await self._ready.wait()

    async def close(self) -> None:
        for phone in self._phones.values():
            if not phone.gone.is_set():
                await phone.hang_up()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    async def call(self, number: str, caller_id: str = '"Test Caller" <5550100>',
                   context: str = "ccc-inbound") -> Phone:
        channel_id = f"phone-{uuid.uuid4().hex[:12]}"
        phone = Phone(self, channel_id)
        self._phones[channel_id] = phone
        response = await self.client.post(f"/channels/{channel_id}", params={
            "endpoint": f"Local/{number}@{context}", "app": TEST_APP, "callerId": caller_id,
            # A phone's narrowband audio: without it the Local channel gets slin192 and
            # Asterisk resamples every frame (a hundred phones on hold load two cores).
            "formats": "slin",
            "timeout": "30"})
        response.raise_for_status()
        return phone

    async def _listen(self) -> None:
        async with websockets.connect(self._ws_url, additional_headers={
                "Authorization": f"Basic {self._token}"}) as socket:
            self._ready.set()
            async for raw in socket:
                message = json.loads(raw)
                phone = self._phones.get((message.get("channel") or {}).get("id", ""))
                if phone is None:
                    continue
                phone.events.append(message)
                if message["type"] == "StasisStart":
                    phone.answered.set()
                elif message["type"] in ("StasisEnd", "ChannelDestroyed"):
                    phone.gone.set()
