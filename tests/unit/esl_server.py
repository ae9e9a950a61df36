"""A fake FreeSWITCH Event Socket that replays recorded sessions of a real FreeSWITCH 1.10.12.

Each accepted connection replays FreeSWITCH's side of one recorded connection
(``shared/freeswitch/transcripts``, esl-transcript/1): ``recv`` frames are written verbatim,
``send`` frames are read from the client (one command: up to the empty line, plus a
``Content-Length`` body) and compared byte for byte, ``eof`` closes the socket, ``close``
waits for the client to close.

Ids the client makes itself (Job-UUIDs, origination uuids) differ from the recorded ones.
When a command differs from the recording only in uuid-shaped tokens, each differing pair
becomes a substitution: the comparison is made with the client's ids replaced by the
recorded ones, and every later frame written to the client carries the client's ids instead
of the recorded ones (uuids have one length, so every Content-Length stays right). Anything
else that differs is a mismatch: the server stops replaying that connection and records it
in ``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Session:
    """Replay of one recorded connection (``conn``), cut after ``stop_after`` frames if set
    (the socket is then closed, as if FreeSWITCH had died)."""

    conn: str
    stop_after: int | None = None
    done: bool = False
    sent: list[bytes] = field(default_factory=list)  # commands the client wrote


class TranscriptServer:
    def __init__(self, doc: dict[str, Any], sessions: list[Session], *, read_timeout: float = 5.0) -> None:
        self.doc = doc
        self.sessions = list(sessions)
        self.errors: list[str] = []
        self.connections = 0
        self._queue = list(sessions)
        self._read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            if not self._queue:
                self.errors.append("an unexpected extra connection")
                return
            session = self._queue.pop(0)
            await self._replay(session, reader, writer)
        except Exception as exc:  # recorded for the test to report, never raised into asyncio
            self.errors.append(f"replay failed: {type(exc).__name__}: {exc}")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(task)

    async def _replay(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        frames = [f for f in self.doc["frames"] if f["conn"] == session.conn]
        to_client: dict[bytes, bytes] = {}  # recorded id -> the client's id
        for index, frame in enumerate(frames):
            if session.stop_after is not None and index >= session.stop_after:
                return
            kind = frame["dir"]
            if kind == "recv":
                writer.write(_substitute(frame["data"].encode("utf-8"), to_client))
                await writer.drain()
            elif kind == "send":
                expected = frame["data"].encode("utf-8")
                actual = await asyncio.wait_for(_read_command(reader), self._read_timeout)
                session.sent.append(actual)
                if not _matches(expected, actual, to_client):
                    self.errors.append(f"{session.conn} frame {index}: expected {expected!r}, got {actual!r}")
                    return
            elif kind == "eof":
                writer.close()
                session.done = True
                return
            elif kind == "close":
                rest = await asyncio.wait_for(reader.read(), self._read_timeout)
                if rest:
                    self.errors.append(f"{session.conn}: bytes after the recorded end: {rest[:80]!r}")
                    return
                session.done = True
                return
        session.done = True


async def _read_command(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\n\n")
    match = re.search(rb"^Content-Length: (\d+)$", head, re.MULTILINE)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return head + body


def _substitute(data: bytes, mapping: dict[bytes, bytes]) -> bytes:
    if not mapping:
        return data
    return _UUID.sub(lambda m: mapping.get(m.group(0), m.group(0)), data)


def _matches(expected: bytes, actual: bytes, to_client: dict[bytes, bytes]) -> bool:
    """Equal once the client's own ids are mapped to the recorded ones (learning new pairs)."""
    recorded_ids = _UUID.findall(expected)
    client_ids = _UUID.findall(actual)
    if len(recorded_ids) != len(client_ids):
        return False
    to_recorded = {client: recorded for recorded, client in to_client.items()}
    learned: dict[bytes, bytes] = {}
    for recorded, client in zip(recorded_ids, client_ids, strict=True):
        if recorded == client:
            continue
        known = to_recorded.get(client) or learned.get(client)
        if known is None:
            if recorded in to_client:  # a recorded id already stands for another client id
                return False
            learned[client] = recorded
        elif known != recorded:
            return False
    to_recorded.update(learned)
    if _UUID.sub(lambda m: to_recorded.get(m.group(0), m.group(0)), actual) != expected:
        return False
    to_client.update({recorded: client for client, recorded in learned.items()})
    return True
