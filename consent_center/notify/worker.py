"""The outbox worker: `flask notify worker` (continuous) and `flask notify drain` (until idle)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta

from flask import current_app

from ..clock import utcnow
from ..extensions import db
from .delivery import claim_due, send_claimed

log = logging.getLogger("consent_center.notify")


def _purge_unverified() -> int:
    from ..services.members import purge_unverified_members

    return purge_unverified_members()


# Housekeeping the worker runs once a day (the first time when it starts), each task in its
# own transaction; each is also a `flask` command for cron.
DAILY_TASKS = (("members purge-unverified", _purge_unverified),)


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


def drain(batch_size: int | None = None, stop: threading.Event | None = None) -> dict[str, int]:
    """Deliver due messages batch by batch until none is due; returns counts per outcome."""
    batch_size = batch_size or current_app.config["NOTIFY_BATCH_SIZE"]
    totals: dict[str, int] = {}
    while not (stop and stop.is_set()):
        rows = claim_due(batch_size)
        if not rows:
            break
        for status, n in send_claimed(rows).items():
            totals[status] = totals.get(status, 0) + n
    return totals


def run_worker(poll_seconds: float | None = None, batch_size: int | None = None) -> None:
    """Deliver forever: drain, then wait `poll_seconds`; stop cleanly on SIGTERM/SIGINT."""
    poll = poll_seconds if poll_seconds is not None else current_app.config["NOTIFY_POLL_SECONDS"]
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        log.info("worker stopping after the current message (signal %s)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("notification worker started")
    daily = DailyTasks()
    while not stop.is_set():
        try:
            if (done := daily.run_if_due()) is not None:
                log.info("daily tasks: %s", done)
            counts = drain(batch_size, stop)
        except Exception:  # a database blip must not kill the worker; the lease protects rows
            log.exception("delivery round failed; retrying after a pause")
            db.session.rollback()
            counts = {}
        if counts:
            log.info("delivered: %s", counts)
        db.session.remove()  # a fresh session (and connection state) each round
        stop.wait(poll)
    db.session.remove()
    log.info("notification worker stopped")
