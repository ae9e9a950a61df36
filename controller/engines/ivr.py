"""The IVR engine: runs a parsed flow (docs/flows.md) on one caller leg, one event at a time.

Pure: ``start`` and ``on_event`` take the flow, the state, the instant ``now``, the schedules and
an id source, and return the next state with the commands to run. No clock, no I/O, no
randomness, so a flow can be replayed and tested exactly.

How a node runs. Each node is entered once per visit; nodes that wait (prompts playing, a
timer for the caller's digits, an HTTP lookup, a transfer, a recording) keep the id of what they
wait for in the state, and an event carrying any other id is stale and ignored. ``condition``
and ``set`` nodes do not wait: the engine walks through them in the same step (with a bound,
so a loop of them that the validator could not rule out hangs up instead of spinning).

Menus and collects: the prompts play (a digit interrupts them when ``barge_in``), then a timer
runs for the caller's input; at most one timer is ever active and it is cancelled before the
next starts. A wrong or missing answer is a failed attempt: after ``retries`` attempts the
flow goes to ``on_failure`` (or hangs up), otherwise the invalid/timeout prompts play and the
node's prompts play again.

The flow finishes with ``FlowFinished(outcome)``. After that only one thing can still happen:
a voicemail the caller ended by hanging up (the normal way) has its ``RecordingFinished`` still
to come, which produces ``StoreVoicemail``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.flows import (
    PROMPT_NAME,
    SAY_VALUE,
    SOUND_NAME,
    VARIABLE,
    CallerPrefixTest,
    CollectNode,
    ConditionNode,
    DataTest,
    DialedTest,
    Flow,
    HangupNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    Schedule,
    ScheduleTest,
    SetNode,
    Test,
    TransferNode,
    VoicemailNode,
)
from controller.engines.schedule import is_open

Ids = Callable[[str], str]
# Nodes the engine may pass through without waiting, in one step, before it gives up.
MAX_HOPS = 100
# Nodes kept in the state's path (the latest ones): what an agent's screen pop shows.
MAX_PATH = 50


class Phase(StrEnum):
    PLAYING = "playing"  # a play node's prompts
    PROMPT = "prompt"  # a menu or collect node's prompts
    FEEDBACK = "feedback"  # invalid/timeout prompts, then the node's prompts again
    INPUT = "input"  # waiting for digits, a timer running
    LOOKUP = "lookup"
    TRANSFER = "transfer"
    VM_PROMPT = "vm-prompt"  # a voicemail node's prompts, before the beep
    RECORDING = "recording"
    GOODBYE = "goodbye"  # a hangup node's prompts
    DONE = "done"


class Outcome(StrEnum):
    HANGUP = "hangup"  # a hangup node (or a voicemail/transfer with nowhere to go next)
    CALLER_HANGUP = "caller-hangup"
    QUEUED = "queued"
    TRANSFERRED = "transferred"
    VOICEMAIL = "voicemail"  # the caller left a message and hung up (or pressed # at the end)
    FAILED = "failed"  # retries used up with no on_failure, a failed transfer or recording, a loop


@dataclass(frozen=True, slots=True)
class IvrState:
    leg_id: str
    node: str
    phase: Phase
    attempts: int = 0  # failed attempts at the current node (menu, collect), reset on entry
    digits: str = ""  # collected so far at the current collect node
    playback_id: str | None = None
    timer_id: str | None = None
    lookup_id: str | None = None
    transfer_id: str | None = None
    recording: str | None = None  # the voicemail recording under way (also after finished)
    data: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    outcome: str = ""
    # For the agent who takes the call (screen pop): the nodes entered, in order, and which
    # variables came from the caller's digits and from lookups.
    path: tuple[str, ...] = ()
    collected: tuple[str, ...] = ()
    looked_up: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IvrDecision:
    state: IvrState
    commands: tuple[c.FlowCommand, ...] = ()


def state_to_dict(state: IvrState) -> dict[str, Any]:
    """A JSON-ready copy of the state (for Redis, to adopt the call after a restart)."""
    out = dataclasses.asdict(state)
    out["phase"] = state.phase.value
    for name in ("path", "collected", "looked_up"):
        out[name] = list(out[name])
    return out


def state_from_dict(d: Mapping[str, Any]) -> IvrState:
    """The state ``state_to_dict`` saved (keys this version does not know are dropped)."""
    known = {f.name for f in dataclasses.fields(IvrState)}
    values = {key: value for key, value in d.items() if key in known}
    values["phase"] = Phase(values["phase"])
    values["data"] = {str(k): str(v) for k, v in dict(values.get("data", {})).items()}
    for name in ("path", "collected", "looked_up"):
        values[name] = tuple(str(item) for item in values.get(name, ()))
    return IvrState(**values)


def start(
    flow: Flow,
    leg_id: str,
    data: dict[str, str],
    *,
    now: datetime,
    schedules: Mapping[str, Schedule],
    ids: Ids,
) -> IvrDecision:
    """Run the flow from its start node on an answered leg with the call's initial data."""
    run = _Run(flow, now, schedules, ids)
    state = IvrState(leg_id=leg_id, node=flow.start, phase=Phase.PLAYING, data=dict(data))
    return run.decision(_enter(run, state, flow.start))


