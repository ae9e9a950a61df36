"""Queues: where callers wait for agents, how agents are picked, and who the members are.
Admins and supervisors write; integrations read.

A member is an agent (``{"agent_id", "penalty"}``) or a group of agents (``{"group",
"penalty"}``: every agent whose ``groups`` name it, now and later). Responses show the members
as written and ``resolved_members``, the agents they come to now (engines/membership.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.agents import (
    MAX_SKILL_LEVEL,
    MIN_SKILL_LEVEL,
    ExitAction,
    MemberKind,
    QueueMember,
    Strategy,
)
from controller.services.agents import ID_PATTERN
from controller.services.flows import NAME_PATTERN
from controller.services.queues import (
    ANNOUNCE_EVERY_MAX,
    EXIT_KEY_PATTERN,
    GROUP_PATTERN,
    MAILBOX_PATTERN,
    MAX_LENGTH_MAX,
    MAX_MEMBERS,
    MAX_RULES,
    MAX_WAIT_MAX,
    MISSES_MAX,
    MOH_CLASS_PATTERN,
    PENALTY_MAX,
    RING_TIMEOUT_MAX,
    SERVICE_LEVEL_MAX,
    WRAP_UP_MAX,
    QueueSpec,
    QueueView,
)

router = APIRouter(prefix="/v1/queues", tags=["queues"])

WRITERS = authorize(Role.ADMIN, Role.SUPERVISOR)
READERS = authorize(Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION)

QueueName = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN,
                                description="The queue's name")]
Penalty = Annotated[int, Field(ge=0, le=PENALTY_MAX)]


class AgentMember(BaseModel):
    """One agent."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    penalty: Penalty = Field(0, description="Lower penalties are offered calls first")

    def to_domain(self) -> QueueMember:
        return QueueMember.agent(self.agent_id, self.penalty)


