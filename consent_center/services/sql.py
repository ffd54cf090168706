"""SQL building blocks the services share."""

from __future__ import annotations

from collections import namedtuple
from functools import cache

from sqlalchemy import Dialect, Engine, Select, Table

from ..database import read_engine
from ..extensions import db


def upsert(model, keys: tuple[str, ...]):
    """INSERT a row of `model`'s table, or on a conflict over `keys` UPDATE every other
    column to the new values: one statement (PostgreSQL and SQLite), to execute with a dict
    of every column's value."""
    return _upsert(model.__table__, keys, db.session.get_bind().dialect.name)


@cache
def _upsert(table: Table, keys: tuple[str, ...], dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )


# --- Hot reads straight on the driver ---------------------------------------------------


class _Prepared:
    """A SELECT compiled once for PostgreSQL, with SQLAlchemy's own conversions of its
    parameters and result columns (a UTC timestamp stays aware, and so on)."""

    def __init__(self, statement: Select, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("fetch_all runs statements compiled once: no expanding IN (...)")
        sql = compiled.string
        # Values fixed in the statement (constants) are written into its SQL as literals,
        # by the type's own literal renderer, or else converted once and sent each time; the
        # named parameters given at each execution are converted then.
        self.constants: dict = {}
        self.named: dict = {}
        for name, bind in compiled.binds.items():
            if bind.callable is not None:
                raise ValueError("fetch_all runs statements compiled once: no callable values")
            impl = bind.type.dialect_impl(dialect)
            processor = impl.bind_processor(dialect)
            if bind.required:
                self.named[name] = processor
                continue
            placeholder = f"%({name})s"
            literal = impl.literal_processor(dialect)
            if literal is not None and bind.value is not None and sql.count(placeholder) == 1:
                sql = sql.replace(placeholder, literal(bind.value))
            else:
                self.constants[name] = bind.value if processor is None else processor(bind.value)
        self.sql = sql
        self.result_processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        self.row = namedtuple(  # noqa: PYI024 (a class per statement, made at run time)
            "Row", [column.key for column in statement.selected_columns], rename=True
        )

    def parameters(self, params: dict) -> dict:
        values = dict(self.constants)
        for name, processor in self.named.items():
            value = params[name]
            values[name] = value if processor is None else processor(value)
        return values

    def convert(self, row: tuple) -> tuple:
        return self.row(
            *(
                value if p is None else p(value)
                for p, value in zip(self.result_processors, row, strict=True)
            )
        )


_prepared: dict[int, tuple[Select, _Prepared]] = {}


def fetch_all(statement: Select, params: dict) -> list:
    """The rows of `statement` (a SELECT built once and reused, such as a `functools.cache`
    result) as named tuples, on the request's own connection.

    In a read-only request on PostgreSQL it runs on that connection's psycopg connection (the
    read pool's) as a server-side prepared statement, without SQLAlchemy's execution layer:
    on the API's hottest path that layer cost twice the query itself. Elsewhere it runs
    through the session, as any other statement.
    """
    connection = db.session.connection()
    if read_engine() is None:
        return list(connection.execute(statement, params).all())
    try:
        return _run(connection.connection.dbapi_connection, statement, connection.dialect, params)
    except connection.dialect.loaded_dbapi.OperationalError:
        connection.invalidate()  # a broken connection never goes back to the pool
        raise


def fetch_prepared(engine: Engine, statement: Select, params: dict) -> list:
    """`fetch_all`'s way on PostgreSQL, without an app context: on a connection of `engine`'s
    pool (the read pool, in autocommit), checked out for this statement only."""
    connection = engine.raw_connection()
    try:
        return _run(connection.dbapi_connection, statement, engine.dialect, params)
    except engine.dialect.loaded_dbapi.OperationalError:
        connection.invalidate()  # a broken connection never goes back to the pool
        raise
    finally:
        connection.close()  # back to the pool (a no-op after invalidate)


def _run(dbapi_connection, statement: Select, dialect: Dialect, params: dict) -> list:
    entry = _prepared.get(id(statement))
    if entry is None or entry[0] is not statement:
        entry = _prepared[id(statement)] = (statement, _Prepared(statement, dialect))
    prepared = entry[1]
    with dbapi_connection.cursor() as cursor:
        cursor.execute(prepared.sql, prepared.parameters(params), prepare=True)
        rows = cursor.fetchall()
    return [prepared.convert(row) for row in rows]
