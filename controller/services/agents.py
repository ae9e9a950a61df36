"""Agents: who takes queue calls, on which device, with which skills.

Writes are validated here (the id, the device as a dial string that cannot change the meaning
of a Dial, skill levels 1 to 10), so every stored agent can be loaded by the ACD
(``to_domain``). Deleting is soft, and refused (409) while the agent is a member of a queue;
creating a deleted id again revives it, so its state log goes on.

The state log (``log_state``, ``state_log``) is append-only: every agent state change the ACD
makes is one row. After every successful write, ``on_change`` (when given) is awaited, so the
live ACD reloads its configuration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from controller.domain.agents import MAX_SKILL_LEVEL, MIN_SKILL_LEVEL, Agent, AgentState
from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.storage import acd as store
from controller.storage.acd import AgentRecord, AgentStateRow
from controller.storage.db import Database

log = logging.getLogger(__name__)

# Agent ids and queue names: lower-case letters, digits, '_' and '-', starting with a letter or
# digit, at most 64.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID = re.compile(ID_PATTERN[1:-1])
# Skills and groups.
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_LABEL = re.compile(LABEL_PATTERN[1:-1])
# A technology, '/', then a resource: PJSIP/1001, Local/1001@agents/n. No whitespace, control
# characters, ',' (Dial's option separator) or '&' (its device separator).
DEVICE_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}/[^\s,&\x00-\x1f\x7f-\x9f]{1,200}$"
_DEVICE = re.compile(DEVICE_PATTERN[1:-1])
# A device whose state is followed (PJSIP/1001, Custom:agent7): a technology, '/' or ':', then a
# plain name. Narrower than a dial string: it goes inside DEVICE_STATE(...) on the switch, so no
# parentheses, quotes or separators.
STATE_DEVICE_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}[/:][A-Za-z0-9_.@+*#-]{1,200}$"
_STATE_DEVICE = re.compile(STATE_DEVICE_PATTERN[1:-1])
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
_TEXT = re.compile(TEXT_PATTERN[1:-1])
NAME_MAX_LENGTH = 200
MAX_SKILLS = 100
MAX_GROUPS = 100
STATE_LOG_LIMIT = 1000

OnChange = Callable[[], Awaitable[None]]


class InvalidAgent(ControllerError, ValueError):
    """The agent is not valid."""

    code = "invalid-agent"
    status = 422


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """What a client says about an agent."""

    name: str
    device: str
    skills: dict[str, int] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    state_device: str | None = None  # None: follow the device's own state, where it has one


def check_id(value: object, what: str, invalid: Callable[[str], ControllerError]) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise invalid(f"{what} must be 1 to 64 lower-case letters, digits, '_' or '-', starting "
                      "with a letter or digit")
    return value


def agent_to_domain(record: AgentRecord) -> Agent:
    """The configured agent as the ACD knows it, logged out until it logs in."""
    return Agent(id=record.id, name=record.name, device=record.device, skills=dict(record.skills),
                 state_device=record.state_device)


class AgentService:
    def __init__(self, db: Database, on_change: OnChange | None = None) -> None:
        self._db = db
        self.on_change = on_change

    async def list(self) -> list[AgentRecord]:
        async with self._db.connection() as conn:
            return await store.list_agents(conn)

    async def get(self, agent_id: str) -> AgentRecord:
        check_id(agent_id, "agent id", InvalidAgent)
        async with self._db.connection() as conn:
            found = await store.get_agent(conn, agent_id)
        if found is None:
            raise NotFound(f"no agent {agent_id}")
        return found

    async def create(self, agent_id: str, spec: AgentSpec) -> AgentRecord:
        """A new agent (or a deleted one revived); Conflict if a live agent has the id."""
        record = _validated(agent_id, spec)
        async with self._db.connection() as conn:
            created = await store.insert_agent(conn, record)
        if created is None:
            raise Conflict(f"agent {agent_id} exists; PUT /v1/agents/{agent_id} replaces it")
        log.info("agent created", extra={"agent_id": agent_id, "device": spec.device})
        await self._changed()
        return created

    async def update(self, agent_id: str, spec: AgentSpec) -> AgentRecord:
        record = _validated(agent_id, spec)
        async with self._db.connection() as conn:
            updated = await store.update_agent(conn, record)
        if updated is None:
            raise NotFound(f"no agent {agent_id}")
        log.info("agent updated", extra={"agent_id": agent_id, "device": spec.device})
        await self._changed()
        return updated

    async def delete(self, agent_id: str) -> None:
        """Soft delete; Conflict while the agent is a member of a queue."""
        check_id(agent_id, "agent id", InvalidAgent)
        async with self._db.connection() as conn:
            if not await store.lock_agent(conn, agent_id):
                raise NotFound(f"no agent {agent_id}")
            queues = await store.queues_of_agent(conn, agent_id)
            if queues:
                raise Conflict(f"agent {agent_id} is a member of {', '.join(queues)}")
            await store.delete_agent(conn, agent_id)
        log.info("agent deleted", extra={"agent_id": agent_id})
        await self._changed()

    @staticmethod
    def to_domain(record: AgentRecord) -> Agent:
        return agent_to_domain(record)

    async def log_state(self, agent_id: str, at: datetime, state: AgentState, reason: str = "",
                        queue: str | None = None, call_id: str | None = None) -> None:
        """Append one state change to the log (the ACD's ``StateLog``)."""
        async with self._db.connection() as conn:
            await store.insert_agent_state(conn, AgentStateRow(agent_id, at, state.value, reason or "",
                                                               queue, call_id))

    async def state_log(self, agent_id: str, since: datetime | None = None,
                        until: datetime | None = None,
                        limit: int = STATE_LOG_LIMIT) -> list[AgentStateRow]:
        """The agent's state changes in [since, until), oldest first, at most ``limit``.
        A deleted agent's log stays readable; NotFound if no agent ever had the id."""
        check_id(agent_id, "agent id", InvalidAgent)
        async with self._db.connection() as conn:
            if not await store.agent_ever_existed(conn, agent_id):
                raise NotFound(f"no agent {agent_id}")
            return await store.agent_state_log(conn, agent_id, since, until, limit)

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()


def _validated(agent_id: str, spec: AgentSpec) -> AgentRecord:
    check_id(agent_id, "agent id", InvalidAgent)
    if (not isinstance(spec.name, str) or not 1 <= len(spec.name) <= NAME_MAX_LENGTH
            or not _TEXT.fullmatch(spec.name) or not _utf8(spec.name)):
        raise InvalidAgent(f"name must be 1 to {NAME_MAX_LENGTH} printable characters")
    if not isinstance(spec.device, str) or not _DEVICE.fullmatch(spec.device) or not _utf8(spec.device):
        raise InvalidAgent("device must be a dial string such as PJSIP/1001 or Local/1001@agents, "
                           "without whitespace, control characters, ',' or '&'")
    if not isinstance(spec.skills, dict) or len(spec.skills) > MAX_SKILLS:
        raise InvalidAgent(f"skills must be an object of at most {MAX_SKILLS} skills")
    for skill, level in spec.skills.items():
        if not isinstance(skill, str) or not _LABEL.fullmatch(skill):
            raise InvalidAgent(f"skills: {skill!r} is not a skill name (1 to 64 letters, digits, "
                               "'_', '.' or '-')")
        if isinstance(level, bool) or not isinstance(level, int) or not (
                MIN_SKILL_LEVEL <= level <= MAX_SKILL_LEVEL):
            raise InvalidAgent(f"skills.{skill}: the level must be {MIN_SKILL_LEVEL} to {MAX_SKILL_LEVEL}")
    groups = tuple(spec.groups)
    if len(groups) > MAX_GROUPS:
        raise InvalidAgent(f"groups: at most {MAX_GROUPS}")
    for group in groups:
        if not isinstance(group, str) or not _LABEL.fullmatch(group):
            raise InvalidAgent(f"groups: {group!r} is not a group name (1 to 64 letters, digits, "
                               "'_', '.' or '-')")
    if len(set(groups)) != len(groups):
        raise InvalidAgent("groups: a group is listed twice")
    if spec.state_device is not None and (not isinstance(spec.state_device, str)
                                          or not _STATE_DEVICE.fullmatch(spec.state_device)):
        raise InvalidAgent("state_device must be a device name such as PJSIP/1001 or Custom:agent7 "
                           "(letters, digits and _ . @ + * # - after the technology)")
    return AgentRecord(agent_id, spec.name, spec.device, dict(spec.skills), groups,
                       state_device=spec.state_device)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON "\udxxx" escape
        return False
    return True
