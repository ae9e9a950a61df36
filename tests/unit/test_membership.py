"""Queue members as agents and groups (engines/membership.py): which agents, which penalty,
which order; and that the ACD routes to an agent who is a member only through a group."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from controller.domain.agents import Agent, AgentState, QueueConfig, QueueEntry, QueueMember, Strategy
from controller.engines import acd
from controller.engines.membership import Membership, ResolvedMember, resolve

A, G = QueueMember.agent, QueueMember.group
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

AGENTS = {
    "ann": ("sales", "support"),
    "bob": ("sales",),
    "cid": ("support",),
    "dee": (),
}


def test_a_group_comes_to_its_agents_in_id_order_with_the_groups_penalty() -> None:
    got = resolve([G("sales", 2)], AGENTS)
    assert got == Membership((ResolvedMember("ann", 2, "sales"), ResolvedMember("bob", 2, "sales")))
    assert got.pairs() == (("ann", 2), ("bob", 2))


def test_an_agent_listed_by_itself_keeps_its_own_entry_even_over_a_better_group() -> None:
    got = resolve([G("sales", 0), A("bob", 5)], AGENTS)
    assert got.pairs() == (("ann", 0), ("bob", 5))
    assert got.members[1].group is None


def test_an_agent_in_several_groups_gets_the_lowest_penalty_and_that_groups_place() -> None:
    got = resolve([G("sales", 3), G("support", 1)], AGENTS)
    # ann is in both: support (1) beats sales (3), so she takes support's place.
    assert got.members == (ResolvedMember("bob", 3, "sales"), ResolvedMember("ann", 1, "support"),
                           ResolvedMember("cid", 1, "support"))


def test_on_a_tie_the_group_listed_first_wins() -> None:
    got = resolve([G("support", 1), G("sales", 1)], AGENTS)
    assert [(m.agent_id, m.group) for m in got.members] == [
        ("ann", "support"), ("cid", "support"), ("bob", "sales")]


def test_member_order_follows_the_entries() -> None:
    got = resolve([A("dee", 0), G("support", 0), A("bob", 0)], AGENTS)
    assert [m.agent_id for m in got.members] == ["dee", "ann", "cid", "bob"]


def test_a_group_with_no_agent_is_kept_and_reported() -> None:
    got = resolve([G("nights", 0), A("dee", 1), G("weekend", 2), G("nights", 0)], AGENTS)
    assert got.pairs() == (("dee", 1),)
    assert got.empty_groups == ("nights", "weekend")


def test_group_names_are_compared_exactly() -> None:
    assert resolve([G("Sales", 0)], AGENTS).pairs() == ()


def test_adding_an_agent_to_a_group_makes_it_a_member_without_touching_the_queue() -> None:
    configured = [G("support", 0)]
    before = resolve(configured, AGENTS)
    after = resolve(configured, {**AGENTS, "dee": ("support",)})
    assert "dee" not in dict(before.pairs()) and dict(after.pairs())["dee"] == 0


member_entries = st.lists(
    st.one_of(st.builds(A, st.sampled_from(["ann", "bob", "cid", "dee", "eve"]), st.integers(0, 3)),
              st.builds(G, st.sampled_from(["sales", "support", "nights"]), st.integers(0, 3))),
    max_size=6, unique_by=lambda m: (m.kind, m.name))
agent_groups = st.dictionaries(st.sampled_from(["ann", "bob", "cid", "dee", "eve"]),
                               st.lists(st.sampled_from(["sales", "support", "nights"]), max_size=3,
                                        unique=True).map(tuple), max_size=5)


@given(member_entries, agent_groups)
def test_every_agent_once_with_the_penalty_the_rules_give(configured: list[QueueMember],
                                                          groups: dict[str, tuple[str, ...]]) -> None:
    got = dict(resolve(configured, groups).pairs())
    assert len(got) == len(resolve(configured, groups).members)  # nobody twice
    explicit = {m.name: m.penalty for m in configured if m.kind.value == "agent"}
    listed = {m.name for m in configured if m.kind.value == "group"}
    assert set(got) == explicit.keys() | {a for a, mine in groups.items() if listed & set(mine)}
    for agent_id, agent_groups_ in groups.items():
        through = [m.penalty for m in configured if m.kind.value == "group" and m.name in agent_groups_]
        if agent_id in explicit:
            assert got[agent_id] == explicit[agent_id]
        elif through:
            assert got[agent_id] == min(through)
        else:
            assert agent_id not in got
    assert resolve(configured, groups) == resolve(configured, dict(reversed(list(groups.items()))))


def test_the_acd_routes_to_an_agent_who_is_a_member_only_through_a_group() -> None:
    membership = resolve([A("ann", 1), G("support", 0)], AGENTS)
    state = acd.AcdState(
        agents={agent_id: Agent(agent_id, agent_id, f"PJSIP/{agent_id}", state=AgentState.AVAILABLE)
                for agent_id in AGENTS},
        queues={"q": QueueConfig("q", Strategy.LINEAR, membership.pairs())})
    n = itertools.count(1)
    decision = acd.on_event(state, acd.CallQueued(QueueEntry("c1", "q", T0)), T0,
                            lambda prefix: f"{prefix}-{next(n)}")
    [offer] = [cmd for cmd in decision.commands if isinstance(cmd, acd.OfferCall)]
    assert offer.agent_ids == ("cid",)  # support's tier 0 beats ann's own tier 1
