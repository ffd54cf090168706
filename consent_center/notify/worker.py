"""The outbox worker: `flask notify worker` (continuous) and `flask notify drain` (until idle).

A code or link goes out the moment its request commits, even while the worker is in the
middle of a bulk batch: a second thread of the worker, the code lane, sends only those. On
PostgreSQL the request NOTIFYs in the transaction that writes the row and the worker LISTENs;
elsewhere (SQLite), or while its LISTEN connection is down, the code lane looks for one every
NOTIFY_SECRET_POLL_SECONDS. Everything else is found by the poll every NOTIFY_POLL_SECONDS,
which also covers a lost notification.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timedelta

from flask import current_app

from ..clock import utcnow
from ..extensions import db
from ..models.notification import DUE_CHANNEL
from ..services.guardians import erase_unanswered_minors, transition_coming_of_age
from ..services.members import purge_unverified_members
from ..services.retention import apply_retention
from .delivery import claim_codes, claim_due, secret_due, send_claimed
from .webhook import deliver_webhooks

log = logging.getLogger("consent_center.notify")


def _purge_unverified() -> int:
    return purge_unverified_members()


def _apply_retention() -> int:
    return sum(apply_retention().values())


def _transition_coming_of_age() -> int:
    return transition_coming_of_age()


def _erase_unanswered_minors() -> int:
    return erase_unanswered_minors()


# Housekeeping the worker runs once a day (the first time when it starts), each task in its
# own transaction; each is also a `flask` command for cron.
DAILY_TASKS = (
    ("members purge-unverified", _purge_unverified),
    ("retention run", _apply_retention),
    ("minors erase-unanswered", _erase_unanswered_minors),
    ("minors transition", _transition_coming_of_age),
)


class DailyTasks:
    """Runs DAILY_TASKS when a day has passed since their last run in this process."""

    def __init__(self) -> None:
        self.next_at: datetime | None = None

    def run_if_due(self) -> dict[str, int] | None:
        """Run every task if due; returns each task's count, or None when not due."""
        now = utcnow()
        if self.next_at is not None and now < self.next_at:
            return None
        self.next_at = now + timedelta(days=1)
        results = {}
        for name, task in DAILY_TASKS:
            try:
                results[name] = task()
                db.session.commit()
            except Exception:  # one failing task must not stop delivery or the others
                log.exception("daily task %s failed; it runs again tomorrow", name)
                db.session.rollback()
        return results


def drain(
    batch_size: int | None = None,
    stop: threading.Event | None = None,
    claim=claim_due,
    batches: int | None = None,
) -> dict[str, int]:
    """Deliver due messages batch by batch until none is due (or `batches` were sent);
    returns counts per outcome.

    :param claim: `claim_due` (everything, codes first) or `claim_codes` (codes only).
    """
    batch_size = batch_size or current_app.config["NOTIFY_BATCH_SIZE"]
    totals: dict[str, int] = {}
    while not (stop and stop.is_set()) and batches != 0:
        rows = claim(batch_size)
        if not rows:
            break
        for status, n in send_claimed(rows).items():
            totals[status] = totals.get(status, 0) + n
        if batches is not None:
            batches -= 1
    return totals


def deliver_everything(batch_size: int | None = None, stop: threading.Event | None = None):
    """The outbox and the webhooks until neither has anything due; returns counts per
    outcome (webhooks' prefixed "webhook "). Webhooks get their turn between outbox batches,
    so a fan-out of many thousands of messages never holds back a consent change on its way
    to downstream systems."""
    totals: dict[str, int] = {}
    while not (stop and stop.is_set()):
        hooks = deliver_webhooks(batch_size, stop)
        sent = drain(batch_size, stop, claim_due, batches=1)
        for outcome, n in hooks.items():
            totals[f"webhook {outcome}"] = totals.get(f"webhook {outcome}", 0) + n
        for outcome, n in sent.items():
            totals[outcome] = totals.get(outcome, 0) + n
        if not sent and not hooks:
            break
    return totals


