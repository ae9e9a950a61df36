"""Device state: AMI words → domain events, the engine's memory of reachability, and the service
that maps devices to agents. The switch here is a small stand-in answering like Asterisk did in
tests/integration/test_device_state.py (the same behaviour, measured on the real one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.adapters.asterisk.translate import (
    device_state_from_ami,
    device_state_query,
    device_state_value,
    state_device_of,
)
from controller.domain.agents import Agent, AgentState, QueueConfig, QueueEntry, Strategy
from controller.domain.errors import SwitchUnavailable, UnsafeValue
from controller.domain.events import DeviceState, DeviceStateChanged
from controller.engines import acd
from controller.services.device_states import DeviceStateService

S = AgentState
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


# ---- adapter: AMI → domain ----------------------------------------------------------------


@pytest.mark.parametrize(("word", "state"), [
    ("NOT_INUSE", DeviceState.NOT_IN_USE), ("INUSE", DeviceState.IN_USE), ("BUSY", DeviceState.BUSY),
    ("INVALID", DeviceState.INVALID), ("UNAVAILABLE", DeviceState.UNAVAILABLE),
    ("RINGING", DeviceState.RINGING), ("RINGINUSE", DeviceState.RINGING_IN_USE),
    ("ONHOLD", DeviceState.ON_HOLD), ("UNKNOWN", DeviceState.UNKNOWN), ("SOMETHING_NEW", DeviceState.UNKNOWN),
])
def test_ami_device_state_words(word: str, state: DeviceState) -> None:
    assert device_state_value(word) is state


def test_reachable_means_anything_but_unavailable_or_invalid() -> None:
    assert {s for s in DeviceState if not s.reachable} == {DeviceState.UNAVAILABLE, DeviceState.INVALID}


def test_device_state_change_event() -> None:
    event = device_state_from_ami({"Event": "DeviceStateChange", "Privilege": "call,all",
                                   "Device": "PJSIP/1001", "State": "UNAVAILABLE"}, T0)
    assert event == DeviceStateChanged("PJSIP/1001", DeviceState.UNAVAILABLE, T0)
    assert device_state_from_ami({"Event": "DeviceStateChange", "State": "INUSE"}) is None


@pytest.mark.parametrize(("dial", "device"), [
    ("PJSIP/1001", "PJSIP/1001"), ("SIP/alice", "SIP/alice"),
    ("Local/1001@agents", None), ("local/1001@agents/n", None),
    ("PJSIP/0612345678@trunk", None), ("PJSIP/1001/sip:1001@10.0.0.1", None),
    ("PJSIP/a(b)", None), ("nodevice", None),
])
def test_which_dial_strings_have_a_device_state(dial: str, device: str | None) -> None:
    assert state_device_of(dial) == device


def test_the_state_query_refuses_what_could_break_out_of_the_function() -> None:
    assert device_state_query("Custom:agent7") == {"Action": "Getvar",
                                                   "Variable": "DEVICE_STATE(Custom:agent7)"}
    for bad in ("PJSIP/1)x", "Custom:a,b", "PJSIP/1\r\nAction: Originate", "PJSIP/"):
        with pytest.raises(UnsafeValue):
            device_state_query(bad)


# ---- engine: reachability is remembered --------------------------------------------------


class Engine:
    def __init__(self, *agent_ids: str) -> None:
        self.state = acd.AcdState(agents={a: Agent(a, a, f"PJSIP/{a}") for a in agent_ids})
        self.state.queues["q"] = QueueConfig("q", Strategy.LINEAR, tuple((a, 0) for a in agent_ids),
                                             wrap_up_s=5)
        self.now = T0
        self.n = 0

    def ids(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def __call__(self, event: acd.AcdEvent) -> list[acd.AcdCommand]:
        self.now += timedelta(seconds=1)
        decision = acd.on_event(self.state, event, self.now, self.ids)
        self.state = decision.state
        return list(decision.commands)

    def state_of(self, agent_id: str) -> AgentState:
        return self.state.agents[agent_id].state


def test_a_login_on_an_unreachable_device_is_unavailable_and_gets_no_offer() -> None:
    engine = Engine("a")
    engine(acd.AgentDeviceState("a", reachable=False))  # heard while logged out
    assert engine.state_of("a") is S.LOGGED_OUT
    engine(acd.AgentLoggedIn("a"))
    assert engine.state_of("a") is S.UNAVAILABLE
    engine(acd.AgentDeviceState("a", reachable=True))
    assert engine.state_of("a") is S.AVAILABLE
    commands = engine(acd.CallQueued(QueueEntry("c1", "q", engine.now)))
    assert [c.agent_ids for c in commands if isinstance(c, acd.OfferCall)] == [("a",)]


def test_a_device_lost_during_a_call_makes_the_agent_unavailable_after_wrap_up_and_pause() -> None:
    engine = Engine("a")
    engine(acd.AgentLoggedIn("a"))
    [offer] = [c for c in engine(acd.CallQueued(QueueEntry("c1", "q", engine.now)))
               if isinstance(c, acd.OfferCall)]
    engine(acd.OfferAnswered(offer.offer_id, "a"))
    engine(acd.AgentDeviceState("a", reachable=False))
    assert engine.state_of("a") is S.ON_CALL
    engine(acd.CallEnded("c1", "a", 30))
    assert engine.state_of("a") is S.WRAP_UP
    engine(acd.WrapUpEnded("a"))
    assert engine.state_of("a") is S.UNAVAILABLE
    engine(acd.AgentDeviceState("a", reachable=True))
    engine(acd.AgentPaused("a", "lunch"))
    engine(acd.AgentDeviceState("a", reachable=False))
    assert engine.state_of("a") is S.PAUSED
    engine(acd.AgentUnpaused("a"))
    assert engine.state_of("a") is S.UNAVAILABLE


def test_a_ringing_agent_whose_device_is_lost_is_withdrawn_and_the_call_goes_on() -> None:
    engine = Engine("a", "b")
    engine(acd.AgentLoggedIn("a"))
    engine(acd.AgentLoggedIn("b"))
    engine(acd.CallQueued(QueueEntry("c1", "q", engine.now)))
    commands = engine(acd.AgentDeviceState("a", reachable=False))
    assert any(isinstance(c, acd.CancelOffer) and c.agent_ids == ("a",) for c in commands)
    assert [c.agent_ids for c in commands if isinstance(c, acd.OfferCall)] == [("b",)]
    assert engine.state_of("a") is S.UNAVAILABLE


# ---- service: devices → agents -----------------------------------------------------------


class FakeDevices:
    """Answers like Asterisk: unknown devices are UNKNOWN, cached ones listed."""

    def __init__(self, states: dict[str, DeviceState], cached: set[str] | None = None) -> None:
        self.states = states
        self.cached = cached if cached is not None else set(states)
        self.asked: list[str] = []
        self.down = False

    def state_device_of(self, dial_string: str) -> str | None:
        return state_device_of(dial_string)

    async def device_state(self, device: str) -> DeviceState:
        if self.down:
            raise SwitchUnavailable("asterisk AMI: not connected")
        self.asked.append(device)
        return self.states.get(device, DeviceState.UNKNOWN)

    async def device_states(self) -> list[DeviceStateChanged]:
        if self.down:
            raise SwitchUnavailable("asterisk AMI: not connected")
        return [DeviceStateChanged(d, s, T0) for d, s in self.states.items() if d in self.cached]


AGENTS = [
    Agent("phone", "Phone", "PJSIP/1001"),
    Agent("shared", "Shared", "PJSIP/1001"),  # two agents on one phone
    Agent("local", "Local", "Local/1001@agents"),  # no device state: never made unavailable
    Agent("custom", "Custom", "Local/1002@agents", state_device="Custom:custom"),
]


async def test_the_service_tells_the_acd_about_the_agents_of_a_device_when_reachability_changes() -> None:
    submitted: list[acd.AcdEvent] = []
    service = DeviceStateService(FakeDevices({}), submitted.append)
    service.configure(AGENTS)
    assert service.device_of("local") is None and service.device_of("custom") == "Custom:custom"

    service.on_event(DeviceStateChanged("PJSIP/1001", DeviceState.UNAVAILABLE, T0))
    assert submitted == [acd.AgentDeviceState("phone", False), acd.AgentDeviceState("shared", False)]
    submitted.clear()
    service.on_event(DeviceStateChanged("PJSIP/1001", DeviceState.INVALID, T0))  # still unreachable
    service.on_event(DeviceStateChanged("Local/1001@agents", DeviceState.UNAVAILABLE, T0))  # nobody's
    assert submitted == []
    service.on_event(DeviceStateChanged("PJSIP/1001", DeviceState.NOT_IN_USE, T0))
    service.on_event(DeviceStateChanged("PJSIP/1001", DeviceState.RINGING, T0))  # reachable still
    assert submitted == [acd.AgentDeviceState("phone", True), acd.AgentDeviceState("shared", True)]
    assert service.state_of("phone") is DeviceState.RINGING and service.state_of("local") is None

    # A reload of the configuration repeats what is known (the ACD's configuration was reloaded).
    submitted.clear()
    service.configure(AGENTS[:1])
    assert submitted == [acd.AgentDeviceState("phone", True)]


async def test_resync_lists_the_cached_states_and_asks_for_the_rest() -> None:
    switch = FakeDevices({"PJSIP/1001": DeviceState.UNAVAILABLE, "Custom:custom": DeviceState.NOT_IN_USE},
                         cached={"PJSIP/1001"})
    submitted: list[acd.AcdEvent] = []
    service = DeviceStateService(switch, submitted.append)
    service.configure(AGENTS)
    await service.resync()
    assert switch.asked == ["Custom:custom"]
    assert set(submitted) == {acd.AgentDeviceState("phone", False), acd.AgentDeviceState("shared", False),
                              acd.AgentDeviceState("custom", True)}


async def test_refresh_reads_the_device_now_and_keeps_the_last_state_when_the_switch_is_away() -> None:
    switch = FakeDevices({"PJSIP/1001": DeviceState.UNAVAILABLE})
    submitted: list[acd.AcdEvent] = []
    service = DeviceStateService(switch, submitted.append)
    service.configure(AGENTS)
    assert await service.refresh("phone") is DeviceState.UNAVAILABLE
    assert submitted[-1] == acd.AgentDeviceState("phone", False)
    assert await service.refresh("local") is None  # no device state: nothing asked
    switch.down = True
    submitted.clear()
    assert await service.refresh("phone") is DeviceState.UNAVAILABLE
    assert submitted == []
