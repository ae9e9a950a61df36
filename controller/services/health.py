"""Readiness: is each dependency usable right now? Checked concurrently, each with a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.domain.errors import ControllerError

Check = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DependencyStatus:
    name: str
    ok: bool
    detail: str


class HealthService:
    def __init__(self, checks: dict[str, Check], timeout: float) -> None:
        self._checks = checks
        self._timeout = timeout

    async def readiness(self) -> list[DependencyStatus]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(name) for name in names))
        return list(results)

    async def _run(self, name: str) -> DependencyStatus:
        try:
            async with asyncio.timeout(self._timeout + 0.5):
                await self._checks[name](self._timeout)
        except ControllerError as exc:
            return DependencyStatus(name, False, exc.detail)
        except TimeoutError:
            return DependencyStatus(name, False, f"no answer within {self._timeout:g} s")
        except Exception as exc:  # a probe must report, not crash the endpoint
            return DependencyStatus(name, False, f"{type(exc).__name__}: {exc}")
        return DependencyStatus(name, True, "ok")
