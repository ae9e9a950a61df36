"""The IVR engine (pure): a flow driven event by event, commands checked exactly."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.domain import commands as c
from controller.domain import events as e
from controller.domain.flows import Flow, parse_flow, parse_schedule
from controller.engines import ivr
from controller.engines.ivr import IvrDecision, IvrState, Phase, state_from_dict, state_to_dict

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Paris
NIGHT = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
LEG = "leg-1"
DATA = {"caller_number": "+33611223344", "caller_name": "Ann", "dialed": "100"}
OFFICE = parse_schedule(
    {
        "name": "office",
        "timezone": "Europe/Paris",
        "weekly": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    }
)
SCHEDULES = {"office": OFFICE}

EXAMPLE = {
    "start": "hours",
    "nodes": {
        "hours": {
            "type": "condition",
            "when": [{"schedule": "office", "open": False, "next": "closed"}],
            "else": "welcome",
        },
        "welcome": {"type": "play", "prompts": ["welcome", "sound:hello-world"], "next": "menu"},
        "menu": {
            "type": "menu",
            "prompts": ["main-menu"],
            "options": {"1": "account", "2": "sales", "0": "xfer", "9": "setlang"},
            "timeout_s": 5,
            "retries": 3,
            "invalid_prompts": ["sound:invalid"],
            "timeout_prompts": [],
            "barge_in": True,
            "on_failure": "bye",
        },
        "account": {
            "type": "collect",
            "prompts": ["sound:vm-enter-num-to-call"],
            "variable": "account",
            "min_digits": 4,
            "max_digits": 8,
            "terminator": "#",
            "timeout_s": 5,
            "pattern": "^[0-9]+$",
            "retries": 3,
            "invalid_prompts": ["sound:invalid"],
            "next": "lookup",
            "on_failure": "bye",
        },
        "lookup": {
            "type": "lookup",
            "url": "http://crm.internal/caller",
            "timeout_s": 2,
            "fields": {"customer_name": "name", "vip": "tier"},
            "next": "route",
            "on_failure": "route",
        },
        "route": {
            "type": "condition",
            "when": [{"data": "vip", "equals": "gold", "next": "vipq"}],
            "else": "sales",
        },
        "vipq": {"type": "queue", "queue": "vip", "priority": 10, "skills": {"english": 3}},
        "sales": {"type": "queue", "queue": "sales"},
        "closed": {
            "type": "voicemail",
            "mailbox": "sales",
            "prompts": ["sound:vm-intro"],
            "max_duration_s": 120,
            "next": "bye",
        },
        "xfer": {"type": "transfer", "to": "PJSIP/1001", "timeout_s": 20, "on_failure": "closed"},
        "setlang": {"type": "set", "values": {"lang": "fr"}, "next": "welcome"},
        "bye": {"type": "hangup", "prompts": ["sound:vm-goodbye"]},
    },
}
FLOW = parse_flow(EXAMPLE)


class Ids:
    """Deterministic ids: prefix-1, prefix-2, ..."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"


class Call:
    """A flow on one leg, driven by hand; keeps the last decision."""

    def __init__(self, flow: Flow = FLOW, *, now: datetime = T0, data: dict[str, str] | None = None) -> None:
        self.flow = flow
        self.now = now
        self.ids = Ids()
        self.last = ivr.start(
            flow, LEG, dict(DATA if data is None else data), now=now, schedules=SCHEDULES, ids=self.ids
        )

    @property
    def state(self) -> IvrState:
        return self.last.state

    @property
    def commands(self) -> tuple:
        return self.last.commands

    def send(self, event) -> tuple:
        self.last = ivr.on_event(
            self.flow, self.state, event, now=self.now, schedules=SCHEDULES, ids=self.ids
        )
        return self.last.commands

    def finish_playback(self, completed: bool = True) -> tuple:
        assert self.state.playback_id is not None, self.state
        return self.send(e.PlaybackFinished(self.state.playback_id, LEG, self.now, completed))

    def fire_timer(self) -> tuple:
        assert self.state.timer_id is not None, self.state
        return self.send(e.TimerFired(self.state.timer_id, LEG, self.now))

    def dtmf(self, digits: str) -> tuple:
        out: list = []
        for digit in digits:
            out += self.send(e.DtmfReceived(LEG, self.now, digit, 100))
        return tuple(out)


