"""Queues: where callers wait for agents, how agents are picked, and who the members are.

Writes are validated here: the strategy is one of ``Strategy``, limits are in range, each rule
is a ``QueueRule``, every agent member is a live agent (checked in the same transaction that
writes the members, with the agents locked so none is deleted meanwhile), every group member is
a group name (a group with no agent is accepted, and reported in ``QueueView.membership``), no
agent or group is listed twice, the overflow destination names an existing queue (not this one)
or live flow, or a mailbox, and the whole is accepted by ``QueueConfig`` itself
(``queue_to_domain``), so every stored queue can be loaded by the ACD. A queue cannot be deleted
while another queue overflows to it.

``all_configs`` is what the live ACD loads: every agent and every queue, read in one snapshot,
with each queue's groups resolved into agents (engines/membership.py). After every successful
write, ``on_change`` (when given) is awaited, so the ACD reloads; the agents' service does the
same, so a change to an agent's groups changes the queues it is a member of at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from controller.domain.agents import (
    DTMF_KEYS,
    MAX_SKILL_LEVEL,
    MIN_SKILL_LEVEL,
    Agent,
    DestinationKind,
    ExitAction,
    MemberKind,
    QueueConfig,
    QueueDestination,
    QueueMember,
    QueueRule,
    Strategy,
)
from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.engines.membership import Membership, resolve
from controller.services.agents import LABEL_PATTERN, OnChange, agent_to_domain, check_id
from controller.storage import acd as store
from controller.storage.acd import AgentRecord, QueueRecord
from controller.storage.db import Database

log = logging.getLogger(__name__)

RING_TIMEOUT_MAX = 600
WRAP_UP_MAX = 3600
MISSES_MAX = 100
SERVICE_LEVEL_MAX = 3600
MAX_WAIT_MAX = 86_400
MAX_LENGTH_MAX = 100_000
PENALTY_MAX = 1000
MAX_MEMBERS = 1000
MAX_RULES = 20
MOH_CLASS_PATTERN = LABEL_PATTERN
_MOH_CLASS = re.compile(MOH_CLASS_PATTERN[1:-1])
# Group names, as agents' groups are written (services/agents.py).
GROUP_PATTERN = LABEL_PATTERN
_GROUP = re.compile(GROUP_PATTERN[1:-1])
ANNOUNCE_EVERY_MAX = 3600
# Mailboxes a queue sends callers to: the same alphabet as flow names (no separators, no spaces).
MAILBOX_PATTERN = LABEL_PATTERN
_MAILBOX = re.compile(MAILBOX_PATTERN[1:-1])
EXIT_KEY_PATTERN = r"^[0-9*#A-D]$"
# The field of the overflow object that names the target, by action.
OVERFLOW_TARGET = {"queue": "queue", "flow": "flow", "voicemail": "mailbox"}
RULE_FIELDS = ("after_wait_s", "max_penalty", "min_skill_level")


class InvalidQueue(ControllerError, ValueError):
    """The queue is not valid."""

    code = "invalid-queue"
    status = 422


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """What a client says about a queue; the defaults are QueueConfig's."""

    strategy: str = Strategy.LONGEST_IDLE.value
    # Agents and groups, in member order; a plain (agent_id, penalty) pair is an agent (and is
    # made a QueueMember when the spec is built).
    members: tuple[QueueMember | tuple[str, int], ...] = ()
    ring_timeout_s: int = 20
    wrap_up_s: int = 0
    max_misses_before_pause: int = 3
    service_level_s: int = 20
    max_wait_s: int | None = None
    max_length: int | None = None
    max_penalty: int | None = None
    rules: tuple[dict[str, int], ...] = ()  # {after_wait_s, max_penalty?, min_skill_level?}
    moh_class: str = "default"
    overflow: dict[str, str] | None = None  # {"action": hangup|queue|flow|voicemail, <target>}
    join_when_empty: bool = False
    leave_when_empty: bool = True
    announce_every_s: int = 0
    exit_key: str | None = None
    exit_action: str | None = None
    exit_mailbox: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(
            QueueMember.agent(*m) if isinstance(m, tuple) and len(m) == 2 else m for m in self.members))


@dataclass(frozen=True, slots=True)
class QueueView:
    """A stored queue with the agents its members come to now (groups resolved)."""

    record: QueueRecord
    membership: Membership


