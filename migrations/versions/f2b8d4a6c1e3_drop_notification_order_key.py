"""drop notification.order_key

Webhook deliveries left the outbox (each subscription keeps a cursor on the change feed), and
nothing else asked for ordered delivery: the column and its index were written by nobody.

Revision ID: f2b8d4a6c1e3
Revises: e7b3c9d2a4f6
Create Date: 2026-12-06 05:35:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'f2b8d4a6c1e3'
down_revision = 'e7b3c9d2a4f6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_order_key')
        batch_op.drop_column('order_key')


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_key', sa.String(length=80), nullable=True))
        batch_op.create_index(
            'ix_notification_order_key', ['order_key'], unique=False,
            sqlite_where=sa.text('order_key IS NOT NULL'),
            postgresql_where=sa.text('order_key IS NOT NULL'))
