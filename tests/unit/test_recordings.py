"""Recordings without a switch: the ARI requests for snoop/record/pause/resume/stop, which events the
recording service takes, how the policy is chosen, who sees which recordings, the facts read from
a WAV file and the stereo file made from two mono ones."""

from __future__ import annotations

import hashlib
import math
import wave
from array import array
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from controller.adapters.asterisk.translate import event_from_ari, request_for
from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.access import Principal, Role
from controller.domain.errors import UnsafeValue
from controller.services.recordings import (
    Part,
    RecordingPolicy,
    RecordingService,
    effective_policy,
    file_facts,
    is_recording_leg,
    merge_stereo,
    parse_part_name,
    parse_snoop_leg,
    part_name,
    snoop_leg_id,
    visibility_of,
)
from controller.storage.recordings import Policy, Visibility

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_bridge_recording_pause_resume_and_stop_become_ari_requests():
    record = request_for(c.Record(c.RecordingTarget.BRIDGE, "br-call-1", "callrec-1", "wav"), "ccc")
    assert (record.method, record.path) == ("POST", "/bridges/br-call-1/record")
    assert record.params["name"] == "callrec-1" and record.params["format"] == "wav"
    assert record.params["ifExists"] == "fail"
    pause = request_for(c.PauseRecording("callrec-1"), "ccc")
    assert (pause.method, pause.path) == ("POST", "/recordings/live/callrec-1/pause")
    resume = request_for(c.ResumeRecording("callrec-1"), "ccc")
    assert (resume.method, resume.path) == ("DELETE", "/recordings/live/callrec-1/pause")
    stop = request_for(c.StopRecording("callrec-1"), "ccc")
    assert (stop.method, stop.path) == ("POST", "/recordings/live/callrec-1/stop")


@pytest.mark.parametrize("name", ["../x", "a/b", "", "a b", "x\r\ny"])
def test_recording_names_cannot_change_the_path(name):
    for command in (c.PauseRecording(name), c.ResumeRecording(name)):
        with pytest.raises(UnsafeValue):
            request_for(command, "ccc")


RID = UUID("0b7f3c5e-1d2a-4c3b-9e8f-123456789abc")


def test_a_recording_is_a_snoop_on_the_callers_leg_recorded_as_a_channel():
    snoop = request_for(c.Snoop("caller-1", snoop_leg_id(RID, Part.MIXED), c.SnoopDirection.BOTH,
                                args=("recording", str(RID), "mix")), "ccc")
    assert (snoop.method, snoop.path) == ("POST", f"/channels/caller-1/snoop/rec-{RID.hex}-mix")
    assert snoop.params == {"app": "ccc", "spy": "both", "whisper": "none",
                            "appArgs": f"recording,{RID},mix"}
    leg = f"rec-{RID.hex}-mix"
    record = request_for(c.Record(c.RecordingTarget.LEG, leg, part_name(RID, Part.MIXED)), "ccc")
    assert (record.method, record.path) == ("POST", f"/channels/rec-{RID.hex}-mix/record")
    assert record.params["name"] == f"callrec-{RID}" and record.params["ifExists"] == "fail"


def test_part_names_and_snoop_legs_name_their_recording_and_part():
    for part in Part:
        assert parse_part_name(part_name(RID, part)) == (RID, part)
        assert parse_snoop_leg(snoop_leg_id(RID, part)) == (RID, part)
    assert part_name(RID, Part.MIXED) == f"callrec-{RID}"
    assert part_name(RID, Part.CALLER) == f"callrec-{RID}-in"
    for other in ("vm-42", f"callrec-{RID}-x", "callrec-42", f"rec-{RID}-mix", f"rec-{RID.hex}-all"):
        assert parse_part_name(other) is None and parse_snoop_leg(other) is None


def test_the_service_takes_call_recording_events_and_snoop_legs_only():
    finished = event_from_ari({
        "type": "RecordingFinished", "timestamp": "2026-11-23T12:00:00.000+0000",
        "recording": {"name": f"callrec-{RID}", "format": "wav", "state": "done",
                      "target_uri": f"channel:rec-{RID.hex}-mix", "duration": 3}})
    assert finished == e.RecordingFinished(f"callrec-{RID}", f"rec-{RID.hex}-mix", finished.at, 3.0)
    assert RecordingService.owns(finished)
    assert RecordingService.owns(e.RecordingFailed(f"callrec-{RID}-out", "x", NOW, "no space"))
    assert not RecordingService.owns(e.RecordingFinished("vm-42", "1.2", NOW, 3.0))  # a voicemail
    assert not RecordingService.owns(e.LegHungUp(f"callrec-{RID}", NOW, 16, ""))
    snoop = e.LegArrived(f"rec-{RID.hex}-in", NOW, NOW, "Snoop/x", "", "", "", True,
                         ("recording", str(RID), "in"))
    caller = e.LegArrived("1700000000.1", NOW, NOW, "PJSIP/1001-1", "1001", "", "7000", False,
                          ("inbound", "7000"))
    assert is_recording_leg(snoop) and not is_recording_leg(caller)


