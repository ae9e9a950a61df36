"""Number routes: which flow a dialed number runs (docs/flows.md, "Routes").

A pattern is either an exact number (``"+33123456789"``, ``"100"``) or, starting with ``_``, an
Asterisk-style pattern: ``X`` any digit, ``Z`` 1-9, ``N`` 2-9, ``[1-5]`` / ``[135-7]`` a set of
digits, a literal digit or ``+ * #``, and, last only, ``.`` (one or more of anything) or ``!``
(zero or more). Letters X, Z and N may be written in either case, as in Asterisk.

The most specific match wins: an exact number before any pattern; then the pattern with the
most elements (a set counts as one; a trailing ``.``/``!`` does not count); then the higher
``priority``; then the pattern with more literal characters; then the name, so the choice is
always the same whatever order the routes were loaded in.

Pure: no I/O. ``parse_pattern`` raises ``InvalidPattern`` with a message for the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from uuid import UUID

from controller.domain.errors import ControllerError

PATTERN_MAX_LENGTH = 80
_EXACT = re.compile(r"\+?[0-9*#]{1,40}")
_LITERALS = frozenset("0123456789+*#")
_CLASSES = {"X": frozenset("0123456789"), "Z": frozenset("123456789"), "N": frozenset("23456789")}


class InvalidPattern(ControllerError, ValueError):
    """The route pattern is not an exact number nor a valid `_` pattern."""

    code = "invalid-pattern"
    status = 422


class Tail(StrEnum):
    NONE = ""
    ONE_OR_MORE = "."
    ZERO_OR_MORE = "!"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed pattern. ``elements`` holds one set of accepted characters per position; an exact
    number is all single-character sets with ``exact`` set."""

    text: str
    exact: bool
    elements: tuple[frozenset[str], ...]
    tail: Tail
    literals: int

    def matches(self, dialed: str) -> bool:
        if self.exact:
            return dialed == self.text
        n = len(self.elements)
        if len(dialed) < n:
            return False
        if not all(char in allowed for char, allowed in zip(dialed, self.elements, strict=False)):
            return False
        rest = len(dialed) - n
        if self.tail is Tail.NONE:
            return rest == 0
        if self.tail is Tail.ONE_OR_MORE:
            return rest >= 1
        return True


def parse_pattern(text: str) -> Pattern:
    if not isinstance(text, str) or not text or len(text) > PATTERN_MAX_LENGTH:
        raise InvalidPattern(f"a pattern is 1 to {PATTERN_MAX_LENGTH} characters")
    if not text.startswith("_"):
        if not _EXACT.fullmatch(text):
            raise InvalidPattern(
                "an exact number is 1 to 40 digits, * or #, optionally after a leading +; "
                "a pattern starts with _")
        return Pattern(text, True, tuple(frozenset(c) for c in text), Tail.NONE, len(text))
    elements: list[frozenset[str]] = []
    literals = 0
    tail = Tail.NONE
    i = 1
    while i < len(text):
        char = text[i]
        if tail is not Tail.NONE:
            raise InvalidPattern(f"{tail.value!r} may only end a pattern")
        if char in (".", "!"):
            tail = Tail(char)
            i += 1
            continue
        if char.upper() in _CLASSES:
            elements.append(_CLASSES[char.upper()])
        elif char in _LITERALS:
            elements.append(frozenset(char))
            literals += 1
        elif char == "[":
            end = text.find("]", i)
            if end < 0:
                raise InvalidPattern(f"unclosed [ at position {i}")
            elements.append(_parse_set(text[i + 1:end], i))
            i = end
        else:
            raise InvalidPattern(f"unexpected character {char!r} at position {i}; a pattern uses "
                                 "digits, + * #, X Z N, [sets], and a final . or !")
        i += 1
    if not elements and tail is Tail.NONE:
        raise InvalidPattern("an empty pattern matches nothing")
    return Pattern(text, False, tuple(elements), tail, literals)


def _parse_set(body: str, position: int) -> frozenset[str]:
    chars: set[str] = set()
    i = 0
    if not body:
        raise InvalidPattern(f"empty set at position {position}")
    while i < len(body):
        char = body[i]
        if not char.isascii() or not char.isdigit():
            raise InvalidPattern(f"a set holds digits and ranges such as [1-5]; got {char!r} "
                                 f"at position {position + 1 + i}")
        if i + 2 < len(body) and body[i + 1] == "-":
            high = body[i + 2]
            if not high.isascii() or not high.isdigit() or high < char:
                raise InvalidPattern(f"bad range {body[i:i + 3]!r} at position {position + 1 + i}")
            chars.update(str(d) for d in range(int(char), int(high) + 1))
            i += 3
        else:
            chars.add(char)
            i += 1
    return frozenset(chars)


_parsed = lru_cache(maxsize=4096)(parse_pattern)

OverflowSpec = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NumberRoute:
    """A route as stored: ``overflow`` is ``{"action": "busy"}``, ``{"action": "announce",
    "prompt": [...]}`` or ``{"action": "flow", "flow": name}``, or None (busy)."""

    id: UUID
    name: str
    pattern: str
    flow_name: str
    max_concurrent: int | None
    overflow: OverflowSpec | None
    priority: int
    enabled: bool
    created_at: Any = field(default=None, compare=False)
    updated_at: Any = field(default=None, compare=False)


def specificity(route: NumberRoute, pattern: Pattern) -> tuple[int, int, int, int]:
    """A sort key: greater is more specific."""
    return (1 if pattern.exact else 0, len(pattern.elements), route.priority, pattern.literals)


def match(routes: list[NumberRoute], dialed: str) -> NumberRoute | None:
    """The most specific enabled route whose pattern matches ``dialed``, or None."""
    best: tuple[tuple[int, int, int, int], str, NumberRoute] | None = None
    for route in routes:
        if not route.enabled:
            continue
        try:
            pattern = _parsed(route.pattern)
        except InvalidPattern:
            continue  # stored routes were validated; a bad row must not stop routing
        if not pattern.matches(dialed):
            continue
        key = specificity(route, pattern)
        # Greater key wins; on a tie, the smaller name.
        if best is None or key > best[0] or (key == best[0] and route.name < best[1]):
            best = (key, route.name, route)
    return best[2] if best else None
