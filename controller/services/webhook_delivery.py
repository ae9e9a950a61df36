"""One attempt of one webhook delivery: what a Celery worker does with a delivery id.

Synchronous on purpose: it runs in the Celery worker (a thread or a process of its pool), with
its own Postgres pool and HTTP client, never in the controller's event loop.

An attempt has three steps:

1. *Claim* (one short transaction, the delivery row locked with ``SKIP LOCKED``): a delivery
   that is gone, finished, not due yet or being attempted by another task is left alone (each
   of those has someone else to see to it), so duplicate tasks for one delivery cost nothing
   and never send twice at once. The webhook's circuit breaker is asked next
   (engines/webhooks.py ``gate``): the delivery waits for a suspended receiver without using an
   attempt, or is its probe. Otherwise the attempt is counted and the delivery claimed for the
   time an attempt can take.
2. *Send*, outside any transaction: the receiver's host name is resolved and every address
   checked against the address policy, then the request goes to the address that was checked
   (the Host header and TLS server name stay the URL's), so a name that changes its answer
   between the check and the connection cannot lead elsewhere. Redirects are not followed and
   no proxy from the environment is used.
3. *Record* (one transaction): the attempt row, the delivery's outcome (``engines/webhooks.py
   judge``), and the receiver's breaker. A receiver that answers again releases the
   deliveries that were waiting for it.

What the task does next is in the returned ``AttemptResult``: retry after ``retry_in_s``, and
hand the ``released`` deliveries to workers.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from controller import __version__
from controller.domain import webhooks as wh
from controller.domain.webhooks import AddressPolicy, DeliveryStatus
from controller.engines import webhooks as engine
from controller.engines.webhooks import Gate, Outcome, RetryPolicy
from controller.settings import Settings
from controller.storage import webhooks as store

log = logging.getLogger(__name__)

USER_AGENT = f"cc-controller-webhooks/{__version__}"
# A claim lasts as long as an attempt can, and this much more.
CLAIM_MARGIN_S = 30.0
# How late a task may find its delivery's next attempt time still ahead (clocks, rounding).
DUE_TOLERANCE = timedelta(seconds=1)
ERROR_TEXT_MAX = 500

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (an IP address: itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: str  # delivered, retry, failed, waiting, or skipped (another task sees to it)
    retry_in_s: float | None = None
    released: tuple[UUID, ...] = field(default_factory=tuple)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Claimed:
    delivery: store.Delivery
    webhook: wh.Webhook
    attempt: int
    round_attempts: int
    at: datetime


@dataclass(frozen=True, slots=True)
class _Response:
    status_code: int | None
    latency_ms: float | None
    error: str | None
    retry_after: str | None = None
    refused: bool = False  # the address policy refused the receiver: never retried


class WebhookDeliverer:
    def __init__(self, database_url: str, policy: RetryPolicy, addresses: AddressPolicy, timeout_s: float,
                 *, pool_size: int = 4, resolver: Resolver = resolve) -> None:
        self.policy = policy
        self.addresses = addresses
        self.timeout_s = timeout_s
        self._resolve = resolver
        self._pool = ConnectionPool(database_url, min_size=1, max_size=pool_size, open=False, timeout=10.0,
                                    kwargs={"row_factory": dict_row, "autocommit": False})
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                                  follow_redirects=False, trust_env=False,
                                  headers={"User-Agent": USER_AGENT})
        self._opened = False

    def open(self) -> None:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True

    def close(self) -> None:
        self._http.close()
        if self._opened:
            self._pool.close()
            self._opened = False

    def attempt(self, delivery_id: UUID) -> AttemptResult:
        self.open()
        with self._pool.connection() as conn:
            claimed = self._claim(conn, delivery_id)
        if isinstance(claimed, AttemptResult):
            return claimed
        response = self._send(claimed)
        with self._pool.connection() as conn:
            return self._record(conn, claimed, response)

    def overdue(self, grace_s: float, limit: int) -> list[UUID]:
        """Pending deliveries due more than ``grace_s`` ago and claimed by nobody: their task
        was lost (with a worker, or a broker that forgot it)."""
        self.open()
        with self._pool.connection() as conn:
            return store.overdue_sync(conn, grace_s, limit)

    def prune(self, older_than_days: int, batch: int = 5000) -> int:
        """Delete finished deliveries (and their attempts) older than ``older_than_days``."""
        self.open()
        deleted = 0
        while True:
            with self._pool.connection() as conn:
                count = store.prune_deliveries_sync(conn, older_than_days, batch)
            deleted += count
            if count < batch:
                return deleted

    # ---- 1. claim ------------------------------------------------------------------------

    def _claim(self, conn: Connection[Any], delivery_id: UUID) -> _Claimed | AttemptResult:
        now = store.clock_sync(conn)
        delivery = store.lock_delivery_sync(conn, delivery_id)
        if delivery is None:
            return AttemptResult("skipped", detail="gone, or being claimed by another task")
        if delivery.status != DeliveryStatus.PENDING:
            return AttemptResult("skipped", detail=f"already {delivery.status}")
        if delivery.next_attempt_at > now + DUE_TOLERANCE:
            return AttemptResult("skipped", detail="not due yet (another task is scheduled for it)")
        if delivery.claimed_until is not None and delivery.claimed_until > now:
            return AttemptResult("skipped", detail="being attempted by another task")
        webhook = store.lock_webhook_sync(conn, delivery.webhook_id)
        if webhook is None:
            return AttemptResult("skipped", detail="webhook deleted")
        if not webhook.enabled:
            store.give_up_sync(conn, delivery_id, "the webhook is disabled", now)
            return AttemptResult("failed", detail="webhook disabled")
        admission = engine.gate(webhook.consecutive_failures, webhook.suspended_until,
                                delivery.round_started_at, now, self.policy)
        if admission.gate is Gate.EXPIRED:
            store.give_up_sync(conn, delivery_id, "expired: the receiver was suspended for the whole "
                                                  "retry window", now)
            return AttemptResult("failed", detail="expired")
        if admission.gate is Gate.WAIT:
            assert admission.until is not None
            # Spread the waiting deliveries over a second so they do not all wake at once.
            at = admission.until + timedelta(seconds=random.random())
            store.postpone_sync(conn, delivery_id, at, now)
            return AttemptResult("waiting", retry_in_s=(at - now).total_seconds(),
                                 detail="the receiver is suspended")
        hold = timedelta(seconds=self.timeout_s * 2 + CLAIM_MARGIN_S)
        if admission.gate is Gate.PROBE:
            store.hold_probe_sync(conn, webhook.id, now + hold)
        attempt, round_attempts = store.claim_sync(conn, delivery_id, now + hold, now)
        return _Claimed(delivery, webhook, attempt, round_attempts, now)

    # ---- 2. send -------------------------------------------------------------------------

    def _send(self, claimed: _Claimed) -> _Response:
        delivery, webhook = claimed.delivery, claimed.webhook
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = wh.headers(webhook.secret, int(time.time()), body,
                             event_id=str(delivery.payload.get("id", f"evt-{delivery.seq}")),
                             delivery_id=str(delivery.id), attempt=claimed.attempt)
        parts = urlsplit(webhook.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            return _Response(None, None, f"cannot resolve {host}: {exc}")
        for address in addresses:
            reason = self.addresses.refusal(address)
            if reason is not None:
                return _Response(None, None, f"refused by the address policy: {reason}", refused=True)
        if not addresses:
            return _Response(None, None, f"{host} resolves to no address")
        address = addresses[0]
        literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        headers["Host"] = parts.netloc
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        started = time.perf_counter()
        try:
            with self._http.stream("POST", pinned, content=body, headers=headers,
                                   extensions=extensions) as response:
                latency_ms = (time.perf_counter() - started) * 1000
                error = None
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}: {_start_of(response)}"
                return _Response(response.status_code, latency_ms, error, response.headers.get("retry-after"))
        except httpx.TimeoutException as exc:
            return _Response(None, (time.perf_counter() - started) * 1000,
                             f"timed out after {self.timeout_s:g} s ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return _Response(None, (time.perf_counter() - started) * 1000,
                             f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX])

    # ---- 3. record -----------------------------------------------------------------------

    def _record(self, conn: Connection[Any], claimed: _Claimed, response: _Response) -> AttemptResult:
        now = store.clock_sync(conn)
        delivery_id, webhook_id = claimed.delivery.id, claimed.webhook.id
        if not store.lock_claimed_sync(conn, delivery_id):
            return AttemptResult("skipped", detail="deleted with its webhook during the attempt")
        if response.refused:
            verdict = engine.Verdict(Outcome.FAILED, reason="not retried")
        else:
            verdict = engine.judge(response.status_code, claimed.round_attempts, self.policy,
                                   retry_after_s=engine.retry_after(response.retry_after, now),
                                   jitter=random.random())
        error = response.error
        if verdict.outcome is Outcome.FAILED and verdict.reason:
            error = f"{error or ''}; {verdict.reason}".strip("; ")
        next_at = now + timedelta(seconds=verdict.delay_s)
        store.record_attempt_sync(
            conn, delivery_id=delivery_id, attempt=claimed.attempt, at=claimed.at, now=now,
            status_code=response.status_code, latency_ms=response.latency_ms, error=error,
            outcome=verdict.outcome.value, next_attempt_at=next_at)
        released: list[UUID] = []
        if verdict.outcome is Outcome.DELIVERED:
            if store.receiver_ok_sync(conn, webhook_id):
                released = store.release_waiting_sync(conn, webhook_id, now)
        elif verdict.receiver_failed:
            failures = store.receiver_failed_sync(conn, webhook_id)
            pause = engine.suspension(failures, self.policy)
            if pause:
                store.suspend_sync(conn, webhook_id, now + timedelta(seconds=pause))
                if failures == engine.BREAKER_THRESHOLD:
                    log.warning("webhook %s suspended after %d failures in a row (%s); one probe per window",
                                webhook_id, failures, error)
        log.info("webhook delivery %s attempt %d: %s", delivery_id, claimed.attempt, verdict.outcome.value,
                 extra={"webhook_id": str(webhook_id), "status_code": response.status_code,
                        "latency_ms": response.latency_ms, "error": error})
        if verdict.outcome is Outcome.RETRY:
            return AttemptResult("retry", retry_in_s=verdict.delay_s, released=tuple(released),
                                 detail=error or "")
        return AttemptResult(verdict.outcome.value, released=tuple(released), detail=error or "")


def retry_policy_for(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.webhook_max_attempts, settings.webhook_retry_base_s,
                       settings.webhook_retry_max_s)


def address_policy_for(settings: Settings) -> AddressPolicy:
    return AddressPolicy(settings.webhook_allow_link_local, settings.webhook_deny_private)


def deliverer_for(settings: Settings, pool_size: int = 16) -> WebhookDeliverer:
    return WebhookDeliverer(settings.database_url, retry_policy_for(settings), address_policy_for(settings),
                            settings.webhook_timeout_s, pool_size=pool_size)


def _start_of(response: httpx.Response) -> str:
    """The first bytes of an error answer, for the delivery log."""
    chunks = b""
    for chunk in response.iter_bytes():
        chunks += chunk
        if len(chunks) >= ERROR_TEXT_MAX:
            break
    return chunks[:ERROR_TEXT_MAX].decode("utf-8", "replace").strip() or response.reason_phrase
