"""The ACD's shared log in Redis: one ordered stream of events for every controller process.

Every process appends what happens to its calls and agents (``XADD``) and reads the whole stream
back in the same order (``XREAD``), so each runs the same pure engine over the same events and
holds the same ACD state. Redis' stream order is the one point where concurrent decisions are
serialized: two processes cannot both reserve one agent, because the second reservation is
decided after the first, against a state in which the agent is already reserved.

Beside the stream:
- a leader lease (``SET NX PX``, renewed by its holder): the leader appends the clock ticks,
  writes snapshots and declares a process lost when its heartbeat key has expired;
- a heartbeat key per process, which expires when the process dies;
- the latest snapshot of the state with the stream id it covers, so a process that starts
  reads the snapshot and the stream after it instead of the whole history;
- today's queue figures as Redis hashes, for readers outside the controller.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from controller.domain.errors import StorageUnavailable

log = logging.getLogger(__name__)

# The stream is trimmed to about this many entries; snapshots are taken far more often.
STREAM_MAX_LEN = 200_000

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def stream_position(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


class AcdLog:
    def __init__(self, client: redis.Redis, cluster: str) -> None:
        self.redis = client
        base = f"ccc:{cluster}:acd"
        self.stream_key = f"{base}:log"
        self.snapshot_key = f"{base}:snapshot"
        self.leader_key = f"{base}:leader"
        self._node_prefix = f"{base}:node:"
        self._stats_prefix = f"{base}:stats:"
        self._renew = self.redis.register_script(_RENEW)

    async def append(self, entry: dict[str, Any]) -> str:
        """Append one entry; returns its stream id (the entry's place in the order)."""
        return str(await self._call(self.redis.xadd(self.stream_key, {"e": json.dumps(entry)},
                                                    maxlen=STREAM_MAX_LEN, approximate=True)))

    async def read(self, after: str, block_ms: int, count: int = 500) -> list[tuple[str, dict[str, Any]]]:
        """Entries after ``after`` (waiting up to ``block_ms`` for the first one)."""
        got = await self._call(self.redis.xread({self.stream_key: after}, count=count, block=block_ms))
        out: list[tuple[str, dict[str, Any]]] = []
        for _, entries in got or ():
            for entry_id, fields in entries:
                try:
                    out.append((str(entry_id), json.loads(fields["e"])))
                except (KeyError, ValueError) as exc:
                    log.error("ACD log entry %s is unreadable and skipped: %s", entry_id, exc)
        return out

    async def first_id(self) -> str | None:
        """The oldest id still in the stream (None when it is empty)."""
        got = await self._call(self.redis.xrange(self.stream_key, count=1))
        return str(got[0][0]) if got else None

    # ---- snapshots ----------------------------------------------------------------------

    async def save_snapshot(self, last_id: str, state: dict[str, Any]) -> None:
        await self._call(self.redis.set(self.snapshot_key, json.dumps({"last_id": last_id, "state": state})))

    async def load_snapshot(self) -> tuple[str, dict[str, Any]] | None:
        raw = await self._call(self.redis.get(self.snapshot_key))
        if not raw:
            return None
        saved = json.loads(raw)
        return saved["last_id"], saved["state"]

    # ---- leader lease and heartbeats ----------------------------------------------------

    async def lead(self, node: str, ttl_ms: int) -> bool:
        """Take or keep the leader lease; True while this node holds it."""
        if await self._call(self._renew(keys=[self.leader_key], args=[node, ttl_ms])):
            return True
        return bool(await self._call(self.redis.set(self.leader_key, node, nx=True, px=ttl_ms)))

    async def resign(self, node: str) -> None:
        await self._call(self._renew(keys=[self.leader_key], args=[node, 1]))

    async def heartbeat(self, node: str, ttl_ms: int) -> None:
        await self._call(self.redis.set(self._node_prefix + node, "1", px=ttl_ms))

    async def alive(self, nodes: set[str]) -> set[str]:
        if not nodes:
            return set()
        ordered = sorted(nodes)
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in ordered:
                pipe.exists(self._node_prefix + node)
            results = await self._call(pipe.execute())
        return {node for node, found in zip(ordered, results, strict=True) if found}

    # ---- figures for outside readers -------------------------------------------------------

    async def save_queue_figures(self, day: str, figures: dict[str, dict[str, Any]],
                                 ttl_s: int = 3 * 86400) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue, values in figures.items():
                key = f"{self._stats_prefix}{day}:{queue}"
                pipe.hset(key, mapping={k: json.dumps(v) for k, v in values.items()})
                pipe.expire(key, ttl_s)
            await self._call(pipe.execute())

    async def queue_figures(self, day: str, queue: str) -> dict[str, Any]:
        raw = await self._call(self.redis.hgetall(f"{self._stats_prefix}{day}:{queue}"))
        return {k: json.loads(v) for k, v in raw.items()}

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
