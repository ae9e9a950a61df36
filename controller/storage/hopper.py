"""Each running campaign's hopper in Redis: the contacts to dial next, in order.

One sorted set per campaign, ``ccc:{cluster}:campaign:{id}:hopper`` (member: the contact id,
score: engines/hopper.py's order, lowest first), and one per agent for callbacks promised to
that agent, ``…:hopper:agent:{agent_id}``. The dialer pops the lowest score (``ZPOPMIN``: one
contact goes to one dialer only, even with several controller processes).

Postgres stays the truth: a contact in the hopper is ``queued`` there, and whoever takes it
must move it from ``queued`` to ``dialing`` in Postgres before dialing; an entry whose contact
is no longer queued (expired, found on a do-not-call list, campaign paused) is skipped. So a
lost Redis write costs nothing but a short delay: the contact stays queued until the worker
expires it back to ``ready``.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as redis
from redis.exceptions import RedisError

from controller.domain.errors import StorageUnavailable
from controller.engines.hopper import HopperPick


class HopperStore:
    def __init__(self, client: redis.Redis, cluster: str) -> None:
        self._redis = client
        self._prefix = f"ccc:{cluster}:campaign:"

    def key(self, campaign_id: str, agent_id: str | None = None) -> str:
        base = f"{self._prefix}{campaign_id}:hopper"
        return base if agent_id is None else f"{base}:agent:{agent_id}"

    async def push(self, campaign_id: str, picks: Iterable[HopperPick]) -> None:
        by_key: dict[str, dict[str, float]] = {}
        for pick in picks:
            by_key.setdefault(self.key(campaign_id, pick.agent_id), {})[str(pick.contact_id)] = pick.score
        if not by_key:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, members in by_key.items():
                    pipe.zadd(key, members)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc

    async def pop(self, campaign_id: str, agent_id: str | None = None) -> int | None:
        """The first contact of the agent's own hopper (if an agent is named), else of the
        campaign's; None when both are empty."""
        keys = ([self.key(campaign_id, agent_id)] if agent_id is not None else []) + [self.key(campaign_id)]
        try:
            for key in keys:
                popped = await self._redis.zpopmin(key, 1)
                if popped:
                    member, _ = popped[0]
                    return int(member)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        return None

    async def remove(self, campaign_id: str, entries: Iterable[tuple[int, str | None]]) -> None:
        """Take contacts (id, the agent whose hopper holds it or None) out of the hopper."""
        by_key: dict[str, list[str]] = {}
        for contact_id, agent_id in entries:
            by_key.setdefault(self.key(campaign_id, agent_id), []).append(str(contact_id))
        if not by_key:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, members in by_key.items():
                    pipe.zrem(key, *members)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc

    async def entries(self, campaign_id: str, agent_id: str | None = None) -> list[tuple[int, float]]:
        """The contacts in one hopper, in dialing order (for the API and tests)."""
        try:
            raw = await self._redis.zrange(self.key(campaign_id, agent_id), 0, -1, withscores=True)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        return [(int(member), float(score)) for member, score in raw]

    async def clear(self, campaign_id: str, agent_ids: Iterable[str | None] = ()) -> None:
        keys = {self.key(campaign_id)} | {self.key(campaign_id, agent) for agent in agent_ids}
        try:
            await self._redis.delete(*keys)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
