"""Minors and their guardians.

A minor's account waits (`awaiting_guardian`) until a guardian, reached at the contact the
minor gave, verifies that contact with a one-time code and approves. A refusal erases the
waiting minor's data; an invited second guardian's refusal only declines the invitation.
Guardians then oversee their wards; at most two guardians per ward.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from ..clock import utcnow
from ..domain import (
    OPTIONAL_PURPOSES,
    Actor,
    Channel,
    GuardianStatus,
    MemberStatus,
    Method,
    NotificationStatus,
)
from ..extensions import db
from ..links import public_url_for
from ..models import GuardianLink, Member, Notification
from .audit import record_audit
from .code_budget import spend_code_budget
from .consents import current_consents, set_consent
from .erasure import erase_member
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .guardian_notices import tell_member
from .guardianship import is_guardian_of
from .identity import find_member_by_contact, identifier_digest
from .notifications import (
    contact_subject,
    enqueue_notification,
    enqueue_secret_notification,
    member_subject,
    prepare_secret_message,
)
from .reach import ACCOUNT, CODE, first_contact
from .sms_guard import check_sms_destination
from .usability import (
    active_condition,
    age_on,
    is_active_account,
    is_minor,
    minor_cutoff,
    purpose_barred,
)

MAX_GUARDIANS = 2
# An approval link works for 72 hours: long enough to answer, short enough that a forwarded
# or leaked link soon stops working.
LINK_TTL = timedelta(hours=72)
LINK_TTL_HOURS = int(LINK_TTL.total_seconds() // 3600)
# A guardian confirms they are at least this old on the approval page.
GUARDIAN_MIN_AGE = 18


def _new_token() -> str:
    # 96 random bits: ample for a hashed, single-use, 72-hour link, and short enough for the
    # link to fit in one SMS segment even in Chinese.
    return secrets.token_urlsafe(12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Invitation:
    link: GuardianLink


def invite_guardian(minor: Member, channel: str, contact: str, *, actor: Member) -> Invitation:
    """Send a single-use approval link to the guardian's contact (no commit).

    The token is never stored in clear: the link keeps its hash, and the message is sealed in
    the outbox until the worker sends it after commit.

    :raises Invalid: when the contact is the minor's own.
    :raises CodeBudgetSpent: when the contact's or the actor's code budget is spent.
    """
    if contact in own_contacts(minor.email, minor.phone):
        raise Invalid(OWN_CONTACT_MESSAGE, {"guardian_contact": [OWN_CONTACT_MESSAGE]})
    _spend_link_budget(channel, contact, actor)
    now = utcnow()
    token = _new_token()
    link = GuardianLink(
        minor_id=minor.id,
        contact_channel=channel,
        contact=contact,
        status=GuardianStatus.INVITED,
        token_hash=_hash(token),
        token_expires_at=now + LINK_TTL,
        invited_at=now,
    )
    db.session.add(link)
    db.session.flush()
    return _send_invitation(link, minor, token, actor)


OWN_CONTACT_MESSAGE = _l(
    "This is the child's own email address or mobile number. Enter the guardian's, so that the "
    "guardian, not the child, receives the link."
)


def own_contacts(email: str | None, phone: str | None) -> set[str]:
    """A child's own contacts, normalized as `auth.parse_identifier` normalizes a guardian's
    contact: the guardian's may be none of them."""
    return {value for value in (email, phone) if value}


def _spend_link_budget(channel: str, contact: str, actor: Member) -> None:
    """An approval link spends from the same budgets as a one-time code (`code_budget`), and
    by SMS only to an allowed country within the site's hourly budget (`sms_guard`)."""
    if channel == Channel.SMS:
        check_sms_destination(contact, "guardian_contact")
    spend_code_budget(identifier_digest(contact), actor)


def _masked(link: str, token: str) -> str:
    """The link as the outbox keeps it once sent: its token hidden."""
    return link.removesuffix(token) + "••••••"


