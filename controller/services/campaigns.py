"""Campaigns: their settings, validated, and their life (start, pause, stop).

A campaign is stored as a few columns (mode, ratio, queue, state) and one settings document
(``config``): caller ID, calling windows, the zone for contacts whose number says none, max
attempts and retry rules, dispositions, AMD, abandonment target, hopper size and age. Writes
are checked here beyond what the API's JSON schema says: the queue exists, the zone is one
this machine knows, window times are real, pool numbers are valid E.164, a ratio goes with
power mode only, an AMD message names an existing prompt. ``plan_of`` turns a stored record
into the domain objects the engines take (:class:`CampaignPlan`).

State changes go through ``domain.campaigns.apply_action`` under a row lock; pausing or
stopping empties the campaign's hopper (its queued contacts go back to ``ready``), so nothing
is dialed for it afterwards.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from controller.domain.campaigns import (
    DAY_NAMES,
    RETRYABLE_OUTCOMES,
    CallingWindow,
    CampaignAction,
    CampaignMode,
    CampaignState,
    IllegalTransition,
    Outcome,
    RetryPolicy,
    RetryRule,
    apply_action,
)
from controller.domain.errors import Conflict, ControllerError, NotFound
from controller.domain.phone_numbers import InvalidNumber, area_key, is_zone, normalize
from controller.engines.caller_id import CallerIdPolicy, PoolNumber
from controller.services.agents import check_id
from controller.storage import acd as acd_store
from controller.storage import campaigns as store
from controller.storage import inbound as inbound_store
from controller.storage.campaigns import CampaignRecord
from controller.storage.db import Database
from controller.storage.hopper import HopperStore

log = logging.getLogger(__name__)

TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
_TIME = re.compile(TIME_PATTERN)
DISPOSITION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_DISPOSITION = re.compile(DISPOSITION_PATTERN)
# A core sound the safe-harbor message plays (sound:<name> for the switch): no separators.
_SOUND = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}")
MAX_WINDOWS = 28
MAX_ATTEMPTS_MAX = 100
MAX_DELAYS = 10
DELAY_MAX_S = 30 * 86_400
MAX_DISPOSITIONS = 100
MAX_POOL = 1000
RATIO_MAX = 10.0
HOPPER_SIZE_MAX = 5000
HOPPER_TTL_MAX_S = 86_400
RING_TIMEOUT_MAX_S = 120
ABANDON_WINDOW_MAX_H = 24 * 31

# Defaults a new campaign gets for what its creator leaves out (the API shows them).
DEFAULT_WINDOWS: tuple[dict[str, Any], ...] = (
    {"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "start": "09:00", "end": "20:00"},)
DEFAULT_RETRY_RULES: tuple[dict[str, Any], ...] = (
    {"outcome": "busy", "delays_s": [300, 900], "max_retries": None},
    {"outcome": "no_answer", "delays_s": [3600, 14_400], "max_retries": None},
    {"outcome": "machine", "delays_s": [14_400], "max_retries": 2},
    {"outcome": "failed", "delays_s": [900, 3600], "max_retries": 3},
    {"outcome": "abandoned", "delays_s": [3600], "max_retries": 1},
    {"outcome": "callback", "delays_s": [3600], "max_retries": None},
)
# Asterisk AMD() parameters, in its order, with its defaults (milliseconds unless said).
AMD_PARAMETERS: tuple[tuple[str, int, int, int], ...] = (
    ("initial_silence_ms", 2500, 100, 30_000),
    ("greeting_ms", 1500, 100, 30_000),
    ("after_greeting_silence_ms", 800, 100, 30_000),
    ("total_analysis_time_ms", 5000, 500, 60_000),
    ("min_word_length_ms", 100, 10, 5000),
    ("between_words_silence_ms", 50, 10, 5000),
    ("maximum_number_of_words", 2, 1, 100),  # a count
    ("silence_threshold", 256, 1, 32_767),  # an energy level
    ("maximum_word_length_ms", 5000, 100, 30_000),
)


class InvalidCampaign(ControllerError, ValueError):
    """The campaign is not valid."""

    code = "invalid-campaign"
    status = 422


class CampaignStateConflict(Conflict):
    """The campaign's state does not allow this."""

    code = "campaign-state"


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """What a client says about a campaign (``config``: see the module docstring)."""

    name: str
    mode: str
    queue: str
    ratio: float | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """A stored campaign as the engines take it."""

    id: str
    state: CampaignState
    mode: CampaignMode
    ratio: float | None
    queue: str
    windows: tuple[CallingWindow, ...]
    retry_policy: RetryPolicy
    caller_id: CallerIdPolicy
    default_timezone: str
    dispositions: frozenset[str]
    amd: dict[str, Any]
    ring_timeout_s: int
    hopper_size: int
    hopper_ttl_s: int
    abandon_target_pct: float
    abandon_window_h: int
    abandon_message: str | None = None  # a core sound; None: the dialer's default


