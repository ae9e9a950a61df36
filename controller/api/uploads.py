"""Reading an uploaded file into memory, refusing it past a size."""

from __future__ import annotations

from fastapi import UploadFile

from controller.services.flows import PayloadTooLarge

CHUNK = 64 * 1024


async def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The whole file; PayloadTooLarge (413) as soon as it passes ``max_bytes``."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await file.read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"the file is larger than {max_bytes // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)
