"""wrong one-time codes counted per account, and the lockout they lead to

Revision ID: a7c3e9d2b514
Revises: 9e2b6c0d4f18
Create Date: 2026-12-05 22:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a7c3e9d2b514'
down_revision = '9e2b6c0d4f18'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_failures', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('code_failures_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('code_locked_until', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('code_locked_until')
        batch_op.drop_column('code_failures_since')
        batch_op.drop_column('code_failures')
