"""What a waiting caller is told: its place in line and how long it will probably wait.

Pure: numbers in, numbers and media URIs out. The ACD engine calls :func:`estimate_wait_s`
when a queue's announcement is due; the call service plays :func:`announcement`.

The estimate. Calls ahead of the caller (its position counts itself: the caller at position 1
is the next one served) are shared by the members who are working (available, ringing, on a
call, in wrap-up): each of them frees up, on average, once per *handle time* (talk time plus
wrap-up), taken as the mean of the queue's recent calls. So the wait is about
``position * handle / working``. With no recent call in the queue, or nobody working, there is
nothing honest to say and the estimate is ``None`` (the announcement then gives the position
only). This is the usual first-order estimate (Asterisk's app_queue uses a running average
of hold times in the same spirit); it ignores how far the calls in progress already are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# How many of a queue's recent handle times the estimate averages.
HANDLE_TIMES_KEPT = 20


def estimate_wait_s(position: int, handle_times_s: Sequence[float], working: int) -> int | None:
    """Seconds a caller at ``position`` (1 = next) will probably wait; None when unknown."""
    if position < 1 or working < 1 or not handle_times_s:
        return None
    recent = list(handle_times_s)[-HANDLE_TIMES_KEPT:]
    handle = sum(max(0.0, t) for t in recent) / len(recent)
    return math.ceil(position * handle / working)


def remember(handle_times_s: tuple[float, ...], handle_s: float) -> tuple[float, ...]:
    """The recent handle times with one more (the oldest dropped past the limit)."""
    return (*handle_times_s, max(0.0, handle_s))[-HANDLE_TIMES_KEPT:]


def wait_minutes(eta_s: int) -> int:
    """The estimate as said: whole minutes, rounded up, at least 1."""
    return max(1, math.ceil(eta_s / 60))


def announcement(position: int, eta_s: int | None) -> tuple[str, ...]:
    """Media URIs telling the caller its position and, when known, the estimated wait, with
    Asterisk's core sounds (the same ones app_queue uses):

    - position 1: "Your call is now first in line and will be answered by the next available
      representative." (queue-youarenext)
    - else: "You are currently caller number <n> waiting to speak to a representative."
      (queue-thereare, the number, queue-callswaiting)
    - then "The estimated hold time is currently <m> minutes" (queue-holdtime, the number,
      queue-minutes), or "... less than 2 minutes" for up to a minute (queue-less-than),
    - and "Thank you for your patience." (queue-thankyou).
    """
    if position < 1:
        return ()
    media: list[str] = []
    if position == 1:
        media.append("sound:queue-youarenext")
    else:
        media += ["sound:queue-thereare", f"number:{position}", "sound:queue-callswaiting"]
    if eta_s is not None:
        minutes = wait_minutes(eta_s)
        if minutes <= 1:
            media += ["sound:queue-holdtime", "sound:queue-less-than", "number:2", "sound:queue-minutes"]
        else:
            media += ["sound:queue-holdtime", f"number:{minutes}", "sound:queue-minutes"]
    media.append("sound:queue-thankyou")
    return tuple(media)
