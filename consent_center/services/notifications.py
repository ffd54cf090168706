"""Writing messages to the outbox, rendered from templates in the member's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    String,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)

from ..clock import utcnow
from ..domain import Channel, Locale, NotificationStatus
from ..extensions import db
from ..links import public_url_for
from ..models import FanOut, Member, Notification, NotificationContent, NotificationSubject
from ..models.notification import DUE_CHANNEL
from ..models.types import UTCDateTime
from ..observability import current_request_id
from ..sealed import seal
from .audit import record_audit
from .errors import NotFound
from .identity import identifier_digest
from .reach import ESSENTIAL_NOTICE, POLICY_NOTICE, contact_condition
from .sms_guard import BUDGET_SPENT, allowed_calling_codes, spend_sms, spend_sms_in_bulk
from .usability import ESSENTIAL_NOTICE_STATUSES, active_condition

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
        # Links in messages: `public_url_for("member.overview")` (links.py).
        "public_url_for": public_url_for,
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


# --- Data subjects: every outbox row names whom it is about, so erasure finds it -----------


def member_subject(member: Member) -> str:
    """The subject key of a member (their row id: it survives erasure as the tombstone)."""
    if member.id is None:
        db.session.flush()
    return f"member:{member.id}"


def contact_subject(value: str) -> str:
    """The subject key of a normalized email address or phone number that may belong to no
    member (a contact-form sender, a guardian's contact): a keyed digest, not the contact."""
    return "contact:" + identifier_digest(value)


def subjects_of(member: Member) -> list[str]:
    """Every subject key under which messages about `member` may have been written."""
    keys = [member_subject(member)]
    keys += [contact_subject(value) for value in (member.email, member.phone) if value]
    return keys


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
    about: tuple[str, ...] = (),
) -> Notification:
    """Write one message to the outbox (no commit); the same dedupe key never writes twice.

    A text to a number outside `SMS_ALLOWED_COUNTRIES`, or beyond the site's hourly SMS
    budget, is written as failed with the reason, and never sent (`sms_guard`).

    :param member: the member it is addressed to, if any.
    :param about: subject keys (`member_subject`, `contact_subject`) of everyone else the
        message is about or addressed to; a row without a member must name at least one.
    :returns: the new row, or the existing one for this dedupe key.
    """
    if member is None and not about:
        raise ValueError(f"a {kind} message must name its data subject")
    found = existing_notification(dedupe_key)
    if found is not None:
        return found
    rendered = render_message(kind, channel, locale, context)
    refused = spend_sms(recipient) if channel == Channel.SMS else None
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
        status=NotificationStatus.FAILED if refused else NotificationStatus.PENDING,
        last_error=refused,
    )
    db.session.add(row)
    db.session.flush()
    for key in dict.fromkeys(about):
        db.session.add(NotificationSubject(notification_id=row.id, subject_key=key))
    return row


@dataclass(frozen=True)
class SecretMessage:
    """A message holding a secret, ready for the outbox: a masked copy and the sealed real one."""

    masked: Rendered
    sealed: str


def prepare_secret_message(
    *,
    channel: str,
    kind: str,
    locale: str,
    context: dict,
    secret_context: dict,
    masked_context: dict,
    expires_at: datetime,
    validity_seconds: int | None = None,
) -> SecretMessage:
    """Render a message holding a secret (a one-time code, a link) and seal the real text.

    :param validity_seconds: also ask the SMS provider to drop the message after this long.
    """
    real = render_message(kind, channel, locale, dict(context, **secret_context))
    masked = render_message(kind, channel, locale, dict(context, **masked_context))
    sealed = {
        "subject": real.subject,
        "text": real.text,
        "html": real.html,
        "expires_at": expires_at.isoformat(),
        "validity_seconds": validity_seconds,
    }
    return SecretMessage(masked, seal(sealed))


