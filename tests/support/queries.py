"""What reaches the database in a block of a test, and races between two transactions."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator

from flask import Flask
from sqlalchemy import Engine, event

from consent_center.services import sql


class QueryLog(list):
    """The SQL of every statement sent, in order; `on_the_driver` holds those among them that
    went straight to psycopg (`services/sql.py`'s prepared reads, past SQLAlchemy)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_the_driver: list[str] = []


@contextlib.contextmanager
def count_queries() -> Iterator[QueryLog]:
    """Count the statements sent to the database inside the block: through SQLAlchemy on
    every engine and connection (the read pool too), and straight on the driver."""
    log = QueryLog()
    real_run = sql._run

    def before(conn, cursor, statement, parameters, context, executemany):
        log.append(statement)

    def run(dbapi_connection, statement, dialect, params):
        rows = real_run(dbapi_connection, statement, dialect, params)
        log.append(sql._prepared[id(statement)][1].sql)
        log.on_the_driver.append(log[-1])
        return rows

    event.listen(Engine, "before_cursor_execute", before)
    sql._run = run
    try:
        yield log
    finally:
        sql._run = real_run
        event.remove(Engine, "before_cursor_execute", before)


def race(app: Flask, body: Callable[[int, threading.Barrier], None],
         runs: Iterable[int] = (1, 2)) -> list[BaseException]:
    """Run `body(n, barrier)` for each n in its own thread and app context; each waits at the
    barrier where the race should start. Returns what the threads raised."""
    runs = list(runs)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(runs))

    def run(n: int) -> None:
        try:
            with app.app_context():
                body(n, barrier)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors
