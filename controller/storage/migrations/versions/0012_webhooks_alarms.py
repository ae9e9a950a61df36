"""Webhooks (subscriptions, deliveries with every attempt, the feed cursor of the dispatcher) and
alarms (rules per queue and for the system, raised and cleared alarms).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- A receiver of feed entries. The secret signs every delivery (HMAC-SHA256); it is kept in
    -- clear because signing needs it, and shown by the API only when made.
    -- consecutive_failures and suspended_until are the circuit breaker: a receiver that keeps
    -- failing is tried once per window instead of once per delivery.
    CREATE TABLE webhooks (
        id                   uuid PRIMARY KEY,
        description          text NOT NULL DEFAULT '',
        url                  text NOT NULL CHECK (url ~ '^https?://'),
        topics               text[] NOT NULL DEFAULT '{}',
        types                text[] NOT NULL DEFAULT '{}',
        queue                text,
        agent_id             text,
        secret               text NOT NULL,
        enabled              boolean NOT NULL DEFAULT true,
        consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
        suspended_until      timestamptz,
        created_at           timestamptz NOT NULL DEFAULT now(),
        updated_at           timestamptz NOT NULL DEFAULT now()
    );

    -- One feed entry for one webhook. (webhook_id, feed_epoch, seq) is unique: an entry read
    -- twice (two dispatchers, a restart before the cursor moved) makes one delivery.
    -- round_* count the attempts since the delivery was made or last redelivered.
    CREATE TABLE webhook_deliveries (
        id                 uuid PRIMARY KEY,
        webhook_id         uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        feed_epoch         integer NOT NULL,
        seq                bigint NOT NULL,
        event_type         text NOT NULL,
        payload            jsonb NOT NULL,
        status             text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        round_attempts     integer NOT NULL DEFAULT 0 CHECK (round_attempts >= 0),
        round_started_at   timestamptz NOT NULL DEFAULT now(),
        next_attempt_at    timestamptz NOT NULL DEFAULT now(),
        claimed_until      timestamptz,
        last_status_code   integer,
        last_latency_ms    double precision,
        last_error         text,
        created_at         timestamptz NOT NULL DEFAULT now(),
        delivered_at       timestamptz,
        updated_at         timestamptz NOT NULL DEFAULT now(),
        UNIQUE (webhook_id, feed_epoch, seq)
    );
    CREATE INDEX webhook_deliveries_listing ON webhook_deliveries (webhook_id, created_at DESC);
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

    -- Every attempt of a delivery: what the receiver answered (or why nothing), and how long it took.
    CREATE TABLE webhook_attempts (
        delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        attempt      integer NOT NULL CHECK (attempt >= 1),
        at           timestamptz NOT NULL,
        status_code  integer,
        latency_ms   double precision,
        error        text,
        outcome      text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
        PRIMARY KEY (delivery_id, attempt)
    );

    -- How far the cluster's dispatcher has read the feed (written in the transaction that makes
    -- the deliveries of what it read). The epoch changes when the feed in Redis starts again.
    CREATE TABLE webhook_feed_cursor (
        cluster    text PRIMARY KEY,
        feed_epoch integer NOT NULL DEFAULT 1,
        seq        bigint NOT NULL CHECK (seq >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
    );

    -- Thresholds: one rule per queue (keyed by name, like recording policies: it outlives a
    -- queue deleted and made again) and one for the system (name 'system').
    CREATE TABLE alarm_rules (
        scope      text NOT NULL CHECK (scope IN ('queue', 'system')),
        name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
        rule       jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (scope, name)
    );

    -- Raised alarms; cleared_at is null while active. At most one active alarm per kind and subject.
    CREATE TABLE alarms (
        id               uuid PRIMARY KEY,
        kind             text NOT NULL,
        subject          text NOT NULL,
        queue            text,
        severity         text NOT NULL CHECK (severity IN ('warning', 'critical')),
        message          text NOT NULL,
        value            double precision,
        threshold        double precision,
        raised_at        timestamptz NOT NULL,
        cleared_at       timestamptz,
        clear_value      double precision,
        clear_reason     text,
        acknowledged_at  timestamptz,
        acknowledged_by  text
    );
    CREATE UNIQUE INDEX alarms_one_active ON alarms (kind, subject) WHERE cleared_at IS NULL;
    CREATE INDEX alarms_raised_at ON alarms (raised_at DESC);
    CREATE INDEX alarms_queue ON alarms (queue, raised_at DESC);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE alarms;
    DROP TABLE alarm_rules;
    DROP TABLE webhook_feed_cursor;
    DROP TABLE webhook_attempts;
    DROP TABLE webhook_deliveries;
    DROP TABLE webhooks;
    """)
