"""Webhooks: POST each event, signed, to its subscription's URL; and the claim rule that
keeps a member's events in order per subscription."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable, Iterator

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import exists, not_, or_, select
from sqlalchemy.orm import aliased
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError

from ..clock import utcnow
from ..domain import NotificationStatus
from ..extensions import db
from ..models import Notification, WebhookSubscription
from ..observability import REQUEST_ID_HEADER
from ..services.outgoing_webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    RefusedReceiverAddress,
    resolve_receiver,
    signature_header,
)
from .base import DeliveryResult, Outgoing

log = logging.getLogger("consent_center.notify")
USER_AGENT = "ConsentCenter-Webhooks/1"
# Worth trying again later; every other 4xx means the receiver refuses this event for good.
TRANSIENT_STATUSES = {408, 425, 429}


def in_order_condition():
    """SQL: the row has no ordering key, or no earlier row with its key is still undelivered
    (pending, or being sent). Rows that failed for good or died no longer hold others back."""
    earlier = aliased(Notification)
    return or_(
        Notification.order_key.is_(None),
        not_(
            exists(
                select(earlier.id).where(
                    earlier.order_key == Notification.order_key,
                    earlier.id < Notification.id,
                    earlier.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]),
                )
            ).correlate(Notification)
        ),
    )


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


class WebhookTransport:
    """Posts each message's JSON body to its subscription, with a signature over it; takes
    each from `messages` only when it is about to be sent."""

    def send_each(self, messages: Iterable[Outgoing]) -> Iterator[DeliveryResult]:
        subscriptions: dict[str, tuple | None] = {}
        timeout = current_app.config.get("WEBHOOK_TIMEOUT", 10)
        with webhook_session() as session:  # keep-alive to a receiver within the batch
            for msg in messages:
                if msg.recipient not in subscriptions:
                    subscriptions[msg.recipient] = self._subscription(msg.recipient)
                found = subscriptions[msg.recipient]
                if found is None or not found[2]:
                    yield DeliveryResult(ok=False, error="subscription removed")
                    continue
                url, secret, _active = found
                yield self._post(session, url, secret, msg, timeout)

    @staticmethod
    def _subscription(public_id: str) -> tuple | None:
        found = db.session.execute(
            select(
                WebhookSubscription.url, WebhookSubscription.secret, WebhookSubscription.active
            ).where(WebhookSubscription.public_id == public_id)
        ).first()
        db.session.commit()  # hold no transaction open while receivers answer
        return tuple(found) if found is not None else None

    def _post(self, session, url: str, secret: str, msg: Outgoing, timeout) -> DeliveryResult:
        body = msg.text.encode()
        try:
            event_id = json.loads(body)["id"]
        except (ValueError, KeyError, TypeError):
            return DeliveryResult(ok=False, error="no event in the message")
        timestamp = int(utcnow().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret, timestamp, body),
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: msg.kind,
        }
        if msg.request_id:
            headers[REQUEST_ID_HEADER] = msg.request_id
        log.info("webhook %s to subscription %s", msg.kind, msg.recipient,
                 extra={"request_id": msg.request_id, "event": event_id, "kind": msg.kind})
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
