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
        "expire-recordings": {
            "task": "controller.worker.tasks.expire_recordings",
            "schedule": crontab(hour=3, minute=41),
        },
    },
)
