"""Prometheus metrics: what every process counts, and what is read when Prometheus scrapes.

Each process counts into prometheus_client's metrics. Under gunicorn (many processes) and
beside the notify workers, `METRICS_DIR` turns on prometheus_client's multiprocess mode:
`observability.prepare_multiprocess` (first in `create_app`; `gunicorn.conf.py` in the master)
gives each process tree its own directory `METRICS_DIR/<pid>` of memory-mapped files, and the
node's metrics server (`flask metrics serve`, bound to `METRICS_BIND`, loopback by default)
adds up every directory under `METRICS_DIR`. A directory whose process has ended is removed
at the next scrape (its counters restart, which Prometheus's `rate()` handles); a gunicorn
worker that exits is marked dead by the `child_exit` hook so its in-flight gauge stops counting.

Labels are bounded: an endpoint name (never a raw path), a status code, a channel, a kind, a
purpose. Nothing personal is ever a label.

Counts that belong to a transaction (consent changes, wrong codes) are added when it commits
(`count_after_commit`), so a rolled-back request counts nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from .clock import utcnow
from .extensions import db
from .models import Notification
from .models.notification import TO_DELIVER
from .observability import MULTIPROC_ENV
from .services.sms_guard import sms_budget_use

log = logging.getLogger("consent_center.metrics")

# Request latency: most pages take a few milliseconds; exports and slow databases much more.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# From a message's creation to the provider's acceptance: a code in a second, a fan-out in
# minutes, a retried message in hours.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)

REQUESTS = Counter(
    "cc_http_requests",
    "Requests answered, by endpoint name (not path), method and status code.",
    ("endpoint", "method", "status"),
)
REQUEST_SECONDS = Histogram(
    "cc_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response body, by endpoint.",
    ("endpoint",),
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "cc_http_requests_in_flight",
    "Requests being answered now.",
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter(
    "cc_rate_limit_refusals",
    "Requests refused with 429 (a rate limit, a code budget, a locked address), by endpoint.",
    ("endpoint",),
)
DELIVERIES = Counter(
    "cc_notify_deliveries",
    "Outbox messages settled or retried by the workers, by channel, kind and outcome "
    "(sent, failed, dead, pending = to retry, lost = another worker had it).",
    ("channel", "kind", "outcome"),
)
DELIVERY_SECONDS = Histogram(
    "cc_notify_delivery_latency_seconds",
    "Time from a message's creation to its acceptance by the provider, by channel.",
    ("channel",),
    buckets=DELIVERY_BUCKETS,
)
CODES_SENT = Counter(
    "cc_codes_sent",
    "One-time codes and approval links accepted by the provider, by channel.",
    ("channel",),
)
CODE_FAILURES = Counter(
    "cc_code_failures",
    "Wrong codes entered (outcome=wrong) and accounts locked after too many (outcome=locked).",
    ("outcome",),
)
CONSENT_CHANGES = Counter(
    "cc_consent_changes",
    "Consent events committed to the ledger, by purpose and whether consent was given.",
    ("purpose", "granted"),
)

_AFTER_COMMIT = "consent_center.metrics"


def count_after_commit(session, counter) -> None:
    """Increment `counter` (a labelled child) once `session`'s transaction commits."""
    session.info.setdefault(_AFTER_COMMIT, []).append(counter)


def _committed(session) -> None:
    for counter in session.info.pop(_AFTER_COMMIT, ()):
        counter.inc()