def plan_of(record: CampaignRecord) -> CampaignPlan:
    config = record.config
    caller = config.get("caller_id") or {}
    return CampaignPlan(
        id=record.id, state=CampaignState(record.state), mode=CampaignMode(record.mode), ratio=record.ratio,
        queue=record.queue, windows=tuple(_window(w, i) for i, w in enumerate(config["calling_windows"])),
        retry_policy=RetryPolicy(config["max_attempts"], {Outcome(r["outcome"]): _rule(r, i)
                                                          for i, r in enumerate(config["retry_rules"])}),
        caller_id=CallerIdPolicy(fixed=caller.get("fixed"),
                                 pool=tuple(PoolNumber(n, area_key(n)) for n in caller.get("pool") or ()),
                                 local_presence=bool(caller.get("local_presence", True))),
        default_timezone=config["timezone"], dispositions=frozenset(config["dispositions"]),
        amd=dict(config["amd"]), ring_timeout_s=config["ring_timeout_s"], hopper_size=config["hopper_size"],
        hopper_ttl_s=config["hopper_ttl_s"], abandon_target_pct=config["abandon_target_pct"],
        abandon_window_h=config["abandon_window_h"], abandon_message=config.get("abandon_message"),
    )


OnStarted = Callable[[str], Awaitable[object]]


class CampaignService:
    def __init__(self, db: Database, hopper: HopperStore, on_started: OnStarted | None = None) -> None:
        self._db = db
        self._hopper = hopper
        self.on_started = on_started

    async def list(self) -> list[CampaignRecord]:
        async with self._db.connection() as conn:
            return await store.list_campaigns(conn)

    async def get(self, campaign_id: str) -> CampaignRecord:
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            found = await store.get_campaign(conn, campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id}")
        return found

    async def plan(self, campaign_id: str) -> CampaignPlan:
        return plan_of(await self.get(campaign_id))

    async def contact_counts(self, campaign_id: str) -> dict[str, int]:
        async with self._db.connection() as conn:
            return await store.contact_counts(conn, campaign_id)

    async def create(self, campaign_id: str, spec: CampaignSpec) -> CampaignRecord:
        record = validated(campaign_id, spec)
        async with self._db.connection() as conn:
            await _check_references(conn, record)
            created = await store.insert_campaign(conn, record)
        if created is None:
            raise Conflict(f"campaign {campaign_id} exists; PUT /v1/campaigns/{campaign_id} replaces it")
        log.info("campaign created", extra={"campaign": campaign_id, "mode": record.mode})
        return created

    async def update(self, campaign_id: str, spec: CampaignSpec) -> CampaignRecord:
        record = validated(campaign_id, spec)
        async with self._db.connection() as conn:
            current = await store.get_campaign(conn, campaign_id, lock=True)
            if current is None:
                raise NotFound(f"no campaign {campaign_id}")
            if current.state == CampaignState.STOPPED:
                raise CampaignStateConflict(f"campaign {campaign_id} is stopped; it cannot be changed")
            await _check_references(conn, record)
            updated = await store.update_campaign(conn, record)
        assert updated is not None
        log.info("campaign updated", extra={"campaign": campaign_id})
        return updated

    async def delete(self, campaign_id: str) -> None:
        """Delete a draft or stopped campaign with its contacts, attempts, imports and own
        do-not-call list; Conflict while it is running or paused."""
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            current = await store.get_campaign(conn, campaign_id, lock=True)
            if current is None:
                raise NotFound(f"no campaign {campaign_id}")
            if current.state not in (CampaignState.DRAFT, CampaignState.STOPPED):
                raise CampaignStateConflict(f"campaign {campaign_id} is {current.state}; stop it first")
            await store.delete_campaign(conn, campaign_id)
        await self._hopper.clear(campaign_id)
        log.info("campaign deleted", extra={"campaign": campaign_id})

    async def act(self, campaign_id: str, action: CampaignAction) -> CampaignRecord:
        """Start, pause or stop; CampaignStateConflict (409) when the state table forbids it."""
        check_id(campaign_id, "campaign id", InvalidCampaign)
        async with self._db.connection() as conn:
            current = await store.get_campaign(conn, campaign_id, lock=True)
            if current is None:
                raise NotFound(f"no campaign {campaign_id}")
            try:
                wanted = apply_action(campaign_id, CampaignState(current.state), action)
            except IllegalTransition as exc:
                raise CampaignStateConflict(f"campaign {campaign_id} is {current.state}; cannot "
                                            f"{action.value} it") from exc
            if action is CampaignAction.START and not await acd_store.queue_exists(conn, current.queue):
                raise CampaignStateConflict(f"campaign {campaign_id}: its queue {current.queue} no longer "
                                            "exists; change the campaign first")
            drained: list[store.ContactRecord] = []
            if wanted is not CampaignState.RUNNING:
                drained = await store.queued_contacts(conn, campaign_id)
                await store.requeue(conn, [c.id for c in drained])
            updated = await store.set_state(conn, campaign_id, wanted.value)
        if wanted is not CampaignState.RUNNING:
            await self._hopper.clear(campaign_id, {c.callback_agent_id for c in drained})
        elif self.on_started is not None:
            try:
                await self.on_started(campaign_id)
            except ControllerError as exc:  # the worker feeds it on its next round
                log.warning("campaign %s started; first hopper fill failed: %s", campaign_id, exc.detail)
        return updated


