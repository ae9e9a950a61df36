"""FreeSWITCH events → domain events, on recordings of real FreeSWITCH 1.10.12 sessions
(shared/freeswitch/transcripts 06 and 07: inbound IVR and bridge/hold/transfer, over loopback
and SIP legs)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.adapters.esl import protocol as p
from controller.adapters.esl.translate import events_from_esl
from controller.domain import events as e

from .esl_transcripts import load, needs_transcripts, recv_bin


def domain_events(name: str, bridges: dict[str, str] | None = None) -> list[e.Event]:
    out: list[e.Event] = []
    for message in p.Parser().feed(recv_bin(name, "c1")):
        if message.content_type in p.EVENT_TYPES:
            out += events_from_esl(p.parse_event(message), bridges)
    return out


def of_leg(events: list[e.Event], leg: str) -> list[e.Event]:
    return [x for x in events if e.leg_of(x) == leg]


@pytest.mark.parametrize(("scenario", "dtmf_ms", "record_s"), [("06-inbound-ivr-loopback", 250, 1.2),
                                                               ("06-inbound-ivr-sip", 260, 3.42)])
@needs_transcripts
def test_06_inbound_ivr_leg(scenario: str, dtmf_ms: int, record_s: float) -> None:
    meta = load(scenario)["meta"]
    inbound = of_leg(domain_events(scenario), meta["inbound_uuid"])
    assert [type(x).__name__ for x in inbound] == [
        "LegArrived", "LegAnswered", "PlaybackStarted", "PlaybackFinished",
        *["DtmfReceived"] * 5, "RecordingFinished", "LegHungUp",
    ]
    arrived = inbound[0]
    assert isinstance(arrived, e.LegArrived)
    assert (arrived.caller_number, arrived.dialed, arrived.answered) == ("15551230001", "park_test", False)
    assert arrived.at.year == 2026 and arrived.at.tzinfo is UTC and arrived.created_at <= arrived.at
    assert arrived.variables.get("direction") == "inbound"
    started, finished = inbound[2], inbound[3]
    assert isinstance(started, e.PlaybackStarted) and isinstance(finished, e.PlaybackFinished)
    assert started.media == "tone_stream://%(200,100,440)"
    assert started.playback_id == finished.playback_id and finished.completed
    digits = [x for x in inbound if isinstance(x, e.DtmfReceived)]
    assert "".join(d.digit for d in digits) == "1234#"
    assert {d.duration_ms for d in digits} == {dtmf_ms}
    recording = inbound[-2]
    assert isinstance(recording, e.RecordingFinished)
    assert recording.recording_name == meta["record_file"].rsplit("/", 1)[1].removesuffix(".wav")
    assert recording.duration_s == record_s
    hangup = inbound[-1]
    assert isinstance(hangup, e.LegHungUp) and (hangup.cause, hangup.cause_text) == (16, "NORMAL_CLEARING")
    caller = of_leg(domain_events(scenario), meta["caller_uuid"])
    assert [type(x).__name__ for x in caller] == ["LegArrived", "LegAnswered", "LegHungUp"]


@needs_transcripts
def test_07_loopback_bridge_hold_and_transfer() -> None:
    meta = load("07-bridge-hold-transfer-loopback")["meta"]
    u1, u2 = meta["u1"], meta["u2"]
    events = domain_events("07-bridge-hold-transfer-loopback", bridges={u1: "br-call-1"})
    bridged = [x for x in events if isinstance(x, e.LegJoinedBridge | e.LegLeftBridge)]
    assert [(type(x).__name__, x.leg_id, x.bridge_id) for x in bridged] == [
        ("LegJoinedBridge", u1, "br-call-1"), ("LegJoinedBridge", u2, "br-call-1"),
        ("LegLeftBridge", u1, "br-call-1"), ("LegLeftBridge", u2, "br-call-1"),
    ]
    # uuid_transfer of the agent leg breaks the bridge and FreeSWITCH hangs up the customer.
    customer = of_leg(events, u1)
    assert [type(x).__name__ for x in customer] == [
        "LegArrived", "LegAnswered", "LegJoinedBridge", "LegLeftBridge", "LegHungUp"]
    # uuid_hold on the customer starts hold music on the agent: a playback the controller did
    # not ask for (its id is FreeSWITCH's); cut by the transfer and the hangup, not completed.
    agent = of_leg(events, u2)
    assert [type(x).__name__ for x in agent] == [
        "LegArrived", "LegAnswered", "LegJoinedBridge", "PlaybackStarted", "LegLeftBridge",
        "PlaybackFinished", "LegHungUp"]
    assert isinstance(agent[3], e.PlaybackStarted) and agent[3].media == "local_stream://moh"
    moh_end = agent[-2]
    assert isinstance(moh_end, e.PlaybackFinished) and not moh_end.completed
    without_map = domain_events("07-bridge-hold-transfer-loopback")
    assert {x.bridge_id for x in without_map if isinstance(x, e.LegJoinedBridge)} == {u1}


@needs_transcripts
def test_07_sip_bridge_and_hangups() -> None:
    meta = load("07-bridge-hold-transfer-sip")["meta"]
    customer, agent = meta["customer_inbound_leg"], meta["agent_inbound_leg"]
    events = domain_events("07-bridge-hold-transfer-sip")
    joined = [x for x in events if isinstance(x, e.LegJoinedBridge)]
    assert [(x.leg_id, x.bridge_id) for x in joined] == [(customer, customer), (agent, customer)]
    ended = {x.leg_id for x in events if isinstance(x, e.LegHungUp)}
    assert ended == {customer, agent, meta["customer_caller_leg"], meta["agent_caller_leg"]}


@needs_transcripts
def test_sendmsg_playback_is_identified_by_our_event_uuid() -> None:
    """Scenario 12: ``sendmsg … Event-UUID: X`` → the playback's id is X."""
    events = []
    for message in p.Parser().feed(recv_bin("12-inbound-sendmsg-and-misc-replies", "c1")):
        if message.content_type in p.EVENT_TYPES:
            events += events_from_esl(p.parse_event(message))
    ours = "5d5c38ca-eb8c-462a-976d-c2e62e352b03"
    mine = [type(x).__name__ for x in events if getattr(x, "playback_id", "") == ours]
    assert mine == ["PlaybackStarted", "PlaybackFinished"]


def test_event_time_and_unknown_events() -> None:
    event = p.Event((("Event-Name", "HEARTBEAT"), ("Event-Date-Timestamp", "1795434856173985")))
    assert events_from_esl(event) == []
    answer = p.Event((("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u-1"),
                      ("Event-Date-Timestamp", "1795434856173985")))
    [answered] = events_from_esl(answer)
    assert answered == e.LegAnswered("u-1", datetime.fromtimestamp(1795434856.173985, UTC))