def on_event(
    flow: Flow,
    state: IvrState,
    event: e.Event | e.ServiceEvent,
    *,
    now: datetime,
    schedules: Mapping[str, Schedule],
    ids: Ids,
) -> IvrDecision:
    run = _Run(flow, now, schedules, ids)
    if state.finished:
        return run.decision(_after_finish(run, state, event))
    if isinstance(event, (e.RecordingFinished, e.RecordingFailed)):
        if event.recording_name != state.recording:
            return run.decision(state)
        return run.decision(_recording_ended(run, state, event))
    if getattr(event, "leg_id", None) != state.leg_id:
        return run.decision(state)
    match event:
        case e.LegHungUp():
            outcome = Outcome.VOICEMAIL if state.recording is not None else Outcome.CALLER_HANGUP
            return run.decision(_finish(run, state, outcome, hangup=False, stop_playback=False))
        case e.PlaybackFinished() if state.playback_id is not None:
            if event.playback_id != state.playback_id:
                return run.decision(state)
            return run.decision(_after_playback(run, replace(state, playback_id=None)))
        case e.DtmfReceived():
            return run.decision(_dtmf(run, state, event.digit))
        case e.TimerFired() if state.timer_id is not None and event.timer_id == state.timer_id:
            return run.decision(_timer_fired(run, replace(state, timer_id=None)))
        case e.LookupFinished() if state.lookup_id is not None and event.request_id == state.lookup_id:
            return run.decision(_lookup_finished(run, replace(state, lookup_id=None), event))
        case e.TransferFinished() if state.transfer_id is not None and event.transfer_id == state.transfer_id:
            return run.decision(_transfer_finished(run, replace(state, transfer_id=None), event.answered))
        case e.LegJoinedBridge() if state.phase is Phase.TRANSFER:
            # The caller is bridged to the transfer's answered leg: the flow's part is over.
            return run.decision(_finish(run, replace(state, transfer_id=None), Outcome.TRANSFERRED))
    return run.decision(state)


def render_media(items: list[str], data: Mapping[str, str]) -> tuple[str, ...]:
    """Media URIs for the switch: ``${var}`` replaced (unknown → empty), bare names made
    ``prompt:``, dates expanded into say sounds. An item whose value is empty or unsafe after
    substitution (a lookup answer is not trusted) is left out."""
    out: list[str] = []
    for item in items:
        kind, sep, template = item.partition(":")
        if not sep or kind not in ("prompt", "sound", "digits", "number", "characters", "date", "tone"):
            kind, template = "prompt", item
        value = substitute(template, data)
        if kind == "prompt" and PROMPT_NAME.fullmatch(value):
            out.append(f"prompt:{value}")
        elif kind == "sound" and SOUND_NAME.fullmatch(value) and ".." not in value:
            out.append(f"sound:{value}")
        elif kind == "date":
            out += _say_date(value)
        elif kind in SAY_VALUE and SAY_VALUE[kind].fullmatch(value):
            out.append(f"{kind}:{value}")
    return tuple(out)


