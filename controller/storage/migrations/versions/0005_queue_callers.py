"""Queues: what happens to a waiting caller: overflow destination, join/leave when empty,
periodic announcements, and an exit key (voicemail or callback).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE queues
        -- {"action": "hangup"} | {"action": "queue", "queue": ...} | {"action": "flow", "flow": ...}
        -- | {"action": "voicemail", "mailbox": ...}; names are checked by the service on write.
        ADD COLUMN overflow         jsonb NOT NULL DEFAULT '{"action": "hangup"}'
                                    CHECK (overflow->>'action' IN ('hangup', 'queue', 'flow', 'voicemail')),
        ADD COLUMN join_when_empty  boolean NOT NULL DEFAULT false,
        ADD COLUMN leave_when_empty boolean NOT NULL DEFAULT true,
        ADD COLUMN announce_every_s integer NOT NULL DEFAULT 0 CHECK (announce_every_s >= 0),
        ADD COLUMN exit_key         text CHECK (exit_key ~ '^[0-9*#A-D]$'),
        ADD COLUMN exit_action      text CHECK (exit_action IN ('voicemail', 'callback')),
        ADD COLUMN exit_mailbox     text,
        ADD CONSTRAINT queues_exit_key_and_action CHECK ((exit_key IS NULL) = (exit_action IS NULL)),
        ADD CONSTRAINT queues_exit_mailbox CHECK ((exit_action = 'voicemail') = (exit_mailbox IS NOT NULL));
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE queues
        DROP CONSTRAINT queues_exit_mailbox,
        DROP CONSTRAINT queues_exit_key_and_action,
        DROP COLUMN exit_mailbox,
        DROP COLUMN exit_action,
        DROP COLUMN exit_key,
        DROP COLUMN announce_every_s,
        DROP COLUMN leave_when_empty,
        DROP COLUMN join_when_empty,
        DROP COLUMN overflow;
    """)
