"""Call control's request models: what a client may name as a destination, digits or data.

Everything here is refused with 422 by the API before any service runs, so it never reaches
the switch (tests/api/test_call_control.py checks the same through HTTP)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from controller.api.routes.calls import DestinationIn, DialIn, DispositionIn, DtmfIn
from controller.domain.destinations import Destination, DestinationKind
from controller.services.calls import transfer_endpoint


@pytest.mark.parametrize("body, expected", [
    ({"agent": "alice"}, Destination(DestinationKind.AGENT, "alice")),
    ({"queue": "support"}, Destination(DestinationKind.QUEUE, "support")),
    ({"extension": "1001"}, Destination(DestinationKind.EXTENSION, "1001")),
    ({"number": "+15550100"}, Destination(DestinationKind.NUMBER, "+15550100")),
    ({"endpoint": "Local/1@ccc-test-agent"}, Destination(DestinationKind.ENDPOINT, "Local/1@ccc-test-agent")),
])
def test_a_destination_names_one_thing(body, expected):
    assert DestinationIn(**body).to_domain() == expected


@pytest.mark.parametrize("body", [
    {}, {"agent": None}, {"agent": "alice", "number": "1"}, {"number": "1\r\n"}, {"number": "123\n"},
    {"extension": "1001\nAction: Originate"}, {"endpoint": "PJSIP/1001&PJSIP/1002"},
    {"endpoint": "PJSIP/1001,30"}, {"endpoint": "Local/1@x\r\n"}, {"endpoint": "PJSIP/a b"},
    {"agent": "Alice"}, {"queue": "../x"}, {"trunk": "x"},
])
def test_unsafe_or_ambiguous_destinations_are_refused(body):
    with pytest.raises(ValidationError):
        DestinationIn(**body)


def test_numbers_and_extensions_become_dial_strings():
    assert transfer_endpoint("number:+15550100") == "Local/+15550100@ccc-outbound"
    assert transfer_endpoint("extension:1001") == "PJSIP/1001"
    assert transfer_endpoint("Local/1@ccc-test-agent") == "Local/1@ccc-test-agent"


@pytest.mark.parametrize("digits", ["12#", "0123456789*#ABCD"])
def test_dtmf_digits(digits):
    assert DtmfIn(digits=digits).digits == digits


@pytest.mark.parametrize("digits", ["", "1\r\n", "12\n", "abc", "1 2", "1,2", "1" * 33, "a"])
def test_dtmf_digits_are_strict(digits):
    with pytest.raises(ValidationError):
        DtmfIn(digits=digits)


def test_click_to_dial_takes_one_agent_side_and_plain_data():
    request = DialIn(to={"number": "5550100"}, extension="1001", reference="crm-42",
                     data={"campaign": "spring"}).to_domain()
    assert (request.endpoint, request.agent_id, request.reference, request.data) == (
        "PJSIP/1001", None, "crm-42", {"campaign": "spring"})
    for bad in ({"agent_id": "a", "extension": "1001"}, {"reference": "x\r\ny"},
                {"data": {"Bad Key": "x"}}, {"data": {"k": "line\nbreak"}}, {"data": {"k": "\ud800"}},
                {"data": {f"k{i}": "v" for i in range(21)}}):
        with pytest.raises(ValidationError):
            DialIn(to={"number": "5550100"}, **bad)


def test_disposition_notes_may_span_lines_but_hold_no_nul():
    assert DispositionIn(code="sale", notes="line one\nline two").notes == "line one\nline two"
    for bad in ({"code": "sale", "notes": "a\x00b"}, {"code": "no sale"}, {"code": ""},
                {"code": "sale", "notes": "\udc80"}):
        with pytest.raises(ValidationError):
            DispositionIn(**bad)
