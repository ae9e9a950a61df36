"""Inbound: IVR flows (versioned), number routes, schedules, prompts, voicemails; calls remember
the flow version and route they ran.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- A flow is a name and a pointer to its current version. Deleting is soft (calls in progress
    -- keep running their version); creating a deleted name again revives it with a new version,
    -- so (name, version) names one document forever.
    CREATE TABLE flows (
        id              uuid PRIMARY KEY,
        name            text NOT NULL UNIQUE,
        current_version integer NOT NULL CHECK (current_version >= 1),
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        deleted_at      timestamptz
    );

    CREATE TABLE flow_versions (
        flow_id    uuid NOT NULL REFERENCES flows (id),
        version    integer NOT NULL CHECK (version >= 1),
        document   jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by uuid REFERENCES api_keys (id),
        PRIMARY KEY (flow_id, version)
    );

    -- Versions are immutable: a write makes a new one.
    CREATE FUNCTION flow_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'flow versions are immutable';
    END
    $$;
    CREATE TRIGGER flow_versions_immutable BEFORE UPDATE OR DELETE ON flow_versions
        FOR EACH ROW EXECUTE FUNCTION flow_versions_immutable();

    CREATE TABLE number_routes (
        id             uuid PRIMARY KEY,
        name           text NOT NULL UNIQUE,
        pattern        text NOT NULL UNIQUE,
        flow_name      text NOT NULL,
        max_concurrent integer CHECK (max_concurrent >= 1),
        overflow       jsonb,
        priority       integer NOT NULL DEFAULT 0,
        enabled        boolean NOT NULL DEFAULT true,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE schedules (
        id         uuid PRIMARY KEY,
        name       text NOT NULL UNIQUE,
        document   jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE prompts (
        id                uuid PRIMARY KEY,
        name              text NOT NULL UNIQUE,
        file_name         text NOT NULL,
        duration_s        double precision NOT NULL,
        sample_rate       integer NOT NULL,
        rms_db            double precision NOT NULL,
        peak_db           double precision NOT NULL,
        size_bytes        bigint NOT NULL,
        original_filename text,
        created_at        timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE voicemails (
        id            uuid PRIMARY KEY,
        mailbox       text NOT NULL,
        call_id       text,
        caller_number text NOT NULL DEFAULT '',
        caller_name   text NOT NULL DEFAULT '',
        duration_s    double precision NOT NULL DEFAULT 0,
        file_name     text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        heard_at      timestamptz,
        deleted_at    timestamptz
    );
    CREATE INDEX voicemails_mailbox ON voicemails (mailbox, created_at) WHERE deleted_at IS NULL;
    CREATE INDEX voicemails_created_at ON voicemails (created_at) WHERE deleted_at IS NULL;

    ALTER TABLE calls
        ADD COLUMN flow_name text,
        ADD COLUMN flow_version integer,
        ADD COLUMN route_name text;
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE calls
        DROP COLUMN route_name,
        DROP COLUMN flow_version,
        DROP COLUMN flow_name;
    DROP TABLE voicemails;
    DROP TABLE prompts;
    DROP TABLE schedules;
    DROP TABLE number_routes;
    DROP TABLE flow_versions;
    DROP FUNCTION flow_versions_immutable();
    DROP TABLE flows;
    """)
