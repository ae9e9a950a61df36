"""Flow and schedule documents: their model and every check that needs no outside knowledge.

A flow document (docs/flows.md) is JSON: a ``start`` node name and ``nodes``, each a typed step.
``parse_flow`` turns it into a :class:`Flow` or raises :class:`FlowInvalid` listing every error,
each naming its node, so the API can answer 422 with the first one. Checks run in two layers:
the shape of each node (types, unknown fields, media items, DTMF keys) and then the graph
(targets exist, every node is reachable from ``start``, no loop without an exit). Whether the
prompts, sounds and schedules a flow names exist is outside knowledge: ``check_references``
takes those sets from the caller.

``parse_schedule`` does the same for opening-hours documents; ``controller.engines.schedule``
answers "open at this instant?" from the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.domain.errors import ControllerError

DTMF_KEYS = frozenset("0123456789*#ABCD")
MEDIA_KINDS = ("prompt", "sound", "digits", "number", "characters", "date", "tone")
# A cycle through one of these is not a loop without exit: menus, collects and voicemails wait
# for the caller, and a transfer ends the flow when answered.
EXIT_TYPES = frozenset({"menu", "collect", "voicemail", "transfer"})

VARIABLE = re.compile(r"\$\{([^}]*)\}")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PROMPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SOUND_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
SAY_VALUE = {
    "digits": re.compile(r"[0-9*#A-D]+"),
    "number": re.compile(r"-?[0-9]+"),
    "characters": re.compile(r"[A-Za-z0-9 .,_@+*#-]+"),
    "tone": re.compile(r"[A-Za-z0-9_-]+"),
}
_ENDPOINT = re.compile(r"[A-Za-z][A-Za-z0-9]*/[^\s/]+(/[^\s/]+)*")
_EXTENSION = re.compile(r"extension:[0-9A-Za-z*#+_-]+")
_E164 = re.compile(r"number:\+[1-9][0-9]{1,14}")


# --- errors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowError:
    """One problem in a document: the node it is in (None for the document itself), the field."""

    node: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"node '{self.node}': {self.message}" if self.node is not None else self.message


class DocumentInvalid(ControllerError):
    """The document is not valid."""

    code = "invalid-document"
    status = 422

    def __init__(self, errors: list[FlowError]) -> None:
        self.errors = list(errors)
        first = str(self.errors[0]) if self.errors else ""
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(first + more)


class FlowInvalid(DocumentInvalid):
    """The flow document is not valid."""

    code = "invalid-flow"


class ScheduleInvalid(DocumentInvalid):
    """The schedule document is not valid."""

    code = "invalid-schedule"


# --- nodes --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Prompts = list[str]


class PlayNode(_Model):
    type: Literal["play"]
    prompts: Prompts = Field(min_length=1)
    next: str


class MenuNode(_Model):
    type: Literal["menu"]
    prompts: Prompts = []
    options: dict[str, str] = Field(min_length=1)
    timeout_s: float = Field(5, gt=0, le=300)
    retries: int = Field(3, ge=1, le=20)
    invalid_prompts: Prompts = []
    timeout_prompts: Prompts = []
    barge_in: bool = True
    on_failure: str | None = None


class CollectNode(_Model):
    type: Literal["collect"]
    prompts: Prompts = []
    variable: str
    min_digits: int = Field(1, ge=0, le=64)
    max_digits: int = Field(20, ge=1, le=64)
    terminator: str = "#"
    timeout_s: float = Field(5, gt=0, le=300)
    pattern: str | None = None
    retries: int = Field(3, ge=1, le=20)
    invalid_prompts: Prompts = []
    timeout_prompts: Prompts = []
    barge_in: bool = True
    next: str
    on_failure: str | None = None


class LookupNode(_Model):
    type: Literal["lookup"]
    url: str
    timeout_s: float = Field(2, gt=0, le=30)
    fields: dict[str, str] = {}
    next: str
    on_failure: str | None = None


class ScheduleTest(_Model):
    schedule: str
    open: bool = True
    next: str


class DataTest(_Model):
    data: str
    equals: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    present: bool | None = None
    next: str


class CallerPrefixTest(_Model):
    caller_number_prefix: str
    next: str


class DialedTest(_Model):
    dialed: str
    next: str


Test = ScheduleTest | DataTest | CallerPrefixTest | DialedTest
_TEST_KINDS: dict[str, type[_Model]] = {
    "schedule": ScheduleTest,
    "data": DataTest,
    "caller_number_prefix": CallerPrefixTest,
    "dialed": DialedTest,
}


class ConditionNode(_Model):
    type: Literal["condition"]
    when: list[Test] = []
    else_: str = Field(alias="else")


class SetNode(_Model):
    type: Literal["set"]
    values: dict[str, str] = Field(min_length=1)
    next: str


class QueueNode(_Model):
    type: Literal["queue"]
    queue: str = Field(min_length=1)
    priority: int = Field(0, ge=0, le=1000)
    skills: dict[str, int] = {}


class TransferNode(_Model):
    type: Literal["transfer"]
    to: str
    timeout_s: float = Field(30, gt=0, le=600)
    on_failure: str | None = None


class VoicemailNode(_Model):
    type: Literal["voicemail"]
    mailbox: str = Field(min_length=1)
    prompts: Prompts = []
    max_duration_s: int = Field(120, gt=0, le=3600)
    next: str | None = None


class HangupNode(_Model):
    type: Literal["hangup"]
    prompts: Prompts = []


Node = (
    PlayNode
    | MenuNode
    | CollectNode
    | LookupNode
    | ConditionNode
    | SetNode
    | QueueNode
    | TransferNode
    | VoicemailNode
    | HangupNode
)
NODE_TYPES: dict[str, type[_Model]] = {
    "play": PlayNode,
    "menu": MenuNode,
    "collect": CollectNode,
    "lookup": LookupNode,
    "condition": ConditionNode,
    "set": SetNode,
    "queue": QueueNode,
    "transfer": TransferNode,
    "voicemail": VoicemailNode,
    "hangup": HangupNode,
}
MEDIA_FIELDS = ("prompts", "invalid_prompts", "timeout_prompts")


def targets(node: Node) -> list[tuple[str, str]]:
    """(field, node name) for every place this node can go next, in document order."""
    out: list[tuple[str, str]] = []
    if isinstance(node, MenuNode):
        out += [(f"options.{key}", target) for key, target in node.options.items()]
    if isinstance(node, ConditionNode):
        out += [(f"when[{i}].next", test.next) for i, test in enumerate(node.when)]
        out.append(("else", node.else_))
    next_ = getattr(node, "next", None)
    if next_ is not None and not isinstance(node, ConditionNode):
        out.append(("next", next_))
    on_failure = getattr(node, "on_failure", None)
    if on_failure is not None:
        out.append(("on_failure", on_failure))
    return out


def media_items(node: Node) -> Iterator[tuple[str, str]]:
    """(field, item) for every media item of the node."""
    for field_name in MEDIA_FIELDS:
        for item in getattr(node, field_name, ()):
            yield field_name, item


def split_media(item: str) -> tuple[str, str]:
    """(kind, value) of a media item; a bare name is an uploaded prompt."""
    kind, sep, value = item.partition(":")
    if sep and kind in MEDIA_KINDS:
        return kind, value
    return "prompt", item


@dataclass(frozen=True, slots=True)
class Flow:
    start: str
    nodes: Mapping[str, Node]

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def prompts_used(self) -> set[str]:
        """Uploaded prompts named literally (items built from ``${}`` are known only on a call)."""
        return {value for kind, value in self._static_media() if kind == "prompt"}

    def sounds_used(self) -> set[str]:
        return {value for kind, value in self._static_media() if kind == "sound"}

    def schedules_used(self) -> set[str]:
        return {
            test.schedule
            for node in self.nodes.values()
            if isinstance(node, ConditionNode)
            for test in node.when
            if isinstance(test, ScheduleTest)
        }

    def to_document(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "nodes": {
                name: node.model_dump(by_alias=True, exclude_none=True) for name, node in self.nodes.items()
            },
        }

    def _static_media(self) -> Iterator[tuple[str, str]]:
        for node in self.nodes.values():
            for _, item in media_items(node):
                if "${" not in item:
                    yield split_media(item)


# --- parsing ------------------------------------------------------------------------------


def parse_flow(document: dict[str, Any]) -> Flow:
    """The flow a document describes, or FlowInvalid listing every problem (node by node)."""
    errors: list[FlowError] = []
    if not isinstance(document, dict):
        raise FlowInvalid([FlowError(None, None, "a flow document is a JSON object")])
    for key in document:
        if key not in ("start", "nodes"):
            errors.append(FlowError(None, str(key), f"unknown field '{key}'"))
    start = document.get("start")
    raw_nodes = document.get("nodes")
    if not isinstance(start, str):
        errors.append(FlowError(None, "start", "'start' must name a node"))
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        errors.append(FlowError(None, "nodes", "'nodes' must be an object with at least one node"))
        raise FlowInvalid(errors)

    nodes: dict[str, Node] = {}
    for name, raw in raw_nodes.items():
        node = _parse_node(str(name), raw, errors)
        if node is not None:
            nodes[str(name)] = node
            errors += _check_node(str(name), node)

    if isinstance(start, str) and start not in raw_nodes:
        errors.append(FlowError(None, "start", f"start names no node: '{start}'"))
    for name, node in nodes.items():
        for field_name, target in targets(node):
            if target not in raw_nodes:
                errors.append(FlowError(name, field_name, f"{field_name} names no node: '{target}'"))
    if errors:
        order = {name: i for i, name in enumerate(raw_nodes)}
        errors.sort(key=lambda err: order.get(err.node, -1))  # the document's, then node by node
        raise FlowInvalid(errors)

    assert isinstance(start, str)
    flow = Flow(start=start, nodes=nodes)
    errors += _check_graph(flow)
    if errors:
        raise FlowInvalid(errors)
    return flow


def check_references(
    flow: Flow, *, prompts: set[str], sounds: set[str] | None, schedules: set[str]
) -> list[FlowError]:
    """Problems with names the flow takes from outside: uploaded prompts, Asterisk sounds
    (skipped when ``sounds`` is None: the catalog is unknown) and schedules."""
    errors: list[FlowError] = []
    for name, node in flow.nodes.items():
        for field_name, item in media_items(node):
            if "${" in item:
                continue
            kind, value = split_media(item)
            if kind == "prompt" and value not in prompts:
                errors.append(FlowError(name, field_name, f"unknown prompt '{value}'"))
            elif kind == "sound" and sounds is not None and value not in sounds:
                errors.append(FlowError(name, field_name, f"unknown sound '{value}'"))
        if isinstance(node, ConditionNode):
            for i, test in enumerate(node.when):
                if isinstance(test, ScheduleTest) and test.schedule not in schedules:
                    message = f"unknown schedule '{test.schedule}'"
                    errors.append(FlowError(name, f"when[{i}].schedule", message))
    return errors


def _parse_node(name: str, raw: Any, errors: list[FlowError]) -> Node | None:
    if not isinstance(raw, dict):
        errors.append(FlowError(name, None, "a node is a JSON object"))
        return None
    kind = raw.get("type")
    model = NODE_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        errors.append(FlowError(name, "type", f"unknown node type '{kind}'"))
        return None
    node_errors: list[FlowError] = []
    values = dict(raw)
    if model is ConditionNode and isinstance(raw.get("when"), list):
        values["when"] = [_parse_test(name, i, test, node_errors) for i, test in enumerate(raw["when"])]
    if node_errors:
        errors += node_errors
        return None
    try:
        return model.model_validate(values)  # type: ignore[return-value]
    except ValidationError as exc:
        errors += [_from_pydantic(name, err) for err in exc.errors()]
        return None


def _parse_test(node: str, index: int, raw: Any, errors: list[FlowError]) -> Any:
    where = f"when[{index}]"
    if not isinstance(raw, dict):
        errors.append(FlowError(node, where, f"{where}: a test is a JSON object"))
        return raw
    kinds = [key for key in _TEST_KINDS if key in raw]
    if len(kinds) != 1:
        errors.append(FlowError(node, where, f"{where}: a test has exactly one of {', '.join(_TEST_KINDS)}"))
        return raw
    try:
        test = _TEST_KINDS[kinds[0]].model_validate(raw)
    except ValidationError as exc:
        errors += [_from_pydantic(node, err, prefix=(where,)) for err in exc.errors()]
        return raw
    if isinstance(test, DataTest):
        chosen = [v for v in (test.equals, test.in_, test.present) if v is not None]
        if len(chosen) != 1:
            message = f"{where}: a data test has exactly one of equals, in, present"
            errors.append(FlowError(node, where, message))
    return test


def _from_pydantic(node: str, err: Any, prefix: tuple[str, ...] = ()) -> FlowError:
    loc = prefix + tuple(str(part) for part in err["loc"])
    where = _loc_text(loc)
    if err["type"] == "extra_forbidden":
        return FlowError(node, where, f"unknown field '{where}'")
    if err["type"] == "missing":
        return FlowError(node, where, f"missing field '{where}'")
    return FlowError(node, where or None, f"field '{where}': {err['msg']}" if where else err["msg"])


def _loc_text(loc: tuple[str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text


def _check_node(name: str, node: Node) -> list[FlowError]:
    errors = [FlowError(name, f, msg) for f, msg in _media_problems(node)]
    if isinstance(node, MenuNode):
        for key in node.options:
            if len(key) != 1 or key not in DTMF_KEYS:
                errors.append(FlowError(name, "options", f"option '{key}' is not one DTMF key"))
    if isinstance(node, CollectNode):
        if not VARIABLE_NAME.fullmatch(node.variable):
            errors.append(FlowError(name, "variable", f"variable '{node.variable}' is not a valid name"))
        if node.terminator and (len(node.terminator) != 1 or node.terminator not in DTMF_KEYS):
            message = f"terminator '{node.terminator}' is not one DTMF key"
            errors.append(FlowError(name, "terminator", message))
        if node.min_digits > node.max_digits:
            errors.append(FlowError(name, "min_digits", "min_digits is greater than max_digits"))
        if node.pattern is not None:
            try:
                re.compile(node.pattern)
            except re.error as exc:
                errors.append(FlowError(name, "pattern", f"pattern is not a valid regex: {exc}"))
    if isinstance(node, LookupNode):
        if not re.match(r"https?://[^\s/]+", node.url):
            errors.append(FlowError(name, "url", "url must be an http:// or https:// address"))
        for key in node.fields:
            if not VARIABLE_NAME.fullmatch(key):
                errors.append(FlowError(name, "fields", f"call-data key '{key}' is not a valid name"))
    if isinstance(node, SetNode):
        for key, value in node.values.items():
            if not VARIABLE_NAME.fullmatch(key):
                errors.append(FlowError(name, "values", f"call-data key '{key}' is not a valid name"))
            errors += [FlowError(name, "values", msg) for msg in _var_problems(value)]
    if isinstance(node, TransferNode) and "${" not in node.to:
        if not (_ENDPOINT.fullmatch(node.to) or _EXTENSION.fullmatch(node.to) or _E164.fullmatch(node.to)):
            errors.append(
                FlowError(name, "to", f"'{node.to}' is not an endpoint, extension:<exten> or number:<E.164>")
            )
    if isinstance(node, TransferNode):
        errors += [FlowError(name, "to", msg) for msg in _var_problems(node.to)]
    if isinstance(node, QueueNode):
        for skill, level in node.skills.items():
            if level < 0:
                errors.append(FlowError(name, "skills", f"skill '{skill}' has a negative level"))
    return errors


def _var_problems(text: str) -> list[str]:
    bad = [var for var in VARIABLE.findall(text) if not VARIABLE_NAME.fullmatch(var)]
    return [f"'${{{var}}}' is not a valid variable" for var in bad]


def _media_problems(node: Node) -> Iterator[tuple[str, str]]:
    for field_name, item in media_items(node):
        problems = _var_problems(item)
        if problems:
            yield from ((field_name, p) for p in problems)
            continue
        kind, value = split_media(item)
        if "${" in item:
            continue
        if kind == "prompt" and not PROMPT_NAME.fullmatch(value):
            yield field_name, f"'{item}' is not a valid prompt name"
        elif kind == "sound" and (not SOUND_NAME.fullmatch(value) or ".." in value):
            yield field_name, f"'{item}' is not a valid sound name"
        elif kind == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                yield field_name, f"'{item}' is not a date (YYYY-MM-DD)"
        elif kind in SAY_VALUE and not SAY_VALUE[kind].fullmatch(value):
            yield field_name, f"'{item}' is not a valid {kind} item"


def _check_graph(flow: Flow) -> list[FlowError]:
    edges = {name: [t for _, t in targets(node)] for name, node in flow.nodes.items()}
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    errors = [FlowError(name, None, "unreachable from start") for name in flow.nodes if name not in seen]

    order = {name: i for i, name in enumerate(flow.nodes)}
    for component in _strongly_connected(edges):
        members = set(component)
        if len(members) == 1 and component[0] not in edges[component[0]]:
            continue
        if any(flow.nodes[n].type in EXIT_TYPES for n in members):
            continue
        if any(t not in members for n in members for t in edges[n]):
            continue
        names = sorted(members, key=order.__getitem__)
        errors.append(FlowError(names[0], None, f"loop without exit through {', '.join(names)}"))
    errors.sort(key=lambda err: order.get(err.node or "", -1))
    return errors


def _strongly_connected(edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (flows may be long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            successors = edges[node]
            while child < len(successors):
                target = successors[child]
                child += 1
                if target not in index:
                    work.append((node, child))
                    work.append((target, 0))
                    recurse = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


# --- schedules ----------------------------------------------------------------------------

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")

Interval = tuple[int, int]  # minutes since local midnight, end exclusive; 1440 is "24:00"


@dataclass(frozen=True, slots=True)
class Holiday:
    day: date
    name: str
    hours: tuple[Interval, ...] | None  # None: closed all day


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    timezone: str
    weekly: Mapping[int, tuple[Interval, ...]]  # 0 = Monday
    holidays: Mapping[date, Holiday]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        """The opening intervals of a local date: the holiday's hours if any, else the weekly ones."""
        holiday = self.holidays.get(day)
        if holiday is not None:
            return holiday.hours or ()
        return self.weekly.get(day.weekday(), ())


