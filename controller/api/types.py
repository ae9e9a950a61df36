"""Parameter types shared by the routes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: object) -> object:
    # Pydantic would also take a number (Unix time); the document promises a date-time string.
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time with a zone, e.g. 2026-01-31T08:00:00Z")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