class GroupMember(BaseModel):
    """Every agent whose groups name this group (an agent listed by itself keeps its own entry;
    an agent in several listed groups gets the lowest penalty among them)."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(min_length=1, max_length=64, pattern=GROUP_PATTERN, examples=["sales"])
    penalty: Penalty = Field(0, description="Lower penalties are offered calls first")

    def to_domain(self) -> QueueMember:
        return QueueMember.group(self.group, self.penalty)


def _member_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "group" if "group" in value else "agent"
    return "group" if isinstance(value, GroupMember) else "agent"


# Which model a member is read as is told by its fields, so an error names the right one
# (members.0.group.penalty) rather than both.
Member = Annotated[Annotated[AgentMember, Tag("agent")] | Annotated[GroupMember, Tag("group")],
                   Discriminator(_member_kind)]


def member_out(member: QueueMember) -> AgentMember | GroupMember:
    if member.kind is MemberKind.GROUP:
        return GroupMember(group=member.name, penalty=member.penalty)
    return AgentMember(agent_id=member.name, penalty=member.penalty)


class ResolvedMember(BaseModel):
    agent_id: str
    penalty: int
    group: str | None = Field(description="The group the agent is a member through; null: listed by itself")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_wait_s: int = Field(ge=0, le=MAX_WAIT_MAX, description="From this wait on")
    max_penalty: Penalty | None = Field(None, description="Offer to members up to this penalty")
    min_skill_level: int | None = Field(None, ge=MIN_SKILL_LEVEL, le=MAX_SKILL_LEVEL,
                                        description="Required skills are needed only at this level")


class HangUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["hangup"]


class ToQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["queue"]
    queue: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN,
                       description="Another queue (its own wait starts at 0)")


class ToFlow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["flow"]
    flow: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description="A flow; the caller's flow goes on there, from its start")


class ToVoicemail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["voicemail"]
    mailbox: str = Field(min_length=1, max_length=64, pattern=MAILBOX_PATTERN,
                         description="The caller records a message for this mailbox")


Overflow = Annotated[HangUp | ToQueue | ToFlow | ToVoicemail, Field(discriminator="action")]


class QueueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(Strategy.LONGEST_IDLE, description="How an agent is picked")
    members: list[Member] = Field(default_factory=list, max_length=MAX_MEMBERS,
                                  description="Agents and groups, in member order (for linear and "
                                              "round_robin; a group's agents by id)")
    ring_timeout_s: int = Field(20, ge=1, le=RING_TIMEOUT_MAX, description="How long an offer rings")
    wrap_up_s: int = Field(0, ge=0, le=WRAP_UP_MAX, description="After-call work before the next offer")
    max_misses_before_pause: int = Field(3, ge=0, le=MISSES_MAX,
                                         description="Offers missed in a row that pause the agent "
                                                     "(0: never)")
    service_level_s: int = Field(20, ge=1, le=SERVICE_LEVEL_MAX,
                                 description="Answered within this counts toward the service level")
    max_wait_s: int | None = Field(None, ge=1, le=MAX_WAIT_MAX, description="Overflow after this wait")
    max_length: int | None = Field(None, ge=1, le=MAX_LENGTH_MAX,
                                   description="At most this many callers waiting")
    max_penalty: Penalty | None = Field(None, description="Before any rule, offer to members up to "
                                                          "this penalty (null: all)")
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES,
                              description="Limits that widen as a caller waits")
    moh_class: str = Field("default", min_length=1, max_length=64, pattern=MOH_CLASS_PATTERN,
                           description="Asterisk music-on-hold class callers hear")
    overflow: Overflow = Field(default_factory=lambda: HangUp(action="hangup"),
                               description="Where a caller goes after max_wait_s, when the queue is "
                                           "full, or when it has no agents (see join/leave_when_empty)")
    join_when_empty: StrictBool = Field(False, description="Callers may join while no member is logged in "
                                                     "and reachable (else they overflow at once)")
    leave_when_empty: StrictBool = Field(True, description="Waiting callers overflow when the last member "
                                                     "logged in and reachable goes")
    announce_every_s: int = Field(0, ge=0, le=ANNOUNCE_EVERY_MAX,
                                  description="Tell waiting callers their position and estimated wait "
                                              "this often (0: never)")
    exit_key: str | None = Field(None, pattern=EXIT_KEY_PATTERN,
                                 description="A DTMF key that takes the caller out of the queue")
    exit_action: ExitAction | None = Field(None, description="What the exit key does: voicemail (to "
                                                             "exit_mailbox) or callback (the caller "
                                                             "keeps its place and is called back)")
    exit_mailbox: str | None = Field(None, min_length=1, max_length=64, pattern=MAILBOX_PATTERN,
                                     description="With exit_action voicemail")

    def spec(self) -> QueueSpec:
        return QueueSpec(
            strategy=self.strategy.value,
            members=tuple(m.to_domain() for m in self.members),
            ring_timeout_s=self.ring_timeout_s, wrap_up_s=self.wrap_up_s,
            max_misses_before_pause=self.max_misses_before_pause,
            service_level_s=self.service_level_s, max_wait_s=self.max_wait_s,
            max_length=self.max_length, max_penalty=self.max_penalty,
            rules=tuple(rule.model_dump(exclude_none=True) for rule in self.rules),
            moh_class=self.moh_class, overflow=self.overflow.model_dump(),
            join_when_empty=self.join_when_empty, leave_when_empty=self.leave_when_empty,
            announce_every_s=self.announce_every_s, exit_key=self.exit_key,
            exit_action=self.exit_action.value if self.exit_action else None,
            exit_mailbox=self.exit_mailbox,
        )


class NewQueue(QueueBody):
    name: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["support"])


class QueueOut(QueueBody):
    model_config = ConfigDict(extra="ignore")

    name: str
    resolved_members: list[ResolvedMember] = Field(
        description="The agents the members come to now, in member order: what the ACD offers calls to")
    empty_groups: list[str] = Field(description="Groups among the members that no agent is in (yet)")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: QueueView) -> QueueOut:
        record, membership = view.record, view.membership
        return cls.model_validate({
            "name": record.name, "strategy": record.strategy,
            "members": [member_out(m) for m in record.members],
            "resolved_members": [{"agent_id": m.agent_id, "penalty": m.penalty, "group": m.group}
                                 for m in membership.members],
            "empty_groups": list(membership.empty_groups),
            "ring_timeout_s": record.ring_timeout_s, "wrap_up_s": record.wrap_up_s,
            "max_misses_before_pause": record.max_misses_before_pause,
            "service_level_s": record.service_level_s, "max_wait_s": record.max_wait_s,
            "max_length": record.max_length, "max_penalty": record.max_penalty,
            "rules": list(record.rules), "moh_class": record.moh_class,
            "overflow": record.overflow, "join_when_empty": record.join_when_empty,
            "leave_when_empty": record.leave_when_empty, "announce_every_s": record.announce_every_s,
            "exit_key": record.exit_key, "exit_action": record.exit_action,
            "exit_mailbox": record.exit_mailbox,
            "created_at": record.created_at, "updated_at": record.updated_at,
        })


@router.post("", status_code=201, response_model=QueueOut,
             summary="Create a queue (admin, supervisor); agent members must exist, groups need not",
             responses=problems(400, 401, 403, 409, 422, 503))
async def create_queue(
    body: NewQueue,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> QueueOut:
    return QueueOut.of(await runtime.queues.create(body.name, body.spec()))


@router.get("", response_model=list[QueueOut], summary="Every queue, by name",
            responses=problems(401, 403, 503))
async def list_queues(
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> list[QueueOut]:
    return [QueueOut.of(view) for view in await runtime.queues.list()]


@router.get("/{name}", response_model=QueueOut, summary="One queue",
            responses=problems(401, 403, 404, 422, 503))
async def get_queue(
    name: QueueName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(READERS),
) -> QueueOut:
    return QueueOut.of(await runtime.queues.get(name))


@router.put("/{name}", response_model=QueueOut,
            summary="Replace a queue and its members (admin, supervisor)",
            responses=problems(400, 401, 403, 404, 422, 503))
async def update_queue(
    name: QueueName,
    body: QueueBody,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> QueueOut:
    return QueueOut.of(await runtime.queues.update(name, body.spec()))


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a queue and its memberships (admin, supervisor); 409 while another "
                       "queue overflows to it",
               responses=problems(401, 403, 404, 409, 422, 503))
async def delete_queue(
    name: QueueName,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(WRITERS),
) -> Response:
    await runtime.queues.delete(name)
    return Response(status_code=204)
