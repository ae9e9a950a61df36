"""Live call state in Redis, so another process (or this one after a restart) can see and
adopt the calls in progress.

Writes are snapshots keyed by call id and are coalesced: while Redis is away the latest
snapshot of each call waits in memory and is written, with back-off, when Redis returns.
Calls keep being handled meanwhile; only their visibility to other processes lags.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from controller.backoff import Backoff, stop_task
from controller.domain.errors import StorageUnavailable

log = logging.getLogger(__name__)

_DELETE = object()


class LiveStore:
    def __init__(self, url: str, namespace: str, initial_delay: float = 0.5,
                 max_delay: float = 10.0) -> None:
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0,
                                          decode_responses=True)
        self.calls_key = f"ccc:{namespace}:calls"
        self._dirty: dict[str, object] = {}
        self._wakeup = asyncio.Event()
        self._backoff = Backoff(initial_delay, max_delay)
        self._task: asyncio.Task[None] | None = None
        self.healthy = True

    @property
    def pending(self) -> int:
        return len(self._dirty)

    def put_call(self, call_id: str, snapshot: dict[str, Any]) -> None:
        self._dirty[call_id] = snapshot
        self._wakeup.set()

    def drop_call(self, call_id: str) -> None:
        self._dirty[call_id] = _DELETE
        self._wakeup.set()

    async def live_calls(self) -> dict[str, dict[str, Any]]:
        try:
            raw = await self.redis.hgetall(self.calls_key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        return {call_id: json.loads(value) for call_id, value in raw.items()}

    async def check(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-store")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        try:
            await self._flush()
        except (RedisError, OSError):
            pass
        await self.redis.aclose()

    async def _flush(self) -> None:
        batch, self._dirty = self._dirty, {}
        if not batch:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for call_id, snapshot in batch.items():
                    if snapshot is _DELETE:
                        pipe.hdel(self.calls_key, call_id)
                    else:
                        pipe.hset(self.calls_key, call_id, json.dumps(snapshot, default=str))
                await pipe.execute()
        except BaseException:
            # Keep what was not written, unless a newer snapshot arrived meanwhile.
            for call_id, snapshot in batch.items():
                self._dirty.setdefault(call_id, snapshot)
            raise

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._flush()
            except (RedisError, OSError) as exc:
                if self.healthy:
                    log.error("redis unavailable, keeping live state in memory: %s", exc)
                self.healthy = False
                self._wakeup.set()
                await self._backoff.wait()
                continue
            if not self.healthy:
                log.warning("redis back, live state written")
            self.healthy = True
            self._backoff.reset()
