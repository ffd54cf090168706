"""Webhook subscriptions: the receivers of the change feed, and how deliveries are signed.

The notify worker delivers each subscription's events from the change feed
(services/downstream.py) with a cursor stored on the subscription (notify/webhook.py):
a consent change writes nothing for webhooks. Deliveries are at least once, carry the event
id for de-duplication, and arrive in feed order per subscription (so in order per member).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from ..extensions import db
from ..models import ChangeEvent, ConsentEvent, WebhookSubscription
from .audit import record_audit
from .downstream import (
    CONSENT_CHANGED,
    EVENT_TYPES,
    MEMBER_ERASED,
    decode_cursor,
    encode_cursor,
    feed_condition,
    feed_end,
)
from .errors import Invalid, NotFound

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Consent-Signature"
EVENT_ID_HEADER = "X-Consent-Event-Id"
EVENT_TYPE_HEADER = "X-Consent-Event-Type"


# --- Signing ---------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``f"{timestamp}."`` followed by the exact body bytes, as hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Consent-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC>``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


# --- Subscriptions ---------------------------------------------------------------------


@dataclass(frozen=True)
class NewSubscription:
    """A new subscription: `secret` is shown once, when it is made."""

    public_id: str
    url: str
    events: tuple[str, ...]
    secret: str


def parse_events(value: str) -> tuple[str, ...]:
    """Split and check a comma-separated list of event types.

    :raises Invalid: for an empty list or an unknown type.
    """
    events = tuple(dict.fromkeys(e.strip() for e in value.split(",") if e.strip()))
    if not events or any(e not in EVENT_TYPES for e in events):
        raise Invalid(
            _l("Use one or more of these events: %(events)s.", events=", ".join(EVENT_TYPES))
        )
    return events


def check_url(url: str) -> str:
    """:raises Invalid: unless `url` is an absolute http(s) URL without credentials."""
    url = url.strip()
    parts = urlsplit(url)
    if (
        len(url) > 2000
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.fragment
    ):
        raise Invalid(_l("Give an absolute http or https URL (no user name, password or #)."))
    return url


# --- Where receivers may be ------------------------------------------------------------
# A receiver's URL is chosen by whoever adds it, and the worker posts from inside our
# network: without these checks a URL could reach the cloud metadata service, the database
# or anything else only the servers can reach (server-side request forgery). Checked when a
# receiver is added and again, after resolving its name, at every connection the worker
# makes (notify/webhook.py connects to exactly the address checked, so a name that changes
# its answer in between cannot redirect the post). WEBHOOK_ALLOW_PRIVATE lifts both.


class RefusedReceiverAddress(Exception):
    """A receiver's name resolved to an address webhooks may not reach."""


def refused_address_reason(address: str) -> str | None:
    """Why a webhook receiver may not be at the IP `address`, or None when it may.

    Loopback, link-local (169.254.0.0/16 with the cloud metadata address 169.254.169.254,
    fe80::/10), private (10/8, 172.16/12, 192.168/16, fc00::/7), multicast, unspecified,
    reserved and every other non-public range are refused, IPv4-mapped IPv6 as the IPv4
    address it maps.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, matches in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    ):
        if matches:
            return f"{address} is a {kind} address"
    return None


def resolve_receiver(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to now, in resolver order.

    :raises RefusedReceiverAddress: when any of them is refused (a name with one private
        address among public ones is refused: the connection could go to either).
    :raises OSError: when the name does not resolve.
    """
    name = host.strip("[]")
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        reason = refused_address_reason(address)
        if reason is not None:
            said = reason if name == address else f"{name} resolves to {reason}"
            raise RefusedReceiverAddress(said)
    return addresses


def check_receiver_address(url: str) -> None:
    """Refuse a receiver whose host is, or now resolves to, an address webhooks may not
    reach. A name that does not resolve now is accepted: every connection checks again.

    :raises Invalid: naming the address and why it is refused.
    """
    try:
        resolve_receiver(urlsplit(url).hostname or "")
    except RefusedReceiverAddress as exc:
        raise Invalid(
            _l(
                "Webhook receivers may not be on loopback, private, link-local, multicast or "
                "reserved addresses (%(reason)s). Use the receiver's public address.",
                reason=str(exc),
            )
        ) from None
    except (OSError, UnicodeError):
        return


def add_webhook(url: str, events: tuple[str, ...]) -> NewSubscription:
    """Subscribe `url` to `events` with a new random signing secret (no commit).

    :raises Invalid: for a bad URL, a receiver on an address webhooks may not reach (unless
        WEBHOOK_ALLOW_PRIVATE), or unknown event types.
    """
    url = check_url(url)
    if not current_app.config.get("WEBHOOK_ALLOW_PRIVATE"):
        check_receiver_address(url)
    events = parse_events(",".join(events))
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    # It receives what happens from now on.
    sub = WebhookSubscription(
        url=url,
        secret=secret,
        events=",".join(events),
        active=True,
        feed_cursor=encode_cursor(feed_end()),
    )
    db.session.add(sub)
    db.session.flush()
    record_audit("webhook.added", actor=None, subscription=sub.public_id, events=sub.events)
    return NewSubscription(sub.public_id, url, events, secret)


def list_webhooks() -> list[WebhookSubscription]:
    """Every subscription, oldest first."""
    return list(db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def remove_webhook(public_id: str) -> int:
    """Delete a subscription (no commit): the events past its cursor are not delivered.

    :returns: how many events of its types were still waiting for it.
    :raises NotFound: for an unknown id.
    """
    sub = db.session.scalars(
        select(WebhookSubscription).where(WebhookSubscription.public_id == public_id)
    ).first()
    if sub is None:
        raise NotFound(_l("No such webhook subscription."))
    dropped = waiting_events(sub)
    db.session.delete(sub)
    record_audit("webhook.removed", actor=None, subscription=public_id, dropped=dropped)
    db.session.flush()
    return dropped


def waiting_events(sub: WebhookSubscription) -> int:
    """How many committed events of the subscription's types are past its cursor."""
    cursor = decode_cursor(sub.feed_cursor or None)
    counts = []
    if CONSENT_CHANGED in sub.event_set:
        counts.append(
            select(func.count()).where(feed_condition(ConsentEvent.id, cursor.ledger))
        )
    if MEMBER_ERASED in sub.event_set:
        counts.append(select(func.count()).where(feed_condition(ChangeEvent.id, cursor.notices)))
    return sum(db.session.scalar(count) for count in counts)
