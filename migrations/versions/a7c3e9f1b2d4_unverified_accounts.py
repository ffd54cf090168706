"""unverified accounts: registration ticks held until the contact is verified

A registration's optional purposes wait in member.pending_purposes and reach the consent
ledger only when the contact is verified. A member who never verified a contact is not
active: existing ones become 'unverified' (staff accounts, made by an operator, and minors a
verified guardian approved, stay as they are), so they leave audiences, the API's usable
answer and notices, and `flask members purge-unverified` erases them once they are older than
UNVERIFIED_RETENTION_DAYS.

Revision ID: a7c3e9f1b2d4
Revises: 9e2b6c0d4f18
Create Date: 2026-12-05 22:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a7c3e9f1b2d4'
down_revision = '9e2b6c0d4f18'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_purposes', sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE member SET status = 'unverified' "
        "WHERE status = 'active' AND role = 'member' "
        "AND email_verified_at IS NULL AND phone_verified_at IS NULL "
        "AND id NOT IN (SELECT minor_id FROM guardian_link "
        "WHERE minor_id IS NOT NULL AND status IN ('approved', 'ended'))"
    )


def downgrade():
    op.execute("UPDATE member SET status = 'active' WHERE status = 'unverified'")
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('pending_purposes')
