"""Flow and schedule documents: parsing and every validation rule of docs/flows.md."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.domain.errors import ControllerError
from controller.domain.flows import (
    CollectNode,
    ConditionNode,
    DataTest,
    FlowError,
    FlowInvalid,
    MenuNode,
    ScheduleInvalid,
    check_references,
    parse_flow,
    parse_schedule,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "flows.md"
EXAMPLE = json.loads(re.search(r"```json\n(.*?)```", DOC.read_text(), re.S).group(1))


def errors_of(document: dict) -> list[FlowError]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    return caught.value.errors


def flow(nodes: dict, start: str | None = None) -> dict:
    return {"start": start or next(iter(nodes)), "nodes": nodes}


def example_with(**changes) -> dict:
    """The documented example with nodes replaced (None removes one)."""
    document = copy.deepcopy(EXAMPLE)
    for name, node in changes.items():
        if node is None:
            del document["nodes"][name]
        else:
            document["nodes"][name] = node
    return document


QUEUE = {"type": "queue", "queue": "sales"}


# --- the documented example ---------------------------------------------------------------


def test_the_example_in_the_docs_parses_and_reports_what_it_uses():
    parsed = parse_flow(EXAMPLE)
    assert parsed.start == "hours"
    assert isinstance(parsed.nodes["menu"], MenuNode)
    menu = parsed.nodes["menu"]
    assert menu.timeout_s == 5 and menu.retries == 3 and menu.barge_in is True
    account = parsed.nodes["account"]
    assert isinstance(account, CollectNode) and account.min_digits == 4 and account.terminator == "#"
    assert parsed.prompts_used() == {"welcome", "main-menu"}
    assert parsed.sounds_used() == {
        "hello-world",
        "invalid",
        "vm-enter-num-to-call",
        "vm-intro",
        "vm-goodbye",
    }
    assert parsed.schedules_used() == {"office"}
    route = parsed.nodes["route"]
    assert isinstance(route, ConditionNode) and isinstance(route.when[0], DataTest)
    # the parsed flow writes back to an equivalent document
    assert parse_flow(parsed.to_document()) == parsed


def test_defaults_apply():
    parsed = parse_flow(
        flow(
            {
                "m": {"type": "menu", "options": {"1": "c"}},
                "c": {"type": "collect", "variable": "v", "next": "q"},
                "q": QUEUE,
            }
        )
    )
    menu, collect, queue = parsed.nodes["m"], parsed.nodes["c"], parsed.nodes["q"]
    assert (menu.timeout_s, menu.retries, menu.barge_in, menu.on_failure) == (5, 3, True, None)
    assert (collect.min_digits, collect.max_digits, collect.terminator, collect.timeout_s) == (1, 20, "#", 5)
    assert (queue.priority, queue.skills) == (0, {})


# --- validation: each kind names its node ---------------------------------------------------


@pytest.mark.parametrize(
    ("document", "node", "fragment"),
    [
        (example_with(sales={"type": "queueue", "queue": "x"}), "sales", "unknown node type 'queueue'"),
        (example_with(sales={"queue": "x"}), "sales", "unknown node type 'None'"),
        (example_with(sales="queue"), "sales", "a node is a JSON object"),
        (
            example_with(menu={**EXAMPLE["nodes"]["menu"], "timeout_s": "5"}),
            "menu",
            "field 'timeout_s'",
        ),
        (example_with(menu={**EXAMPLE["nodes"]["menu"], "barge_in": 1}), "menu", "field 'barge_in'"),
        (example_with(menu={**EXAMPLE["nodes"]["menu"], "retries": 0}), "menu", "field 'retries'"),
        (example_with(menu={**EXAMPLE["nodes"]["menu"], "colour": "red"}), "menu", "unknown field 'colour'"),
        (example_with(vipq={"type": "queue"}), "vipq", "missing field 'queue'"),
        (example_with(welcome={"type": "play", "prompts": [], "next": "menu"}), "welcome", "prompts"),
        (
            example_with(menu={**EXAMPLE["nodes"]["menu"], "options": {"12": "account", "2": "sales"}}),
            "menu",
            "option '12' is not one DTMF key",
        ),
        (
            example_with(menu={**EXAMPLE["nodes"]["menu"], "options": {"E": "account", "2": "sales"}}),
            "menu",
            "option 'E' is not one DTMF key",
        ),
        (
            example_with(welcome={"type": "play", "prompts": ["welcome"], "next": "nowhere"}),
            "welcome",
            "next names no node: 'nowhere'",
        ),
        (
            example_with(account={**EXAMPLE["nodes"]["account"], "on_failure": "gone"}),
            "account",
            "on_failure names no node: 'gone'",
        ),
        (example_with(route={**EXAMPLE["nodes"]["route"], "else": "gone"}), "route", "else names no node"),
        (
            example_with(menu={**EXAMPLE["nodes"]["menu"], "options": {"1": "gone"}}),
            "menu",
            "options.1 names no node: 'gone'",
        ),
        (
            example_with(
                hours={"type": "condition", "when": [{"dialed": "1", "next": "gone"}], "else": "welcome"}
            ),
            "hours",
            "when[0].next names no node",
        ),
        (example_with(extra={"type": "hangup"}), "extra", "unreachable from start"),
        (
            example_with(account={**EXAMPLE["nodes"]["account"], "terminator": "##"}),
            "account",
            "terminator '##' is not one DTMF key",
        ),
        (
            example_with(account={**EXAMPLE["nodes"]["account"], "min_digits": 9}),
            "account",
            "min_digits is greater than max_digits",
        ),
        (
            example_with(account={**EXAMPLE["nodes"]["account"], "pattern": "[0-9"}),
            "account",
            "pattern is not a valid regex",
        ),
        (
            example_with(account={**EXAMPLE["nodes"]["account"], "variable": "my var"}),
            "account",
            "variable 'my var' is not a valid name",
        ),
        (
            example_with(lookup={**EXAMPLE["nodes"]["lookup"], "url": "ftp://crm"}),
            "lookup",
            "url must be an http",
        ),
        (example_with(xfer={"type": "transfer", "to": "1001"}), "xfer", "'1001' is not an endpoint"),
        (example_with(xfer={"type": "transfer", "to": "number:0612"}), "xfer", "is not an endpoint"),
        (
            example_with(welcome={"type": "play", "prompts": ["date:2026-13-01"], "next": "menu"}),
            "welcome",
            "is not a date",
        ),
        (
            example_with(welcome={"type": "play", "prompts": ["digits:12x"], "next": "menu"}),
            "welcome",
            "'digits:12x' is not a valid digits item",
        ),
        (
            example_with(welcome={"type": "play", "prompts": ["sound:../../etc/passwd"], "next": "menu"}),
            "welcome",
            "is not a valid sound name",
        ),
        (
            example_with(welcome={"type": "play", "prompts": ["prompt:a/b"], "next": "menu"}),
            "welcome",
            "is not a valid prompt name",
        ),
        (
            example_with(welcome={"type": "play", "prompts": ["digits:${a-b}"], "next": "menu"}),
            "welcome",
            "'${a-b}' is not a valid variable",
        ),
        (
            example_with(route={"type": "condition", "when": [{"next": "vipq"}], "else": "sales"}),
            "route",
            "when[0]: a test has exactly one of",
        ),
        (
            example_with(
                route={
                    "type": "condition",
                    "when": [{"data": "vip", "equals": "gold", "present": True, "next": "vipq"}],
                    "else": "sales",
                }
            ),
            "route",
            "a data test has exactly one of equals, in, present",
        ),
        (
            example_with(
                route={
                    "type": "condition",
                    "when": [{"dialed": "1", "colour": 1, "next": "vipq"}],
                    "else": "sales",
                }
            ),
            "route",
            "unknown field 'when[0].colour'",
        ),
        (
            example_with(
                route={
                    "type": "condition",
                    "when": [{"schedule": "office", "open": "no", "next": "vipq"}],
                    "else": "sales",
                }
            ),
            "route",
            "field 'when[0].open'",
        ),
        (example_with(vipq={"type": "queue", "queue": "vip", "skills": {"english": "3"}}), "vipq", "skills"),
        (
            example_with(setlang={"type": "set", "values": {"lang": 1}, "next": "welcome"}),
            "setlang",
            "values",
        ),
    ],
)
def test_each_validation_error_names_its_node(document, node, fragment):
    errors = errors_of(document)
    assert errors[0].node == node, errors
    assert fragment in errors[0].message, errors
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    assert caught.value.detail.startswith(f"node '{node}': ")


def test_flow_invalid_is_a_422_with_the_first_node_in_its_detail():
    document = example_with(menu={**EXAMPLE["nodes"]["menu"], "options": {"12": "account", "2": "sales"}})
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    error = caught.value
    assert isinstance(error, ControllerError)
    assert (error.status, error.code) == (422, "invalid-flow")
    # account/xfer/setlang are unreachable once the options changed, but the first error is the option
    assert error.detail.startswith("node 'menu': option '12' is not one DTMF key")
    assert error.errors[0] == FlowError("menu", "options", "option '12' is not one DTMF key")


def test_every_error_is_listed_in_document_order():
    document = flow(
        {
            "a": {"type": "play", "prompts": ["x"], "next": "b", "extra": 1},
            "b": {"type": "wat"},
            "c": {"type": "menu", "options": {"11": "a"}},
        }
    )
    errors = errors_of(document)
    assert [(err.node, err.message) for err in errors] == [
        ("a", "unknown field 'extra'"),
        ("b", "unknown node type 'wat'"),
        ("c", "option '11' is not one DTMF key"),
    ]


def test_errors_are_sorted_by_node_whatever_the_check():
    document = flow(
        {
            "a": {"type": "play", "prompts": ["x"], "next": "gone"},
            "b": {"type": "wat"},
        }
    )
    assert [err.node for err in errors_of(document)] == ["a", "b"]
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    assert caught.value.detail == "node 'a': next names no node: 'gone' (and 1 more)"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 50) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    node=st.sampled_from(sorted(EXAMPLE["nodes"])),
    key=st.sampled_from(
        ["type", "prompts", "next", "options", "when", "else", "values", "fields", "to", "timeout_s", "x"]
    ),
    value=json_values,
)
def test_any_mangled_document_is_a_flow_or_flow_invalid(node, key, value):
    document = copy.deepcopy(EXAMPLE)
    document["nodes"][node][key] = value
    try:
        parse_flow(document)
    except FlowInvalid as exc:
        assert exc.errors and exc.detail


def test_document_level_errors_name_no_node():
    assert errors_of({"start": "x", "nodes": {"a": QUEUE}})[0] == FlowError(
        None, "start", "start names no node: 'x'"
    )
    assert errors_of({"start": "a", "nodes": {}})[0].field == "nodes"
    assert errors_of({"start": "a", "nodes": {"a": QUEUE}, "name": "x"})[0].message == "unknown field 'name'"
    assert errors_of({"nodes": {"a": QUEUE}})[0].field == "start"
    with pytest.raises(FlowInvalid) as caught:
        parse_flow({"start": "x", "nodes": {"a": QUEUE}})
    assert caught.value.detail == "start names no node: 'x'"


# --- loops --------------------------------------------------------------------------------


def test_loop_without_exit_is_refused_naming_its_first_node():
    document = flow(
        {
            "start": {"type": "play", "prompts": ["hi"], "next": "a"},
            "a": {"type": "play", "prompts": ["x"], "next": "b"},
            "b": {"type": "set", "values": {"k": "v"}, "next": "a"},
        }
    )
    errors = errors_of(document)
    assert errors == [FlowError("a", None, "loop without exit through a, b")]


def test_self_loop_of_a_condition_is_refused():
    document = flow({"c": {"type": "condition", "when": [{"dialed": "1", "next": "c"}], "else": "c"}})
    assert errors_of(document)[0].message == "loop without exit through c"


@pytest.mark.parametrize("waiting", ["menu", "collect", "voicemail"])
def test_a_waiting_node_in_the_cycle_is_an_exit(waiting):
    node = {
        "menu": {"type": "menu", "options": {"1": "a"}},
        "collect": {"type": "collect", "variable": "v", "next": "a"},
        "voicemail": {"type": "voicemail", "mailbox": "m", "next": "a"},
    }[waiting]
    parse_flow(flow({"a": {"type": "play", "prompts": ["x"], "next": "w"}, "w": node}))


def test_a_cycle_that_can_leave_is_fine():
    parse_flow(
        flow(
            {
                "c": {"type": "condition", "when": [{"data": "n", "equals": "3", "next": "q"}], "else": "s"},
                "s": {"type": "set", "values": {"n": "3"}, "next": "c"},
                "q": QUEUE,
            }
        )
    )
    parse_flow(
        flow(
            {
                "x": {"type": "transfer", "to": "PJSIP/1", "on_failure": "p"},
                "p": {"type": "play", "prompts": ["sorry"], "next": "x"},
            }
        )
    )


def test_a_long_chain_does_not_recurse_too_deep():
    nodes = {f"n{i}": {"type": "set", "values": {"k": str(i)}, "next": f"n{i + 1}"} for i in range(3000)}
    nodes["n3000"] = QUEUE
    assert len(parse_flow(flow(nodes, "n0")).nodes) == 3001


# --- references ---------------------------------------------------------------------------


def test_check_references_names_unknown_prompts_sounds_and_schedules():
    parsed = parse_flow(EXAMPLE)
    errors = check_references(
        parsed,
        prompts={"welcome"},
        sounds={"hello-world", "invalid", "vm-enter-num-to-call", "vm-intro"},
        schedules=set(),
    )
    assert errors == [
        FlowError("hours", "when[0].schedule", "unknown schedule 'office'"),
        FlowError("menu", "prompts", "unknown prompt 'main-menu'"),
        FlowError("bye", "prompts", "unknown sound 'vm-goodbye'"),
    ]
    assert check_references(parsed, prompts={"welcome", "main-menu"}, sounds=None, schedules={"office"}) == []


def test_check_references_skips_sounds_when_the_catalog_is_unknown_and_dynamic_items():
    parsed = parse_flow(
        flow(
            {
                "p": {
                    "type": "play",
                    "prompts": ["${greeting}", "sound:x-${lang}", "sound:nope"],
                    "next": "q",
                },
                "q": QUEUE,
            }
        )
    )
    assert check_references(parsed, prompts=set(), sounds=None, schedules=set()) == []
    assert check_references(parsed, prompts=set(), sounds=set(), schedules=set()) == [
        FlowError("p", "prompts", "unknown sound 'nope'")
    ]
    assert parsed.prompts_used() == set() and parsed.sounds_used() == {"nope"}


def test_all_media_fields_are_checked():
    parsed = parse_flow(
        flow(
            {
                "m": {
                    "type": "menu",
                    "options": {"1": "q"},
                    "invalid_prompts": ["bad"],
                    "timeout_prompts": ["sound:late"],
                },
                "q": QUEUE,
            }
        )
    )
    assert check_references(parsed, prompts=set(), sounds=set(), schedules=set()) == [
        FlowError("m", "invalid_prompts", "unknown prompt 'bad'"),
        FlowError("m", "timeout_prompts", "unknown sound 'late'"),
    ]


# --- schedules ----------------------------------------------------------------------------

SCHEDULE = {
    "name": "office",
    "timezone": "Europe/Paris",
    "weekly": {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "sat": [["22:00", "24:00"]]},
    "holidays": [
        {"date": "2026-12-25", "name": "Christmas"},
        {"date": "2026-12-24", "hours": [["08:00", "12:00"]]},
    ],
}


def test_a_schedule_parses():
    schedule = parse_schedule(SCHEDULE)
    assert schedule.name == "office" and schedule.timezone == "Europe/Paris"
    assert schedule.weekly[0] == ((480, 720), (780, 1080))
    assert schedule.weekly[5] == ((1320, 1440),)
    assert schedule.holidays[next(iter(schedule.holidays))].name == "Christmas"
    overlapping = parse_schedule({**SCHEDULE, "weekly": {"tue": [["08:00", "12:00"], ["10:00", "14:00"]]}})
    assert overlapping.weekly[1] == ((480, 720), (600, 840))


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"timezone": "Europe/Pariss"}, "timezone", "unknown timezone 'Europe/Pariss'"),
        ({"timezone": "../etc/passwd"}, "timezone", "unknown timezone"),
        ({"timezone": None}, "timezone", "timezone"),
        ({"weekly": {"monday": []}}, "weekly.monday", "unknown day 'monday'"),
        ({"weekly": {"mon": [["18:00", "08:00"]]}}, "weekly.mon[0]", "end 08:00 is not after start 18:00"),
        ({"weekly": {"mon": [["08:00", "08:00"]]}}, "weekly.mon[0]", "is not after start"),
        ({"weekly": {"mon": [["8:00", "12:00"]]}}, "weekly.mon[0]", "HH:MM"),
        ({"weekly": {"mon": [["08:00", "25:00"]]}}, "weekly.mon[0]", "HH:MM"),
        ({"weekly": {"mon": [["24:00", "24:00"]]}}, "weekly.mon[0]", "cannot start at 24:00"),
        ({"weekly": {"mon": [["08:00"]]}}, "weekly.mon[0]", "an interval is"),
        ({"weekly": {"mon": "08:00-12:00"}}, "weekly.mon", "list"),
        ({"holidays": [{"date": "2026-02-30"}]}, "holidays[0].date", "YYYY-MM-DD"),
        ({"holidays": [{"date": "2026-12-25"}, {"date": "2026-12-25"}]}, "holidays[1].date", "listed twice"),
        (
            {"holidays": [{"date": "2026-12-25", "hours": [["12:00", "11:00"]]}]},
            "holidays[0].hours[0]",
            "after",
        ),
        ({"holidays": [{"date": "2026-12-25", "when": 1}]}, "holidays[0].when", "unknown field"),
        ({"colour": "red"}, "colour", "unknown field 'colour'"),
    ],
)
def test_schedule_errors(change, field, fragment):
    with pytest.raises(ScheduleInvalid) as caught:
        parse_schedule({**SCHEDULE, **change})
    error = caught.value
    assert (error.status, error.code) == (422, "invalid-schedule")
    assert error.errors[0].field == field, error.errors
    assert fragment in error.errors[0].message
    assert fragment in error.detail