def _send_invitation(link: GuardianLink, minor: Member, token: str, actor: Member) -> Invitation:
    approval_link = public_url_for("public.guardian_short", token=token)
    locale = "zh_Hans_CN" if (link.contact or "").startswith("+86") else minor.locale
    message = prepare_secret_message(
        channel=link.contact_channel,
        kind="guardian_invite",
        locale=locale,
        context={
            "minor_name": minor.name,
            "expires_at": link.token_expires_at,
            # Who is asking: the child themselves, or the guardian inviting a second one.
            "inviter_name": actor.name if actor.id != minor.id else None,
        },
        secret_context={"link": approval_link},
        masked_context={"link": _masked(approval_link, token)},
        expires_at=link.token_expires_at,
    )
    enqueue_secret_notification(
        member=None,
        channel=link.contact_channel,
        kind="guardian_invite",
        dedupe_key=f"guardian_invite:{link.public_id}:{link.token_hash[:16]}",
        recipient=link.contact,
        locale=locale,
        message=message,
        # The inviting guardian is named in it too: erasing either finds the row.
        about=(member_subject(minor), contact_subject(link.contact))
        + ((member_subject(actor),) if actor.id != minor.id else ()),
    )
    record_audit(
        "guardian.invited",
        actor=actor,
        subject=minor,
        link=link.public_id,
        channel=link.contact_channel,
    )
    return Invitation(link)


def resend_invitation(minor: Member) -> Invitation:
    """A new link for the minor's pending guardian request (the old link stops working).

    :raises NotFound: when no request is waiting.
    :raises CodeBudgetSpent: when the contact's or the minor's code budget is spent.
    """
    link = db.session.scalars(
        select(GuardianLink)
        .where(GuardianLink.minor_id == minor.id, GuardianLink.status == GuardianStatus.INVITED)
        .order_by(GuardianLink.id.desc())
    ).first()
    if link is None:
        raise NotFound(_l("There is no guardian request waiting."))
    _spend_link_budget(link.contact_channel, link.contact, minor)
    token = _new_token()
    link.token_hash = _hash(token)
    link.token_expires_at = utcnow() + LINK_TTL
    return _send_invitation(link, minor, token, minor)


def load_invitation(token: str) -> GuardianLink:
    """The invited link for a token from a message.

    :raises NotFound: for an unknown, used, expired or replaced link (one clear page).
    """
    link = db.session.scalars(
        select(GuardianLink).where(GuardianLink.token_hash == _hash(token or ""))
    ).first()
    if (
        link is None
        or link.status != GuardianStatus.INVITED
        or link.token_expires_at is None
        or link.token_expires_at <= utcnow()
    ):
        raise NotFound(_l("This link has expired or was already used."))
    return link


def _approved_guardians(minor_id: int) -> list[GuardianLink]:
    return list(
        db.session.scalars(
            select(GuardianLink).where(
                GuardianLink.minor_id == minor_id, GuardianLink.status == GuardianStatus.APPROVED
            )
        )
    )


def _guardian_account(link: GuardianLink, name: str | None) -> Member:
    """The guardian's member account for the verified contact, created when missing."""
    # Only a verified number finds an account: an unverified one proves nothing.
    guardian = find_member_by_contact(link.contact_channel, link.contact)
    if guardian is None:
        clean = " ".join((name or "").split())
        if not clean:
            raise Invalid(_l("Tell us your name."), {"guardian_name": [_l("Tell us your name.")]})
        now = utcnow()
        guardian = Member(
            name=clean[:100],
            status=MemberStatus.ACTIVE,
            locale="zh_Hans_CN" if link.contact_channel == Channel.SMS else "en",
        )
        if link.contact_channel == Channel.EMAIL:
            guardian.email, guardian.email_verified_at = link.contact, now
        else:
            guardian.phone, guardian.phone_verified_at = link.contact, now
        db.session.add(guardian)
        db.session.flush()
        record_audit("member.registered", actor=guardian, subject=guardian, via="guardian_link")
    return guardian


def check_guardian_birth_date(birth_date: date | None) -> None:
    """The guardian confirms their own birth date: an adult's (`GUARDIAN_MIN_AGE`).

    :raises Invalid: for a missing or impossible date, or a guardian under age.
    """
    today = utcnow().date()
    if birth_date is None:
        message = _l("Enter your own date of birth.")
    elif birth_date > today or birth_date.year < 1900:
        message = _l("Enter a real date of birth.")
    elif age_on(birth_date, today) < GUARDIAN_MIN_AGE:
        message = _l(
            "A guardian must be %(age)d or older. Please ask a parent or another adult "
            "guardian to approve the account.",
            age=GUARDIAN_MIN_AGE,
        )
    else:
        return
    raise Invalid(message, {"guardian_birth_date": [message]})


def approve_minor(
    link: GuardianLink,
    *,
    guardian_name: str | None,
    guardian_birth_date: date | None,
    purposes: set[str],
    note: str | None,
    locale: str | None = None,
) -> Member:
    """The verified guardian approves, confirming their own adult birth date: the minor's
    account becomes active, the guardian's choices of optional purposes are recorded with the
    guardian as actor.

    :param locale: the language of the approval page (recorded with each choice).

    :returns: the guardian's account (created if needed).
    :raises Invalid: when the guardian's birth date is missing or not an adult's, or the
        guardian is the child.
    :raises Conflict: when the ward already has the maximum number of guardians.
    """
    check_guardian_birth_date(guardian_birth_date)
    minor = db.session.get(Member, link.minor_id)
    if len(_approved_guardians(minor.id)) >= MAX_GUARDIANS:
        raise Conflict(_l("This account already has two guardians."))
    guardian = _guardian_account(link, guardian_name)
    if guardian.birth_date is None:
        guardian.birth_date = guardian_birth_date
    if guardian.id == minor.id or is_minor(guardian):
        message = _l("A guardian must be an adult other than the child.")
        raise Invalid(message, {"guardian_name": [message]})
    now = utcnow()
    link.status, link.guardian_id, link.decided_at = GuardianStatus.APPROVED, guardian.id, now
    link.token_hash, link.note = None, (note or "").strip() or None
    first_approval = minor.status == MemberStatus.AWAITING_GUARDIAN
    minor.status = MemberStatus.ACTIVE
    record_audit("guardian.approved", actor=guardian, subject=minor, link=link.public_id)
    for purpose in OPTIONAL_PURPOSES:
        if purpose in purposes and not purpose_barred(minor, purpose):
            set_consent(
                minor,
                purpose,
                True,
                actor=Actor.GUARDIAN,
                method=Method.GUARDIAN_LINK,
                actor_member=guardian,
                locale=locale,
            )
    if first_approval:
        tell_member(
            minor,
            "guardian_approved",
            {"guardian_name": guardian.name},
            about=(member_subject(guardian),),
        )
    tell_member(
        guardian,
        "guardian_approved",
        {"guardian_name": guardian.name, "minor_name": minor.name, "to_guardian": True},
        key=f"guardian_approved:{link.public_id}:guardian",
        about=(member_subject(minor),),
    )
    return guardian


def refusal_erases(minor: Member) -> bool:
    """Whether refusing an invitation for this minor erases the account: only while it waits
    for its first guardian. An approved minor's account is only ever erased through a
    deletion request, so an invited second guardian who refuses declines the invitation."""
    return minor.status == MemberStatus.AWAITING_GUARDIAN


def refuse_minor(link: GuardianLink, *, note: str | None) -> bool:
    """The verified guardian refuses. For an account waiting for its first guardian, the
    minor's data is erased and the minor is told (at the address they registered with, which
    is then forgotten); otherwise only this invitation is declined.

    :returns: whether the minor's account was erased.
    """
    minor = db.session.get(Member, link.minor_id)
    link.status, link.decided_at, link.token_hash = GuardianStatus.REFUSED, utcnow(), None
    link.note = (note or "").strip() or None
    if not refusal_erases(minor):
        record_audit("guardian.declined", actor=None, subject=minor, link=link.public_id)
        return False
    record_audit("guardian.refused", actor=None, subject=minor, link=link.public_id)
    _erase_and_tell(
        minor, "guardian_refused", f"guardian_refused:{link.public_id}", {}, "guardian_refused"
    )
    return True


def request_second_confirmation(ward: Member, guardian: Member, purpose: str) -> GuardianLink:
    """"Email plus": the guardian's yes to advertising for a minor is held pending, and a
    second message with a single-use confirmation link reaches the guardian after
    GUARDIAN_CONFIRM_DELAY_HOURS; only confirming through it records the consent
    (`confirm_second`). A new request replaces a pending one (its old link stops working).

    :raises NotFound: when `guardian` is not an approved guardian of `ward`.
    :raises NotAllowed: when the purpose is barred for the ward (MINORS_ADVERTISING off).
    :raises Invalid: when the guardian has no verified contact to send it to.
    """
    link = _guardian_link(ward, guardian)
    _drop_pending(link)
    if purpose_barred(ward, purpose):
        raise NotAllowed(
            _l(
                "This use is not open to members under %(age)d.",
                age=current_app.config["MINOR_AGE"],
            )
        )
    channel, recipient = _verified_contact(guardian)
    now = utcnow()
    token = _new_token()
    link.pending_purpose = purpose
    link.pending_token_hash = _hash(token)
    link.pending_send_at = now + timedelta(hours=current_app.config["GUARDIAN_CONFIRM_DELAY_HOURS"])
    link.pending_expires_at = link.pending_send_at + LINK_TTL
    confirm_link = public_url_for("public.guardian_confirm_short", token=token)
    message = prepare_secret_message(
        channel=channel,
        kind="guardian_confirm",
        locale=guardian.locale,
        context={
            "minor_name": ward.name,
            "purpose": purpose,
            "expires_at": link.pending_expires_at,
        },
        secret_context={"link": confirm_link},
        masked_context={"link": _masked(confirm_link, token)},
        expires_at=link.pending_expires_at,
    )
    enqueue_secret_notification(
        member=guardian,
        channel=channel,
        kind="guardian_confirm",
        dedupe_key=f"guardian_confirm:{link.public_id}:{link.pending_token_hash[:16]}",
        recipient=recipient,
        locale=guardian.locale,
        message=message,
        about=(member_subject(ward),),
        not_before=link.pending_send_at,
    )
    record_audit(
        "guardian.confirmation_requested",
        actor=guardian,
        subject=ward,
        link=link.public_id,
        purpose=purpose,
        send_at=link.pending_send_at.isoformat(),
    )
    return link


def _guardian_link(ward: Member, guardian: Member) -> GuardianLink:
    link = db.session.scalars(
        select(GuardianLink).where(
            GuardianLink.minor_id == ward.id,
            GuardianLink.guardian_id == guardian.id,
            GuardianLink.status == GuardianStatus.APPROVED,
        )
    ).first()
    if link is None:
        raise NotFound(_l("No such account."))
    return link


def _verified_contact(member: Member) -> tuple[str, str]:
    found = first_contact(member, CODE)
    if found is None:
        raise Invalid(
            _l("We have no verified email address or mobile number of yours to write to.")
        )
    return found


def cancel_second_confirmation(ward: Member, guardian: Member) -> None:
    """Drop the guardian's pending confirmation for the ward (they switched it off again):
    its message, if not sent yet, never goes out."""
    _drop_pending(_guardian_link(ward, guardian))


def _drop_pending(link: GuardianLink) -> None:
    if link.pending_token_hash:
        db.session.execute(
            update(Notification)
            .where(
                Notification.dedupe_key
                == f"guardian_confirm:{link.public_id}:{link.pending_token_hash[:16]}",
                Notification.status == NotificationStatus.PENDING,
            )
            .values(status=NotificationStatus.DEAD, secret=None, last_error="withdrawn")
            .execution_options(synchronize_session=False)
        )
    link.pending_purpose = link.pending_token_hash = None
    link.pending_send_at = link.pending_expires_at = None


def pending_confirmation(ward: Member, guardian: Member) -> GuardianLink | None:
    """The guardian's link to the ward while a second confirmation is pending, else None."""
    link = _guardian_link(ward, guardian)
    return link if link.pending_purpose else None


def load_second_confirmation_for(guardian: Member, token: str) -> GuardianLink:
    """The signed-in guardian's pending confirmation for this link token.

    :raises NotFound: for an unknown, used, expired or someone else's link (one clear page).
    """
    link = db.session.scalars(
        select(GuardianLink).where(
            GuardianLink.pending_token_hash == _hash(token or ""),
            GuardianLink.guardian_id == guardian.id,
            GuardianLink.status == GuardianStatus.APPROVED,
        )
    ).first()
    if link is None or link.pending_expires_at is None or link.pending_expires_at <= utcnow():
        raise NotFound(_l("This link has expired or was already used."))
    return link


def confirm_second(link: GuardianLink, guardian: Member, locale: str | None = None):
    """The guardian confirms through the second message: the pending purpose is granted, with
    the guardian as actor and `guardian_confirmation` as method, and the link is used up.

    :returns: the consent event.
    """
    ward = db.session.get(Member, link.minor_id)
    purpose = link.pending_purpose
    link.pending_purpose = link.pending_token_hash = None
    link.pending_send_at = link.pending_expires_at = None
    event = set_consent(
        ward,
        purpose,
        True,
        actor=Actor.GUARDIAN,
        method=Method.GUARDIAN_CONFIRMATION,
        actor_member=guardian,
        locale=locale,
    )
    notify_co_guardians(ward, guardian, purpose, True)
    return event


def erase_unanswered_minors() -> int:
    """Erase every minor's account that has waited for a guardian longer than
    GUARDIAN_WAIT_DAYS since registering, and tell each child at the address they registered
    with (then forgotten), as a guardian's refusal does. Safe to run at any time (the notify
    worker runs it daily); the caller commits.

    :returns: how many accounts were erased.
    """
    days = current_app.config["GUARDIAN_WAIT_DAYS"]
    stale = db.session.scalars(
        select(Member)
        .where(
            Member.status == MemberStatus.AWAITING_GUARDIAN,
            Member.created_at < utcnow() - timedelta(days=days),
        )
        .order_by(Member.id)
        # Two workers running it at once each take different rows (no-op on SQLite).
        .with_for_update(skip_locked=True)
    ).all()
    for minor in stale:
        record_audit("guardian.wait_expired", actor=None, subject=minor, days=days)
        _erase_and_tell(
            minor,
            "guardian_wait_expired",
            f"guardian_wait_expired:{member_subject(minor)}",
            {"days": days},
            "guardian_never_answered",
        )
    return len(stale)


def _erase_and_tell(minor: Member, kind: str, dedupe_key: str, context: dict, reason: str):
    """Erase a waiting minor's account and tell them at the address they registered with,
    which is then forgotten: the message names only the tombstone, and once settled it is
    scrubbed (notify/delivery.py SCRUB_AFTER_SEND), so no digest of the address outlives it."""
    found, locale, subject = first_contact(minor, ACCOUNT), minor.locale, member_subject(minor)
    erase_member(minor, actor=None, reason=reason)
    if found:
        channel, to = found
        enqueue_notification(
            member=None,
            channel=channel,
            kind=kind,
            dedupe_key=dedupe_key,
            recipient=to,
            locale=locale,
            context=context,
            about=(subject,),
        )


def wards_of(guardian: Member) -> list[tuple[GuardianLink, Member]]:
    """The guardian's wards (approved links), with each ward's account."""
    rows = db.session.execute(
        select(GuardianLink, Member)
        .join(Member, Member.id == GuardianLink.minor_id)
        .where(
            GuardianLink.guardian_id == guardian.id, GuardianLink.status == GuardianStatus.APPROVED
        )
        .order_by(Member.name)
    ).all()
    return [(link, ward) for link, ward in rows]


def load_ward_for(guardian: Member, public_id: str) -> Member:
    """A ward of this guardian.

    :raises NotFound: for anyone else's ward, or no such member (indistinguishable).
    """
    ward = db.session.scalars(select(Member).where(Member.public_id == public_id)).first()
    if ward is None or not is_guardian_of(guardian, ward.id):
        raise NotFound(_l("No such account."))
    return ward


