"""keyed ledger and audit chains (key id per link); the data subjects of outbox rows

Links already written are plain SHA-256: they get the key id "sha256-legacy" and verify as
before; new links are HMAC-SHA256 under LEDGER_KEY. `notification_subject` names whom each
outbox row is about besides its member, so erasure finds guardian invitations, refusals and
contact-form messages; rows written before are given their subjects where the row shows them.

Revision ID: b6e2d4f8a1c3
Revises: 9e2b6c0d4f18
Create Date: 2026-12-05 22:30:00

"""
import hashlib
import hmac

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = 'b6e2d4f8a1c3'
down_revision = '9e2b6c0d4f18'
branch_labels = None
depends_on = None

LEGACY_KEY_ID = "sha256-legacy"


def upgrade():
    for table in ('consent_event', 'audit_event'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('key_id', sa.String(length=32), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET key_id = :k").bindparams(k=LEGACY_KEY_ID))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('key_id', existing_type=sa.String(length=32), nullable=False)

    op.create_table('notification_subject',
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('subject_key', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], name=op.f('fk_notification_subject_notification_id_notification'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('notification_id', 'subject_key', name=op.f('pk_notification_subject'))
    )
    with op.batch_alter_table('notification_subject', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_subject_subject_key'), ['subject_key'], unique=False)
    _backfill_subjects()


def _backfill_subjects():
    conn = op.get_bind()
    # Guardian messages name the minor of the link in their dedupe key.
    conn.execute(sa.text(
        "INSERT INTO notification_subject (notification_id, subject_key) "
        "SELECT n.id, 'member:' || CAST(g.minor_id AS VARCHAR(20)) "
        "FROM notification n JOIN guardian_link g ON n.dedupe_key IN ("
        " 'guardian_refused:' || g.public_id, 'guardian_approved:' || g.public_id || :to_guardian,"
        " 'guardian_ended:' || g.public_id || :to_guardian)"
        " OR n.dedupe_key LIKE 'guardian_invite:' || g.public_id || ':%'"
    ), {"to_guardian": ":guardian"})
    # Webhook deliveries are ordered per "<subscription>:<member row id>".
    conn.execute(sa.text(
        "INSERT INTO notification_subject (notification_id, subject_key) "
        "SELECT id, 'member:' || SUBSTR(order_key, INSTR(order_key, ':') + 1) "
        "FROM notification WHERE channel = 'webhook' AND order_key LIKE '%:%'"
    ) if conn.dialect.name == 'sqlite' else sa.text(
        "INSERT INTO notification_subject (notification_id, subject_key) "
        "SELECT id, 'member:' || split_part(order_key, ':', 2) "
        "FROM notification WHERE channel = 'webhook' AND order_key LIKE '%:%'"
    ))
    # Contact-form messages: the acknowledgement's recipient is the sender (the same keyed
    # digest as services/auth.py identifier_digest); both rows of a submission name it.
    key = current_app.config["SECRET_KEY"].encode()
    acks = conn.execute(sa.text(
        "SELECT dedupe_key, recipient FROM notification "
        "WHERE kind = 'contact_ack' AND recipient IS NOT NULL"
    )).all()
    for dedupe_key, recipient in acks:
        digest = hmac.new(key, f"identifier:{recipient}".encode(), hashlib.sha256).hexdigest()
        prefix = dedupe_key[: -len(":ack")]
        conn.execute(sa.text(
            "INSERT INTO notification_subject (notification_id, subject_key) "
            "SELECT id, :subject FROM notification WHERE dedupe_key IN (:ack, :service)"
        ), {"subject": "contact:" + digest, "ack": dedupe_key, "service": prefix + ":service"})


def downgrade():
    with op.batch_alter_table('notification_subject', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_subject_subject_key'))
    op.drop_table('notification_subject')
    for table in ('audit_event', 'consent_event'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('key_id')
