"""Which agents a queue's members come to: agents listed one by one, and groups of agents.

Pure: ``resolve(configured, groups_of)`` takes a queue's members as configured (``QueueMember``:
an agent or a group, each with a penalty, in member order) and every agent's groups, and returns
the agents the ACD offers the queue's calls to, each with one penalty, in member order.

The rules:

- An agent listed by itself is a member with its own penalty, whatever its groups say (the
  explicit entry wins, even over a lower penalty from a group).
- Otherwise an agent is a member through each listed group that names it (an agent's
  ``groups``; names are compared exactly, case included), with the best (lowest) penalty among
  those groups; on a tie, the group listed first.
- Member order (linear, round-robin and every tie-break): an agent takes the place of the entry
  it is a member through; the agents of one group come in the order of their ids.
- A group that names no agent is allowed (agents may join it later) and is reported in
  ``empty_groups``, in member order.

The service resolves again whenever agents or queues change (services/queues.py
``all_configs``, loaded by the ACD after every write), so an agent added to a group is a member
of the group's queues at once, without the queues being written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.domain.agents import MemberKind, QueueMember


@dataclass(frozen=True, slots=True)
class ResolvedMember:
    agent_id: str
    penalty: int
    group: str | None = None  # the group that made the agent a member; None: listed by itself


@dataclass(frozen=True, slots=True)
class Membership:
    members: tuple[ResolvedMember, ...] = ()
    empty_groups: tuple[str, ...] = ()

    def pairs(self) -> tuple[tuple[str, int], ...]:
        """(agent_id, penalty) in member order: ``QueueConfig.members``."""
        return tuple((m.agent_id, m.penalty) for m in self.members)


def resolve(configured: Sequence[QueueMember], groups_of: Mapping[str, Iterable[str]]) -> Membership:
    """The agents ``configured`` comes to, given each agent's groups (``groups_of``: agent id →
    its group names, every agent that exists)."""
    agent_ids = sorted(groups_of)
    rank = {agent_id: i for i, agent_id in enumerate(agent_ids)}
    in_group: dict[str, list[str]] = {}
    for agent_id in agent_ids:
        for group in dict.fromkeys(groups_of[agent_id]):
            in_group.setdefault(group, []).append(agent_id)

    # agent id -> (penalty, position of the entry it is a member through, group or None)
    chosen: dict[str, tuple[int, int, str | None]] = {
        member.name: (member.penalty, position, None)
        for position, member in enumerate(configured) if member.kind is MemberKind.AGENT
    }
    explicit = set(chosen)
    empty: list[str] = []
    for position, member in enumerate(configured):
        if member.kind is not MemberKind.GROUP:
            continue
        agents = in_group.get(member.name, [])
        if not agents:
            empty.append(member.name)
        for agent_id in agents:
            best = chosen.get(agent_id)
            if agent_id in explicit or (best is not None and best[0] <= member.penalty):
                continue
            chosen[agent_id] = (member.penalty, position, member.name)

    ordered = sorted(chosen.items(), key=lambda item: (item[1][1], rank.get(item[0], -1)))
    return Membership(
        tuple(ResolvedMember(agent_id, penalty, group) for agent_id, (penalty, _, group) in ordered),
        tuple(dict.fromkeys(empty)),
    )