GroupsOf = Mapping[str, Iterable[str]]  # agent id -> its groups, for every live agent


def groups_of(agents: Iterable[AgentRecord]) -> dict[str, tuple[str, ...]]:
    return {agent.id: agent.groups for agent in agents}


def destination(overflow: dict[str, str]) -> QueueDestination:
    """A stored overflow object as the domain's destination."""
    action = overflow.get("action", "hangup")
    field_name = OVERFLOW_TARGET.get(action)
    return QueueDestination(DestinationKind(action), overflow.get(field_name, "") if field_name else "")


def queue_to_domain(record: QueueRecord, groups: GroupsOf | None = None) -> QueueConfig:
    """The queue as the ACD takes it: its members resolved into agents with ``groups`` (every
    live agent's groups; without it, groups come to no agent)."""
    membership = resolve(record.members, groups or {})
    return QueueConfig(
        name=record.name, strategy=Strategy(record.strategy), members=membership.pairs(),
        ring_timeout_s=record.ring_timeout_s, wrap_up_s=record.wrap_up_s,
        max_misses_before_pause=record.max_misses_before_pause,
        service_level_s=record.service_level_s, max_wait_s=record.max_wait_s,
        max_length=record.max_length, max_penalty=record.max_penalty,
        rules=tuple(QueueRule(**rule) for rule in record.rules),
        overflow=destination(record.overflow), join_when_empty=record.join_when_empty,
        leave_when_empty=record.leave_when_empty, announce_every_s=record.announce_every_s,
        exit_key=record.exit_key,
        exit_action=ExitAction(record.exit_action) if record.exit_action else None,
        exit_mailbox=record.exit_mailbox, moh_class=record.moh_class,
    )


class QueueService:
    def __init__(self, db: Database, on_change: OnChange | None = None) -> None:
        self._db = db
        self.on_change = on_change

    async def list(self) -> list[QueueView]:
        async with self._db.connection() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            queues = await store.list_queues(conn)
            groups = groups_of(await store.list_agents(conn))
        return [QueueView(q, resolve(q.members, groups)) for q in queues]

    async def get(self, name: str) -> QueueView:
        check_id(name, "queue name", InvalidQueue)
        async with self._db.connection() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = await store.get_queue(conn, name)
            if found is None:
                raise NotFound(f"no queue {name}")
            return await _view(conn, found)

    async def create(self, name: str, spec: QueueSpec) -> QueueView:
        """A new queue; Conflict if the name is taken, InvalidQueue if an agent member is no agent."""
        record = _validated(name, spec)
        try:
            async with self._db.connection() as conn:
                await _check_members(conn, record)
                await _check_overflow(conn, record)
                created = await _view(conn, await store.insert_queue(conn, record))
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"queue {name} exists; PUT /v1/queues/{name} replaces it") from exc
        _log_written("created", created)
        await self._changed()
        return created

    async def update(self, name: str, spec: QueueSpec) -> QueueView:
        record = _validated(name, spec)
        async with self._db.connection() as conn:
            await _check_members(conn, record)
            await _check_overflow(conn, record)
            updated = await store.update_queue(conn, record)
            if updated is None:
                raise NotFound(f"no queue {name}")
            view = await _view(conn, updated)
        _log_written("updated", view)
        await self._changed()
        return view

    async def delete(self, name: str) -> None:
        check_id(name, "queue name", InvalidQueue)
        async with self._db.connection() as conn:
            users = [user for user in await store.queues_overflowing_to(conn, name) if user != name]
            if users:
                raise Conflict(f"queue {name} is the overflow of queue(s) {', '.join(users)}; change them "
                               "first")
            deleted = await store.delete_queue(conn, name)
        if not deleted:
            raise NotFound(f"no queue {name}")
        log.info("queue deleted", extra={"queue": name})
        await self._changed()

    @staticmethod
    def to_domain(view: QueueView) -> QueueConfig:
        return replace(queue_to_domain(view.record), members=view.membership.pairs())

    async def all_configs(self) -> tuple[list[Agent], list[QueueConfig]]:
        """Every live agent and every queue, from one snapshot, for the ACD to load; groups are
        resolved into agents here, so the ACD only ever sees agents."""
        async with self._db.connection() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            agents = await store.list_agents(conn)
            queues = await store.list_queues(conn)
        groups = groups_of(agents)
        return [agent_to_domain(a) for a in agents], [queue_to_domain(q, groups) for q in queues]

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()


