"""join the trust branches

Revision ID: 0a7efe0c7ac9
Revises: a7c3e9d2b514, a7c31e5d9b02, a51e7c0d9b23, a7c3e9f1b2d4, b6e2d4f8a1c3
Create Date: 2026-12-05 23:16:44.477823

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0a7efe0c7ac9'
down_revision = ('a7c3e9d2b514', 'a7c31e5d9b02', 'a51e7c0d9b23', 'a7c3e9f1b2d4', 'b6e2d4f8a1c3')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