def _rolled_back(session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def listen_for_commits() -> None:
    """Count the pending increments of every session when it commits (once per process)."""

    if not event.contains(Session, "after_commit", _committed):
        event.listen(Session, "after_commit", _committed)
        event.listen(Session, "after_rollback", _rolled_back)


# Each request's labelled children, found once: `labels()` takes a lock and builds a key.
_request_children: dict[tuple[str, str, str], tuple] = {}


def count_request(endpoint: str, method: str, status: str, seconds: float) -> None:
    """One request has ended (`observability.RequestObserver`)."""
    key = (endpoint, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            REQUESTS.labels(endpoint, method, status),
            REQUEST_SECONDS.labels(endpoint),
            RATE_LIMITED.labels(endpoint) if status == "429" else None,
        )
    IN_FLIGHT.dec()
    children[0].inc()
    children[1].observe(seconds)
    if children[2] is not None:
        children[2].inc()


def count_delivery(channel: str, kind: str, outcome: str, age_seconds: float | None,
                   code: bool) -> None:
    """One outbox message's outcome; `age_seconds` since it was written, when it was sent."""
    DELIVERIES.labels(channel, kind, outcome).inc()
    if outcome == "sent" and age_seconds is not None:
        DELIVERY_SECONDS.labels(channel).observe(max(age_seconds, 0.0))
        if code:
            CODES_SENT.labels(channel).inc()


# --- The node's metrics server ---------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class NodeCollector:
    """Every process's metrics under `METRICS_DIR`, added up; removes the directories of
    processes that have ended."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def collect(self) -> Iterable:
        files = []
        for child in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            if not child.is_dir():
                continue
            if child.name.isdigit() and not _alive(int(child.name)):
                shutil.rmtree(child, ignore_errors=True)
                continue
            files.extend(str(f) for f in child.glob("*.db"))
        return MultiProcessCollector.merge(files, accumulate=True)


class _Default:
    """This process's own metrics (no multiprocess mode: development and tests)."""

    def collect(self) -> Iterable:
        return REGISTRY.collect()


class ScrapeCollector:
    """Figures read when Prometheus scrapes: the outbox's depth and age by channel and status
    (one grouped query over the partial index of messages still to deliver), and the hourly
    SMS budget's use (one read of the rate-limit storage)."""

    def __init__(self, app) -> None:
        self.app = app

    def collect(self) -> Iterable:
        depth = GaugeMetricFamily(
            "cc_outbox_messages",
            "Messages still to deliver, by channel and status (pending, sending).",
            labels=("channel", "status"),
        )
        age = GaugeMetricFamily(
            "cc_outbox_oldest_age_seconds",
            "Age of the oldest message still to deliver, by channel and status.",
            labels=("channel", "status"),
        )
        used = GaugeMetricFamily(
            "cc_sms_budget_used", "Text messages counted against this hour's SMS budget."
        )
        left = GaugeMetricFamily("cc_sms_budget_left", "Text messages left in this hour's budget.")
        up = GaugeMetricFamily(
            "cc_scrape_source_up", "Whether a scrape-time source answered.", labels=("source",)
        )
        with self.app.app_context():
            try:
                for channel, status, count, seconds in outbox_depth():
                    depth.add_metric((channel, status), count)
                    age.add_metric((channel, status), seconds)
                up.add_metric(("database",), 1)
            except Exception:  # the scrape still answers; readiness reports the database
                log.warning("metrics: outbox depth unavailable", exc_info=True)
                up.add_metric(("database",), 0)
            try:
                spent, remaining = sms_budget_use()
                used.add_metric((), spent)
                left.add_metric((), remaining)
                up.add_metric(("rate_limit_storage",), 1)
            except Exception:
                log.warning("metrics: SMS budget unavailable", exc_info=True)
                up.add_metric(("rate_limit_storage",), 0)
        return [depth, age, used, left, up]


def outbox_depth() -> list[tuple[str, str, int, float]]:
    """(channel, status, messages, age of the oldest in seconds) of the messages still to
    deliver: one query on the partial index `ix_notification_due`."""
    now = utcnow()
    rows = db.session.execute(
        select(
            Notification.channel,
            Notification.status,
            func.count(),
            func.min(Notification.created_at),
        )
        .where(text(TO_DELIVER))
        .group_by(Notification.channel, Notification.status)
    ).all()
    db.session.rollback()
    return [
        (channel, status, count, (now - oldest).total_seconds() if oldest else 0.0)
        for channel, status, count, oldest in rows
    ]


def registry_for(app):
    """The registry the metrics server exposes: every process of this node (or this process
    alone, without `METRICS_DIR`) and the scrape-time figures."""

    registry = CollectorRegistry(auto_describe=False)
    root = app.config.get("METRICS_DIR")
    registry.register(NodeCollector(root) if root else _Default())
    registry.register(ScrapeCollector(app))
    return registry


def metrics_wsgi_app(app):
    """A WSGI app answering every GET with the node's metrics in Prometheus's text format."""

    return make_wsgi_app(registry_for(app))


WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


def metrics_address(app, bind: str) -> tuple[str, int]:
    """(host, port) from "host:port". Production refuses a wildcard host: the metrics
    server must listen on an address chosen for the scraper, never on every interface.

    :raises ValueError: for a malformed or (in production) wildcard address.
    """
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit():
        raise ValueError(f"METRICS_BIND must be host:port, not {bind!r}")
    if host in WILDCARD_HOSTS and app.config.get("ENV_NAME") == "production":
        raise ValueError(
            "METRICS_BIND listens on every interface: in production name the private "
            "address the scraper reaches (or 127.0.0.1 with a local agent)."
        )
    return host or "0.0.0.0", int(port)


def serve_metrics(app, bind: str) -> None:
    """Serve the node's metrics on `bind` ("host:port") until SIGTERM or SIGINT."""

    host, port = metrics_address(app, bind)

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - wsgiref's signature
            pass

    server = make_server(host, port, metrics_wsgi_app(app), handler_class=_Quiet)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics served on %s", bind)
    stop.wait()
    server.shutdown()
    server.server_close()


def mark_process_dead(pid: int) -> None:
    """A gunicorn worker ended: its live gauges stop counting (gunicorn.conf.py child_exit)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
