"""The flow an inbound call gets when nothing else claims it (no route, or a route's overflow
announcement): answer, play the media, hang up.

It is the smallest complete call flow and the default until routes and IVR flows exist.
State is a small frozen value; each step returns the next state and the commands to run.
Ids for playbacks come from the caller, so the engine stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from controller.domain import commands as c
from controller.domain import events as e


class Phase(StrEnum):
    PLAYING = "playing"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class GreetingState:
    leg_id: str
    playback_id: str
    phase: Phase


@dataclass(frozen=True, slots=True)
class Decision:
    state: GreetingState
    commands: tuple[c.Command, ...] = ()


def start(leg_id: str, media: tuple[str, ...], playback_id: str, answered: bool) -> Decision:
    commands: list[c.Command] = [] if answered else [c.Answer(leg_id)]
    commands.append(c.Play(leg_id, playback_id, media))
    return Decision(GreetingState(leg_id, playback_id, Phase.PLAYING), tuple(commands))


def on_event(state: GreetingState, event: e.Event) -> Decision:
    if state.phase is Phase.DONE:
        return Decision(state)
    if isinstance(event, e.PlaybackFinished) and event.playback_id == state.playback_id:
        return Decision(replace(state, phase=Phase.DONE), (c.Hangup(state.leg_id),))
    if isinstance(event, (e.LegHungUp, e.LegLeft)) and event.leg_id == state.leg_id:
        return Decision(replace(state, phase=Phase.DONE))
    return Decision(state)
