"""Call recordings: a policy per queue and per agent, and one row per recording with its metadata.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- Whether calls of a queue, or calls taken by an agent, are recorded. Keyed by name (no
    -- foreign key): a policy outlives a queue deleted and created again. An agent's policy wins
    -- over its queue's; with neither, recording is on demand.
    CREATE TABLE recording_policies (
        scope      text NOT NULL CHECK (scope IN ('queue', 'agent')),
        name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
        policy     text NOT NULL CHECK (policy IN ('always', 'on_demand', 'never')),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (scope, name)
    );

    -- One recording of a call's bridge (started by policy or through the API). The file is
    -- <recordings dir>/<name>.<format>; its metadata is filled in when the switch finishes it.
    CREATE TABLE recordings (
        id            uuid PRIMARY KEY,
        name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
        call_id       text NOT NULL,
        bridge_id     text NOT NULL,
        queue         text,
        agent_id      text,
        caller_number text NOT NULL DEFAULT '',
        started_by    text NOT NULL CHECK (started_by IN ('policy', 'api')),
        state         text NOT NULL CHECK (state IN ('recording', 'paused', 'finished', 'failed')),
        format        text NOT NULL CHECK (format IN ('wav')),
        started_at    timestamptz NOT NULL,
        ended_at      timestamptz,
        duration_s    double precision CHECK (duration_s >= 0),
        size_bytes    bigint CHECK (size_bytes >= 0),
        sha256        text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        error         text,
        deleted_at    timestamptz
    );
    CREATE INDEX recordings_started_at ON recordings (started_at);
    CREATE INDEX recordings_call_id ON recordings (call_id);
    CREATE INDEX recordings_agent ON recordings (agent_id, started_at);
    CREATE INDEX recordings_queue ON recordings (queue, started_at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE recordings;
    DROP TABLE recording_policies;
    """)
