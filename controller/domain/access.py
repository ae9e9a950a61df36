"""Who may act: API key roles."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an API request, as established from its API key."""

    key_id: UUID
    key_name: str
    role: Role
    agent_id: str | None = None  # the agent an agent key acts for (none: it acts for nobody)
    # The queues a supervisor key oversees; empty: the whole floor.
    queues: tuple[str, ...] = ()

    @property
    def oversees_calls(self) -> bool:
        """Admins, supervisors and integrations (CRMs) may act on any call; agents on their own."""
        return self.role is not Role.AGENT

    @property
    def queue_scope(self) -> tuple[str, ...] | None:
        """The queues a supervisor key is limited to, or None when it is not limited."""
        return self.queues if self.role is Role.SUPERVISOR and self.queues else None
