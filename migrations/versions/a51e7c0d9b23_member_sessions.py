"""server-side sessions: one row per signed-in device

The signed session cookie carries a random key; this table holds its SHA-256, so that
signing out (one device or all) ends the session on the server and a copied cookie is
refused afterwards.

Revision ID: a51e7c0d9b23
Revises: 9e2b6c0d4f18
Create Date: 2026-12-05 22:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a51e7c0d9b23'
down_revision = '9e2b6c0d4f18'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('member_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_digest', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_member_session_member_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_session')),
    sa.UniqueConstraint('key_digest', name=op.f('uq_member_session_key_digest'))
    )
    with op.batch_alter_table('member_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_session_member_id'), ['member_id'], unique=False)


def downgrade():
    with op.batch_alter_table('member_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_session_member_id'))

    op.drop_table('member_session')
