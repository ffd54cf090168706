"""the ledger is the log: chain heads on the member row, erasure notices, feed cursors

member.ledger_seq / ledger_hash hold the head of the member's consent ledger chain (the row
every writer locks), backfilled from each chain's last event.

change_event keeps only erasure notices: consent changes are read from the ledger itself.
Each notice gets `after_event_id` (the member's last ledger event when they were erased).

webhook_subscription gets a feed cursor and its retry bookkeeping: the notify worker
delivers from the feed. Each subscription starts just before the oldest event still waiting
in the outbox for it (else at the end of the feed); those outbox rows are closed.

Revision ID: d5e9a1b3c7f4
Revises: e7a1c9d3b5f2
Create Date: 2026-12-06 02:20:00

"""
import base64
import json

import sqlalchemy as sa
from alembic import op

revision = 'd5e9a1b3c7f4'
down_revision = 'e7a1c9d3b5f2'
branch_labels = None
depends_on = None


def _cursor(ledger: int, notices: int) -> str:
    # services/downstream.py encode_cursor, format 2, without holes.
    raw = json.dumps([2, ledger, [], notices, []], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def upgrade():
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('ledger_seq', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('ledger_hash', sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE member SET"
        " ledger_seq = (SELECT max(e.seq) FROM consent_event e WHERE e.member_id = member.id),"
        " ledger_hash = (SELECT e.hash FROM consent_event e WHERE e.member_id = member.id"
        "                ORDER BY e.seq DESC LIMIT 1)"
        " WHERE EXISTS (SELECT 1 FROM consent_event e WHERE e.member_id = member.id)"
    )

    with op.batch_alter_table('webhook_subscription', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('feed_cursor', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(
            sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(
            sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('last_delivered_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('change_event', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('after_event_id', sa.Integer(), server_default='0', nullable=False))

    conn = op.get_bind()
    conn.execute(sa.text(
        "UPDATE change_event SET after_event_id = coalesce((SELECT max(e.id) FROM consent_event e"
        " WHERE e.member_id = change_event.member_id), 0) WHERE type = 'member.erased'"
    ))
    ledger_end = conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM consent_event"))
    notices_end = conn.scalar(sa.text(
        "SELECT coalesce(max(id), 0) FROM change_event WHERE type = 'member.erased'"))
    waiting = "('pending', 'sending')"
    for sub_id, public_id in conn.execute(
        sa.text("SELECT id, public_id FROM webhook_subscription")
    ).all():
        # The oldest undelivered consent change and erasure notice of this subscription.
        prefix = f"webhook:{public_id}:"
        oldest = conn.execute(sa.text(
            "SELECT min(c.consent_event_id), min(CASE WHEN c.type = 'member.erased'"
            " THEN c.id END) FROM notification n JOIN change_event c"
            " ON n.dedupe_key = :prefix || c.public_id"
            f" WHERE n.channel = 'webhook' AND n.status IN {waiting}"
        ), {"prefix": prefix}).one()
        ledger = oldest[0] - 1 if oldest[0] is not None else ledger_end
        notices = oldest[1] - 1 if oldest[1] is not None else notices_end
        conn.execute(
            sa.text("UPDATE webhook_subscription SET feed_cursor = :c WHERE id = :id"),
            {"c": _cursor(ledger, notices), "id": sub_id},
        )
    conn.execute(sa.text(
        "UPDATE notification SET status = 'failed', body_text = NULL, lease_until = NULL,"
        " last_error = 'delivered from the feed by the subscription cursor'"
        f" WHERE channel = 'webhook' AND status IN {waiting}"
    ))
    conn.execute(sa.text("DELETE FROM change_event WHERE type <> 'member.erased'"))
    with op.batch_alter_table('change_event', schema=None) as batch_op:
        batch_op.drop_constraint(
            'fk_change_event_consent_event_id_consent_event', type_='foreignkey')
        batch_op.drop_column('consent_event_id')


def downgrade():
    with op.batch_alter_table('change_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_event_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_change_event_consent_event_id_consent_event', 'consent_event',
            ['consent_event_id'], ['id'])
        batch_op.drop_column('after_event_id')
    with op.batch_alter_table('webhook_subscription', schema=None) as batch_op:
        for column in ('last_delivered_at', 'lease_until', 'last_error', 'next_attempt_at',
                       'attempts', 'feed_cursor'):
            batch_op.drop_column(column)
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('ledger_hash')
        batch_op.drop_column('ledger_seq')