async def _check_references(conn: Any, record: CampaignRecord) -> None:
    if not await acd_store.queue_exists(conn, record.queue):
        raise InvalidCampaign(f"queue: no queue {record.queue}")
    prompt = record.config["amd"].get("message_prompt")
    if prompt is not None and await inbound_store.get_prompt(conn, prompt) is None:
        raise InvalidCampaign(f"amd.message_prompt: no prompt {prompt}")


# ---- validation ---------------------------------------------------------------------------


def validated(campaign_id: str, spec: CampaignSpec) -> CampaignRecord:
    """The record to store for ``spec``; InvalidCampaign naming the first bad field."""
    check_id(campaign_id, "campaign id", InvalidCampaign)
    if not isinstance(spec.name, str) or not spec.name.strip() or len(spec.name) > 200:
        raise InvalidCampaign("name must be 1 to 200 characters")
    try:
        mode = CampaignMode(spec.mode)
    except ValueError as exc:
        raise InvalidCampaign(f"mode must be one of {', '.join(m.value for m in CampaignMode)}") from exc
    ratio = spec.ratio
    if mode is CampaignMode.POWER:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1.0 <= ratio <= RATIO_MAX:
            raise InvalidCampaign(f"ratio: power mode needs a ratio from 1 to {RATIO_MAX:g} "
                                  "(calls per available agent)")
        ratio = float(ratio)
    elif ratio is not None:
        raise InvalidCampaign("ratio is only for mode power")
    check_id(spec.queue, "queue", InvalidCampaign)
    config = _config(spec.config)
    record = CampaignRecord(id=campaign_id, name=spec.name, state=CampaignState.DRAFT.value, mode=mode.value,
                            ratio=ratio, queue=spec.queue, config=config)
    try:
        plan_of(record)  # the engines' own checks, the last word
    except ValueError as exc:
        raise InvalidCampaign(str(exc)) from exc
    return record


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    known = {"caller_id", "timezone", "calling_windows", "max_attempts", "retry_rules", "dispositions",
             "amd", "abandon_target_pct", "abandon_window_h", "ring_timeout_s", "hopper_size",
             "hopper_ttl_s", "abandon_message"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidCampaign(f"{unknown[0]}: unknown setting")
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not is_zone(timezone):
        raise InvalidCampaign("timezone: not an IANA time zone this server knows (e.g. America/New_York)")
    windows = raw.get("calling_windows", list(DEFAULT_WINDOWS))
    if not isinstance(windows, list) or not 1 <= len(windows) <= MAX_WINDOWS:
        raise InvalidCampaign(f"calling_windows: 1 to {MAX_WINDOWS} windows")
    windows = [_window_doc(w, i) for i, w in enumerate(windows)]
    rules = raw.get("retry_rules", [dict(r) for r in DEFAULT_RETRY_RULES])
    if not isinstance(rules, list) or len(rules) > len(Outcome):
        raise InvalidCampaign("retry_rules: a list, at most one rule per outcome")
    rules = [_rule_doc(r, i) for i, r in enumerate(rules)]
    outcomes = [r["outcome"] for r in rules]
    for i, outcome in enumerate(outcomes):
        if outcome in outcomes[:i]:
            raise InvalidCampaign(f"retry_rules[{i}].outcome: {outcome} has a rule already")
    dispositions = raw.get("dispositions", [])
    if not isinstance(dispositions, list) or len(dispositions) > MAX_DISPOSITIONS:
        raise InvalidCampaign(f"dispositions: a list of at most {MAX_DISPOSITIONS} codes")
    for i, code in enumerate(dispositions):
        if not isinstance(code, str) or not _DISPOSITION.fullmatch(code):
            raise InvalidCampaign(f"dispositions[{i}]: 1 to 64 letters, digits, '_', '.' or '-'")
        if code in dispositions[:i]:
            raise InvalidCampaign(f"dispositions[{i}]: {code} is listed twice")
    extra: dict[str, Any] = {}
    if "abandon_message" in raw:
        message = raw["abandon_message"]
        if not isinstance(message, str) or not _SOUND.fullmatch(message):
            raise InvalidCampaign("abandon_message: a core sound's name (letters, digits, '_', '-', '/')")
        extra["abandon_message"] = message
    return {
        **extra,
        "caller_id": _caller_id(raw.get("caller_id")),
        "timezone": timezone,
        "calling_windows": windows,
        "max_attempts": _int(raw.get("max_attempts", 5), "max_attempts", 1, MAX_ATTEMPTS_MAX),
        "retry_rules": rules,
        "dispositions": list(dispositions),
        "amd": _amd(raw.get("amd")),
        "abandon_target_pct": _number(raw.get("abandon_target_pct", 3.0), "abandon_target_pct", 0.0, 100.0),
        "abandon_window_h": _int(raw.get("abandon_window_h", 24), "abandon_window_h", 1,
                                 ABANDON_WINDOW_MAX_H),
        "ring_timeout_s": _int(raw.get("ring_timeout_s", 25), "ring_timeout_s", 5, RING_TIMEOUT_MAX_S),
        "hopper_size": _int(raw.get("hopper_size", 50), "hopper_size", 1, HOPPER_SIZE_MAX),
        "hopper_ttl_s": _int(raw.get("hopper_ttl_s", 300), "hopper_ttl_s", 30, HOPPER_TTL_MAX_S),
    }


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidCampaign(f"{what} must be an integer from {low} to {high}")
    return value


def _number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidCampaign(f"{what} must be a number from {low:g} to {high:g}")
    return float(value)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _window_doc(raw: object, i: int) -> dict[str, Any]:
    where = f"calling_windows[{i}]"
    if not isinstance(raw, dict) or set(raw) != {"days", "start", "end"}:
        raise InvalidCampaign(f"{where} must be {{days, start, end}}")
    days = raw["days"]
    if not isinstance(days, list) or not days or any(d not in DAY_NAMES for d in days):
        raise InvalidCampaign(f"{where}.days: one or more of {', '.join(DAY_NAMES)}")
    if len(set(days)) != len(days):
        raise InvalidCampaign(f"{where}.days: a day is listed twice")
    for end in ("start", "end"):
        if not isinstance(raw[end], str) or not _TIME.fullmatch(raw[end]):
            raise InvalidCampaign(f"{where}.{end}: a local time HH:MM (00:00 to 24:00)")
    if _minutes(raw["start"]) >= _minutes(raw["end"]):
        raise InvalidCampaign(f"{where}: start must be before end (a window does not cross midnight; "
                              "use two)")
    return {"days": [d for d in DAY_NAMES if d in days], "start": raw["start"], "end": raw["end"]}


def _window(doc: dict[str, Any], i: int) -> CallingWindow:
    return CallingWindow(frozenset(DAY_NAMES.index(d) for d in doc["days"]), _minutes(doc["start"]),
                         _minutes(doc["end"]))


def _rule_doc(raw: object, i: int) -> dict[str, Any]:
    where = f"retry_rules[{i}]"
    if not isinstance(raw, dict) or not {"outcome", "delays_s"} <= set(raw) <= {"outcome", "delays_s",
                                                                                "max_retries"}:
        raise InvalidCampaign(f"{where} must be {{outcome, delays_s, max_retries?}}")
    retryable = [o.value for o in RETRYABLE_OUTCOMES]
    if raw["outcome"] not in retryable:
        raise InvalidCampaign(f"{where}.outcome must be one of {', '.join(retryable)}")
    delays = raw["delays_s"]
    if not isinstance(delays, list) or not 1 <= len(delays) <= MAX_DELAYS:
        raise InvalidCampaign(f"{where}.delays_s: 1 to {MAX_DELAYS} delays in seconds")
    for j, delay in enumerate(delays):
        _int(delay, f"{where}.delays_s[{j}]", 0, DELAY_MAX_S)
    max_retries = raw.get("max_retries")
    if max_retries is not None:
        _int(max_retries, f"{where}.max_retries", 0, MAX_ATTEMPTS_MAX)
    return {"outcome": raw["outcome"], "delays_s": list(delays), "max_retries": max_retries}


def _rule(doc: dict[str, Any], i: int) -> RetryRule:
    return RetryRule(Outcome(doc["outcome"]), tuple(doc["delays_s"]), doc.get("max_retries"))


def _caller_id(raw: object) -> dict[str, Any]:
    if raw is None:
        return {"fixed": None, "pool": [], "local_presence": True}
    if not isinstance(raw, dict) or not set(raw) <= {"fixed", "pool", "local_presence"}:
        raise InvalidCampaign("caller_id must be {fixed?, pool?, local_presence?}")
    fixed, pool = raw.get("fixed"), raw.get("pool") or []
    local_presence = raw.get("local_presence", True)
    if not isinstance(local_presence, bool):
        raise InvalidCampaign("caller_id.local_presence must be true or false")
    if fixed is not None and pool:
        raise InvalidCampaign("caller_id: give a fixed number or a pool, not both")
    if fixed is not None:
        fixed = _e164(fixed, "caller_id.fixed")
    if not isinstance(pool, list) or len(pool) > MAX_POOL:
        raise InvalidCampaign(f"caller_id.pool: a list of at most {MAX_POOL} numbers")
    numbers = [_e164(n, f"caller_id.pool[{i}]") for i, n in enumerate(pool)]
    for i, number in enumerate(numbers):
        if number in numbers[:i]:
            raise InvalidCampaign(f"caller_id.pool[{i}]: {number} is listed twice")
    return {"fixed": fixed, "pool": numbers, "local_presence": local_presence}


def _e164(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidCampaign(f"{what} must be a phone number in E.164 (+<country><number>)")
    try:
        number = normalize(value, None)
    except InvalidNumber as exc:
        raise InvalidCampaign(f"{what}: {exc}") from exc
    if number != value:
        raise InvalidCampaign(f"{what} must be written in E.164: {number}")
    return number


def _amd(raw: object) -> dict[str, Any]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise InvalidCampaign("amd must be an object")
    names = {"enabled", "on_machine", "message_prompt"} | {p[0] for p in AMD_PARAMETERS}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise InvalidCampaign(f"amd.{unknown[0]}: unknown setting")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise InvalidCampaign("amd.enabled must be true or false")
    on_machine = raw.get("on_machine", "hangup")
    if on_machine not in ("hangup", "message"):
        raise InvalidCampaign("amd.on_machine must be hangup or message")
    prompt = raw.get("message_prompt")
    if on_machine == "message":
        if not isinstance(prompt, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", prompt):
            raise InvalidCampaign("amd.message_prompt: leaving a message needs a prompt name")
    elif prompt is not None:
        raise InvalidCampaign("amd.message_prompt is only for on_machine message")
    out: dict[str, Any] = {"enabled": enabled, "on_machine": on_machine, "message_prompt": prompt}
    for name, default, low, high in AMD_PARAMETERS:
        out[name] = _int(raw.get(name, default), f"amd.{name}", low, high)
    return out