async def _view(conn: psycopg.AsyncConnection, record: QueueRecord) -> QueueView:
    """The queue with its members resolved against the agents as this transaction sees them."""
    return QueueView(record, resolve(record.members, groups_of(await store.list_agents(conn))))


def _log_written(what: str, view: QueueView) -> None:
    record, membership = view.record, view.membership
    log.info("queue %s", what, extra={"queue": record.name, "members": len(record.members),
                                      "agents": len(membership.members)})
    if membership.empty_groups:
        log.warning("queue %s: no agent is in group(s) %s yet", record.name,
                    ", ".join(membership.empty_groups), extra={"queue": record.name})


async def _check_members(conn: psycopg.AsyncConnection, record: QueueRecord) -> None:
    agents = [(i, m.name) for i, m in enumerate(record.members) if m.kind is MemberKind.AGENT]
    live = await store.live_agents_for_share(conn, [agent_id for _, agent_id in agents])
    for i, agent_id in agents:
        if agent_id not in live:
            raise InvalidQueue(f"members[{i}].agent_id: no agent {agent_id}")


async def _check_overflow(conn: psycopg.AsyncConnection, record: QueueRecord) -> None:
    target = destination(record.overflow)
    action, target_name = target.kind.value, target.target
    if action == "queue" and not await store.queue_exists(conn, target_name):
        raise InvalidQueue(f"overflow.queue: no queue {target_name}")
    if action == "flow" and not await store.flow_exists(conn, target_name):
        raise InvalidQueue(f"overflow.flow: no flow {target_name}")


def _overflow(overflow: object, name: str) -> dict[str, str]:
    if overflow is None:
        return {"action": "hangup"}
    if not isinstance(overflow, dict) or overflow.get("action") not in ("hangup", *OVERFLOW_TARGET):
        raise InvalidQueue("overflow must be {action: hangup|queue|flow|voicemail, ...}")
    action = overflow["action"]
    field_name = OVERFLOW_TARGET.get(action)
    if set(overflow) != {"action", *([field_name] if field_name else [])}:
        raise InvalidQueue(f"overflow with action {action} has " + (f"exactly one more field, {field_name}"
                                                                   if field_name else "no other field"))
    if field_name is None:
        return {"action": action}
    target = overflow[field_name]
    if action == "queue":
        check_id(target, "overflow.queue", InvalidQueue)
        if target == name:
            raise InvalidQueue("overflow.queue: a queue cannot overflow to itself")
    elif action == "flow":
        if not isinstance(target, str) or not _MAILBOX.fullmatch(target):
            raise InvalidQueue("overflow.flow must be a flow name")
    elif not isinstance(target, str) or not _MAILBOX.fullmatch(target):
        raise InvalidQueue("overflow.mailbox must be 1 to 64 letters, digits, '_', '.' or '-'")
    return {"action": action, field_name: target}


def _exit(spec: QueueSpec) -> tuple[str | None, str | None, str | None]:
    key, action, mailbox = spec.exit_key, spec.exit_action, spec.exit_mailbox
    if key is not None and (not isinstance(key, str) or key not in DTMF_KEYS):
        raise InvalidQueue("exit_key must be one DTMF key: 0-9, *, #, A-D")
    if action is not None and action not in {a.value for a in ExitAction}:
        raise InvalidQueue("exit_action must be voicemail or callback")
    if (key is None) != (action is None):
        raise InvalidQueue("exit_key and exit_action go together")
    if action == ExitAction.VOICEMAIL.value:
        if not isinstance(mailbox, str) or not _MAILBOX.fullmatch(mailbox):
            raise InvalidQueue("exit_mailbox: exit to voicemail needs a mailbox (1 to 64 letters, digits, "
                               "'_', '.' or '-')")
    elif mailbox is not None:
        raise InvalidQueue("exit_mailbox is only for exit_action voicemail")
    return key, action, mailbox


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQueue(f"{what} must be an integer from {low} to {high}")
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidQueue(f"{what} must be true or false")
    return value


