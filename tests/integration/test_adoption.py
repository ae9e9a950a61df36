"""Channels left in the Stasis application while no controller listened are adopted: by the
call a previous run tracked (from Redis, with where its flow was), or as new calls when nobody
knew them. Real Asterisk; the "controller going away" is a runtime closed mid-call."""

from __future__ import annotations

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.asterisk

SIX_SECONDS = "sound:demo-enterkeywords"
THREE_SECONDS = "sound:agent-pass"


async def _call_in_progress(runtime, phones, number: str):
    await phones.call(number, caller_id='"Bob" <5559876>')
    await eventually(lambda: len(runtime.calls.live_calls()) == 1, 10, what="a call in progress")
    call = runtime.calls.live_calls()[0]
    await eventually(lambda: _flow_saved(runtime, call.id), 5, what="the call's flow in Redis")
    return call


async def _flow_saved(runtime, call_id: str) -> bool:
    saved = (await runtime.live.live_calls()).get(call_id)
    return bool(saved and saved["driver"])


async def _ended_normally(db_conn, call_id: str) -> dict:
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
    row = await cursor.fetchone()
    assert row["state"] == "ended" and row["hangup_cause"] == 16
    return row


async def test_a_restarted_controller_picks_up_the_flow_where_it_was(start_runtime, phones, db_conn):
    first = await start_runtime(default_prompt=SIX_SECONDS)
    call = await _call_in_progress(first, phones, "400")
    leg_id = next(iter(call.legs))
    await first.close()  # the controller goes away while the prompt plays

    second = await start_runtime(default_prompt="sound:this-is-never-played")
    await eventually(lambda: second.calls.find(call.id) is not None, 10,
                     what="the second run to adopt the call")
    adopted = second.calls.find(call.id)
    assert list(adopted.legs) == [leg_id] and adopted.caller_number == "5559876"
    # The prompt the first run started finishes, and the adopted flow hangs up after it.
    await second.calls.wait_ended(call.id, timeout=20)
    await second.records.flushed()
    await _ended_normally(db_conn, call.id)
    cursor = await db_conn.execute(
        "SELECT kind, data FROM call_events WHERE call_id = %s ORDER BY id", (call.id,))
    events = await cursor.fetchall()
    assert [e["kind"] for e in events].count("LegArrived") == 1  # one call, not a new one
    assert not any(e["kind"] == "PlaybackStarted" and "never" in str(e["data"]) for e in events)
    assert call.id not in await second.live.live_calls()


async def test_a_prompt_that_ended_while_nobody_listened_moves_the_flow_on(start_runtime, phones,
                                                                           db_conn):
    first = await start_runtime(default_prompt=THREE_SECONDS)
    call = await _call_in_progress(first, phones, "401")
    playback_id = (await first.live.live_calls())[call.id]["driver"]["playback_id"]
    await first.close()

    async def playback_over() -> bool:
        return (await phones.client.get(f"/playbacks/{playback_id}")).status_code == 404

    await eventually(playback_over, 10, what="the prompt to end while no controller listens")
    second = await start_runtime()

    async def ended() -> bool:
        await second.records.flushed()
        cursor = await db_conn.execute("SELECT state FROM calls WHERE id = %s", (call.id,))
        return (await cursor.fetchone())["state"] == "ended"

    await eventually(ended, 10, what="the adopted call to be hung up")
    await _ended_normally(db_conn, call.id)


async def test_channels_nobody_tracked_are_taken_over_as_new_calls(start_runtime, phones, db_conn):
    first = await start_runtime(default_prompt=SIX_SECONDS)
    call = await _call_in_progress(first, phones, "500")
    leg_id = next(iter(call.legs))
    await first.close()
    await first.live.redis.delete(first.live.calls_key)  # as if Redis had lost its state too

    second = await start_runtime()
    await eventually(lambda: second.calls.call_of_leg(leg_id) is not None, 10,
                     what="the orphan channel to be taken over")
    new_id = second.calls.call_of_leg(leg_id)
    assert new_id != call.id
    await phones.client.delete(f"/channels/{leg_id}")  # the caller hangs up
    await second.calls.wait_ended(new_id, timeout=10)
    await second.records.flushed()
    cursor = await db_conn.execute("SELECT * FROM calls WHERE id = %s", (new_id,))
    row = await cursor.fetchone()
    assert row["state"] == "ended" and row["caller_number"] == "5559876" and row["dialed"] == "500"
