"""Writing messages to the outbox, rendered from templates in the member's language."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select

from ..domain import Channel
from ..extensions import db
from ..models import Member, Notification
from ..notify.base import Outgoing

SMS_MAX_CHARS_GSM = 160
SMS_MAX_CHARS_UCS2 = 70


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None


def company_context() -> dict:
    config = current_app.config
    return {
        "company_name": config["COMPANY_NAME"],
        "company_email": config["COMPANY_EMAIL"],
        "company_phone": config["COMPANY_PHONE"],
        "public_base_url": (config.get("PUBLIC_BASE_URL") or "").rstrip("/"),
    }


def render_message(kind: str, channel: str, locale: str, context: dict) -> Rendered:
    """Render a message of `kind` for `channel` in `locale` from templates/email or sms."""
    ctx = dict(company_context(), **context)
    with force_locale(locale):
        if channel == Channel.EMAIL:
            subject = render_template(f"email/{kind}.subject.txt", **ctx).strip()
            text = render_template(f"email/{kind}.txt", **ctx).strip() + "\n"
            html = render_template(f"email/{kind}.html", **ctx)
            return Rendered(subject, text, html)
        text = " ".join(render_template(f"sms/{kind}.txt", **ctx).split())
        return Rendered(None, fit_sms(text), None)


def fit_sms(text: str) -> str:
    """Keep an SMS within one segment: 160 GSM characters, or 70 when it needs Unicode."""
    limit = SMS_MAX_CHARS_GSM if text.isascii() else SMS_MAX_CHARS_UCS2
    return text if len(text) <= limit else text[: limit - 1] + "…"


def existing_notification(dedupe_key: str) -> Notification | None:
    return db.session.scalars(
        select(Notification).where(Notification.dedupe_key == dedupe_key)
    ).first()


def enqueue_notification(
    *,
    member: Member | None,
    channel: str,
    kind: str,
    dedupe_key: str,
    recipient: str,
    locale: str,
    context: dict,
) -> Notification:
    """Write one message to the outbox (no commit); the same dedupe key never writes twice.

    :returns: the new row, or the existing one for this dedupe key.
    """
    found = existing_notification(dedupe_key)
    if found is not None:
        return found
    rendered = render_message(kind, channel, locale, context)
    row = Notification(
        member_id=member.id if member else None,
        channel=channel,
        kind=kind,
        dedupe_key=dedupe_key,
        recipient=recipient,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        locale=locale,
    )
    db.session.add(row)
    db.session.flush()
    return row


def enqueue_secret_notification(
    *,
    member: Member | None,
    channel: str,
    kind: str,
    dedupe_key: str,
    recipient: str,
    locale: str,
    context: dict,
    secret_context: dict,
    masked_context: dict,
    validity_seconds: int | None = None,
) -> tuple[Notification, Outgoing]:
    """Write a message whose secret (a one-time code) must never be stored.

    The row keeps a masked copy; the real text exists only in the returned `Outgoing`, which
    the caller sends at once after commit.
    """
    row = enqueue_notification(
        member=member,
        channel=channel,
        kind=kind,
        dedupe_key=dedupe_key,
        recipient=recipient,
        locale=locale,
        context=dict(context, **masked_context),
    )
    real = render_message(kind, channel, locale, dict(context, **secret_context))
    outgoing = Outgoing(
        notification_id=row.id,
        public_id=row.public_id,
        channel=channel,
        kind=kind,
        recipient=recipient,
        subject=real.subject,
        text=real.text,
        html=real.html,
        validity_seconds=validity_seconds,
    )
    return row, outgoing
