"""Alarms to webhooks on the real Asterisk: a queue with no agents and a threshold of one waiting
caller; a caller dials in and waits → alarm.raised reaches a webhook receiver (signed, through a
real Celery worker) and GET /v1/alarms shows it; the caller hangs up → alarm.cleared."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.domain import webhooks as wh
from controller.domain.access import Role
from tests.celery_worker import start_worker, stop_worker
from tests.conftest import eventually
from tests.integration.helpers import flow, route
from tests.receiver import Receiver

pytestmark = pytest.mark.asterisk


@pytest.fixture
def webhook_queue() -> str:
    return f"ccc-test-webhooks-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker(migrated_database: str, webhook_queue: str, tmp_path: Path) -> Iterator[Path]:
    log_path = tmp_path / "worker.log"
    process = start_worker(migrated_database, webhook_queue, log_path, concurrency=4)
    yield log_path
    stop_worker(process)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


async def test_a_waiting_caller_raises_an_alarm_that_reaches_a_webhook(
        start_runtime, api_client, dtmf_phones, worker, webhook_queue, receiver) -> None:
    runtime = await start_runtime(webhook_queue=webhook_queue, alarm_interval_s=0.5)
    _, key = await runtime.api_keys.create("alarm tests", Role.ADMIN, None)
    async with api_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        async with runtime.db.connection() as conn:
            await conn.execute("DELETE FROM webhooks")
        made = await client.post("/v1/webhooks", json={"url": f"{receiver.url}/alarms", "topics": ["alarms"],
                                                       "queue": "alarmed"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        queue = await client.post("/v1/queues", json={"name": "alarmed", "strategy": "ring_all",
                                                      "join_when_empty": True, "leave_when_empty": False})
        assert queue.status_code in (201, 409), queue.text
        rule = await client.put("/v1/alarm-rules/queues/alarmed", json={
            "callers_waiting": {"raise_at": 1, "clear_at": 0}, "clear_after_s": 0})
        assert rule.status_code == 200, rule.text
        await flow(client, "to-alarmed", {"q": {"type": "queue", "queue": "alarmed"}}, "q")
        await route(client, "alarmed", "7650", "to-alarmed")
        await eventually(lambda: runtime.acd.is_leader and runtime.webhook_dispatcher.cursor is not None, 10,
                         what="the ACD leader and the webhook dispatcher ready")

        phone = await dtmf_phones.call("7650", caller_id='"Waiting" <5557650>')
        await phone.wait_answered()

        def received(kind: str) -> list:
            return [r for r in receiver.at("/alarms") if r.json["type"] == kind]

        await eventually(lambda: len(received("alarm.raised")) == 1, 30, interval=0.2,
                         what="alarm.raised at the webhook receiver")
        (raised,) = received("alarm.raised")
        assert wh.verify(secret, raised.headers["x-ccc-timestamp"], raised.headers["x-ccc-signature"],
                         raised.body, now=time.time())
        alarm = raised.json["data"]
        assert (alarm["kind"], alarm["subject"], alarm["queue"], alarm["state"]) == (
            "queue.callers_waiting", "alarmed", "alarmed", "active")
        assert alarm["value"] == 1 and raised.json["queues"] == ["alarmed"]
        active = (await client.get("/v1/alarms", params={"queue": "alarmed"})).json()
        assert [a["id"] for a in active] == [alarm["id"]]

        await phone.hang_up()
        await eventually(lambda: len(received("alarm.cleared")) == 1, 30, interval=0.2,
                         what="alarm.cleared at the webhook receiver")
        (cleared,) = received("alarm.cleared")
        assert cleared.json["data"]["id"] == alarm["id"] and cleared.json["data"]["state"] == "cleared"
        assert cleared.json["seq"] > raised.json["seq"]
        assert (await client.get("/v1/alarms", params={"queue": "alarmed"})).json() == []
        history = (await client.get("/v1/alarms", params={"queue": "alarmed", "state": "all"})).json()
        assert history[0]["id"] == alarm["id"] and history[0]["clear_reason"] == "back to normal"
        # The delivery log says the same: two deliveries, each delivered at the first attempt.
        deliveries = (await client.get(f"/v1/webhooks/{made.json()['id']}/deliveries")).json()
        assert sorted(d["event_type"] for d in deliveries) == ["alarm.cleared", "alarm.raised"]
        assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in deliveries)
        await client.delete(f"/v1/webhooks/{made.json()['id']}")
