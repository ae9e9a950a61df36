"""Caller lookups: the HTTP calls a flow's lookup node makes to a CRM.

Each lookup runs in its own task with its own deadline, so a slow CRM delays only the call
that asked. The answer (or the failure) comes back to the call as a LookupFinished event.
A lookup is a GET with the caller's number, the dialed number and the call data as query
parameters; the CRM answers a JSON object whose scalar fields become available to the flow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from controller.domain import commands as c
from controller.domain import events as e

log = logging.getLogger(__name__)

MAX_FIELD_LENGTH = 1000


class Lookups:
    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, command: c.HttpLookup, deliver: Callable[[e.Event], None]) -> None:
        task = asyncio.create_task(self._run(command, deliver), name=f"lookup-{command.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _run(self, command: c.HttpLookup, deliver: Callable[[e.Event], None]) -> None:
        fields: dict[str, str] = {}
        error = ""
        try:
            async with asyncio.timeout(command.timeout_s):
                response = await self._client.get(command.url, params=command.params)
            response.raise_for_status()
            answer = response.json()
            if not isinstance(answer, dict):
                raise ValueError("the answer is not a JSON object")
            fields = {str(k): _text(v) for k, v in answer.items()
                      if isinstance(v, str | int | float | bool)}
        except TimeoutError:
            error = f"no answer within {command.timeout_s:g} s"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error:
            log.warning("lookup %s to %s failed: %s", command.request_id, command.url, error)
        deliver(e.LookupFinished(command.request_id, command.leg_id, datetime.now(UTC),
                                 ok=not error, fields=fields, error=error))


def _text(value: str | int | float | bool) -> str:
    # Call data ends up in prompts and screen pops: keep it one bounded line of text.
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text[:MAX_FIELD_LENGTH]
