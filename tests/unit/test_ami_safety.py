"""What may go onto the AMI wire: check_action refuses CR, LF and NUL anywhere, and passes
everything else through unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.asterisk.ami import check_action
from controller.domain.errors import UnsafeValue

BREAKERS = ["\r", "\n", "\r\n", "\0"]

header_names = st.from_regex(r"[A-Za-z0-9_-]+", fullmatch=True)
safe_values = st.text().filter(lambda v: not any(c in v for c in "\r\n\0"))
breakers = st.sampled_from(BREAKERS)


@given(st.dictionaries(header_names, safe_values, max_size=8))
def test_safe_actions_pass_through_unchanged(action: dict[str, str]) -> None:
    checked = check_action(action)
    assert checked == action
    assert list(checked) == list(action)


@given(header_names, st.text(), breakers, st.text())
def test_any_value_with_cr_lf_or_nul_is_refused(key: str, before: str, bad: str,
                                                after: str) -> None:
    with pytest.raises(UnsafeValue):
        check_action({"Action": "Ping", key: before + bad + after})


@given(st.text(), breakers, st.text())
def test_any_header_name_with_cr_lf_or_nul_is_refused(before: str, bad: str, after: str) -> None:
    with pytest.raises(UnsafeValue):
        check_action({"Action": "Ping", before + bad + after: "x"})


@pytest.mark.parametrize("key", ["", "Channel: x", "Action ID", "Variable:"])
def test_header_names_that_would_move_the_split_are_refused(key: str) -> None:
    with pytest.raises(UnsafeValue):
        check_action({key: "x"})


@pytest.mark.parametrize("value", [1, None, ["a", "b"], b"bytes"])
def test_non_string_values_are_refused(value: object) -> None:
    # A list would become several headers in panoramisk; anything else is a caller's bug.
    with pytest.raises(UnsafeValue):
        check_action({"Variable": value})  # type: ignore[dict-item]


def test_a_lone_surrogate_is_refused_rather_than_failing_on_the_wire() -> None:
    with pytest.raises(UnsafeValue):
        check_action({"CallerID": "caller \ud800"})


def test_the_error_names_the_header_but_never_repeats_the_value() -> None:
    with pytest.raises(UnsafeValue) as caught:
        check_action({"Action": "Login", "Secret": "hunter2\r\nAction: Originate"})
    assert "Secret" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "Originate" not in str(caught.value)


def test_an_injected_action_is_refused_whole() -> None:
    with pytest.raises(UnsafeValue):
        check_action({
            "Action": "QueueAdd", "Queue": "sample",
            "Interface": "Local/1@x\r\n\r\nAction: Originate\r\nChannel: PJSIP/evil",
        })
