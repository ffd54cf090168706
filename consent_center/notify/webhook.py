"""Webhooks: each subscription's events, read from the change feed at its own cursor and
POSTed, signed, to its URL, in feed order."""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError

from ..clock import utcnow
from ..extensions import db
from ..models import WebhookSubscription
from ..observability import REQUEST_ID_HEADER
from ..services.downstream import decode_cursor, encode_cursor, read_change_feed
from ..services.outgoing_webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    RefusedReceiverAddress,
    resolve_receiver,
    signature_header,
)
from .base import DeliveryResult
from .delivery import backoff_seconds

log = logging.getLogger("consent_center.notify")

USER_AGENT = "ConsentCenter-Webhooks/1"
# Worth trying again later; every other 4xx means the receiver refuses this event for good.
TRANSIENT_STATUSES = {408, 425, 429}


def classify_status(status: int) -> DeliveryResult:
    """2xx: delivered; 408/425/429 and 5xx: try again; anything else: refused for good."""
    if 200 <= status < 300:
        return DeliveryResult(ok=True, provider_id=f"http-{status}")
    error = f"HTTP {status}"
    if status in TRANSIENT_STATUSES or status >= 500:
        return DeliveryResult(ok=False, transient=True, error=error)
    if 300 <= status < 400:
        error += " (redirects are not followed)"
    return DeliveryResult(ok=False, transient=False, error=error)


