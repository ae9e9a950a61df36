"""The one place that wires settings → pools → adapters → services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from controller.adapters.asterisk.switch import AsteriskSwitch, SwitchSnapshot
from controller.domain import events as e
from controller.domain.agents import Agent
from controller.domain.errors import ControllerError
from controller.services.acd import AcdService
from controller.services.agents import AgentService
from controller.services.alarms import AlarmService
from controller.services.api_keys import ApiKeyService
from controller.services.audit import AuditService
from controller.services.call_control import CallControl
from controller.services.call_records import CallRecordService
from controller.services.call_recovery import CallRecovery
from controller.services.calls import CallService
from controller.services.campaigns import CampaignService
from controller.services.contacts import ContactService
from controller.services.device_states import DeviceStateService
from controller.services.dialer import DialerService
from controller.services.dnc import DncService
from controller.services.feed import FeedService
from controller.services.flows import FlowService, SoundCatalog
from controller.services.health import HealthService
from controller.services.inbound import InboundRouter
from controller.services.lookups import Lookups
from controller.services.monitors import MonitorService
from controller.services.number_routes import NumberRouteService
from controller.services.outbound import OutboundService
from controller.services.prompts import PromptService
from controller.services.queue_caller import QueueCaller
from controller.services.queue_moves import QueueMoves
from controller.services.queues import QueueService
from controller.services.recordings import RecordingService, is_recording_leg
from controller.services.reports import ReportService
from controller.services.schedules import ScheduleService
from controller.services.staffing import StaffingService
from controller.services.voicemails import VoicemailService
from controller.services.webhook_delivery import address_policy_for
from controller.services.webhooks import WebhookDispatcher, WebhookService
from controller.settings import Settings
from controller.storage.acd_log import AcdLog
from controller.storage.db import Database
from controller.storage.feed import FeedStream
from controller.storage.hopper import HopperStore
from controller.storage.lease import Lease
from controller.storage.limits import ConcurrencyLimits
from controller.storage.live import LiveStore
from controller.storage.outbox import RecordWriter
from controller.worker.sender import CelerySender

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
    feed: FeedService
    campaigns: CampaignService
    contacts: ContactService
    dnc: DncService
    outbound: OutboundService
    dialer: DialerService
    queue_moves: QueueMoves
    staffing: StaffingService
    reports: ReportService
    webhooks: WebhookService
    webhook_dispatcher: WebhookDispatcher
    alarms: AlarmService
    tasks: CelerySender

    async def start(self) -> None:
        await self.db.open()
        await self.records.start()
        await self.live.start()
        await self.feed.start()
        await self.acd.start()
        await self.reload_acd()
        await self.switch.start()
        await self.webhook_dispatcher.start()
        await self.alarms.start()
        if self.settings.dialer_enabled:
            await self.dialer.start()

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
        for name, close in (("dialer", self.dialer.close), ("alarms", self.alarms.close),
                            ("webhook dispatcher", self.webhook_dispatcher.close),
                            ("monitors", self.monitors.close), ("switch", self.switch.close),
                            ("devices", self.devices.close),
                            ("acd", self.acd.close), ("calls", self.calls.close),
                            ("recordings", self.recordings.close), ("records", self.records.close),
                            ("feed", self.feed.close), ("task sender", self._close_tasks),
                            ("live state", self.live.close), ("database", self.db.close)):
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await close()
            except TimeoutError:
                log.error("shutdown: %s did not close within %g s; pending tasks:\n%s",
                          name, CLOSE_TIMEOUT_S, _pending_tasks())


    async def _close_tasks(self) -> None:
        await asyncio.to_thread(self.tasks.close)


def celery_enqueue(broker_url: str) -> Callable[[UUID], Awaitable[None]]:
    """Hands a contact import to the Celery worker (by task name: the API process does not
    import the worker's modules). Fails fast when the broker is away; the worker's periodic
    resume round then picks the import up."""
    from celery import Celery

    sender = Celery("cc-controller-api", broker=broker_url)

    async def enqueue(import_id: UUID) -> None:
        await asyncio.to_thread(sender.send_task, "controller.worker.tasks.import_contacts",
                                args=[str(import_id)], retry=False)

    return enqueue


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
    # The public event feed is shared by the processes of one cluster, like the ACD.
    feed = FeedService(FeedStream(live.redis, settings.acd_cluster, settings.events_history),
                       settings.ari_app)
    acd = AcdService(AcdLog(live.redis, settings.acd_cluster), settings.ari_app, state_log=records.put,
                     publish=feed.publish, queue_stats_every_s=settings.events_queue_stats_s)
    # Webhooks: one dispatcher per cluster turns feed entries into deliveries for the workers.
    tasks = CelerySender(settings.celery_broker_url, settings.webhook_queue)
    webhooks = WebhookService(db, address_policy_for(settings), tasks)
    webhook_dispatcher = WebhookDispatcher(
        db, FeedStream(live.redis, settings.acd_cluster, settings.events_history),
        Lease(live.redis, f"ccc:{settings.acd_cluster}:webhooks:dispatcher"), tasks,
        settings.acd_cluster, settings.ari_app)
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
        if recordings.take(event):  # call recordings' events and snoop legs
            return
        calls.submit(event)

    async def reconnected(snapshot: SwitchSnapshot) -> None:
        # Calls first: a supervisor's leg that took a call over is one of the call's legs, and
        # must be adopted with it before the monitor service hangs up monitor legs nobody owns.
        await recovery.reconcile(tuple(leg for leg in snapshot.legs if not is_recording_leg(leg)))
        await monitors.reconcile(snapshot.legs, snapshot.bridge_ids)
        # After the calls: a recording whose call is still here goes on; one whose end was
        # missed is finished from its file.
        await recordings.reconcile(snapshot.legs)

    switch = AsteriskSwitch(settings, deliver, reconnected)
    inbound = InboundRouter(number_routes, flows, schedules, ConcurrencyLimits(live.redis, settings.ari_app))
    # The waiting caller's side of queues reads the queues the ACD has loaded (its state is
    # replaced at every event: look it up each time).
    queue_caller = QueueCaller(acd, lambda name: acd.state.queues.get(name), records.put, switch.name,
                               flows=inbound, callback_context=settings.callback_context)
    calls = CallService(switch, records, live, settings.default_prompt, inbound=inbound,
                        voicemails=voicemails, lookups=Lookups(), acd=acd, queue_caller=queue_caller,
                        feed=feed.publish)
    recovery = CallRecovery(calls, switch, live, inbound)
    acd.legs = calls  # the ACD rings agents and bridges callers through the call service
    devices = DeviceStateService(switch, acd.submit)
    audit = AuditService(db, records)
    recordings = RecordingService(db, switch, audit, settings.recordings_path(), app=settings.ari_app)
    recordings.calls = calls  # what a recording started through the API records
    recordings.feed = feed.publish
    calls.recordings = recordings  # recording by policy when a queue call is connected
    call_control = CallControl(calls, agents, db, queue_exists=lambda name: name in acd.state.queues,
                               switch_ready=lambda: switch.ari.connected)
    monitors = MonitorService(switch, calls, call_control, feed.publish)
    # Campaigns: the hopper lives with the shared ACD's keys; a started campaign's hopper is
    # filled at once (then by the worker's beat).
    hopper = HopperStore(live.redis, settings.acd_cluster)
    outbound = OutboundService(db, hopper)
    campaigns = CampaignService(db, hopper, on_started=outbound.feed)
    call_control.campaign_disposition = outbound.set_disposition
    async def device_of(agent_id: str) -> str:
        return str((await agents.get(agent_id)).device)

    # The real-time dialer: one process per running campaign (a lease each) places its calls.
    dialer = DialerService(
        db, outbound, calls, acd, lambda campaign_id: Lease(
            live.redis, f"ccc:{settings.acd_cluster}:campaign:{campaign_id}:dialer"),
        settings.ari_app, context=settings.dialer_context, abandon_message=settings.dialer_abandon_message,
        tick_s=settings.dialer_tick_s, max_per_round=settings.dialer_max_per_round,
        switch_ready=lambda: switch.ari.connected, publish=feed.publish, device_of=device_of,
        preview_timeout_s=settings.dialer_preview_timeout_s)
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
        call_control=call_control,
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
        feed=feed,
        campaigns=campaigns,
        contacts=ContactService(db, inline_rows=settings.campaign_import_inline_rows,
                                enqueue=celery_enqueue(settings.celery_broker_url)),
        dnc=DncService(db),
        outbound=outbound,
        dialer=dialer,
        queue_moves=QueueMoves(acd, db, calls.find),
        staffing=StaffingService(db),
        reports=ReportService(db),
        webhooks=webhooks,
        webhook_dispatcher=webhook_dispatcher,
        alarms=AlarmService(db, feed, acd, lambda: switch.links, settings.ari_app,
                            interval_s=settings.alarm_interval_s),
        tasks=tasks,
    )
    agents.on_change = queues.on_change = runtime.reload_acd
    return runtime
