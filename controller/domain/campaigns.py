"""Outbound campaigns as plain data, with the campaign state table.

Vocabulary: a *campaign* dials a list of *contacts* (one number each) for the agents of one
queue; each try at a contact is an *attempt*, which ends with an *outcome*. The *hopper* is the
short list of contacts due now that the dialer takes from (engines/hopper.py chooses them).

A campaign's life is :data:`CAMPAIGN_TRANSITIONS`: created in ``draft``, ``start`` makes it
``running`` (its hopper is fed), ``pause`` stops feeding and dialing until the next ``start``,
``stop`` ends it for good. :func:`apply_action` is the only way to change it; an action the
table does not allow raises :class:`IllegalTransition` (the API answers 409).

A contact's state: ``ready`` (waiting until ``next_attempt_at``), ``queued`` (in the hopper),
``dialing`` (the dialer took it: an attempt is open), then back to ``ready`` for a retry, or
one of the final states ``done`` (reached), ``exhausted`` (no retry left) and ``dnc`` (its
number is on a do-not-call list).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.domain.calls import IllegalTransition

__all__ = [
    "CAMPAIGN_TRANSITIONS",
    "DIALED_OUTCOMES",
    "RETRYABLE_OUTCOMES",
    "CallingWindow",
    "CampaignAction",
    "CampaignMode",
    "CampaignState",
    "ContactDue",
    "ContactState",
    "IllegalTransition",
    "Outcome",
    "RetryPolicy",
    "RetryRule",
    "apply_action",
]

log = logging.getLogger(__name__)

MINUTES_PER_DAY = 1440
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()


class CampaignMode(StrEnum):
    PREVIEW = "preview"  # the agent sees the contact first and accepts or skips
    PROGRESSIVE = "progressive"  # one call per available agent
    PREDICTIVE = "predictive"  # the pacing engine decides how many lines to dial
    POWER = "power"  # a fixed number of calls (ratio) per available agent


class CampaignState(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class CampaignAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    STOP = "stop"


_C, _A = CampaignState, CampaignAction
CAMPAIGN_TRANSITIONS: dict[tuple[CampaignState, CampaignAction], CampaignState] = {
    (_C.DRAFT, _A.START): _C.RUNNING,
    (_C.DRAFT, _A.STOP): _C.STOPPED,
    (_C.RUNNING, _A.PAUSE): _C.PAUSED,
    (_C.RUNNING, _A.STOP): _C.STOPPED,
    (_C.PAUSED, _A.START): _C.RUNNING,
    (_C.PAUSED, _A.STOP): _C.STOPPED,
    # Stopped is final: a stopped campaign's contacts are not dialed again.
}


def apply_action(campaign_id: str, state: CampaignState, action: CampaignAction) -> CampaignState:
    """The state ``action`` leads to from ``state``; IllegalTransition if the table forbids it."""
    wanted = CAMPAIGN_TRANSITIONS.get((state, action))
    if wanted is None:
        raise IllegalTransition("campaign", campaign_id, state.value, action.value)
    log.info("campaign transition", extra={"campaign": campaign_id, "from": state.value,
                                            "action": action.value, "to": wanted.value})
    return wanted


class ContactState(StrEnum):
    READY = "ready"
    QUEUED = "queued"
    DIALING = "dialing"
    DONE = "done"
    EXHAUSTED = "exhausted"
    DNC = "dnc"


FINAL_CONTACT_STATES = frozenset({ContactState.DONE, ContactState.EXHAUSTED, ContactState.DNC})


class Outcome(StrEnum):
    ANSWERED = "answered"  # a person was reached (connected to an agent)
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MACHINE = "machine"  # answering machine detected
    FAILED = "failed"  # congestion, unreachable, rejected
    ABANDONED = "abandoned"  # answered by a person, but no agent was free
    CALLBACK = "callback"  # reached, and the agent chose to call back later
    CANCELLED = "cancelled"  # taken from the hopper but not dialed (do-not-call, window, paused)


# Outcomes a retry rule may be given for.
RETRYABLE_OUTCOMES = (Outcome.BUSY, Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.FAILED,
                      Outcome.ABANDONED, Outcome.CALLBACK)
# Outcomes of a number that was really dialed: they count as attempts.
DIALED_OUTCOMES = frozenset(Outcome) - {Outcome.CANCELLED}


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Days and local hours a contact may be called: ``start_minute`` ≤ local time <
    ``end_minute`` on one of ``days`` (0 = Monday), in the contact's own time zone."""

    days: frozenset[int]
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not self.days or not all(isinstance(d, int) and 0 <= d <= 6 for d in self.days):
            raise ValueError("a calling window needs days from 0 (Monday) to 6 (Sunday)")
        if not 0 <= self.start_minute < self.end_minute <= MINUTES_PER_DAY:
            raise ValueError("a calling window's start must be before its end, within one day")


@dataclass(frozen=True, slots=True)
class RetryRule:
    """After an attempt ending in ``outcome``: the n-th retry for this outcome waits
    ``delays_s[n-1]`` seconds (the last delay repeats); at most ``max_retries`` of them (None:
    until the campaign's max attempts)."""

    outcome: Outcome
    delays_s: tuple[int, ...]
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in RETRYABLE_OUTCOMES:
            raise ValueError(f"no retry rule for outcome {self.outcome.value}")
        if not self.delays_s or any(d < 0 for d in self.delays_s):
            raise ValueError("a retry rule needs at least one delay, none negative")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries cannot be negative")

    def delay_for(self, retry_number: int) -> int:
        """The delay before retry ``retry_number`` (1 for the first)."""
        return self.delays_s[min(retry_number, len(self.delays_s)) - 1]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    rules: dict[Outcome, RetryRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


@dataclass(frozen=True, slots=True)
class ContactDue:
    """What the hopper engine needs to know about a contact that might be dialed."""

    id: int
    number: str
    timezones: tuple[str, ...]
    state: ContactState
    next_attempt_at: datetime
    attempts: int = 0
    callback_at: datetime | None = None
    callback_agent_id: str | None = None
