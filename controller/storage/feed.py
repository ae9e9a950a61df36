"""The public event feed in Redis: one stream per cluster, shared by every controller process.

Entries get their sequence number in Redis, inside one script that also appends them, so the
numbers are dense, increasing and the same for every process. The number is the entry's stream
id (``<seq>-0``), which makes "everything after N" one ``XRANGE`` or ``XREAD``.
The stream is trimmed to about ``max_len`` entries: that bounds how far back a client can replay.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from controller.domain.errors import StorageUnavailable
from controller.domain.feed import FeedEntry, FeedEvent

log = logging.getLogger(__name__)

FEED_MAX_LEN = 100_000

# The counter alone could be behind the stream (a restored or hand-edited Redis): the stream's
# last id wins, so numbers never go back.
_APPEND = """
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then
  local n = tonumber(string.match(last[1][1], '^(%d+)'))
  if n > seq then seq = n end
end
for i = 2, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', ARGV[i])
end
redis.call('SET', KEYS[2], seq)
return seq
"""


def encode_entry(at: datetime, node: str, event: FeedEvent) -> str:
    return json.dumps({"at": at.isoformat(), "node": node, "event": event.to_json()}, default=str)


class FeedStream:
    def __init__(self, client: redis.Redis, cluster: str, max_len: int = FEED_MAX_LEN) -> None:
        self.redis = client
        self.stream_key = f"ccc:{cluster}:feed"
        self._counter_key = f"ccc:{cluster}:feed:seq"
        self.max_len = max_len
        self._append = self.redis.register_script(_APPEND)

    async def append(self, encoded: list[str]) -> int:
        """Append entries made by ``encode_entry``, in order; returns the last one's number."""
        return int(await self._call(self._append(keys=[self.stream_key, self._counter_key],
                                                 args=[self.max_len, *encoded])))

    async def after(self, seq: int, count: int) -> list[FeedEntry]:
        """Up to ``count`` entries numbered above ``seq``, oldest first."""
        got = await self._call(self.redis.xrange(self.stream_key, min=f"({seq}-0", count=count))
        return _decode(got)

    async def wait_after(self, seq: int, block_ms: int, count: int = 1000) -> list[FeedEntry]:
        """Entries numbered above ``seq``, waiting up to ``block_ms`` for the first one."""
        got = await self._call(self.redis.xread({self.stream_key: f"{seq}-0"}, count=count, block=block_ms))
        return [entry for _, entries in got or () for entry in _decode(entries)]

    async def bounds(self) -> tuple[int, int]:
        """(oldest, newest) numbers still in the stream; (0, 0) when it is empty."""
        first = await self._call(self.redis.xrange(self.stream_key, count=1))
        last = await self._call(self.redis.xrevrange(self.stream_key, count=1))
        if not first or not last:
            return 0, 0
        return _seq(first[0][0]), _seq(last[0][0])

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc


def _seq(entry_id: Any) -> int:
    return int(str(entry_id).partition("-")[0])


def _decode(entries: Any) -> list[FeedEntry]:
    out: list[FeedEntry] = []
    for entry_id, fields in entries or ():
        try:
            raw = json.loads(fields["e"])
            out.append(FeedEntry(_seq(entry_id), datetime.fromisoformat(raw["at"]), str(raw["node"]),
                                 FeedEvent.from_json(raw["event"])))
        except (KeyError, ValueError, TypeError) as exc:
            log.error("feed entry %s is unreadable and skipped: %s", entry_id, exc)
    return out
