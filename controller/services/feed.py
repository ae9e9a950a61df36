"""Publishing to the public event feed, and following it.

``publish`` never blocks the caller: entries wait in order in memory and one task appends them
to the shared stream (while Redis is away they wait there, up to a bound). One reader task per
process follows the stream and hands every new entry to the subscriptions of this process, so a
thousand WebSocket clients cost one Redis reader, not a thousand.

A subscription that asks to start after sequence number N first reads the stream from Redis,
then goes on with live entries, skipping what it has already given; a subscriber too slow for
its live buffer falls back to reading the stream from where it is, so it never misses an entry
that is still in the stream. When what it asks for has been trimmed away, it is told so once
(a ``FeedGap``) and goes on from the oldest entry there is.

``Subscription.with_heartbeats`` is what a network stream reads: the same items, and a
``Heartbeat`` whenever nothing came for a while, carrying the subscription's position (the
newest sequence number it has looked at, given or filtered out), so a client that resumes from
it is given nothing twice and misses nothing its filter admits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.backoff import Backoff
from controller.domain.errors import StorageUnavailable
from controller.domain.feed import FeedEntry, FeedEvent, Topic
from controller.storage.feed import FeedStream, encode_entry

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
APPEND_BATCH = 500
REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class FeedGap:
    """Entries after ``after`` were asked for, but the oldest still kept is ``oldest``."""

    after: int
    oldest: int

    def to_json(self) -> dict[str, object]:
        return {"type": "feed.gap", "after": self.after, "oldest": self.oldest,
                "detail": f"entries {self.after + 1}..{self.oldest - 1} are no longer kept"}


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing for a while; every entry up to ``position`` has been looked at."""

    position: int

    def to_json(self) -> dict[str, object]:
        return {"type": "feed.heartbeat", "position": self.position}


Accept = Callable[[FeedEntry], bool]

# Put in a subscription's live buffer to wake its reader when it must read the stream instead.
_WAKE = FeedEntry(0, datetime.min.replace(tzinfo=UTC), "", FeedEvent(Topic.CALLS, "wake"))


class Subscription:
    """Entries for one client, in sequence order, without duplicates or holes."""

    def __init__(self, service: FeedService, after: int | None, accept: Accept, max_pending: int) -> None:
        self._service = service
        # Where a slow subscriber would catch up from, had it been given nothing yet.
        self.cursor: int = after if after is not None else max(service.position, 0)
        self._accept = accept
        self._pending: asyncio.Queue[FeedEntry] = asyncio.Queue(max_pending)
        self._behind = after is not None  # read the stream from Redis before live entries
        self.closed = False

    def offer(self, entry: FeedEntry) -> None:
        if self._behind or self.closed:
            return
        try:
            self._pending.put_nowait(entry)
        except asyncio.QueueFull:
            # Too slow for live delivery: catch up from the stream instead.
            self.fall_behind()

    def fall_behind(self) -> None:
        self._behind = True
        while not self._pending.empty():
            self._pending.get_nowait()
        self._pending.put_nowait(_WAKE)  # a reader waiting for a live entry goes to catch up

    def close(self) -> None:
        self.closed = True
        self._service._subscriptions.discard(self)
        try:
            self._pending.put_nowait(_WAKE)  # a reader waiting for a live entry sees it is over
        except asyncio.QueueFull:
            pass  # the reader has entries to take, and sees it after the next one

    async def with_heartbeats(self, every_s: float) -> AsyncIterator[FeedEntry | FeedGap | Heartbeat]:
        """The subscription's items, and a ``Heartbeat`` after every ``every_s`` without one.
        Raises what reading the stream raised (StorageUnavailable while catching up)."""
        # The subscription's own iterator runs on a task of its own: waiting for its next item
        # with a timeout must not cancel it in the middle (an async generator would not survive).
        handed: asyncio.Queue[FeedEntry | FeedGap] = asyncio.Queue(maxsize=1)

        async def pump() -> None:
            async for item in self:
                await handed.put(item)

        task = asyncio.create_task(pump(), name="feed-subscription")
        get: asyncio.Task[FeedEntry | FeedGap] | None = None
        try:
            while True:
                get = asyncio.create_task(handed.get())
                await asyncio.wait((get, task), timeout=every_s, return_when=asyncio.FIRST_COMPLETED)
                if get.done():  # also when it completed just as the time ran out
                    yield get.result()
                    continue
                get.cancel()
                if task.done():
                    task.result()  # raises what ended it
                    return
                # The pump hands over an item in the same step as it moves the cursor, so with
                # nothing handed over, the cursor is the position of what was given.
                yield Heartbeat(self.cursor)
        finally:
            self.close()
            for pending in (task, get):
                if pending is not None:
                    pending.cancel()
            await asyncio.gather(*(t for t in (task, get) if t is not None), return_exceptions=True)

    async def __aiter__(self) -> AsyncIterator[FeedEntry | FeedGap]:
        try:
            while not self.closed:
                if self._behind:
                    async for item in self._catch_up():
                        yield item
                    continue
                entry = await self._pending.get()
                if entry is _WAKE or entry.seq <= self.cursor:
                    continue
                self.cursor = entry.seq
                if self._accept(entry):
                    yield entry
        finally:
            self.close()

    async def _catch_up(self) -> AsyncIterator[FeedEntry | FeedGap]:
        after = self.cursor
        oldest, newest = await self._service.stream.bounds()
        if after > newest:
            # A number the feed never gave (its stream was lost and began again): from now on.
            log.info("feed: resuming after %d, past the newest entry %d; from the newest", after, newest)
            after = self.cursor = newest
        if oldest > after + 1:
            yield FeedGap(after, oldest)
            after = oldest - 1
        while True:
            # Live entries from now on are kept; the page reads below cover everything before.
            self._behind = False
            page = await self._service.stream.after(after, REPLAY_PAGE)
            for entry in page:
                after = entry.seq
                self.cursor = entry.seq
                if self._accept(entry):
                    yield entry
            if len(page) < REPLAY_PAGE:
                self.cursor = after
                return


