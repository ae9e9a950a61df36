"""Intentions the engines hand to a switch adapter. Ids are made by the controller, so a
command repeated after a reconnect addresses the same leg, bridge or playback."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Answer:
    leg_id: str


@dataclass(frozen=True, slots=True)
class Play:
    """Play media to a leg, in order. Media are URIs such as ``sound:hello-world``."""

    leg_id: str
    playback_id: str
    media: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StopPlayback:
    playback_id: str


@dataclass(frozen=True, slots=True)
class Hangup:
    leg_id: str
    reason: str = "normal"


@dataclass(frozen=True, slots=True)
class Originate:
    """Create a new leg that dials ``endpoint`` and comes under the controller's control."""

    leg_id: str
    endpoint: str
    caller_id: str = ""
    timeout_s: int = 30
    variables: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CreateBridge:
    bridge_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class AddToBridge:
    bridge_id: str
    leg_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoveFromBridge:
    bridge_id: str
    leg_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DestroyBridge:
    bridge_id: str


class RecordingTarget(StrEnum):
    LEG = "leg"
    BRIDGE = "bridge"


@dataclass(frozen=True, slots=True)
class Record:
    target: RecordingTarget
    target_id: str
    name: str
    format: str = "wav"
    max_duration_s: int = 0
    beep: bool = False


@dataclass(frozen=True, slots=True)
class StopRecording:
    name: str


@dataclass(frozen=True, slots=True)
class PauseRecording:
    """Suspend a live recording: what is said while paused is not in the file."""

    name: str


@dataclass(frozen=True, slots=True)
class ResumeRecording:
    name: str


class SnoopDirection(StrEnum):
    NONE = "none"
    IN = "in"
    OUT = "out"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class Snoop:
    """A snoop leg on ``leg_id``: ``spy`` is what it hears, ``whisper`` what it speaks into."""

    leg_id: str
    snoop_id: str
    spy: SnoopDirection = SnoopDirection.BOTH
    whisper: SnoopDirection = SnoopDirection.NONE
    args: tuple[str, ...] = ()  # the snoop leg's arrival carries them, like an originated leg's


@dataclass(frozen=True, slots=True)
class SendDtmf:
    leg_id: str
    digits: str


@dataclass(frozen=True, slots=True)
class StartMusicOnHold:
    leg_id: str
    moh_class: str = "default"


@dataclass(frozen=True, slots=True)
class StopMusicOnHold:
    leg_id: str


Command = (
    Answer
    | Play
    | StopPlayback
    | Hangup
    | Originate
    | CreateBridge
    | AddToBridge
    | RemoveFromBridge
    | DestroyBridge
    | Record
    | StopRecording
    | PauseRecording
    | ResumeRecording
    | Snoop
    | SendDtmf
    | StartMusicOnHold
    | StopMusicOnHold
)


# --- Intentions for the call service (timers, HTTP, ACD, storage), not for a switch -------


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Send ``TimerFired(timer_id, leg_id)`` after ``seconds`` unless cancelled first."""

    timer_id: str
    leg_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True, slots=True)
class HttpLookup:
    """GET ``url`` with ``params``; answer with ``LookupFinished`` (ok=False after ``timeout_s``)."""

    request_id: str
    leg_id: str
    url: str
    params: dict[str, str]
    timeout_s: float


@dataclass(frozen=True, slots=True)
class EnterQueue:
    """Hand the leg to the ACD."""

    leg_id: str
    queue: str
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransferCall:
    """Dial ``destination`` and bridge the leg to it once answered; answer with ``TransferFinished``."""

    transfer_id: str
    leg_id: str
    destination: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class StoreVoicemail:
    """Keep the finished recording ``recording_name`` as a message in ``mailbox``."""

    leg_id: str
    mailbox: str
    recording_name: str
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class CallDataChanged:
    """The call data of the leg's flow changed (the whole new data), for the service to persist."""

    leg_id: str
    data: dict[str, str]


@dataclass(frozen=True, slots=True)
class FlowFinished:
    """The flow ended for this leg; ``outcome`` says why (hangup, caller-hangup, queued...)."""

    leg_id: str
    outcome: str


ServiceCommand = (
    StartTimer
    | CancelTimer
    | HttpLookup
    | EnterQueue
    | TransferCall
    | StoreVoicemail
    | CallDataChanged
    | FlowFinished
)
FlowCommand = Command | ServiceCommand
