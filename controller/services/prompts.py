"""Uploaded prompts: audio converted for the switch, measured, and stored where it plays them.

An upload (WAV or MP3, at most 20 MB) is copied to a private temporary folder, converted by
sox to 8 kHz mono 16-bit WAV (what Asterisk plays on narrowband calls without transcoding),
written next to its final place under a hidden name, measured with ``sox … stats`` and only
then renamed to ``<prompts dir>/<name>.wav``, so Asterisk never sees a half-written file; it
plays it as ``sound:ccc/<name>``. Refused with 422: audio sox cannot read, an empty file, one
longer than ``max_seconds``, or one whose peak is below -40 dBFS (near silence). The row is
written in the same transaction as the rename, so a name clash leaves the existing file alone.

A prompt that a current flow version or a route's overflow announcement names cannot be
deleted (409).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Protocol
from uuid import uuid4

import psycopg

from controller.domain.errors import Conflict, ControllerError, NotFound, StorageUnavailable
from controller.services.flows import FlowService, PayloadTooLarge
from controller.services.voicemails import AudioFile, open_audio
from controller.storage import inbound as store
from controller.storage.db import Database
from controller.storage.inbound import Prompt

log = logging.getLogger(__name__)

PROMPT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_PROMPT_NAME = re.compile(PROMPT_NAME_PATTERN[1:-1])
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
SAMPLE_RATE = 8000
SILENCE_DBFS = -40.0
SOX_TIMEOUT = 120.0
_CHUNK = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Types sox is told explicitly when the bytes or the file name say so.
_EXTENSIONS = {"wav": "wav", "wave": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg",
               "oga": "ogg", "aif": "aiff", "aiff": "aiff", "au": "au", "gsm": "gsm"}


class InvalidPrompt(ControllerError, ValueError):
    """The prompt cannot be stored as given."""

    code = "invalid-prompt"
    status = 422


class InvalidAudio(ControllerError, ValueError):
    """The audio cannot be used as a prompt."""

    code = "invalid-audio"
    status = 422


class AudioToolUnavailable(ControllerError):
    """sox is not installed or did not answer in time."""

    code = "audio-tool-unavailable"
    status = 503


class AsyncReadable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


def check_prompt_name(name: object) -> str:
    if not isinstance(name, str) or not _PROMPT_NAME.fullmatch(name):
        raise InvalidPrompt("a prompt name is 1 to 64 of a-z, 0-9, '_' or '-', starting with a "
                            "letter or digit")
    return name


class PromptService:
    def __init__(self, db: Database, flows: FlowService, directory: Path, max_seconds: int) -> None:
        self._db = db
        self._flows = flows
        self._dir = directory
        self._max_seconds = max_seconds

    @property
    def directory(self) -> Path:
        return self._dir

    async def list(self) -> list[Prompt]:
        async with self._db.connection() as conn:
            return await store.list_prompts(conn)

    async def get(self, name: str) -> Prompt:
        check_prompt_name(name)
        async with self._db.connection() as conn:
            prompt = await store.get_prompt(conn, name)
        if prompt is None:
            raise NotFound(f"no prompt {name}")
        return prompt

    async def audio(self, name: str) -> AudioFile:
        prompt = await self.get(name)
        return open_audio(self._dir, prompt.file_name, f"prompt {name}")

    async def upload(self, name: str, source: AsyncReadable, original_filename: str | None = None,
                     *, replace: bool = False) -> Prompt:
        """Convert, measure and store an upload as prompt ``name``. Conflict if the name is
        taken and ``replace`` is false; InvalidAudio (422) if the audio is unusable;
        PayloadTooLarge past 20 MB."""
        check_prompt_name(name)
        original = _clean_filename(original_filename)
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="ccc-prompt-"))
        partial: Path | None = None
        try:
            upload = work / ("upload" + _extension(original))
            await _save(source, upload)
            kind = await asyncio.to_thread(_sniff, upload)
            if kind is None and upload.suffix:
                kind = _EXTENSIONS[upload.suffix[1:]]
            try:
                await asyncio.to_thread(_ensure_readable_dir, self._dir)
            except OSError as exc:
                raise StorageUnavailable(f"prompts folder: {exc}") from exc
            partial = self._dir / f".{name}.{secrets.token_hex(6)}.part"
            await _sox(["-V1", "-G", *(["-t", kind] if kind else []), str(upload),
                        "-t", "wav", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                        "-e", "signed-integer", str(partial)],
                       hide={str(upload): "the upload", str(partial): "the converted file"})
            stats = await _measure(partial)
            self._check(stats)
            await asyncio.to_thread(os.chmod, partial, 0o644)
            size = (await asyncio.to_thread(partial.stat)).st_size
            row = {
                "id": uuid4(), "name": name, "file_name": f"{name}.wav",
                "duration_s": stats["length"], "sample_rate": int(stats["rate"]),
                "rms_db": stats["rms"], "peak_db": stats["peak"], "size_bytes": size,
                "original_filename": original,
            }
            try:
                async with self._db.connection() as conn:
                    prompt = await store.save_prompt(conn, row, replace=replace)
                    await asyncio.to_thread(os.replace, partial, self._dir / prompt.file_name)
                    partial = None
            except OSError as exc:
                raise StorageUnavailable(f"prompts folder: {exc}") from exc
            except psycopg.errors.UniqueViolation as exc:
                raise Conflict(f"prompt {name} exists; delete it first or upload with "
                               "replace=true") from exc
        finally:
            if partial is not None:
                await asyncio.to_thread(partial.unlink, missing_ok=True)
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
        log.info("prompt stored", extra={"prompt": name, "duration_s": prompt.duration_s,
                                          "peak_db": prompt.peak_db, "replaced": replace})
        return prompt

    async def delete(self, name: str) -> None:
        """Remove a prompt and its file. Conflict while a current flow or a route uses it."""
        check_prompt_name(name)
        users = await self._flows.users_of(prompt=name)
        if users:
            raise Conflict(f"prompt {name} is used by {', '.join(users)}")
        async with self._db.connection() as conn:
            prompt = await store.delete_prompt(conn, name)
            if prompt is None:
                raise NotFound(f"no prompt {name}")
            await asyncio.to_thread((self._dir / prompt.file_name).unlink, missing_ok=True)
        log.info("prompt deleted", extra={"prompt": name})

    def _check(self, stats: dict[str, float]) -> None:
        if stats["length"] <= 0 or stats["samples"] <= 0:
            raise InvalidAudio("the audio is empty")
        if stats["length"] > self._max_seconds:
            raise InvalidAudio(f"the audio lasts {stats['length']:.1f} s; at most "
                               f"{self._max_seconds} s are accepted")
        if not math.isfinite(stats["peak"]) or stats["peak"] < SILENCE_DBFS:
            raise InvalidAudio(f"the audio is near silence (peak {stats['peak']:.1f} dBFS, below "
                               f"{SILENCE_DBFS:.0f} dBFS)")
        if not math.isfinite(stats["rms"]):
            raise InvalidAudio("the audio is near silence")


def _ensure_readable_dir(directory: Path) -> None:
    """The folder exists and Asterisk (another user, maybe) may list and read it."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {directory}")
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o755 != 0o755:
        try:
            os.chmod(directory, mode | 0o755)
        except PermissionError:
            log.warning("prompts folder %s is not readable by others; Asterisk may not play "
                        "prompts", directory)


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = name.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("\ufffd", name)[:255] or None


