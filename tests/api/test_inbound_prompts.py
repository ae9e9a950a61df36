"""Prompt uploads with real audio made by sox: converted to 8 kHz mono WAV, measured, refused
when unreadable, empty or silent; deleted unless a flow uses them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from controller.bootstrap import Runtime
from tests.api.conftest import bearer

# sox is a project dependency (scripts/system-deps installs it): its absence is a failure.
assert shutil.which("sox"), "sox is missing: run `make system-deps` (Debian packages sox, libsox-fmt-mp3)"


def unique_prompt(prefix: str = "p") -> str:
    return f"{prefix}-{uuid4().hex[:10]}"


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def soxi(flag: str, path: Path) -> str:
    return subprocess.run(["soxi", flag, str(path)], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    files = {
        "tone.wav": ["-n", "-r", "44100", "-c", "2", str(folder / "tone.wav"), "synth", "1", "sine", "440"],
        "tone.mp3": ["-n", "-r", "44100", "-c", "1", str(folder / "tone.mp3"), "synth", "1", "sine", "440"],
        "silent.wav": ["-n", "-r", "8000", "-c", "1", str(folder / "silent.wav"), "trim", "0", "1"],
        "quiet.wav": ["-n", "-r", "8000", "-c", "1", str(folder / "quiet.wav"), "synth", "1", "sine",
                      "440", "vol", "-50dB"],
        "long.wav": ["-n", "-r", "8000", "-c", "1", str(folder / "long.wav"), "synth", "3", "sine", "300"],
    }
    for args in files.values():
        sox(*args)
    (folder / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wave file" * 20)
    (folder / "noise.bin").write_bytes(bytes(range(256)) * 40)
    return {name: folder / name for name in [*files, "garbage.wav", "noise.bin"]}


async def upload(client: httpx.AsyncClient, key: str, name: str, path: Path,
                 filename: str | None = None, **form: str) -> httpx.Response:
    with path.open("rb") as handle:
        return await client.post("/v1/prompts", headers=bearer(key), data={"name": name, **form},
                                 files={"file": (filename or path.name, handle.read())})


@pytest.mark.parametrize("source", ["tone.wav", "tone.mp3"])
async def test_upload_converts_and_measures(client: httpx.AsyncClient, admin_key: str,
                                            runtime: Runtime, audio: dict[str, Path], source: str) -> None:
    name = unique_prompt()
    response = await upload(client, admin_key, name, audio[source])
    assert response.status_code == 201, response.text
    prompt = response.json()
    assert prompt["name"] == name
    assert prompt["sample_rate"] == 8000
    assert 0.9 < prompt["duration_s"] < 1.2
    assert -10 < prompt["peak_db"] <= 0.5
    assert prompt["rms_db"] < prompt["peak_db"]
    assert prompt["original_filename"] == source

    stored = runtime.prompts.directory / f"{name}.wav"
    assert soxi("-r", stored) == "8000"
    assert soxi("-c", stored) == "1"
    assert soxi("-b", stored) == "16"
    assert stored.stat().st_mode & 0o777 == 0o644
    assert prompt["size_bytes"] == stored.stat().st_size
    assert not [p for p in runtime.prompts.directory.iterdir() if p.name.endswith(".part")]

    got = await client.get(f"/v1/prompts/{name}", headers=bearer(admin_key))
    assert got.status_code == 200 and got.json() == prompt
    assert name in [p["name"] for p in (await client.get("/v1/prompts", headers=bearer(admin_key))).json()]
    wav = await client.get(f"/v1/prompts/{name}/audio", headers=bearer(admin_key))
    assert wav.status_code == 200
    assert wav.headers["content-type"] == "audio/wav"
    assert wav.content == stored.read_bytes()


async def test_type_comes_from_the_bytes_not_the_name(client: httpx.AsyncClient, admin_key: str,
                                                      audio: dict[str, Path]) -> None:
    response = await upload(client, admin_key, unique_prompt(), audio["tone.mp3"], filename="voice.wav")
    assert response.status_code == 201, response.text
    response = await upload(client, admin_key, unique_prompt(), audio["tone.wav"], filename="no-extension")
    assert response.status_code == 201, response.text


REFUSED = {
    "silent": ("silent.wav", "silence"),
    "near silence": ("quiet.wav", "silence"),
    "garbage with a WAV header": ("garbage.wav", "could not read the audio"),
    "garbage bytes": ("noise.bin", "could not read the audio"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_unusable_audio_is_422(client: httpx.AsyncClient, admin_key: str, runtime: Runtime,
                                     audio: dict[str, Path], case: str) -> None:
    source, words = REFUSED[case]
    name = unique_prompt()
    response = await upload(client, admin_key, name, audio[source])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]
    assert str(Path("/tmp")) not in response.json()["detail"]  # no server paths leak
    assert not (runtime.prompts.directory / f"{name}.wav").exists()
    assert (await client.get(f"/v1/prompts/{name}", headers=bearer(admin_key))).status_code == 404


async def test_empty_and_too_long(client: httpx.AsyncClient, admin_key: str, runtime: Runtime,
                                  audio: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    response = await upload(client, admin_key, unique_prompt(), empty)
    assert response.status_code == 422 and "empty" in response.json()["detail"]
    header_only = tmp_path / "header-only.wav"
    sox("-n", "-r", "8000", "-c", "1", str(header_only), "trim", "0", "0")
    response = await upload(client, admin_key, unique_prompt(), header_only)
    assert response.status_code == 422, response.text

    from controller.services.prompts import PromptService

    strict = PromptService(runtime.db, runtime.flows, runtime.prompts.directory, max_seconds=2)
    from controller.services.prompts import InvalidAudio

    class Reader:
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def read(self, size: int = -1) -> bytes:
            chunk, self.data = self.data[:size], self.data[size:]
            return chunk

    with pytest.raises(InvalidAudio, match="at most 2 s"):
        await strict.upload(unique_prompt(), Reader(audio["long.wav"].read_bytes()), "long.wav")


async def test_names_conflicts_and_replace(client: httpx.AsyncClient, admin_key: str,
                                           audio: dict[str, Path]) -> None:
    for bad in ("Upper", "-dash-first", "with space", "a\nb", "x" * 65, "dot.ted", ""):
        response = await upload(client, admin_key, bad, audio["tone.wav"])
        assert response.status_code == 422, (bad, response.text)
    name = unique_prompt()
    assert (await upload(client, admin_key, name, audio["tone.wav"])).status_code == 201
    clash = await upload(client, admin_key, name, audio["long.wav"])
    assert clash.status_code == 409
    replaced = await upload(client, admin_key, name, audio["long.wav"], replace="true")
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["duration_s"] > 2.5
    missing_file = await client.post("/v1/prompts", headers=bearer(admin_key), data={"name": "x"})
    assert missing_file.status_code == 422


async def test_delete_refused_while_a_flow_uses_it(client: httpx.AsyncClient, admin_key: str,
                                                   runtime: Runtime, audio: dict[str, Path]) -> None:
    name = unique_prompt("welcome")
    assert (await upload(client, admin_key, name, audio["tone.wav"])).status_code == 201
    flow = f"flow-{uuid4().hex[:8]}"
    document = {"start": "a", "nodes": {"a": {"type": "hangup", "prompts": [f"prompt:{name}"]}}}
    made = await client.post("/v1/flows", headers=bearer(admin_key),
                             json={"name": flow, "document": document})
    assert made.status_code == 201, made.text

    blocked = await client.delete(f"/v1/prompts/{name}", headers=bearer(admin_key))
    assert blocked.status_code == 409
    assert flow in blocked.json()["detail"]

    await client.put(f"/v1/flows/{flow}", headers=bearer(admin_key),
                     json={"document": {"start": "a", "nodes": {"a": {"type": "hangup"}}}})
    assert (await client.delete(f"/v1/prompts/{name}", headers=bearer(admin_key))).status_code == 204
    assert not (runtime.prompts.directory / f"{name}.wav").exists()
    assert (await client.get(f"/v1/prompts/{name}", headers=bearer(admin_key))).status_code == 404
    assert (await client.delete(f"/v1/prompts/{name}", headers=bearer(admin_key))).status_code == 404


async def test_audio_file_gone_is_410(client: httpx.AsyncClient, admin_key: str, runtime: Runtime,
                                      audio: dict[str, Path]) -> None:
    name = unique_prompt()
    assert (await upload(client, admin_key, name, audio["tone.wav"])).status_code == 201
    (runtime.prompts.directory / f"{name}.wav").unlink()
    response = await client.get(f"/v1/prompts/{name}/audio", headers=bearer(admin_key))
    assert response.status_code == 410
    assert (await client.delete(f"/v1/prompts/{name}", headers=bearer(admin_key))).status_code == 204
