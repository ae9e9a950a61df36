"""Webhooks: receivers of feed entries over HTTP, and what makes a delivery trustworthy.

A webhook names a URL and a filter (the same as a feed client's: topics, types, a queue, an
agent). Every feed entry the filter admits becomes one *delivery*: the entry as JSON, POSTed to
the URL and signed with the webhook's secret. A delivery has *attempts*; it ends ``delivered``
(a 2xx answer) or ``failed`` (a refusal, or too many attempts).

The signature (``X-CCC-Signature: v1=<hex>``) is HMAC-SHA256 with the secret over
``<X-CCC-Timestamp>.<body>``: the timestamp is signed, so a receiver that refuses old timestamps
refuses a replayed request. ``verify`` is what a receiver runs (docs/webhooks.md has it as a
stand-alone snippet).

The address policy says which receivers may be reached at all (server-side request forgery:
a webhook URL is a request the controller makes on behalf of whoever has an admin key).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from controller.domain.feed import FeedFilter, Topic

SIGNATURE_VERSION = "v1"
EVENT_ID_HEADER = "X-CCC-Event-Id"
DELIVERY_ID_HEADER = "X-CCC-Delivery-Id"
TIMESTAMP_HEADER = "X-CCC-Timestamp"
SIGNATURE_HEADER = "X-CCC-Signature"
ATTEMPT_HEADER = "X-CCC-Attempt"
# What a receiver should accept between its clock and the timestamp, in seconds.
DEFAULT_TOLERANCE_S = 300

SECRET_PREFIX = "whsec_"
SECRET_PATTERN = r"^[\x21-\x7e]{16,128}$"  # printable ASCII, no spaces
TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.?$"
MAX_URL_LENGTH = 2048
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?")

# Reached by no webhook, whatever the settings: "this host" and multicast.
_NEVER = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"),
          ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8"))
# Cloud metadata services outside the link-local ranges (Alibaba; AWS over IPv6).
_METADATA = (ipaddress.ip_network("100.100.100.200/32"), ipaddress.ip_network("fd00:ec2::254/128"))


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (the first, or a retry)
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: Any  # UUID
    description: str
    url: str
    topics: tuple[str, ...]
    types: tuple[str, ...]
    queue: str | None
    agent_id: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    consecutive_failures: int = 0
    suspended_until: datetime | None = None
    secret: str = ""

    @property
    def filter(self) -> FeedFilter:
        return FeedFilter(topics=frozenset(Topic(t) for t in self.topics), types=frozenset(self.types),
                          queue=self.queue, agent_id=self.agent_id)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CCC-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def headers(secret: str, timestamp: int, body: bytes, *, event_id: str, delivery_id: str,
            attempt: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event_id,
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        ATTEMPT_HEADER: str(attempt),
    }


def verify(secret: str, timestamp: str, signature_header: str, body: bytes, now: float,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """True when ``body`` was signed with ``secret`` at ``timestamp`` and that is within
    ``tolerance_s`` of ``now`` (Unix seconds). The header may carry several comma-separated
    signatures (a secret being rotated); one match is enough."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, int(timestamp), body)
    return any(hmac.compare_digest(expected, candidate.strip())
               for candidate in signature_header.split(","))


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which receiver addresses a webhook may reach.

    Link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata services answer) are
    refused unless ``allow_link_local``; with ``deny_private`` every address that is not
    globally routable is refused too (loopback, RFC 1918, unique local, carrier-grade NAT).
    """

    allow_link_local: bool = False
    deny_private: bool = False

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP address) may not be reached; None when it may."""
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in _NEVER):
            return f"{ip} is not a receiver address"
        if not self.allow_link_local and (ip.is_link_local or any(ip in net for net in _METADATA)):
            return f"{ip} is link-local or a metadata service (CCC_WEBHOOK_ALLOW_LINK_LOCAL)"
        if self.deny_private and not ip.is_global:
            return f"{ip} is not a public address (CCC_WEBHOOK_DENY_PRIVATE)"
        return None


def check_url(url: str, policy: AddressPolicy) -> str:
    """The URL if a webhook may use it; ValueError says why not. A host name is resolved and
    checked at every delivery (its addresses may change), an IP address already here."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"at most {MAX_URL_LENGTH} characters")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise ValueError("no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials; receivers check the signature instead")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if port == 0:
        raise ValueError("port 0 is not a port")
    host = parts.hostname
    if _is_ip(host):
        reason = policy.refusal(host)
        if reason is not None:
            raise ValueError(reason)
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name")
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