def substitute(template: str, data: Mapping[str, str]) -> str:
    return VARIABLE.sub(lambda m: data.get(m.group(1), ""), template)


def evaluate(test: Test, data: Mapping[str, str], now: datetime, schedules: Mapping[str, Schedule]) -> bool:
    """Whether a condition test holds. A schedule unknown at run time never holds (so the
    flow takes ``else``: a deleted schedule does not shut the lines)."""
    match test:
        case ScheduleTest():
            schedule = schedules.get(test.schedule)
            return schedule is not None and is_open(schedule, now) == test.open
        case DataTest():
            value = data.get(test.data)
            if test.equals is not None:
                return value == test.equals
            if test.in_ is not None:
                return value in test.in_
            return bool(value) == bool(test.present)
        case CallerPrefixTest():
            return data.get("caller_number", "").startswith(test.caller_number_prefix)
        case DialedTest():
            return data.get("dialed", "") == test.dialed
    return False


# --- the steps ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """One step's inputs and the commands it gathers."""

    flow: Flow
    now: datetime
    schedules: Mapping[str, Schedule]
    ids: Ids
    commands: list[c.FlowCommand] = field(default_factory=list)
    hops: int = 0

    def emit(self, *commands: c.FlowCommand) -> None:
        self.commands.extend(commands)

    def decision(self, state: IvrState) -> IvrDecision:
        return IvrDecision(state, tuple(self.commands))


def _enter(run: _Run, state: IvrState, name: str) -> IvrState:
    run.hops += 1
    state = replace(_quiet(run, state), node=name, attempts=0, digits="",
                    path=(*state.path, name)[-MAX_PATH:])
    if run.hops > MAX_HOPS:
        return _finish(run, state, Outcome.FAILED, hangup=True)
    node = run.flow.nodes[name]
    leg = state.leg_id
    match node:
        case PlayNode():
            return _play(run, state, node.prompts, Phase.PLAYING)
        case MenuNode() | CollectNode():
            return _play(run, state, node.prompts, Phase.PROMPT)
        case LookupNode():
            request_id = run.ids("lookup")
            params = dict(state.data)
            params.setdefault("caller_number", "")
            params.setdefault("dialed", "")
            run.emit(c.HttpLookup(request_id, leg, node.url, params, node.timeout_s))
            return replace(state, phase=Phase.LOOKUP, lookup_id=request_id)
        case ConditionNode():
            for test in node.when:
                if evaluate(test, state.data, run.now, run.schedules):
                    return _enter(run, state, test.next)
            return _enter(run, state, node.else_)
        case SetNode():
            updates = {key: substitute(value, state.data) for key, value in node.values.items()}
            return _enter(run, _update_data(run, state, updates), node.next)
        case QueueNode():
            run.emit(c.EnterQueue(leg, node.queue, node.priority, dict(node.skills), dict(state.data)))
            return _finish(run, state, Outcome.QUEUED, hangup=False)
        case TransferNode():
            transfer_id = run.ids("xfer")
            run.emit(c.TransferCall(transfer_id, leg, substitute(node.to, state.data), node.timeout_s))
            return replace(state, phase=Phase.TRANSFER, transfer_id=transfer_id)
        case VoicemailNode():
            return _play(run, state, node.prompts, Phase.VM_PROMPT)
        case HangupNode():
            return _play(run, state, node.prompts, Phase.GOODBYE)
    raise AssertionError(f"unknown node {node!r}")  # pragma: no cover - parse_flow rules it out


def _play(run: _Run, state: IvrState, items: list[str], phase: Phase) -> IvrState:
    media = render_media(items, state.data)
    if not media:
        return _after_playback(run, replace(state, phase=phase, playback_id=None))
    playback_id = run.ids("pb")
    run.emit(c.Play(state.leg_id, playback_id, media))
    return replace(state, phase=phase, playback_id=playback_id)


