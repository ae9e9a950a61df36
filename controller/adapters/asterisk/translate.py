"""ARI JSON ↔ the controller's events and commands. Pure functions, no I/O.

``event_from_ari`` turns one ARI event into a domain event (or None for events the
controller has no use for); ``request_for`` turns one domain command into the REST call
that carries it out. Values that reach Asterisk are checked here: ids must be plain tokens,
and nothing may carry CR, LF or NUL, nor the separators ARI splits lists on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.errors import UnsafeValue

from .ari import segment

# Asterisk names the second half of a Local channel "<id>;2", hence ';'.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:;-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class AriRequest:
    method: str
    path: str
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None


# ---- values --------------------------------------------------------------------------


def safe_id(value: str, what: str = "id") -> str:
    if not _ID.fullmatch(value):
        raise UnsafeValue(f"{what} {value!r} is not a plain identifier")
    return value


def safe_text(value: str, what: str = "value", *, separators: str = "") -> str:
    """Refuse control characters (CR/LF end a header or a dialplan line) and separators."""
    if _CONTROL.search(value):
        raise UnsafeValue(f"{what} contains a control character")
    for sep in separators:
        if sep in value:
            raise UnsafeValue(f"{what} contains {sep!r}, a separator for Asterisk")
    return value


# ARI's Dial event statuses of a dial that failed, as Q.850 causes.
_DIAL_STATUS_CAUSE = {"BUSY": 17, "NOANSWER": 19, "CONGESTION": 34, "CHANUNAVAIL": 20}


def cause_of_dial_status(status: object) -> int | None:
    """The Q.850 cause a failed dial's status stands for (None: not a failure we map)."""
    return _DIAL_STATUS_CAUSE.get(status) if isinstance(status, str) else None


def parse_timestamp(value: str | None) -> datetime:
    """ARI stamps look like ``2026-11-23T12:00:00.123+0000``."""
    if not value:
        return datetime.now(UTC)
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return datetime.fromisoformat(value)


def _target_leg(target_uri: str) -> str:
    kind, _, target = target_uri.partition(":")
    return target if kind == "channel" else ""


# ---- events --------------------------------------------------------------------------


def leg_arrived(channel: dict[str, Any], args: list[str], at: datetime) -> e.LegArrived:
    caller = channel.get("caller") or {}
    dialplan = channel.get("dialplan") or {}
    # Our dialplan enters Stasis as Stasis(app,inbound,<DID>); originated legs carry the
    # dialed endpoint instead.
    dialed = args[1] if len(args) > 1 and args[0] in ("inbound", "internal") else dialplan.get("exten", "")
    return e.LegArrived(
        leg_id=channel["id"],
        at=at,
        created_at=parse_timestamp(channel.get("creationtime")) if channel.get("creationtime") else at,
        channel_name=channel.get("name", ""),
        caller_number=caller.get("number", "") or "",
        caller_name=caller.get("name", "") or "",
        dialed=dialed or "",
        answered=channel.get("state") == "Up",
        args=tuple(args),
        variables={k: str(v) for k, v in (channel.get("channelvars") or {}).items()},
    )


def event_from_ari(message: dict[str, Any]) -> e.Event | None:
    kind = message.get("type")
    at = parse_timestamp(message.get("timestamp"))
    channel = message.get("channel") or {}
    if kind == "StasisStart":
        return leg_arrived(channel, [str(a) for a in message.get("args", [])], at)
    if kind == "StasisEnd":
        return e.LegLeft(leg_id=channel["id"], at=at)
    if kind == "ChannelStateChange":
        state = channel.get("state")
        if state == "Up":
            return e.LegAnswered(leg_id=channel["id"], at=at)
        if state == "Ringing":
            return e.LegRinging(leg_id=channel["id"], at=at)
        return None
    if kind == "ChannelDtmfReceived":
        return e.DtmfReceived(leg_id=channel["id"], at=at, digit=str(message.get("digit", "")),
                              duration_ms=int(message.get("duration_ms", 0)))
    if kind == "ChannelDestroyed":
        return e.LegHungUp(leg_id=channel["id"], at=at, cause=int(message.get("cause", 0)),
                           cause_text=str(message.get("cause_txt", "")))
    if kind in ("PlaybackStarted", "PlaybackFinished"):
        playback = message.get("playback") or {}
        leg_id = _target_leg(str(playback.get("target_uri", "")))
        if not leg_id:
            return None
        if kind == "PlaybackStarted":
            return e.PlaybackStarted(playback_id=playback["id"], leg_id=leg_id, at=at,
                                     media=str(playback.get("media_uri", "")))
        return e.PlaybackFinished(playback_id=playback["id"], leg_id=leg_id, at=at,
                                  completed=playback.get("state") == "done")
    if kind in ("RecordingFinished", "RecordingFailed"):
        recording = message.get("recording") or {}
        _, _, target = str(recording.get("target_uri", "")).partition(":")
        if kind == "RecordingFinished":
            duration = recording.get("duration")
            return e.RecordingFinished(recording_name=recording.get("name", ""), target_id=target,
                                       at=at, duration_s=float(duration) if duration is not None else None)
        return e.RecordingFailed(recording_name=recording.get("name", ""), target_id=target, at=at,
                                 reason=str(recording.get("cause", "")))
    if kind in ("ChannelEnteredBridge", "ChannelLeftBridge"):
        bridge = message.get("bridge") or {}
        cls = e.LegJoinedBridge if kind == "ChannelEnteredBridge" else e.LegLeftBridge
        return cls(bridge_id=bridge.get("id", ""), leg_id=channel.get("id", ""), at=at)
    if kind == "BridgeDestroyed":
        return e.BridgeDestroyed(bridge_id=(message.get("bridge") or {}).get("id", ""), at=at)
    return None


