"""Number route patterns and the most-specific-match rule (docs/flows.md, "Routes")."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.domain.number_routes import InvalidPattern, NumberRoute, match, parse_pattern


def route(name: str, pattern: str, priority: int = 0, enabled: bool = True) -> NumberRoute:
    return NumberRoute(uuid4(), name, pattern, f"flow-{name}", None, None, priority, enabled)


@pytest.mark.parametrize(("pattern", "dialed", "matches"), [
    ("100", "100", True),
    ("100", "1000", False),
    ("+33123456789", "+33123456789", True),
    ("_X", "5", True),
    ("_X", "55", False),
    ("_XX", "5", False),
    ("_Z", "0", False),
    ("_Z", "1", True),
    ("_N", "1", False),
    ("_N", "2", True),
    ("_nxx", "200", True),  # X, Z, N in either case, as in Asterisk
    ("_[1-5]", "3", True),
    ("_[1-5]", "6", False),
    ("_[135-7]", "6", True),
    ("_[135-7]", "4", False),
    ("_1.", "1", False),  # . is one or more
    ("_1.", "12", True),
    ("_1.", "1abc", True),  # . matches anything
    ("_1!", "1", True),  # ! is zero or more
    ("_1!", "123", True),
    ("_+33X.", "+33123", True),
    ("_+33X.", "33123", False),
    ("_*X#", "*5#", True),
    ("_X.", "", False),
    ("_!", "", True),
])
def test_matching(pattern: str, dialed: str, matches: bool) -> None:
    assert parse_pattern(pattern).matches(dialed) is matches


@pytest.mark.parametrize("pattern", [
    "", "_", "abc", "1 2", "+", "++1", "_1.2", "_!X", "_[", "_[]", "_[a-b]", "_[5-1]", "_Q",
    "_1\n", "100\n", "_" + "X" * 80, "1" * 41,
])
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(InvalidPattern):
        parse_pattern(pattern)


def test_exact_beats_any_pattern() -> None:
    routes = [route("long", "_1000000X.", priority=100), route("exact", "100"),
              route("short", "_1XX", priority=1000)]
    assert match(routes, "100").name == "exact"


def test_longest_pattern_beats_priority() -> None:
    routes = [route("any", "_X.", priority=1000), route("paris", "_+331XXXXXXXX"),
              route("france", "_+33X.", priority=50)]
    assert match(routes, "+33123456789").name == "paris"
    assert match(routes, "+33612345678").name == "france"
    assert match(routes, "0612").name == "any"


def test_priority_breaks_ties_of_length() -> None:
    routes = [route("low", "_1XX", priority=1), route("high", "_[1-2]XX", priority=5)]
    assert match(routes, "123").name == "high"


def test_then_more_literals_then_name() -> None:
    assert match([route("a", "_1XX"), route("b", "_12X")], "123").name == "b"
    assert match([route("b", "_1X2"), route("a", "_12X")], "122").name == "a"
    assert match([route("a", "_12X"), route("b", "_1X2")], "122").name == "a"


def test_disabled_routes_and_no_match() -> None:
    assert match([route("off", "100", enabled=False)], "100") is None
    assert match([route("other", "200")], "100") is None
    assert match([], "100") is None


def test_a_bad_stored_pattern_is_skipped() -> None:
    assert match([route("bad", "_[", priority=9), route("good", "_X.")], "12").name == "good"


@given(st.lists(st.sampled_from(["100", "_1XX", "_X.", "_1!", "_[1-3]0X", "_10.", "_N!"]),
                unique=True),
       st.text(alphabet="0123456789", min_size=1, max_size=4), st.randoms())
def test_the_choice_does_not_depend_on_order(patterns: list[str], dialed: str, rnd) -> None:
    routes = [route(f"r{i}", p) for i, p in enumerate(patterns)]
    chosen = match(routes, dialed)
    shuffled = list(routes)
    rnd.shuffle(shuffled)
    assert match(shuffled, dialed) == chosen
    if chosen is not None:
        assert parse_pattern(chosen.pattern).matches(dialed)
