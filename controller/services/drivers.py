"""What drives a call: the default greeting or an IVR flow, behind one small interface.

A driver holds one engine's state for one call. The call service feeds it events and runs
the commands it returns; ``to_dict`` is what is saved in Redis so that another run can adopt
the call and continue where it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.flows import Flow, Schedule
from controller.engines import greeting, ivr


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class Driver(Protocol):
    @property
    def finished(self) -> bool: ...

    def on_event(self, event: e.Event, now: datetime) -> tuple[c.Command, ...]: ...

    def to_dict(self) -> dict[str, Any]: ...

    def playbacks(self) -> list[tuple[str, str]]: ...

    def timers(self) -> list[tuple[str, str, float]]: ...


@dataclass(slots=True)
class GreetingDriver:
    state: greeting.GreetingState

    @classmethod
    def begin(cls, leg_id: str, media: tuple[str, ...],
              answered: bool) -> tuple[GreetingDriver, tuple[c.Command, ...]]:
        media = tuple(item if ":" in item else f"prompt:{item}" for item in media)
        decision = greeting.start(leg_id, media, new_id("pb"), answered=answered)
        return cls(decision.state), decision.commands

    @property
    def finished(self) -> bool:
        return self.state.phase is greeting.Phase.DONE

    def on_event(self, event: e.Event, now: datetime) -> tuple[c.Command, ...]:
        decision = greeting.on_event(self.state, event)
        self.state = decision.state
        return decision.commands

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "greeting", "leg_id": self.state.leg_id,
                "playback_id": self.state.playback_id, "phase": self.state.phase.value}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> GreetingDriver:
        return cls(greeting.GreetingState(saved["leg_id"], saved["playback_id"],
                                          greeting.Phase(saved["phase"])))

    def playbacks(self) -> list[tuple[str, str]]:
        """(playback id, leg id) of what the driver waits to finish."""
        if self.state.phase is greeting.Phase.PLAYING:
            return [(self.state.playback_id, self.state.leg_id)]
        return []

    def timers(self) -> list[tuple[str, str, float]]:
        return []


@dataclass(slots=True)
class IvrDriver:
    flow_name: str
    version: int
    flow: Flow
    schedules: Mapping[str, Schedule]
    state: ivr.IvrState = field(init=False)

    def begin(self, leg_id: str, data: dict[str, str], now: datetime) -> tuple[c.Command, ...]:
        decision = ivr.start(self.flow, leg_id, data, now=now, schedules=self.schedules, ids=new_id)
        self.state = decision.state
        return decision.commands

    @property
    def finished(self) -> bool:
        return self.state.finished

    def on_event(self, event: e.Event, now: datetime) -> tuple[c.Command, ...]:
        decision = ivr.on_event(self.flow, self.state, event, now=now, schedules=self.schedules,
                                ids=new_id)
        self.state = decision.state
        return decision.commands

    def playbacks(self) -> list[tuple[str, str]]:
        return [(self.state.playback_id, self.state.leg_id)] if self.state.playback_id else []

    def timers(self) -> list[tuple[str, str, float]]:
        if not self.state.timer_id:
            return []
        seconds = getattr(self.flow.node(self.state.node), "timeout_s", 5)
        return [(self.state.timer_id, self.state.leg_id, float(seconds))]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ivr", "flow": self.flow_name, "version": self.version,
                "state": ivr.state_to_dict(self.state)}

    @classmethod
    def resume(cls, saved: Mapping[str, Any], flow: Flow,
               schedules: Mapping[str, Schedule]) -> IvrDriver:
        driver = cls(saved["flow"], saved["version"], flow, schedules)
        driver.state = ivr.state_from_dict(saved["state"])
        return driver
