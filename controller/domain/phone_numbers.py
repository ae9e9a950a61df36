"""Phone numbers as campaigns store them: E.164, with what the number tells of where it rings.

Everything goes through Google's libphonenumber (the ``phonenumbers`` package), which is pure
data and code: no I/O. ``normalize`` accepts what people type ("(415) 555-0100" with a default
region, "+44 20 7946 0000") and returns E.164 or raises :class:`InvalidNumber` with a reason a
person can act on. ``timezones_of`` lists the zones the number may ring in (one for most
geographic numbers, several for a mobile or toll-free one); ``area_key`` is what local-presence
caller ID matches on: country code and geographic area code ("1:415"), or the country code
alone when the number has no geographic area code (mobiles in most countries).
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_timezones

E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
_E164 = re.compile(E164_PATTERN)
REGION_PATTERN = r"^[A-Z]{2}$"
_REGION = re.compile(REGION_PATTERN)
MAX_RAW_LENGTH = 64
_UNKNOWN_ZONE = "Etc/Unknown"

_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        "no country code: write it as +<country code> or give a default region",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


class InvalidNumber(ValueError):
    """The text is not a phone number that can be dialed (the message says why)."""


def is_e164(value: object) -> bool:
    return isinstance(value, str) and _E164.fullmatch(value) is not None


def check_region(region: str | None) -> str | None:
    """A default region (ISO 3166 alpha-2, upper case) that libphonenumber knows, or None."""
    if region is None:
        return None
    if not _REGION.fullmatch(region) or region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidNumber(f"unknown region {region!r}: give an ISO 3166 country code such as US or GB")
    return region


def normalize(raw: str, region: str | None = None) -> str:
    """``raw`` as E.164; InvalidNumber (with the reason) if it is not a valid number."""
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty")
    if len(text) > MAX_RAW_LENGTH:
        raise InvalidNumber(f"longer than {MAX_RAW_LENGTH} characters")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(_PARSE_REASONS.get(exc.error_type, "not a phone number")) from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidNumber("not a possible number for its country (wrong length)")
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber("not a valid number (no such area or range)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parsed(e164: str) -> phonenumbers.PhoneNumber:
    if not is_e164(e164):
        raise InvalidNumber("not an E.164 number")
    return phonenumbers.parse(e164, None)


@lru_cache(maxsize=4096)
def timezones_of(e164: str) -> tuple[str, ...]:
    """The IANA zones the number may ring in, () when the number does not tell."""
    zones = number_timezones.time_zones_for_number(_parsed(e164))
    return tuple(zone for zone in zones if zone != _UNKNOWN_ZONE and is_zone(zone))


@lru_cache(maxsize=4096)
def area_key(e164: str) -> str:
    """"<country code>:<area code>" for a geographic number, "<country code>" otherwise."""
    number = _parsed(e164)
    length = phonenumbers.length_of_geographical_area_code(number)
    country = str(number.country_code)
    if length <= 0:
        return country
    return f"{country}:{phonenumbers.national_significant_number(number)[:length]}"


@lru_cache(maxsize=1024)
def is_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
