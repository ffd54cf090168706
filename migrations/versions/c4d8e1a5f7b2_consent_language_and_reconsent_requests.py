"""consent language on each ledger event, and re-consent requests

consent_event.locale is the language of the page a choice was made on. Events recorded
before it was kept stay NULL ("not recorded"): guessing a language for them would put a claim
in the ledger that nobody saw, and a NULL keeps their hashes exactly as they were made.

reconsent_request is append-only: one row per member and purpose each time a published
policy version asks a member again about a yes they had given.

Revision ID: c4d8e1a5f7b2
Revises: c4d8e2a6f1b3
Create Date: 2026-12-05 23:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4d8e1a5f7b2'
down_revision = 'c4d8e2a6f1b3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=16), nullable=True))
    op.create_table(
        'reconsent_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=32), nullable=False),
        sa.Column('policy_version_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['consent_event.id'],
                                name=op.f('fk_reconsent_request_event_id_consent_event')),
        sa.ForeignKeyConstraint(['member_id'], ['member.id'],
                                name=op.f('fk_reconsent_request_member_id_member')),
        sa.ForeignKeyConstraint(['policy_version_id'], ['policy_version.id'],
                                name=op.f('fk_reconsent_request_policy_version_id_policy_version')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reconsent_request')),
        sa.UniqueConstraint('member_id', 'purpose', 'policy_version_id',
                            name=op.f('uq_reconsent_request_member_id_purpose_policy_version_id')),
    )
    with op.batch_alter_table('reconsent_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconsent_request_member_id'), ['member_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('reconsent_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconsent_request_member_id'))
    op.drop_table('reconsent_request')
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.drop_column('locale')
