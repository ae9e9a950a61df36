"""The FreeSWITCH Event Socket (ESL) wire format: bytes ↔ messages, and safe command bytes.

Sans-IO: nothing here opens a socket or reads a clock. :class:`Parser` takes bytes as they
arrive (split anywhere: FreeSWITCH packs a reply and dozens of events into one segment) and
returns whole :class:`Message` objects; :func:`parse_event` reads the event a message
carries; the builders at the end make the bytes of one command.

What the wire looks like (measured on FreeSWITCH 1.10.12, see
``shared/freeswitch/transcripts/README.md``): a message is a block of ``Name: value`` lines
ended by an empty line (bare LF), then exactly ``Content-Length`` bytes of body when that
header is present. ``Content-Type`` is not always the first header (events start with
``Content-Length``). Plain events carry a second header block as body, values
percent-encoded, ending with an empty line, then the inner body if they have an inner
``Content-Length``. JSON events are one object whose values are strings, the inner body under
``_body``. Header names repeat (``Hangup-Cause`` twice, two base-header sets in
PRIVATE_COMMAND): :class:`Event` keeps every header in order and answers lookups last-wins.

Commands are one line, optional ``Name: value`` header lines, then an empty line. A CR or LF
inside any part would end the command early and let the rest run as another command or add
a header, so every builder refuses them, and the builders of api arguments refuse what would
split or re-shape an argument (see :func:`originate`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote
from xml.etree import ElementTree

from controller.domain.errors import UnsafeValue


class ProtocolError(Exception):
    """The peer sent bytes that are not an ESL message (or one beyond our limits)."""


# Limits keep a broken or hostile peer from making us buffer without end. The largest frame
# in the recordings is an ``show channels as json`` of six calls (~5 KB); a busy switch's
# channel list can reach megabytes, hence the generous body limit.
MAX_HEADER_BLOCK = 256 * 1024
MAX_BODY = 64 * 1024 * 1024

AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
EVENT_XML = "text/event-xml"
DISCONNECT_NOTICE = "text/disconnect-notice"
EVENT_TYPES = (EVENT_PLAIN, EVENT_JSON, EVENT_XML)


# ---- messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One ESL message: its outer headers in wire order (values as sent) and its body bytes."""

    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value of header ``name`` (names are case-sensitive on this wire)."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return default

    @property
    def content_type(self) -> str:
        return self.get("Content-Type") or ""

    @property
    def reply_text(self) -> str:
        """``Reply-Text`` of a command/reply (percent-decoded: outbound ``connect`` encodes it)."""
        text = self.get("Reply-Text") or ""
        return unquote(text) if text.startswith("%") else text

    @property
    def ok(self) -> bool:
        """A command/reply or api/response that reports success (``+OK…``)."""
        if self.content_type == API_RESPONSE:
            return self.body.startswith(b"+OK")
        return self.reply_text.startswith("+OK")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def to_bytes(self) -> bytes:
        """The message as FreeSWITCH frames it; ``Content-Length`` is taken as it came."""
        head = "".join(f"{key}: {value}\n" for key, value in self.headers) + "\n"
        return head.encode("utf-8") + self.body


class Parser:
    """Incremental ESL framer: ``feed`` bytes, get the messages they complete, in order."""

    def __init__(self, *, max_header_block: int = MAX_HEADER_BLOCK, max_body: int = MAX_BODY) -> None:
        self._buffer = bytearray()
        self._pending: tuple[tuple[str, str], ...] | None = None  # headers awaiting their body
        self._body_length = 0
        self._max_header_block = max_header_block
        self._max_body = max_body

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            message = self._next()
            if message is None:
                return messages
            messages.append(message)

    def _next(self) -> Message | None:
        if self._pending is None:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > self._max_header_block:
                    raise ProtocolError("header block too long (no empty line)")
                return None
            if end > self._max_header_block:
                raise ProtocolError("header block too long")
            block = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            headers = parse_header_block(block)
            length = _content_length(headers)
            if length is None:
                return Message(headers)
            if length > self._max_body:
                raise ProtocolError(f"Content-Length {length} is over the limit")
            self._pending, self._body_length = headers, length
        if len(self._buffer) < self._body_length:
            return None
        body = bytes(self._buffer[: self._body_length])
        del self._buffer[: self._body_length]
        headers, self._pending = self._pending, None
        return Message(headers, body)