def kinds(commands: Iterable) -> list[type]:
    return [type(cmd) for cmd in commands]


def one(commands: Iterable, kind: type):
    found = [cmd for cmd in commands if isinstance(cmd, kind)]
    assert len(found) == 1, commands
    return found[0]


def flow_of(nodes: dict, start: str | None = None) -> Flow:
    return parse_flow({"start": start or next(iter(nodes)), "nodes": nodes})


def to_menu(now: datetime = T0) -> Call:
    call = Call(now=now)
    assert call.commands == (c.Play(LEG, "pb-1", ("prompt:welcome", "sound:hello-world")),)
    assert call.finish_playback() == (c.Play(LEG, "pb-2", ("prompt:main-menu",)),)
    assert call.state.node == "menu" and call.state.phase is Phase.PROMPT
    return call


# --- play, menu -------------------------------------------------------------------------------


def test_open_hours_play_the_welcome_then_the_menu_then_the_timer():
    call = to_menu()
    assert call.finish_playback() == (c.StartTimer("timer-3", LEG, 5),)
    assert call.state.phase is Phase.INPUT


def test_menu_option_cancels_the_timer_and_goes_to_its_node():
    call = to_menu()
    call.finish_playback()
    assert call.dtmf("2") == (
        c.CancelTimer("timer-3"),
        c.EnterQueue(LEG, "sales", 0, {}, DATA),
        c.FlowFinished(LEG, "queued"),
    )
    assert call.state.finished and call.state.outcome == "queued"


def test_barge_in_stops_the_menu_prompt_and_counts_as_input():
    call = to_menu()
    commands = call.dtmf("1")
    assert commands[0] == c.StopPlayback("pb-2")
    assert commands[1] == c.Play(LEG, "pb-3", ("sound:vm-enter-num-to-call",))
    assert call.state.node == "account"
    # the stopped prompt's end arrives afterwards: stale
    assert call.send(e.PlaybackFinished("pb-2", LEG, T0, False)) == ()
    assert call.state.playback_id == "pb-3"


