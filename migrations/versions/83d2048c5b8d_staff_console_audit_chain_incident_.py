"""staff console: audit chain, incident notices

Revision ID: 83d2048c5b8d
Revises: ca5486310d97
Create Date: 2026-11-25 13:55:57.457066

The audit log gains a hash chain per subject member (entries without a subject form the
"system" chain). Existing entries are chained here, in id order, with the same hash the
application computes (consent_center.models.audit.audit_chain_hash, format v1), so
`flask audit verify` passes right after the upgrade.

Policy versions gain a random public id (staff URLs name drafts by it) and drafts have no
number until they are published.
"""
import hashlib
import json
import secrets
from datetime import UTC

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '83d2048c5b8d'
down_revision = 'ca5486310d97'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _chain_hash(prev_hash, subject, seq, actor, action, details, created_at):
    # A copy of audit_chain_hash (v1), so this migration keeps working if the app changes.
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    payload = {
        "v": 1,
        "prev_hash": prev_hash,
        "subject": subject,
        "seq": seq,
        "actor": actor,
        "action": action,
        "details": details or {},
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _backfill_audit_chain(conn):
    audit = sa.table(
        'audit_event',
        sa.column('id', sa.Integer()),
        sa.column('actor_member_id', sa.Integer()),
        sa.column('subject_member_id', sa.Integer()),
        sa.column('action', sa.String()),
        sa.column('details', sa.JSON()),
        sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('seq', sa.Integer()),
        sa.column('prev_hash', sa.String()),
        sa.column('hash', sa.String()),
    )
    rows = conn.execute(
        sa.select(
            audit.c.id, audit.c.actor_member_id, audit.c.subject_member_id, audit.c.action,
            audit.c.details, audit.c.created_at,
        ).order_by(sa.func.coalesce(audit.c.subject_member_id, 0), audit.c.id)
    ).all()
    updates, current, prev, seq = [], object(), GENESIS, 0
    for row in rows:
        if row.subject_member_id != current:
            current, prev, seq = row.subject_member_id, GENESIS, 0
        seq += 1
        digest = _chain_hash(
            prev, row.subject_member_id, seq, row.actor_member_id, row.action, row.details,
            row.created_at,
        )
        updates.append({"row_id": row.id, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    if updates:
        conn.execute(
            audit.update()
            .where(audit.c.id == sa.bindparam('row_id'))
            .values(seq=sa.bindparam('seq'), prev_hash=sa.bindparam('prev_hash'),
                    hash=sa.bindparam('hash')),
            updates,
        )


def upgrade():
    op.create_table('incident_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('audience', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_by_id', sa.Integer(), nullable=True),
    sa.Column('fan_out_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['member.id'], name=op.f('fk_incident_notice_created_by_id_member')),
    sa.ForeignKeyConstraint(['fan_out_id'], ['fan_out.id'], name=op.f('fk_incident_notice_fan_out_id_fan_out')),
    sa.ForeignKeyConstraint(['sent_by_id'], ['member.id'], name=op.f('fk_incident_notice_sent_by_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_notice')),
    sa.UniqueConstraint('public_id', name=op.f('uq_incident_notice_public_id'))
    )

    # Audit chain: add the columns empty, chain the existing entries, then require them.
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    _backfill_audit_chain(op.get_bind())
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_event_subject_member_id_seq'), ['subject_member_id', 'seq'])
        batch_op.create_index('uq_audit_event_system_seq', ['seq'], unique=True, sqlite_where=sa.text('subject_member_id IS NULL'), postgresql_where=sa.text('subject_member_id IS NULL'))

    # Policy versions: a random public id for every existing row; drafts have no number.
    with op.batch_alter_table('policy_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_id', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    versions = sa.table('policy_version', sa.column('id', sa.Integer()), sa.column('public_id', sa.String()))
    ids = [r.id for r in conn.execute(sa.select(versions.c.id))]
    if ids:
        conn.execute(
            versions.update().where(versions.c.id == sa.bindparam('row_id'))
            .values(public_id=sa.bindparam('pid')),
            [{"row_id": i, "pid": secrets.token_urlsafe(16)} for i in ids],
        )
    with op.batch_alter_table('policy_version', schema=None) as batch_op:
        batch_op.alter_column('public_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column('number', existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_policy_version_public_id'), ['public_id'])


def downgrade():
    # Drafts cannot be represented without a number: they are dropped.
    op.execute("DELETE FROM policy_version WHERE published_at IS NULL")
    with op.batch_alter_table('policy_version', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_policy_version_public_id'), type_='unique')
        batch_op.alter_column('number',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('public_id')

    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('uq_audit_event_system_seq', sqlite_where=sa.text('subject_member_id IS NULL'), postgresql_where=sa.text('subject_member_id IS NULL'))
        batch_op.drop_constraint(batch_op.f('uq_audit_event_subject_member_id_seq'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')

    op.drop_table('incident_notice')
