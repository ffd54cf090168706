"""The database session and the read pool.

Requests marked `@read_only` (`web/transactions.py`) run without a transaction. On
PostgreSQL their statements go to a second pool whose connections are in autocommit for
life, so nothing is switched when a connection is checked out or reset when it goes back,
and psycopg keeps each connection's prepared statements (it drops them all on every
ROLLBACK). On SQLite (one file, or one connection in memory for the tests) those requests
switch the ordinary connection to autocommit instead.
"""

from __future__ import annotations

from flask import Flask, current_app, g, has_app_context
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import Engine, create_engine, make_url

READ_ENGINE = "consent_center.read_engine"


class AppSession(FlaskSession):
    """Flask-SQLAlchemy's session; a read-only request's statements go to the read pool."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        return super().get_bind(mapper, clause, bind or read_engine(), **kwargs)


def read_engine() -> Engine | None:
    """The read pool, when this request is read-only and the database has one."""
    if has_app_context() and g.get("read_only"):
        return current_app.extensions.get(READ_ENGINE)
    return None


def init_read_engine(app: Flask) -> bool:
    """Create the app's read pool where the database has one (PostgreSQL).

    :returns: whether it did.
    """
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return False
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    # Nothing to roll back on return: every statement committed on its own.
    app.extensions[READ_ENGINE] = create_engine(
        url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **options
    )
    return True


def dispose_read_engine(app: Flask) -> None:
    """Close the read pool's connections (tests, before a database is dropped)."""
    engine = app.extensions.get(READ_ENGINE)
    if engine is not None:
        engine.dispose()
