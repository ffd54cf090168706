"""What reaches the database in a block of a test, and races between two transactions."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from flask import Flask, current_app
from sqlalchemy import Engine, event, text

from consent_center.database import READ_ENGINE
from consent_center.extensions import db


class QueryLog(list):
    """The SQL of every statement sent, in order; `on_the_read_pool` holds those among them
    that went to the read pool (`consent_center/database.py`)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_the_read_pool: list[str] = []


@contextlib.contextmanager
def count_queries() -> Iterator[QueryLog]:
    """Count the statements sent to the database inside the block, on every engine and
    connection (the read pool too)."""
    log = QueryLog()
    read_pool = current_app.extensions.get(READ_ENGINE)

    def before(conn, cursor, statement, parameters, context, executemany):
        log.append(statement)
        if read_pool is not None and conn.engine is read_pool:
            log.on_the_read_pool.append(statement)

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield log
    finally:
        event.remove(Engine, "before_cursor_execute", before)


class StartLine:
    """What each racer of :func:`race` is given: `wait()` where the race starts, and
    `overlap()` where it holds what the others race for (a lock, uncommitted rows).

    `overlap()` keeps its racer there until every other racer is stuck behind it (on
    PostgreSQL: waiting for a lock), has reached `overlap()` too, or has finished. So the
    racers meet in the critical section on any machine, however loaded: the race is run,
    not left to timing. On SQLite, which has no lock view, a statement sent counts.
    """

    def __init__(self, runs: list[int], timeout: float) -> None:
        self.timeout = timeout
        self._barrier = threading.Barrier(len(runs))
        self._cond = threading.Condition()
        self._runs = runs
        self._pids: dict[int, int] = {}
        self.started: set[int] = set()  # passed the start line
        self.sent: set[int] = set()  # sent a statement after it
        self.holding: set[int] = set()  # reached overlap()
        self.finished: set[int] = set()
        self.overlapped: set[int] = set()  # held until the others were stuck or done

    def wait(self, timeout: float | None = None) -> None:
        if db.session.get_bind().dialect.name == "postgresql":
            # The racer's own connection, kept for its transaction: whose lock waits to watch.
            self._pids[_racer.n] = db.session.scalar(text("SELECT pg_backend_pid()"))
        self._barrier.wait(self.timeout if timeout is None else timeout)
        with self._cond:
            self.started.add(_racer.n)

    def overlap(self) -> None:
        me = _racer.n
        others = set(self._runs) - {me}
        deadline = time.monotonic() + self.timeout
        with self._cond:
            self.holding.add(me)
            self._cond.notify_all()
        while True:
            with self._cond:
                pending = others - self.holding - self.finished
                if not self._pids:
                    pending -= self.sent
            if pending and self._pids:
                pending -= self._waiting_for_a_lock(pending)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"racer {me}: racers {pending} never got under way")
            with self._cond:
                self._cond.wait(0.01)
        with self._cond:
            self.overlapped.add(me)

    def _waiting_for_a_lock(self, racers: set[int]) -> set[int]:
        pids = {self._pids[n]: n for n in racers if n in self._pids}
        with db.engine.connect() as conn:
            waiting = conn.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).all()
        return {pids[pid] for pid in waiting if pid in pids}

    def _statement(self) -> None:
        n = getattr(_racer, "n", None)
        if n is not None:
            with self._cond:
                if n in self.started and n not in self.sent:
                    self.sent.add(n)
                    self._cond.notify_all()

    def _finish(self, n: int) -> None:
        with self._cond:
            self.finished.add(n)
            self._cond.notify_all()


_racer = threading.local()


def race(app: Flask, body: Callable[[int, StartLine], None], runs: Iterable[int] = (1, 2),
         timeout: float = 30) -> list[BaseException]:
    """Run `body(n, line)` for each n in its own thread and app context; each calls
    `line.wait()` where the race should start and `line.overlap()` while it holds what the
    others race for. Returns what the threads raised, plus an error when a racer never
    started, never finished, or did not overlap with the others."""
    runs = list(runs)
    errors: list[BaseException] = []
    line = StartLine(runs, timeout)

    def run(n: int) -> None:
        _racer.n = n
        try:
            with app.app_context():
                body(n, line)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)
        finally:
            line._finish(n)

    def before(conn, cursor, statement, parameters, context, executemany):
        line._statement()

    event.listen(Engine, "before_cursor_execute", before)
    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=timeout * 2)
    finally:
        event.remove(Engine, "before_cursor_execute", before)
    for n, thread in zip(runs, threads, strict=True):
        if thread.is_alive():
            errors.append(AssertionError(f"racer {n} did not finish"))
    if line.started != set(runs):
        errors.append(AssertionError(f"racers {set(runs) - line.started} never started"))
    if not line.overlapped:
        errors.append(AssertionError("no racer held its place while the others ran"))
    return errors
