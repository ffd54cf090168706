"""Read-only requests: pages that only read run each statement on its own (autocommit).

A request in a transaction pays a BEGIN and a ROLLBACK round trip, and psycopg 3 answers
every ROLLBACK by dropping the connection's prepared statements (and sending DEALLOCATE ALL),
so the hottest read-only pages (`/me`, the API, `/healthz`) would never reuse a query plan.
A view marked `@read_only` runs in autocommit instead. Its reads see committed data
statement by statement; that is all a page that only shows data needs.

Where the database has a read pool (PostgreSQL, `consent_center/database.py`), the session
sends such a request's statements there; elsewhere the request switches its connection to
autocommit.

A write in such a request is a programming error, caught loudly: an ORM flush raises. The
one write a plain page view can cause, withdrawing advertising for a Global Privacy Control
signal (`web/gpc.py`), needs a transaction, so a request that carries `Sec-GPC: 1` is never
read-only.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, g, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..database import READ_ENGINE, init_read_engine
from ..extensions import db
from .gpc import gpc_signal

READ_ONLY_ATTR = "_cc_read_only"


def read_only(view: Callable) -> Callable:
    """Mark a view that never writes: its request runs without a transaction."""
    setattr(view, READ_ONLY_ATTR, True)
    return view


def _start_read_only() -> None:
    if request.method not in ("GET", "HEAD") or gpc_signal():
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or not getattr(view, READ_ONLY_ATTR, False):
        return
    g.read_only = True
    if READ_ENGINE not in current_app.extensions:
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _refuse_writes(session: Session, _context, _instances) -> None:
    if g and g.get("read_only"):
        raise RuntimeError(
            f"{request.endpoint} is marked @read_only but tried to write: remove the mark."
        )


def init_app(app: Flask) -> None:
    init_read_engine(app)
    # First of all hooks: nothing may touch the database before the mode is chosen.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_read_only)
    if not event.contains(Session, "before_flush", _refuse_writes):
        event.listen(Session, "before_flush", _refuse_writes)
