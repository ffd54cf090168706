"""The outbox worker: `flask notify worker` (continuous) and `flask notify drain` (until idle)."""

from __future__ import annotations

import logging
import signal
import threading

from flask import current_app

from ..extensions import db
from .delivery import claim_due, send_claimed

log = logging.getLogger("consent_center.notify")


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
    while not stop.is_set():
        try:
            counts = drain(batch_size, stop)
        except Exception:  # a database blip must not kill the worker; the lease protects rows
            log.exception("delivery round failed; retrying after a pause")
            db.session.rollback()
            counts = {}
        if counts:
            log.info("delivered: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        db.session.remove()  # a fresh session (and connection state) each round
        stop.wait(poll)
    db.session.remove()
    log.info("notification worker stopped")
