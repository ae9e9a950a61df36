"""ACD: agents, queues and their members, and the append-only agent state log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- An agent's id is chosen by the admin (it is what people type and what logs show).
    -- Deleting is soft: the state log keeps naming the agent, and creating the id again revives
    -- it. The device is an Asterisk dial string (PJSIP/1001, Local/1001@agents): no whitespace,
    -- control characters, commas or '&', which would change the meaning of a Dial.
    CREATE TABLE agents (
        id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
        name       text NOT NULL,
        device     text NOT NULL CHECK (device !~ '[[:space:][:cntrl:],&]'),
        skills     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(skills) = 'object'),
        groups     text[] NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
    );

    CREATE TABLE queues (
        name                    text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
        strategy                text NOT NULL CHECK (strategy IN (
                                    'ring_all', 'longest_idle', 'round_robin', 'fewest_calls',
                                    'least_talk_time', 'random', 'linear', 'skills_based')),
        ring_timeout_s          integer NOT NULL CHECK (ring_timeout_s >= 1),
        wrap_up_s               integer NOT NULL CHECK (wrap_up_s >= 0),
        max_misses_before_pause integer NOT NULL CHECK (max_misses_before_pause >= 0),
        service_level_s         integer NOT NULL CHECK (service_level_s >= 1),
        max_wait_s              integer CHECK (max_wait_s >= 1),
        max_length              integer CHECK (max_length >= 1),
        max_penalty             integer CHECK (max_penalty >= 0),
        -- [{"after_wait_s": 30, "max_penalty": 2, "min_skill_level": 3}, ...]
        rules                   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(rules) = 'array'),
        moh_class               text NOT NULL DEFAULT 'default',
        created_at              timestamptz NOT NULL DEFAULT now(),
        updated_at              timestamptz NOT NULL DEFAULT now()
    );

    -- Members in order (position), each with a penalty: lower penalties are offered first.
    -- Agents are deleted softly, and only when they are in no queue (the service checks).
    CREATE TABLE queue_members (
        queue    text NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
        agent_id text NOT NULL REFERENCES agents (id),
        penalty  integer NOT NULL CHECK (penalty >= 0),
        position integer NOT NULL CHECK (position >= 0),
        PRIMARY KEY (queue, agent_id)
    );
    CREATE INDEX queue_members_agent ON queue_members (agent_id);

    -- Every agent state change, in order; reports and the agent timeline are read from here.
    CREATE TABLE agent_state_log (
        id       bigserial PRIMARY KEY,
        agent_id text NOT NULL REFERENCES agents (id),
        at       timestamptz NOT NULL,
        state    text NOT NULL CHECK (state IN (
                     'logged_out', 'available', 'reserved', 'on_call', 'wrap_up', 'paused',
                     'unavailable')),
        reason   text NOT NULL DEFAULT '',
        queue    text,
        call_id  text
    );
    CREATE INDEX agent_state_log_agent_at ON agent_state_log (agent_id, at);

    CREATE FUNCTION agent_state_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the agent state log is append-only';
    END
    $$;
    CREATE TRIGGER agent_state_log_append_only BEFORE UPDATE OR DELETE ON agent_state_log
        FOR EACH ROW EXECUTE FUNCTION agent_state_log_append_only();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE agent_state_log;
    DROP FUNCTION agent_state_log_append_only();
    DROP TABLE queue_members;
    DROP TABLE queues;
    DROP TABLE agents;
    """)
