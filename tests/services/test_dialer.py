"""The dialer service on the real Postgres and Redis, with a switch that records what it is
asked to do (the real-Asterisk side is tests/integration/test_dialer.py): calls placed per
free agent, one process per campaign (the lease), numbers that are not E.164 never reach the
switch, an unanswered leg's cause becomes the attempt's outcome, preview places nothing."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.access import Principal, Role
from controller.domain.agents import Agent, AgentState, QueueConfig
from controller.domain.errors import Conflict, Forbidden
from controller.engines.acd import AcdState
from controller.services.calls import CallService
from controller.services.campaigns import plan_of
from controller.services.dialer import DialerService
from controller.storage import campaigns as store
from controller.storage.lease import Lease
from controller.storage.live import LiveStore
from controller.storage.outbox import RecordWriter
from tests.conftest import TEST_REDIS_URL, eventually
from tests.services.test_campaign_hopper import Outbound, out  # noqa: F401 (the fixture)

ALL_DAY = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}]


@dataclass
class RecordingSwitch:
    """Takes every command and keeps it; legs only end when the test says so."""

    name: str = "fake"
    commands: list[c.Command] = field(default_factory=list)

    async def execute(self, command: c.Command) -> None:
        self.commands.append(command)

    async def playback_active(self, playback_id: str) -> bool:
        return False

    def originates(self) -> list[c.Originate]:
        return [x for x in self.commands if isinstance(x, c.Originate)]


@dataclass
class Env:
    out: Outbound
    switch: RecordingSwitch
    calls: CallService
    acd: types.SimpleNamespace

    def dialer(self, node: str) -> DialerService:
        redis = self.out.redis
        return DialerService(self.out.db, self.out.outbound, self.calls, self.acd,  # type: ignore[arg-type]
                             lambda cid: Lease(redis, f"ccc:{self.out.cluster}:campaign:{cid}:dialer"), node,
                             context="ccc-outbound", abandon_message="im-sorry")


def staffed(queue: str, free: int) -> AcdState:
    agents = {f"a{i}": Agent(f"a{i}", f"a{i}", f"PJSIP/a{i}", state=AgentState.AVAILABLE,
                             state_since=datetime.now(UTC)) for i in range(free)}
    members = tuple((agent_id, 0) for agent_id in agents)
    return AcdState(agents=agents, queues={queue: QueueConfig(name=queue, members=members)})


@pytest.fixture
async def env(out: Outbound) -> AsyncIterator[Env]:  # noqa: F811
    records = RecordWriter(out.db)
    live = LiveStore(TEST_REDIS_URL, f"t{uuid4().hex[:8]}")
    await records.start()
    await live.start()
    switch = RecordingSwitch()
    calls = CallService(switch, records, live, "sound:hello-world")
    yield Env(out, switch, calls, types.SimpleNamespace(state=staffed(out.queue, 2)))
    await calls.close()
    await records.close()
    await live.close()


async def running(env: Env, numbers: list[str], **config: object) -> str:
    config.setdefault("calling_windows", ALL_DAY)
    csv = "phone,first name\n" + "".join(f"{n},Lead {i}\n" for i, n in enumerate(numbers))
    campaign_id = await env.out.campaign(csv, **config)
    await env.out.start(campaign_id)
    await env.out.outbound.feed(campaign_id)  # the worker's beat
    return campaign_id


async def test_one_call_per_free_agent_by_one_process(env: Env) -> None:
    campaign_id = await running(env, [f"+1212555{n:04d}" for n in range(1, 6)])
    first, second = env.dialer("one"), env.dialer("two")
    try:
        assert (await first.run_once())[campaign_id] == 2
        # The other process does not hold the campaign's lease: it dials nothing.
        assert campaign_id not in await second.run_once()
        # Two lines ring for two free agents: nothing more.
        assert (await first.run_once())[campaign_id] == 0
    finally:
        await first.close()
        await second.close()
    originates = env.switch.originates()
    assert [o.endpoint for o in originates] == ["Local/+12125550001@ccc-outbound",
                                                "Local/+12125550002@ccc-outbound"]
    assert all(o.timeout_s == 25 and o.args == ("campaign", o.leg_id.split(".")[0]) for o in originates)
    call = env.calls.find(originates[0].leg_id.split(".")[0])
    assert call is not None and call.data["campaign"] == campaign_id
    assert call.data["lead_first_name"] == "Lead 0" and call.data["queue"] == env.out.queue
    assert (await env.out.states(campaign_id))["+12125550001"] == "dialing"


async def test_an_unanswered_leg_becomes_the_attempts_outcome(env: Env) -> None:
    numbers = ["+12125550011", "+12125550012"]
    campaign_id = await running(env, numbers, retry_rules=[{"outcome": "busy", "delays_s": [60]}])
    dialer = env.dialer("one")
    try:
        assert (await dialer.run_once())[campaign_id] == 2
        busy, congested = env.switch.originates()
        env.calls.submit(e.LegHungUp(busy.leg_id, datetime.now(UTC), 17, "User busy"))
        env.calls.submit(e.LegHungUp(congested.leg_id, datetime.now(UTC), 34, "Circuit/channel congestion"))

        async def recorded() -> bool:
            states = await env.out.states(campaign_id)
            return states[numbers[0]] == "ready" and states[numbers[1]] == "exhausted"

        await eventually(recorded, 5, what="both outcomes recorded")
    finally:
        await dialer.close()
    contacts = {c.number: c for c in await env.out.contacts.list(campaign_id, limit=10)}
    assert contacts[numbers[0]].last_outcome == "busy" and contacts[numbers[1]].last_outcome == "failed"
    assert dialer.calls_of(campaign_id) == []


async def test_a_number_that_is_not_e164_never_reaches_the_switch(env: Env) -> None:
    # Postgres refuses such a number in a contact; the dialer checks again before the dialplan.
    campaign_id = await running(env, ["+12125550021"])
    dial = await env.out.outbound.next_contact(campaign_id)
    assert dial is not None
    async with env.out.db.connection() as conn:
        record = await store.get_campaign(conn, campaign_id)
    assert record is not None
    dialer = env.dialer("one")
    try:
        assert not await dialer.place(plan_of(record), replace(dial, number="+1212555@evil/x\r\nDial(x)"))
    finally:
        await dialer.close()
    assert env.switch.originates() == []
    async with env.out.db.connection() as conn:
        cursor = await conn.execute("SELECT outcome, reason FROM campaign_attempts WHERE id = %s",
                                    (dial.attempt_id,))
        rows = await cursor.fetchall()
    assert [(r["outcome"], r["reason"]) for r in rows] == [("failed", "number not in E.164 form: not dialed")]


async def test_preview_offers_free_agents_a_contact_and_unstaffed_campaigns_dial_nothing(env: Env) -> None:
    published: list = []
    preview = await running(env, ["+12125550031", "+12125550032", "+12125550033"])
    async with env.out.db.connection() as conn:
        await conn.execute("UPDATE campaigns SET mode = 'preview' WHERE id = %s", (preview,))
    dialer = env.dialer("one")
    dialer._publish = published.append
    try:
        # Two free agents: one contact each, offered on the feed; nothing is dialed.
        assert (await dialer.run_once())[preview] == 2
        assert (await dialer.run_once())[preview] == 0  # both hold an open preview
        assert sorted(event.agents for event in published) == [("a0",), ("a1",)]
        [offer] = [event for event in published if event.agents == ("a0",)]
        assert offer.type == "campaign.preview" and offer.data["agent_id"] == "a0"
        lead = {"+12125550031": "Lead 0", "+12125550032": "Lead 1", "+12125550033": "Lead 2"}
        assert offer.data["fields"] == {"first name": lead[offer.data["number"]]}
        # Another agent may not act on a0's preview; a0 skips it: cancelled, due again.
        other = Principal(uuid4(), "a1's key", Role.AGENT, "a1")
        mine = Principal(uuid4(), "a0's key", Role.AGENT, "a0")
        attempt_id = UUID(offer.data["attempt_id"])
        with pytest.raises(Forbidden):
            await dialer.skip(other, preview, attempt_id)
        await dialer.skip(mine, preview, attempt_id)
        with pytest.raises(Conflict):
            await dialer.skip(mine, preview, attempt_id)
        assert (await env.out.states(preview))[offer.data["number"]] == "ready"
        assert (await dialer.run_once())[preview] == 1  # a0 is free of a preview again
        # An offer nobody answers is withdrawn after the timeout, and the agent gets another.
        async with env.out.db.connection() as conn:
            await conn.execute("UPDATE campaign_attempts SET started_at = started_at - interval '1 hour'"
                               " WHERE campaign_id = %s AND ended_at IS NULL AND agent_id = 'a1'", (preview,))
        assert (await dialer.run_once())[preview] == 0  # withdrawn; its contact is not in the hopper yet
        await env.out.outbound.feed(preview)  # the worker's beat
        assert (await dialer.run_once())[preview] == 1
        async with env.out.db.connection() as conn:
            cursor = await conn.execute("SELECT outcome, reason FROM campaign_attempts WHERE campaign_id = %s"
                                        " AND agent_id = 'a1' ORDER BY started_at", (preview,))
            rows = await cursor.fetchall()
        assert [(r["outcome"], r["reason"]) for r in rows] == [
            ("cancelled", "preview neither accepted nor skipped in time"), (None, None)]

        env.acd.state = staffed(env.out.queue, 0)
        progressive = await running(env, ["+12125550034"])
        assert (await dialer.run_once())[progressive] == 0
    finally:
        await dialer.close()
    assert env.switch.originates() == []
