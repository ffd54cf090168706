"""Request ids on ledger events and erasure notices, carried into their webhook deliveries

Revision ID: a3f7c1e9d2b4
Revises: d5e9a1b3c7f4
Create Date: 2026-12-06 03:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "a3f7c1e9d2b4"
down_revision = "d5e9a1b3c7f4"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("consent_event") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("change_event") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("change_event") as batch:
        batch.drop_column("request_id")
    with op.batch_alter_table("consent_event") as batch:
        batch.drop_column("request_id")
