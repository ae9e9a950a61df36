"""The public event feed, live: ``/v1/events`` as a WebSocket, or as Server-Sent Events.

One URL, two ways (docs/events.md is the contract):

- a WebSocket upgrade: one JSON text message per event;
- a plain ``GET``: Server-Sent Events (``text/event-stream``), each event's ``id:`` its sequence
  number, so a client that reconnects sends ``Last-Event-ID`` and is given what it missed.

Browsers cannot set headers on either, so the API key may come as ``?token=`` instead of
``Authorization: Bearer``; neither is ever logged (controller/logs.py masks ``token=`` in every
log line, uvicorn's included). Any role may follow the feed; what it sees is scoped by
``visible_to`` (an agent key: entries naming its agent only).

Before the stream opens, a bad request is refused: for SSE with the API's usual problem+json
(401, 403, 406, 422); for a WebSocket, which browsers cannot read an HTTP refusal from, the
connection is accepted and closed at once with code 1008 (policy violation) and a reason that
starts with the HTTP status it stands for ("401 unauthorized: ...").

Idle streams get a heartbeat every ``CCC_EVENTS_HEARTBEAT_S``: an SSE comment that also carries
``id:`` (the position), a ``feed.heartbeat`` message on a WebSocket (and uvicorn's own pings).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocketDisconnect, WebSocketState

from controller.api.auth import bearer
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.errors import ControllerError, Forbidden, InvalidRequest, StorageUnavailable
from controller.domain.feed import FeedEntry, FeedFilter, parse_topics, parse_types, visible_to
from controller.services.api_keys import Unauthorized
from controller.services.feed import FeedGap, FeedService, Heartbeat, Subscription

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["events"])

EVENT_STREAM = "text/event-stream"
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SEQUENCE = re.compile(r"^[0-9]{1,18}$")
PARAMETERS = ("topics", "types", "call_id", "agent_id", "queue", "after", "token")


class NotAcceptable(ControllerError):
    """The client does not accept what this URL answers."""

    code = "not-acceptable"
    status = 406


@dataclass(frozen=True, slots=True)
class FeedRequest:
    filter: FeedFilter
    after: int | None  # resume after this sequence number; None: from now on


def parse_request(params: QueryParams, last_event_id: str | None = None) -> FeedRequest:
    """The filter and starting point a client asks for; InvalidRequest (422) names what is wrong.
    ``Last-Event-ID`` (an SSE client reconnecting) wins over ``after``."""
    unknown = sorted(set(params.keys()) - set(PARAMETERS))
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}; known: {', '.join(PARAMETERS)}")

    def listed(name: str) -> list[str]:
        return [item.strip() for value in params.getlist(name) for item in value.split(",") if item.strip()]

    def single(name: str, pattern: re.Pattern[str]) -> str | None:
        values = params.getlist(name)
        if len(values) > 1:
            raise InvalidRequest(f"{name}: give it once")
        if not values:
            return None
        if not pattern.fullmatch(values[0]):
            raise InvalidRequest(f"{name}: malformed value {values[0][:64]!r}")
        return values[0]

    try:
        topics = parse_topics(listed("topics"))
        types = parse_types(listed("types"))
    except ValueError as exc:
        raise InvalidRequest(f"{'topics' if 'topic' in str(exc) else 'types'}: {exc}") from None
    after = single("after", SEQUENCE)
    if last_event_id is not None:
        if not SEQUENCE.fullmatch(last_event_id.strip()):
            raise InvalidRequest(f"Last-Event-ID: a sequence number, not {last_event_id[:64]!r}")
        after = last_event_id.strip()
    return FeedRequest(FeedFilter(topics=topics, types=types, call_id=single("call_id", ID),
                                  agent_id=single("agent_id", NAME), queue=single("queue", NAME)),
                       int(after) if after is not None else None)


def check_scope(principal: Principal, request: FeedRequest) -> None:
    """An agent key follows its own agent, and only when it is linked to one (403 otherwise)."""
    if principal.role is not Role.AGENT:
        return
    if principal.agent_id is None:
        raise Forbidden("this agent key is not linked to an agent, so it has no events to follow")
    wanted = request.filter.agent_id
    if wanted is not None and wanted != principal.agent_id:
        raise Forbidden(f"an agent key follows its own agent ({principal.agent_id}) only")


def subscribe(feed: FeedService, principal: Principal, request: FeedRequest) -> Subscription:
    wanted = request.filter

    def accept(entry: FeedEntry) -> bool:
        return visible_to(principal, entry) and wanted.matches(entry)

    return feed.subscribe(request.after, accept)


def subscribed(subscription: Subscription, principal: Principal, request: FeedRequest) -> dict[str, Any]:
    """The first message of every stream: it is live from here on."""
    wanted = request.filter
    return {"type": "feed.subscribed", "after": request.after, "position": subscription.cursor,
            "role": principal.role.value, "agent_id": principal.agent_id,
            "filter": {"topics": sorted(t.value for t in wanted.topics), "types": sorted(wanted.types),
                       "call_id": wanted.call_id, "agent_id": wanted.agent_id, "queue": wanted.queue}}


# ---- Server-Sent Events ----------------------------------------------------------------------


async def stream_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    token: str | None = Query(None, description="The API key, for clients that cannot set headers "
                                                "(browsers' EventSource); prefer the header"),
    runtime: Runtime = Depends(get_runtime),
) -> Principal:
    """The key from ``Authorization: Bearer`` or, without that header, from ``?token=``."""
    if credentials is None and "authorization" in request.headers:
        raise Unauthorized("malformed Authorization header; send `Authorization: Bearer <key>`")
    principal = await runtime.api_keys.authenticate(credentials.credentials if credentials else token)
    request.state.principal = principal
    return principal


SSE_DESCRIPTION = """Server-Sent Events: every event the key may see, as it happens (docs/events.md).

