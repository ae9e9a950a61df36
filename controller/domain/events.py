"""Facts that switch adapters report, in the controller's words (no ARI or ESL names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class LegArrived:
    """A leg came under the controller's control (a new inbound leg, or one it originated)."""

    leg_id: str
    at: datetime
    created_at: datetime
    channel_name: str
    caller_number: str
    caller_name: str
    dialed: str
    answered: bool
    args: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LegRinging:
    leg_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LegAnswered:
    leg_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    leg_id: str
    at: datetime
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class LegHungUp:
    leg_id: str
    at: datetime
    cause: int
    cause_text: str


@dataclass(frozen=True, slots=True)
class LegLeft:
    """The leg left the controller's control (it may still exist on the switch)."""

    leg_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    playback_id: str
    leg_id: str
    at: datetime
    media: str = ""


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    playback_id: str
    leg_id: str
    at: datetime
    completed: bool


@dataclass(frozen=True, slots=True)
class RecordingFinished:
    recording_name: str
    target_id: str
    at: datetime
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class RecordingFailed:
    recording_name: str
    target_id: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class LegJoinedBridge:
    bridge_id: str
    leg_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LegLeftBridge:
    bridge_id: str
    leg_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class BridgeDestroyed:
    bridge_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SwitchLinkChanged:
    """The link to a switch (or one of its interfaces) went up or down."""

    switch: str
    link: str
    up: bool
    at: datetime
    reason: str = ""


class DeviceState(StrEnum):
    """What the switch says about a device (a phone, a custom state): the same words for any
    switch. Only ``unavailable`` and ``invalid`` mean the device cannot take a call."""

    UNKNOWN = "unknown"
    NOT_IN_USE = "not_in_use"
    IN_USE = "in_use"
    BUSY = "busy"
    INVALID = "invalid"  # no such device
    UNAVAILABLE = "unavailable"  # e.g. a phone that is not registered
    RINGING = "ringing"
    RINGING_IN_USE = "ringing_in_use"
    ON_HOLD = "on_hold"

    @property
    def reachable(self) -> bool:
        # UNKNOWN counts as reachable: a switch that cannot tell must not keep agents idle.
        return self not in (DeviceState.UNAVAILABLE, DeviceState.INVALID)


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    """A device's state changed (or was reported, e.g. after a reconnect)."""

    device: str
    state: DeviceState
    at: datetime


LegEvent = (
    LegArrived
    | LegRinging
    | LegAnswered
    | DtmfReceived
    | LegHungUp
    | LegLeft
    | PlaybackStarted
    | PlaybackFinished
)
BridgeEvent = LegJoinedBridge | LegLeftBridge | BridgeDestroyed
RecordingEvent = RecordingFinished | RecordingFailed
Event = LegEvent | BridgeEvent | RecordingEvent | SwitchLinkChanged | DeviceStateChanged


def leg_of(event: Event) -> str | None:
    """The leg an event belongs to, for per-leg ordering; None for switch-wide events.
    A recording's target is a leg or a bridge; a bridge id simply matches no leg."""
    return getattr(event, "leg_id", None) or getattr(event, "target_id", None)


# --- Facts the call service reports to the IVR engine (not from a switch) -----------------


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer started with ``StartTimer`` ran out (and was not cancelled)."""

    timer_id: str
    leg_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LookupFinished:
    """The answer to an ``HttpLookup``; ``ok`` is False on an error or a timeout."""

    request_id: str
    leg_id: str
    at: datetime
    ok: bool
    fields: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class TransferFinished:
    """A ``TransferCall`` ended: the destination answered (and was bridged) or it did not."""

    transfer_id: str
    leg_id: str
    at: datetime
    answered: bool


@dataclass(frozen=True, slots=True)
class QueueAnnouncementDue:
    """The ACD says the waiting caller on ``leg_id`` is to hear its position (1 = next) and
    estimated wait (``eta_s``, None when unknown)."""

    leg_id: str
    at: datetime
    queue: str
    position: int
    eta_s: int | None


@dataclass(frozen=True, slots=True)
class QueueOverflowed:
    """The ACD sent the waiting caller on ``leg_id`` out of ``queue`` (max_wait, max_length,
    no_agents) to a destination: ``hangup``, ``queue``, ``flow`` or ``voicemail`` with its target."""

    leg_id: str
    at: datetime
    queue: str
    reason: str
    destination: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class QueueMoved:
    """A supervisor moved the waiting caller on ``leg_id`` from ``from_queue`` to ``queue`` (the
    same queue when only its agent changed); ``agent_id`` is the one agent it now waits for ('':
    any of the queue's). ``entered_at`` (ISO 8601) is when it joined ``from_queue``."""

    leg_id: str
    at: datetime
    queue: str
    from_queue: str
    agent_id: str = ""
    entered_at: str = ""


ServiceEvent = (
    TimerFired | LookupFinished | TransferFinished | QueueAnnouncementDue | QueueOverflowed | QueueMoved
)
