"""SQL building blocks the services share."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from ..database import read_connection
from ..extensions import db


def connection() -> Connection:
    """The connection a Core statement runs on: a read-only request's own connection from
    the read pool (no ORM session is made for it), else the session's."""
    return read_connection() or db.session.connection()


def upsert(model, keys: tuple[str, ...]):
    """INSERT a row of `model`'s table, or on a conflict over `keys` UPDATE every other
    column to the new values: one statement (PostgreSQL and SQLite), to execute with a dict
    of every column's value."""
    return _upsert(model.__table__, keys, db.session.get_bind().dialect.name)


@cache
def _upsert(table: Table, keys: tuple[str, ...], dialect: str):
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
