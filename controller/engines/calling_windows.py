"""Calling windows: may a contact be called now, judged on its own wall clock.

A campaign's windows are days and local hours ("mon-fri 09:00-21:00", "sat 10:00-18:00"). A
contact is callable at an instant when, in *every* one of its time zones, the local weekday and
time fall in one of the windows. Most contacts have one zone; a number that does not say which
zone it rings in (a mobile or toll-free range spanning zones) has several, and is called only
when all of them are open, so no one is called outside the hours in their zone.

The instant is converted to each zone with ``zoneinfo``, so daylight-saving changes need no
special case: 09:00 local is 14:00 UTC in New York's winter and 13:00 UTC in its summer. A window
start that falls in a spring-forward gap (02:30 on that night) opens at the jump, when local time
first reads a value inside the window.

``open_zones`` answers the same question per zone for many contacts at once: the hopper asks
which of the zones its due contacts live in are open now, then fetches only contacts whose zones
are all among them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from controller.domain.campaigns import CallingWindow


def zone_is_open(windows: Iterable[CallingWindow], zone: str, at: datetime) -> bool:
    """Whether the wall clock in ``zone`` at the aware instant ``at`` is inside a window."""
    _require_aware(at)
    local = at.astimezone(_zone(zone))
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
    weekday = local.weekday()
    return any(weekday in window.days and window.start_minute <= minute < window.end_minute
               for window in windows)


def is_callable(windows: Iterable[CallingWindow], zones: Iterable[str], at: datetime) -> bool:
    """Whether a contact in ``zones`` may be called at ``at``: every zone open (no zones: no)."""
    windows = tuple(windows)
    zones = tuple(zones)
    return bool(zones) and all(zone_is_open(windows, zone, at) for zone in zones)


def open_zones(windows: Iterable[CallingWindow], zones: Iterable[str], at: datetime) -> frozenset[str]:
    """The zones among ``zones`` whose wall clock is inside a window at ``at``."""
    windows = tuple(windows)
    return frozenset(zone for zone in set(zones) if zone_is_open(windows, zone, at))


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("calling windows need an aware datetime (with a timezone)")
