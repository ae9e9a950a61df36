"""Voicemail messages: recorded by the switch into its recording spool, one row each here.

The call service calls ``store`` once a recording has finished; the API lists, streams, marks
heard and deletes. A message's file is ``<recordings dir>/<recording name>.wav``; a row whose
file has gone (removed by hand, spool cleaned) answers 410 on its audio, never 500.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

from controller.domain.errors import ControllerError, NotFound
from controller.storage import inbound as store
from controller.storage.db import Database
from controller.storage.inbound import Voicemail, VoicemailFilter

log = logging.getLogger(__name__)

# What the switch is asked to record as: safe in a path and in an ARI URL.
RECORDING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAILBOX_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$"
_MAILBOX = re.compile(MAILBOX_PATTERN[1:-1])
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidVoicemail(ControllerError, ValueError):
    """The voicemail cannot be stored as given."""

    code = "invalid-voicemail"
    status = 422


class AudioGone(ControllerError):
    """The audio file of this resource is missing or cannot be read."""

    code = "audio-gone"
    status = 410


@dataclass(frozen=True, slots=True)
class AudioFile:
    path: Path
    stat: os.stat_result


def open_audio(directory: Path, file_name: str, what: str) -> AudioFile:
    """The file ``directory/file_name`` if it is a readable regular file inside ``directory``;
    AudioGone otherwise."""
    path = directory / file_name
    try:
        if path.resolve().parent != directory.resolve():
            raise AudioGone(f"the audio file of {what} is outside its folder")
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
    except OSError as exc:
        raise AudioGone(f"the audio file of {what} is missing or unreadable") from exc
    if not (stat.st_mode & 0o170000) == 0o100000:
        raise AudioGone(f"the audio file of {what} is not a regular file")
    return AudioFile(path, stat)


def _text(value: str | None, what: str, limit: int = 256) -> str:
    value = value or ""
    if not isinstance(value, str):
        raise InvalidVoicemail(f"{what} must be text")
    # Caller ids come from the network: keep them printable rather than refuse the message.
    return _CONTROL.sub("\ufffd", value.encode("utf-8", "replace").decode("utf-8"))[:limit]


class VoicemailService:
    def __init__(self, db: Database, recordings_dir: Path) -> None:
        self._db = db
        self._dir = recordings_dir

    @property
    def recordings_dir(self) -> Path:
        return self._dir

    async def store(self, mailbox: str, call_id: str | None, caller_number: str | None,
                    caller_name: str | None, recording_name: str, duration_s: float) -> Voicemail:
        """Record a message the switch recorded as ``<recording_name>.wav`` in the spool."""
        if not isinstance(mailbox, str) or not _MAILBOX.fullmatch(mailbox):
            raise InvalidVoicemail("mailbox must be 1 to 64 characters without control characters")
        if not isinstance(recording_name, str) or not RECORDING_NAME.fullmatch(recording_name) \
                or ".." in recording_name:
            raise InvalidVoicemail("recording name must be letters, digits, '_', '.' or '-'")
        if not isinstance(duration_s, int | float) or not math.isfinite(duration_s) or duration_s < 0:
            raise InvalidVoicemail("duration_s must be a finite number of seconds, not negative")
        async with self._db.connection() as conn:
            voicemail = await store.insert_voicemail(
                conn, id=uuid4(), mailbox=mailbox, call_id=_text(call_id, "call id") or None,
                caller_number=_text(caller_number, "caller number"),
                caller_name=_text(caller_name, "caller name"), duration_s=float(duration_s),
                file_name=f"{recording_name}.wav")
        log.info("voicemail stored", extra={"voicemail_id": str(voicemail.id), "mailbox": mailbox,
                                             "call_id": call_id})
        return voicemail

    async def list(self, filters: VoicemailFilter) -> list[Voicemail]:
        """Messages not deleted, newest first."""
        async with self._db.connection() as conn:
            return await store.list_voicemails(conn, filters)

    async def get(self, voicemail_id: UUID) -> Voicemail:
        async with self._db.connection() as conn:
            voicemail = await store.get_voicemail(conn, voicemail_id)
        if voicemail is None:
            raise NotFound(f"no voicemail {voicemail_id}")
        return voicemail

    async def audio(self, voicemail_id: UUID) -> AudioFile:
        """The message's WAV file; NotFound for no message, AudioGone for no file."""
        voicemail = await self.get(voicemail_id)
        return open_audio(self._dir, voicemail.file_name, f"voicemail {voicemail_id}")

    async def mark_heard(self, voicemail_id: UUID) -> Voicemail:
        """Idempotent: hearing again keeps the first time."""
        async with self._db.connection() as conn:
            voicemail = await store.mark_heard(conn, voicemail_id)
        if voicemail is None:
            raise NotFound(f"no voicemail {voicemail_id}")
        return voicemail

    async def delete(self, voicemail_id: UUID) -> None:
        """Remove the file and mark the row deleted; NotFound if already gone."""
        async with self._db.connection() as conn:
            voicemail = await store.delete_voicemail(conn, voicemail_id)
            if voicemail is None:
                raise NotFound(f"no voicemail {voicemail_id}")
            path = self._dir / voicemail.file_name
            if path.resolve().parent == self._dir.resolve():
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("voicemail file not removed: %s", exc,
                                extra={"voicemail_id": str(voicemail_id)})
        log.info("voicemail deleted", extra={"voicemail_id": str(voicemail_id)})