class _Listener(threading.Thread):
    """Sets `wake` on every NOTIFY of a due message; reconnects after a failure."""

    def __init__(self, engine, wake: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="outbox-listener", daemon=True)
        self.engine, self.wake, self.stop = engine, wake, stop
        self.listening = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            conn = None
            try:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(f"LISTEN {DUE_CHANNEL}")
                self.listening.set()
                self.wake.set()  # a row committed before we listened is due now
                # SQLAlchemy has no API for notifications: read them from the driver.
                driver = conn.connection.driver_connection
                while not self.stop.is_set():
                    for _notify in driver.notifies(timeout=1.0):
                        self.wake.set()
            except Exception:
                log.exception("LISTEN connection failed; polling until it is back")
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.invalidate()  # never hand a LISTENing connection back to the pool
                    conn.close()
            self.stop.wait(1.0)


class Worker:
    """Delivers until `stop()` is called (from a signal handler or another thread).

    Needs an app context in the thread that calls `run()`; the code lane gets its own.
    """

    def __init__(self, poll_seconds: float | None = None, batch_size: int | None = None):
        config = current_app.config
        self.poll = poll_seconds if poll_seconds is not None else config["NOTIFY_POLL_SECONDS"]
        self.secret_poll = config["NOTIFY_SECRET_POLL_SECONDS"]
        self.batch_size = batch_size
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.lane_ready = threading.Event()
        self.listener = None
        self.daily = DailyTasks()
        if db.engine.dialect.name == "postgresql":
            self.listener = _Listener(db.engine, self.wake, self.stopping)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        if self.listener is not None:
            self.listener.start()
            self.listener.listening.wait(5.0)  # if not by then, polling covers it
        log.info("notification worker started")
        app = current_app._get_current_object()
        lane = threading.Thread(target=self._code_lane, args=(app,), name="code-lane")
        lane.start()
        self._round(claim_due)
        self.lane_ready.wait(5.0)
        # From here on only a NOTIFY (or the code lane's short poll) sends a new code at once.
        log.info("notification worker ready: %s", self._how_woken())
        while not self.stopping.wait(self.poll):
            self._round(claim_due)
        lane.join()
        if self.listener is not None:
            self.listener.join(timeout=5.0)
        db.session.remove()
        log.info("notification worker stopped")

    def _round(self, claim) -> None:
        try:
            if claim is claim_due and (done := self.daily.run_if_due()) is not None:
                log.info("daily tasks: %s", done)
            if claim is claim_due:
                counts = deliver_everything(self.batch_size, self.stopping)
            else:
                counts = drain(self.batch_size, self.stopping, claim)
        except Exception:  # a database blip must not kill the worker; the lease protects rows
            log.exception("delivery round failed; retrying after a pause")
            counts = {}
        if counts:
            log.info("delivered: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        _end_session()  # a fresh session (and connection state) each round

    def _code_lane(self, app) -> None:
        with app.app_context():
            while not self.stopping.is_set():
                self.wake.clear()  # a NOTIFY during the round below wakes the next wait at once
                self._round(claim_codes)
                self.lane_ready.set()
                self._wait_for_code()
            db.session.remove()

    def _how_woken(self) -> str:
        if self.listener is not None and self.listener.listening.is_set():
            return f"codes woken by NOTIFY {DUE_CHANNEL}, polling every {self.poll}s"
        return f"codes checked every {self.secret_poll}s, polling every {self.poll}s"

    def _wait_for_code(self) -> None:
        if self.listener is not None and self.listener.listening.is_set():
            self.wake.wait(self.poll)
            return
        deadline = time.monotonic() + self.poll
        while not self.wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.wake.wait(min(self.secret_poll, left))
            if secret_due():
                return


def _end_session() -> None:
    """End the round's session whatever became of its connection. When the database cut it (a
    failover, `pg_terminate_backend`), even the rollback raises; that must not end the loop,
    or the process would live on, delivering codes only (the code lane is another thread)."""
    try:
        db.session.remove()
    except Exception:
        log.warning(
            "the round's database connection was lost; the next round opens another", exc_info=True
        )
        db.session.remove()  # the lost connection is invalidated by now: this one succeeds


def run_worker(poll_seconds: float | None = None, batch_size: int | None = None) -> None:
    """Deliver forever; stop cleanly on SIGTERM/SIGINT after the current message."""
    worker = Worker(poll_seconds, batch_size)

    def request_stop(signum, frame) -> None:
        log.info("worker stopping after the current message (signal %s)", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker.run()