def _optional_int(value: object, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQueue(f"{what} must be null or an integer from {low} to {high}")
    return value


def _rules(rules: object) -> tuple[dict[str, int], ...]:
    if not isinstance(rules, (list, tuple)) or len(rules) > MAX_RULES:
        raise InvalidQueue(f"rules must be a list of at most {MAX_RULES} rules")
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or "after_wait_s" not in rule or set(rule) - set(RULE_FIELDS):
            raise InvalidQueue(f"rules[{i}] must be {{after_wait_s, max_penalty?, min_skill_level?}}")
        checked: dict[str, Any] = {
            "after_wait_s": _int(rule["after_wait_s"], f"rules[{i}].after_wait_s", 0, MAX_WAIT_MAX),
            "max_penalty": _optional_int(rule.get("max_penalty"), f"rules[{i}].max_penalty", 0,
                                         PENALTY_MAX),
            "min_skill_level": _optional_int(rule.get("min_skill_level"), f"rules[{i}].min_skill_level",
                                             MIN_SKILL_LEVEL, MAX_SKILL_LEVEL),
        }
        out.append({k: v for k, v in checked.items() if v is not None})
    return tuple(out)


def _members(members: object) -> tuple[QueueMember, ...]:
    if not isinstance(members, (list, tuple)) or len(members) > MAX_MEMBERS:
        raise InvalidQueue(f"members must be a list of at most {MAX_MEMBERS} members")
    seen: set[tuple[MemberKind, str]] = set()
    for i, member in enumerate(members):
        if not isinstance(member, QueueMember):
            raise InvalidQueue(f"members[{i}] must be an agent or a group")
        if member.kind is MemberKind.AGENT:
            check_id(member.name, f"members[{i}].agent_id", InvalidQueue)
        elif not isinstance(member.name, str) or not _GROUP.fullmatch(member.name):
            raise InvalidQueue(f"members[{i}].group must be 1 to 64 letters, digits, '_', '.' or '-'")
        _int(member.penalty, f"members[{i}].penalty", 0, PENALTY_MAX)
        if (member.kind, member.name) in seen:
            field_name = "agent_id" if member.kind is MemberKind.AGENT else "group"
            raise InvalidQueue(f"members[{i}].{field_name}: {member.kind.value} {member.name} is listed "
                               "twice")
        seen.add((member.kind, member.name))
    return tuple(members)


def _validated(name: str, spec: QueueSpec) -> QueueRecord:
    check_id(name, "queue name", InvalidQueue)
    try:
        strategy = Strategy(spec.strategy)
    except ValueError as exc:
        choices = ", ".join(s.value for s in Strategy)
        raise InvalidQueue(f"strategy must be one of {choices}") from exc
    members = _members(spec.members)
    if not isinstance(spec.moh_class, str) or not _MOH_CLASS.fullmatch(spec.moh_class):
        raise InvalidQueue("moh_class must be 1 to 64 letters, digits, '_', '.' or '-'")
    exit_key, exit_action, exit_mailbox = _exit(spec)
    record = QueueRecord(
        name=name, strategy=strategy.value,
        ring_timeout_s=_int(spec.ring_timeout_s, "ring_timeout_s", 1, RING_TIMEOUT_MAX),
        wrap_up_s=_int(spec.wrap_up_s, "wrap_up_s", 0, WRAP_UP_MAX),
        max_misses_before_pause=_int(spec.max_misses_before_pause, "max_misses_before_pause", 0,
                                     MISSES_MAX),
        service_level_s=_int(spec.service_level_s, "service_level_s", 1, SERVICE_LEVEL_MAX),
        max_wait_s=_optional_int(spec.max_wait_s, "max_wait_s", 1, MAX_WAIT_MAX),
        max_length=_optional_int(spec.max_length, "max_length", 1, MAX_LENGTH_MAX),
        max_penalty=_optional_int(spec.max_penalty, "max_penalty", 0, PENALTY_MAX),
        rules=_rules(spec.rules), moh_class=spec.moh_class, members=members,
        overflow=_overflow(spec.overflow, name),
        join_when_empty=_bool(spec.join_when_empty, "join_when_empty"),
        leave_when_empty=_bool(spec.leave_when_empty, "leave_when_empty"),
        announce_every_s=_int(spec.announce_every_s, "announce_every_s", 0, ANNOUNCE_EVERY_MAX),
        exit_key=exit_key, exit_action=exit_action, exit_mailbox=exit_mailbox,
    )
    try:
        queue_to_domain(record)  # QueueConfig's own checks, the last word
    except ValueError as exc:
        raise InvalidQueue(str(exc)) from exc
    return record
