"""Recordings without a switch: the ARI requests for record/pause/resume/stop, which events the
recording service takes, how the policy is chosen, and the facts read from a WAV file."""

from __future__ import annotations

import hashlib
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.adapters.asterisk.translate import event_from_ari, request_for
from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.errors import UnsafeValue
from controller.services.recordings import RecordingPolicy, RecordingService, _file_facts, effective_policy
from controller.storage.recordings import Policy

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


def test_the_service_takes_the_finished_recordings_of_call_bridges_only():
    finished = event_from_ari({
        "type": "RecordingFinished", "timestamp": "2026-11-23T12:00:00.000+0000",
        "recording": {"name": "callrec-42", "format": "wav", "state": "done",
                      "target_uri": "bridge:br-call-1", "duration": 3}})
    assert finished == e.RecordingFinished("callrec-42", "br-call-1", finished.at, 3.0)
    assert RecordingService.owns(finished)
    assert not RecordingService.owns(e.RecordingFinished("vm-42", "1.2", NOW, 3.0))  # a voicemail
    assert RecordingService.owns(e.RecordingFailed("callrec-42", "br-call-1", NOW, "no space"))
    assert not RecordingService.owns(e.LegHungUp("callrec-42", NOW, 16, ""))


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


def test_duration_size_and_checksum_come_from_the_file(tmp_path: Path):
    path = tmp_path / "callrec-1.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x01" * 20000)  # 20,000 frames at 8 kHz: 2.5 s
    duration, size, digest = _file_facts(path)
    data = path.read_bytes()
    assert duration == pytest.approx(2.5)
    assert size == len(data) and digest == hashlib.sha256(data).hexdigest()