def parse_header_block(block: bytes) -> tuple[tuple[str, str], ...]:
    """``Name: value`` lines (without the final empty line) as pairs, values untouched."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("header block is not UTF-8") from exc
    headers: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            # "Name:" with an empty value is legal; anything else is not a header.
            if line.endswith(":"):
                name, value = line[:-1], ""
            else:
                raise ProtocolError(f"not a header line: {line[:80]!r}")
        headers.append((name, value))
    return tuple(headers)


def _content_length(headers: Sequence[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name == "Content-Length":
            if not value.isdigit():
                raise ProtocolError(f"bad Content-Length {value[:20]!r}")
            return int(value)
    return None


# ---- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """An event's headers in order (values decoded) and its inner body, if any."""

    headers: tuple[tuple[str, str], ...]
    body: str | None = None
    _index: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update(self.headers)  # dict.update keeps the last value: last-wins

    def get(self, name: str, default: str = "") -> str:
        return self._index.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def name(self) -> str:
        """``Event-Name`` (last-wins: PRIVATE_COMMAND carries a COMMAND header set first)."""
        return self.get("Event-Name")

    @property
    def subclass(self) -> str:
        return self.get("Event-Subclass")

    @property
    def full_name(self) -> str:
        """``CUSTOM <subclass>`` for custom events, else the event name."""
        return f"{self.name} {self.subclass}" if self.name == "CUSTOM" and self.subclass else self.name

    @property
    def unique_id(self) -> str:
        return self.get("Unique-ID")

    @property
    def job_uuid(self) -> str:
        return self.get("Job-UUID")


def parse_event(message: Message) -> Event:
    """The event a ``text/event-plain|json|xml`` message carries."""
    kind = message.content_type
    if kind == EVENT_PLAIN:
        return parse_plain_event(message.body)
    if kind == EVENT_JSON:
        return parse_json_event(message.body)
    if kind == EVENT_XML:
        return parse_xml_event(message.body)
    raise ProtocolError(f"not an event: Content-Type {kind!r}")


def parse_plain_event(body: bytes) -> Event:
    end = body.find(b"\n\n")
    block, rest = (body, b"") if end < 0 else (body[:end], body[end + 2:])
    raw = parse_header_block(block)
    headers = tuple((name, unquote(value)) for name, value in raw)
    inner = _content_length(tuple(reversed(raw)))  # a sendevent carries it twice: the last counts
    if inner is None:
        return Event(headers)
    if len(rest) < inner:
        raise ProtocolError("event body shorter than its Content-Length")
    return Event(headers, rest[:inner].decode("utf-8", "replace"))