def test_without_barge_in_digits_during_the_prompt_are_ignored():
    flow = flow_of(
        {
            "m": {"type": "menu", "prompts": ["p"], "options": {"1": "q"}, "barge_in": False},
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    assert call.dtmf("1") == ()
    assert call.finish_playback() == (c.StartTimer("timer-2", LEG, 5),)
    assert kinds(call.dtmf("1")) == [c.CancelTimer, c.EnterQueue, c.FlowFinished]


def test_invalid_digit_plays_invalid_prompt_then_the_menu_again_and_retries_count_attempts():
    call = to_menu()
    call.finish_playback()
    # attempt 1 wrong
    assert call.dtmf("5") == (c.CancelTimer("timer-3"), c.Play(LEG, "pb-4", ("sound:invalid",)))
    assert call.state.attempts == 1 and call.state.phase is Phase.FEEDBACK
    assert call.finish_playback() == (c.Play(LEG, "pb-5", ("prompt:main-menu",)),)
    call.finish_playback()
    # attempt 2 wrong (barge-in during the menu prompt this time)
    call.dtmf("7")
    assert call.state.attempts == 2
    call.finish_playback()
    call.finish_playback()
    # attempt 3 wrong: on_failure
    commands = call.dtmf("8")
    assert kinds(commands) == [c.CancelTimer, c.Play]
    assert one(commands, c.Play).media == ("sound:vm-goodbye",)
    assert call.state.node == "bye"
    assert call.finish_playback() == (c.Hangup(LEG), c.FlowFinished(LEG, "hangup"))
    assert call.state.finished and call.state.outcome == "hangup"


def test_three_tries_in_total_then_the_right_key_on_the_last_one_still_works():
    call = to_menu()
    for _ in range(2):
        call.finish_playback()  # menu prompt
        call.fire_timer()  # timeout; no timeout prompt: the menu plays again at once
        assert call.state.node == "menu"
    assert call.state.attempts == 2
    call.finish_playback()
    call.dtmf("2")
    assert call.state.outcome == "queued"


def test_timeout_path_with_empty_timeout_prompts_replays_the_menu_then_on_failure():
    call = to_menu()
    call.finish_playback()
    assert call.fire_timer() == (c.Play(LEG, "pb-4", ("prompt:main-menu",)),)
    call.finish_playback()
    call.fire_timer()
    call.finish_playback()
    commands = call.fire_timer()
    assert commands == (c.Play(LEG, "pb-8", ("sound:vm-goodbye",)),)
    assert call.state.node == "bye"


def test_timeout_prompts_play_on_timeout_and_no_on_failure_hangs_up_as_failed():
    flow = flow_of(
        {
            "m": {
                "type": "menu",
                "prompts": ["p"],
                "options": {"1": "q"},
                "retries": 1,
                "timeout_prompts": ["sound:are-you-there"],
                "timeout_s": 3,
            },
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    call.finish_playback()
    assert call.fire_timer() == (c.Hangup(LEG), c.FlowFinished(LEG, "failed"))
    assert call.state.outcome == "failed"


def test_timeout_prompts_are_played_before_the_retry():
    flow = flow_of(
        {
            "m": {
                "type": "menu",
                "prompts": ["p"],
                "options": {"1": "q"},
                "timeout_prompts": ["sound:are-you-there"],
            },
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    call.finish_playback()
    assert call.fire_timer() == (c.Play(LEG, "pb-3", ("sound:are-you-there",)),)
    # a digit during the timeout prompt barges in
    assert kinds(call.dtmf("1")) == [c.StopPlayback, c.EnterQueue, c.FlowFinished]


def test_menu_back_to_itself_through_set_resets_attempts():
    call = to_menu()
    call.finish_playback()
    call.dtmf("5")  # one failed attempt
    call.finish_playback()
    call.finish_playback()
    commands = call.dtmf("9")  # setlang → welcome → (play) ...
    assert c.CallDataChanged(LEG, {**DATA, "lang": "fr"}) in commands
    assert call.state.node == "welcome" and call.state.attempts == 0
    assert call.state.data["lang"] == "fr"


# --- collect ------------------------------------------------------------------------------


def to_account() -> Call:
    call = to_menu()
    call.finish_playback()
    call.dtmf("1")
    assert call.state.node == "account"
    call.finish_playback()
    assert call.state.phase is Phase.INPUT
    return call


def test_collect_each_digit_restarts_the_inter_digit_timer():
    call = to_account()
    first_timer = call.state.timer_id
    commands = call.dtmf("1")
    assert commands == (c.CancelTimer(first_timer), c.StartTimer("timer-6", LEG, 5))
    assert call.state.digits == "1"


def test_collect_terminator_ends_input_stores_the_variable_and_looks_up():
    call = to_account()
    call.dtmf("1234")
    commands = call.dtmf("#")
    assert kinds(commands) == [c.CancelTimer, c.CallDataChanged, c.HttpLookup]
    assert call.state.data["account"] == "1234"
    lookup = one(commands, c.HttpLookup)
    assert lookup.url == "http://crm.internal/caller" and lookup.timeout_s == 2
    assert lookup.params == {**DATA, "account": "1234"}


def test_collect_max_digits_ends_input_without_terminator():
    call = to_account()
    call.dtmf("1234567")
    assert call.state.node == "account"
    commands = call.dtmf("8")
    assert call.state.node == "lookup" and call.state.data["account"] == "12345678"
    assert kinds(commands)[:2] == [c.CancelTimer, c.CallDataChanged]


def test_collect_timeout_with_enough_digits_accepts_them():
    call = to_account()
    call.dtmf("12345")
    call.fire_timer()
    assert call.state.node == "lookup" and call.state.data["account"] == "12345"


def test_collect_too_few_digits_is_invalid_and_retried():
    call = to_account()
    call.dtmf("12#")
    assert call.state.node == "account" and call.state.attempts == 1 and call.state.digits == ""
    assert one(call.commands, c.Play).media == ("sound:invalid",)
    call.finish_playback()
    call.finish_playback()
    call.dtmf("12")
    call.fire_timer()  # too few on timeout: a failed attempt too
    assert call.state.attempts == 2


def test_collect_pattern_is_checked_and_failures_lead_to_on_failure():
    flow = flow_of(
        {
            "c": {
                "type": "collect",
                "variable": "pin",
                "pattern": "[0-9]{2}9",
                "retries": 2,
                "next": "q",
                "on_failure": "bye",
            },
            "q": {"type": "queue", "queue": "sales"},
            "bye": {"type": "hangup"},
        }
    )
    call = Call(flow)
    assert call.commands == (c.StartTimer("timer-1", LEG, 5),)  # no prompts: the timer at once
    call.dtmf("123#")
    assert call.state.node == "c" and call.state.attempts == 1
    assert kinds(call.commands) == [c.CancelTimer, c.StartTimer]  # no invalid prompts: wait again
    call.dtmf("129#")
    assert call.state.data["pin"] == "129" and call.state.outcome == "queued"

    call = Call(flow)
    call.dtmf("1*#")
    commands = call.dtmf("#")  # empty value: also invalid; second failure → bye → hang up
    assert commands == (c.CancelTimer("timer-4"), c.Hangup(LEG), c.FlowFinished(LEG, "hangup"))


def test_collect_min_digits_zero_accepts_nothing_on_timeout_and_star_is_a_digit():
    flow = flow_of(
        {
            "c": {"type": "collect", "variable": "ext", "min_digits": 0, "terminator": "", "next": "q"},
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    call.fire_timer()
    assert call.state.data["ext"] == "" and call.state.outcome == "queued"
    call = Call(flow)
    call.dtmf("1#*")
    call.fire_timer()
    assert call.state.data["ext"] == "1#*"


def test_collect_barge_in_keeps_the_first_digit():
    call = to_menu()
    call.finish_playback()
    call.dtmf("1")
    commands = call.dtmf("4")  # during the collect prompt
    assert commands == (c.StopPlayback("pb-4"), c.StartTimer("timer-5", LEG, 5))
    assert call.state.digits == "4"


# --- lookup, condition, set -------------------------------------------------------------------


def to_lookup() -> Call:
    call = to_account()
    call.dtmf("1234#")
    assert call.state.node == "lookup"
    return call


def test_lookup_ok_copies_the_mapped_fields_and_routes_on_them():
    call = to_lookup()
    request = call.state.lookup_id
    commands = call.send(
        e.LookupFinished(request, LEG, T0, True, {"name": "Bob", "tier": "gold", "other": "x"}, "")
    )
    assert call.state.data["customer_name"] == "Bob" and call.state.data["vip"] == "gold"
    assert "other" not in call.state.data
    assert kinds(commands) == [c.CallDataChanged, c.EnterQueue, c.FlowFinished]
    assert one(commands, c.EnterQueue) == c.EnterQueue(
        LEG, "vip", 10, {"english": 3}, {**DATA, "account": "1234", "customer_name": "Bob", "vip": "gold"}
    )


def test_the_state_keeps_the_path_the_digits_and_the_lookup_fields_for_the_screen_pop():
    call = to_lookup()
    assert call.state.path == ("hours", "welcome", "menu", "account", "lookup")
    assert call.state.collected == ("account",) and call.state.looked_up == ()
    call.send(e.LookupFinished(call.state.lookup_id, LEG, T0, True, {"name": "Bob", "tier": "gold"}, ""))
    assert call.state.path[-2:] == ("route", "vipq") and call.state.finished
    assert call.state.looked_up == ("customer_name", "vip")


def test_the_path_keeps_the_latest_nodes_only():
    call = to_menu()
    for _ in range(ivr.MAX_PATH):
        call.dtmf("9")  # set the language, back to the welcome and the menu: three nodes a turn
        call.finish_playback()
        call.finish_playback()
    assert len(call.state.path) == ivr.MAX_PATH and call.state.path[-1] == "menu"


def test_lookup_missing_field_is_left_unset_and_silver_goes_to_sales():
    call = to_lookup()
    call.send(e.LookupFinished(call.state.lookup_id, LEG, T0, True, {"tier": "silver"}, ""))
    assert "customer_name" not in call.state.data
    assert one(call.commands, c.EnterQueue).queue == "sales"


def test_lookup_failure_goes_to_on_failure_and_stale_answers_are_ignored():
    call = to_lookup()
    assert call.send(e.LookupFinished("lookup-old", LEG, T0, True, {"tier": "gold"}, "")) == ()
    commands = call.send(e.LookupFinished(call.state.lookup_id, LEG, T0, False, {}, "timeout"))
    assert kinds(commands) == [c.EnterQueue, c.FlowFinished]
    assert one(commands, c.EnterQueue).queue == "sales"


def test_lookup_without_on_failure_goes_next():
    flow = flow_of(
        {
            "l": {"type": "lookup", "url": "https://crm/x", "next": "q"},
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    call.send(e.LookupFinished(call.state.lookup_id, LEG, T0, False, {}, "boom"))
    assert call.state.outcome == "queued"


def test_condition_on_the_schedule_depends_on_now():
    assert Call(now=T0).state.node == "welcome"
    night = Call(now=NIGHT)
    assert night.state.node == "closed"
    assert night.commands == (c.Play(LEG, "pb-1", ("sound:vm-intro",)),)
    saturday = Call(now=datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert saturday.state.node == "closed"
    # 07:30 UTC is 08:30 in Paris in winter: open
    assert Call(now=datetime(2026, 11, 23, 7, 30, tzinfo=UTC)).state.node == "welcome"
    # 06:30 UTC is 08:30 in Paris in summer: open; 05:59 UTC is not
    assert Call(now=datetime(2026, 6, 1, 6, 30, tzinfo=UTC)).state.node == "welcome"
    assert Call(now=datetime(2026, 6, 1, 5, 59, tzinfo=UTC)).state.node == "closed"


def test_condition_tests_in_order_and_every_kind():
    nodes = {
        "c": {
            "type": "condition",
            "when": [
                {"caller_number_prefix": "+44", "next": "uk"},
                {"dialed": "200", "next": "d200"},
                {"data": "tier", "in": ["a", "b"], "next": "ab"},
                {"data": "flag", "present": True, "next": "flag"},
                {"data": "x", "equals": "", "next": "xempty"},
                {"schedule": "office", "open": True, "next": "open"},
                {"schedule": "gone", "open": False, "next": "gone"},
            ],
            "else": "other",
        }
    }
    for name in ("uk", "d200", "ab", "flag", "xempty", "open", "gone", "other"):
        nodes[name] = {"type": "queue", "queue": name}
    flow = flow_of(nodes, "c")

    def route(data: dict[str, str], now: datetime = NIGHT) -> str:
        return Call(flow, now=now, data=data).state.node

    assert route({"caller_number": "+4420", "dialed": "200"}) == "uk"
    assert route({"caller_number": "+33", "dialed": "200"}) == "d200"
    assert route({"tier": "b"}) == "ab"
    assert route({"tier": "c", "flag": "1"}) == "flag"
    assert route({"flag": ""}) == "other"  # empty counts as absent
    assert route({"x": ""}) == "xempty"
    assert route({}, T0) == "open"
    assert route({}) == "other"  # an unknown schedule never holds


def test_set_substitutes_with_the_data_before_the_step_and_reports_the_change():
    flow = flow_of(
        {
            "s": {"type": "set", "values": {"greeting": "hi ${caller_name}", "n": "${nothing}"}, "next": "p"},
            "p": {"type": "play", "prompts": ["characters:${greeting}", "number:${n}"], "next": "q"},
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    assert call.commands == (
        c.CallDataChanged(LEG, {**DATA, "greeting": "hi Ann", "n": ""}),
        c.Play(LEG, "pb-1", ("characters:hi Ann",)),  # number:'' is left out
    )


def test_media_forms_and_date_expansion():
    data = {"account": "42", "when": "2026-11-23", "evil": "../../etc/passwd", "name": "greet"}
    media = ivr.render_media(
        [
            "welcome",
            "prompt:${name}",
            "sound:${evil}",
            "digits:${account}",
            "number:${account}",
            "characters:ab",
            "tone:ring",
            "date:${when}",
            "date:2026-03-01",
            "digits:${unknown}",
        ],
        data,
    )
    assert media == (
        "prompt:welcome",
        "prompt:greet",
        "digits:42",
        "number:42",
        "characters:ab",
        "tone:ring",
        "sound:digits/day-1",  # Monday
        "sound:digits/mon-10",  # November
        "number:23",
        "number:2026",
        "sound:digits/day-0",  # 2026-03-01 is a Sunday
        "sound:digits/mon-2",
        "number:1",
        "number:2026",
    )


def test_play_with_nothing_left_after_substitution_goes_straight_on():
    flow = flow_of(
        {
            "p": {"type": "play", "prompts": ["digits:${none}"], "next": "q"},
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    assert kinds(Call(flow).commands) == [c.EnterQueue, c.FlowFinished]


def test_loop_of_instant_nodes_is_cut_and_hangs_up():
    # The validator accepts this (the condition can leave), but at run time it never does.
    flow = flow_of(
        {
            "c": {"type": "condition", "when": [{"data": "never", "equals": "x", "next": "q"}], "else": "s"},
            "s": {"type": "set", "values": {"a": "1"}, "next": "c"},
            "q": {"type": "queue", "queue": "sales"},
        }
    )
    call = Call(flow)
    assert call.state.finished and call.state.outcome == "failed"
    assert call.commands[-2:] == (c.Hangup(LEG), c.FlowFinished(LEG, "failed"))


# --- queue, transfer, hangup ------------------------------------------------------------------


def test_transfer_answered_finishes_transferred():
    call = to_menu()
    call.finish_playback()
    commands = call.dtmf("0")
    assert commands[1] == c.TransferCall("xfer-4", LEG, "PJSIP/1001", 20)
    assert call.send(e.TransferFinished("xfer-other", LEG, T0, True)) == ()
    assert call.send(e.TransferFinished("xfer-4", LEG, T0, True)) == (c.FlowFinished(LEG, "transferred"),)
    assert call.state.outcome == "transferred"


def test_transfer_unanswered_goes_to_on_failure_or_hangs_up():
    call = to_menu()
    call.finish_playback()
    call.dtmf("0")
    call.send(e.TransferFinished("xfer-4", LEG, T0, False))
    assert call.state.node == "closed"
    flow = flow_of({"x": {"type": "transfer", "to": "number:+33123456789"}})
    call = Call(flow)
    assert call.commands == (c.TransferCall("xfer-1", LEG, "number:+33123456789", 30),)
    call.send(e.TransferFinished("xfer-1", LEG, T0, False))
    assert call.commands == (c.Hangup(LEG), c.FlowFinished(LEG, "failed"))


def test_caller_joining_a_bridge_during_a_transfer_means_transferred():
    flow = flow_of({"x": {"type": "transfer", "to": "extension:1001"}})
    call = Call(flow)
    assert call.send(e.LegJoinedBridge("br-1", LEG, T0)) == (c.FlowFinished(LEG, "transferred"),)
    assert call.send(e.TransferFinished("xfer-1", LEG, T0, True)) == ()


def test_hangup_node_without_prompts_hangs_up_at_once():
    flow = flow_of({"h": {"type": "hangup"}})
    assert Call(flow).commands == (c.Hangup(LEG), c.FlowFinished(LEG, "hangup"))


def test_caller_hangup_cancels_the_timer_and_finishes():
    call = to_menu()
    call.finish_playback()
    timer = call.state.timer_id
    commands = call.send(e.LegHungUp(LEG, T0, 16, "Normal Clearing"))
    assert commands == (c.CancelTimer(timer), c.FlowFinished(LEG, "caller-hangup"))
    assert call.state.finished and call.state.outcome == "caller-hangup"
    assert call.send(e.TimerFired(timer, LEG, T0)) == ()
    assert call.dtmf("1") == ()


def test_events_of_other_legs_are_ignored():
    call = to_menu()
    assert call.send(e.LegHungUp("other", T0, 16, "")) == ()
    assert call.send(e.DtmfReceived("other", T0, "1", 100)) == ()
    assert call.send(e.PlaybackFinished("pb-2", "other", T0, True)) == ()
    assert not call.state.finished


def test_stale_timer_and_playback_are_ignored():
    call = to_account()
    old_timer = call.state.timer_id
    call.dtmf("1")
    assert call.send(e.TimerFired(old_timer, LEG, T0)) == ()
    assert call.send(e.PlaybackFinished("pb-1", LEG, T0, True)) == ()
    assert call.state.digits == "1"
    assert call.send(e.LegAnswered(LEG, T0)) == ()


# --- voicemail --------------------------------------------------------------------------------


def to_recording() -> Call:
    call = Call(now=NIGHT)
    commands = call.finish_playback()
    assert commands == (c.Record(c.RecordingTarget.LEG, LEG, "vm-2", "wav", 120, True),)
    assert call.state.phase is Phase.RECORDING and call.state.recording == "vm-2"
    return call


def test_voicemail_hash_stops_the_recording_then_stores_it_and_goes_next():
    call = to_recording()
    assert call.dtmf("1") == ()
    assert call.dtmf("#") == (c.StopRecording("vm-2"),)
    commands = call.send(e.RecordingFinished("vm-2", LEG, NIGHT, 12.5))
    assert commands == (
        c.StoreVoicemail(LEG, "sales", "vm-2", 12.5),
        c.Play(LEG, "pb-3", ("sound:vm-goodbye",)),
    )
    assert call.finish_playback() == (c.Hangup(LEG), c.FlowFinished(LEG, "hangup"))


def test_caller_hangup_during_the_recording_still_stores_the_message():
    call = to_recording()
    commands = call.send(e.LegHungUp(LEG, NIGHT, 16, "Normal Clearing"))
    assert commands == (c.FlowFinished(LEG, "voicemail"),)
    assert call.state.finished and call.state.recording == "vm-2"
    # a round trip through Redis in between (adoption after a restart)
    call.last = IvrDecision(state_from_dict(json.loads(json.dumps(state_to_dict(call.state)))))
    assert call.send(e.RecordingFinished("other", LEG, NIGHT, 3.0)) == ()
    assert call.send(e.RecordingFinished("vm-2", LEG, NIGHT, 30.0)) == (
        c.StoreVoicemail(LEG, "sales", "vm-2", 30.0),
    )
    assert call.state.recording is None
    assert call.send(e.RecordingFinished("vm-2", LEG, NIGHT, 30.0)) == ()


def test_caller_hangup_during_the_voicemail_prompt_records_nothing():
    call = Call(now=NIGHT)
    assert call.send(e.LegHungUp(LEG, NIGHT, 16, "")) == (c.FlowFinished(LEG, "caller-hangup"),)
    assert call.send(e.PlaybackFinished("pb-1", LEG, NIGHT, False)) == ()
    assert call.state.recording is None


def test_voicemail_without_next_hangs_up_after_storing_and_failed_recording_stores_nothing():
    flow = flow_of({"v": {"type": "voicemail", "mailbox": "m1", "max_duration_s": 60}})
    call = Call(flow)
    assert call.commands == (c.Record(c.RecordingTarget.LEG, LEG, "vm-1", "wav", 60, True),)
    assert call.send(e.RecordingFinished("vm-1", LEG, T0, None)) == (
        c.StoreVoicemail(LEG, "m1", "vm-1", None),
        c.Hangup(LEG),
        c.FlowFinished(LEG, "voicemail"),
    )
    call = Call(flow)
    assert call.send(e.RecordingFailed("vm-1", LEG, T0, "disk full")) == (
        c.Hangup(LEG),
        c.FlowFinished(LEG, "failed"),
    )


# --- state ------------------------------------------------------------------------------------


def test_state_round_trips_through_json_at_every_step():
    call = to_account()
    call.dtmf("12")
    data = state_to_dict(call.state)
    assert json.loads(json.dumps(data)) == data
    restored = state_from_dict(json.loads(json.dumps(data)))
    assert restored == call.state
    # the restored state carries on exactly like the original
    call.last = IvrDecision(restored)
    call.dtmf("34#")
    assert call.state.data["account"] == "1234"


# --- properties -------------------------------------------------------------------------------

VOICEMAIL_ONLY = flow_of(
    {
        "v": {"type": "voicemail", "mailbox": "m", "prompts": ["sound:beep"]},
    }
)
COLLECT_LOOP = flow_of(
    {
        "c": {
            "type": "collect",
            "prompts": ["ask"],
            "variable": "v",
            "min_digits": 0,
            "max_digits": 3,
            "timeout_prompts": ["sound:hello"],
            "invalid_prompts": ["sound:bad"],
            "pattern": "1.*",
            "retries": 2,
            "next": "t",
            "on_failure": "c2",
        },
        "c2": {"type": "menu", "options": {"1": "c", "2": "t", "#": "v"}, "barge_in": False},
        "t": {"type": "transfer", "to": "PJSIP/9", "on_failure": "h"},
        "v": {"type": "voicemail", "mailbox": "m", "next": "c"},
        "h": {"type": "hangup", "prompts": ["bye"]},
    }
)
LOOKUP_LOOP = flow_of(
    {
        "l": {
            "type": "lookup",
            "url": "http://crm/x",
            "fields": {"vip": "tier"},
            "next": "r",
            "on_failure": "m",
        },
        "r": {"type": "condition", "when": [{"data": "vip", "equals": "gold", "next": "s"}], "else": "m"},
        "s": {"type": "set", "values": {"vip": "seen"}, "next": "m"},
        "m": {"type": "menu", "prompts": ["p"], "options": {"1": "l", "2": "q", "3": "v"}, "retries": 2},
        "q": {"type": "queue", "queue": "sales"},
        "v": {"type": "voicemail", "mailbox": "m"},
    }
)
FLOWS = [FLOW, VOICEMAIL_ONLY, COLLECT_LOOP, LOOKUP_LOOP]

# Weighted so that runs get deep into the flows before the caller hangs up.
event_kinds = st.sampled_from(
    ["dtmf"] * 4
    + ["playback"] * 3
    + ["timer"] * 2
    + ["lookup", "transfer", "rec-done", "rec-fail", "hangup", "bridge", "other"]
)
steps = st.lists(
    st.tuples(
        event_kinds,
        st.sampled_from([True, True, True, False]),
        st.sampled_from(list("0123456789*#AD")),
        st.booleans(),
    ),
    max_size=60,
)


def make_event(kind: str, current: bool, digit: str, flag: bool, state: IvrState, at: datetime):
    """An event of ``kind``; with ``current`` it carries the id the state waits for (else a stale one)."""

    def pick(value: str | None, stale: str) -> str:
        return value if current and value is not None else stale

    match kind:
        case "dtmf":
            return e.DtmfReceived(LEG, at, digit, 80)
        case "playback":
            return e.PlaybackFinished(pick(state.playback_id, "pb-stale"), LEG, at, flag)
        case "timer":
            return e.TimerFired(pick(state.timer_id, "timer-stale"), LEG, at)
        case "lookup":
            return e.LookupFinished(pick(state.lookup_id, "lk-stale"), LEG, at, flag, {"tier": "gold"}, "")
        case "transfer":
            return e.TransferFinished(pick(state.transfer_id, "x-stale"), LEG, at, flag)
        case "rec-done":
            return e.RecordingFinished(pick(state.recording, "vm-stale"), LEG, at, 1.0)
        case "rec-fail":
            return e.RecordingFailed(pick(state.recording, "vm-stale"), LEG, at, "x")
        case "hangup":
            return e.LegHungUp(LEG if flag else "other", at, 16, "")
        case "bridge":
            return e.LegJoinedBridge("br", LEG, at)
    return e.DtmfReceived("other", at, digit, 80)


def drive(flow: Flow, now: datetime, events: list) -> list[tuple[IvrState, object, IvrDecision]]:
    """Run the random events; (state before, event, decision) for the start and each event."""
    ids = Ids()
    decision = ivr.start(flow, LEG, dict(DATA), now=now, schedules=SCHEDULES, ids=ids)
    history: list = [(IvrState(LEG, flow.start, Phase.PLAYING), None, decision)]
    for i, (kind, current, digit, flag) in enumerate(events):
        state = decision.state
        event = make_event(kind, current, digit, flag, state, now + timedelta(seconds=i))
        decision = ivr.on_event(flow, state, event, now=now, schedules=SCHEDULES, ids=ids)
        history.append((state, event, decision))
    return history


random_runs = given(flow_index=st.integers(0, len(FLOWS) - 1), night=st.booleans(), events=steps)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@random_runs
def test_random_events_never_raise_and_nothing_but_a_voicemail_follows_the_end(flow_index, night, events):
    stored: list[str] = []
    finished = 0
    for before, _, decision in drive(FLOWS[flow_index], NIGHT if night else T0, events):
        if before.finished:
            assert all(isinstance(cmd, c.StoreVoicemail) for cmd in decision.commands), decision.commands
        for cmd in decision.commands:
            if isinstance(cmd, c.StoreVoicemail):
                assert cmd.recording_name not in stored
                stored.append(cmd.recording_name)
            finished += isinstance(cmd, c.FlowFinished)
        assert finished == (1 if decision.state.finished else 0)
        assert state_from_dict(json.loads(json.dumps(state_to_dict(decision.state)))) == decision.state


@fast
@random_runs
def test_random_events_never_leave_two_timers_running(flow_index, night, events):
    active: set[str] = set()
    for _, event, decision in drive(FLOWS[flow_index], NIGHT if night else T0, events):
        if isinstance(event, e.TimerFired):
            active.discard(event.timer_id)  # the service forgets a timer once it fired
        for cmd in decision.commands:
            if isinstance(cmd, c.StartTimer):
                assert not active, f"a second timer while {active} runs"
                active.add(cmd.timer_id)
            elif isinstance(cmd, c.CancelTimer):
                active.discard(cmd.timer_id)
        assert decision.state.timer_id == (next(iter(active)) if active else None)
        if decision.state.finished:
            assert not active
