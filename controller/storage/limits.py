"""Concurrency limits shared by every controller process, held in Redis.

Each limited thing (a route) has a set of the call ids inside it; admitting a call adds its
id only while the set is below the limit, in one Lua script, so two processes cannot both
take the last place. Releasing removes the id. Ids of calls that no process tracks any more
(a crashed controller) are swept out against the shared set of live calls.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class ConcurrencyLimits:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._redis = client
        self._prefix = f"ccc:{namespace}:limit:"
        self._admit = client.register_script(_ADMIT)

    def key(self, name: str) -> str:
        return self._prefix + name

    async def admit(self, name: str, call_id: str, limit: int) -> bool:
        """True when the call may enter. Without Redis the limit cannot be kept: the call is
        admitted (routing goes on) and the failure is logged."""
        try:
            return bool(await self._admit(keys=[self.key(name)], args=[call_id, limit]))
        except (RedisError, OSError) as exc:
            log.error("limit %s not enforced, Redis unavailable: %s", name, exc)
            return True

    async def release(self, name: str, call_id: str) -> None:
        try:
            await self._redis.srem(self.key(name), call_id)
        except (RedisError, OSError) as exc:
            log.error("could not release %s from limit %s: %s", call_id, name, exc)

    async def count(self, name: str) -> int:
        return int(await self._redis.scard(self.key(name)))

    async def sweep(self, live_call_ids: set[str]) -> int:
        """Drop ids of calls no longer live anywhere; returns how many were dropped."""
        dropped = 0
        async for key in self._redis.scan_iter(match=self._prefix + "*"):
            stale = [m for m in await self._redis.smembers(key) if m not in live_call_ids]
            if stale:
                dropped += await self._redis.srem(key, *stale)
        return dropped
