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
