"""The migrations are the only way the schema is made: they must match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

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