def enqueue_secret_notification(
    *,
    member: Member | None,
    channel: str,
    kind: str,
    dedupe_key: str,
    recipient: str,
    locale: str,
    message: SecretMessage,
    about: tuple[str, ...] = (),
    not_before: datetime | None = None,
) -> None:
    """Write a message whose secret is never stored in clear (`prepare_secret_message`).

    :param not_before: hold it until this time (a guardian's delayed second confirmation).

    The row's body is the masked copy (what the member's message list shows); the real message
    is sealed beside it for the worker, which delivers it after commit, never after it expires,
    and then deletes it. On PostgreSQL the same statement NOTIFYs, so a listening worker wakes
    the moment this commits: one round trip in all, like `wake_workers`.

    :param dedupe_key: new by construction (callers build it from a fresh random token); the
        unique index refuses a repeat rather than a lookup costing a round trip.
    """
    if member is None and not about:
        raise ValueError(f"a {kind} message must name its data subject")
    # A text counts against the site's hourly SMS budget as it is written, codes too; one
    # that may not go out is written as failed, without its sealed text.
    refused = spend_sms(recipient) if channel == Channel.SMS else None
    statement = insert(Notification.__table__).values(
        member_id=member.id if member else None,
        channel=channel,
        kind=kind,
        dedupe_key=dedupe_key,
        recipient=recipient,
        subject=message.masked.subject,
        body_text=message.masked.text,
        body_html=message.masked.html,
        secret=None if refused else message.sealed,
        locale=locale,
        status=NotificationStatus.FAILED if refused else NotificationStatus.PENDING,
        last_error=refused,
        **({"next_attempt_at": not_before} if not_before else {}),
    )
    table = Notification.__table__
    if db.engine.dialect.name == "postgresql":
        # Delivered to listeners only if and when this transaction commits.
        statement = statement.returning(table.c.id, func.pg_notify(DUE_CHANNEL, ""))
    else:
        statement = statement.returning(table.c.id)
    notification_id = db.session.execute(statement).scalar_one()
    for key in dict.fromkeys(about):
        db.session.add(NotificationSubject(notification_id=notification_id, subject_key=key))


def wake_workers() -> None:
    """NOTIFY listening workers at commit (PostgreSQL; elsewhere nothing): the same single
    round trip `enqueue_secret_notification` makes."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(func.pg_notify(DUE_CHANNEL, "")))


# --- Fan-outs: one notice per member per chosen channel, enqueued set-wise ---------------


def _random_public_id_sql():
    """A per-row random 32-hex-character id (128 bits, or 122 from a version-4 UUID), from
    the database's cryptographically strong generator."""
    if db.engine.dialect.name == "postgresql":
        return func.encode(func.uuid_send(func.gen_random_uuid()), "hex")
    return func.lower(func.hex(func.randomblob(16)))


def fan_out_condition(channel: str, *, essential: bool = False):
    """SQL over `Member`: who a fan-out on `channel` reaches.

    Policy notices go to active members by the channels they chose. An *essential* notice (a
    security incident notice: the law requires telling the people affected) also reaches
    members who turned policy emails off and accounts not yet active (a minor awaiting a
    guardian); text messages still honour the member's SMS choice and any STOP opt-out.
    """
    reachable = contact_condition(channel, ESSENTIAL_NOTICE if essential else POLICY_NOTICE)
    if channel == Channel.SMS:
        # Only numbers in the SMS countries (`sms_guard`), by calling code.
        reachable = reachable & or_(
            false(), *(Member.phone.like(f"+{c}%") for c in allowed_calling_codes())
        )
    if essential:
        return Member.status.in_(ESSENTIAL_NOTICE_STATUSES) & reachable
    return active_condition() & reachable


