"""Caller ID for an outbound attempt: a fixed number, or one from a pool.

With a pool and local presence, the number shown is one from the contact's own area (same
country and geographic area code, as ``domain.phone_numbers.area_key`` says), else one from the
contact's country, else any from the pool: people answer local numbers more often. Among the
numbers that match equally well, the contact's id picks one, so a contact always sees the same
number while the pool's load spreads evenly over its contacts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolNumber:
    number: str  # E.164
    area_key: str  # "1:415" or "44" (domain.phone_numbers.area_key)


@dataclass(frozen=True, slots=True)
class CallerIdPolicy:
    fixed: str | None = None
    pool: tuple[PoolNumber, ...] = ()
    local_presence: bool = True


def choose(policy: CallerIdPolicy, contact_area_key: str, contact_id: int) -> str | None:
    """The caller ID to present when calling a contact; None leaves it to the trunk."""
    if policy.fixed is not None:
        return policy.fixed
    if not policy.pool:
        return None
    candidates = policy.pool
    if policy.local_presence:
        country = contact_area_key.split(":", 1)[0]
        same_area = tuple(p for p in policy.pool if p.area_key == contact_area_key and ":" in p.area_key)
        same_country = tuple(p for p in policy.pool if p.area_key.split(":", 1)[0] == country)
        candidates = same_area or same_country or policy.pool
    return candidates[contact_id % len(candidates)].number
