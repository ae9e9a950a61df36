"""What campaigns take in and give out, pure: phone numbers, CSV reading and formula-safe
export, and the campaign settings' validation."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from controller.domain.campaigns import CampaignMode, Outcome
from controller.domain.phone_numbers import InvalidNumber, area_key, check_region, normalize, timezones_of
from controller.services.campaigns import CampaignSpec, InvalidCampaign, plan_of, validated
from controller.services.csv_files import (
    CsvError,
    CsvRow,
    InvalidCsv,
    decode,
    read_header,
    rows,
    safe_cell,
    write_rows,
)

# ---- phone numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("raw, region, e164", [
    ("+1 (415) 555-0100", None, "+14155550100"),
    ("(415) 555-0100", "US", "+14155550100"),
    ("415.555.0100", "US", "+14155550100"),
    ("020 7946 0000", "GB", "+442079460000"),
    ("+33 6 12 34 56 78", "US", "+33612345678"),  # a + number ignores the default region
    (" +14155550100 ", None, "+14155550100"),
])
def test_numbers_are_normalized_to_e164(raw: str, region: str | None, e164: str) -> None:
    assert normalize(raw, region) == e164


@pytest.mark.parametrize("raw, region, reason", [
    ("", "US", "empty"),
    ("   ", "US", "empty"),
    ("hello", "US", "not a phone number"),
    ("415 555 0100", None, "no country code"),
    ("+1 415 555", None, "wrong length"),
    ("+1 099 555 0100", None, "not a valid number"),
    ("1" * 70, "US", "longer than"),
])
def test_bad_numbers_say_why(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(InvalidNumber, match=reason):
        normalize(raw, region)


def test_regions_are_checked() -> None:
    assert check_region("US") == "US" and check_region(None) is None
    for bad in ("us", "XX", "USA", ""):
        with pytest.raises(InvalidNumber):
            check_region(bad)


def test_zones_and_area_keys_come_from_the_number() -> None:
    assert timezones_of("+14155550100") == ("America/Los_Angeles",)
    assert timezones_of("+12125550123") == ("America/New_York",)
    assert set(timezones_of("+19075550100")) == {"America/Adak", "America/Anchorage"}
    assert area_key("+14155550100") == "1:415"
    assert area_key("+442079460000") == "44:20"
    assert area_key("+33612345678") == "33"  # a French mobile: no geographic area


# ---- CSV ------------------------------------------------------------------------------


def test_rows_carry_the_line_they_start_on() -> None:
    text = 'phone,note\n+14155550100,a\n\n+14155550101,"two\nlines"\n+14155550102,c\n'
    got = list(rows(text, ",", skip_header=True))
    assert got == [CsvRow(2, ["+14155550100", "a"]), CsvRow(4, ["+14155550101", "two\nlines"]),
                   CsvRow(6, ["+14155550102", "c"])]


def test_an_unreadable_record_ends_the_file_with_its_line() -> None:
    # A field past the csv module's limit (128 KiB) cannot be read.
    text = "phone,note\n+14155550100,a\n+14155550101," + "x" * 200_000 + "\n+14155550102,c\n"
    got = list(rows(text, ",", skip_header=True))
    assert got[0] == CsvRow(2, ["+14155550100", "a"])
    assert isinstance(got[1], CsvError) and got[1].line == 3 and "field larger" in got[1].reason
    assert len(got) == 2


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), (b"  \n", "empty"), (b"phone\x00\n", "NUL"), (b"\xff\xfephone", "not UTF-8")])
def test_undecodable_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidCsv, match=message):
        decode(data)


def test_a_bom_is_ignored() -> None:
    assert read_header(decode("\ufeffphone,name\n".encode()), ",") == ["phone", "name"]


@pytest.mark.parametrize("header, message", [
    (",,\n", "no header"), ("phone,,name\n", "column 2 has no name"), ("a,b,a\n", "appears twice"),
    (",".join(f"c{i}" for i in range(101)) + "\n", "at most 100")])
def test_bad_headers_are_refused(header: str, message: str) -> None:
    with pytest.raises(InvalidCsv, match=message):
        read_header(header, ",")


@pytest.mark.parametrize("value, cell", [
    ("=1+2", "'=1+2"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+14155550100", "+14155550100"), ("-3.5", "-3.5"), ("plain", "plain"), ("", ""), (None, ""), (42, "42")])
def test_export_cells_never_run_as_formulas(value: Any, cell: str) -> None:
    assert safe_cell(value) == cell


def test_written_csv_reads_back_with_guarded_cells() -> None:
    text = write_rows(["number", "=name"],
                      [["+14155550100", "=cmd()"], ["+14155550101", 'a "quoted", value']])
    assert list(csv.reader(io.StringIO(text))) == [
        ["number", "'=name"], ["+14155550100", "'=cmd()"], ["+14155550101", 'a "quoted", value']]


# ---- campaign settings ------------------------------------------------------------------


def spec(**config: Any) -> CampaignSpec:
    return CampaignSpec(name="Renewals", mode="progressive", queue="sales", config=config)


def test_defaults_are_filled_in_and_load_as_a_plan() -> None:
    record = validated("renewals", spec())
    plan = plan_of(record)
    assert plan.mode is CampaignMode.PROGRESSIVE and plan.default_timezone == "UTC"
    assert plan.retry_policy.max_attempts == 5 and Outcome.BUSY in plan.retry_policy.rules
    assert plan.abandon_target_pct == 3.0 and plan.windows and plan.caller_id.fixed is None
    assert record.config["amd"]["enabled"] is False and record.config["amd"]["initial_silence_ms"] == 2500


def test_a_pool_gets_area_keys() -> None:
    plan = plan_of(validated("c", spec(caller_id={"pool": ["+14155550100", "+442079460000"]})))
    assert [p.area_key for p in plan.caller_id.pool] == ["1:415", "44:20"]


BAD: dict[str, tuple[Any, str]] = {
    "unknown setting": ({"colour": "red"}, "colour"),
    "unknown zone": ({"timezone": "Mars/Olympus"}, "timezone"),
    "window end before start": ({"calling_windows": [{"days": ["mon"], "start": "18:00", "end": "09:00"}]},
                                "calling_windows[0]"),
    "window bad time": ({"calling_windows": [{"days": ["mon"], "start": "9:00", "end": "18:00"}]},
                        "calling_windows[0].start"),
    "window bad day": ({"calling_windows": [{"days": ["funday"], "start": "09:00", "end": "18:00"}]},
                       "calling_windows[0].days"),
    "no windows": ({"calling_windows": []}, "calling_windows"),
    "rule for answered": ({"retry_rules": [{"outcome": "answered", "delays_s": [60]}]},
                          "retry_rules[0].outcome"),
    "two rules for busy": ({"retry_rules": [{"outcome": "busy", "delays_s": [60]},
                                            {"outcome": "busy", "delays_s": [90]}]}, "retry_rules[1]"),
    "negative delay": ({"retry_rules": [{"outcome": "busy", "delays_s": [-1]}]}, "delays_s[0]"),
    "no delays": ({"retry_rules": [{"outcome": "busy", "delays_s": []}]}, "delays_s"),
    "fixed and pool": ({"caller_id": {"fixed": "+14155550100", "pool": ["+14155550101"]}}, "caller_id"),
    "caller id not e164": ({"caller_id": {"fixed": "+1 415 555 0100"}}, "caller_id.fixed"),
    "caller id invalid": ({"caller_id": {"fixed": "+10005550100"}}, "caller_id.fixed"),
    "pool twice": ({"caller_id": {"pool": ["+14155550100", "+14155550100"]}}, "caller_id.pool[1]"),
    "message without prompt": ({"amd": {"enabled": True, "on_machine": "message"}}, "amd.message_prompt"),
    "prompt with hangup": ({"amd": {"message_prompt": "hello"}}, "amd.message_prompt"),
    "amd out of range": ({"amd": {"initial_silence_ms": 5}}, "amd.initial_silence_ms"),
    "max attempts 0": ({"max_attempts": 0}, "max_attempts"),
    "abandon over 100": ({"abandon_target_pct": 101}, "abandon_target_pct"),
    "disposition twice": ({"dispositions": ["sale", "sale"]}, "dispositions[1]"),
    "disposition with space": ({"dispositions": ["no sale"]}, "dispositions[0]"),
    "hopper ttl too short": ({"hopper_ttl_s": 1}, "hopper_ttl_s"),
    "boolean as number": ({"max_attempts": True}, "max_attempts"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_settings_name_the_field(case: str) -> None:
    config, field = BAD[case]
    with pytest.raises(InvalidCampaign) as raised:
        validated("c", spec(**config))
    assert field in raised.value.detail


@pytest.mark.parametrize("mode, ratio, ok", [
    ("power", 2.5, True), ("power", None, False), ("power", 0.5, False), ("power", 11, False),
    ("progressive", 2.0, False), ("predictive", None, True), ("preview", None, True), ("robot", None, False)])
def test_ratio_goes_with_power_mode_only(mode: str, ratio: float | None, ok: bool) -> None:
    made = CampaignSpec(name="x", mode=mode, queue="sales", ratio=ratio)
    if ok:
        assert validated("c", made).mode == mode
    else:
        with pytest.raises(InvalidCampaign):
            validated("c", made)
