"""Reports: indexes for one number's interaction history and for the queue entries of a period.

The history of a number (GET /v1/reports/history) looks it up in calls (as caller or as dialed
number), voicemails and campaign attempts; the queue report finds the period's ``QueueEntered``
events; the open items are the dispositions asking for a follow-up.
Without these, each is a scan of the whole table.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE INDEX calls_dialed ON calls (dialed);
    CREATE INDEX voicemails_caller_number ON voicemails (caller_number) WHERE deleted_at IS NULL;
    CREATE INDEX campaign_attempts_number ON campaign_attempts (number, started_at);
    CREATE INDEX call_events_queue_entered ON call_events (at) WHERE kind = 'QueueEntered';
    CREATE INDEX call_dispositions_open ON call_dispositions (updated_at, call_id) WHERE follow_up;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX call_dispositions_open;
    DROP INDEX call_events_queue_entered;
    DROP INDEX campaign_attempts_number;
    DROP INDEX voicemails_caller_number;
    DROP INDEX calls_dialed;
    """)
