"""The hopper: which contacts a running campaign should dial next.

The hopper is a short, ordered list per campaign (in Redis) that the real-time dialer takes
from; the worker keeps it filled. ``select`` decides what goes in, from contacts read from
Postgres, with these rules:

- only ``ready`` contacts, due now: a scheduled callback at its ``callback_at``, anyone else at
  ``next_attempt_at`` (a new contact is due when loaded; a retry after its back-off);
- never a number on a do-not-call list (such contacts are reported, to be marked ``dnc``);
- never outside the calling windows in the contact's own zones (engines/calling_windows.py);
- never past the campaign's max attempts (reported, to be marked ``exhausted``), except a
  scheduled callback, which a reached person asked for;
- callbacks first (oldest due first), then everyone else by due time, then by id, so a list is
  dialed in the order it was loaded. The score each pick carries keeps that order in the
  Redis sorted set. A callback for a named agent carries that agent: only that agent's dialer
  takes it.

``why_not_dialable`` is the same check made again right before dialing, since a number may be
added to a do-not-call list, or a window close, while its contact waits in the hopper.
``stale`` lists hopper entries that waited too long (the dialer is not taking them): they go back
to ``ready`` and are chosen again when they are still due.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from controller.domain.campaigns import CallingWindow, ContactDue, ContactState
from controller.engines.calling_windows import is_callable

# Seconds subtracted from a callback's score: ahead of every ordinary contact due within ~300 years.
CALLBACK_HEAD_START = 1e10


class NotDialable(StrEnum):
    DNC = "dnc"
    OUT_OF_WINDOW = "out_of_window"
    NOT_DUE = "not_due"


@dataclass(frozen=True, slots=True)
class HopperPick:
    contact_id: int
    score: float  # lower is dialed first
    agent_id: str | None = None  # a callback for this agent only


@dataclass(frozen=True, slots=True)
class HopperSelection:
    picks: tuple[HopperPick, ...]
    dnc: tuple[int, ...]  # contacts whose number is on a do-not-call list
    exhausted: tuple[int, ...]  # contacts past max attempts


def due_at(contact: ContactDue) -> datetime:
    return contact.callback_at if contact.callback_at is not None else contact.next_attempt_at


def why_not_dialable(contact: ContactDue, at: datetime, windows: Iterable[CallingWindow],
                     dnc_numbers: Collection[str]) -> NotDialable | None:
    """None if the contact may be dialed at ``at``, else the first reason it may not."""
    if contact.number in dnc_numbers:
        return NotDialable.DNC
    if not is_callable(windows, contact.timezones, at):
        return NotDialable.OUT_OF_WINDOW
    return None


def select(candidates: Iterable[ContactDue], *, at: datetime, windows: Iterable[CallingWindow],
           dnc_numbers: Collection[str], max_attempts: int, room: int) -> HopperSelection:
    """At most ``room`` contacts to put in the hopper at ``at``, in dialing order."""
    windows = tuple(windows)
    eligible: list[tuple[tuple[int, float, int], HopperPick]] = []
    dnc: list[int] = []
    exhausted: list[int] = []
    for contact in candidates:
        if contact.state is not ContactState.READY:
            continue
        if contact.number in dnc_numbers:
            dnc.append(contact.id)
            continue
        is_callback = contact.callback_at is not None
        if not is_callback and contact.attempts >= max_attempts:
            exhausted.append(contact.id)
            continue
        due = due_at(contact)
        if due > at or not is_callable(windows, contact.timezones, at):
            continue
        score = due.timestamp() - (CALLBACK_HEAD_START if is_callback else 0.0)
        key = (0 if is_callback else 1, due.timestamp(), contact.id)
        eligible.append((key, HopperPick(contact.id, score,
                                         contact.callback_agent_id if is_callback else None)))
    eligible.sort(key=lambda item: item[0])
    picks = tuple(pick for _, pick in eligible[:max(room, 0)])
    return HopperSelection(picks, tuple(dnc), tuple(exhausted))


def stale(queued: Iterable[tuple[int, datetime]], at: datetime, ttl_s: int) -> list[int]:
    """The contacts (id, queued at) that have been in the hopper longer than ``ttl_s``."""
    limit = at - timedelta(seconds=ttl_s)
    return [contact_id for contact_id, queued_at in queued if queued_at <= limit]