# ---- commands ------------------------------------------------------------------------


# Uploaded prompts live in Asterisk's sounds folder under ccc/ (see docs/flows.md).
PROMPTS_FOLDER = "ccc"
_MEDIA_KINDS = ("sound", "digits", "number", "characters", "tone", "recording")


def media_uri(item: str) -> str:
    """A domain media item as an ARI media URI."""
    kind, sep, value = item.partition(":")
    if not sep or not value:
        raise UnsafeValue(f"media {item!r} is not kind:value")
    if kind == "prompt":
        if "/" in value or ".." in value:
            raise UnsafeValue(f"prompt name {value!r} is not a plain name")
        return f"sound:{PROMPTS_FOLDER}/{value}"
    if kind not in _MEDIA_KINDS:
        raise UnsafeValue(f"media kind {kind!r} is not one of prompt, {', '.join(_MEDIA_KINDS)}")
    if kind == "sound" and ".." in value:
        raise UnsafeValue("a sound name cannot climb out of the sounds folder")
    return item


def _channel(leg_id: str) -> str:
    return "/channels/" + segment(safe_id(leg_id, "leg id"))


def request_for(command: c.Command, app: str, local_formats: str = "slin") -> AriRequest:
    match command:
        case c.Answer(leg_id=leg):
            return AriRequest("POST", _channel(leg) + "/answer")
        case c.Play(leg_id=leg, playback_id=playback, media=media):
            if not media:
                raise UnsafeValue("nothing to play")
            uris = [media_uri(safe_text(m, "media", separators=",")) for m in media]
            return AriRequest("POST", _channel(leg) + "/play/" + segment(safe_id(playback, "playback id")),
                              params={"media": ",".join(uris)})
        case c.StopPlayback(playback_id=playback):
            return AriRequest("DELETE", "/playbacks/" + segment(safe_id(playback, "playback id")))
        case c.Hangup(leg_id=leg, reason=reason):
            return AriRequest("DELETE", _channel(leg), params={"reason": safe_id(reason, "reason")})
        case c.Originate():
            params = {
                "endpoint": safe_text(command.endpoint, "endpoint", separators=",&"),
                "app": app,
                "timeout": str(int(command.timeout_s)),
            }
            if command.args:
                params["appArgs"] = ",".join(safe_text(a, "argument", separators=",") for a in command.args)
            if command.caller_id:
                params["callerId"] = safe_text(command.caller_id, "caller id")
            if command.endpoint[:6].lower() == "local/":
                # Else Asterisk gives the Local channel slin192 and resamples every frame to it.
                params["formats"] = safe_text(local_formats, "formats", separators="&")
            variables = {safe_id(k, "variable name"): safe_text(v, f"variable {k}")
                         for k, v in command.variables.items()}
            return AriRequest("POST", _channel(command.leg_id), params=params,
                              body={"variables": variables} if variables else None)
        case c.CreateBridge(bridge_id=bridge, name=name):
            params = {"type": "mixing,dtmf_events"}
            if name:
                params["name"] = safe_text(name, "bridge name", separators=",")
            return AriRequest("POST", "/bridges/" + segment(safe_id(bridge, "bridge id")), params=params)
        case c.AddToBridge(bridge_id=bridge, leg_ids=legs):
            return AriRequest("POST", "/bridges/" + segment(safe_id(bridge, "bridge id")) + "/addChannel",
                              params={"channel": ",".join(safe_id(x, "leg id") for x in legs)})
        case c.RemoveFromBridge(bridge_id=bridge, leg_ids=legs):
            return AriRequest("POST", "/bridges/" + segment(safe_id(bridge, "bridge id")) + "/removeChannel",
                              params={"channel": ",".join(safe_id(x, "leg id") for x in legs)})
        case c.DestroyBridge(bridge_id=bridge):
            return AriRequest("DELETE", "/bridges/" + segment(safe_id(bridge, "bridge id")))
        case c.Record():
            base = _channel(command.target_id) if command.target is c.RecordingTarget.LEG else (
                "/bridges/" + segment(safe_id(command.target_id, "bridge id")))
            return AriRequest("POST", base + "/record", params={
                "name": safe_id(command.name, "recording name"),
                "format": safe_id(command.format, "format"),
                "maxDurationSeconds": str(int(command.max_duration_s)),
                "beep": "true" if command.beep else "false",
                "ifExists": "fail",
            })
        case c.StopRecording(name=name):
            live = "/recordings/live/" + segment(safe_id(name, "recording name"))
            return AriRequest("POST", live + "/stop")
        case c.PauseRecording(name=name):
            # pause (not mute): the paused part is left out of the file, not written as silence.
            live = "/recordings/live/" + segment(safe_id(name, "recording name"))
            return AriRequest("POST", live + "/pause")
        case c.ResumeRecording(name=name):
            live = "/recordings/live/" + segment(safe_id(name, "recording name"))
            return AriRequest("DELETE", live + "/pause")
        case c.Snoop(leg_id=leg, snoop_id=snoop, spy=spy, whisper=whisper, args=args):
            params = {"app": app, "spy": c.SnoopDirection(spy).value,
                      "whisper": c.SnoopDirection(whisper).value}
            if args:
                params["appArgs"] = ",".join(safe_text(a, "argument", separators=",") for a in args)
            return AriRequest("POST", _channel(leg) + "/snoop/" + segment(safe_id(snoop, "snoop id")),
                              params=params)
        case c.SendDtmf(leg_id=leg, digits=digits):
            if not re.fullmatch(r"[0-9A-Da-d*#,]{1,64}", digits):
                raise UnsafeValue("DTMF digits must be 0-9, A-D, * or # (',' pauses)")
            return AriRequest("POST", _channel(leg) + "/dtmf", params={"dtmf": digits})
        case c.StartMusicOnHold(leg_id=leg, moh_class=moh):
            return AriRequest("POST", _channel(leg) + "/moh", params={"mohClass": safe_id(moh, "class")})
        case c.StopMusicOnHold(leg_id=leg):
            return AriRequest("DELETE", _channel(leg) + "/moh")
    raise TypeError(f"not a command: {command!r}")


