"""The database session and the read pool.

Requests marked `@read_only` (`web/transactions.py`) run without a transaction. On
PostgreSQL their statements go to a second pool whose connections are in autocommit for
life, so nothing is switched when a connection is checked out or reset when it goes back,
and psycopg keeps each connection's prepared statements (it drops them all on every
ROLLBACK): a statement run a second time on a connection is prepared there
(`READ_PREPARE_THRESHOLD`). The read pool connects to `DATABASE_READ_URL`, by default the
database itself. On SQLite (one file, or one connection in memory for the tests) those
requests switch the ordinary connection to autocommit instead.

A read-only request on the read pool holds one connection from it (`read_connection`),
checked out at its first statement and given back when the request ends: Core statements
run on it without an ORM session (`services/sql.py:connection`; the API's consents are one
such statement), and the session, if the request uses one, is bound to the same connection.

The API (`web/api`) is a Flask app of its own, mounted beside the site; it uses the site's
engines and read pool (`share_database`), so a process has one set of connection pools.
"""

from __future__ import annotations

from flask import Flask, current_app, g, has_app_context
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import Connection, Engine, create_engine, make_url

READ_ENGINE = "consent_center.read_engine"
# The read-only request's connection from the read pool (on `g`).
READ_CONNECTION = "_cc_read_connection"
# psycopg prepares a statement on a connection once it has run this many times there.
READ_PREPARE_THRESHOLD = 1


class AppSession(FlaskSession):
    """Flask-SQLAlchemy's session; a read-only request's statements go to its connection
    from the read pool."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        return super().get_bind(mapper, clause, bind or read_connection(), **kwargs)


def read_engine() -> Engine | None:
    """The read pool, when this request is read-only and the database has one."""
    if has_app_context() and g.get("read_only"):
        return current_app.extensions.get(READ_ENGINE)
    return None


def read_connection() -> Connection | None:
    """This read-only request's connection from the read pool (None when the request is not
    read-only or the database has no read pool): one per request, in autocommit."""
    connection = g.get(READ_CONNECTION) if has_app_context() else None
    if connection is None:
        engine = read_engine()
        if engine is None:
            return None
        connection = engine.connect()
        setattr(g, READ_CONNECTION, connection)
    return connection


def give_back_read_connection(_error=None) -> None:
    """Return the request's read connection to the pool (after the session has closed)."""
    connection = g.pop(READ_CONNECTION, None)
    if connection is not None:
        connection.close()


def init_read_engine(app: Flask) -> bool:
    """Create the app's read pool where the database has one (PostgreSQL), unless the app
    shares another's (`share_database`).

    :returns: whether the app has one.
    """
    # Last of all teardowns (they run in reverse order): after the session let go of it.
    if give_back_read_connection not in app.teardown_appcontext_funcs:
        app.teardown_appcontext_funcs.insert(0, give_back_read_connection)
    if READ_ENGINE in app.extensions:
        return True
    url = make_url(app.config.get("DATABASE_READ_URL") or app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return False
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = {**options.pop("connect_args", {}), "prepare_threshold": READ_PREPARE_THRESHOLD}
    # Nothing to roll back on return: every statement committed on its own.
    app.extensions[READ_ENGINE] = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        connect_args=connect_args,
        **options,
    )
    return True


def share_database(db, app: Flask, site: Flask) -> None:
    """Bind `db` (the `extensions.db` that `site` uses) to `app` with `site`'s engines and
    read pool (the API beside the site: one set of connection pools per process)."""
    db.init_app(app)
    # Flask-SQLAlchemy keeps each app's engines in one mapping; the API takes the site's
    # (tests/test_api_app.py checks both apps reach the same engine objects).
    own = db._app_engines[app]
    for engine in own.values():
        engine.dispose()
    db._app_engines[app] = db._app_engines[site]
    if READ_ENGINE in site.extensions:
        app.extensions[READ_ENGINE] = site.extensions[READ_ENGINE]


def dispose_read_engine(app: Flask) -> None:
    """Close the read pool's connections (tests, before a database is dropped)."""
    engine = app.extensions.get(READ_ENGINE)
    if engine is not None:
        engine.dispose()