class FeedService:
    def __init__(self, stream: FeedStream, node: str, *, buffer_max: int = 50_000,
                 read_block_ms: int = READ_BLOCK_MS) -> None:
        self.stream = stream
        self.node = node
        self._buffer: deque[str] = deque()
        self._buffer_max = buffer_max
        self._wakeup = asyncio.Event()
        self._read_block_ms = read_block_ms
        self._subscriptions: set[Subscription] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop = asyncio.Event()
        self.position = 0  # the newest entry this process has handed to its subscriptions
        self.healthy = True
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def publish(self, event: FeedEvent, at: datetime | None = None) -> None:
        """Queue one event for the feed (never blocks; written in publication order)."""
        if len(self._buffer) >= self._buffer_max:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("feed buffer full while Redis is away: %d oldest events dropped", self.dropped)
        self._buffer.append(encode_entry(at or datetime.now(UTC), self.node, event))
        self._wakeup.set()

    def subscribe(self, after: int | None, accept: Accept, max_pending: int = 1000) -> Subscription:
        """Entries after sequence number ``after`` (None: from now on) that ``accept`` admits.
        Iterate it; ``close()`` it when the client goes."""
        subscription = Subscription(self, after, accept, max_pending)
        self._subscriptions.add(subscription)
        return subscription

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._stop = asyncio.Event()
        try:
            _, self.position = await self.stream.bounds()
        except StorageUnavailable as exc:
            log.error("feed position not read (%s); live entries start when Redis answers", exc.detail)
            self.position = -1
        self._tasks = [asyncio.create_task(self._write(), name="feed-write"),
                       asyncio.create_task(self._read(), name="feed-read")]

    async def close(self) -> None:
        # As in the ACD: loops stop between two Redis commands rather than being cancelled in
        # one. What is still buffered is written first, within the same bound.
        self._stopping = True
        self._stop.set()
        self._wakeup.set()
        for task in self._tasks:
            try:
                async with asyncio.timeout(self._read_block_ms / 1000 + 2):
                    await asyncio.shield(task)
            except TimeoutError:
                log.error("feed task %s did not stop; cancelling it", task.get_name())
                task.cancel()
        self._tasks = []
        for subscription in list(self._subscriptions):
            subscription.close()
        if self._buffer:
            log.error("feed: %d events not written at shutdown (Redis away)", len(self._buffer))

    async def _write(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            if not self._buffer:
                if self._stopping:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            batch = [self._buffer[i] for i in range(min(APPEND_BATCH, len(self._buffer)))]
            try:
                await self.stream.append(batch)
            except StorageUnavailable as exc:
                if self._stopping:
                    return
                if self.healthy:
                    log.error("feed not written (%s); %d events wait in memory",
                              exc.detail, len(self._buffer))
                self.healthy = False
                await self._sleep(backoff)
                continue
            for _ in batch:
                self._buffer.popleft()
            if not self.healthy:
                log.warning("feed written again after Redis came back")
            self.healthy = True
            backoff.reset()

    async def _read(self) -> None:
        backoff = Backoff(0.2, 5.0)
        recheck = False
        while not self._stopping:
            try:
                if self.position < 0:
                    _, self.position = await self.stream.bounds()
                elif recheck:
                    _, newest = await self.stream.bounds()
                    if newest < self.position:
                        log.warning("feed stream restarted at %d (was at %d): Redis lost it",
                                    newest, self.position)
                        self.position = 0
                    recheck = False
                entries = await self.stream.wait_after(self.position, self._read_block_ms)
                backoff.reset()
            except StorageUnavailable as exc:
                log.warning("feed not read (%s); retrying in %.1f s", exc.detail, backoff.delay)
                recheck = True  # Redis may come back without the stream
                await self._sleep(backoff)
                continue
            if entries and entries[0].seq > self.position + 1:
                # Trimmed before this process read it: subscribers read the stream themselves
                # and are told what is gone.
                for subscription in list(self._subscriptions):
                    subscription.fall_behind()
            for entry in entries:
                self.position = entry.seq
                for subscription in list(self._subscriptions):
                    subscription.offer(entry)

    async def _sleep(self, backoff: Backoff) -> None:
        try:
            async with asyncio.timeout(backoff.delay):
                await self._stop.wait()
        except TimeoutError:
            pass
        backoff.delay = min(backoff.delay * 2, backoff.maximum)
