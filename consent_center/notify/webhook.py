"""Webhooks: each subscription's events, read from the change feed at its own cursor and
POSTed, signed, to its URL, in feed order."""

from __future__ import annotations

import json
import logging
import socket
from datetime import datetime, timedelta

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import or_, select
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError

from ..clock import utcnow
from ..extensions import db
from ..models import WebhookSubscription
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


def post_event(session, url: str, secret: str, body: bytes, event: dict, timeout) -> DeliveryResult:
    """POST one event's JSON `body`, signed with the subscription's `secret`."""
    timestamp = int(utcnow().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret, timestamp, body),
        EVENT_ID_HEADER: event["id"],
        EVENT_TYPE_HEADER: event["type"],
    }
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
# Each subscription is delivered by one worker at a time (a lease on its row), in feed
# order, from its own cursor: a receiver that is down holds back only its own events. An
# event is retried with backoff up to NOTIFY_MAX_ATTEMPTS tries; the cursor moves past it
# once it is delivered, refused for good (a 4xx other than 408/425/429) or given up on.


def _claim_subscription(now: datetime, done: set[int]) -> WebhookSubscription | None:
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
    if sub is not None:
        sub.lease_until = now + timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])
        db.session.commit()
    return sub


def deliver_webhooks(batch_size: int | None = None, stop=None) -> dict[str, int]:
    """Deliver every due subscription's new events; returns counts per outcome: ``sent``,
    ``pending`` (a try failed, retried later), ``failed`` (refused for good) and ``dead``
    (given up after NOTIFY_MAX_ATTEMPTS tries)."""
    batch_size = batch_size or current_app.config["NOTIFY_BATCH_SIZE"]
    totals: dict[str, int] = {}
    done: set[int] = set()
    with webhook_session() as session:  # keep-alive to each receiver
        while not (stop and stop.is_set()):
            sub = _claim_subscription(utcnow(), done)
            if sub is None:
                break
            done.add(sub.id)
            for outcome, n in _deliver_subscription(session, sub, batch_size, stop).items():
                totals[outcome] = totals.get(outcome, 0) + n
    return totals


def _deliver_subscription(session, sub: WebhookSubscription, batch_size, stop) -> dict:
    counts: dict[str, int] = {}
    url, secret, events = sub.url, sub.secret, sub.event_set
    timeout = current_app.config.get("WEBHOOK_TIMEOUT", 10)
    max_attempts = current_app.config["NOTIFY_MAX_ATTEMPTS"]
    cursor = decode_cursor(sub.feed_cursor or None)
    stuck = False
    while not stuck and not (stop and stop.is_set()):
        page = read_change_feed(cursor, batch_size)
        db.session.commit()  # hold no transaction open while receivers answer
        handed = 0
        for item in page.items:
            if item["type"] in events:
                body = json.dumps(item, separators=(",", ":"), sort_keys=True).encode()
                result = post_event(session, url, secret, body, item, timeout)
                outcome = _record(sub, result, item["id"], max_attempts)
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome == "pending":
                    stuck = True
                    break
            handed += 1
            cursor = page.cursor_after(handed)
            sub.feed_cursor = encode_cursor(cursor)
            db.session.commit()  # each delivery is remembered at once: at least once, not twice
        if not page.has_more:
            break
    sub.lease_until = None
    db.session.commit()
    return counts


def _record(sub: WebhookSubscription, result: DeliveryResult, event_id: str, max_attempts: int):
    """Note a try on the subscription (committed with the cursor); the outcome's name."""
    now = utcnow()
    if result.ok:
        sub.attempts, sub.next_attempt_at, sub.last_error = 0, None, None
        sub.last_delivered_at = now
        return "sent"
    sub.attempts += 1
    sub.last_error = f"{event_id}: {result.error}"[:200]
    if result.transient and sub.attempts < max_attempts:
        sub.next_attempt_at = now + timedelta(seconds=backoff_seconds(sub.attempts))
        db.session.commit()
        return "pending"
    log.warning("webhook %s: event %s not delivered (%s)", sub.public_id, event_id, result.error)
    sub.attempts, sub.next_attempt_at = 0, None
    return "dead" if result.transient else "failed"
