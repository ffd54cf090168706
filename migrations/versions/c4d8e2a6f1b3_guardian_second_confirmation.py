"""a guardian's pending second confirmation ("email plus") on the guardian link

Revision ID: c4d8e2a6f1b3
Revises: 0a7efe0c7ac9
Create Date: 2026-12-05 23:40:00

"""
import sqlalchemy as sa
from alembic import op


revision = 'c4d8e2a6f1b3'
down_revision = '0a7efe0c7ac9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('guardian_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_purpose', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('pending_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pending_send_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pending_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f('uq_guardian_link_pending_token_hash'), ['pending_token_hash']
        )


def downgrade():
    with op.batch_alter_table('guardian_link', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_guardian_link_pending_token_hash'), type_='unique')
        batch_op.drop_column('pending_expires_at')
        batch_op.drop_column('pending_send_at')
        batch_op.drop_column('pending_token_hash')
        batch_op.drop_column('pending_purpose')
