"""The migrations are the only way the schema is made: they must match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from consent_center.extensions import db


def test_migrations_match_the_models(app):
    """Like `flask db check`: a model change without a migration fails here."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], diff


def test_single_migration_head(app):
    from alembic.script import ScriptDirectory
    from flask import current_app

    config = current_app.extensions["migrate"].migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"linearize the migrations: {heads}"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_migrations_match_the_models_collations(app):
    """Alembic does not compare collations: check the PostgreSQL ones here."""
    with db.engine.connect() as conn:
        actual = {
            (table, column): collation
            for table, column, collation in conn.execute(
                text(
                    "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND collation_name IS NOT NULL"
                )
            )
        }
    expected = {}
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            collation = getattr(column.type.dialect_impl(db.engine.dialect), "collation", None)
            if collation:
                expected[(table.name, column.name)] = collation
    assert expected, "no column declares a collation"
    assert actual == expected


def test_version_1_of_the_company_policy_gets_its_chinese_text_from_the_migration(app):
    """An install made before policies had Chinese words: its version 1, the company's policy
    as the seed published it, gets the shipped Chinese text; another version 1 would not."""
    from flask_migrate import downgrade, upgrade

    from consent_center.domain import Locale
    from consent_center.services.policy_text import seed_policy

    seed = seed_policy()
    db.session.remove()
    downgrade(revision="c4d8e1a5f7b2")
    try:
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO policy_version (public_id, number, title, body_md, summary,"
                    " changed_purposes, published_at, effective_at, created_at) VALUES"
                    " ('v1', 1, :title, :body, :summary, '', :now, :now, :now),"
                    " ('v2', 2, 'Privacy policy', 'Other text', 'Changed', '', :now, :now, :now)"
                ),
                {
                    "title": seed[Locale.EN].title,
                    "body": seed[Locale.EN].body_md,
                    "summary": seed[Locale.EN].summary,
                    "now": "2026-01-01 00:00:00+00:00",
                },
            )
    finally:
        upgrade(revision="heads")
    rows = db.session.execute(
        text("SELECT number, title_zh, body_md_zh, summary_zh FROM policy_version ORDER BY number")
    ).all()
    zh = seed[Locale.ZH]
    assert rows == [(1, zh.title, zh.body_md, zh.summary), (2, "", "", "")]


def test_the_ledger_head_migration_backfills_heads_notices_and_cursors(app, member, policy):
    """d5e9a1b3c7f4: heads from each chain's last event; only erasure notices stay in
    change_event; a subscription resumes at the oldest event still waiting for it."""
    from flask_migrate import downgrade, upgrade

    from consent_center.models import ChangeEvent, ConsentEvent, Member, WebhookSubscription
    from consent_center.services.consents import verify_ledger
    from consent_center.services.downstream import decode_cursor
    from consent_center.services.erasure import erase_member
    from tests.conftest import make_member
    from tests.support.api import grant

    gone = make_member()
    grant(member, "advertising")
    grant(member, "advertising", False)
    grant(gone, "trend_analysis")
    erase_member(gone, actor=None, reason="test")
    db.session.commit()
    events = db.session.scalars(select_ids(ConsentEvent)).all()
    member_id, gone_id = member.id, gone.id
    db.session.remove()
    downgrade(revision="c4d8e1a5f7b2")
    try:
        with db.engine.begin() as conn:
            # As the old code wrote them: a change event per consent event, and a
            # subscription with the second one still waiting in the outbox.
            for n, event_id in enumerate(events, start=1):
                conn.execute(text(
                    "INSERT INTO change_event (public_id, type, member_id, consent_event_id,"
                    " created_at) SELECT :p, 'consent.changed', member_id, id, created_at"
                    " FROM consent_event WHERE id = :id"), {"p": f"old-{n}", "id": event_id})
            conn.execute(text(
                "INSERT INTO webhook_subscription (public_id, url, secret, events, active,"
                " created_at) VALUES ('wh_old', 'https://old.example/hook', 'whsec_x',"
                " 'consent.changed,member.erased', true, CURRENT_TIMESTAMP)"))
            for n, status in ((1, "sent"), (2, "pending")):
                conn.execute(text(
                    "INSERT INTO notification (public_id, channel, kind, dedupe_key, recipient,"
                    " body_text, locale, status, attempts, created_at, next_attempt_at)"
                    " VALUES (:p, 'webhook', 'consent.changed', :k, 'wh_old', '{}', 'en', :s, 0,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                    {"p": f"n{n}", "k": f"webhook:wh_old:old-{n}", "s": status})
        db.session.remove()
    finally:
        upgrade(revision="heads")
    heads = {m.id: (m.ledger_seq, m.ledger_hash) for m in db.session.scalars(select(Member))}
    last = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member.id).order_by(
            ConsentEvent.seq.desc())).first()
    assert heads[member_id] == (2, last.hash)
    assert heads[gone_id][0] == 1
    assert verify_ledger().ok
    [notice] = db.session.scalars(select(ChangeEvent)).all()
    assert notice.type == "member.erased" and notice.after_event_id == events[2]
    sub = db.session.scalars(select(WebhookSubscription)).one()
    cursor = decode_cursor(sub.feed_cursor)
    assert cursor.ledger.position == events[1] - 1  # the waiting event is delivered again
    assert cursor.notices.position == notice.id  # not waiting: already past
    statuses = db.session.scalars(text(
        "SELECT status FROM notification WHERE channel = 'webhook' ORDER BY id")).all()
    assert statuses == ["sent", "failed"]


def select_ids(model):
    return select(model.id).order_by(model.id)
