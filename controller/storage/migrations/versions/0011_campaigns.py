"""Outbound campaigns: campaigns, their contacts and attempts, contact imports, do-not-call.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(r"""
    -- A campaign: what is dialed, how, for which queue. The settings beyond the columns
    -- (caller ID, calling windows, retry rules, dispositions, AMD, abandonment target) are one
    -- validated document, services/campaigns.py.
    CREATE TABLE campaigns (
        id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
        name        text NOT NULL,
        state       text NOT NULL DEFAULT 'draft'
                    CHECK (state IN ('draft', 'running', 'paused', 'stopped')),
        mode        text NOT NULL CHECK (mode IN ('preview', 'progressive', 'predictive', 'power')),
        ratio       double precision CHECK (ratio IS NULL OR ratio >= 1),
        queue       text NOT NULL,
        config      jsonb NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now(),
        started_at  timestamptz,
        stopped_at  timestamptz
    );

    -- One number to call in a campaign (numbers are unique per campaign: duplicates merge).
    -- ``state`` is where it is in the dialing cycle; ``timezones`` are the zones its calling
    -- windows are checked in (several when the number does not tell which: all must be open).
    CREATE TABLE campaign_contacts (
        id                bigserial PRIMARY KEY,
        campaign_id       text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        number            text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
        timezones         text[] NOT NULL CHECK (cardinality(timezones) >= 1),
        timezone_source   text NOT NULL CHECK (timezone_source IN ('column', 'number', 'campaign')),
        area_key          text NOT NULL,
        fields            jsonb NOT NULL DEFAULT '{}',
        state             text NOT NULL DEFAULT 'ready'
                          CHECK (state IN ('ready', 'queued', 'dialing', 'done', 'exhausted', 'dnc')),
        attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        outcome_counts    jsonb NOT NULL DEFAULT '{}',
        last_outcome      text,
        last_attempt_at   timestamptz,
        next_attempt_at   timestamptz NOT NULL DEFAULT now(),
        callback_at       timestamptz,
        callback_agent_id text,
        queued_at         timestamptz,
        import_id         uuid,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now(),
        UNIQUE (campaign_id, number)
    );
    CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, next_attempt_at)
        WHERE state = 'ready';
    CREATE INDEX campaign_contacts_queued ON campaign_contacts (campaign_id, queued_at)
        WHERE state = 'queued';
    CREATE INDEX campaign_contacts_state ON campaign_contacts (campaign_id, state);

    -- One try at a contact: opened when the dialer takes the contact, closed with its outcome.
    CREATE TABLE campaign_attempts (
        id           uuid PRIMARY KEY,
        campaign_id  text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        contact_id   bigint NOT NULL REFERENCES campaign_contacts (id) ON DELETE CASCADE,
        number       text NOT NULL,
        caller_id    text,
        agent_id     text,
        started_at   timestamptz NOT NULL DEFAULT now(),
        ended_at     timestamptz,
        outcome      text CHECK (outcome IN ('answered', 'busy', 'no_answer', 'machine', 'failed',
                                             'abandoned', 'callback', 'cancelled')),
        reason       text,
        disposition  text,
        call_id      text,
        callback_at  timestamptz
    );
    CREATE INDEX campaign_attempts_contact ON campaign_attempts (contact_id, started_at);
    CREATE INDEX campaign_attempts_campaign ON campaign_attempts (campaign_id, started_at);

    -- A CSV upload of contacts. The file waits in ``payload`` until a worker (or the request,
    -- for a small one) has read it; ``rows_done`` lets a resumed import skip what was done.
    CREATE TABLE contact_imports (
        id            uuid PRIMARY KEY,
        campaign_id   text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        state         text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
        file_name     text,
        mapping       jsonb NOT NULL,
        payload       bytea,
        total_rows    integer NOT NULL CHECK (total_rows >= 0),
        rows_done     integer NOT NULL DEFAULT 0,
        imported      integer NOT NULL DEFAULT 0,
        merged        integer NOT NULL DEFAULT 0,
        invalid       integer NOT NULL DEFAULT 0,
        errors        jsonb NOT NULL DEFAULT '[]',
        error         text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        started_at    timestamptz,
        heartbeat_at  timestamptz,
        finished_at   timestamptz
    );
    CREATE INDEX contact_imports_campaign ON contact_imports (campaign_id, created_at);

    -- Numbers never to dial: global (campaign_id NULL) or for one campaign.
    CREATE TABLE dnc_numbers (
        id          bigserial PRIMARY KEY,
        number      text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
        campaign_id text REFERENCES campaigns (id) ON DELETE CASCADE,
        reason      text,
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX dnc_numbers_global ON dnc_numbers (number) WHERE campaign_id IS NULL;
    CREATE UNIQUE INDEX dnc_numbers_campaign ON dnc_numbers (campaign_id, number)
        WHERE campaign_id IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE dnc_numbers;
    DROP TABLE contact_imports;
    DROP TABLE campaign_attempts;
    DROP TABLE campaign_contacts;
    DROP TABLE campaigns;
    """)
