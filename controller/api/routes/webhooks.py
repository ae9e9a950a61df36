"""Webhooks (docs/webhooks.md): subscriptions to the event feed, delivered over HTTP by the
Celery workers, with a log of every delivery and attempt. Admins only: a webhook sends the
floor's events to a URL of the admin's choosing, and holds a signing secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from controller.api.auth import authorize
from controller.api.deps import get_runtime
from controller.api.errors import problems
from controller.api.types import Timestamp
from controller.bootstrap import Runtime
from controller.domain.access import Principal, Role
from controller.domain.feed import Topic
from controller.domain.webhooks import MAX_URL_LENGTH, SECRET_PATTERN, TYPE_PATTERN, Webhook
from controller.services.agents import ID_PATTERN
from controller.services.webhooks import WebhookSpec
from controller.storage.webhooks import Delivery

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

ADMINS = authorize(Role.ADMIN)

WebhookId = Annotated[UUID, Path(description="The webhook's id")]
DeliveryId = Annotated[UUID, Path(description="The delivery's id")]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TYPE_PATTERN)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH,
                     description="http:// or https:// URL the deliveries are POSTed to")
    description: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")
    topics: list[Topic] = Field(default_factory=list, max_length=len(Topic),
                                description="Only entries of these topics (none: every topic)")
    types: list[EventType] = Field(default_factory=list, max_length=50,
                                   description="Only these types; one ending in '.' is a prefix "
                                               "(`call.`); none: every type")
    queue: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN,
                              description="Only entries about this queue")
    agent_id: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN,
                                 description="Only entries about this agent")
    enabled: StrictBool = True
    secret: str | None = Field(None, pattern=SECRET_PATTERN,
                               description="The signing secret (16-128 printable characters); "
                                           "made for you when left out on create, kept on replace")

    def spec(self) -> WebhookSpec:
        return WebhookSpec(url=self.url, description=self.description,
                           topics=tuple(dict.fromkeys(t.value for t in self.topics)),
                           types=tuple(dict.fromkeys(self.types)), queue=self.queue, agent_id=self.agent_id,
                           enabled=self.enabled, secret=self.secret)


class WebhookOut(BaseModel):
    id: UUID
    url: str
    description: str
    topics: list[str]
    types: list[str]
    queue: str | None
    agent_id: str | None
    enabled: bool
    consecutive_failures: int = Field(description="Attempts in a row the receiver failed")
    suspended_until: datetime | None = Field(
        description="While the receiver keeps failing, deliveries wait until then (one probe per window)")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls(id=webhook.id, url=webhook.url, description=webhook.description,
                   topics=list(webhook.topics), types=list(webhook.types), queue=webhook.queue,
                   agent_id=webhook.agent_id,
                   enabled=webhook.enabled, consecutive_failures=webhook.consecutive_failures,
                   suspended_until=webhook.suspended_until, created_at=webhook.created_at,
                   updated_at=webhook.updated_at)


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret; shown only now")

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookWithSecret:
        return cls(**WebhookOut.of(webhook).model_dump(), secret=webhook.secret)


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None
    outcome: Literal["delivered", "retry", "failed"]


class DeliveryOut(BaseModel):
    id: UUID
    webhook_id: UUID
    seq: int = Field(description="The feed entry's sequence number")
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="While pending: when the next attempt is due")
    last_status_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body sent (the feed entry)")
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(id=delivery.id, webhook_id=delivery.webhook_id, seq=delivery.seq,
                   event_type=delivery.event_type, status=delivery.status,  # type: ignore[arg-type]
                   attempts=delivery.attempts,
                   next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
                   last_status_code=delivery.last_status_code, last_latency_ms=delivery.last_latency_ms,
                   last_error=delivery.last_error, created_at=delivery.created_at,
                   delivered_at=delivery.delivered_at, payload=delivery.payload,
                   attempt_log=[AttemptOut.model_validate(a) for a in delivery.attempt_log])


@router.post("", status_code=201, response_model=WebhookWithSecret,
             summary="Make a webhook; the answer shows its signing secret, once",
             responses=problems(400, 401, 403, 422, 503))
async def create_webhook(body: WebhookIn, runtime: Runtime = Depends(get_runtime),
                         _: Principal = Depends(ADMINS)) -> WebhookWithSecret:
    return WebhookWithSecret.of(await runtime.webhooks.create(body.spec()))


@router.get("", response_model=list[WebhookOut], summary="Webhooks (without their secrets)",
            responses=problems(401, 403, 503))
async def list_webhooks(runtime: Runtime = Depends(get_runtime),
                        _: Principal = Depends(ADMINS)) -> list[WebhookOut]:
    return [WebhookOut.of(w) for w in await runtime.webhooks.list()]


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook",
            responses=problems(401, 403, 404, 422, 503))
async def get_webhook(webhook_id: WebhookId, runtime: Runtime = Depends(get_runtime),
                      _: Principal = Depends(ADMINS)) -> WebhookOut:
    return WebhookOut.of(await runtime.webhooks.get(webhook_id))


@router.put("/{webhook_id}", response_model=WebhookOut,
            summary="Replace a webhook (its secret is kept unless one is given); its failure count "
                    "starts again",
            responses=problems(400, 401, 403, 404, 422, 503))
async def replace_webhook(webhook_id: WebhookId, body: WebhookIn, runtime: Runtime = Depends(get_runtime),
                          _: Principal = Depends(ADMINS)) -> WebhookOut:
    return WebhookOut.of(await runtime.webhooks.replace(webhook_id, body.spec()))


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookWithSecret,
             summary="Give a webhook a new signing secret; the answer shows it, once",
             responses=problems(401, 403, 404, 422, 503))
async def rotate_secret(webhook_id: WebhookId, runtime: Runtime = Depends(get_runtime),
                        _: Principal = Depends(ADMINS)) -> WebhookWithSecret:
    return WebhookWithSecret.of(await runtime.webhooks.rotate_secret(webhook_id))


@router.delete("/{webhook_id}", status_code=204, response_class=Response,
               summary="Delete a webhook and its delivery log", responses=problems(401, 403, 404, 422, 503))
async def delete_webhook(webhook_id: WebhookId, runtime: Runtime = Depends(get_runtime),
                         _: Principal = Depends(ADMINS)) -> Response:
    await runtime.webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut],
            summary="A webhook's deliveries, newest first, each with its attempts",
            responses=problems(401, 403, 404, 422, 503))
async def list_deliveries(
    webhook_id: WebhookId,
    status: Literal["pending", "delivered", "failed"] | None = Query(None),
    before: Timestamp | None = Query(None, description="Deliveries made before this time (paging)"),
    limit: int = Query(100, ge=1, le=1000),
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(ADMINS),
) -> list[DeliveryOut]:
    return [DeliveryOut.of(d) for d in await runtime.webhooks.deliveries(webhook_id, status, before, limit)]


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryOut, summary="One delivery",
            responses=problems(401, 403, 404, 422, 503))
async def get_delivery(webhook_id: WebhookId, delivery_id: DeliveryId,
                       runtime: Runtime = Depends(get_runtime),
                       _: Principal = Depends(ADMINS)) -> DeliveryOut:
    return DeliveryOut.of(await runtime.webhooks.delivery(webhook_id, delivery_id))


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202, response_model=DeliveryOut,
             summary="Send a delivered or failed delivery again (a new round of attempts); 409 while pending",
             responses=problems(401, 403, 404, 409, 422, 503))
async def redeliver(webhook_id: WebhookId, delivery_id: DeliveryId, runtime: Runtime = Depends(get_runtime),
                    _: Principal = Depends(ADMINS)) -> DeliveryOut:
    return DeliveryOut.of(await runtime.webhooks.redeliver(webhook_id, delivery_id))
