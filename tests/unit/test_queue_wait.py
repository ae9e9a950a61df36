"""What a waiting caller is told (engines/queue_wait.py): the wait estimate and the media."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.domain.agents import DestinationKind, ExitAction, QueueConfig, QueueDestination
from controller.engines.queue_wait import (
    HANDLE_TIMES_KEPT,
    announcement,
    estimate_wait_s,
    remember,
    wait_minutes,
)


def test_estimate_shares_the_calls_ahead_among_working_agents() -> None:
    assert estimate_wait_s(1, [60, 120], 1) == 90
    assert estimate_wait_s(3, [60, 120], 2) == 135
    assert estimate_wait_s(1, [10], 3) == 4  # rounded up


def test_no_estimate_without_history_or_agents() -> None:
    assert estimate_wait_s(1, [], 2) is None
    assert estimate_wait_s(1, [60], 0) is None
    assert estimate_wait_s(0, [60], 1) is None


def test_only_recent_handle_times_count() -> None:
    times: tuple[float, ...] = ()
    for _ in range(HANDLE_TIMES_KEPT):
        times = remember(times, 1000)
    for _ in range(HANDLE_TIMES_KEPT):
        times = remember(times, 60)
    assert len(times) == HANDLE_TIMES_KEPT
    assert estimate_wait_s(1, times, 1) == 60
    assert remember((), -5) == (0.0,)


@given(position=st.integers(1, 500), times=st.lists(st.floats(0, 7200), min_size=1, max_size=40),
       working=st.integers(1, 50))
def test_estimate_grows_with_position_and_shrinks_with_agents(position: int, times: list[float],
                                                             working: int) -> None:
    eta = estimate_wait_s(position, times, working)
    assert eta is not None and eta >= 0
    assert estimate_wait_s(position + 1, times, working) >= eta  # type: ignore[operator]
    assert estimate_wait_s(position, times, working + 1) <= eta  # type: ignore[operator]


def test_announcement_media() -> None:
    assert announcement(1, None) == ("sound:queue-youarenext", "sound:queue-thankyou")
    assert announcement(4, 200) == (
        "sound:queue-thereare", "number:4", "sound:queue-callswaiting",
        "sound:queue-holdtime", "number:4", "sound:queue-minutes", "sound:queue-thankyou")
    assert announcement(2, 45)[3:7] == ("sound:queue-holdtime", "sound:queue-less-than", "number:2",
                                        "sound:queue-minutes")
    assert announcement(0, 10) == ()
    assert [wait_minutes(s) for s in (0, 1, 60, 61, 120, 121)] == [1, 1, 1, 2, 2, 3]


def test_queue_config_checks_the_caller_settings() -> None:
    QueueConfig("q", exit_key="9", exit_action=ExitAction.CALLBACK)
    QueueConfig("q", exit_key="#", exit_action=ExitAction.VOICEMAIL, exit_mailbox="sales")
    QueueConfig("q", overflow=QueueDestination(DestinationKind.FLOW, "closed"))
    for bad in (
        {"exit_key": "9"},
        {"exit_action": ExitAction.CALLBACK},
        {"exit_key": "99", "exit_action": ExitAction.CALLBACK},
        {"exit_key": "9", "exit_action": ExitAction.VOICEMAIL},
        {"exit_key": "9", "exit_action": ExitAction.CALLBACK, "exit_mailbox": "x"},
        {"announce_every_s": -1},
        {"overflow": QueueDestination(DestinationKind.QUEUE, "q")},
    ):
        with pytest.raises(ValueError):
            QueueConfig("q", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QueueDestination(DestinationKind.QUEUE)
    with pytest.raises(ValueError):
        QueueDestination(DestinationKind.HANGUP, "x")
