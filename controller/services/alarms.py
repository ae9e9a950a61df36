"""Alarms: rules (API), and the evaluation that raises and clears alarms every few seconds.

Evaluation reads the figures, lets the engine (engines/alarms.py) decide, stores each decision
in Postgres and then publishes it to the feed (``alarm.raised``, ``alarm.cleared``, topic
``alarms``), from where WebSocket clients and webhooks get it. A decision that cannot be
stored (Postgres away) is neither published nor applied, so it is made again next time.

Two scopes, because two kinds of facts live in different places:

- *this process*: its own links to the PBX (ARI, AMI). Every controller process has its own
  and watches them itself; the alarm's subject names the process (``ccc/ari``).
- *the cluster*: queue figures (from the ACD, whose state every process shares) and the
  dialer's abandonment rates. Only the ACD leader evaluates them, so a cluster raises each
  alarm once; a new leader starts from the active alarms in Postgres. Should two processes
  both lead for a moment, the one-active-alarm-per-subject index in Postgres lets only one of
  them raise (or clear) it, and only that one publishes.

Queue figures: callers waiting and the longest wait right now, today's service level (answered
within the queue's target over answered and abandoned; none before the first such call) and
the member agents available.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from controller.domain.access import Principal
from controller.domain.alarms import (
    HIGH_IS_BAD,
    Alarm,
    AlarmKind,
    DialerFigures,
    QueueAlarmRule,
    QueueFigures,
    SystemAlarmRule,
)
from controller.domain.errors import ControllerError, InvalidRequest, NotFound
from controller.domain.feed import FeedEvent, Topic
from controller.engines import alarms as engine
from controller.engines.alarms import AlarmState, Check, Clear, Decision, Raise
from controller.storage import acd as acd_store
from controller.storage import alarms as store
from controller.storage.alarms import AlarmFilter, RuleRow
from controller.storage.codec import DecodeError, decode, encode
from controller.storage.db import Database

log = logging.getLogger(__name__)

SYSTEM = "system"
NODE_KINDS = [AlarmKind.PBX_LINK_DOWN.value]
CLUSTER_KINDS = [k.value for k in AlarmKind if k is not AlarmKind.PBX_LINK_DOWN]


class Acd(Protocol):
    is_leader: bool

    @property
    def state(self) -> Any: ...

    def queue_stats(self, name: str, now: datetime) -> dict[str, object]: ...


class Feed(Protocol):
    def publish(self, event: FeedEvent, at: datetime | None = None) -> None: ...


Links = Callable[[], Mapping[str, bool]]
Dialers = Callable[[], list[DialerFigures]]


def queue_figures(acd: Acd, name: str, now: datetime) -> QueueFigures:
    stats = acd.queue_stats(name, now)
    agents = stats["agents"]
    assert isinstance(agents, dict)
    level = stats["service_level"]
    return QueueFigures(name, int(stats["waiting"]), float(stats["longest_wait_s"]),  # type: ignore[arg-type]
                        None if level is None else float(level),  # type: ignore[arg-type]
                        int(agents.get("available", 0)))


class AlarmService:
    def __init__(self, db: Database, feed: Feed, acd: Acd, links: Links, node: str, *,
                 interval_s: float = 2.0, dialers: Dialers | None = None) -> None:
        self._db = db
        self._feed = feed
        self._acd = acd
        self._links = links
        self.node = node
        self._interval_s = interval_s
        self.dialers = dialers  # the dialer's figures, when there is a dialer
        self._node_state: AlarmState | None = None  # None: load from Postgres first
        self._cluster_state: AlarmState | None = None
        self._system_rule = SystemAlarmRule()
        self._queue_rules: dict[str, QueueAlarmRule] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # ---- rules ---------------------------------------------------------------------------

    async def queue_rules(self) -> list[tuple[QueueAlarmRule, datetime]]:
        async with self._db.connection() as conn:
            rows = await store.list_rules(conn)
        return [(queue_rule(r), r.updated_at) for r in rows if r.scope == "queue"]

    async def system_rule(self) -> tuple[SystemAlarmRule, datetime | None]:
        async with self._db.connection() as conn:
            row = await store.get_rule(conn, SYSTEM, SYSTEM)
        return (SystemAlarmRule(), None) if row is None else (system_rule(row), row.updated_at)

    async def put_system_rule(self, rule: SystemAlarmRule) -> tuple[SystemAlarmRule, datetime]:
        check_system_rule(rule)
        async with self._db.connection() as conn:
            row = await store.put_rule(conn, SYSTEM, SYSTEM, encode(rule))
        return system_rule(row), row.updated_at

    async def queue_rule(self, queue: str) -> tuple[QueueAlarmRule, datetime]:
        async with self._db.connection() as conn:
            row = await store.get_rule(conn, "queue", queue)
        if row is None:
            raise NotFound(f"no alarm rule for queue {queue}")
        return queue_rule(row), row.updated_at

    async def put_queue_rule(self, rule: QueueAlarmRule) -> tuple[QueueAlarmRule, datetime]:
        check_queue_rule(rule)
        async with self._db.connection() as conn:
            if not await acd_store.queue_exists(conn, rule.queue):
                raise InvalidRequest(f"no queue {rule.queue}")
            values = encode(rule)
            del values["queue"]
            row = await store.put_rule(conn, "queue", rule.queue, values)
        return queue_rule(row), row.updated_at

    async def delete_queue_rule(self, queue: str) -> None:
        async with self._db.connection() as conn:
            if not await store.delete_rule(conn, "queue", queue):
                raise NotFound(f"no alarm rule for queue {queue}")

    # ---- alarms --------------------------------------------------------------------------

    async def list(self, filters: AlarmFilter) -> list[Alarm]:
        async with self._db.connection() as conn:
            return await store.list_alarms(conn, filters)

    async def get(self, alarm_id: UUID) -> Alarm:
        async with self._db.connection() as conn:
            alarm = await store.get_alarm(conn, alarm_id)
        if alarm is None:
            raise NotFound(f"no alarm {alarm_id}")
        return alarm

    async def acknowledge(self, alarm_id: UUID, by: Principal) -> Alarm:
        """Mark an alarm seen (active or cleared); acknowledging twice keeps the first."""
        async with self._db.connection() as conn:
            alarm = await store.acknowledge(conn, alarm_id, by.key_name)
        if alarm is None:
            return await self.get(alarm_id)
        self._feed.publish(_event("alarm.acknowledged", alarm))
        return alarm

    # ---- evaluation ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="alarms")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(10):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.evaluate(datetime.now(UTC))
            except ControllerError as exc:
                log.warning("alarms not evaluated: %s", exc.detail)
            except Exception:
                log.exception("alarms not evaluated")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._stop.wait()

    async def evaluate(self, now: datetime) -> list[Decision]:
        """One evaluation: this process's links always, the cluster's figures when leading."""
        await self._load_rules()
        done: list[Decision] = []
        if self._node_state is None:
            self._node_state = await self._load_state(NODE_KINDS, f"{self.node}/")
        checks = engine.link_checks(self._system_rule, self.node, self._links())
        self._node_state, made = await self._carry_out(self._node_state, checks, now)
        done += made
        if not self._acd.is_leader:
            self._cluster_state = None
            return done
        if self._cluster_state is None:
            self._cluster_state = await self._load_state(CLUSTER_KINDS, None)
        checks = []
        queues = self._acd.state.queues
        for name, rule in self._queue_rules.items():
            if name in queues:
                checks += engine.queue_checks(rule, queue_figures(self._acd, name, now))
        if self.dialers is not None:
            checks += engine.dialer_checks(self._system_rule, self.dialers())
        self._cluster_state, made = await self._carry_out(self._cluster_state, checks, now)
        return done + made

    async def _load_rules(self) -> None:
        try:
            async with self._db.connection() as conn:
                rows = await store.list_rules(conn)
        except ControllerError as exc:
            log.warning("alarm rules not read (%s); the last ones read are used", exc.detail)
            return
        system, queues = SystemAlarmRule(), {}
        for row in rows:
            try:
                if row.scope == SYSTEM:
                    system = system_rule(row)
                else:
                    queues[row.name] = queue_rule(row)
            except (DecodeError, ValueError) as exc:
                log.error("alarm rule %s/%s is unreadable and skipped: %s", row.scope, row.name, exc)
        self._system_rule, self._queue_rules = system, queues

    async def _load_state(self, kinds: list[str], prefix: str | None) -> AlarmState:
        async with self._db.connection() as conn:
            active = await store.active_alarms(conn, kinds, prefix)
        return AlarmState(active=frozenset(engine.AlarmKey(AlarmKind(a.kind), a.subject) for a in active))

    async def _carry_out(self, state: AlarmState, checks: list[Check],
                         now: datetime) -> tuple[AlarmState, list[Decision]]:
        result = engine.step(state, checks, now)
        state = result.state
        done = []
        for decision in result.decisions:
            try:
                alarm = await self._store(decision, now)
            except ControllerError as exc:
                log.warning("alarm %s %s not stored (%s); decided again next time", decision.key.kind.value,
                            decision.key.subject, exc.detail)
                continue
            state = engine.apply(state, decision)
            done.append(decision)
            if alarm is None:  # raised or cleared by another process already
                continue
            if isinstance(decision, Raise):
                log.warning("alarm raised: %s", alarm.message)
                self._feed.publish(_event("alarm.raised", alarm), at=now)
            else:
                log.info("alarm cleared (%s): %s", alarm.clear_reason, alarm.message)
                self._feed.publish(_event("alarm.cleared", alarm), at=now)
        return state, done

    async def _store(self, decision: Decision, now: datetime) -> Alarm | None:
        key = decision.key
        async with self._db.connection() as conn:
            if isinstance(decision, Raise):
                return await store.raise_alarm(
                    conn, id=uuid4(), kind=key.kind.value, subject=key.subject, queue=decision.queue,
                    severity=decision.severity.value, message=decision.message, value=decision.value,
                    threshold=decision.threshold, raised_at=now)
            assert isinstance(decision, Clear)
            return await store.clear_alarm(conn, kind=key.kind.value, subject=key.subject, at=now,
                                           value=decision.value, reason=decision.reason)


def _event(kind: str, alarm: Alarm) -> FeedEvent:
    return FeedEvent(Topic.ALARMS, kind, alarm.to_json(), queues=(alarm.queue,) if alarm.queue else ())


def queue_rule(row: RuleRow) -> QueueAlarmRule:
    rule: QueueAlarmRule = decode(QueueAlarmRule, {**row.rule, "queue": row.name})
    return rule


def system_rule(row: RuleRow) -> SystemAlarmRule:
    rule: SystemAlarmRule = decode(SystemAlarmRule, row.rule)
    return rule


def check_queue_rule(rule: QueueAlarmRule) -> None:
    """InvalidRequest naming the first threshold whose levels are the wrong way round."""
    if not rule.thresholds():
        raise InvalidRequest("a queue alarm rule needs at least one threshold")
    for kind, threshold in rule.thresholds().items():
        try:
            threshold.check(kind in HIGH_IS_BAD)
        except ValueError as exc:
            raise InvalidRequest(f"{_FIELD[kind]}: {exc}") from None


def check_system_rule(rule: SystemAlarmRule) -> None:
    if rule.dialer_abandon_rate is not None:
        try:
            rule.dialer_abandon_rate.check(True)
        except ValueError as exc:
            raise InvalidRequest(f"dialer_abandon_rate: {exc}") from None


_FIELD = {AlarmKind.CALLERS_WAITING: "callers_waiting", AlarmKind.LONGEST_WAIT: "longest_wait_s",
          AlarmKind.SERVICE_LEVEL: "service_level", AlarmKind.AGENTS_AVAILABLE: "agents_available"}
