"""partial due index in claim order; a small index for failed and dead messages

The workers' claim orders due rows by (next_attempt_at, id) under an OR of two statuses, which
the old (status, next_attempt_at) index could not serve in order: on a backlog of 100,000
pending rows each claim was a sequential scan and sort (and JIT-compiled), ~0.6 s per batch.
The new index holds only rows still to deliver, in claim order, so a claim reads one batch
(~8 ms). The staff lists of failed and dead messages keep an index of their own.

Revision ID: 9e2b6c0d4f18
Revises: 3c9d4e7f2a61
Create Date: 2026-11-25 16:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '9e2b6c0d4f18'
down_revision = '3c9d4e7f2a61'
branch_labels = None
depends_on = None

TO_DELIVER = sa.text("status IN ('pending', 'sending')")
GAVE_UP = sa.text("status IN ('failed', 'dead')")


def upgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_due')
        batch_op.create_index('ix_notification_due', ['next_attempt_at', 'id'], unique=False,
                              sqlite_where=TO_DELIVER, postgresql_where=TO_DELIVER)
        batch_op.create_index('ix_notification_gave_up', ['id'], unique=False,
                              sqlite_where=GAVE_UP, postgresql_where=GAVE_UP)


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_gave_up')
        batch_op.drop_index('ix_notification_due')
        batch_op.create_index('ix_notification_due', ['status', 'next_attempt_at'], unique=False)
