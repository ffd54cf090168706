"""partial indexes on notification provider_id and order_key

A bulk fan-out inserts rows with neither value; partial indexes skip them, which makes
enqueueing 100,000 notices measurably cheaper.

Revision ID: 5b7e2c1d9a40
Revises: 83d2048c5b8d
Create Date: 2026-11-25 15:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5b7e2c1d9a40'
down_revision = '83d2048c5b8d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_provider_id')
        batch_op.drop_index('ix_notification_order_key')
        batch_op.create_index(
            'ix_notification_provider_id', ['provider_id'], unique=False,
            sqlite_where=sa.text('provider_id IS NOT NULL'),
            postgresql_where=sa.text('provider_id IS NOT NULL'))
        batch_op.create_index(
            'ix_notification_order_key', ['order_key'], unique=False,
            sqlite_where=sa.text('order_key IS NOT NULL'),
            postgresql_where=sa.text('order_key IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_order_key')
        batch_op.drop_index('ix_notification_provider_id')
        batch_op.create_index('ix_notification_order_key', ['order_key'], unique=False)
        batch_op.create_index('ix_notification_provider_id', ['provider_id'], unique=False)