class _CheckedConnection:
    """A connection that resolves its host once, refuses it if any address is one webhooks
    may not reach (services/outgoing_webhooks.py), and connects to an address it checked:
    no second lookup can switch it. TLS still verifies the certificate for the host name."""

    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve_receiver(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        name, error = self._dns_host, None
        try:
            for address in addresses:
                self._dns_host = address
                try:
                    return super()._new_conn()
                except ConnectTimeoutError as exc:  # refused or timed out: try the next one
                    error = exc
        finally:
            self._dns_host = name
        raise error or NameResolutionError(self.host, self, socket.gaierror("no address"))


class _CheckedHTTPConnection(_CheckedConnection, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnection, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """requests' adapter whose every connection is a checked one."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPPool,
            "https": _CheckedHTTPSPool,
        }


def webhook_session() -> requests.Session:
    """A session for deliveries: unless WEBHOOK_ALLOW_PRIVATE, every connection is checked,
    and no proxy from the environment is used (it would resolve the name itself)."""
    session = requests.Session()
    if not current_app.config.get("WEBHOOK_ALLOW_PRIVATE"):
        session.trust_env = False
        adapter = CheckedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def post_event(
    session, url: str, secret: str, body: bytes, event: dict, timeout, request_id: str | None
) -> DeliveryResult:
    """POST one event's JSON `body`, signed with the subscription's `secret`, with the id of
    the request that made the change (`X-Request-Id`) when there was one."""
    timestamp = int(utcnow().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret, timestamp, body),
        EVENT_ID_HEADER: event["id"],
        EVENT_TYPE_HEADER: event["type"],
    }
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    log.info(
        "webhook %s %s",
        event["type"],
        event["id"],
        extra={"request_id": request_id, "event": event["id"], "kind": event["type"]},
    )
    try:
        response = session.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except RefusedReceiverAddress as exc:  # never retried: the address is the problem
        return DeliveryResult(ok=False, error=f"receiver address refused: {exc}")
    except requests.RequestException as exc:  # timeouts, refused connections, bad TLS
        return DeliveryResult(ok=False, transient=True, error=type(exc).__name__)
    response.close()
    return classify_status(response.status_code)


# --- Delivering the feed, one cursor per subscription ------------------------------------
# Each subscription is delivered by one worker at a time, in feed order, from its own cursor:
# a receiver that is down holds back only its own events. The worker leases the
# subscription's row and renews the lease while it works (`_Lease`), so a receiver slower
# than the lease never has a second worker posting beside it; every write of the cursor
# checks that the lease is still this worker's. An event is retried with backoff up to
# NOTIFY_MAX_ATTEMPTS tries; the cursor moves past it once it is delivered, refused for good
# (a 4xx other than 408/425/429) or given up on.

_table = WebhookSubscription.__table__


@dataclass
class _Claimed:
    id: int
    public_id: str
    url: str
    secret: str
    events: frozenset[str]
    cursor: str
    attempts: int


def _claim_subscription(now: datetime, done: set[int]) -> tuple[_Claimed, datetime] | None:
    """Lease the next due subscription not yet served this round, and commit the lease."""
    query = (
        select(WebhookSubscription)
        .where(
            WebhookSubscription.active.is_(True),
            or_(
                WebhookSubscription.next_attempt_at.is_(None),
                WebhookSubscription.next_attempt_at <= now,
            ),
            or_(WebhookSubscription.lease_until.is_(None), WebhookSubscription.lease_until < now),
        )
        .order_by(WebhookSubscription.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if done:
        query = query.where(WebhookSubscription.id.not_in(done))
    sub = db.session.scalars(query).first()
    if sub is None:
        db.session.commit()
        return None
    claimed = _Claimed(
        sub.id, sub.public_id, sub.url, sub.secret, sub.event_set, sub.feed_cursor, sub.attempts
    )
    until = now + timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])
    db.session.execute(_table.update().where(_table.c.id == sub.id).values(lease_until=until))
    db.session.commit()
    return claimed, until


class _Lease:
    """The worker's lease on one subscription, renewed every third of NOTIFY_LEASE_SECONDS on
    a connection of its own while the worker posts. `write(values)` updates the row only
    while the lease is still this worker's (else `lost` is set and nothing is written)."""

    def __init__(self, sub_id: int, until: datetime) -> None:
        self._engine = db.engine
        self._seconds = current_app.config["NOTIFY_LEASE_SECONDS"]
        self.sub_id, self.until, self.lost = sub_id, until, False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _ours(self):
        return (_table.c.id == self.sub_id) & (_table.c.lease_until == self.until)

    def write(self, **values) -> bool:
        with self._lock:
            if not self.lost:
                done = db.session.execute(_table.update().where(self._ours()).values(**values))
                self.lost = done.rowcount != 1
            db.session.commit()
            return not self.lost

    def _run(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            with self._lock:
                if self.lost:
                    return
                until = utcnow() + timedelta(seconds=self._seconds)
                try:
                    with self._engine.begin() as conn:
                        done = conn.execute(
                            _table.update().where(self._ours()).values(lease_until=until)
                        )
                except SQLAlchemyError:
                    log.warning("webhook lease renewal failed; retrying", exc_info=True)
                    continue
                if done.rowcount == 1:
                    self.until = until
                else:
                    self.lost = True


def deliver_webhooks(batch_size: int | None = None, stop=None) -> dict[str, int]:
    """Deliver every due subscription's new events; returns counts per outcome: ``sent``,
    ``pending`` (a try failed, retried later), ``failed`` (refused for good) and ``dead``
    (given up after NOTIFY_MAX_ATTEMPTS tries)."""
    batch_size = batch_size or current_app.config["NOTIFY_BATCH_SIZE"]
    totals: dict[str, int] = {}
    done: set[int] = set()
    with webhook_session() as session:  # keep-alive to each receiver
        while not (stop and stop.is_set()):
            claim = _claim_subscription(utcnow(), done)
            if claim is None:
                break
            sub, until = claim
            done.add(sub.id)
            with _Lease(sub.id, until) as lease:
                counts = _deliver_subscription(session, sub, lease, batch_size, stop)
                lease.write(lease_until=None)
            for outcome, n in counts.items():
                totals[outcome] = totals.get(outcome, 0) + n
    return totals


def _deliver_subscription(session, sub: _Claimed, lease: _Lease, batch_size, stop) -> dict:
    counts: dict[str, int] = {}
    timeout = current_app.config.get("WEBHOOK_TIMEOUT", 10)
    max_attempts = current_app.config["NOTIFY_MAX_ATTEMPTS"]
    cursor, attempts = decode_cursor(sub.cursor or None), sub.attempts
    while not (stop and stop.is_set()):
        page = read_change_feed(cursor, batch_size)
        db.session.commit()  # hold no transaction open while receivers answer
        for handed, item in enumerate(page.items, start=1):
            values: dict = {}
            if item["type"] in sub.events:
                body = json.dumps(item, separators=(",", ":"), sort_keys=True).encode()
                result = post_event(
                    session, sub.url, sub.secret, body, item, timeout, page.request_ids[handed - 1]
                )
                outcome, values = _outcome(sub, result, item["id"], attempts + 1, max_attempts)
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome == "pending":
                    lease.write(**values)
                    return counts
            cursor, attempts = page.cursor_after(handed), 0
            # Each event is remembered at once: at least once, and not again after a 2xx.
            if not lease.write(feed_cursor=encode_cursor(cursor), **values):
                return counts  # another worker has it now
        if not page.has_more:
            return counts
    return counts


def _outcome(sub: _Claimed, result: DeliveryResult, event_id: str, tries: int, max_tries: int):
    """The outcome of a try and the subscription's columns to write with it."""
    now = utcnow()
    if result.ok:
        return "sent", {
            "attempts": 0, "next_attempt_at": None, "last_error": None, "last_delivered_at": now
        }  # fmt: skip
    error = f"{event_id}: {result.error}"[:200]
    if result.transient and tries < max_tries:
        retry = now + timedelta(seconds=backoff_seconds(tries))
        return "pending", {"attempts": tries, "next_attempt_at": retry, "last_error": error}
    log.warning("webhook %s: event %s not delivered (%s)", sub.public_id, event_id, result.error)
    return ("dead" if result.transient else "failed"), {
        "attempts": 0, "next_attempt_at": None, "last_error": error
    }  # fmt: skip
