"""Voicemails: stored by the service (as the call service does), then listed, streamed with
ranges, marked heard and deleted through the API."""

from __future__ import annotations

import math
import struct
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.services.voicemails import InvalidVoicemail
from controller.storage.inbound import Voicemail
from tests.api.conftest import bearer


def write_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path.read_bytes()


async def leave_message(runtime: Runtime, mailbox: str,
                        recording: str | None = None) -> tuple[Voicemail, bytes]:
    recording = recording or f"vm-{uuid4().hex}"
    content = write_wav(runtime.voicemails.recordings_dir / f"{recording}.wav")
    voicemail = await runtime.voicemails.store(mailbox, f"call-{uuid4().hex[:8]}", "+33123456789",
                                               "Ada Lovelace", recording, 0.5)
    return voicemail, content


async def test_list_stream_heard_delete(client: httpx.AsyncClient, admin_key: str,
                                        runtime: Runtime) -> None:
    mailbox = f"sales-{uuid4().hex[:6]}"
    first, _ = await leave_message(runtime, mailbox)
    second, content = await leave_message(runtime, mailbox)

    listed = await client.get("/v1/voicemails", params={"mailbox": mailbox}, headers=bearer(admin_key))
    assert listed.status_code == 200
    assert [v["id"] for v in listed.json()] == [str(second.id), str(first.id)]  # newest first
    assert listed.json()[0]["caller_name"] == "Ada Lovelace"
    assert listed.json()[0]["heard_at"] is None

    one = await client.get(f"/v1/voicemails/{second.id}", headers=bearer(admin_key))
    assert one.status_code == 200 and one.json()["mailbox"] == mailbox

    audio = await client.get(f"/v1/voicemails/{second.id}/audio", headers=bearer(admin_key))
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.headers["accept-ranges"] == "bytes"
    assert audio.content == content

    part = await client.get(f"/v1/voicemails/{second.id}/audio",
                            headers={**bearer(admin_key), "Range": "bytes=0-43"})
    assert part.status_code == 206
    assert part.content == content[:44]
    assert part.headers["content-range"] == f"bytes 0-43/{len(content)}"
    tail = await client.get(f"/v1/voicemails/{second.id}/audio",
                            headers={**bearer(admin_key), "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]
    beyond = await client.get(f"/v1/voicemails/{second.id}/audio",
                              headers={**bearer(admin_key), "Range": f"bytes={len(content) + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(content)}"

    heard = await client.post(f"/v1/voicemails/{second.id}/heard", headers=bearer(admin_key))
    assert heard.status_code == 200 and heard.json()["heard_at"] is not None
    again = await client.post(f"/v1/voicemails/{second.id}/heard", headers=bearer(admin_key))
    assert again.json()["heard_at"] == heard.json()["heard_at"]  # the first time is kept
    unheard = await client.get("/v1/voicemails", params={"mailbox": mailbox, "heard": "false"},
                               headers=bearer(admin_key))
    assert [v["id"] for v in unheard.json()] == [str(first.id)]
    heard_only = await client.get("/v1/voicemails", params={"mailbox": mailbox, "heard": "true"},
                                  headers=bearer(admin_key))
    assert [v["id"] for v in heard_only.json()] == [str(second.id)]

    path = runtime.voicemails.recordings_dir / second.file_name
    assert path.exists()
    assert (await client.delete(f"/v1/voicemails/{second.id}", headers=bearer(admin_key))).status_code == 204
    assert not path.exists()
    assert (await client.get(f"/v1/voicemails/{second.id}", headers=bearer(admin_key))).status_code == 404
    assert (await client.get(f"/v1/voicemails/{second.id}/audio",
                             headers=bearer(admin_key))).status_code == 404
    assert (await client.delete(f"/v1/voicemails/{second.id}", headers=bearer(admin_key))).status_code == 404
    remaining = await client.get("/v1/voicemails", params={"mailbox": mailbox}, headers=bearer(admin_key))
    assert [v["id"] for v in remaining.json()] == [str(first.id)]


async def test_since_and_limit(client: httpx.AsyncClient, admin_key: str, runtime: Runtime) -> None:
    mailbox = f"support-{uuid4().hex[:6]}"
    await leave_message(runtime, mailbox)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    none = await client.get("/v1/voicemails", params={"mailbox": mailbox, "since": future},
                            headers=bearer(admin_key))
    assert none.json() == []
    some = await client.get("/v1/voicemails", params={"mailbox": mailbox, "since": past, "limit": 1},
                            headers=bearer(admin_key))
    assert len(some.json()) == 1
    for bad in ({"since": "yesterday"}, {"heard": "perhaps"}, {"limit": 0}, {"mailbox": "a\x00b"}):
        response = await client.get("/v1/voicemails", params=bad, headers=bearer(admin_key))
        assert response.status_code == 422, (bad, response.text)


async def test_missing_or_unreadable_file_is_410(client: httpx.AsyncClient, admin_key: str,
                                                 runtime: Runtime) -> None:
    voicemail, _ = await leave_message(runtime, "lost")
    (runtime.voicemails.recordings_dir / voicemail.file_name).unlink()
    response = await client.get(f"/v1/voicemails/{voicemail.id}/audio", headers=bearer(admin_key))
    assert response.status_code == 410, response.text
    assert response.headers["content-type"] == "application/problem+json"

    directory, _ = await leave_message(runtime, "lost")
    path = runtime.voicemails.recordings_dir / directory.file_name
    path.unlink()
    path.mkdir()
    response = await client.get(f"/v1/voicemails/{directory.id}/audio", headers=bearer(admin_key))
    assert response.status_code == 410
    path.rmdir()
    # Deleting a message whose file is already gone still works.
    deleted = await client.delete(f"/v1/voicemails/{voicemail.id}", headers=bearer(admin_key))
    assert deleted.status_code == 204


async def test_roles(client: httpx.AsyncClient, keys: dict[Role, str], runtime: Runtime) -> None:
    voicemail, content = await leave_message(runtime, "roles")
    integration = bearer(keys[Role.INTEGRATION])
    assert (await client.get("/v1/voicemails", headers=integration)).status_code == 200
    audio = await client.get(f"/v1/voicemails/{voicemail.id}/audio", headers=integration)
    assert audio.status_code == 200 and audio.content == content
    assert (await client.post(f"/v1/voicemails/{voicemail.id}/heard", headers=integration)).status_code == 403
    assert (await client.delete(f"/v1/voicemails/{voicemail.id}", headers=integration)).status_code == 403
    agent = bearer(keys[Role.AGENT])
    assert (await client.get("/v1/voicemails", headers=agent)).status_code == 403
    assert (await client.get(f"/v1/voicemails/{voicemail.id}/audio", headers=agent)).status_code == 403


@pytest.mark.parametrize(("mailbox", "recording", "duration"), [
    ("", "vm-1", 1.0),
    ("a\nb", "vm-1", 1.0),
    ("sales", "../etc/passwd", 1.0),
    ("sales", "a/b", 1.0),
    ("sales", "", 1.0),
    ("sales", "vm-1", -1.0),
    ("sales", "vm-1", float("nan")),
])
async def test_store_refuses_bad_values(runtime: Runtime, mailbox: str, recording: str,
                                        duration: float) -> None:
    with pytest.raises(InvalidVoicemail):
        await runtime.voicemails.store(mailbox, "call-1", "100", "x", recording, duration)


async def test_store_keeps_caller_ids_printable(runtime: Runtime) -> None:
    voicemail = await runtime.voicemails.store("sales", None, "+33\x00123", "Evil\r\nName", "vm-odd", 2)
    assert voicemail.caller_number == "+33\ufffd123"
    assert voicemail.caller_name == "Evil\ufffd\ufffdName"
    assert voicemail.call_id is None
    assert voicemail.duration_s == 2.0
