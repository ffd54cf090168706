"""sealed secrets in the outbox: codes and links go through the worker

A code's or link's real message is written to the outbox sealed (encrypted under a key derived
from SECRET_KEY) beside the masked copy, so the worker delivers it after commit instead of the
request; a small partial index lets the claim take those rows first.

Revision ID: a7c31e5d9b02
Revises: 9e2b6c0d4f18
Create Date: 2026-12-05 22:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a7c31e5d9b02'
down_revision = '9e2b6c0d4f18'
branch_labels = None
depends_on = None

SECRET_TO_DELIVER = sa.text("status IN ('pending', 'sending') AND secret IS NOT NULL")


def upgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret', sa.Text(), nullable=True))
        batch_op.create_index('ix_notification_secret_due', ['next_attempt_at', 'id'],
                              unique=False, sqlite_where=SECRET_TO_DELIVER,
                              postgresql_where=SECRET_TO_DELIVER)


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_secret_due')
        batch_op.drop_column('secret')
