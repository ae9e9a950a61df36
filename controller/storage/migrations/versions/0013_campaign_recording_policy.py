"""Recording policies per campaign (beside queue and agent): a campaign's calls carry its id.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE recording_policies DROP CONSTRAINT recording_policies_scope_check;
    ALTER TABLE recording_policies ADD CONSTRAINT recording_policies_scope_check
        CHECK (scope IN ('queue', 'agent', 'campaign'));
    """)


def downgrade() -> None:
    op.execute("""
    DELETE FROM recording_policies WHERE scope = 'campaign';
    ALTER TABLE recording_policies DROP CONSTRAINT recording_policies_scope_check;
    ALTER TABLE recording_policies ADD CONSTRAINT recording_policies_scope_check
        CHECK (scope IN ('queue', 'agent'));
    """)
