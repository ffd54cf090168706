"""policy versions in Simplified Chinese too: title, text and summary

Every version gets empty Chinese words; publishing needs them from now on. Version 1 gets the
Chinese text shipped with the app (consent_center/seed/privacy-policy.zh.txt) when its English
text is the company's policy as the seed published it: the translation belongs to that text
only, so a different version 1 stays English-only.

Revision ID: d7a3c9e2b5f1
Revises: c4d8e1a5f7b2
Create Date: 2026-12-06 02:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd7a3c9e2b5f1'
down_revision = 'c4d8e1a5f7b2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('policy_version', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('title_zh', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('body_md_zh', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('summary_zh', sa.Text(), server_default='', nullable=False))

    from consent_center.domain import Locale
    from consent_center.services.policy_text import seed_policy

    seed = seed_policy()
    version = sa.table(
        'policy_version',
        sa.column('number', sa.Integer),
        sa.column('body_md', sa.Text),
        sa.column('title_zh', sa.String),
        sa.column('body_md_zh', sa.Text),
        sa.column('summary_zh', sa.Text),
    )
    connection = op.get_bind()
    first = connection.execute(
        sa.select(version.c.body_md).where(version.c.number == 1)
    ).scalar()
    if first is not None and first.strip() == seed[Locale.EN].body_md.strip():
        chinese = seed[Locale.ZH]
        connection.execute(
            version.update()
            .where(version.c.number == 1)
            .values(title_zh=chinese.title, body_md_zh=chinese.body_md,
                    summary_zh=chinese.summary)
        )


def downgrade():
    with op.batch_alter_table('policy_version', schema=None) as batch_op:
        batch_op.drop_column('summary_zh')
        batch_op.drop_column('body_md_zh')
        batch_op.drop_column('title_zh')
