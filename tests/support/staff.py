"""Helpers for the staff console tests."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import event

from consent_center.extensions import db
from tests.conftest import make_member


def make_staff(role: str = "staff", **fields):
    return make_member(role=role, **fields)


def local_midnight(day: date) -> datetime:
    """The UTC instant at which `day` starts in the display time zone."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


@contextlib.contextmanager
def count_queries():
    """Count the SQL statements the engine executes inside the block (all connections)."""
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
