"""Call recordings: started by policy when a queue call is connected, or through the API; paused,
resumed and stopped through the API; finished by the switch; listed, streamed, deleted and expired.

The switch records the call's bridge (both parties mixed) into its recording spool as
``<recordings dir>/<name>.wav``; the name is the controller's (``callrec-<uuid>``), so a
RecordingFinished event is recognised by its name alone. When it comes, the file's duration (read
from its WAV header), size and SHA-256 are stored with the row. Pausing uses the switch's pause
(not mute): the paused part is left out of the file.

Policy: an agent's policy wins over its queue's; with neither, recording is on demand (the API may
start it). ``never`` refuses a start through the API as well.

Deleting (API or retention) removes the file, marks the row deleted and writes an audit record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import wave
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.services.voicemails import AudioFile, AudioGone, open_audio
from controller.storage import recordings as store
from controller.storage.db import Database
from controller.storage.recordings import Policy, Recording, RecordingFilter
from controller.storage.records import AuditRow

log = logging.getLogger(__name__)

NAME_PREFIX = "callrec-"
FORMAT = "wav"
RETENTION_BATCH = 500


class RecordingPolicy(StrEnum):
    ALWAYS = "always"
    ON_DEMAND = "on_demand"
    NEVER = "never"


class PolicyScope(StrEnum):
    QUEUE = "queue"
    AGENT = "agent"


class RecordingAction(StrEnum):
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"


class Switch(Protocol):
    async def execute(self, command: c.Command) -> None: ...


@dataclass(frozen=True, slots=True)
class LiveCall:
    """What the recording service needs of a connected call."""

    call_id: str
    bridge_id: str
    queue: str | None
    agent_id: str | None
    caller_number: str


class LiveCalls(Protocol):
    def connected_call(self, call_id: str) -> LiveCall | None: ...


class Audit(Protocol):
    def record(self, row: AuditRow) -> None: ...


def effective_policy(policies: list[Policy]) -> RecordingPolicy:
    """The agent's policy if set, else the queue's, else on demand."""
    by_scope = {p.scope: RecordingPolicy(p.policy) for p in policies}
    return by_scope.get(PolicyScope.AGENT) or by_scope.get(PolicyScope.QUEUE) or RecordingPolicy.ON_DEMAND


def wav_duration(path: Path) -> float:
    """Seconds of audio in a WAV file, from its header."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def _file_facts(path: Path) -> tuple[float, int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    return wav_duration(path), size, digest.hexdigest()


