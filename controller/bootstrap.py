"""The one place that wires settings → pools → adapters → services."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from controller.adapters.asterisk.switch import AsteriskSwitch, SwitchSnapshot
from controller.domain import events as e
from controller.domain.agents import Agent
from controller.domain.errors import ControllerError
from controller.services.acd import AcdService
from controller.services.agents import AgentService
from controller.services.api_keys import ApiKeyService
from controller.services.audit import AuditService
from controller.services.call_control import CallControl
from controller.services.call_records import CallRecordService
from controller.services.call_recovery import CallRecovery
from controller.services.calls import CallService
from controller.services.device_states import DeviceStateService
from controller.services.flows import FlowService, SoundCatalog
from controller.services.health import HealthService
from controller.services.inbound import InboundRouter
from controller.services.lookups import Lookups
from controller.services.monitors import MonitorService, is_monitor_leg
from controller.services.number_routes import NumberRouteService
from controller.services.prompts import PromptService
from controller.services.queue_caller import QueueCaller
from controller.services.queues import QueueService
from controller.services.recordings import RecordingService
from controller.services.schedules import ScheduleService
from controller.services.voicemails import VoicemailService
from controller.settings import Settings
from controller.storage.acd_log import AcdLog
from controller.storage.db import Database
from controller.storage.limits import ConcurrencyLimits
from controller.storage.live import LiveStore
from controller.storage.outbox import RecordWriter

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 15.0


def _pending_tasks() -> str:
    lines = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        frames = task.get_stack(limit=4)
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
        lines.append(f"  {task.get_name()}: {where}")
    return "\n".join(lines)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    live: LiveStore
    records: RecordWriter
    switch: AsteriskSwitch
    calls: CallService
    call_control: CallControl
    call_records: CallRecordService
    health: HealthService
    api_keys: ApiKeyService
    audit: AuditService
    flows: FlowService
    number_routes: NumberRouteService
    schedules: ScheduleService
    prompts: PromptService
    voicemails: VoicemailService
    agents: AgentService
    queues: QueueService
    acd: AcdService
    devices: DeviceStateService
    recordings: RecordingService
    monitors: MonitorService

    async def start(self) -> None:
        await self.db.open()
        await self.records.start()
        await self.live.start()
        await self.acd.start()
        await self.reload_acd()
        await self.switch.start()

    async def reload_acd(self) -> None:
        """Load agents and queues into the ACD (at start and after every change to them)."""
        try:
            agents, queues = await self.queues.all_configs()
        except ControllerError as exc:
            log.error("ACD configuration not loaded: %s", exc.detail)
            return
        try:
            await self.acd.configure(agents, queues)
        except TimeoutError:
            log.error("ACD configuration not applied yet (the shared log in Redis is slow or away); "
                      "it is applied when Redis answers")
        self.devices.configure(agents)

    async def login_agent(self, agent_id: str) -> Agent:
        """Log an agent in, reading its device's state first: a login from a phone that cannot
        be reached makes the agent ``unavailable`` rather than ``available``."""
        if self.acd.agent(agent_id) is not None:
            await self.devices.refresh(agent_id)
        return await self.acd.agent_action(agent_id, "login")

    async def close(self) -> None:
        # Shutdown is bounded: a part that does not close in time is logged with what every
        # pending task was doing, and shutdown goes on.
        for name, close in (("monitors", self.monitors.close), ("switch", self.switch.close),
                            ("devices", self.devices.close),
                            ("acd", self.acd.close), ("calls", self.calls.close),
                            ("recordings", self.recordings.close), ("records", self.records.close),
                            ("live state", self.live.close), ("database", self.db.close)):
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await close()
            except TimeoutError:
                log.error("shutdown: %s did not close within %g s; pending tasks:\n%s",
                          name, CLOSE_TIMEOUT_S, _pending_tasks())


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings.database_url)
    records = RecordWriter(db, settings.reconnect_initial_delay, settings.reconnect_max_delay)
    live = LiveStore(settings.redis_url, settings.ari_app, settings.reconnect_initial_delay,
                     settings.reconnect_max_delay)
    # Inbound configuration; the sound catalog asks the switch (built below) when first needed.
    flows = FlowService(db, SoundCatalog(lambda: switch.ari.request("GET", "/sounds")))
    number_routes = NumberRouteService(db, flows)
    schedules = ScheduleService(db, flows)
    prompts = PromptService(db, flows, settings.prompts_path(), settings.max_prompt_seconds)
    voicemails = VoicemailService(db, settings.recordings_path())
    # ACD configuration; on_change will be the live ACD's reload.
    agents = AgentService(db, on_change=None)
    queues = QueueService(db, on_change=None)
    acd = AcdService(AcdLog(live.redis, settings.acd_cluster), settings.ari_app, state_log=records.put)
    calls: CallService
    recordings: RecordingService
    monitors: MonitorService
    recovery: CallRecovery

    def deliver(event: e.Event) -> None:
        if isinstance(event, e.DeviceStateChanged):
            devices.on_event(event)
            return
        if isinstance(event, e.SwitchLinkChanged) and event.link == "ami" and event.up:
            devices.resync_later()  # device states are heard over AMI: what changed meanwhile?
        if monitors.take(event):  # supervisors' and snoop legs are never calls
            return
        if RecordingService.owns(event):
            recordings.submit(event)  # type: ignore[arg-type]  # owns() checked the type
        else:
            calls.submit(event)

    async def reconnected(snapshot: SwitchSnapshot) -> None:
        await monitors.reconcile(snapshot.legs, snapshot.bridge_ids)
        await recovery.reconcile(tuple(leg for leg in snapshot.legs if not is_monitor_leg(leg.leg_id)))

    switch = AsteriskSwitch(settings, deliver, reconnected)
    inbound = InboundRouter(number_routes, flows, schedules, ConcurrencyLimits(live.redis, settings.ari_app))
    # The waiting caller's side of queues reads the queues the ACD has loaded (its state is
    # replaced at every event: look it up each time).
    queue_caller = QueueCaller(acd, lambda name: acd.state.queues.get(name), records.put, switch.name,
                               flows=inbound, callback_context=settings.callback_context)
    calls = CallService(switch, records, live, settings.default_prompt, inbound=inbound,
                        voicemails=voicemails, lookups=Lookups(), acd=acd, queue_caller=queue_caller)
    recovery = CallRecovery(calls, switch, live, inbound)
    acd.legs = calls  # the ACD rings agents and bridges callers through the call service
    devices = DeviceStateService(switch, acd.submit)
    audit = AuditService(db, records)
    recordings = RecordingService(db, switch, audit, settings.recordings_path())
    recordings.calls = calls  # what a recording started through the API records
    calls.recordings = recordings  # recording by policy when a queue call is connected
    monitors = MonitorService(switch, calls)
    health = HealthService(
        {
            "asterisk-ari": switch.ari.check,
            "asterisk-ami": switch.ami.check,
            "postgres": db.check,
            "redis": live.check,
        },
        timeout=settings.readiness_timeout,
    )
    runtime = Runtime(
        settings=settings,
        db=db,
        live=live,
        records=records,
        switch=switch,
        calls=calls,
        call_control=CallControl(calls, agents, db, queue_exists=lambda name: name in acd.state.queues,
                                 switch_ready=lambda: switch.ari.connected),
        call_records=CallRecordService(db),
        health=health,
        api_keys=ApiKeyService(db, records),
        audit=audit,
        flows=flows,
        number_routes=number_routes,
        schedules=schedules,
        prompts=prompts,
        voicemails=voicemails,
        agents=agents,
        queues=queues,
        acd=acd,
        devices=devices,
        recordings=recordings,
        monitors=monitors,
    )
    agents.on_change = queues.on_change = runtime.reload_acd
    return runtime