def policy(scope: str, value: str) -> Policy:
    return Policy(scope=scope, name="x", policy=value, updated_at=NOW)


@pytest.mark.parametrize(("policies", "expected"), [
    ([], RecordingPolicy.ON_DEMAND),
    ([policy("queue", "always")], RecordingPolicy.ALWAYS),
    ([policy("queue", "never")], RecordingPolicy.NEVER),
    ([policy("queue", "always"), policy("agent", "never")], RecordingPolicy.NEVER),
    ([policy("agent", "always"), policy("queue", "never")], RecordingPolicy.ALWAYS),
    ([policy("agent", "on_demand"), policy("queue", "always")], RecordingPolicy.ON_DEMAND),
])
def test_an_agents_policy_wins_over_its_queues(policies, expected):
    assert effective_policy(policies) is expected


def test_a_campaigns_policy_sits_between_the_agents_and_the_queues():
    campaign = policy("campaign", "always")
    assert effective_policy([policy("queue", "never"), campaign]) is RecordingPolicy.ALWAYS
    assert effective_policy([policy("agent", "never"), campaign]) is RecordingPolicy.NEVER


def key(role: Role, agent_id: str | None = None, queues: tuple[str, ...] = ()) -> Principal:
    return Principal(uuid4(), "k", role, agent_id, queues)


def test_who_sees_which_recordings():
    assert visibility_of(None) == Visibility()
    assert visibility_of(key(Role.ADMIN)) == Visibility()
    assert visibility_of(key(Role.INTEGRATION)) == Visibility()
    assert visibility_of(key(Role.SUPERVISOR)) == Visibility()  # the whole floor
    assert visibility_of(key(Role.SUPERVISOR, queues=("sales", "support"))) == Visibility(
        queues=("sales", "support"))
    assert visibility_of(key(Role.AGENT, "ann")) == Visibility(agent="ann")
    assert visibility_of(key(Role.AGENT)) is None  # an agent key linked to no agent sees nothing


def write_wav(path: Path, samples: array, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def test_duration_size_and_checksum_come_from_the_file(tmp_path: Path):
    path = tmp_path / "callrec-1.wav"
    write_wav(path, array("h", [256] * 20000))  # 20,000 frames at 8 kHz: 2.5 s
    facts = file_facts(path)
    data = path.read_bytes()
    assert facts.duration_s == pytest.approx(2.5)
    assert facts.size_bytes == len(data) and facts.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_whose_header_was_never_updated_is_measured_by_its_size(tmp_path: Path):
    # What a switch that died mid-recording leaves: a header that says 0 frames, then data.
    path = tmp_path / "callrec-2.wav"
    write_wav(path, array("h"))
    with path.open("ab") as handle:
        handle.write(bytes(2 * 12000))
    assert file_facts(path).duration_s == pytest.approx(1.5)


def tone(hz: float, seconds: float, rate: int = 8000) -> array:
    return array("h", [int(8000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(int(seconds * rate))])


def test_two_mono_files_become_one_stereo_file_left_and_right(tmp_path: Path):
    left, right, both = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "dual.wav"
    write_wav(left, tone(440, 1.0))
    write_wav(right, tone(1000, 0.75))  # shorter: padded with silence
    facts = merge_stereo(left, right, both)
    with wave.open(str(both), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = array("h", wav.readframes(wav.getnframes()))
    assert facts.duration_s == pytest.approx(1.0) and facts.size_bytes == both.stat().st_size
    assert frames[0::2] == tone(440, 1.0)
    assert frames[1::2][:6000] == tone(1000, 0.75) and not any(frames[1::2][6000:])
    assert not (tmp_path / "dual.wav.tmp").exists()


def test_a_stereo_merge_refuses_files_it_cannot_interleave(tmp_path: Path):
    write_wav(tmp_path / "a.wav", tone(440, 0.1))
    write_wav(tmp_path / "b.wav", tone(440, 0.1, rate=16000), rate=16000)
    with pytest.raises(ValueError, match="sample rates"):
        merge_stereo(tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "x.wav")
