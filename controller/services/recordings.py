"""Call recordings: started by policy when a call is connected with an agent, or through the API;
paused, resumed and stopped through the API; finished by the switch (or, when that was missed,
after a reconnect); listed, streamed, deleted and expired.

What is recorded. The recording follows the caller's leg (a click-to-dial's customer), not a
bridge: a snoop leg on it that hears both directions (``rec-<id hex>-mix``) is recorded into the
switch's spool as ``callrec-<id>.wav``. A snoop hangs on the leg itself, so whatever bridges the
leg goes through (a blind or attended transfer, a transfer back into a queue, hold) the call
stays one recording, one file, with what the caller heard meanwhile (music on hold, the queue's
announcements). It ends when the caller's leg ends or when stopped. (A recording of the call's
bridge, what was done before, ends as soon as the bridge is left without audio or destroyed, so
a transfer cut it short and a transfer to a queue split the call into unrelated recordings.)

Each party on its own channel (``dual_channel``): two more snoops record one direction each,
``-in`` (what the caller says) and ``-out`` (what the caller hears: the agents and anyone else
on the call). Once finished they are merged into one stereo WAV, ``callrec-<id>-dual.wav`` (left:
the caller, right: the others), and removed.

Snoop legs arrive in the Stasis application with the arguments ``("recording", <id>, <part>)``;
bootstrap hands their events (and every ``callrec-`` recording event) here, never to the call
service. When a part's RecordingFinished (or RecordingFailed) comes and no other part of the
recording is still live on the switch, the row is finished from the files: duration (WAV header),
size and SHA-256. :meth:`reconcile`, after every (re)connect, makes up for events that were
missed (the controller down or the ARI link away when the recording ended): a recording of this
controller process still marked in progress that the switch no longer records is finished from
its file on disk, or marked failed with the reason.

Pausing uses the switch's pause (not mute): the paused part is left out of every file.

Policy: an agent's policy wins over its campaign's, which wins over its queue's; with none,
recording is on demand (the API may start it). ``never`` refuses a start through the API as
well. A campaign's calls carry ``data["campaign"]`` (LiveCall.campaign), which selects the
campaign's policy (``PUT /v1/recording-policies/campaign/{id}``). The policy is applied when a recording would
start; a recording going on follows the call through transfers whatever the next agent's or
queue's policy says.

Who sees which recordings (:func:`visibility_of`): admins and integrations all; a supervisor key
all, or with queues only those of calls connected from those queues; an agent key those in which
its agent took part (connected to the call while it was recorded). The others are "not found",
as calls are for agent keys (services/call_records.py). Deleting (API or retention) removes the
files, marks the row deleted and writes an audit record naming who deleted it.

The public event feed is told ``recording.started``, ``.paused``, ``.resumed``, ``.stopped`` (asked
through the API), and ``.finished`` or ``.failed`` (the switch's word, with the file's facts).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import wave
from array import array
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.access import Principal, Role
from controller.domain.errors import (
    CommandRejected,
    Conflict,
    ControllerError,
    Forbidden,
    NotFound,
    SwitchError,
    SwitchUnavailable,
)
from controller.domain.feed import FeedEvent, Publish, Topic
from controller.services.voicemails import AudioFile, AudioGone, open_audio
from controller.storage import recordings as store
from controller.storage.db import Database
from controller.storage.recordings import FileFacts, Policy, Recording, RecordingFilter, Visibility
from controller.storage.records import AuditRow

log = logging.getLogger(__name__)

NAME_PREFIX = "callrec-"
LEG_PREFIX = "rec-"
ARGS_TAG = "recording"
FORMAT = "wav"
RETENTION_BATCH = 500
# How long a start waits for the switch to have every part recording (snoop leg up, recording on).
START_TIMEOUT_S = 5.0
MERGE_CHUNK_FRAMES = 8000


class RecordingPolicy(StrEnum):
    ALWAYS = "always"
    ON_DEMAND = "on_demand"
    NEVER = "never"


class PolicyScope(StrEnum):
    QUEUE = "queue"
    AGENT = "agent"
    CAMPAIGN = "campaign"


# Which policy wins when several apply to a call.
POLICY_PRECEDENCE = ("agent", "campaign", "queue")


class RecordingAction(StrEnum):
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"


class Part(StrEnum):
    """One switch recording of a call recording."""

    MIXED = "mix"  # both directions mixed: the recording's own file
    CALLER = "in"  # what the recorded leg says
    OTHERS = "out"  # what the recorded leg hears


_SPY = {Part.MIXED: c.SnoopDirection.BOTH, Part.CALLER: c.SnoopDirection.IN,
        Part.OTHERS: c.SnoopDirection.OUT}
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PART_NAME = re.compile(rf"{NAME_PREFIX}({_UUID})(?:-(in|out))?")
_SNOOP_LEG = re.compile(rf"{LEG_PREFIX}([0-9a-f]{{32}})-(mix|in|out)")


def part_name(recording_id: UUID, part: Part) -> str:
    """The switch's name for one part (its file is ``<name>.wav`` in the spool)."""
    base = f"{NAME_PREFIX}{recording_id}"
    return base if part is Part.MIXED else f"{base}-{part.value}"


