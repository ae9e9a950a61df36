"""ARI JSON ↔ domain, on events shaped exactly as Asterisk 22 sends them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.asterisk.translate import event_from_ari, request_for
from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.errors import UnsafeValue

CHANNEL = {
    "id": "1732364400.12",
    "name": "Local/100@ccc-inbound-00000001;2",
    "state": "Ring",
    "protocol_id": "",
    "caller": {"name": "Alice", "number": "5551234"},
    "connected": {"name": "", "number": ""},
    "accountcode": "",
    "dialplan": {"context": "ccc-inbound", "exten": "100", "priority": 2, "app_name": "Stasis",
                 "app_data": "ccc,inbound,100"},
    "creationtime": "2026-11-23T12:00:00.000+0000",
    "language": "en",
}


def test_stasis_start_is_a_leg_arriving_with_its_did():
    event = event_from_ari({"type": "StasisStart", "timestamp": "2026-11-23T12:00:00.250+0000",
                            "args": ["inbound", "100"], "channel": CHANNEL, "application": "ccc"})
    assert event == e.LegArrived(
        leg_id="1732364400.12", at=datetime(2026, 11, 23, 12, 0, 0, 250000, tzinfo=UTC),
        created_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        channel_name=CHANNEL["name"], caller_number="5551234", caller_name="Alice", dialed="100",
        answered=False, args=("inbound", "100"), variables={})


def test_hangup_carries_cause():
    event = event_from_ari({"type": "ChannelDestroyed", "timestamp": "2026-11-23T12:00:05.000+0000",
                            "cause": 16, "cause_txt": "Normal Clearing", "channel": CHANNEL})
    assert isinstance(event, e.LegHungUp)
    assert (event.cause, event.cause_text) == (16, "Normal Clearing")


def test_playback_finished_names_its_leg():
    event = event_from_ari({"type": "PlaybackFinished", "timestamp": "2026-11-23T12:00:02.000+0000",
                            "playback": {"id": "pb-1", "media_uri": "sound:hello-world",
                                         "target_uri": "channel:1732364400.12", "language": "en",
                                         "state": "done"}})
    assert event == e.PlaybackFinished("pb-1", "1732364400.12",
                                       datetime(2026, 11, 23, 12, 0, 2, tzinfo=UTC), completed=True)


def test_state_change_to_up_is_an_answer_and_unknown_events_are_ignored():
    up = dict(CHANNEL, state="Up")
    assert isinstance(event_from_ari({"type": "ChannelStateChange", "channel": up}), e.LegAnswered)
    assert event_from_ari({"type": "ChannelVarset", "channel": up, "variable": "X"}) is None


def test_commands_become_rest_calls():
    assert request_for(c.Answer("1.2"), "ccc").path == "/channels/1.2/answer"
    play = request_for(c.Play("1.2", "pb-1", ("sound:hello-world", "digits:42")), "ccc")
    assert (play.method, play.path, play.params) == (
        "POST", "/channels/1.2/play/pb-1", {"media": "sound:hello-world,digits:42"})
    hangup = request_for(c.Hangup("1.2"), "ccc")
    assert (hangup.method, hangup.params) == ("DELETE", {"reason": "normal"})
    originate = request_for(c.Originate("leg-1", "PJSIP/1001", caller_id='"Q" <100>',
                                        variables={"CCC_CALL": "abc"}), "ccc")
    assert originate.params["app"] == "ccc" and originate.body == {"variables": {"CCC_CALL": "abc"}}
    assert "formats" not in originate.params  # a SIP device's codecs come from its endpoint


def test_local_channels_are_dialed_in_the_configured_format():
    # Without a format Asterisk gives a Local channel slin192 and resamples all its audio.
    local = request_for(c.Originate("leg-1", "Local/1001@ccc-agents"), "ccc")
    assert local.params["formats"] == "slin"
    wideband = request_for(c.Originate("leg-1", "local/1001@ccc-agents"), "ccc", local_formats="g722,slin16")
    assert wideband.params["formats"] == "g722,slin16"


@given(st.tuples(st.text(), st.sampled_from(["\r", "\n", "\r\n", "\x00"]), st.text()).map("".join))
def test_control_characters_never_reach_asterisk(value):
    with pytest.raises(UnsafeValue):
        request_for(c.Originate("leg-1", "PJSIP/1001", caller_id=value), "ccc")
    with pytest.raises(UnsafeValue):
        request_for(c.Originate("leg-1", "PJSIP/1001", variables={"X": value}), "ccc")
    with pytest.raises(UnsafeValue):
        request_for(c.Play("1.2", "pb-1", (value,)), "ccc")


@pytest.mark.parametrize("leg_id", ["../asterisk/info", "a/b", "", "x y", "1.2?x=1", "a\r\nb"])
def test_ids_cannot_change_the_path(leg_id):
    with pytest.raises(UnsafeValue):
        request_for(c.Answer(leg_id), "ccc")


def test_separators_cannot_split_lists():
    with pytest.raises(UnsafeValue):
        request_for(c.Play("1.2", "pb-1", ("sound:a,sound:b",)), "ccc")
    with pytest.raises(UnsafeValue):
        request_for(c.Originate("leg-1", "PJSIP/1001,PJSIP/1002"), "ccc")
    with pytest.raises(UnsafeValue):
        request_for(c.SendDtmf("1.2", "12;3"), "ccc")


def test_media_items_become_ari_uris():
    play = request_for(c.Play("1.2", "pb", ("prompt:welcome", "sound:hello-world", "digits:12")), "ccc")
    assert play.params == {"media": "sound:ccc/welcome,sound:hello-world,digits:12"}
    for bad in ("prompt:../x", "file:/etc/passwd", "sound:../../etc/x", "welcome", "prompt:"):
        with pytest.raises(UnsafeValue):
            request_for(c.Play("1.2", "pb", (bad,)), "ccc")


def test_call_control_commands_become_rest_calls():
    dtmf = request_for(c.SendDtmf("1.2", "12#*A"), "ccc")
    assert (dtmf.method, dtmf.path, dtmf.params) == ("POST", "/channels/1.2/dtmf", {"dtmf": "12#*A"})
    remove = request_for(c.RemoveFromBridge("br-1", ("1.2", "3.4;2")), "ccc")
    assert (remove.method, remove.path, remove.params) == (
        "POST", "/bridges/br-1/removeChannel", {"channel": "1.2,3.4;2"})
    moh = request_for(c.StartMusicOnHold("1.2"), "ccc")
    assert (moh.method, moh.path, moh.params) == ("POST", "/channels/1.2/moh", {"mohClass": "default"})


@pytest.mark.parametrize("digits", ["1\r\n", "12\nAction: Hangup", "1&2", "", "1" * 65, "12 3", "1%0d"])
def test_dtmf_digits_are_checked_before_asterisk(digits):
    with pytest.raises(UnsafeValue):
        request_for(c.SendDtmf("1.2", digits), "ccc")


@pytest.mark.parametrize("leg_id", ["abc\n", "abc\r\n", "a,b", "a/b"])
def test_leg_ids_with_a_trailing_newline_or_separator_are_refused(leg_id):
    with pytest.raises(UnsafeValue):
        request_for(c.RemoveFromBridge("br-1", (leg_id,)), "ccc")
    with pytest.raises(UnsafeValue):
        request_for(c.SendDtmf(leg_id, "1"), "ccc")


@pytest.mark.parametrize("endpoint", ["PJSIP/1001&PJSIP/1002", "Local/1@ctx,x", "PJSIP/1001\r\n",
                                      "Local/1@ccc-outbound\nAction: Originate"])
def test_dial_strings_cannot_carry_more_than_one_target(endpoint):
    with pytest.raises(UnsafeValue):
        request_for(c.Originate("leg-1", endpoint), "ccc")


def test_a_failed_dial_gives_the_cause_a_local_channel_ends_without() -> None:
    # An originated Local channel whose far half runs Busy() or Congestion() ends with cause 0;
    # ARI's Dial event said why, and the switch puts that cause on the hang-up.
    from controller.adapters.asterisk.switch import AsteriskSwitch
    from controller.adapters.asterisk.translate import cause_of_dial_status
    from tests.conftest import make_settings

    assert [cause_of_dial_status(s) for s in ("BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "ANSWER",
                                              "", None, 17)] == [17, 19, 34, 20, None, None, None, None]
    heard: list[e.Event] = []

    async def reconnected(snapshot: object) -> None:
        return None

    switch = AsteriskSwitch(make_settings(), heard.append, reconnected)
    stamp = "2026-11-23T12:00:00.000+0000"

    def dial_then_end(leg: str, status: str, cause: int, text: str) -> None:
        switch._on_ari_event({"type": "Dial", "timestamp": stamp, "dialstatus": status, "peer": {"id": leg}})
        switch._on_ari_event({"type": "ChannelDestroyed", "timestamp": stamp, "cause": cause,
                              "cause_txt": text, "channel": {"id": leg}})

    for leg, status in (("busy-leg", "BUSY"), ("congested-leg", "CONGESTION"), ("answered-leg", "ANSWER")):
        dial_then_end(leg, status, 0, "Unknown")
    dial_then_end("sip-leg", "BUSY", 21, "Call Rejected")  # a real cause is kept as the channel gave it
    assert [(x.leg_id, x.cause, x.cause_text) for x in heard if isinstance(x, e.LegHungUp)] == [
        ("busy-leg", 17, "User busy"), ("congested-leg", 34, "Circuit/channel congestion"),
        ("answered-leg", 0, "Unknown"), ("sip-leg", 21, "Call Rejected")]
    assert switch._dial_status == {}
