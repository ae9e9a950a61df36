"""FreeSWITCH events → the controller's domain events. Pure functions, no I/O.

``events_from_esl`` turns one ESL event into zero, one or two domain events. It reports facts;
which legs belong to the controller (an inbound leg that parked, a leg it originated) is the
switch's decision, as with ARI's Stasis application. Choices, from the recordings of
FreeSWITCH 1.10.12 (shared/freeswitch/transcripts):

- A leg is the channel's ``Unique-ID``; with ``{origination_uuid=…}`` that is the
  controller's own id.
- Playbacks: PLAYBACK_START/STOP carry no id of ours, but the CHANNEL_EXECUTE and
  CHANNEL_EXECUTE_COMPLETE of a ``playback`` run through ``sendmsg`` carry the ``Event-UUID``
  we sent as ``Application-UUID`` (scenario 12). So the playback id is the Application-UUID,
  and a playback is finished when its EXECUTE_COMPLETE says so (``FILE PLAYED`` = completed;
  ``PLAYBACK ERROR`` is what a playback cut by hangup or transfer reports). PLAYBACK_STOP
  itself is not translated: it would announce the same end a second time, without the id.
- FreeSWITCH has no bridge objects: ``uuid_bridge A B`` gives one CHANNEL_BRIDGE (on A, with
  ``Bridge-A-Unique-ID``/``Bridge-B-Unique-ID``). It becomes a ``LegJoinedBridge`` per leg;
  the bridge id is the one the switch recorded for leg A (``bridges``), else A's uuid.
- DTMF-Duration is in samples of the channel's clock (2000 at 8 kHz = 250 ms).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from controller.domain import events as e

from .protocol import Event

_PLAYBACK_APPS = frozenset({"playback"})


def event_time(event: Event) -> datetime:
    """``Event-Date-Timestamp`` (microseconds since the epoch, UTC)."""
    return _micros(event.get("Event-Date-Timestamp")) or datetime.now(UTC)


def _micros(value: str) -> datetime | None:
    if not value.isdigit() or value == "0":
        return None
    return datetime.fromtimestamp(int(value) / 1_000_000, UTC)


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def channel_variables(event: Event) -> dict[str, str]:
    return {name[len("variable_"):]: value for name, value in event.headers if name.startswith("variable_")}


def leg_arrived(event: Event, at: datetime | None = None) -> e.LegArrived:
    at = at or event_time(event)
    return e.LegArrived(
        leg_id=event.unique_id,
        at=at,
        created_at=_micros(event.get("Caller-Channel-Created-Time")) or at,
        channel_name=event.get("Channel-Name"),
        caller_number=event.get("Caller-Caller-ID-Number"),
        caller_name=event.get("Caller-Caller-ID-Name"),
        dialed=event.get("Caller-Destination-Number"),
        answered=event.get("Answer-State") == "answered",
        variables=channel_variables(event),
    )


def dtmf_duration_ms(event: Event) -> int:
    rate = _int(event.get("variable_read_rate") or event.get("Channel-Read-Codec-Rate"), 8000) or 8000
    return _int(event.get("DTMF-Duration")) * 1000 // rate


def events_from_esl(event: Event, bridges: Mapping[str, str] | None = None) -> list[e.Event]:
    """The domain events one FreeSWITCH event stands for (often none)."""
    name = event.name
    leg = event.unique_id
    at = event_time(event)
    if name == "CHANNEL_CREATE":
        return [leg_arrived(event, at)]
    if name == "CHANNEL_PROGRESS":
        return [e.LegRinging(leg_id=leg, at=at)]
    if name == "CHANNEL_ANSWER":
        return [e.LegAnswered(leg_id=leg, at=at)]
    if name == "CHANNEL_HANGUP_COMPLETE":
        return [e.LegHungUp(leg_id=leg, at=at, cause=_int(event.get("variable_hangup_cause_q850")),
                            cause_text=event.get("Hangup-Cause"))]
    if name == "DTMF":
        return [e.DtmfReceived(leg_id=leg, at=at, digit=event.get("DTMF-Digit"),
                               duration_ms=dtmf_duration_ms(event))]
    if name == "CHANNEL_EXECUTE" and event.get("Application") in _PLAYBACK_APPS:
        return [e.PlaybackStarted(playback_id=event.get("Application-UUID"), leg_id=leg, at=at,
                                  media=event.get("Application-Data"))]
    if name == "CHANNEL_EXECUTE_COMPLETE" and event.get("Application") in _PLAYBACK_APPS:
        return [e.PlaybackFinished(playback_id=event.get("Application-UUID"), leg_id=leg, at=at,
                                   completed=event.get("Application-Response") == "FILE PLAYED")]
    if name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
        a_leg = event.get("Bridge-A-Unique-ID") or leg
        b_leg = event.get("Bridge-B-Unique-ID") or event.get("Other-Leg-Unique-ID")
        bridge = (bridges or {}).get(a_leg) or a_leg
        cls = e.LegJoinedBridge if name == "CHANNEL_BRIDGE" else e.LegLeftBridge
        return [cls(bridge_id=bridge, leg_id=x, at=at) for x in (a_leg, b_leg) if x]
    if name == "RECORD_STOP":
        path = event.get("Record-File-Path")
        cause = event.get("Record-Completion-Cause")
        recording = os.path.splitext(os.path.basename(path))[0]
        if cause and not cause.startswith("success"):
            return [e.RecordingFailed(recording_name=recording, target_id=leg, at=at, reason=cause)]
        ms = event.get("variable_record_ms")
        return [e.RecordingFinished(recording_name=recording, target_id=leg, at=at,
                                    duration_s=_int(ms) / 1000 if ms else None)]
    return []
