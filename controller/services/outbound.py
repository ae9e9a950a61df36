"""The outbound cycle of a campaign's contacts: hopper feeding, taking, outcomes.

Who calls what:

- The worker (Celery beat, controller/worker/tasks.py) calls ``feed_running`` every few seconds
  and ``expire_all`` every half minute. ``feed`` reads the due contacts of a running campaign
  from Postgres, lets engines/hopper.py choose (do-not-call, calling windows in each contact's
  zone, max attempts, callbacks first), marks the chosen ``queued`` and pushes them to the
  campaign's Redis hopper (storage/hopper.py). ``expire`` sends contacts that waited in the
  hopper longer than the campaign's ``hopper_ttl_s`` back to ``ready`` (all of them when the
  campaign is not running), and closes attempts the dialer never reported on.
- The real-time dialer (a later step: it runs in the controller process, which owns the PBX)
  calls ``next_contact(campaign, agent)`` to take a contact: a :class:`Dial` with the number,
  the caller ID to present, the AMD settings and the lead fields, and an open attempt. Right
  before it originates it calls ``confirm_dialable(attempt)`` (the second do-not-call and window
  check: a preview may wait minutes on an agent); when the call's fate is known it calls
  ``record_outcome(attempt, outcome)``, which closes the attempt and applies the retry rules
  (engines/retries.py) to the contact.

Every method takes ``at`` (default: now), so tests and the simulator drive the clock.
Postgres is the truth for every contact's state; Redis only orders the queued ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

from controller.domain.campaigns import CampaignMode, CampaignState, ContactState, Outcome
from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.engines import hopper as hopper_engine
from controller.engines import retries
from controller.engines.caller_id import choose as choose_caller_id
from controller.engines.calling_windows import open_zones
from controller.engines.hopper import NotDialable
from controller.services.agents import check_id
from controller.services.campaigns import CampaignPlan, InvalidCampaign, plan_of
from controller.storage import campaigns as store
from controller.storage.campaigns import AttemptRecord, ContactRecord
from controller.storage.db import Database
from controller.storage.hopper import HopperStore

log = logging.getLogger(__name__)

# Hopper entries popped in one next_contact call before giving up (skipped ones: DNC, closed
# windows, entries whose contact is no longer queued).
MAX_SKIPS = 50
# An attempt still open this long after the dialer took it is closed as failed (the dialer
# died, or lost track of it), so its contact is retried rather than stuck in ``dialing``.
DIALING_TIMEOUT = timedelta(hours=2)


class InvalidOutcome(ControllerError, ValueError):
    """The outcome cannot be recorded as given."""

    code = "invalid-outcome"
    status = 422


@dataclass(frozen=True, slots=True)
class Dial:
    """One contact taken by the dialer: everything it needs to place the call."""

    attempt_id: UUID
    campaign_id: str
    contact_id: int
    number: str  # E.164
    caller_id: str | None  # None: the trunk's default
    agent_id: str | None  # a callback promised to this agent, or the agent that asked
    queue: str
    mode: str
    ratio: float | None
    ring_timeout_s: int
    amd: dict[str, Any]
    fields: dict[str, str]  # lead fields, for the screen pop
    timezones: tuple[str, ...]
    is_callback: bool


@dataclass(frozen=True, slots=True)
class DialCheck:
    ok: bool
    reason: str | None = None  # why not: dnc, out_of_window, campaign <state>, attempt ended


@dataclass(frozen=True, slots=True)
class FeedResult:
    queued: int = 0
    dnc: int = 0
    exhausted: int = 0
    room: int = 0


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    attempt: AttemptRecord
    contact_state: str
    next_attempt_at: datetime | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignStats:
    """A campaign's figures. Rates are shares (0..1) or None with nothing to divide by: the
    answer rate over dialed attempts (answered by a person or a machine), the abandonment rate
    over attempts a person answered (answered, callback, abandoned), in total and over the
    campaign's rolling window."""

    campaign_id: str
    state: str
    contacts: dict[str, int]
    attempts: dict[str, int]
    attempts_open: int
    dialed: int
    answer_rate: float | None
    contacts_reached: int
    abandon_rate_total: float | None
    abandon_rate_window: float | None
    abandon_window_h: int
    abandon_target_pct: float