def _extension(original: str | None) -> str:
    suffix = Path(original or "").suffix.lower().lstrip(".")
    return f".{suffix}" if suffix in _EXTENSIONS else ""


def _sniff(path: Path) -> str | None:
    """The type the first bytes announce, for the two formats the contract names."""
    with path.open("rb") as handle:
        head = handle.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


async def _save(source: AsyncReadable, target: Path) -> None:
    total = 0
    with target.open("wb") as out:
        while chunk := await source.read(_CHUNK):
            total += len(chunk)
            if total > MAX_UPLOAD_BYTES:
                raise PayloadTooLarge(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
            await asyncio.to_thread(out.write, chunk)
    if total == 0:
        raise InvalidAudio("the audio is empty")


async def _run(program: str, args: list[str]) -> tuple[int, str, str]:
    try:
        process = await asyncio.create_subprocess_exec(
            program, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError as exc:
        raise AudioToolUnavailable("sox is not installed (Debian: apt-get install sox "
                                   "libsox-fmt-mp3)") from exc
    try:
        async with asyncio.timeout(SOX_TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise AudioToolUnavailable(f"sox did not finish within {SOX_TIMEOUT:g} s") from exc
    assert process.returncode is not None
    return process.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


async def _sox(args: list[str], hide: dict[str, str]) -> None:
    code, _, stderr = await _run("sox", args)
    if code != 0:
        for secret, shown in hide.items():
            stderr = stderr.replace(f"`{secret}'", shown).replace(secret, shown)
        lines = [line for line in stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"sox exited with {code}"
        reason = re.sub(r"^sox (FAIL|WARN) \w+: ", "", reason)
        raise InvalidAudio(f"could not read the audio: {_CONTROL.sub(' ', reason)[:300]}")


def _number(value: str, default: float = -math.inf) -> float:
    try:
        number = float(value)
    except ValueError:
        return default
    return number if not math.isnan(number) else default


async def _measure(path: Path) -> dict[str, float]:
    """Length (s), RMS and peak level (dBFS), samples and sample rate of a WAV file."""
    code, _, stderr = await _run("sox", [str(path), "-n", "stats"])
    if code != 0:
        raise InvalidAudio("the audio is empty or could not be measured")
    fields: dict[str, str] = {}
    for line in stderr.splitlines():
        match = re.match(r"^([A-Za-z][A-Za-z .-]*?)\s{2,}(\S+)", line)
        if match:
            fields[match.group(1).strip()] = match.group(2)
    _, rate, _ = await _run("sox", ["--i", "-r", str(path)])
    _, samples, _ = await _run("sox", ["--i", "-s", str(path)])
    rate_hz = _number(rate.strip(), SAMPLE_RATE)
    return {
        "length": _number(fields.get("Length s", "0"), 0.0),
        "rms": _number(fields.get("RMS lev dB", "-inf")),
        "peak": _number(fields.get("Pk lev dB", "-inf")),
        "rate": rate_hz if math.isfinite(rate_hz) and 0 < rate_hz < 10**6 else SAMPLE_RATE,
        "samples": _number(samples.strip(), 0.0),
    }
