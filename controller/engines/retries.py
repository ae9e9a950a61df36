"""Retry scheduling: after an attempt's outcome, is the contact done, tried again (when), or
given up on.

Inputs are the campaign's :class:`RetryPolicy` (max attempts, one rule per outcome with its
back-off delays), the contact's history (attempts so far and how many ended in each outcome),
the outcome and the instant it was known. Rules, in order:

- ``cancelled`` (taken from the hopper but not dialed) is no attempt: the contact is ready
  again at once, its counts unchanged.
- ``answered`` ends the contact: ``done``.
- ``callback`` with a time the agent chose: ready at that time, for that agent if one was named,
  whatever the attempt counts (the person was reached and asked for it).
- Any other outcome (and ``callback`` without a time) follows its rule. No rule for the outcome,
  the campaign's ``max_attempts`` reached, or the rule's ``max_retries`` used up: ``exhausted``.
  Otherwise the n-th attempt ending in this outcome waits the rule's n-th delay (its last delay
  repeats), so ``[300, 1800, 7200]`` backs off from 5 minutes to 2 hours.

The decision says nothing about calling windows: a retry due at night simply waits in the list
until the contact's window opens (engines/hopper.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controller.domain.campaigns import ContactState, Outcome, RetryPolicy


@dataclass(frozen=True, slots=True)
class ContactHistory:
    attempts: int = 0
    outcome_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    state: ContactState  # READY (to be tried again), DONE or EXHAUSTED
    attempts: int  # counting this one
    outcome_counts: dict[str, int]
    next_attempt_at: datetime | None = None  # with READY
    callback_at: datetime | None = None  # with READY, for a scheduled callback
    callback_agent_id: str | None = None
    reason: str = ""


def decide(policy: RetryPolicy, history: ContactHistory, outcome: Outcome, at: datetime, *,
           callback_at: datetime | None = None, callback_agent_id: str | None = None) -> RetryDecision:
    """What happens to a contact after an attempt that ended with ``outcome`` at ``at``."""
    if outcome is Outcome.CANCELLED:
        return RetryDecision(ContactState.READY, history.attempts, dict(history.outcome_counts),
                             next_attempt_at=at, reason="not dialed")
    attempts = history.attempts + 1
    counts = dict(history.outcome_counts)
    counts[outcome.value] = counts.get(outcome.value, 0) + 1
    if outcome is Outcome.ANSWERED:
        return RetryDecision(ContactState.DONE, attempts, counts, reason="reached")
    if outcome is Outcome.CALLBACK and callback_at is not None:
        return RetryDecision(ContactState.READY, attempts, counts, next_attempt_at=callback_at,
                             callback_at=callback_at, callback_agent_id=callback_agent_id,
                             reason="callback scheduled")
    rule = policy.rules.get(outcome)
    if rule is None:
        return RetryDecision(ContactState.EXHAUSTED, attempts, counts,
                             reason=f"no retry rule for {outcome.value}")
    if attempts >= policy.max_attempts:
        return RetryDecision(ContactState.EXHAUSTED, attempts, counts,
                             reason=f"max attempts ({policy.max_attempts}) reached")
    retry_number = counts[outcome.value]
    if rule.max_retries is not None and retry_number > rule.max_retries:
        return RetryDecision(ContactState.EXHAUSTED, attempts, counts,
                             reason=f"max retries for {outcome.value} ({rule.max_retries}) reached")
    delay = rule.delay_for(retry_number)
    return RetryDecision(ContactState.READY, attempts, counts,
                         next_attempt_at=at + timedelta(seconds=delay),
                         callback_agent_id=callback_agent_id if outcome is Outcome.CALLBACK else None,
                         reason=f"retry {retry_number} for {outcome.value} after {delay} s")
