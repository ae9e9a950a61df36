"""The outbound cycle on the real Postgres and Redis: feeding hoppers, taking contacts,
outcomes and retries, do-not-call at both checks, callbacks, expiry, pause, and the Celery
tasks that run the same services.

The clock is driven: every call takes ``at``, a weekday afternoon (UTC) a few days ahead, when
New York (09:00-21:00 window) is open and Los Angeles is not yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import redis.asyncio as redis

from controller.domain.campaigns import CampaignAction, Outcome
from controller.domain.errors import Conflict
from controller.services.campaigns import CampaignService, CampaignSpec
from controller.services.contacts import ContactService, ImportMapping
from controller.services.dnc import DncService
from controller.services.outbound import InvalidOutcome, OutboundService
from controller.services.queues import QueueService, QueueSpec
from controller.storage.db import Database
from controller.storage.hopper import HopperStore
from tests.conftest import TEST_REDIS_URL

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def next_weekday_afternoon() -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=2)
    while day.weekday() != 2:  # a Wednesday: no weekend, no DST change near it
        day += timedelta(days=1)
    # 10:00 (EST) or 11:00 (EDT) in New York; 07:00 or 08:00 in Los Angeles.
    return datetime.combine(day, time(15, 0), tzinfo=UTC)


AT = next_weekday_afternoon()


@dataclass
class Outbound:
    db: Database
    redis: redis.Redis
    cluster: str
    hopper: HopperStore
    outbound: OutboundService
    campaigns: CampaignService
    contacts: ContactService
    dnc: DncService
    queue: str

    async def campaign(self, csv_text: str, *, region: str | None = None, **config: Any) -> str:
        campaign_id = f"svc-{uuid4().hex[:10]}"
        config.setdefault("calling_windows", [{"days": WEEKDAYS, "start": "09:00", "end": "21:00"}])
        spec = CampaignSpec(name="svc", mode="progressive", queue=self.queue, config=config)
        await self.campaigns.create(campaign_id, spec)
        if csv_text:
            done = await self.contacts.upload(campaign_id, csv_text.encode(),
                                              ImportMapping(default_region=region))
            assert done.state == "done" and done.invalid == 0, done.errors
        return campaign_id

    async def start(self, campaign_id: str) -> None:
        await self.campaigns.act(campaign_id, CampaignAction.START)

    async def states(self, campaign_id: str) -> dict[str, str]:
        return {c.number: c.state for c in await self.contacts.list(campaign_id, limit=1000)}

    async def contact_id(self, campaign_id: str, number: str) -> int:
        [found] = [c.id for c in await self.contacts.list(campaign_id, limit=1000) if c.number == number]
        return found


@pytest.fixture
async def out(migrated_database: str) -> AsyncIterator[Outbound]:
    db = Database(migrated_database, min_size=1, max_size=4)
    await db.open()
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    cluster = f"t{uuid4().hex[:12]}"
    hopper = HopperStore(client, cluster)
    queue = f"svc-{uuid4().hex[:8]}"
    await QueueService(db).create(queue, QueueSpec())
    yield Outbound(db, client, cluster, hopper, OutboundService(db, hopper), CampaignService(db, hopper),
                   ContactService(db), DncService(db), queue)
    keys = [key async for key in client.scan_iter(f"ccc:{cluster}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    await db.close()


def numbers(prefix: str, count: int, start: int = 1) -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(start, start + count)]


async def test_feeding_honours_windows_dnc_and_room(out: Outbound) -> None:
    ny = numbers("+1212555", 6)
    la = numbers("+1415555", 2)
    global_dnc = f"+1646555{uuid4().int % 10_000:04d}"
    campaign_id = await out.campaign("phone,name\n" + "".join(f"{n},x\n" for n in ny + la + [global_dnc]),
                                     hopper_size=4)
    await out.dnc.add(ny[5], campaign_id=campaign_id, reason="asked")
    await out.dnc.add(global_dnc, reason="asked")
    # Not running yet: nothing is fed.
    assert (await out.outbound.feed(campaign_id, AT)).queued == 0
    await out.start(campaign_id)

    first = await out.outbound.feed(campaign_id, AT)
    assert (first.queued, first.dnc, first.exhausted, first.room) == (4, 2, 0, 4)
    states = await out.states(campaign_id)
    assert [states[n] for n in ny] == ["queued"] * 4 + ["ready", "dnc"]
    assert states[global_dnc] == "dnc" and [states[n] for n in la] == ["ready", "ready"]
    # The Redis hopper holds the same four, in list order.
    ids = [await out.contact_id(campaign_id, n) for n in ny[:4]]
    assert [c for c, _ in await out.outbound.hopper_entries(campaign_id)] == ids

    assert (await out.outbound.feed(campaign_id, AT)).queued == 0  # full
    # The dialer takes two: room for two, but only one New York contact is left and Los
    # Angeles is still before 09:00.
    for number in ny[:2]:
        dial = await out.outbound.next_contact(campaign_id, at=AT)
        assert dial is not None and dial.number == number
    assert (await out.outbound.feed(campaign_id, AT)).queued == 1
    assert (await out.states(campaign_id))[ny[4]] == "queued"
    # Three hours later Los Angeles has opened.
    for _ in range(2):
        assert await out.outbound.next_contact(campaign_id, at=AT) is not None
    later = await out.outbound.feed(campaign_id, AT + timedelta(hours=3))
    assert later.queued == 2
    states = await out.states(campaign_id)
    assert [states[n] for n in la] == ["queued", "queued"]


async def test_outcomes_drive_retries_until_max_attempts(out: Outbound) -> None:
    campaign_id = await out.campaign(
        "phone\n+12125550042\n", max_attempts=3, dispositions=["sale", "no-sale"],
        retry_rules=[{"outcome": "busy", "delays_s": [600, 1200]}],
        caller_id={"pool": ["+14155550000", "+12125550000", "+442079460000"]})
    await out.start(campaign_id)
    contact_id = await out.contact_id(campaign_id, "+12125550042")

    now = AT
    waits = []
    for attempt in range(3):
        assert (await out.outbound.feed(campaign_id, now)).queued == 1, f"attempt {attempt + 1}"
        dial = await out.outbound.next_contact(campaign_id, at=now)
        assert dial is not None and dial.number == "+12125550042" and dial.contact_id == contact_id
        assert dial.caller_id == "+12125550000"  # local presence: the pool's 212 number
        assert dial.queue == out.queue and dial.timezones == ("America/New_York",) and not dial.is_callback
        assert (await out.states(campaign_id))["+12125550042"] == "dialing"
        assert (await out.outbound.confirm_dialable(dial.attempt_id, now)).ok
        ended = now + timedelta(seconds=30)
        result = await out.outbound.record_outcome(dial.attempt_id, Outcome.BUSY, at=ended,
                                                   call_id=f"c{attempt}")
        if attempt < 2:
            assert result.contact_state == "ready" and result.next_attempt_at is not None
            waits.append((result.next_attempt_at - ended).total_seconds())
            # Not a second early.
            early = result.next_attempt_at - timedelta(seconds=1)
            assert (await out.outbound.feed(campaign_id, early)).queued == 0
            now = result.next_attempt_at
        else:
            assert result.contact_state == "exhausted" and "max attempts" in result.reason
    assert waits == [600, 1200]

    contact, attempts = await out.contacts.get(campaign_id, contact_id)
    assert contact.state == "exhausted" and contact.attempts == 3 and contact.outcome_counts == {"busy": 3}
    assert [(a.outcome, a.call_id) for a in attempts] == [("busy", "c0"), ("busy", "c1"), ("busy", "c2")]
    assert all(a.ended_at is not None and a.caller_id == "+12125550000" for a in attempts)
    assert (await out.outbound.feed(campaign_id, now + timedelta(days=1))).queued == 0

    # Recording the same outcome twice is harmless; another one is a conflict.
    again = await out.outbound.record_outcome(attempts[-1].id, Outcome.BUSY, at=now)
    assert again.reason == "recorded before" and again.contact_state == "exhausted"
    with pytest.raises(Conflict):
        await out.outbound.record_outcome(attempts[-1].id, Outcome.ANSWERED, at=now)


async def test_answered_with_a_disposition_is_done(out: Outbound) -> None:
    campaign_id = await out.campaign("phone\n+12125550043\n", dispositions=["sale"])
    await out.start(campaign_id)
    await out.outbound.feed(campaign_id, AT)
    dial = await out.outbound.next_contact(campaign_id, at=AT)
    assert dial is not None
    with pytest.raises(InvalidOutcome, match="disposition"):
        await out.outbound.record_outcome(dial.attempt_id, Outcome.ANSWERED, at=AT, disposition="maybe")
    with pytest.raises(InvalidOutcome, match="callback"):
        await out.outbound.record_outcome(dial.attempt_id, Outcome.ANSWERED, at=AT, callback_at=AT)
    done = await out.outbound.record_outcome(dial.attempt_id, Outcome.ANSWERED, at=AT, disposition="sale")
    assert done.contact_state == "done" and done.attempt.disposition == "sale"
    assert (await out.outbound.feed(campaign_id, AT + timedelta(days=7))).queued == 0


async def test_a_dnc_number_is_never_dialed_even_when_listed_late(out: Outbound) -> None:
    a, b, c = numbers("+1212555", 3, start=100)
    campaign_id = await out.campaign(f"phone\n{a}\n{b}\n{c}\n")
    await out.start(campaign_id)
    assert (await out.outbound.feed(campaign_id, AT)).queued == 3

    # Listed while waiting in the hopper: skipped when the dialer takes it.
    await out.dnc.add(a, campaign_id=campaign_id)
    dial_b = await out.outbound.next_contact(campaign_id, at=AT)
    assert dial_b is not None and dial_b.number == b
    assert (await out.states(campaign_id))[a] == "dnc"

    # Listed between taking and dialing: the last check refuses and closes the attempt.
    await out.dnc.add(b, campaign_id=campaign_id)
    check = await out.outbound.confirm_dialable(dial_b.attempt_id, AT)
    assert not check.ok and check.reason == "dnc"
    _, attempts = await out.contacts.get(campaign_id, dial_b.contact_id)
    assert [(x.outcome, x.reason) for x in attempts] == [("cancelled", "dnc")]
    assert (await out.states(campaign_id))[b] == "dnc"
    assert not (await out.outbound.confirm_dialable(dial_b.attempt_id, AT)).ok  # closed

    # Listed while its call was on: it ends as dnc rather than being retried.
    dial_c = await out.outbound.next_contact(campaign_id, at=AT)
    assert dial_c is not None and dial_c.number == c
    await out.dnc.add(c, campaign_id=campaign_id)
    result = await out.outbound.record_outcome(dial_c.attempt_id, Outcome.NO_ANSWER, at=AT)
    assert result.contact_state == "dnc"
    assert await out.outbound.next_contact(campaign_id, at=AT) is None
    assert (await out.outbound.feed(campaign_id, AT + timedelta(days=2))).queued == 0


async def test_callbacks_for_one_agent_or_any(out: Outbound) -> None:
    ours, theirs, plain = numbers("+1212555", 3, start=200)
    campaign_id = await out.campaign(f"phone\n{ours}\n{theirs}\n{plain}\n", hopper_size=1)
    await out.start(campaign_id)
    await out.outbound.feed(campaign_id, AT)
    dial = await out.outbound.next_contact(campaign_id, at=AT)
    assert dial is not None and dial.number == ours
    when = AT + timedelta(hours=1)
    promised = await out.outbound.record_outcome(dial.attempt_id, Outcome.CALLBACK, at=AT, callback_at=when,
                                                 callback_agent_id="agent-x")
    assert promised.contact_state == "ready" and promised.next_attempt_at == when

    # A callback for any agent, scheduled through the contacts service (the API's route).
    any_agent_at = AT + timedelta(minutes=30)
    their_id = await out.contact_id(campaign_id, theirs)
    await out.contacts.schedule_callback(campaign_id, their_id, any_agent_at, None)

    # At 30 minutes: the any-agent callback goes ahead of the ordinary contact.
    assert (await out.outbound.feed(campaign_id, any_agent_at)).queued == 1
    taken = await out.outbound.next_contact(campaign_id, at=any_agent_at)
    assert taken is not None and taken.number == theirs and taken.is_callback and taken.agent_id is None
    await out.outbound.record_outcome(taken.attempt_id, Outcome.ANSWERED, at=any_agent_at)

    # At one hour: agent-x's callback is in agent-x's own hopper, not the campaign's.
    assert (await out.outbound.feed(campaign_id, when)).queued == 1
    assert await out.hopper.entries(campaign_id) == []
    assert [c for c, _ in await out.hopper.entries(campaign_id, "agent-x")] == [dial.contact_id]
    assert await out.outbound.next_contact(campaign_id, at=when) is None
    assert await out.outbound.next_contact(campaign_id, agent_id="agent-y", at=when) is None
    mine = await out.outbound.next_contact(campaign_id, agent_id="agent-x", at=when)
    assert mine is not None and mine.number == ours and mine.agent_id == "agent-x" and mine.is_callback


async def test_stale_entries_expire_and_pause_empties_the_hopper(out: Outbound) -> None:
    campaign_id = await out.campaign("phone\n" + "".join(f"{n}\n" for n in numbers("+1212555", 3, start=300)),
                                     hopper_ttl_s=120)
    await out.start(campaign_id)
    assert (await out.outbound.feed(campaign_id, AT)).queued == 3
    assert await out.outbound.expire(campaign_id, AT + timedelta(seconds=119)) == 0
    assert await out.outbound.expire(campaign_id, AT + timedelta(seconds=120)) == 3
    assert set((await out.states(campaign_id)).values()) == {"ready"}
    assert await out.outbound.hopper_entries(campaign_id) == []
    assert await out.outbound.next_contact(campaign_id, at=AT) is None

    assert (await out.outbound.feed(campaign_id, AT + timedelta(minutes=5))).queued == 3
    await out.campaigns.act(campaign_id, CampaignAction.PAUSE)
    assert set((await out.states(campaign_id)).values()) == {"ready"}
    assert await out.outbound.hopper_entries(campaign_id) == []
    assert await out.outbound.next_contact(campaign_id, at=AT) is None
    assert (await out.outbound.feed(campaign_id, AT + timedelta(minutes=6))).queued == 0

    await out.start(campaign_id)
    assert (await out.outbound.feed(campaign_id, AT + timedelta(minutes=7))).queued == 3
    # A contact the dialer took and never reported on is closed as failed after two hours.
    dial = await out.outbound.next_contact(campaign_id, at=AT + timedelta(minutes=7))
    assert dial is not None
    await out.outbound.expire(campaign_id, AT + timedelta(minutes=7, hours=2, seconds=1))
    contact, attempts = await out.contacts.get(campaign_id, dial.contact_id)
    assert [(a.outcome, a.reason) for a in attempts] == [("failed", "no outcome from the dialer")]
    assert contact.state == "ready" and contact.attempts == 1  # the default rule retries failed


async def test_a_window_that_closes_while_queued_stops_the_dial(out: Outbound) -> None:
    campaign_id = await out.campaign("phone\n+12125550400\n")
    await out.start(campaign_id)
    assert (await out.outbound.feed(campaign_id, AT)).queued == 1
    night = AT + timedelta(hours=12)  # 22:00 or 23:00 in New York
    assert await out.outbound.next_contact(campaign_id, at=night) is None
    assert (await out.states(campaign_id))["+12125550400"] == "ready"

    # And between taking and dialing.
    assert (await out.outbound.feed(campaign_id, AT)).queued == 1
    dial = await out.outbound.next_contact(campaign_id, at=AT)
    assert dial is not None
    check = await out.outbound.confirm_dialable(dial.attempt_id, night)
    assert not check.ok and check.reason == "out_of_window"
    contact, _ = await out.contacts.get(campaign_id, dial.contact_id)
    assert contact.state == "ready" and contact.attempts == 0  # a cancelled attempt is no attempt


async def test_celery_tasks_run_the_same_services(out: Outbound, migrated_database: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.worker import tasks

    monkeypatch.setenv("CCC_DATABASE_URL", migrated_database)
    monkeypatch.setenv("CCC_REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("CCC_ACD_CLUSTER", out.cluster)
    always = [{"days": WEEKDAYS + ["sat", "sun"], "start": "00:00", "end": "24:00"}]
    campaign_id = await out.campaign("", calling_windows=always, hopper_size=5)

    handed: list[UUID] = []

    async def enqueue(import_id: UUID) -> None:
        handed.append(import_id)

    big = ContactService(out.db, inline_rows=10, enqueue=enqueue)
    rows = "".join(f"+1212555{n:04d},lead {n}\n" for n in range(500, 1100))
    pending = await big.upload(campaign_id, ("phone,name\n" + rows).encode(), ImportMapping())
    assert pending.state == "pending" and pending.total_rows == 600 and handed == [pending.id]
    # The worker's task, run here (a Celery task object called directly runs in this thread).
    assert await asyncio.to_thread(tasks.import_contacts, str(pending.id)) == "done"
    assert await asyncio.to_thread(tasks.import_contacts, str(pending.id)) is None  # delivered twice
    done = await out.contacts.get_import(campaign_id, pending.id)
    assert (done.imported, done.rows_done, done.invalid) == (600, 600, 0)

    # An import the broker never got is resumed by the periodic task.
    lost = await big.upload(campaign_id, b"phone\n" + b"".join(f"+1212555{n:04d}\n".encode()
                                                                for n in range(2000, 2020)),
                            ImportMapping())
    async with out.db.connection() as conn:
        await conn.execute("UPDATE contact_imports SET created_at = now() - interval '1 hour' WHERE id = %s",
                           (lost.id,))
    assert await asyncio.to_thread(tasks.resume_imports) >= 1
    assert (await out.contacts.get_import(campaign_id, lost.id)).state == "done"

    await out.start(campaign_id)
    fed = await asyncio.to_thread(tasks.feed_hoppers)
    assert fed[campaign_id]["queued"] == 5
    assert len(await out.outbound.hopper_entries(campaign_id)) == 5
    assert await asyncio.to_thread(tasks.expire_hoppers) >= 0
    assert len(await out.outbound.hopper_entries(campaign_id)) == 5  # not stale yet
