"""Webhooks without I/O: signatures and their verification (replay window), the address policy
and URL checks, retry verdicts, back-off and the circuit breaker."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from controller.domain import webhooks as wh
from controller.domain.feed import FeedEntry, FeedEvent, Topic
from controller.domain.webhooks import AddressPolicy, Webhook, check_url
from controller.engines import webhooks as engine
from controller.engines.webhooks import Gate, Outcome, RetryPolicy

SECRET = "whsec_test-secret-0123456789"
BODY = b'{"seq":7,"type":"alarm.raised"}'
NOW = 1_790_000_000


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1790000000." + BODY, hashlib.sha256).hexdigest()
    assert wh.signature(SECRET, NOW, BODY) == f"v1={expected}"
    headers = wh.headers(SECRET, NOW, BODY, event_id="evt-7", delivery_id="d-1", attempt=2)
    assert headers["X-CCC-Signature"] == f"v1={expected}"
    assert headers["X-CCC-Timestamp"] == "1790000000"
    assert (headers["X-CCC-Event-Id"], headers["X-CCC-Delivery-Id"], headers["X-CCC-Attempt"]) == (
        "evt-7", "d-1", "2")


def test_verify_accepts_the_real_thing_and_nothing_else() -> None:
    sig = wh.signature(SECRET, NOW, BODY)
    assert wh.verify(SECRET, str(NOW), sig, BODY, now=NOW + 10)
    assert not wh.verify("whsec_another-secret-000000", str(NOW), sig, BODY, now=NOW)
    assert not wh.verify(SECRET, str(NOW), sig, BODY + b" ", now=NOW)  # body changed
    assert not wh.verify(SECRET, str(NOW + 1), sig, BODY, now=NOW)  # timestamp changed
    assert not wh.verify(SECRET, "not-a-number", sig, BODY, now=NOW)
    # Replay: the same request, later than the tolerance.
    assert not wh.verify(SECRET, str(NOW), sig, BODY, now=NOW + wh.DEFAULT_TOLERANCE_S + 1)
    assert not wh.verify(SECRET, str(NOW), sig, BODY, now=NOW - wh.DEFAULT_TOLERANCE_S - 1)
    # Several signatures (a secret being rotated): one match is enough.
    assert wh.verify(SECRET, str(NOW), f"v1=00ff, {sig}", BODY, now=NOW)


def test_generated_secrets_are_long_and_distinct() -> None:
    a, b = wh.new_secret(), wh.new_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 40


@pytest.mark.parametrize(("address", "refused_by_default", "refused_when_private_denied"), [
    ("169.254.169.254", True, True),      # cloud metadata (link-local)
    ("fe80::1", True, True),
    ("::ffff:169.254.169.254", True, True),
    ("100.100.100.200", True, True),      # Alibaba's metadata service
    ("fd00:ec2::254", True, True),        # AWS' over IPv6
    ("0.0.0.0", True, True),
    ("224.0.0.1", True, True),
    ("127.0.0.1", False, True),
    ("10.1.2.3", False, True),
    ("192.168.1.10", False, True),
    ("100.64.0.1", False, True),          # carrier-grade NAT
    ("fd12:3456::1", False, True),
    ("93.184.216.34", False, False),
    ("2606:2800:220:1::1", False, False),
])
def test_address_policy(address: str, refused_by_default: bool, refused_when_private_denied: bool) -> None:
    assert (AddressPolicy().refusal(address) is not None) == refused_by_default
    assert (AddressPolicy(deny_private=True).refusal(address) is not None) == refused_when_private_denied
    if address in ("169.254.169.254", "fe80::1"):
        assert AddressPolicy(allow_link_local=True).refusal(address) is None


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/hook", "http:// or https://"),
    ("http:///path", "must name a host"),
    ("https://user:pw@example.com/", "credentials"),
    ("https://example.com/#x", "fragment"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://exa mple.com/", "spaces"),
    ("http://example.com:99999/", "not a URL"),
    ("http://example.com:0/", "port 0"),
    ("http://bad..name/", "not a host name"),
    ("https://example.com/" + "a" * 2100, "at most"),
])
def test_bad_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_url(url, AddressPolicy())


def test_good_urls_pass() -> None:
    for url in ("https://crm.example.com/hooks/ccc?tenant=4", "http://127.0.0.1:8099/x", "http://[::1]:80/",
                "http://crm_internal:8080/"):
        assert check_url(url, AddressPolicy()) == url
    with pytest.raises(ValueError, match="not a public address"):
        check_url("http://10.0.0.5/", AddressPolicy(deny_private=True))


def test_the_webhook_filter_is_the_feed_filter() -> None:
    now = datetime.now(UTC)
    hook = Webhook(id=1, description="", url="http://x/", topics=("alarms",), types=("alarm.",),
                   queue="support", agent_id=None, enabled=True, created_at=now, updated_at=now)

    def entry(topic: Topic, kind: str, queues: tuple[str, ...]) -> FeedEntry:
        return FeedEntry(1, now, "n", FeedEvent(topic, kind, queues=queues))

    assert hook.filter.matches(entry(Topic.ALARMS, "alarm.raised", ("support",)))
    assert not hook.filter.matches(entry(Topic.ALARMS, "alarm.raised", ("sales",)))
    assert not hook.filter.matches(entry(Topic.CALLS, "call.answered", ("support",)))


POLICY = RetryPolicy(max_attempts=5, base_s=10, max_s=60)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert engine.judge(status, 1, POLICY) == engine.Verdict(Outcome.DELIVERED)


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504, 408, 429])
def test_not_now_answers_are_retried_with_back_off(status: int | None) -> None:
    verdicts = [engine.judge(status, n, POLICY) for n in range(1, 5)]
    assert [v.outcome for v in verdicts] == [Outcome.RETRY] * 4
    assert [v.delay_s for v in verdicts] == [10, 20, 40, 60]  # doubled, capped at max_s
    assert all(v.receiver_failed for v in verdicts)
    last = engine.judge(status, 5, POLICY)
    assert last.outcome is Outcome.FAILED and "gave up after 5 attempts" in last.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422, 301, 302, 100])
def test_refusals_and_redirects_are_not_retried(status: int) -> None:
    verdict = engine.judge(status, 1, POLICY)
    assert verdict.outcome is Outcome.FAILED and not verdict.receiver_failed
    assert "not retried" in verdict.reason


def test_jitter_and_retry_after() -> None:
    assert engine.judge(500, 1, POLICY, jitter=0.999).delay_s == pytest.approx(10 * 1.0999)
    assert engine.judge(429, 1, POLICY, retry_after_s=45).delay_s == 45
    assert engine.judge(503, 1, POLICY, retry_after_s=4000).delay_s == 60  # capped at max_s
    assert engine.judge(500, 1, POLICY, retry_after_s=45).delay_s == 10  # only 429 and 503
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert engine.retry_after("120", now) == 120
    assert engine.retry_after("Tue, 24 Nov 2026 09:01:00 GMT", now) == 60
    assert engine.retry_after("soon", now) is None and engine.retry_after(None, now) is None


def test_retry_window_is_the_sum_of_the_delays() -> None:
    assert POLICY.window() == timedelta(seconds=10 + 20 + 40 + 60)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_the_breaker_suspends_a_failing_receiver_and_probes_it() -> None:
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    started = now - timedelta(seconds=5)
    below = engine.BREAKER_THRESHOLD - 1
    assert engine.gate(below, None, started, now, POLICY).gate is Gate.GO
    assert engine.suspension(below, POLICY) == 0
    # From the threshold: suspended for the back-off, longer each failed probe.
    assert [engine.suspension(engine.BREAKER_THRESHOLD + n, POLICY) for n in range(4)] == [10, 20, 40, 60]
    until = now + timedelta(seconds=10)
    waiting = engine.gate(engine.BREAKER_THRESHOLD, until, started, now, POLICY)
    assert waiting.gate is Gate.WAIT and waiting.until == until
    # Once the suspension is over, one delivery probes.
    assert engine.gate(engine.BREAKER_THRESHOLD, until, started, until, POLICY).gate is Gate.PROBE
    # Waiting past the delivery's retry window: it expires instead.
    late = started + POLICY.window() + timedelta(seconds=1)
    assert engine.gate(engine.BREAKER_THRESHOLD, late, started, now, POLICY).gate is Gate.EXPIRED
