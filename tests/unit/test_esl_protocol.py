"""The ESL parser and command builders, on byte-exact recordings of real FreeSWITCH 1.10.12
sessions (shared/freeswitch/transcripts, loaded from disk; skipped when absent)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.adapters.esl import protocol as p
from controller.domain.errors import UnsafeValue

from .esl_transcripts import frame_bytes, load, names, needs_transcripts, recv_bin, recv_frames


def _connections() -> list[tuple[str, str]]:
    return [(name, conn["id"]) for name in names() for conn in load(name)["connections"]]


# ---- every recorded frame ------------------------------------------------------------------


@needs_transcripts
@pytest.mark.parametrize(("name", "conn"), _connections())
def test_every_recv_frame_parses_to_one_message_with_the_annotated_fields(name: str, conn: str) -> None:
    frames = recv_frames(name, conn)
    assert frames, "a connection with nothing received"
    for frame in frames:
        raw = frame_bytes(frame)
        parser = p.Parser()
        messages = parser.feed(raw)
        assert len(messages) == 1, (frame["t"], raw[:80])
        assert parser.buffered == 0
        message = messages[0]
        assert message.to_bytes() == raw  # byte-exact round trip of the framing
        assert message.content_type == frame["content_type"]
        if message.content_type in p.EVENT_TYPES:
            event = p.parse_event(message)
            if "event_name" in frame:
                assert event.full_name == frame["event_name"]
            assert event.get("Core-UUID") == "13784bd7-249c-43a6-9856-bb0a2f4495e6"
            assert event.get("Event-Sequence").isdigit()


@needs_transcripts
@pytest.mark.parametrize(("name", "conn"), _connections())
def test_the_raw_stream_in_one_piece_gives_the_recorded_frames(name: str, conn: str) -> None:
    frames = recv_frames(name, conn)
    parser = p.Parser()
    messages = parser.feed(recv_bin(name, conn))
    assert [m.to_bytes() for m in messages] == [frame_bytes(f) for f in frames]
    assert parser.buffered == 0


# Streams of every kind of frame: auth, replies, plain and JSON events, Job-UUID replies,
# xml events, sendevent bodies, linger notices and outbound connect replies.
_SPLIT_STREAMS = [
    ("01-connect-auth-status-exit", "c1"),
    ("02-auth-failures", "c2"),
    ("04-events-json-originate-kill", "c1"),
    ("05-bgapi-jobs", "c1"),
    ("05-bgapi-jobs", "c2"),
    ("09-filter-nixevent-myevents-linger-divert", "c2"),
    ("10-outbound-socket", "out2"),
    ("12-inbound-sendmsg-and-misc-replies", "c1"),
]


@needs_transcripts
@pytest.mark.parametrize(("name", "conn"), _SPLIT_STREAMS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_split_anywhere_gives_the_same_frames(name: str, conn: str, data: st.DataObject) -> None:
    raw = recv_bin(name, conn)
    expected = [frame_bytes(f) for f in recv_frames(name, conn)]
    sizes = data.draw(st.lists(st.integers(min_value=1, max_value=4096), min_size=1, max_size=200))
    parser = p.Parser()
    out: list[bytes] = []
    position, i = 0, 0
    while position < len(raw):
        size = sizes[i % len(sizes)]
        out += [m.to_bytes() for m in parser.feed(raw[position:position + size])]
        position += size
        i += 1
    assert out == expected
    assert parser.buffered == 0


@needs_transcripts
def test_byte_by_byte_feeding_of_a_whole_session() -> None:
    raw = recv_bin("01-connect-auth-status-exit", "c1")
    parser = p.Parser()
    messages = [m for i in range(len(raw)) for m in parser.feed(raw[i:i + 1])]
    assert [m.content_type for m in messages] == [
        p.AUTH_REQUEST, p.COMMAND_REPLY, p.API_RESPONSE, p.API_RESPONSE, p.COMMAND_REPLY, p.DISCONNECT_NOTICE,
    ]
    assert messages[1].reply_text == "+OK accepted" and messages[1].ok
    assert messages[3].body == b'{"row_count": 0}\n'
    assert messages[4].reply_text == "+OK bye"
    assert messages[5].text.startswith("Disconnected, goodbye.")


# ---- what the events say ----------------------------------------------------------------------


def _events(name: str, conn: str = "c1") -> list[p.Event]:
    messages = p.Parser().feed(recv_bin(name, conn))
    return [p.parse_event(m) for m in messages if m.content_type in p.EVENT_TYPES]


@needs_transcripts
def test_plain_event_values_are_percent_decoded_and_names_are_not() -> None:
    create = next(e for e in _events("03-events-plain-originate-kill") if e.name == "CHANNEL_CREATE")
    assert create.get("FreeSWITCH-IPv6") == "fd00::2"
    assert ":" in create.get("Event-Date-Local") and " " in create.get("Event-Date-Local")
    assert create.get("Caller-Callee-ID-Name") in ("Outbound Call", "")
    assert create.unique_id and create.body is None


@needs_transcripts
def test_plain_and_json_give_the_same_headers_for_the_same_flow() -> None:
    plain = [e.name for e in _events("03-events-plain-originate-kill")]
    as_json = [e.name for e in _events("04-events-json-originate-kill")]
    assert plain == as_json
    hangup = next(e for e in _events("04-events-json-originate-kill") if e.name == "CHANNEL_HANGUP_COMPLETE")
    assert hangup.get("Hangup-Cause") == "NORMAL_CLEARING"
    assert hangup.get("FreeSWITCH-IPv6") == "fd00::2"


@needs_transcripts
def test_background_job_bodies_plain_and_json() -> None:
    meta = load("05-bgapi-jobs")["meta"]
    jobs = {e.job_uuid: e for e in _events("05-bgapi-jobs") if e.name == "BACKGROUND_JOB"}
    assert jobs[meta["job_ok"]].body == f"+OK {meta['call_uuid']}\n"
    assert jobs[meta["job_ok"]].get("Job-Command-Arg") == "loopback/9664 &park"
    assert jobs[meta["job_user_9999"]].body == "-ERR SUBSCRIBER_ABSENT\n"
    assert jobs[meta["job_user_1000"]].body == "-ERR USER_NOT_REGISTERED\n"
    assert jobs[meta["job_unknown_command"]].body == "-ERR no_such_command Command not found!\n"
    status = jobs[meta["job_status_server_generated"]]
    assert "Job-Command-Arg" not in status and status.body and status.body.startswith("UP ")
    json_jobs = {e.job_uuid: e for e in _events("05-bgapi-jobs", "c2") if e.name == "BACKGROUND_JOB"}
    assert json_jobs[meta["c2_job_ok"]].body == f"+OK {meta['c2_call_uuid']}\n"
    assert json_jobs[meta["c2_job_user_9999"]].body == "-ERR SUBSCRIBER_ABSENT\n"


@needs_transcripts
def test_bgapi_reply_carries_the_job_uuid_as_a_header() -> None:
    meta = load("05-bgapi-jobs")["meta"]
    replies = [m for m in p.Parser().feed(recv_bin("05-bgapi-jobs", "c1")) if m.get("Job-UUID")]
    assert replies[0].reply_text == f"+OK Job-UUID: {meta['job_ok']}"
    assert replies[0].get("Job-UUID") == meta["job_ok"]


@needs_transcripts
def test_repeated_headers_are_kept_and_lookups_are_last_wins() -> None:
    events = _events("06-inbound-ivr-loopback")
    private = next(e for e in events if e.name == "PRIVATE_COMMAND")
    assert private.get_all("Event-Name") == ["COMMAND", "PRIVATE_COMMAND"]
    complete = next(e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE")
    assert len(complete.get_all("Hangup-Cause")) == 2
    dtmf = [e.get("DTMF-Digit") for e in events if e.name == "DTMF"]
    assert "".join(dtmf) == "1234#"


@needs_transcripts
def test_sendevent_custom_body_xml_events_and_uri_encoded_reply() -> None:
    events = _events("12-inbound-sendmsg-and-misc-replies")
    custom = next(e for e in events if e.full_name == "CUSTOM esl::test")
    assert custom.body == "hello from the controller\n"
    assert custom.get("X-Controller") == "tests"
    xml = next(e for e in events if e.name == "CHANNEL_PARK")
    assert xml.get("Core-UUID") == "13784bd7-249c-43a6-9856-bb0a2f4495e6" and xml.unique_id
    connect = p.Parser().feed(recv_bin("10-outbound-socket", "out1"))[0]
    assert connect.content_type == p.COMMAND_REPLY and connect.reply_text == "+OK\n" and connect.ok


@needs_transcripts
def test_linger_notice_has_no_body() -> None:
    notices = [m for m in p.Parser().feed(recv_bin("09-filter-nixevent-myevents-linger-divert", "c2"))
               if m.content_type == p.DISCONNECT_NOTICE]
    assert [n.get("Content-Disposition") for n in notices] == ["linger", "disconnect"]
    assert notices[0].body == b"" and notices[0].get("Linger-Time") == "3"


# ---- malformed input ------------------------------------------------------------------------


def test_garbage_and_oversized_frames_are_protocol_errors() -> None:
    with pytest.raises(p.ProtocolError):
        p.Parser().feed(b"this is not a header\n\n")
    with pytest.raises(p.ProtocolError):
        p.Parser().feed(b"Content-Length: -5\n\n")
    with pytest.raises(p.ProtocolError):
        p.Parser(max_body=10).feed(b"Content-Length: 11\nContent-Type: api/response\n\n")
    with pytest.raises(p.ProtocolError):
        p.Parser(max_header_block=16).feed(b"X" * 17)
    with pytest.raises(p.ProtocolError):
        p.parse_json_event(b"[1, 2]")


def test_a_body_is_not_read_as_headers() -> None:
    body = b"Content-Type: command/reply\nReply-Text: +OK fake\n\n"
    raw = b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body
    messages = p.Parser().feed(raw + b"Content-Type: auth/request\n\n")
    assert [m.content_type for m in messages] == [p.API_RESPONSE, p.AUTH_REQUEST]
    assert messages[0].body == body


# ---- commands -------------------------------------------------------------------------------

_HOSTILE = [
    "a\nb", "a\rb", "x\r\n\r\napi hupall", "\napi hupall\n\n", "nul\x00", "tab\tx",
    "bye\n\nexit", "Job-UUID: x\n",
]


def test_recorded_commands_are_what_the_builders_make() -> None:
    assert p.auth("ClueCon") == b"auth ClueCon\n\n"
    assert p.api("status") == b"api status\n\n"
    assert p.api("show", "channels", "as", "json") == b"api show channels as json\n\n"
    assert p.event_subscription("plain", ["BACKGROUND_JOB", "CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE"]) == (
        b"event plain BACKGROUND_JOB CHANNEL_PARK CHANNEL_HANGUP_COMPLETE\n\n")
    job = "ff68335c-d182-4dd2-82ab-32e7e5328fbf"
    assert p.bgapi_raw("originate loopback/9664 &park", job) == (
        b"bgapi originate loopback/9664 &park\nJob-UUID: " + job.encode() + b"\n\n")
    call = "fa7e6ef4-9add-41bf-8c12-e07170f5d077"
    assert p.execute(call, "playback", "tone_stream://%(300,0,440)", lock=True,
                     event_uuid="5d5c38ca-eb8c-462a-976d-c2e62e352b03") == (
        f"sendmsg {call}\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(300,0,440)\nevent-lock: true\n"
        "Event-UUID: 5d5c38ca-eb8c-462a-976d-c2e62e352b03\n\n").encode()
    assert p.hangup_message(call) == (
        f"sendmsg {call}\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n").encode()
    assert p.command("sendevent CUSTOM", [("Event-Subclass", "esl::test"), ("X-Controller", "tests"),
                                          ("X-Call-UUID", call)], b"hello from the controller\n") == (
        f"sendevent CUSTOM\nEvent-Subclass: esl::test\nX-Controller: tests\nX-Call-UUID: {call}\n"
        "Content-Length: 26\n\nhello from the controller\n").encode()
    assert p.originate_line("loopback/park_test", variables={
        "origination_uuid": "49499af8-929c-4542-a4e2-2db2c990c81f",
        "origination_caller_id_number": "15551230001", "origination_caller_id_name": "Alice"}) == (
        "originate {origination_uuid=49499af8-929c-4542-a4e2-2db2c990c81f,"
        "origination_caller_id_number=15551230001,origination_caller_id_name=Alice}loopback/park_test &park")
    assert p.originate_line("loopback/9664", app="eavesdrop", app_arg="e55a423c-2c01-4ecf-9b33-24716f868c09",
                            variables=[("eavesdrop_enable_dtmf", "true")]) == (
        "originate {eavesdrop_enable_dtmf=true}loopback/9664 "
        "&eavesdrop(e55a423c-2c01-4ecf-9b33-24716f868c09)")


@needs_transcripts
def test_builders_match_every_recorded_simple_command() -> None:
    """Every recorded ``api`` command of one space-separated line is what :func:`api` makes."""
    checked = 0
    for name in names():
        for frame in load(name)["frames"]:
            if frame["dir"] != "send":
                continue
            data = frame["data"]
            if not data.startswith("api ") or data.count("\n") != 2:
                continue
            words = data[len("api "):-2].split(" ")
            if "{" in data or "'" in data or "\\" in data:
                continue
            assert p.api(*words) == frame_bytes(frame), data
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("hostile", _HOSTILE)
def test_cr_lf_and_control_characters_never_reach_the_wire(hostile: str) -> None:
    builders = [
        lambda: p.auth(hostile),
        lambda: p.api("uuid_kill", hostile),
        lambda: p.api(hostile),
        lambda: p.command(hostile),
        lambda: p.command("api status", [("X-Name", hostile)]),
        lambda: p.command("api status", [(hostile, "v")]),
        lambda: p.bgapi_raw("status", hostile),
        lambda: p.bgapi_raw("status " + hostile, "job-1"),
        lambda: p.api_raw("status " + hostile),
        lambda: p.event_subscription("plain", [hostile]),
        lambda: p.sendmsg(hostile, {"call-command": "hangup"}),
        lambda: p.execute("uuid-1", "playback", hostile),
        lambda: p.execute("uuid-1", hostile),
        lambda: p.hangup_message("uuid-1", hostile),
        lambda: p.originate_line("user/1000", variables={"origination_caller_id_name": hostile}),
        lambda: p.originate_line("user/1000", variables={hostile: "x"}),
        lambda: p.originate_line(hostile),
        lambda: p.filter_command("Unique-ID", hostile),
    ]
    for build in builders:
        with pytest.raises(UnsafeValue):
            build()


def test_a_header_value_cannot_add_content_length_or_a_second_command() -> None:
    with pytest.raises(UnsafeValue):
        p.command("sendevent CUSTOM", [("Content-Length", "5")])
    with pytest.raises(UnsafeValue):
        p.command("api status", [("Bad Name", "x")])
    with pytest.raises(UnsafeValue):
        p.command("  ")


@pytest.mark.parametrize("arg", ["two words", "", " ", "a\u00a0b", "uuid\u2028x"])
def test_an_api_argument_is_one_word(arg: str) -> None:
    with pytest.raises(UnsafeValue):
        p.api("uuid_kill", arg)


def test_originate_variables_quote_spaces_and_commas_and_refuse_what_they_cannot_quote() -> None:
    assert p.channel_variable("caller_name", "Alice Smith") == "caller_name='Alice Smith'"
    assert p.channel_variable("a", "x y") == "a='x y'"
    assert p.channel_variable("a", "x,y") == "a='x,y'"
    assert p.channel_variable("a", "x|y") == "a='x|y'"
    assert p.channel_variable("a", "") == "a=''"
    assert p.channel_variable("a", "+15551230001") == "a=+15551230001"
    for bad in ["O'Brien", 'say "hi"', "x}sofia/gateway/evil/1 &park(", "{x=y}", "a[b]", "<x>", "back\\slash",
                "^^:a=b", "`cmd`"]:
        with pytest.raises(UnsafeValue):
            p.channel_variable("origination_caller_id_name", bad)
    for bad_name in ["a b", "a=b", "a,b", "{a", "", "1abc"]:
        with pytest.raises(UnsafeValue):
            p.channel_variable(bad_name, "x")
    line = p.originate_line("user/1000", variables={"origination_caller_id_name": "Jo Ann, Sales",
                                                    "origination_caller_id_number": "1000"})
    assert line == ("originate {origination_caller_id_name='Jo Ann, Sales',"
                    "origination_caller_id_number=1000}user/1000 &park")


@pytest.mark.parametrize("endpoint", ["user/1000,user/1001", "user/1000|user/1001", "{a=b}user/1",
                                      "user/1 &bridge(x)", "sofia/gw/1'2", "[a=b]user/1"])
def test_an_endpoint_dials_exactly_one_destination(endpoint: str) -> None:
    with pytest.raises(UnsafeValue):
        p.originate_line(endpoint)


@given(st.text(max_size=40))
def test_any_text_as_a_variable_is_refused_or_stays_inside_its_quotes(value: str) -> None:
    try:
        rendered = p.channel_variable("origination_caller_id_name", value)
    except UnsafeValue:
        return
    assert "\n" not in rendered and "\r" not in rendered
    inner = rendered.split("=", 1)[1]
    if inner.startswith("'"):
        assert inner.endswith("'") and "'" not in inner[1:-1]
    else:
        assert not set(inner) & set(" ,|'{}")
    assert not set(inner) & set("{}[]<>\"\\")
