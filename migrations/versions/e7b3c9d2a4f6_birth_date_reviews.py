"""birth date corrections held for staff review

A member's correction of their date of birth that crosses MINOR_AGE waits here for staff to
approve or refuse it; other corrections take effect at once and need no row.

Revision ID: e7b3c9d2a4f6
Revises: a3f7c1e9d2b4
Create Date: 2026-12-06 02:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'e7b3c9d2a4f6'
down_revision = 'a3f7c1e9d2b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'birth_date_review',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('requested_birth_date', sa.Date(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['decided_by_id'], ['member.id'],
                                name=op.f('fk_birth_date_review_decided_by_id_member')),
        sa.ForeignKeyConstraint(['member_id'], ['member.id'],
                                name=op.f('fk_birth_date_review_member_id_member')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_birth_date_review')),
        sa.UniqueConstraint('public_id', name=op.f('uq_birth_date_review_public_id')),
    )
    with op.batch_alter_table('birth_date_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_birth_date_review_member_id'), ['member_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_birth_date_review_status'), ['status'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('birth_date_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_birth_date_review_status'))
        batch_op.drop_index(batch_op.f('ix_birth_date_review_member_id'))
    op.drop_table('birth_date_review')