def parse_schedule(document: dict[str, Any]) -> Schedule:
    """The schedule a document describes, or ScheduleInvalid listing every problem."""
    errors: list[FlowError] = []

    def err(field_name: str | None, message: str) -> None:
        errors.append(FlowError(None, field_name, message))

    if not isinstance(document, dict):
        raise ScheduleInvalid([FlowError(None, None, "a schedule document is a JSON object")])
    for key in document:
        if key not in ("name", "timezone", "weekly", "holidays"):
            err(str(key), f"unknown field '{key}'")
    name = document.get("name", "")
    if not isinstance(name, str):
        err("name", "field 'name': must be a string")
        name = ""
    timezone = document.get("timezone")
    if not isinstance(timezone, str):
        err("timezone", "missing field 'timezone'" if timezone is None else "timezone must be a string")
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            err("timezone", f"unknown timezone '{timezone}'")

    weekly: dict[int, tuple[Interval, ...]] = {}
    raw_weekly = document.get("weekly", {})
    if not isinstance(raw_weekly, dict):
        err("weekly", "field 'weekly': must be an object of day → intervals")
        raw_weekly = {}
    for day, raw in raw_weekly.items():
        if day not in DAYS:
            err(f"weekly.{day}", f"unknown day '{day}' (days are {' '.join(DAYS)})")
            continue
        weekly[DAYS.index(day)] = _parse_intervals(f"weekly.{day}", raw, err)

    holidays: dict[date, Holiday] = {}
    raw_holidays = document.get("holidays", [])
    if not isinstance(raw_holidays, list):
        err("holidays", "field 'holidays': must be a list")
        raw_holidays = []
    for i, raw in enumerate(raw_holidays):
        where = f"holidays[{i}]"
        if not isinstance(raw, dict):
            err(where, f"{where}: a holiday is an object")
            continue
        for key in raw:
            if key not in ("date", "name", "hours"):
                err(f"{where}.{key}", f"{where}: unknown field '{key}'")
        try:
            day = date.fromisoformat(raw["date"]) if isinstance(raw.get("date"), str) else None
        except ValueError:
            day = None
        if day is None:
            err(f"{where}.date", f"{where}: date must be YYYY-MM-DD")
            continue
        if day in holidays:
            err(f"{where}.date", f"{where}: {day} is listed twice")
            continue
        holiday_name = raw.get("name", "")
        if not isinstance(holiday_name, str):
            err(f"{where}.name", f"{where}: name must be a string")
            holiday_name = ""
        hours = None
        if raw.get("hours") is not None:
            hours = _parse_intervals(f"{where}.hours", raw["hours"], err)
        holidays[day] = Holiday(day, holiday_name, hours)

    if errors:
        raise ScheduleInvalid(errors)
    assert isinstance(timezone, str)
    return Schedule(name=name, timezone=timezone, weekly=weekly, holidays=holidays)


def _parse_intervals(where: str, raw: Any, err: Any) -> tuple[Interval, ...]:
    if not isinstance(raw, list):
        err(where, f"{where}: must be a list of [start, end] pairs")
        return ()
    out: list[Interval] = []
    for i, pair in enumerate(raw):
        here = f"{where}[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            err(here, f'{here}: an interval is ["HH:MM", "HH:MM"]')
            continue
        start, end = (_minutes(t) for t in pair)
        if start is None or end is None:
            err(here, f"{here}: times are HH:MM from 00:00 to 24:00")
        elif start == 1440:
            err(here, f"{here}: an interval cannot start at 24:00")
        elif end <= start:
            err(here, f"{here}: end {pair[1]} is not after start {pair[0]}")
        else:
            out.append((start, end))
    return tuple(sorted(out))


def _minutes(text: str) -> int | None:
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    if text == "24:00":
        return 1440
    return int(match.group(1)) * 60 + int(match.group(2))
