"""A real call through the real Asterisk: a Local channel enters the Stasis application, the
controller answers it, plays a prompt, hangs up, and the call and its leg are in Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.asterisk


async def test_inbound_call_is_answered_greeted_hung_up_and_recorded(start_runtime, phones, db_conn):
    runtime = await start_runtime()
    before = datetime.now(UTC)

    await phones.call("100", caller_id='"Alice" <5551234>')
    await eventually(lambda: len(runtime.calls.live_calls()) == 1, 10, what="the call to arrive")
    call_id = runtime.calls.live_calls()[0].id
    await runtime.calls.wait_ended(call_id, timeout=20)
    await runtime.records.flushed()
    after = datetime.now(UTC)

    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
    call = await cursor.fetchone()
    assert call["direction"] == "inbound"
    assert call["state"] == "ended"
    assert call["dialed"] == "100"
    assert (call["caller_number"], call["caller_name"]) == ("5551234", "Alice")
    assert before - timedelta(seconds=1) <= call["started_at"] <= call["answered_at"]
    assert call["answered_at"] < call["ended_at"] <= after
    # hello-world lasts about 1.5 s: the hang-up came after the prompt, not before.
    assert call["ended_at"] - call["answered_at"] >= timedelta(seconds=1)
    assert (call["hangup_cause"], call["hangup_cause_text"]) == (16, "Normal Clearing")

    cursor = await db_conn.execute("SELECT * FROM legs WHERE call_id = %s", (call_id,))
    legs = await cursor.fetchall()
    assert len(legs) == 1
    leg = legs[0]
    assert leg["role"] == "caller" and leg["state"] == "ended"
    assert leg["channel_name"].startswith("Local/100@ccc-inbound")
    assert leg["created_at"] <= leg["answered_at"] < leg["ended_at"]
    assert leg["hangup_cause"] == 16

    cursor = await db_conn.execute(
        "SELECT kind FROM call_events WHERE call_id = %s ORDER BY id", (call_id,))
    kinds = [row["kind"] for row in await cursor.fetchall()]
    assert kinds[0] == "LegArrived"
    assert kinds.index("LegAnswered") < kinds.index("PlaybackStarted") < kinds.index("PlaybackFinished")
    assert kinds.index("PlaybackFinished") < kinds.index("LegHungUp")
