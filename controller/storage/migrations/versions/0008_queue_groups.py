"""Queues: groups of agents as members, beside agents listed one by one.

A group member stands for every agent whose ``groups`` name the group, resolved whenever agents
or queues change (controller/engines/membership.py). Agent members and group members share one
member order (``position``), so a queue's members can be listed as one list.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- No foreign key: a group exists by being named in agents' groups, and a queue may name a
    -- group that has no agent yet.
    CREATE TABLE queue_group_members (
        queue      text NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
        group_name text NOT NULL CHECK (group_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
        penalty    integer NOT NULL CHECK (penalty >= 0),
        position   integer NOT NULL CHECK (position >= 0),
        PRIMARY KEY (queue, group_name)
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE queue_group_members")
