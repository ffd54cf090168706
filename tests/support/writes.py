"""Proof that a refused request changed nothing: every row of every table (the outbox, the
ledger and the audit log among them) and the dev mailbox are the same after it as before."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from flask import current_app
from sqlalchemy import select

from consent_center.extensions import db


def _rows(ignored: set[str]) -> dict[str, list[tuple]]:
    # A connection of its own, closed at once: no transaction of the test's is left open (on
    # SQLite an open read would hold a lock the request under test needs).
    with db.engine.connect() as conn:
        return {
            table.name: sorted(
                (
                    tuple(row)
                    for row in conn.execute(
                        select(*(c for c in table.c if f"{table.name}.{c.name}" not in ignored))
                    )
                ),
                key=repr,
            )
            for table in db.metadata.sorted_tables
        }


def _mailbox() -> list[str]:
    folder = current_app.config.get("DEV_MAILBOX_DIR")
    if not folder or not os.path.isdir(folder):
        return []
    return sorted(os.listdir(folder))


# A wrong code is counted by design: against the code it was meant for, and against the
# account (the lockout across fresh codes, services/auth.py). Nothing else may change.
WRONG_CODE = (
    "one_time_code.attempts",
    "member.code_failures",
    "member.code_failures_since",
)


@contextlib.contextmanager
def nothing_written(*, except_columns: tuple[str, ...] = ()) -> Iterator[None]:
    """Assert the block added, changed or deleted no row in any table and put nothing in the
    dev mailbox: no event, no audit entry, no message queued or sent.

    :param except_columns: ``"table.column"`` names a refusal may change by design (a wrong
        code counts an attempt); every other column of those rows is still compared.
    """
    ignored = set(except_columns)
    db.session.commit()
    before_rows, before_mail = _rows(ignored), _mailbox()
    yield
    db.session.commit()
    after_rows = _rows(ignored)
    changed = {
        name: f"{len(before_rows[name])} -> {len(after_rows[name])} rows"
        for name in before_rows
        if before_rows[name] != after_rows[name]
    }
    assert not changed, f"a refused request wrote to {changed}"
    assert _mailbox() == before_mail, "a refused request sent a message"