def notify_co_guardians(ward: Member, acting: Member, purpose: str, granted: bool) -> None:
    """Tell the ward's other guardian(s) that `acting` changed a choice."""
    for link in _approved_guardians(ward.id):
        if link.guardian_id == acting.id:
            continue
        other = db.session.get(Member, link.guardian_id)
        if other is None or not is_active_account(other):
            continue
        tell_member(
            other,
            "guardian_change",
            {
                "guardian_name": acting.name,
                "minor_name": ward.name,
                "purpose": purpose,
                "granted": granted,
            },
            about=(member_subject(ward), member_subject(acting)),
        )


def pending_link_for(minor: Member) -> GuardianLink | None:
    return db.session.scalars(
        select(GuardianLink)
        .where(GuardianLink.minor_id == minor.id)
        .order_by(GuardianLink.id.desc())
    ).first()


def links_of_minor(minor: Member) -> list[GuardianLink]:
    return list(
        db.session.scalars(
            select(GuardianLink).where(GuardianLink.minor_id == minor.id).order_by(GuardianLink.id)
        )
    )


def invite_second_guardian(
    ward: Member, guardian: Member, channel: str, contact: str
) -> Invitation:
    """An approved guardian asks another guardian to join (at most two).

    :raises Conflict: when the ward already has two guardians or an invitation is waiting.
    """
    if len(_approved_guardians(ward.id)) >= MAX_GUARDIANS:
        raise Conflict(_l("This account already has two guardians."))
    waiting = db.session.scalar(
        select(func.count())
        .select_from(GuardianLink)
        .where(GuardianLink.minor_id == ward.id, GuardianLink.status == GuardianStatus.INVITED)
    )
    if waiting:
        raise Conflict(_l("An invitation is already waiting for an answer."))
    return invite_guardian(ward, channel, contact, actor=guardian)


def transition_coming_of_age() -> int:
    """End oversight for wards who reached MINOR_AGE: the link becomes history, the member is
    asked to confirm each choice their guardian made (the choices stand until then), and the
    guardian is told. Safe to run daily; returns how many wards came of age."""
    cutoff = minor_cutoff()
    rows = db.session.execute(
        select(GuardianLink, Member)
        .join(Member, Member.id == GuardianLink.minor_id)
        .where(
            GuardianLink.status == GuardianStatus.APPROVED,
            Member.birth_date.is_not(None),
            Member.birth_date <= cutoff,
            active_condition(),
        )
    ).all()
    now = utcnow()
    members: dict[int, Member] = {}
    for link, member in rows:
        link.status, link.ended_at = GuardianStatus.ENDED, now
        members[member.id] = member
        guardian = db.session.get(Member, link.guardian_id)
        if guardian is not None and is_active_account(guardian):
            tell_member(
                guardian,
                "guardian_ended",
                {"minor_name": member.name, "to_guardian": True},
                key=f"guardian_ended:{link.public_id}:guardian",
                about=(member_subject(member),),
            )
        record_audit("guardian.oversight_ended", actor=None, subject=member, link=link.public_id)
    for member in members.values():
        member.confirm_guardian_choices = True
        tell_member(
            member,
            "guardian_ended",
            {"minor_name": member.name},
            key=f"guardian_ended:{member.public_id}:{now.date().isoformat()}",
        )
    return len(members)


def confirm_guardian_choices(member: Member, locale: str | None = None) -> None:
    """The member, now of age, keeps the choices their guardian made (each is re-recorded
    with the member as actor, in the language of the page they confirmed on) and the prompt
    goes away. To change one, use its switch."""
    for view in current_consents(member):
        if view.granted:
            set_consent(
                member,
                view.purpose,
                True,
                actor=Actor.MEMBER,
                method=Method.FORM,
                actor_member=member,
                locale=locale,
            )
    member.confirm_guardian_choices = False
    record_audit("guardian.choices_confirmed", actor=member, subject=member)
