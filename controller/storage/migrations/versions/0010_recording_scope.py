"""Recording scope: supervisor keys limited to queues; recordings that follow the call (every
agent and queue they passed, the controller process that records them, each party on its own
channel on request).

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-23
"""

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- A supervisor key may be limited to some queues (empty: the whole floor). Names, not
    -- foreign keys: a queue deleted and made again keeps its supervisors.
    ALTER TABLE api_keys ADD COLUMN queues text[] NOT NULL DEFAULT '{}';
    ALTER TABLE api_keys ADD CONSTRAINT api_keys_queues_only_for_supervisors
        CHECK (queues = '{}' OR role = 'supervisor');

    -- Whether the parties are also kept each on its own channel (a stereo file).
    ALTER TABLE recording_policies ADD COLUMN dual_channel boolean NOT NULL DEFAULT false;

    -- A recording follows its call across transfers and holds: it records the caller's (or
    -- customer's) leg, whatever bridge that leg is in. agents and queues are every agent and
    -- queue the call was connected to while it was recorded (who may listen to it); app is
    -- the controller process (Stasis application) that recorded it, which alone may finish
    -- it after a restart.
    ALTER TABLE recordings
        ALTER COLUMN bridge_id DROP NOT NULL,
        ADD COLUMN leg_id          text,
        ADD COLUMN app             text,
        ADD COLUMN agents          text[] NOT NULL DEFAULT '{}',
        ADD COLUMN queues          text[] NOT NULL DEFAULT '{}',
        ADD COLUMN campaign        text,
        ADD COLUMN dual_channel    boolean NOT NULL DEFAULT false,
        ADD COLUMN dual_duration_s double precision CHECK (dual_duration_s >= 0),
        ADD COLUMN dual_size_bytes bigint CHECK (dual_size_bytes >= 0),
        ADD COLUMN dual_sha256     text CHECK (dual_sha256 ~ '^[0-9a-f]{64}$'),
        ADD COLUMN dual_error      text;
    UPDATE recordings SET agents = ARRAY[agent_id] WHERE agent_id IS NOT NULL;
    UPDATE recordings SET queues = ARRAY[queue] WHERE queue IS NOT NULL;
    CREATE INDEX recordings_agents ON recordings USING gin (agents);
    CREATE INDEX recordings_queues ON recordings USING gin (queues);
    CREATE INDEX recordings_campaign ON recordings (campaign, started_at);
    CREATE INDEX recordings_in_progress ON recordings (app) WHERE state IN ('recording', 'paused');
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX recordings_in_progress;
    DROP INDEX recordings_campaign;
    DROP INDEX recordings_queues;
    DROP INDEX recordings_agents;
    UPDATE recordings SET bridge_id = coalesce(bridge_id, '');
    ALTER TABLE recordings
        ALTER COLUMN bridge_id SET NOT NULL,
        DROP COLUMN leg_id,
        DROP COLUMN app,
        DROP COLUMN agents,
        DROP COLUMN queues,
        DROP COLUMN campaign,
        DROP COLUMN dual_channel,
        DROP COLUMN dual_duration_s,
        DROP COLUMN dual_size_bytes,
        DROP COLUMN dual_sha256,
        DROP COLUMN dual_error;
    ALTER TABLE recording_policies DROP COLUMN dual_channel;
    ALTER TABLE api_keys DROP CONSTRAINT api_keys_queues_only_for_supervisors;
    ALTER TABLE api_keys DROP COLUMN queues;
    """)
