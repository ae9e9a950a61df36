"""The Celery application."""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab

from controller.settings import load_settings

settings = load_settings()

app = Celery("cc-controller", broker=settings.celery_broker_url, include=["controller.worker.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "prune-audit-log": {
            "task": "controller.worker.tasks.prune_audit_log",
            "schedule": crontab(hour=3, minute=17),
        },
        # Campaigns: hoppers are kept full, stale entries sent back, stuck imports resumed.
        "feed-campaign-hoppers": {
            "task": "controller.worker.tasks.feed_hoppers",
            "schedule": 5.0,
            "options": {"expires": 5.0},
        },
        "expire-campaign-hoppers": {
            "task": "controller.worker.tasks.expire_hoppers",
            "schedule": 30.0,
            "options": {"expires": 30.0},
        },
        "resume-contact-imports": {
            "task": "controller.worker.tasks.resume_imports",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        "expire-recordings": {
            "task": "controller.worker.tasks.expire_recordings",
            "schedule": crontab(hour=3, minute=41),
        },
        # Deliveries whose task was lost (a worker or the broker died) are queued again.
        "sweep-webhook-deliveries": {
            "task": "controller.worker.tasks.sweep_webhook_deliveries",
            "schedule": 60.0,
        },
        "prune-webhook-deliveries": {
            "task": "controller.worker.tasks.prune_webhook_deliveries",
            "schedule": crontab(hour=4, minute=7),
        },
    },
    # Webhook deliveries have their own queue: a worker can be given to them alone, and a
    # backlog of them never delays the other tasks.
    task_routes={"controller.worker.tasks.deliver_webhook": {"queue": settings.webhook_queue}},
)
