"""Call control: dispositions of calls, and API keys linked to the agent they act for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- An agent key acts for one agent: it controls that agent's calls and no others.
    ALTER TABLE api_keys ADD COLUMN agent_id text REFERENCES agents (id);
    ALTER TABLE api_keys ADD CONSTRAINT api_keys_agent_only_for_agents
        CHECK (agent_id IS NULL OR role = 'agent');

    -- How a call ended, as its agent or a CRM records it (one per call; a new one replaces it).
    -- No foreign key to calls: a live call's row may still be on its way to Postgres (the
    -- record writer), and the service checks that the call exists.
    CREATE TABLE call_dispositions (
        call_id    text PRIMARY KEY,
        code       text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
        notes      text NOT NULL DEFAULT '',
        follow_up  boolean NOT NULL DEFAULT false,
        key_id     uuid REFERENCES api_keys (id),
        agent_id   text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE call_dispositions;
    ALTER TABLE api_keys DROP CONSTRAINT api_keys_agent_only_for_agents;
    ALTER TABLE api_keys DROP COLUMN agent_id;
    """)