def start_fan_out(
    *,
    kind: str,
    cause: str,
    actor: Member | None,
    context: dict,
    audience=None,
    essential: bool = False,
) -> FanOut:
    """Enqueue one `kind` notice per member per chosen channel, in a few set-wise statements.

    Renders the content once per channel and language; each row points at it. The cause
    is unique, and each row's dedupe key is built from it, so running this again (a retried
    request, a re-run command) adds nothing.

    :param audience: an optional extra SQL condition on `Member` (e.g. a filter by status).
    :param essential: reach members regardless of their policy-notice email choice (see
        `fan_out_condition`).
    """
    existing = db.session.scalars(select(FanOut).where(FanOut.cause == cause)).first()
    if existing is not None:
        return existing
    fan = FanOut(kind=kind, cause=cause, created_by_id=actor.id if actor else None)
    db.session.add(fan)
    db.session.flush()
    now = utcnow()
    selects = []
    for channel in (Channel.EMAIL, Channel.SMS):
        content_ids = {}
        for locale in Locale:
            rendered = render_message(kind, channel, locale, dict(context, fan_out=fan))
            content = NotificationContent(
                fan_out_id=fan.id,
                channel=channel,
                locale=locale,
                subject=rendered.subject,
                body_text=rendered.text,
                body_html=rendered.html,
            )
            db.session.add(content)
            db.session.flush()
            content_ids[locale] = content.id
        recipient = Member.email if channel == Channel.EMAIL else Member.phone
        condition = fan_out_condition(channel, essential=essential)
        if audience is not None:
            condition = condition & audience
        content_for_locale = case(
            (Member.locale == Locale.ZH, content_ids[Locale.ZH]), else_=content_ids[Locale.EN]
        )
        selects.append(
            select(
                _random_public_id_sql(),
                Member.id,
                literal(str(channel)),
                literal(kind),
                literal(f"{cause}:{channel}:") + Member.id.cast(String),
                recipient,
                Member.locale,
                content_for_locale,
                literal(fan.id),
                literal(str(NotificationStatus.PENDING)),
                literal(0),
                literal(now, UTCDateTime()),
                literal(now, UTCDateTime()),
                literal(current_request_id(), String()),
            ).where(condition)
        )
    columns = [
        "public_id",
        "member_id",
        "channel",
        "kind",
        "dedupe_key",
        "recipient",
        "locale",
        "content_id",
        "fan_out_id",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "request_id",  # the column's default, spelled out: a UNION cannot be extended
    ]
    # One statement for both channels, and a plain INSERT: ON CONFLICT DO NOTHING would make
    # every row a speculative insertion (bench/README.md). No key can exist yet: every key
    # here starts with the cause, which is unique (a re-run returned above; a concurrent run
    # fails on fan_out.cause before it gets here), and no other message uses that form. Should
    # one ever exist, the unique index refuses the whole statement instead of silently leaving
    # a member without the notice.
    db.session.execute(insert(Notification.__table__).from_select(columns, union_all(*selects)))
    # Counted, not summed from rowcount: drivers disagree on rowcount for INSERT ... SELECT.
    by_channel = dict(
        db.session.execute(
            select(Notification.channel, func.count())
            .where(Notification.fan_out_id == fan.id)
            .group_by(Notification.channel)
        ).all()
    )
    total = sum(by_channel.values())
    _hold_texts_over_budget(fan, by_channel.get(Channel.SMS, 0))
    fan.total = total
    record_audit(
        f"notify.{kind}_enqueued", actor=actor, fan_out=fan.public_id, total=total, cause=cause
    )
    db.session.flush()
    return fan


def _hold_texts_over_budget(fan: FanOut, texts: int) -> None:
    """Texts beyond the site's hourly SMS budget are written as failed, never sent."""
    allowed = spend_sms_in_bulk(texts)
    if allowed >= texts:
        return
    over = (
        select(Notification.id)
        .where(Notification.fan_out_id == fan.id, Notification.channel == Channel.SMS)
        .order_by(Notification.id)
        .offset(allowed)
    )
    db.session.execute(
        update(Notification)
        .where(Notification.id.in_(over.scalar_subquery()))
        .values(status=NotificationStatus.FAILED, last_error=BUDGET_SPENT)
        .execution_options(synchronize_session=False)
    )


def fan_out_progress(fan: FanOut) -> dict[str, int]:
    """How many of the fan-out's messages are in each status."""
    rows = db.session.execute(
        select(Notification.status, func.count())
        .where(Notification.fan_out_id == fan.id)
        .group_by(Notification.status)
    ).all()
    counts = {str(s): 0 for s in NotificationStatus}
    counts.update({status: n for status, n in rows})
    return counts


def load_fan_out(public_id: str) -> FanOut:
    """:raises NotFound: for an unknown id."""
    fan = db.session.scalars(select(FanOut).where(FanOut.public_id == public_id)).first()
    if fan is None:
        raise NotFound(_l("No such notice."))
    return fan


def member_messages(member: Member, limit: int = 200) -> list[Notification]:
    """The member's messages, newest first (their own data: shown on /me/notifications)."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.member_id == member.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )
