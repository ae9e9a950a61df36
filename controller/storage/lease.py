"""A lease in Redis: at most one holder at a time, kept by renewing it before it expires.

``SET NX PX`` takes it; a script renews it only for its holder. A holder that dies loses it
when its time runs out. A lease is not a lock: two holders can overlap by the time a holder
needs to notice it lost the lease, so what it guards must also be safe to do twice (the
webhook dispatcher's deliveries are unique per webhook and feed entry).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from controller.domain.errors import StorageUnavailable

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class Lease:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self.redis = client
        self.key = key
        self._renew = self.redis.register_script(_RENEW)

    async def hold(self, holder: str, ttl_ms: int) -> bool:
        """Take or keep the lease; True while ``holder`` has it."""
        if await self._call(self._renew(keys=[self.key], args=[holder, ttl_ms])):
            return True
        return bool(await self._call(self.redis.set(self.key, holder, nx=True, px=ttl_ms)))

    async def release(self, holder: str) -> None:
        await self._call(self._renew(keys=[self.key], args=[holder, 1]))

    async def holder(self) -> str | None:
        return await self._call(self.redis.get(self.key))

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
