"""Where call control sends a party: an agent, a queue, an extension, a number or an endpoint.

The patterns are the whole validation of what a client may name: they admit no whitespace,
control characters, commas or '&' (which would change the meaning of a dial string), and the
adapter checks again before anything reaches the switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
QUEUE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
EXTENSION_PATTERN = r"^[0-9*#]{1,32}$"
NUMBER_PATTERN = r"^\+?[0-9]{1,20}$"
# An Asterisk dial string: technology/resource, e.g. PJSIP/1001, Local/1001@agents, PJSIP/sip:x@y.
ENDPOINT_PATTERN = r"^[A-Za-z0-9]{1,16}/[A-Za-z0-9@._:+*#/-]{1,128}$"
# DTMF a client may send: digits, * and #, A-D.
DTMF_PATTERN = r"^[0-9*#A-D]{1,32}$"


class DestinationKind(StrEnum):
    AGENT = "agent"
    QUEUE = "queue"
    EXTENSION = "extension"
    NUMBER = "number"
    ENDPOINT = "endpoint"


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"
