"""the request that wrote each outbox row

notification.request_id is the id of the HTTP request (or NULL for a command or the worker)
whose transaction wrote the message: the worker logs it when it sends the message and a
webhook delivery carries it as X-Request-Id, so an operator can follow one request from the
access log to every message it caused. A random or load-balancer id; no personal data.

Revision ID: e7a1c9d3b5f2
Revises: d7a3c9e2b5f1
Create Date: 2026-12-06 02:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'e7a1c9d3b5f2'
down_revision = 'd7a3c9e2b5f1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('request_id')
