"""Loading the recorded FreeSWITCH 1.10.12 ESL sessions (``shared/freeswitch/transcripts``).

The recordings live outside the repository, beside the clone (they are 14 MB); tests that need them skip with
a reason when the directory is absent. ``CCC_ESL_TRANSCRIPTS`` names another directory.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

TRANSCRIPTS = Path(os.environ.get(
    "CCC_ESL_TRANSCRIPTS",
    str(Path(__file__).resolve().parents[3] / "shared" / "freeswitch" / "transcripts"),
))


def available() -> bool:
    return TRANSCRIPTS.is_dir() and any(TRANSCRIPTS.glob("*.json"))


needs_transcripts = pytest.mark.skipif(
    not available(),
    reason=f"no FreeSWITCH ESL transcripts at {TRANSCRIPTS} (set CCC_ESL_TRANSCRIPTS)",
)


def names() -> list[str]:
    return sorted(p.stem for p in TRANSCRIPTS.glob("*.json")) if available() else []


@cache
def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((TRANSCRIPTS / f"{name}.json").read_text("utf-8"))
    return doc


def frame_bytes(frame: dict[str, Any]) -> bytes:
    return frame["data"].encode("utf-8")


def recv_frames(name: str, conn: str) -> list[dict[str, Any]]:
    return [f for f in load(name)["frames"] if f["conn"] == conn and f["dir"] == "recv"]


def recv_bin(name: str, conn: str) -> bytes:
    info = next(c for c in load(name)["connections"] if c["id"] == conn)
    return (TRANSCRIPTS / info["recv_bin"]).read_bytes()
