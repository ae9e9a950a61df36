"""Calls, legs and their event log (the CDR); API keys; audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE calls (
        id                text PRIMARY KEY,
        direction         text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
        state             text NOT NULL CHECK (state IN ('ringing', 'answered', 'ended')),
        switch            text NOT NULL,
        caller_number     text NOT NULL DEFAULT '',
        caller_name       text NOT NULL DEFAULT '',
        dialed            text NOT NULL DEFAULT '',
        started_at        timestamptz NOT NULL,
        answered_at       timestamptz,
        ended_at          timestamptz,
        hangup_cause      integer,
        hangup_cause_text text,
        data              jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE INDEX calls_started_at ON calls (started_at);
    CREATE INDEX calls_not_ended ON calls (state) WHERE state <> 'ended';
    CREATE INDEX calls_caller_number ON calls (caller_number);

    CREATE TABLE legs (
        id                text PRIMARY KEY,
        call_id           text NOT NULL REFERENCES calls (id),
        role              text NOT NULL,
        channel_name      text NOT NULL,
        state             text NOT NULL CHECK (state IN ('ringing', 'up', 'ended')),
        created_at        timestamptz NOT NULL,
        answered_at       timestamptz,
        ended_at          timestamptz,
        hangup_cause      integer,
        hangup_cause_text text
    );
    CREATE INDEX legs_call_id ON legs (call_id);

    -- Append-only: every fact about a call, in order. Live stats and reports derive from it.
    CREATE TABLE call_events (
        id      bigserial PRIMARY KEY,
        call_id text NOT NULL,
        leg_id  text,
        at      timestamptz NOT NULL,
        kind    text NOT NULL,
        data    jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE INDEX call_events_call_id ON call_events (call_id, id);
    CREATE INDEX call_events_at ON call_events (at);

    CREATE TABLE api_keys (
        id           uuid PRIMARY KEY,
        name         text NOT NULL,
        role         text NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'integration')),
        prefix       text NOT NULL UNIQUE,
        secret_hash  bytea NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        created_by   uuid REFERENCES api_keys (id),
        revoked_at   timestamptz,
        last_used_at timestamptz
    );

    CREATE TABLE audit_log (
        id         bigserial PRIMARY KEY,
        at         timestamptz NOT NULL,
        key_id     uuid,
        key_name   text,
        role       text,
        method     text NOT NULL,
        path       text NOT NULL,
        action     text NOT NULL,
        target     text,
        status     integer NOT NULL,
        client_ip  text,
        request_id text,
        detail     jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    CREATE INDEX audit_log_key_id ON audit_log (key_id, at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE audit_log;
    DROP TABLE api_keys;
    DROP TABLE call_events;
    DROP TABLE legs;
    DROP TABLE calls;
    """)