def snoop_leg_id(recording_id: UUID, part: Part) -> str:
    return f"{LEG_PREFIX}{recording_id.hex}-{part.value}"


def parts_of(recording: Recording) -> tuple[Part, ...]:
    return (Part.MIXED, Part.CALLER, Part.OTHERS) if recording.dual_channel else (Part.MIXED,)


def parse_part_name(name: str) -> tuple[UUID, Part] | None:
    match = _PART_NAME.fullmatch(name)
    return None if match is None else (UUID(match[1]), Part(match[2] or Part.MIXED.value))


def parse_snoop_leg(leg_id: str) -> tuple[UUID, Part] | None:
    match = _SNOOP_LEG.fullmatch(leg_id)
    return None if match is None else (UUID(match[1]), Part(match[2]))


def is_recording_leg(leg: e.LegArrived) -> bool:
    """A snoop leg of a recording (never a call)."""
    return parse_snoop_leg(leg.leg_id) is not None or leg.args[:1] == (ARGS_TAG,)


class Switch(Protocol):
    async def execute(self, command: c.Command) -> None: ...

    async def recording_active(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class LiveCall:
    """What the recording service needs of a call connected with an agent."""

    call_id: str
    bridge_id: str | None
    leg_id: str  # the leg recorded: the caller's (a click-to-dial's customer's)
    queue: str | None
    agent_id: str | None  # the call's agent (whose policy applies)
    caller_number: str
    agents: tuple[str, ...] = ()  # every agent on the call now (a conference may have two)
    campaign: str | None = None  # a campaign call's campaign (call data "campaign"): policy hook


class LiveCalls(Protocol):
    def connected_call(self, call_id: str) -> LiveCall | None: ...


class Audit(Protocol):
    def record(self, row: AuditRow) -> None: ...


def winning_policy(policies: Iterable[Policy]) -> Policy | None:
    by_scope = {p.scope: p for p in policies}
    return next((by_scope[scope] for scope in POLICY_PRECEDENCE if scope in by_scope), None)


def effective_policy(policies: list[Policy]) -> RecordingPolicy:
    """The agent's policy if set, else the campaign's, else the queue's, else on demand."""
    won = winning_policy(policies)
    return RecordingPolicy(won.policy) if won is not None else RecordingPolicy.ON_DEMAND


def visibility_of(reader: Principal | None) -> Visibility | None:
    """Which recordings ``reader`` may see (None: none at all; no reader: all)."""
    if reader is None or reader.role in (Role.ADMIN, Role.INTEGRATION):
        return Visibility()
    if reader.role is Role.AGENT:
        return Visibility(agent=reader.agent_id) if reader.agent_id else None
    return Visibility(queues=reader.queue_scope)


# ---- files ---------------------------------------------------------------------------------


def wav_duration(path: Path) -> float:
    """Seconds of audio in a WAV file, from its header."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def _wav_seconds(path: Path, size: int) -> float:
    with wave.open(str(path), "rb") as wav:
        frames, rate = wav.getnframes(), wav.getframerate()
        frame_bytes = wav.getsampwidth() * wav.getnchannels()
    if frames == 0 and size > 44:
        # A file whose writer died before it updated the header (the switch crashed while
        # recording): count what is there, after the usual 44-byte header.
        frames = (size - 44) // frame_bytes
    return frames / float(rate)


def file_facts(path: Path) -> FileFacts:
    """Duration, size and SHA-256 of a WAV file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    return FileFacts(_wav_seconds(path, size), size, digest.hexdigest())


def merge_stereo(left: Path, right: Path, dest: Path) -> FileFacts:
    """One stereo WAV from two mono 16-bit WAVs of the same rate (the shorter padded with
    silence at its end). Samples are only interleaved, never computed, so byte order is moot."""
    tmp = dest.with_name(dest.name + ".tmp")
    with wave.open(str(left), "rb") as a, wave.open(str(right), "rb") as b:
        for wav, what in ((a, left.name), (b, right.name)):
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise ValueError(f"{what} is not mono 16-bit audio")
        if a.getframerate() != b.getframerate():
            raise ValueError(f"{left.name} and {right.name} have different sample rates")
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(a.getframerate())
            while True:
                x = array("h", a.readframes(MERGE_CHUNK_FRAMES))
                y = array("h", b.readframes(MERGE_CHUNK_FRAMES))
                if not x and not y:
                    break
                n = max(len(x), len(y))
                x.extend(array("h", bytes(2 * (n - len(x)))))
                y.extend(array("h", bytes(2 * (n - len(y)))))
                both = array("h", bytes(4 * n))
                both[0::2] = x
                both[1::2] = y
                out.writeframes(both.tobytes())
    tmp.replace(dest)
    return file_facts(dest)


@dataclass(frozen=True, slots=True)
class _PartEnd:
    state: str  # finished | failed
    at: datetime
    error: str | None


class _KeyedLocks:
    """One asyncio lock per key (a call, a recording), dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(key, None)


class RecordingService:
    def __init__(self, db: Database, switch: Switch, audit: Audit, recordings_dir: Path,
                 app: str = "") -> None:
        self._db = db
        self._switch = switch
        self._audit = audit
        self._dir = recordings_dir
        self._app = app  # this controller process's Stasis application
        self.calls: LiveCalls | None = None  # set by bootstrap (the call service)
        self.feed: Publish | None = None  # set by bootstrap (the public event feed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._arrivals: dict[str, asyncio.Future[str | None]] = {}  # snoop leg -> error or None
        self._ends: dict[UUID, dict[Part, _PartEnd]] = {}  # parts finished, for recordings going on
        self._per_call = _KeyedLocks()
        self._per_recording = _KeyedLocks()
        self.reconciliations = 0  # reconciles done (after each (re)connect); for tests and logs

    @property
    def recordings_dir(self) -> Path:
        return self._dir

    # ---- policies ------------------------------------------------------------------------

    async def policies(self) -> list[Policy]:
        async with self._db.connection() as conn:
            return await store.list_policies(conn)

    async def set_policy(self, scope: PolicyScope, name: str, policy: RecordingPolicy,
                         dual_channel: bool = False) -> Policy:
        async with self._db.connection() as conn:
            return await store.put_policy(conn, scope.value, name, policy.value, dual_channel)

    async def delete_policy(self, scope: PolicyScope, name: str) -> None:
        async with self._db.connection() as conn:
            if not await store.delete_policy(conn, scope.value, name):
                raise NotFound(f"no recording policy for {scope.value} {name}")

    async def policy_for(self, queue: str | None, agent_id: str | None,
                         campaign: str | None = None) -> RecordingPolicy:
        return (await self._policy_of(queue, agent_id, campaign))[0]

    async def _policy_of(self, queue: str | None, agent_id: str | None,
                         campaign: str | None) -> tuple[RecordingPolicy, bool]:
        async with self._db.connection() as conn:
            won = winning_policy(await store.policies_for(conn, queue, agent_id, campaign))
        if won is None:
            return RecordingPolicy.ON_DEMAND, False
        return RecordingPolicy(won.policy), won.dual_channel

    # ---- the call service's hook -----------------------------------------------------------

    def call_connected(self, call: LiveCall) -> None:
        """A call was connected with an agent (by the ACD, a transfer or a conference): a
        recording going on notes the agents and queue; else it starts if the policy says
        always. Runs on a task of its own, so the call never waits for Postgres or the switch."""
        self._spawn(self._connected(call), f"recording-call-{call.call_id}")

    async def _connected(self, call: LiveCall) -> None:
        # Never raises: a recording that cannot start must not disturb the call.
        try:
            async with self._per_call.hold(call.call_id):
                async with self._db.connection() as conn:
                    live = await store.live_of_call(conn, call.call_id)
                    if live is not None:
                        await store.add_participants(conn, live.id, call.agents,
                                                     (call.queue,) if call.queue else ())
                        return
                policy, dual = await self._policy_of(call.queue, call.agent_id, call.campaign)
                if policy is RecordingPolicy.ALWAYS:
                    await self._start(call, "policy", dual)
        except ControllerError as exc:
            log.error("call %s: recording by policy not started: %s", call.call_id, exc.detail,
                      extra={"call_id": call.call_id})

    # ---- control from the API ----------------------------------------------------------------

    async def control(self, call_id: str, action: RecordingAction, actor: Principal | None = None,
                      dual_channel: bool | None = None) -> Recording:
        """Start, stop, pause or resume the recording of a call. An agent key acts on its own
        agent's calls only, a supervisor key limited to queues on calls of those queues
        (Forbidden otherwise, as for the rest of call control)."""
        async with self._per_call.hold(call_id):
            call = self.calls.connected_call(call_id) if self.calls is not None else None
            if action is RecordingAction.START:
                if call is None:
                    raise NotFound(f"no connected call {call_id} on this controller")
                _check_actor(actor, call, None)
                policy, dual = await self._policy_of(call.queue, call.agent_id, call.campaign)
                if policy is RecordingPolicy.NEVER:
                    raise Conflict(f"call {call_id} may not be recorded (policy never)")
                return await self._start(call, "api", dual if dual_channel is None else dual_channel)
            async with self._db.connection() as conn:
                live = await store.live_of_call(conn, call_id)
            if live is None:
                raise Conflict(f"call {call_id} has no recording going on")
            _check_actor(actor, call, live)
            names = [part_name(live.id, part) for part in parts_of(live)]
            if action is RecordingAction.STOP:
                for name in names:
                    with contextlib.suppress(CommandRejected):  # it ended by itself meanwhile
                        await self._switch.execute(c.StopRecording(name))
                await self._hang_up_snoops(live)
                self._tell("recording.stopped", live)
                return live  # finished by the switch's RecordingFinished
            wanted = "paused" if action is RecordingAction.PAUSE else "recording"
            if live.state == wanted:
                return live  # idempotent
            # Every part, or the paused words would stay in the per-party file.
            for name in names:
                await self._switch.execute(c.PauseRecording(name) if action is RecordingAction.PAUSE
                                           else c.ResumeRecording(name))
            async with self._db.connection() as conn:
                updated = await store.set_state(conn, live.id, wanted)
            recording = updated or live
            self._tell("recording.paused" if action is RecordingAction.PAUSE else "recording.resumed",
                       recording)
            return recording

    async def _start(self, call: LiveCall, started_by: str, dual: bool) -> Recording:
        async with self._db.connection() as conn:
            if await store.live_of_call(conn, call.call_id) is not None:
                raise Conflict(f"call {call.call_id} is being recorded already")
            recording_id = uuid4()
            recording = await store.insert_recording(
                conn, id=recording_id, name=part_name(recording_id, Part.MIXED), call_id=call.call_id,
                bridge_id=call.bridge_id, leg_id=call.leg_id, app=self._app or None, queue=call.queue,
                agent_id=call.agent_id, agents=call.agents or ((call.agent_id,) if call.agent_id else ()),
                queues=(call.queue,) if call.queue else (), campaign=call.campaign,
                caller_number=call.caller_number[:64], started_by=started_by, format=FORMAT,
                started_at=datetime.now(UTC), dual_channel=dual)
        parts = parts_of(recording)
        loop = asyncio.get_running_loop()
        waiting = {snoop_leg_id(recording_id, part): loop.create_future() for part in parts}
        self._arrivals.update(waiting)
        try:
            for part in parts:
                await self._switch.execute(c.Snoop(
                    leg_id=call.leg_id, snoop_id=snoop_leg_id(recording_id, part), spy=_SPY[part],
                    args=(ARGS_TAG, str(recording_id), part.value)))
            async with asyncio.timeout(START_TIMEOUT_S):
                errors = [error for error in await asyncio.gather(*waiting.values()) if error]
            if errors:
                raise CommandRejected(errors[0])
        except (ControllerError, TimeoutError) as exc:
            detail = exc.detail if isinstance(exc, ControllerError) else (
                f"the switch did not start it within {START_TIMEOUT_S:g} s")
            await self._hang_up_snoops(recording)
            async with self._db.connection() as conn:
                await store.finish(conn, recording_id=recording_id, state="failed",
                                   ended_at=datetime.now(UTC), facts=None, error=f"not started: {detail}")
            if isinstance(exc, ControllerError):
                raise
            raise SwitchUnavailable(detail) from exc
        finally:
            for leg_id in waiting:
                self._arrivals.pop(leg_id, None)
        log.info("call %s: recording %s started (%s%s)", call.call_id, recording.name, started_by,
                 ", each party on its own channel too" if dual else "",
                 extra={"call_id": call.call_id, "recording_id": str(recording_id)})
        self._tell("recording.started", recording)
        return recording

    async def _hang_up_snoops(self, recording: Recording) -> None:
        for part in parts_of(recording):
            with contextlib.suppress(ControllerError):  # gone already: that is the point
                await self._switch.execute(c.Hangup(snoop_leg_id(recording.id, part)))

    # ---- events from the switch ---------------------------------------------------------------

    @staticmethod
    def owns(event: e.Event) -> bool:
        """A recording event of a call recording (not of a voicemail)."""
        return isinstance(event, e.RecordingFinished | e.RecordingFailed) \
            and parse_part_name(event.recording_name) is not None

    def take(self, event: e.Event) -> bool:
        """Look at one switch event (never blocks); True if it is this service's (a call
        recording's event, or an event of a recording's snoop leg), so no call sees it."""
        if isinstance(event, e.RecordingFinished | e.RecordingFailed):
            parsed = parse_part_name(event.recording_name)
            if parsed is None:
                return False
            state, error = (("finished", None) if isinstance(event, e.RecordingFinished)
                            else ("failed", event.reason or "failed"))
            self._spawn(self._part_ended(*parsed, _PartEnd(state, event.at, error)),
                        f"recording-{event.recording_name}")
            return True
        leg_id = e.leg_of(event)
        if leg_id is None:
            return False
        if isinstance(event, e.LegArrived):
            if not is_recording_leg(event):
                return False
            self._spawn(self._snoop_arrived(event.leg_id), f"recording-leg-{leg_id}")
            return True
        if parse_snoop_leg(leg_id) is None:
            return False
        waiting = self._arrivals.get(leg_id)
        if isinstance(event, e.LegHungUp) and waiting is not None and not waiting.done():
            waiting.set_result("the leg to record has gone")
        return True

    async def _snoop_arrived(self, leg_id: str) -> None:
        parsed = parse_snoop_leg(leg_id)
        waiting = self._arrivals.get(leg_id)
        if parsed is None or waiting is None:
            # A snoop leg nobody here waits for (its start gave up, or a previous run's).
            log.warning("recording leg %s belongs to no recording being started; hanging it up", leg_id)
            with contextlib.suppress(ControllerError):
                await self._switch.execute(c.Hangup(leg_id))
            return
        recording_id, part = parsed
        error: str | None = None
        try:
            await self._switch.execute(c.Record(c.RecordingTarget.LEG, leg_id, part_name(recording_id, part),
                                                FORMAT))
        except ControllerError as exc:
            error = exc.detail
        if not waiting.done():
            waiting.set_result(error)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finished(self) -> None:
        """Wait for the events and connections taken so far to be handled (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.finished()

    async def _part_ended(self, recording_id: UUID, part: Part, end: _PartEnd) -> None:
        try:
            async with self._per_recording.hold(str(recording_id)):
                async with self._db.connection() as conn:
                    recording = await store.get_recording(conn, recording_id)
                if recording is None or not recording.in_progress:
                    return  # finished already (a reconcile), or deleted
                ends = self._ends.setdefault(recording_id, {})
                ends[part] = end
                for other in parts_of(recording):
                    if other not in ends and await self._still_recording(part_name(recording_id, other)):
                        return  # its own event finishes the recording
                await self._finish(recording, ends, recovered=False)
        except ControllerError as exc:
            log.error("recording %s: metadata not stored: %s", part_name(recording_id, part), exc.detail,
                      extra={"recording_id": str(recording_id)})

    async def _still_recording(self, name: str) -> bool:
        try:
            return await self._switch.recording_active(name)
        except SwitchError:
            return True  # cannot tell now; its event, or the next reconcile, finishes it

    async def _finish(self, recording: Recording, ends: dict[Part, _PartEnd], recovered: bool) -> None:
        """Finish a recording's row from its files (every part has ended)."""
        self._ends.pop(recording.id, None)
        path = self._dir / recording.file_name
        mixed = ends.get(Part.MIXED)
        why = "it ended while the controller was not connected; " if recovered else ""
        state, error, facts = "finished", None, None
        if mixed is not None and mixed.state == "failed":
            state, error = "failed", mixed.error
        else:
            try:
                facts = await asyncio.to_thread(file_facts, path)
            except (OSError, EOFError, wave.Error) as exc:
                state, error = "failed", f"{why}file missing or unreadable: {exc}"
        dual, dual_error = None, None
        if recording.dual_channel:
            dual, dual_error = await self._merge(recording, ends)
        ended_at = mixed.at if mixed is not None else _modified(path) or datetime.now(UTC)
        async with self._db.connection() as conn:
            row = await store.finish(conn, recording_id=recording.id, state=state, ended_at=ended_at,
                                     facts=facts, error=error, dual=dual, dual_error=dual_error)
        if row is not None:
            log.info("recording %s %s%s", recording.name, state, " (recovered)" if recovered else "",
                     extra={"call_id": row.call_id, "recording_id": str(row.id), "error": error,
                            "duration_s": facts.duration_s if facts else None, "dual_error": dual_error})
            self._tell("recording.finished" if state == "finished" else "recording.failed", row)

    async def _merge(self, recording: Recording,
                     ends: dict[Part, _PartEnd]) -> tuple[FileFacts | None, str | None]:
        failed = [ends[p].error for p in (Part.CALLER, Part.OTHERS)
                  if p in ends and ends[p].state == "failed"]
        if failed:
            return None, f"a channel failed: {failed[0]}"
        left = self._dir / f"{part_name(recording.id, Part.CALLER)}.{FORMAT}"
        right = self._dir / f"{part_name(recording.id, Part.OTHERS)}.{FORMAT}"
        try:
            facts = await asyncio.to_thread(merge_stereo, left, right, self._dir / recording.dual_file_name)
        except (OSError, EOFError, wave.Error, ValueError) as exc:
            return None, f"not merged: {exc}"
        for path in (left, right):
            with contextlib.suppress(OSError):
                path.unlink()
        return facts, None

    # ---- after every (re)connect ---------------------------------------------------------------

    async def reconcile(self, legs_on_switch: Iterable[e.LegArrived]) -> None:
        """Finish the recordings this process left in progress that the switch no longer records
        (their end was missed), and hang up snoop legs that record nothing any more."""
        snoops = {leg.leg_id for leg in legs_on_switch if is_recording_leg(leg)}
        try:
            async with self._db.connection() as conn:
                rows = await store.in_progress(conn, self._app)
        except ControllerError as exc:
            log.error("recordings not reconciled (they will be after the next reconnect): %s", exc.detail)
            self.reconciliations += 1
            return
        keep = set(self._arrivals)  # starting right now
        recovered = 0
        for row in rows:
            try:
                live = [part for part in parts_of(row)
                        if await self._switch.recording_active(part_name(row.id, part))]
            except SwitchError as exc:
                log.warning("recording %s not reconciled: %s", row.name, exc.detail)
                keep.update(snoop_leg_id(row.id, part) for part in parts_of(row))
                continue
            if live:
                keep.update(snoop_leg_id(row.id, part) for part in parts_of(row))
                continue
            try:
                async with self._per_recording.hold(str(row.id)):
                    async with self._db.connection() as conn:
                        fresh = await store.get_recording(conn, row.id)
                    if fresh is not None and fresh.in_progress:
                        await self._finish(fresh, self._ends.get(row.id, {}), recovered=True)
                        recovered += 1
            except ControllerError as exc:
                log.error("recording %s not reconciled: %s", row.name, exc.detail)
        for leg_id in snoops - keep:
            with contextlib.suppress(ControllerError):
                await self._switch.execute(c.Hangup(leg_id))
        self.reconciliations += 1
        if rows or snoops:
            log.warning("recordings reconciled: %d in progress, %d finished from their files, %d snoop "
                        "legs hung up", len(rows), recovered, len(snoops - keep))

    def _tell(self, kind: str, recording: Recording) -> None:
        if self.feed is None:
            return
        data = {"recording_id": str(recording.id), "name": recording.name, "call_id": recording.call_id,
                "state": recording.state, "started_by": recording.started_by, "queue": recording.queue,
                "agent_id": recording.agent_id, "format": recording.format,
                "started_at": recording.started_at.isoformat(),
                "ended_at": recording.ended_at.isoformat() if recording.ended_at else None,
                "duration_s": recording.duration_s, "size_bytes": recording.size_bytes,
                "sha256": recording.sha256, "error": recording.error}
        # Everyone who took part sees it (the agents after a transfer too), as on /v1/recordings.
        first_agent = (recording.agent_id,) if recording.agent_id else ()
        first_queue = (recording.queue,) if recording.queue else ()
        agents = tuple(dict.fromkeys((*first_agent, *recording.agents)))
        queues = tuple(dict.fromkeys((*first_queue, *recording.queues)))
        self.feed(FeedEvent(Topic.RECORDINGS, kind, data, call_id=recording.call_id, agents=agents,
                            queues=queues))

    # ---- reading, streaming, deleting -------------------------------------------------------

    async def list(self, filters: RecordingFilter, reader: Principal | None = None) -> list[Recording]:
        visibility = visibility_of(reader)
        if visibility is None:
            return []
        async with self._db.connection() as conn:
            return await store.list_recordings(conn, filters, visibility)

    async def get(self, recording_id: UUID, reader: Principal | None = None) -> Recording:
        visibility = visibility_of(reader)
        recording = None
        if visibility is not None:
            async with self._db.connection() as conn:
                recording = await store.get_recording(conn, recording_id, visibility)
        if recording is None:
            raise NotFound(f"no recording {recording_id}")
        return recording

    async def audio(self, recording_id: UUID, reader: Principal | None = None,
                    dual: bool = False) -> AudioFile:
        """The finished recording's file (``dual``: its stereo file); NotFound for no recording
        (or one the reader may not see), AudioGone for no file."""
        recording = await self.get(recording_id, reader)
        if recording.in_progress:
            raise Conflict(f"recording {recording_id} is still going on")
        if recording.state == "failed":
            raise AudioGone(f"recording {recording_id} failed: {recording.error}")
        if not dual:
            return open_audio(self._dir, recording.file_name, f"recording {recording_id}")
        if not recording.dual_channel:
            raise NotFound(f"recording {recording_id} has no file with each party on its own channel")
        if recording.dual_sha256 is None:
            raise AudioGone(f"the stereo file of recording {recording_id} was not made: "
                            f"{recording.dual_error}")
        return open_audio(self._dir, recording.dual_file_name, f"recording {recording_id} (stereo)")

    async def delete(self, recording_id: UUID, reason: str, by: Principal | None = None) -> Recording:
        """Remove the files, mark the row deleted and write an audit record; NotFound if gone
        (or not visible to ``by``), Conflict while it is still going on."""
        visibility = visibility_of(by)
        recording = None
        if visibility is not None:
            async with self._db.connection() as conn:
                found = await store.get_recording(conn, recording_id, visibility)
                if found is not None and found.in_progress:
                    raise Conflict(f"recording {recording_id} is still going on; stop it first")
                recording = await store.mark_deleted(conn, recording_id, visibility)
        if recording is None:
            raise NotFound(f"no recording {recording_id}")
        names = [recording.file_name, recording.dual_file_name,
                 *(f"{part_name(recording.id, p)}.{recording.format}" for p in (Part.CALLER, Part.OTHERS))]
        removed = [name for name in names if self._remove(recording, name)]
        self._audit.record(AuditRow(
            at=datetime.now(UTC), key_id=by.key_id if by else None, key_name=by.key_name if by else None,
            role=by.role.value if by else None, method="DELETE", path=f"/v1/recordings/{recording_id}",
            action="recording_deleted", target=str(recording_id), status=204, client_ip=None, request_id=None,
            detail={"reason": reason, "file_removed": recording.file_name in removed,
                    "call_id": recording.call_id, "files_removed": removed}))
        log.info("recording deleted (%s)", reason, extra={"recording_id": str(recording_id)})
        return recording

    def _remove(self, recording: Recording, file_name: str) -> bool:
        path = self._dir / file_name
        if path.resolve().parent != self._dir.resolve():
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("recording file %s not removed: %s", file_name, exc,
                        extra={"recording_id": str(recording.id)})
            return False
        return True

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


def _check_actor(actor: Principal | None, call: LiveCall | None, recording: Recording | None) -> None:
    if actor is None or actor.role in (Role.ADMIN, Role.INTEGRATION):
        return
    if actor.role is Role.AGENT:
        agents = set(call.agents if call else ()) | set(recording.agents if recording else ())
        if actor.agent_id is None or actor.agent_id not in agents:
            raise Forbidden("an agent key controls the recording of its own agent's calls only")
        return
    scope = actor.queue_scope
    if scope is not None:
        queues = ({call.queue} if call is not None and call.queue else set()) | set(
            recording.queues if recording else ())
        if not queues & set(scope):
            raise Forbidden(f"this supervisor key oversees the queues {', '.join(scope)} only")


def _modified(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None