# ---- device state (AMI) ----------------------------------------------------------------
#
# Device state comes from AMI rather than ARI, as measured on Asterisk 22: AMI sends a
# DeviceStateChange event for every device (PJSIP endpoints, Custom: states, ...) to every
# session without subscribing to anything, DeviceStateList returns them all at once, and
# Getvar DEVICE_STATE(...) reads any device live. ARI only reports device states an
# application has subscribed to one by one (again after every reconnect), and its
# GET /deviceStates/{name} answers 404 for a name with a '/' such as PJSIP/1001.

_AMI_DEVICE_STATES = {
    "UNKNOWN": e.DeviceState.UNKNOWN,
    "NOT_INUSE": e.DeviceState.NOT_IN_USE,
    "INUSE": e.DeviceState.IN_USE,
    "BUSY": e.DeviceState.BUSY,
    "INVALID": e.DeviceState.INVALID,
    "UNAVAILABLE": e.DeviceState.UNAVAILABLE,
    "RINGING": e.DeviceState.RINGING,
    "RINGINUSE": e.DeviceState.RINGING_IN_USE,
    "ONHOLD": e.DeviceState.ON_HOLD,
}
# What can go inside DEVICE_STATE(...): a technology, '/' or ':', then a plain name.
_STATE_DEVICE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}[/:][A-Za-z0-9_.@+*#-]{1,200}$")


def device_state_value(text: str) -> e.DeviceState:
    """AMI's name for a device state (``NOT_INUSE``) as the domain's; unknown words → UNKNOWN."""
    return _AMI_DEVICE_STATES.get(text.strip().upper(), e.DeviceState.UNKNOWN)


def device_state_from_ami(message: dict[str, str], at: datetime | None = None) -> e.DeviceStateChanged | None:
    """An AMI ``DeviceStateChange`` event (or DeviceStateList item) as a domain event."""
    device = message.get("Device", "")
    if not device or "State" not in message:
        return None
    return e.DeviceStateChanged(device, device_state_value(message["State"]), at or datetime.now(UTC))


def state_device_of(dial_string: str) -> str | None:
    """The device whose state tells whether ``dial_string`` can ring, or None when it has none.

    ``PJSIP/1001`` is its own device. A Local channel runs dialplan (its "state" only says the
    extension exists), and ``PJSIP/0612345678@trunk`` or ``PJSIP/1001/sip:...`` dial through an
    endpoint whose state is not the callee's: none of these has a device state worth following.
    """
    tech, sep, resource = dial_string.partition("/")
    if not sep or tech.lower() == "local" or "@" in resource or "/" in resource:
        return None
    return dial_string if _STATE_DEVICE.match(dial_string) else None


def device_state_query(device: str) -> dict[str, str]:
    """The AMI action that reads a device's state now (answer: ``Value``)."""
    if not _STATE_DEVICE.match(device):
        raise UnsafeValue(f"device {device[:60]!r} is not a plain device name")
    return {"Action": "Getvar", "Variable": f"DEVICE_STATE({device})"}