def _after_playback(run: _Run, state: IvrState) -> IvrState:
    node = run.flow.nodes[state.node]
    match state.phase:
        case Phase.PLAYING:
            assert isinstance(node, PlayNode)
            return _enter(run, state, node.next)
        case Phase.FEEDBACK:
            assert isinstance(node, (MenuNode, CollectNode))
            return _play(run, state, node.prompts, Phase.PROMPT)
        case Phase.PROMPT:
            return _start_timer(run, replace(state, phase=Phase.INPUT))
        case Phase.VM_PROMPT:
            assert isinstance(node, VoicemailNode)
            name = run.ids("vm")
            run.emit(
                c.Record(
                    c.RecordingTarget.LEG,
                    state.leg_id,
                    name,
                    format="wav",
                    max_duration_s=node.max_duration_s,
                    beep=True,
                )
            )
            return replace(state, phase=Phase.RECORDING, recording=name)
        case Phase.GOODBYE:
            return _finish(run, state, Outcome.HANGUP, hangup=True)
    return state


def _start_timer(run: _Run, state: IvrState) -> IvrState:
    node = run.flow.nodes[state.node]
    assert isinstance(node, (MenuNode, CollectNode))
    if state.timer_id is not None:
        run.emit(c.CancelTimer(state.timer_id))
    timer_id = run.ids("timer")
    run.emit(c.StartTimer(timer_id, state.leg_id, node.timeout_s))
    return replace(state, timer_id=timer_id)


def _dtmf(run: _Run, state: IvrState, digit: str) -> IvrState:
    node = run.flow.nodes[state.node]
    if len(digit) != 1:
        return state
    if state.phase is Phase.RECORDING:
        if digit == "#" and state.recording is not None:
            run.emit(c.StopRecording(state.recording))
        return state
    if not isinstance(node, (MenuNode, CollectNode)):
        return state
    if state.phase in (Phase.PROMPT, Phase.FEEDBACK):
        if not node.barge_in or state.playback_id is None:
            return state
        run.emit(c.StopPlayback(state.playback_id))
        state = replace(state, playback_id=None, phase=Phase.INPUT)
    if state.phase is not Phase.INPUT:
        return state
    if isinstance(node, MenuNode):
        target = node.options.get(digit)
        if target is None:
            return _fail(run, state, timeout=False)
        return _enter(run, replace(state, attempts=0), target)
    if node.terminator and digit == node.terminator:
        return _end_collect(run, state)
    state = replace(state, digits=state.digits + digit)
    if len(state.digits) >= node.max_digits:
        return _end_collect(run, state)
    return _start_timer(run, state)


def _timer_fired(run: _Run, state: IvrState) -> IvrState:
    node = run.flow.nodes[state.node]
    if state.phase is not Phase.INPUT:
        return state
    if isinstance(node, CollectNode) and (state.digits or node.min_digits == 0):
        return _end_collect(run, state)
    return _fail(run, state, timeout=True)


def _end_collect(run: _Run, state: IvrState) -> IvrState:
    node = run.flow.nodes[state.node]
    assert isinstance(node, CollectNode)
    state = _quiet(run, state)
    value = state.digits
    valid = node.min_digits <= len(value) <= node.max_digits
    if valid and node.pattern is not None:
        valid = re.fullmatch(node.pattern, value) is not None
    if not valid:
        return _fail(run, state, timeout=False)
    state = _update_data(run, state, {node.variable: value})
    return _enter(run, replace(state, collected=_added(state.collected, (node.variable,))), node.next)


def _fail(run: _Run, state: IvrState, *, timeout: bool) -> IvrState:
    """One failed attempt at a menu or collect: try again, or give up after ``retries``."""
    node = run.flow.nodes[state.node]
    assert isinstance(node, (MenuNode, CollectNode))
    state = replace(_quiet(run, state), attempts=state.attempts + 1, digits="")
    if state.attempts >= node.retries:
        if node.on_failure is not None:
            return _enter(run, state, node.on_failure)
        return _finish(run, state, Outcome.FAILED, hangup=True)
    feedback = node.timeout_prompts if timeout else node.invalid_prompts
    return _play(run, state, feedback, Phase.FEEDBACK)


