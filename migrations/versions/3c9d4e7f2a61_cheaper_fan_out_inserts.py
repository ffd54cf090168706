"""cheaper fan-out inserts: one composite foreign key, bytewise keys

A fan-out row points at its content and its fan-out; one foreign key on (content_id,
fan_out_id) to notification_content (id, fan_out_id) replaces the two single-column ones, so
each inserted row costs one referential-integrity check instead of two. fan_out_id still
references fan_out, through notification_content.fan_out_id; the pair must now also agree,
and MATCH FULL refuses a row with only one of them.

On PostgreSQL the two unique keys that are only ever compared for equality (public_id,
dedupe_key) get the bytewise "C" collation, so maintaining their indexes needs no
locale-aware comparisons. SQLite compares bytes already.

Revision ID: 3c9d4e7f2a61
Revises: 5b7e2c1d9a40
Create Date: 2026-11-25 16:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '3c9d4e7f2a61'
down_revision = '5b7e2c1d9a40'
branch_labels = None
depends_on = None


def _collate(collation):
    if op.get_bind().dialect.name != 'postgresql':
        return
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.alter_column('public_id', existing_nullable=False,
                              type_=sa.String(length=32, collation=collation))
        batch_op.alter_column('dedupe_key', existing_nullable=False,
                              type_=sa.String(length=200, collation=collation))


def upgrade():
    with op.batch_alter_table('notification_content', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f('uq_notification_content_id_fan_out_id'), ['id', 'fan_out_id'])

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint('fk_notification_content_id_notification_content',
                                 type_='foreignkey')
        batch_op.drop_constraint('fk_notification_fan_out_id_fan_out', type_='foreignkey')
        batch_op.create_foreign_key(
            batch_op.f('fk_notification_content_id_notification_content'),
            'notification_content', ['content_id', 'fan_out_id'], ['id', 'fan_out_id'],
            match='FULL')

    _collate('C')


def downgrade():
    _collate('default')

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint('fk_notification_content_id_notification_content',
                                 type_='foreignkey')
        batch_op.create_foreign_key(
            batch_op.f('fk_notification_fan_out_id_fan_out'), 'fan_out', ['fan_out_id'], ['id'])
        batch_op.create_foreign_key(
            batch_op.f('fk_notification_content_id_notification_content'),
            'notification_content', ['content_id'], ['id'])

    with op.batch_alter_table('notification_content', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('uq_notification_content_id_fan_out_id'), type_='unique')
