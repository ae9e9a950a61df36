"""Webhook deliveries: what an attempt's result means, when to try again, and when a receiver
that keeps failing is left alone for a while.

Pure: numbers and flags in, a verdict out. The worker (services/webhook_delivery.py) asks
:func:`gate` before an attempt and :func:`judge` after it.

Retries. A delivery is retried when the receiver could not be reached, timed out, or answered
5xx, 408 (request timeout) or 429 (too many requests): those say "not now". Any other answer
(a redirect, which is not followed, or another 4xx) says "never": the delivery fails at once,
and a redelivery through the API is the way to send it again. The n-th retry waits
``base * 2**(n-1)`` seconds, at most ``max``, stretched by up to 10 % of jitter so that many
deliveries failing together do not come back together; a 429 or 503 with ``Retry-After`` waits
at least that long (up to ``max``). After ``max_attempts`` attempts the delivery fails.

The circuit breaker. Every attempt that ends in a "not now" counts as a failure of the receiver
(``consecutive_failures``; a 2xx resets it, other answers leave it). From
``BREAKER_THRESHOLD`` failures in a row, the receiver is *suspended*: its deliveries wait,
without using their attempts, until the suspension ends; then one delivery is the *probe*. A
probe that succeeds resumes the receiver and releases the deliveries that waited; one that
fails suspends it again, for longer (the same back-off, counted from the threshold). So a dead
or hanging receiver costs a worker one attempt per window, not one per event, and never holds
up the deliveries to other receivers. A delivery that would wait past the end of its retry
window (the sum of the delays its attempts would have had) fails as expired instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

BREAKER_THRESHOLD = 5
RETRYABLE_STATUSES = frozenset({408, 429})
JITTER = 0.1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 12
    base_s: float = 10.0
    max_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not 0 < self.base_s <= self.max_s:
            raise ValueError("need max_attempts >= 1 and 0 < base_s <= max_s")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 = the first)."""
        return min(self.base_s * 2 ** max(failures - 1, 0), self.max_s)

    def window(self) -> timedelta:
        """How long retrying a delivery can take, from its first attempt to its last."""
        return timedelta(seconds=sum(self.delay(n) for n in range(1, self.max_attempts)))


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    delay_s: float = 0.0  # for RETRY: how long until the next attempt
    receiver_failed: bool = False  # counts towards the circuit breaker
    reason: str = ""


def retryable(status_code: int | None) -> bool:
    """No answer (network error, timeout), 5xx, 408 or 429."""
    return status_code is None or status_code >= 500 or status_code in RETRYABLE_STATUSES


def judge(status_code: int | None, round_attempts: int, policy: RetryPolicy, *,
          retry_after_s: float | None = None, jitter: float = 0.0) -> Verdict:
    """What one attempt's result means. ``round_attempts`` counts this attempt; ``jitter`` is
    a number in [0, 1) chosen by the caller."""
    if status_code is not None and 200 <= status_code < 300:
        return Verdict(Outcome.DELIVERED)
    if not retryable(status_code):
        what = "a redirect (not followed)" if 300 <= (status_code or 0) < 400 else "a refusal"
        return Verdict(Outcome.FAILED, reason=f"HTTP {status_code} is {what}; not retried")
    if round_attempts >= policy.max_attempts:
        return Verdict(Outcome.FAILED, receiver_failed=True,
                       reason=f"gave up after {round_attempts} attempts")
    delay = policy.delay(round_attempts) * (1 + JITTER * min(max(jitter, 0.0), 1.0))
    if retry_after_s is not None and status_code in (429, 503):
        delay = max(delay, min(retry_after_s, policy.max_s))
    return Verdict(Outcome.RETRY, delay_s=delay, receiver_failed=True)


class Gate(StrEnum):
    GO = "go"  # attempt now
    PROBE = "probe"  # attempt now, as the suspended receiver's probe
    WAIT = "wait"  # the receiver is suspended: wait until the suspension ends
    EXPIRED = "expired"  # waiting would outlast the delivery's retry window


@dataclass(frozen=True, slots=True)
class Admission:
    gate: Gate
    until: datetime | None = None  # for WAIT: when to come back


def gate(consecutive_failures: int, suspended_until: datetime | None, round_started_at: datetime,
         now: datetime, policy: RetryPolicy) -> Admission:
    """May a delivery to this receiver be attempted now?"""
    if consecutive_failures < BREAKER_THRESHOLD:
        return Admission(Gate.GO)
    if suspended_until is not None and suspended_until > now:
        if suspended_until > round_started_at + policy.window():
            return Admission(Gate.EXPIRED)
        return Admission(Gate.WAIT, suspended_until)
    return Admission(Gate.PROBE)


def suspension(consecutive_failures: int, policy: RetryPolicy) -> float:
    """Seconds a receiver with this many failures in a row is left alone (0: not suspended)."""
    if consecutive_failures < BREAKER_THRESHOLD:
        return 0.0
    return policy.delay(consecutive_failures - BREAKER_THRESHOLD + 1)


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)