def _lookup_finished(run: _Run, state: IvrState, event: e.LookupFinished) -> IvrState:
    node = run.flow.nodes[state.node]
    assert isinstance(node, LookupNode)
    if not event.ok:
        return _enter(run, state, node.on_failure or node.next)
    updates = {key: str(event.fields[name]) for key, name in node.fields.items() if name in event.fields}
    state = replace(_update_data(run, state, updates), looked_up=_added(state.looked_up, tuple(updates)))
    return _enter(run, state, node.next)


def _transfer_finished(run: _Run, state: IvrState, answered: bool) -> IvrState:
    node = run.flow.nodes[state.node]
    assert isinstance(node, TransferNode)
    if answered:
        return _finish(run, state, Outcome.TRANSFERRED)
    if node.on_failure is not None:
        return _enter(run, state, node.on_failure)
    return _finish(run, state, Outcome.FAILED, hangup=True)


def _recording_ended(run: _Run, state: IvrState, event: e.RecordingFinished | e.RecordingFailed) -> IvrState:
    node = run.flow.nodes[state.node]
    assert isinstance(node, VoicemailNode)
    state = replace(state, recording=None)
    if isinstance(event, e.RecordingFailed):
        if node.next is not None:
            return _enter(run, state, node.next)
        return _finish(run, state, Outcome.FAILED, hangup=True)
    run.emit(c.StoreVoicemail(state.leg_id, node.mailbox, event.recording_name, event.duration_s))
    if node.next is not None:
        return _enter(run, state, node.next)
    return _finish(run, state, Outcome.VOICEMAIL, hangup=True)


def _after_finish(run: _Run, state: IvrState, event: Any) -> IvrState:
    """Only the voicemail the caller ended by hanging up is still awaited."""
    if state.recording is None or not isinstance(event, (e.RecordingFinished, e.RecordingFailed)):
        return state
    if event.recording_name != state.recording:
        return state
    node = run.flow.nodes[state.node]
    if isinstance(event, e.RecordingFinished) and isinstance(node, VoicemailNode):
        run.emit(c.StoreVoicemail(state.leg_id, node.mailbox, event.recording_name, event.duration_s))
    return replace(state, recording=None)


def _finish(
    run: _Run, state: IvrState, outcome: Outcome, *, hangup: bool = False, stop_playback: bool = True
) -> IvrState:
    state = _quiet(run, state, stop_playback=stop_playback)
    if hangup:
        run.emit(c.Hangup(state.leg_id))
    run.emit(c.FlowFinished(state.leg_id, outcome.value))
    return replace(
        state,
        phase=Phase.DONE,
        finished=True,
        outcome=outcome.value,
        lookup_id=None,
        transfer_id=None,
        digits="",
    )


def _quiet(run: _Run, state: IvrState, *, stop_playback: bool = True) -> IvrState:
    """Cancel the running timer and stop the playing prompt, if any."""
    if state.timer_id is not None:
        run.emit(c.CancelTimer(state.timer_id))
    if state.playback_id is not None and stop_playback:
        run.emit(c.StopPlayback(state.playback_id))
    return replace(state, timer_id=None, playback_id=None)


def _update_data(run: _Run, state: IvrState, updates: Mapping[str, str]) -> IvrState:
    data = {**state.data, **updates}
    if data == state.data:
        return state
    run.emit(c.CallDataChanged(state.leg_id, dict(data)))
    return replace(state, data=data)


def _added(names: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return names + tuple(name for name in dict.fromkeys(more) if name not in names)


def _say_date(value: str) -> list[str]:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return []
    weekday = (day.weekday() + 1) % 7  # Asterisk's day-0 is Sunday
    return [
        f"sound:digits/day-{weekday}",
        f"sound:digits/mon-{day.month - 1}",
        f"number:{day.day}",
        f"number:{day.year}",
    ]
