"""Agents: an optional device whose state tells whether the agent can be reached.

A dial string such as Local/... or a number through a trunk has no device state of its own;
``state_device`` (Custom:agent7, PJSIP/1001) names the one to follow instead.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE agents ADD COLUMN state_device text
        CHECK (state_device ~ '^[A-Za-z][A-Za-z0-9_-]{0,31}[/:][A-Za-z0-9_.@+*#-]{1,200}$');
    """)


def downgrade() -> None:
    op.execute("ALTER TABLE agents DROP COLUMN state_device")