Each event is one `data:` line of JSON with `id:` set to its sequence number; a client that
reconnects sends `Last-Event-ID` (browsers do it by themselves) and is given what it missed, as
far back as the feed keeps. The first message is `feed.subscribed`; `feed.gap` says events were
no longer kept; an idle stream gets a comment with `id:` every `CCC_EVENTS_HEARTBEAT_S`.

Filters: `topics` (comma list: calls, agents, queues, recordings, campaigns, alarms, monitors),
`types` (comma list of types, or prefixes ending in `.`), `call_id`, `agent_id`, `queue`;
`after`: resume after this sequence number. An agent key sees only events naming its agent.
The same URL upgraded to a WebSocket gives the same messages as JSON text frames."""


@router.get(
    "/events",
    summary="The event feed as Server-Sent Events (a WebSocket upgrade on the same URL: JSON messages)",
    description=SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}}},
                     "description": "An endless `text/event-stream`"},
               **problems(401, 403, 406, 422, 503)},
)
async def event_stream(
    request: Request,
    topics: str | None = Query(None, description="Comma list of topics", examples=["calls,agents"]),
    types: str | None = Query(None, description="Comma list of event types, or prefixes ending in '.'",
                              examples=["call.offered,agent."]),
    call_id: str | None = Query(None, description="Only events about this call"),
    agent_id: str | None = Query(None, description="Only events naming this agent"),
    queue: str | None = Query(None, description="Only events naming this queue"),
    after: str | None = Query(None, description="Resume after this sequence number"),
    last_event_id: str | None = Header(None, alias="Last-Event-ID",
                                       description="Set by a reconnecting SSE client; wins over `after`"),
    principal: Principal = Depends(stream_principal),
    runtime: Runtime = Depends(get_runtime),
) -> StreamingResponse:
    accept = request.headers.get("accept", "")
    if accept and not _admits_event_stream(accept):
        raise NotAcceptable(f"this URL answers {EVENT_STREAM} (or a WebSocket upgrade); "
                            f"Accept was {accept[:80]!r}")
    wanted = parse_request(request.query_params, last_event_id)
    check_scope(principal, wanted)
    subscription = subscribe(runtime.feed, principal, wanted)
    hello = subscribed(subscription, principal, wanted)
    return StreamingResponse(_sse(subscription, hello, runtime.settings.events_heartbeat_s),
                             media_type=EVENT_STREAM,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _admits_event_stream(accept: str) -> bool:
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in (EVENT_STREAM, "text/*", "*/*"):
            return True
    return False


async def _sse(subscription: Subscription, hello: Mapping[str, Any],
               heartbeat_s: float) -> AsyncIterator[str]:
    yield f"data: {json.dumps(hello)}\n\n"
    try:
        async for item in subscription.with_heartbeats(heartbeat_s):
            match item:
                case Heartbeat(position=position):
                    # A comment keeps proxies from cutting the stream; the id moves the client's
                    # Last-Event-ID past what its filter left out, without an event.
                    yield f": heartbeat\nid: {position}\n\n"
                case FeedGap():
                    yield f"data: {json.dumps(item.to_json())}\n\n"
                case FeedEntry():
                    yield f"id: {item.seq}\ndata: {json.dumps(item.to_json(), default=str)}\n\n"
    except StorageUnavailable as exc:
        log.warning("event stream ended: %s", exc.detail)
        error = {"type": "feed.error", "detail": "the event feed is unavailable; reconnect"}
        yield f"data: {json.dumps(error)}\n\n"
    finally:
        subscription.close()


# ---- WebSocket -------------------------------------------------------------------------------


@router.websocket("/events")
async def event_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        principal = await runtime.api_keys.authenticate(_socket_key(websocket))
        wanted = parse_request(websocket.query_params)
        check_scope(principal, wanted)
    except ControllerError as exc:
        await websocket.close(POLICY_VIOLATION, _reason(exc))
        return
    subscription = subscribe(runtime.feed, principal, wanted)
    sender = asyncio.create_task(_send(websocket, subscription, principal, wanted,
                                       runtime.settings.events_heartbeat_s), name="events-socket-send")
    receiver = asyncio.create_task(_until_closed(websocket), name="events-socket-receive")
    try:
        await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
    finally:
        subscription.close()
        for task in (sender, receiver):
            task.cancel()
        results = await asyncio.gather(sender, receiver, return_exceptions=True)
    failure = next((r for r in results if isinstance(r, StorageUnavailable)), None)
    if websocket.client_state is WebSocketState.CONNECTED:
        if failure is not None:
            log.warning("event socket ended: %s", failure.detail)
            await _close(websocket, INTERNAL_ERROR, "the event feed is unavailable; reconnect with after=")
        else:
            await _close(websocket, 1000, "")


def _socket_key(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if header is None:
        return websocket.query_params.get("token")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("malformed Authorization header; send `Authorization: Bearer <key>`")
    return key.strip()


def _reason(exc: ControllerError) -> str:
    """A close reason: the HTTP status and problem type it stands for, then the detail (the
    protocol allows 123 bytes)."""
    text = f"{exc.status} {exc.code}: {exc.detail}"
    return text.encode()[:123].decode(errors="ignore")


async def _send(websocket: WebSocket, subscription: Subscription, principal: Principal,
                wanted: FeedRequest, heartbeat_s: float) -> None:
    await websocket.send_text(json.dumps(subscribed(subscription, principal, wanted)))
    async for item in subscription.with_heartbeats(heartbeat_s):
        await websocket.send_text(json.dumps(item.to_json(), default=str))


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes."""
    try:
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code, reason)
    except (RuntimeError, OSError, WebSocketDisconnect):
        pass  # the client went meanwhile