class RecordingService:
    def __init__(self, db: Database, switch: Switch, audit: Audit, recordings_dir: Path) -> None:
        self._db = db
        self._switch = switch
        self._audit = audit
        self._dir = recordings_dir
        self.calls: LiveCalls | None = None  # set by bootstrap (the call service)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def recordings_dir(self) -> Path:
        return self._dir

    # ---- policies ------------------------------------------------------------------------

    async def policies(self) -> list[Policy]:
        async with self._db.connection() as conn:
            return await store.list_policies(conn)

    async def set_policy(self, scope: PolicyScope, name: str, policy: RecordingPolicy) -> Policy:
        async with self._db.connection() as conn:
            return await store.put_policy(conn, scope.value, name, policy.value)

    async def delete_policy(self, scope: PolicyScope, name: str) -> None:
        async with self._db.connection() as conn:
            if not await store.delete_policy(conn, scope.value, name):
                raise NotFound(f"no recording policy for {scope.value} {name}")

    async def policy_for(self, queue: str | None, agent_id: str | None) -> RecordingPolicy:
        async with self._db.connection() as conn:
            return effective_policy(await store.policies_for(conn, queue, agent_id))

    # ---- the call service's hook -----------------------------------------------------------

    def call_connected(self, call: LiveCall) -> None:
        """A queue call was bridged with an agent: record it if its policy says always. Runs on
        a task of its own, so the ACD never waits for Postgres or the switch here."""
        self._spawn(self._record_by_policy(call), f"recording-policy-{call.call_id}")

    async def _record_by_policy(self, call: LiveCall) -> None:
        # Never raises: a recording that cannot start must not disturb the call.
        try:
            if await self.policy_for(call.queue, call.agent_id) is RecordingPolicy.ALWAYS:
                await self._start(call, started_by="policy")
        except ControllerError as exc:
            log.error("call %s: recording by policy not started: %s", call.call_id, exc.detail,
                      extra={"call_id": call.call_id})

    # ---- control from the API ----------------------------------------------------------------

    async def control(self, call_id: str, action: RecordingAction) -> Recording:
        if action is RecordingAction.START:
            call = self.calls.connected_call(call_id) if self.calls is not None else None
            if call is None:
                raise NotFound(f"no connected call {call_id} on this controller")
            if await self.policy_for(call.queue, call.agent_id) is RecordingPolicy.NEVER:
                raise Conflict(f"call {call_id} may not be recorded (policy never)")
            return await self._start(call, started_by="api")
        async with self._db.connection() as conn:
            live = await store.live_of_call(conn, call_id)
        if live is None:
            raise Conflict(f"call {call_id} has no recording going on")
        if action is RecordingAction.STOP:
            await self._switch.execute(c.StopRecording(live.name))
            return live  # finished by the switch's RecordingFinished
        wanted, command = (("paused", c.PauseRecording(live.name)) if action is RecordingAction.PAUSE
                           else ("recording", c.ResumeRecording(live.name)))
        if live.state == wanted:
            return live  # idempotent
        await self._switch.execute(command)
        async with self._db.connection() as conn:
            updated = await store.set_state(conn, live.id, wanted)
        return updated or live

    async def _start(self, call: LiveCall, started_by: str) -> Recording:
        async with self._db.connection() as conn:
            if await store.live_of_call(conn, call.call_id) is not None:
                raise Conflict(f"call {call.call_id} is being recorded already")
        recording_id = uuid4()
        name = f"{NAME_PREFIX}{recording_id}"
        async with self._db.connection() as conn:
            recording = await store.insert_recording(
                conn, id=recording_id, name=name, call_id=call.call_id, bridge_id=call.bridge_id,
                queue=call.queue, agent_id=call.agent_id, caller_number=call.caller_number[:64],
                started_by=started_by, format=FORMAT, started_at=datetime.now(UTC))
        try:
            await self._switch.execute(c.Record(c.RecordingTarget.BRIDGE, call.bridge_id, name, FORMAT))
        except ControllerError as exc:
            await self._finish(name, "failed", None, f"not started: {exc.detail}")
            raise
        log.info("call %s: recording %s started (%s)", call.call_id, name, started_by,
                 extra={"call_id": call.call_id, "recording_id": str(recording_id)})
        return recording

    # ---- events from the switch ---------------------------------------------------------------

    @staticmethod
    def owns(event: e.Event) -> bool:
        return isinstance(event, e.RecordingFinished | e.RecordingFailed) \
            and event.recording_name.startswith(NAME_PREFIX)

    def submit(self, event: e.RecordingFinished | e.RecordingFailed) -> None:
        """Take a recording event (never blocks); its row is updated on a task of its own."""
        if isinstance(event, e.RecordingFinished):
            coro = self._finish(event.recording_name, "finished", event.at, None)
        else:
            coro = self._finish(event.recording_name, "failed", event.at, event.reason or "failed")
        self._spawn(coro, f"recording-{event.recording_name}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finished(self) -> None:
        """Wait for the events and connections taken so far to be handled (tests, shutdown)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.finished()

    async def _finish(self, name: str, state: str, at: datetime | None, error: str | None) -> None:
        duration = size = digest = None
        if state == "finished":
            try:
                duration, size, digest = await asyncio.to_thread(_file_facts, self._dir / f"{name}.{FORMAT}")
            except (OSError, EOFError, wave.Error) as exc:
                state, error = "failed", f"file unreadable: {exc}"
        try:
            async with self._db.connection() as conn:
                row = await store.finish(conn, name=name, state=state, ended_at=at or datetime.now(UTC),
                                         duration_s=duration, size_bytes=size, sha256=digest, error=error)
        except ControllerError as exc:
            log.error("recording %s: metadata not stored: %s", name, exc.detail)
            return
        if row is None:
            log.warning("recording %s finished but has no row", name)
            return
        log.info("recording %s %s", name, state, extra={"call_id": row.call_id, "recording_id": str(row.id),
                                                         "duration_s": duration, "error": error})

    # ---- reading, streaming, deleting -------------------------------------------------------

    async def list(self, filters: RecordingFilter) -> list[Recording]:
        async with self._db.connection() as conn:
            return await store.list_recordings(conn, filters)

    async def get(self, recording_id: UUID) -> Recording:
        async with self._db.connection() as conn:
            recording = await store.get_recording(conn, recording_id)
        if recording is None:
            raise NotFound(f"no recording {recording_id}")
        return recording

    async def audio(self, recording_id: UUID) -> AudioFile:
        """The finished recording's file; NotFound for no recording, AudioGone for no file."""
        recording = await self.get(recording_id)
        if recording.state in ("recording", "paused"):
            raise Conflict(f"recording {recording_id} is still going on")
        if recording.state == "failed":
            raise AudioGone(f"recording {recording_id} failed: {recording.error}")
        return open_audio(self._dir, recording.file_name, f"recording {recording_id}")

    async def delete(self, recording_id: UUID, reason: str) -> Recording:
        """Remove the file, mark the row deleted and write an audit record; NotFound if gone."""
        async with self._db.connection() as conn:
            recording = await store.mark_deleted(conn, recording_id)
            if recording is None:
                raise NotFound(f"no recording {recording_id}")
        path = self._dir / recording.file_name
        removed = False
        if path.resolve().parent == self._dir.resolve():
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("recording file not removed: %s", exc, extra={"recording_id": str(recording_id)})
        self._audit.record(AuditRow(
            at=datetime.now(UTC), key_id=None, key_name=None, role=None, method="DELETE",
            path=f"/v1/recordings/{recording_id}", action="recording_deleted", target=str(recording_id),
            status=204, client_ip=None, request_id=None,
            detail={"reason": reason, "file_removed": removed, "call_id": recording.call_id}))
        log.info("recording deleted (%s)", reason, extra={"recording_id": str(recording_id)})
        return recording

    async def expire(self, older_than_days: int) -> int:
        """Delete finished recordings started more than ``older_than_days`` days ago."""
        if older_than_days < 0:
            raise ValueError("older_than_days must be 0 or more")
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        deleted = 0
        while True:
            async with self._db.connection() as conn:
                ids = await store.expired(conn, cutoff, RETENTION_BATCH)
            for recording_id in ids:
                try:
                    await self.delete(recording_id, reason="retention")
                    deleted += 1
                except NotFound:
                    continue  # deleted meanwhile through the API
            if len(ids) < RETENTION_BATCH:
                break
        log.info("recordings expired", extra={"deleted": deleted, "cutoff": cutoff.isoformat()})
        return deleted
