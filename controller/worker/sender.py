"""Handing work to the Celery workers from the controller's event loop.

Celery's client is synchronous: sends run on one thread of their own, so the event loop never
waits on the broker, and one thread keeps Celery's producer pool to a single user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from celery import Celery

log = logging.getLogger(__name__)

DELIVER_WEBHOOK = "controller.worker.tasks.deliver_webhook"
# A broker that does not answer costs a send a few tenths of a second, not minutes: what is not
# sent is found again by the worker's sweep (deliveries stay pending in Postgres).
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}


class CelerySender:
    def __init__(self, broker_url: str, webhook_queue: str) -> None:
        self._app = Celery("cc-controller-sender", broker=broker_url)
        self._app.conf.broker_connection_timeout = 2.0
        self._queue = webhook_queue
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="celery-send")

    async def deliver_webhooks(self, delivery_ids: Iterable[UUID]) -> None:
        """Queue one delivery task per id; raises when the broker cannot be reached."""
        ids = [str(i) for i in delivery_ids]
        if ids:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._send, ids)

    def _send(self, ids: list[str]) -> None:
        with self._app.producer_or_acquire() as producer:
            for delivery_id in ids:
                self._app.send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=self._queue, producer=producer,
                                    retry=True, retry_policy=_RETRY_POLICY)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
        self._app.close()