def _now(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return at


class OutboundService:
    def __init__(self, db: Database, hopper: HopperStore) -> None:
        self._db = db
        self._hopper = hopper

    # ---- the worker's side ---------------------------------------------------------------

    async def feed(self, campaign_id: str, at: datetime | None = None) -> FeedResult:
        """Top up a running campaign's hopper to its ``hopper_size`` with contacts due at ``at``."""
        at = _now(at)
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            # Locked: two feeders of one campaign would both count the same room.
            campaign = await store.get_campaign(conn, campaign_id, lock=True)
            if campaign is None:
                raise NotFound(f"no campaign {campaign_id}")
            if campaign.state != CampaignState.RUNNING:
                return FeedResult()
            plan = plan_of(campaign)
            room = plan.hopper_size - await store.count_queued(conn, campaign_id)
            if room <= 0:
                return FeedResult(room=0)
            zones = open_zones(plan.windows, await store.due_zones(conn, campaign_id, at), at)
            if not zones:
                return FeedResult(room=room)
            candidates = await store.due_contacts(conn, campaign_id, at, zones, limit=room * 2)
            blocked = await store.blocked_numbers(conn, (c.number for c in candidates), campaign_id)
            selection = hopper_engine.select(
                (c.due() for c in candidates), at=at, windows=plan.windows, dnc_numbers=blocked,
                max_attempts=plan.retry_policy.max_attempts, room=room)
            await store.mark_queued(conn, [p.contact_id for p in selection.picks], at)
            await store.mark_final(conn, selection.dnc, ContactState.DNC)
            await store.mark_final(conn, selection.exhausted, ContactState.EXHAUSTED)
        await self._hopper.push(campaign_id, selection.picks)
        result = FeedResult(len(selection.picks), len(selection.dnc), len(selection.exhausted), room)
        if selection.picks or selection.dnc or selection.exhausted:
            log.info("hopper fed", extra={"campaign": campaign_id, "queued": result.queued,
                                          "dnc": result.dnc, "exhausted": result.exhausted})
        return result

    async def feed_running(self, at: datetime | None = None) -> dict[str, FeedResult]:
        """Feed every running campaign's hopper; one campaign's failure does not stop the rest."""
        async with self._db.connection() as conn:
            campaigns = await store.running_campaigns(conn)
        results: dict[str, FeedResult] = {}
        for campaign in campaigns:
            try:
                results[campaign.id] = await self.feed(campaign.id, at)
            except NotFound:
                continue  # deleted meanwhile
        return results

    async def expire(self, campaign_id: str, at: datetime | None = None) -> int:
        """Stale hopper entries back to ``ready`` (every entry, when the campaign is not
        running), and attempts left open too long closed as failed; how many contacts moved."""
        at = _now(at)
        async with self._db.connection() as conn:
            campaign = await store.get_campaign(conn, campaign_id, lock=True)
            if campaign is None:
                return 0
            plan = plan_of(campaign)
            queued = await store.queued_contacts(conn, campaign_id)
            if campaign.state == CampaignState.RUNNING:
                ids = hopper_engine.stale(((c.id, c.queued_at or at) for c in queued), at, plan.hopper_ttl_s)
            else:
                ids = [c.id for c in queued]
            moved = set(await store.requeue(conn, ids))
            for attempt in await store.open_attempts_before(conn, campaign_id, at - DIALING_TIMEOUT):
                await self._close(conn, plan, attempt, Outcome.FAILED, at,
                                  reason="no outcome from the dialer")
        await self._hopper.remove(campaign_id, [(c.id, c.callback_agent_id) for c in queued if c.id in moved])
        if moved:
            log.info("hopper entries expired", extra={"campaign": campaign_id, "contacts": len(moved)})
        return len(moved)

    async def expire_all(self, at: datetime | None = None) -> int:
        async with self._db.connection() as conn:
            campaigns = await store.campaigns_with_hopper(conn)
        return sum([await self.expire(campaign.id, at) for campaign in campaigns])

    async def hopper_entries(self, campaign_id: str) -> list[tuple[int, float]]:
        return await self._hopper.entries(campaign_id)

    # ---- the dialer's side ---------------------------------------------------------------

    async def next_contact(self, campaign_id: str, agent_id: str | None = None,
                           at: datetime | None = None) -> Dial | None:
        """Take the next contact to dial from the hopper (a callback promised to ``agent_id``
        first), re-checked against do-not-call and the calling windows; None if none is ready
        or the campaign is not running. The contact is ``dialing`` and an attempt is open."""
        at = _now(at)
        check_id(campaign_id, "campaign id", InvalidCampaign)
        if agent_id is not None:
            check_id(agent_id, "agent_id", InvalidCampaign)
        for _ in range(MAX_SKIPS):
            contact_id = await self._hopper.pop(campaign_id, agent_id)
            if contact_id is None:
                return None
            async with self._db.connection() as conn:
                campaign = await store.get_campaign(conn, campaign_id)
                if campaign is None:
                    raise NotFound(f"no campaign {campaign_id}")
                contact = await store.take_queued(conn, campaign_id, contact_id)
                if contact is None:
                    continue  # expired, or taken back when the campaign paused
                if campaign.state != CampaignState.RUNNING:
                    await store.requeue(conn, [contact.id])
                    return None
                plan = plan_of(campaign)
                if contact.callback_agent_id is not None and contact.callback_agent_id != agent_id:
                    await store.requeue(conn, [contact.id])  # promised to another agent
                    continue
                why = await self._why_not(conn, plan, contact, at)
                if why is NotDialable.DNC:
                    await store.set_contact_state(conn, contact.id, ContactState.DNC)
                    log.info("contact on do-not-call at dial time", extra={"campaign": campaign_id,
                                                                          "contact": contact.id})
                    continue
                if why is not None:
                    await store.requeue(conn, [contact.id])
                    continue
                caller_id = choose_caller_id(plan.caller_id, contact.area_key, contact.id)
                attempt = await store.insert_attempt(
                    conn, attempt_id=uuid4(), campaign_id=campaign_id, contact_id=contact.id,
                    number=contact.number, caller_id=caller_id,
                    agent_id=contact.callback_agent_id or agent_id, at=at)
                await store.set_contact_state(conn, contact.id, ContactState.DIALING)
            log.info("contact taken", extra={"campaign": campaign_id, "contact": contact.id,
                                             "attempt": str(attempt.id)})
            return Dial(attempt_id=attempt.id, campaign_id=campaign_id, contact_id=contact.id,
                        number=contact.number, caller_id=attempt.caller_id, agent_id=attempt.agent_id,
                        queue=plan.queue, mode=plan.mode.value, ratio=plan.ratio,
                        ring_timeout_s=plan.ring_timeout_s, amd=dict(plan.amd), fields=dict(contact.fields),
                        timezones=contact.timezones, is_callback=contact.callback_at is not None)
        return None

    async def confirm_dialable(self, attempt_id: UUID, at: datetime | None = None) -> DialCheck:
        """The last check before the dialer originates: the campaign still runs, the number is
        on no do-not-call list, the contact's window is open. When not, the attempt is closed
        as ``cancelled`` (a do-not-call contact becomes ``dnc``, any other ``ready``)."""
        at = _now(at)
        async with self._db.connection() as conn:
            attempt = await store.get_attempt(conn, attempt_id, lock=True)
            if attempt is None:
                raise NotFound(f"no attempt {attempt_id}")
            if attempt.ended_at is not None:
                return DialCheck(False, f"attempt ended ({attempt.outcome})")
            campaign = await store.get_campaign(conn, attempt.campaign_id)
            contact = await store.get_contact(conn, attempt.campaign_id, attempt.contact_id, lock=True)
            assert campaign is not None and contact is not None  # attempts cascade with both
            plan = plan_of(campaign)
            if campaign.state != CampaignState.RUNNING:
                reason = f"campaign {campaign.state}"
            else:
                why = await self._why_not(conn, plan, contact, at)
                reason = why.value if why is not None else None
            if reason is None:
                return DialCheck(True)
            await store.close_attempt(conn, attempt.id, outcome=Outcome.CANCELLED.value, at=at, reason=reason,
                                      disposition=None, call_id=None, callback_at=None)
            await store.set_contact_state(conn, contact.id, ContactState.DNC if reason == NotDialable.DNC
                                          else ContactState.READY)
        log.info("attempt cancelled before dialing", extra={"attempt": str(attempt_id), "reason": reason})
        return DialCheck(False, reason)

    async def record_outcome(self, attempt_id: UUID, outcome: Outcome, *, at: datetime | None = None,
                             disposition: str | None = None, callback_at: datetime | None = None,
                             callback_agent_id: str | None = None,
                             call_id: str | None = None, reason: str | None = None,
                             unless_called: bool = False) -> OutcomeResult:
        """Close an attempt with its outcome and apply the campaign's retry rules to its
        contact. Recording the same outcome again is harmless (the first result is returned);
        another outcome for a closed attempt is a Conflict. ``unless_called``: a Conflict too
        when a call is tied to the attempt already (a preview skipped as it was accepted)."""
        at = _now(at)
        if callback_at is not None and callback_at.tzinfo is None:
            raise InvalidOutcome("callback_at: a time with its zone")
        if outcome is not Outcome.CALLBACK and (callback_at is not None or callback_agent_id is not None):
            raise InvalidOutcome("callback_at and callback_agent_id go with outcome callback only")
        if callback_agent_id is not None:
            check_id(callback_agent_id, "callback_agent_id", InvalidOutcome)
        async with self._db.connection() as conn:
            attempt = await store.get_attempt(conn, attempt_id, lock=True)
            if attempt is None:
                raise NotFound(f"no attempt {attempt_id}")
            campaign = await store.get_campaign(conn, attempt.campaign_id)
            assert campaign is not None
            if unless_called and attempt.call_id is not None and attempt.ended_at is None:
                raise Conflict(f"attempt {attempt_id} has a call already")
            if attempt.ended_at is not None:
                if attempt.outcome == outcome.value and attempt.disposition == disposition:
                    contact = await store.get_contact(conn, attempt.campaign_id, attempt.contact_id)
                    assert contact is not None
                    return OutcomeResult(attempt, contact.state, contact.next_attempt_at, "recorded before")
                raise Conflict(f"attempt {attempt_id} ended already with {attempt.outcome}")
            plan = plan_of(campaign)
            if disposition is not None and plan.dispositions and disposition not in plan.dispositions:
                raise InvalidOutcome(f"disposition: {disposition} is not one of campaign {campaign.id}'s "
                                     f"({', '.join(sorted(plan.dispositions))})")
            return await self._close(conn, plan, attempt, outcome, at, reason=reason, disposition=disposition,
                                     callback_at=callback_at, callback_agent_id=callback_agent_id,
                                     call_id=call_id)

    async def set_disposition(self, attempt_id: str, code: str) -> None:
        """An agent's disposition of a campaign call, on its attempt (open or ended): one of the
        campaign's codes (any when it lists none), else InvalidOutcome (422)."""
        try:
            attempt_uuid = UUID(attempt_id)
        except ValueError:
            raise InvalidOutcome(f"campaign_attempt: {attempt_id!r} is not an attempt id") from None
        async with self._db.connection() as conn:
            attempt = await store.get_attempt(conn, attempt_uuid, lock=True)
            if attempt is None:
                return  # the campaign was deleted with its attempts: the call's own disposition stands
            campaign = await store.get_campaign(conn, attempt.campaign_id)
            assert campaign is not None
            plan = plan_of(campaign)
            if plan.dispositions and code not in plan.dispositions:
                raise InvalidOutcome(f"code: {code} is not one of campaign {campaign.id}'s dispositions "
                                     f"({', '.join(sorted(plan.dispositions))})")
            await store.set_disposition(conn, attempt_uuid, code)

    async def open_preview(self, campaign_id: str, attempt_id: UUID) -> tuple[CampaignPlan, Dial]:
        """An open attempt offered to an agent in preview, as the dialer places it: NotFound if
        the campaign has no such attempt, Conflict if it has ended or the campaign is not a
        running preview campaign."""
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            attempt = await store.get_attempt(conn, attempt_id)
            if attempt is None or attempt.campaign_id != campaign_id:
                raise NotFound(f"campaign {campaign_id} has no attempt {attempt_id}")
            campaign = await store.get_campaign(conn, campaign_id)
            contact = await store.get_contact(conn, campaign_id, attempt.contact_id)
            assert campaign is not None and contact is not None  # attempts cascade with both
        plan = plan_of(campaign)
        if attempt.ended_at is not None:
            raise Conflict(f"attempt {attempt_id} ended already ({attempt.outcome})")
        if plan.mode is not CampaignMode.PREVIEW or campaign.state != CampaignState.RUNNING:
            raise Conflict(f"campaign {campaign_id} is not a running preview campaign")
        return plan, Dial(attempt_id=attempt.id, campaign_id=campaign_id, contact_id=contact.id,
                          number=attempt.number, caller_id=attempt.caller_id, agent_id=attempt.agent_id,
                          queue=plan.queue, mode=plan.mode.value, ratio=plan.ratio,
                          ring_timeout_s=plan.ring_timeout_s, amd=dict(plan.amd), fields=dict(contact.fields),
                          timezones=contact.timezones, is_callback=contact.callback_at is not None)

    async def stats(self, campaign_id: str, at: datetime | None = None) -> CampaignStats:
        """What a campaign's attempts add up to (``GET /v1/campaigns/{id}/stats``)."""
        at = _now(at)
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            campaign = await store.get_campaign(conn, campaign_id)
            if campaign is None:
                raise NotFound(f"no campaign {campaign_id}")
            plan = plan_of(campaign)
            contacts = await store.contact_counts(conn, campaign_id)
            since = at - timedelta(hours=plan.abandon_window_h)
            figures = await store.attempt_stats(conn, campaign_id, since)
        by_outcome: dict[str, int] = figures["by_outcome"]
        dialed = sum(n for outcome, n in by_outcome.items() if outcome not in ("cancelled", "open"))
        person = sum(by_outcome.get(o, 0) for o in ("answered", "callback", "abandoned"))
        answered = person + by_outcome.get("machine", 0)
        return CampaignStats(
            campaign_id=campaign_id, state=campaign.state, contacts=contacts,
            attempts={o.value: by_outcome.get(o.value, 0) for o in Outcome},
            attempts_open=by_outcome.get("open", 0), dialed=dialed,
            answer_rate=answered / dialed if dialed else None, contacts_reached=figures["reached"],
            abandon_rate_total=by_outcome.get("abandoned", 0) / person if person else None,
            abandon_rate_window=(figures["window_abandoned"] / figures["window_answered"]
                                 if figures["window_answered"] else None),
            abandon_window_h=plan.abandon_window_h, abandon_target_pct=plan.abandon_target_pct)

    # ---- shared --------------------------------------------------------------------------

    async def _why_not(self, conn: psycopg.AsyncConnection, plan: CampaignPlan, contact: ContactRecord,
                       at: datetime) -> NotDialable | None:
        blocked = await store.blocked_numbers(conn, [contact.number], plan.id)
        return hopper_engine.why_not_dialable(contact.due(), at, plan.windows, blocked)

    async def _close(self, conn: psycopg.AsyncConnection, plan: CampaignPlan, attempt: AttemptRecord,
                     outcome: Outcome, at: datetime, *, reason: str | None = None,
                     disposition: str | None = None, callback_at: datetime | None = None,
                     callback_agent_id: str | None = None, call_id: str | None = None) -> OutcomeResult:
        contact = await store.get_contact(conn, attempt.campaign_id, attempt.contact_id, lock=True)
        assert contact is not None
        decision = retries.decide(
            plan.retry_policy, retries.ContactHistory(contact.attempts, contact.outcome_counts), outcome, at,
            callback_at=callback_at.astimezone(UTC) if callback_at else None,
            callback_agent_id=callback_agent_id)
        state = decision.state
        blocked = await store.blocked_numbers(conn, [contact.number], plan.id)
        if state is ContactState.READY and contact.number in blocked:
            state = ContactState.DNC  # added while the call was on: never again
        closed = await store.close_attempt(conn, attempt.id, outcome=outcome.value, at=at,
                                           reason=reason or decision.reason, disposition=disposition,
                                           call_id=call_id, callback_at=decision.callback_at)
        dialed = outcome is not Outcome.CANCELLED
        await store.apply_decision(
            conn, contact.id, state=state.value, attempts=decision.attempts,
            outcome_counts=decision.outcome_counts,
            last_outcome=outcome.value if dialed else None, last_attempt_at=at if dialed else None,
            next_attempt_at=decision.next_attempt_at, callback_at=decision.callback_at,
            callback_agent_id=decision.callback_agent_id)
        log.info("attempt outcome", extra={"campaign": plan.id, "contact": contact.id,
                                           "outcome": outcome.value, "state": state.value,
                                           "reason": decision.reason})
        return OutcomeResult(closed, state.value, decision.next_attempt_at, decision.reason)