def parse_json_event(body: bytes) -> Event:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ProtocolError("text/event-json body is not JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("text/event-json body is not an object")
    inner = data.pop("_body", None)
    headers = tuple((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items())
    return Event(headers, None if inner is None else str(inner))


def parse_xml_event(body: bytes) -> Event:
    # FreeSWITCH is the peer we trust for events; ElementTree has no external entities.
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ProtocolError("text/event-xml body is not XML") from exc
    node = root.find("headers")
    headers = tuple((child.tag, unquote(child.text or "")) for child in (node if node is not None else []))
    inner = root.find("body")
    return Event(headers, None if inner is None else (inner.text or ""))


# ---- command bytes -------------------------------------------------------------------------

# CR/LF end a line (a new command or header); NUL ends a C string early in FreeSWITCH.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")  # event names, api names, causes
_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_DTMF = re.compile(r"^[0-9A-Da-d*#wW]{1,64}$")


def _no_control(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise UnsafeValue(f"{what} contains a control character (CR/LF would end the command)")
    return value


def safe_uuid(value: str, what: str = "uuid") -> str:
    """A channel or job id: one plain token (no space, which would start another argument)."""
    if not _UUID.fullmatch(value):
        raise UnsafeValue(f"{what} {value[:60]!r} is not a plain identifier")
    return value


def safe_word(value: str, what: str = "name") -> str:
    if not _WORD.fullmatch(value):
        raise UnsafeValue(f"{what} {value[:60]!r} is not a plain word")
    return value


def safe_arg(value: str, what: str = "argument") -> str:
    """One api argument: non-empty, no whitespace (FreeSWITCH splits api arguments on spaces)."""
    _no_control(value, what)
    if not value or any(ch.isspace() for ch in value):
        raise UnsafeValue(f"{what} {value[:60]!r} is empty or contains a space")
    return value


Headers = Iterable[tuple[str, str]] | Mapping[str, str]


def command(line: str, headers: Headers = (), body: bytes = b"") -> bytes:
    """One command: its line, header lines, the empty line, then ``body`` (with Content-Length)."""
    _no_control(line, "command")
    if not line.strip():
        raise UnsafeValue("empty command")
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    out = [line, "\n"]
    for name, value in pairs:
        if not _HEADER_NAME.fullmatch(name) or name.lower() == "content-length":
            raise UnsafeValue(f"header name {name[:60]!r} is not allowed")
        out += [name, ": ", _no_control(value, f"header {name}"), "\n"]
    if body:
        out += ["Content-Length: ", str(len(body)), "\n"]
    out.append("\n")
    return "".join(out).encode("utf-8") + body


def auth(password: str) -> bytes:
    return command("auth " + safe_arg(password, "password"))


def api(cmd: str, *args: str) -> bytes:
    """``api <cmd> <args…>``: each argument must be one space-free token (see :func:`safe_arg`)."""
    return command(" ".join(["api", safe_word(cmd, "api command"), *(safe_arg(a) for a in args)]))


def api_line(cmd: str, *args: str) -> str:
    """The text after ``api``/``bgapi``, checked as :func:`api` checks it."""
    return " ".join([safe_word(cmd, "api command"), *(safe_arg(a) for a in args)])


def api_raw(line: str) -> bytes:
    """``api <line>`` for a line the caller built from checked parts (one line, no CR/LF)."""
    return command("api " + _no_control(line, "api line"))


def bgapi_raw(line: str, job_uuid: str = "") -> bytes:
    """``bgapi <line>`` with our ``Job-UUID`` header ('' lets FreeSWITCH choose one)."""
    headers = [("Job-UUID", safe_uuid(job_uuid, "Job-UUID"))] if job_uuid else []
    return command("bgapi " + _no_control(line, "bgapi line"), headers)


def event_subscription(fmt: str, names: Sequence[str]) -> bytes:
    """``event plain|json|xml <names…>``; ``CUSTOM`` subclasses follow CUSTOM as words."""
    if fmt not in ("plain", "json", "xml"):
        raise UnsafeValue(f"event format {fmt!r} is not plain, json or xml")
    if not names:
        raise UnsafeValue("no event names")
    return command(" ".join(["event", fmt, *(safe_word(n, "event name") for n in names)]))


def filter_command(header: str, value: str, *, delete: bool = False) -> bytes:
    if not _HEADER_NAME.fullmatch(header):
        raise UnsafeValue(f"header name {header[:60]!r} is not allowed")
    words = ["filter", *(["delete"] if delete else []), header, safe_arg(value, "filter value")]
    return command(" ".join(words))


def sendmsg(uuid: str, headers: Headers, body: bytes = b"") -> bytes:
    return command("sendmsg " + safe_uuid(uuid), headers, body)


def execute(uuid: str, app: str, arg: str = "", *, event_uuid: str = "", lock: bool = False) -> bytes:
    """``sendmsg`` that runs a dialplan application on a channel (its argument is a header
    value, so spaces are fine; CR/LF are not)."""
    headers = [("call-command", "execute"), ("execute-app-name", safe_word(app, "application"))]
    if arg:
        headers.append(("execute-app-arg", _no_control(arg, "application argument")))
    if lock:
        headers.append(("event-lock", "true"))
    if event_uuid:
        headers.append(("Event-UUID", safe_uuid(event_uuid, "Event-UUID")))
    return sendmsg(uuid, headers)


def hangup_message(uuid: str, cause: str = "NORMAL_CLEARING") -> bytes:
    return sendmsg(uuid, [("call-command", "hangup"), ("hangup-cause", safe_word(cause, "hangup cause"))])


# Inside ``{a=b,c=d}`` FreeSWITCH splits on ',' and honours single quotes, so a value with
# spaces or commas is sent as 'x y'. A quote cannot be escaped inside quotes, and braces,
# brackets and angle brackets open other variable scopes or end this one; '^' at the start
# of a value can redefine the separator. Those are refused rather than guessed at.
_VAR_FORBIDDEN = set("'\"{}[]<>\\`")


def channel_variable(name: str, value: str) -> str:
    """``name=value`` for an originate ``{…}`` block, quoted when it must be."""
    if not _VAR_NAME.fullmatch(name):
        raise UnsafeValue(f"variable name {name[:60]!r} is not a plain name")
    _no_control(value, f"variable {name}")
    bad = sorted(_VAR_FORBIDDEN.intersection(value))
    if bad:
        raise UnsafeValue(f"variable {name} contains {''.join(bad)!r}, which cannot be sent safely")
    if value.startswith("^"):
        raise UnsafeValue(f"variable {name} starts with '^' (a separator change)")
    if value == "" or any(ch.isspace() for ch in value) or "," in value or "|" in value:
        return f"{name}='{value}'"
    return f"{name}={value}"


def originate_line(
    endpoint: str,
    *,
    variables: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    app: str = "park",
    app_arg: str = "",
) -> str:
    """``originate {vars}endpoint &app(arg)`` (without api/bgapi).

    ``endpoint`` is a dial string such as ``sofia/gateway/gw/15551230001`` or
    ``user/1000``; it may not contain spaces, braces, or the ',' and '|' that dial several
    destinations at once.
    """
    safe_arg(endpoint, "endpoint")
    if set(endpoint) & set("{}[]<>,|'\"\\^`&"):
        raise UnsafeValue(f"endpoint {endpoint[:60]!r} contains a character that changes the dial string")
    pairs = list(variables.items()) if isinstance(variables, Mapping) else list(variables)
    block = "{" + ",".join(channel_variable(k, v) for k, v in pairs) + "}" if pairs else ""
    safe_word(app, "application")
    if app_arg:
        _no_control(app_arg, "application argument")
        if set(app_arg) & set("() '\"{}") or any(ch.isspace() for ch in app_arg):
            raise UnsafeValue("application argument contains a space, quote, brace or parenthesis")
        target = f"&{app}({app_arg})"
    else:
        target = f"&{app}"
    return f"originate {block}{endpoint} {target}"
