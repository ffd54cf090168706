"""Outgoing events: every consent change and erasure becomes a change event, and one signed
webhook delivery per subscription, through the notification outbox.

Both are written in the transaction that makes the change, so an event exists exactly when
its cause committed. Deliveries are at least once (the outbox retries), carry the event id
for de-duplication, and arrive in order per member and subscription: the outbox does not
claim a webhook row while an earlier one with the same `order_key` is still undelivered.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from ..clock import utcnow
from ..domain import Channel, NotificationStatus
from ..extensions import db
from ..models import (
    ChangeEvent,
    ConsentEvent,
    Member,
    Notification,
    NotificationSubject,
    PolicyVersion,
    WebhookSubscription,
)
from .audit import record_audit
from .errors import Invalid, NotFound
from .notifications import member_subject

CONSENT_CHANGED = "consent.changed"
MEMBER_ERASED = "member.erased"
EVENT_TYPES = (CONSENT_CHANGED, MEMBER_ERASED)
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Consent-Signature"
EVENT_ID_HEADER = "X-Consent-Event-Id"
EVENT_TYPE_HEADER = "X-Consent-Event-Type"


def iso(value: datetime | None) -> str | None:
    """A UTC time as ISO 8601 with microseconds and a `Z`, as every API document shows it."""
    if value is None:
        return None
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_document(
    *,
    event_id: str,
    event_type: str,
    created_at: datetime,
    member_id: str | None,
    purpose: str | None = None,
    granted: bool | None = None,
    policy_version: int | None = None,
    actor: str | None = None,
    method: str | None = None,
) -> dict:
    """One event as the change feed lists it and a webhook delivers it (the same shape)."""
    document: dict = {
        "id": event_id,
        "type": event_type,
        "created_at": iso(created_at),
        "member_id": member_id,
    }
    if event_type == CONSENT_CHANGED:
        document["consent"] = {
            "purpose": purpose,
            "granted": granted,
            "policy_version": policy_version,
            "actor": actor,
            "method": method,
        }
    return document


def emit_event(
    event_type: str, member: Member, *, consent_event: ConsentEvent | None = None
) -> ChangeEvent:
    """Record a change for downstream systems and enqueue its webhook deliveries (no commit).

    Call it in the transaction that makes the change: from `set_consent` once the ledger row
    is written, and from `erase_member` before the member's public id is replaced (an erasure
    notice must name the member as downstream systems knew them).

    :param event_type: ``consent.changed`` (with `consent_event`) or ``member.erased``.
    """
    now = utcnow()
    erased = event_type == MEMBER_ERASED
    if erased:
        # set_consent holds this lock already; an erasure takes it too, so the member's change
        # events are numbered in the order their transactions commit.
        db.session.execute(select(Member.id).where(Member.id == member.id).with_for_update())
        forget_expired_erasure_notices(now)
    change = ChangeEvent(
        public_id=str(uuid.uuid4()),
        type=event_type,
        member_id=member.id,
        consent_event_id=consent_event.id if consent_event is not None else None,
        former_public_id=member.public_id if erased else None,
        created_at=consent_event.created_at if consent_event is not None else now,
    )
    db.session.add(change)
    subscriptions = [
        (sub_id, public_id)
        for sub_id, public_id, events in db.session.execute(
            select(
                WebhookSubscription.id, WebhookSubscription.public_id, WebhookSubscription.events
            ).where(WebhookSubscription.active.is_(True))
        )
        if event_type in events.split(",")
    ]
    if subscriptions:
        body = json.dumps(
            _document_for(change, member, consent_event), separators=(",", ":"), sort_keys=True
        )
        rows = []
        for sub_id, sub_public_id in subscriptions:
            rows.append(
                Notification(
                    member_id=None,  # not a message to the member: kept off their pages
                    channel=Channel.WEBHOOK,
                    kind=event_type,
                    dedupe_key=f"webhook:{sub_public_id}:{change.public_id}",
                    recipient=sub_public_id,
                    body_text=body,
                    order_key=f"{sub_id}:{member.id}",
                    locale="en",
                    status=NotificationStatus.PENDING,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        db.session.add_all(rows)
        db.session.flush()
        # Each delivery names its data subject, so erasure finds the bodies that name them.
        subject = member_subject(member)
        db.session.add_all(
            NotificationSubject(notification_id=row.id, subject_key=subject) for row in rows
        )
    db.session.flush()
    return change


def _document_for(change: ChangeEvent, member: Member, consent_event: ConsentEvent | None):
    if consent_event is None:
        return event_document(
            event_id=change.public_id,
            event_type=change.type,
            created_at=change.created_at,
            member_id=change.former_public_id or member.public_id,
        )
    number = None
    if consent_event.policy_version_id is not None:
        number = db.session.scalar(
            select(PolicyVersion.number).where(PolicyVersion.id == consent_event.policy_version_id)
        )
    return event_document(
        event_id=change.public_id,
        event_type=change.type,
        created_at=change.created_at,
        member_id=member.public_id,
        purpose=consent_event.purpose,
        granted=consent_event.granted,
        policy_version=number,
        actor=consent_event.actor,
        method=consent_event.method,
    )


def erasure_notice_cutoff(now: datetime | None = None) -> datetime:
    """Erasure notices older than this no longer name the former member number."""
    days = current_app.config["API_ERASURE_NOTICE_DAYS"]
    return (now or utcnow()) - timedelta(days=days)


def forget_expired_erasure_notices(now: datetime | None = None) -> int:
    """Clear the former member number from erasure notices past their notice period (no
    commit). Runs with every erasure and daily (`flask retention run`); the feed hides
    expired ones in any case.

    :returns: how many notices were cleared.
    """
    return db.session.execute(
        update(ChangeEvent)
        .where(
            ChangeEvent.former_public_id.is_not(None),
            ChangeEvent.created_at < erasure_notice_cutoff(now),
        )
        .values(former_public_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount


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
    sub = WebhookSubscription(url=url, secret=secret, events=",".join(events), active=True)
    db.session.add(sub)
    db.session.flush()
    record_audit("webhook.added", actor=None, subscription=sub.public_id, events=sub.events)
    return NewSubscription(sub.public_id, url, events, secret)


def list_webhooks() -> list[WebhookSubscription]:
    """Every subscription, oldest first."""
    return list(db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def remove_webhook(public_id: str) -> int:
    """Delete a subscription; its undelivered events are marked failed (no commit).

    :returns: how many undelivered events were dropped.
    :raises NotFound: for an unknown id.
    """
    sub = db.session.scalars(
        select(WebhookSubscription).where(WebhookSubscription.public_id == public_id)
    ).first()
    if sub is None:
        raise NotFound(_l("No such webhook subscription."))
    dropped = db.session.execute(
        update(Notification)
        .where(
            Notification.channel == Channel.WEBHOOK,
            Notification.recipient == sub.public_id,
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]),
        )
        .values(
            status=NotificationStatus.FAILED,
            last_error="subscription removed",
            lease_until=None,
            body_text=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.delete(sub)
    record_audit("webhook.removed", actor=None, subscription=public_id, dropped=dropped)
    db.session.flush()
    return dropped
