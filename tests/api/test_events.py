"""GET /v1/events over a real socket (uvicorn on the test's loop), on the real Redis and
Postgres: WebSocket and Server-Sent Events, replay after a sequence number and Last-Event-ID,
filters, role scoping (an agent key never sees another agent's call), heartbeats, gaps, and the
4xx refusals before a stream opens."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from controller.bootstrap import Runtime
from controller.domain.access import Role
from controller.domain.feed import FeedEvent, Topic
from controller.logs import MaskSecrets
from tests.api.conftest import bearer
from tests.conftest import eventually
from tests.serving import SseEvent, serving, sse_events


@pytest.fixture(scope="module")
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    async with serving(app) as url:
        yield url


def ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http", "ws", 1) + "/v1/events" + (f"?{query}" if query else "")


async def agent_key(runtime: Runtime, client: httpx.AsyncClient, admin_key: str, agent_id: str) -> str:
    made = await client.post("/v1/agents", headers=bearer(admin_key),
                             json={"id": agent_id, "name": agent_id, "device": f"PJSIP/{agent_id}"})
    assert made.status_code in (201, 409), made.text
    _, key = await runtime.api_keys.create(f"agent {agent_id}", Role.AGENT, None, agent_id)
    return key


def call_event(call_id: str, agent: str = "", kind: str = "call.answered", queue: str = "") -> FeedEvent:
    return FeedEvent(Topic.CALLS, kind, {"call_id": call_id}, call_id=call_id,
                     agents=(agent,) if agent else (), queues=(queue,) if queue else ())


async def next_message(socket: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] != "feed.heartbeat":
                return message


async def events_until(socket: ClientConnection, last_call: str) -> list[dict[str, Any]]:
    """Messages up to the one about ``last_call``."""
    got = []
    while True:
        message = await next_message(socket)
        got.append(message)
        if message.get("call_id") == last_call:
            return got


async def refusal(url: str, **kwargs: Any) -> tuple[int, str]:
    """The close code and reason of a WebSocket the server refuses."""
    async with connect(url, **kwargs) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


# ---- WebSocket ------------------------------------------------------------------------------------


# The ACD leader publishes queue.stats now and then: tests that count events follow calls only.
CALLS_ONLY = "types=call."


async def test_a_websocket_gets_events_live_in_order(runtime, base_url, admin_key) -> None:
    async with connect(ws_url(base_url, CALLS_ONLY), additional_headers=bearer(admin_key)) as socket:
        hello = await next_message(socket)
        assert hello["type"] == "feed.subscribed" and hello["role"] == "admin"
        tag = uuid.uuid4().hex[:8]
        for n in range(5):
            runtime.feed.publish(call_event(f"{tag}-{n}"))
        got = await events_until(socket, f"{tag}-4")
    assert [m["call_id"] for m in got] == [f"{tag}-{n}" for n in range(5)]
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert all(m["topic"] == "calls" and m["type"] == "call.answered" and m["id"] == f"evt-{m['seq']}"
               for m in got)


async def test_an_agent_state_change_made_through_the_api_reaches_the_feed(
        runtime, client, base_url, admin_key) -> None:
    agent_id = f"ev-{uuid.uuid4().hex[:6]}"
    made = await client.post("/v1/agents", headers=bearer(admin_key),
                             json={"id": agent_id, "name": agent_id, "device": f"PJSIP/{agent_id}"})
    assert made.status_code == 201, made.text
    async with connect(ws_url(base_url, f"topics=agents&agent_id={agent_id}"),
                       additional_headers=bearer(admin_key)) as socket:
        await next_message(socket)
        for action, body in (("login", None), ("pause", {"reason": "lunch"}), ("unpause", None)):
            response = await client.post(f"/v1/agents/{agent_id}/{action}", headers=bearer(admin_key),
                                         json=body)
            assert response.status_code == 200, response.text
        changes = [(await next_message(socket))["data"] for _ in range(3)]
    assert [(c["old_state"], c["new_state"]) for c in changes] == [
        ("logged_out", "available"), ("available", "paused"), ("paused", "available")]
    assert changes[1]["reason"] == "lunch" and all(c["agent_id"] == agent_id and c["at"] for c in changes)


async def test_a_websocket_resumes_after_a_sequence_number(runtime, base_url, admin_key) -> None:
    tag = uuid.uuid4().hex[:8]
    async with connect(ws_url(base_url, CALLS_ONLY), additional_headers=bearer(admin_key)) as socket:
        await next_message(socket)
        for n in range(6):
            runtime.feed.publish(call_event(f"{tag}-{n}"))
        seen = await events_until(socket, f"{tag}-5")
    # The client saw up to the 3rd, went away, and comes back with its number.
    after = seen[2]["seq"]
    async with connect(ws_url(base_url, f"after={after}&{CALLS_ONLY}"),
                       additional_headers=bearer(admin_key)) as socket:
        hello = await next_message(socket)
        assert hello["after"] == after
        runtime.feed.publish(call_event(f"{tag}-6"))
        again = await events_until(socket, f"{tag}-6")
    assert [m["call_id"] for m in again] == [f"{tag}-{n}" for n in range(3, 7)]
    assert again[0]["seq"] == after + 1


async def published(runtime: Runtime, *events: FeedEvent) -> list[int]:
    """Publish ``events`` and return their sequence numbers once they are in Redis."""
    _, newest = await runtime.feed.stream.bounds()
    marks = [f"mark-{uuid.uuid4().hex}" for _ in events]
    for event, mark in zip(events, marks, strict=True):
        runtime.feed.publish(FeedEvent(event.topic, event.type, {**event.data, "mark": mark}, event.call_id,
                                       event.agents, event.queues))
    await eventually(lambda: runtime.feed.pending == 0, 5, what="the events written")
    stored = {e.event.data.get("mark"): e.seq for e in await runtime.feed.stream.after(newest, 10_000)}
    return [stored[mark] for mark in marks]


async def until_position(socket: ClientConnection, position: int) -> list[dict[str, Any]]:
    """Every event up to a heartbeat that says all up to ``position`` was looked at."""
    got = []
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] != "feed.heartbeat":
                got.append(message)
            elif message["position"] >= position:
                return got


async def test_filters_by_topic_type_call_agent_and_queue(runtime, base_url, admin_key, monkeypatch) -> None:
    monkeypatch.setattr(runtime.settings, "events_heartbeat_s", 0.2)
    tag = uuid.uuid4().hex[:8]
    events = [
        call_event(f"{tag}-a", "f-alice", "call.offered", "f-sales"),
        call_event(f"{tag}-b", "f-bob", "call.ended", "f-support"),
        FeedEvent(Topic.AGENTS, "agent.state_changed", {}, agents=("f-alice",), queues=("f-sales",)),
        FeedEvent(Topic.QUEUES, "queue.stats", {}, queues=("f-support",)),
        call_event(f"{tag}-end"),
    ]
    cases = {
        "topics=calls": [0, 1, 4],
        "topics=agents,queues": [2, 3],
        "types=call.offered,queue.": [0, 3],
        "types=call.": [0, 1, 4],
        f"call_id={tag}-b": [1],
        "agent_id=f-alice": [0, 2],
        "queue=f-support": [1, 3],
        "topics=calls&queue=f-sales": [0],
    }
    sockets = {}
    try:
        for query in cases:
            sockets[query] = await connect(ws_url(base_url, query), additional_headers=bearer(admin_key))
            await next_message(sockets[query])
        seqs = await published(runtime, *events)
        for query, wanted in cases.items():
            got = [m["seq"] for m in await until_position(sockets[query], seqs[-1]) if m["seq"] in seqs]
            assert got == [seqs[i] for i in wanted], query
    finally:
        for socket in sockets.values():
            await socket.close()


async def test_an_agent_key_sees_only_its_own_agent(runtime, client, base_url, admin_key) -> None:
    suffix = uuid.uuid4().hex[:6]
    alice, bob = f"sc-alice-{suffix}", f"sc-bob-{suffix}"
    alice_key = await agent_key(runtime, client, admin_key, alice)
    await agent_key(runtime, client, admin_key, bob)
    tag = uuid.uuid4().hex[:8]
    # A browser's way: the key as a query parameter.
    async with connect(ws_url(base_url, f"token={alice_key}")) as socket:
        hello = await next_message(socket)
        assert (hello["role"], hello["agent_id"]) == ("agent", alice)
        runtime.feed.publish(call_event(f"{tag}-bob", bob, "call.offered"))
        runtime.feed.publish(FeedEvent(Topic.QUEUES, "queue.stats", {}, queues=("sales",)))
        runtime.feed.publish(FeedEvent(Topic.MONITORS, "monitor.started", {"agent_id": alice},
                                       call_id=f"{tag}-alice"))
        runtime.feed.publish(call_event(f"{tag}-alice", alice, "call.offered"))
        runtime.feed.publish(FeedEvent(Topic.AGENTS, "agent.state_changed", {}, agents=(bob,)))
        runtime.feed.publish(call_event(f"{tag}-end", alice, "call.ended"))
        got = await events_until(socket, f"{tag}-end")
    assert [(m["type"], m["call_id"]) for m in got] == [("call.offered", f"{tag}-alice"),
                                                        ("call.ended", f"{tag}-end")]
    # Asking for another agent is refused, not silently empty.
    code, reason = await refusal(ws_url(base_url, f"agent_id={bob}"), additional_headers=bearer(alice_key))
    assert code == 1008 and reason.startswith("403 forbidden")
    _, unlinked = await runtime.api_keys.create("unlinked agent", Role.AGENT, None)
    code, reason = await refusal(ws_url(base_url), additional_headers=bearer(unlinked))
    assert code == 1008 and reason.startswith("403 forbidden") and "not linked" in reason


async def test_a_websocket_is_refused_with_1008_and_a_reason(base_url, admin_key) -> None:
    cases = {
        "": ({}, "401 unauthorized"),
        "token=ccc_AAAAAAAA_" + "A" * 43: ({}, "401 unauthorized"),
        "topics=calls": ({"Authorization": "Basic Y2NjOmNjYw=="}, "401 unauthorized"),
        "topics=nope": (bearer(admin_key), "422 invalid-request: topics: unknown topic 'nope'"),
        "types=Call.Offered": (bearer(admin_key), "422 invalid-request: types: malformed type"),
        "after=-1": (bearer(admin_key), "422 invalid-request: after: malformed value"),
        "queue=Bad%20Queue": (bearer(admin_key), "422 invalid-request: queue: malformed value"),
        "topic=calls": (bearer(admin_key), "422 invalid-request: unknown query parameter 'topic'"),
    }
    for query, (headers, expected) in cases.items():
        code, reason = await refusal(ws_url(base_url, query), additional_headers=headers)
        assert code == 1008 and reason.startswith(expected), (query, reason)


async def test_an_idle_websocket_gets_heartbeats_with_its_position(runtime, base_url, admin_key,
                                                                   monkeypatch) -> None:
    monkeypatch.setattr(runtime.settings, "events_heartbeat_s", 0.2)
    tag = uuid.uuid4().hex[:8]
    async with connect(ws_url(base_url, f"call_id={tag}-wanted"),
                       additional_headers=bearer(admin_key)) as socket:
        await next_message(socket)
        [other] = await published(runtime, call_event(f"{tag}-other"))  # filtered out, but looked at
        assert await until_position(socket, other) == []


# ---- Server-Sent Events ---------------------------------------------------------------------------


async def sse_until(response: httpx.Response, last_call: str) -> list[SseEvent]:
    got = []
    async with asyncio.timeout(10):
        async for event in sse_events(response):
            if event.data is None:
                continue  # a heartbeat
            got.append(event)
            if event.data.get("call_id") == last_call:
                return got
    raise AssertionError("the stream ended")


async def test_server_sent_events_with_ids_and_last_event_id_replay(runtime, base_url, admin_key) -> None:
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("GET", f"/v1/events?{CALLS_ONLY}", headers={
                **bearer(admin_key), "Accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            hello = await anext(events)
            assert hello.data is not None and hello.data["type"] == "feed.subscribed" and hello.id is None
            for n in range(4):
                runtime.feed.publish(call_event(f"{tag}-{n}"))
            got = []
            async with asyncio.timeout(10):
                async for event in events:
                    got.append(event)
                    if event.data and event.data.get("call_id") == f"{tag}-3":
                        break
        assert [e.id for e in got] == [str(e.data["seq"]) for e in got if e.data]
        # Reconnecting the way EventSource does: Last-Event-ID, which wins over `after`.
        last = got[1].id
        async with http.stream("GET", f"/v1/events?after=0&{CALLS_ONLY}", headers={
                **bearer(admin_key), "Last-Event-ID": str(last)}) as response:
            runtime.feed.publish(call_event(f"{tag}-4"))
            again = await sse_until(response, f"{tag}-4")
    assert again[0].data["type"] == "feed.subscribed" and again[0].data["after"] == int(last)
    assert [e.data["call_id"] for e in again[1:]] == [f"{tag}-{n}" for n in (2, 3, 4)]


async def test_server_sent_events_for_an_agent_key_by_token(runtime, client, base_url, admin_key) -> None:
    suffix = uuid.uuid4().hex[:6]
    carol = f"sse-carol-{suffix}"
    key = await agent_key(runtime, client, admin_key, carol)
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("GET", f"/v1/events?token={key}&topics=calls") as response:
            assert response.status_code == 200, await response.aread()
            runtime.feed.publish(call_event(f"{tag}-other", "someone-else"))
            runtime.feed.publish(call_event(f"{tag}-mine", carol))
            got = await sse_until(response, f"{tag}-mine")
    assert [e.data["call_id"] for e in got[1:]] == [f"{tag}-mine"]


async def test_an_idle_sse_stream_gets_comment_heartbeats_that_move_its_id(
        runtime, base_url, admin_key, monkeypatch) -> None:
    monkeypatch.setattr(runtime.settings, "events_heartbeat_s", 0.2)
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("GET", f"/v1/events?call_id={tag}-wanted",
                               headers=bearer(admin_key)) as response:
            events = sse_events(response)
            await anext(events)
            [other] = await published(runtime, call_event(f"{tag}-other"))
            async with asyncio.timeout(10):
                async for event in events:
                    assert event.data is None and event.comments == ["heartbeat"] and event.id is not None
                    if int(event.id) >= other:
                        break


async def test_sse_refusals_are_problem_json_before_the_stream(runtime, client, base_url, admin_key) -> None:
    key = await agent_key(runtime, client, admin_key, f"sse-dave-{uuid.uuid4().hex[:6]}")
    cases = [
        ({}, "", 401),
        ({"Authorization": "Basic Y2NjOmNjYw=="}, "token=" + admin_key, 401),
        (bearer(admin_key), "topics=calls,nope", 422),
        (bearer(admin_key), "after=x", 422),
        ({**bearer(admin_key), "Last-Event-ID": "abc"}, "", 422),
        (bearer(admin_key), "colour=blue", 422),
        ({**bearer(admin_key), "Accept": "application/json"}, "", 406),
        (bearer(key), "agent_id=someone-else", 403),
    ]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for headers, query, status in cases:
            response = await http.get(f"/v1/events?{query}", headers=headers)
            assert response.status_code == status, (query, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"]


async def test_a_trimmed_history_is_a_feed_gap(runtime, base_url, admin_key) -> None:
    tag = uuid.uuid4().hex[:8]
    runtime.feed.publish(call_event(f"{tag}-first"))
    await eventually(lambda: runtime.feed.pending == 0, 5, what="the first event written")
    first = (await runtime.feed.stream.bounds())[1]
    keep = runtime.feed.stream.max_len
    runtime.feed.stream.max_len = 10
    try:
        for n in range(400):
            runtime.feed.publish(call_event(f"{tag}-{n}"))
        await eventually(lambda: runtime.feed.pending == 0, 10, what="the events written")
    finally:
        runtime.feed.stream.max_len = keep
    oldest, _ = await runtime.feed.stream.bounds()
    assert oldest > first + 1
    async with connect(ws_url(base_url, f"after={first}&types=call.answered"),
                       additional_headers=bearer(admin_key)) as socket:
        await next_message(socket)
        gap = await next_message(socket)
        following = await next_message(socket)
    assert gap == {"type": "feed.gap", "after": first, "oldest": oldest,
                   "detail": f"entries {first + 1}..{oldest - 1} are no longer kept"}
    assert following["seq"] >= oldest


def test_api_keys_in_log_lines_are_masked() -> None:
    key = "ccc_AbCdEf12_" + "x" * 43
    record = logging.makeLogRecord({"msg": '%s - "WebSocket %s" [accepted]',
                                    "args": ("127.0.0.1:5000", f"/v1/events?topics=calls&token={key}")})
    MaskSecrets().filter(record)
    assert key not in record.getMessage() and "token=***" in record.getMessage()
    record = logging.makeLogRecord({"msg": f"Authorization: Bearer {key}"})
    MaskSecrets().filter(record)
    assert key not in record.getMessage()
