"""Members: registration, corrections and preferences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..clock import utcnow
from ..domain import (
    OPTIONAL_PURPOSES,
    BirthDateReviewStatus,
    Channel,
    Gender,
    Locale,
    MemberStatus,
    StaffAccessReason,
)
from ..extensions import db
from ..models import BirthDateReview, Member, Notification
from .access_log import record_staff_access
from .audit import record_audit
from .auth import (
    FROM_REGISTRATION,
    SIGN_IN,
    CodeRequest,
    _issue_code,
    find_member_by_contact,
    parse_identifier,
    request_contact_proof,
)
from .erasure import erase_member
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .guardians import (
    OWN_CONTACT_MESSAGE,
    invite_guardian,
    own_contacts,
    transition_coming_of_age,
)
from .sms_guard import sms_country_problem
from .usability import age_on
from .validation import normalize_email, normalize_phone, secret_text_problem


@dataclass
class RegistrationData:
    name: str
    email: str
    birth_date: date | None
    locale: str = Locale.EN
    gender: str | None = None
    phone: str | None = None
    purposes: set[str] = field(default_factory=set)
    # Required when the birth date makes the registrant a minor.
    guardian_contact: str | None = None


@dataclass(frozen=True)
class Registration:
    member: Member | None
    code: CodeRequest
    invitation: object | None = None  # guardians.Invitation for a minor


def _check_name(name: str, errors: dict) -> str:
    name = " ".join((name or "").split())
    if not name:
        errors.setdefault("name", []).append(_l("Tell us your name."))
    elif len(name) > 100:
        errors.setdefault("name", []).append(_l("Use at most 100 characters."))
    elif problem := secret_text_problem(name):
        errors.setdefault("name", []).append(problem)
    return name


def _check_phone(raw: str | None, errors: dict) -> str | None:
    if not raw or not raw.strip():
        return None
    phone = normalize_phone(raw, current_app.config["DEFAULT_PHONE_REGION"])
    if phone is None:
        errors.setdefault("phone", []).append(
            _l("Enter a valid mobile number, with its country code for numbers outside China.")
        )
    elif problem := sms_country_problem(phone):
        errors.setdefault("phone", []).append(problem)
    return phone


def register_member(data: RegistrationData) -> Registration:
    """Create a member and send the first sign-in code to their email.

    The account is `unverified` until that code is entered: the optional purposes ticked
    here are held as pending and reach the consent ledger only then (consent counts only
    from a verified person). When the email already belongs to an account, nothing is
    created or changed and that account is sent a sign-in code instead, so the page looks
    the same either way. A minor's account waits for a guardian: the guardian's contact is
    sent an approval link, and no optional purpose is recorded until the guardian decides.

    :raises Invalid: with field errors for any bad input; nothing is written then.
    """
    errors: dict[str, list] = {}
    name = _check_name(data.name, errors)
    email = normalize_email(data.email or "")
    if email is None:
        errors.setdefault("email", []).append(_l("Enter a valid email address."))
    phone = _check_phone(data.phone, errors)
    if data.gender and data.gender not in set(Gender):
        errors.setdefault("gender", []).append(_l("Choose one of the options."))
    if data.locale not in set(Locale):
        errors.setdefault("locale", []).append(_l("Choose one of the options."))
    today = utcnow().date()
    if data.birth_date is None:
        errors.setdefault("birth_date", []).append(_l("Enter your date of birth."))
    elif data.birth_date > today or data.birth_date.year < 1900:
        errors.setdefault("birth_date", []).append(_l("Enter a real date of birth."))
    minor = data.birth_date is not None and (
        age_on(data.birth_date, today) < current_app.config["MINOR_AGE"]
    )
    guardian = None
    if minor:
        guardian = _check_guardian_contact(data.guardian_contact, errors, own=(email, phone))
    unknown = data.purposes - set(OPTIONAL_PURPOSES)
    if unknown:
        errors.setdefault("purposes", []).append(_l("Choose only from the purposes shown."))
    if errors:
        raise Invalid(_l("Please correct the highlighted fields."), errors)

    existing = find_member_by_contact(Channel.EMAIL, email)
    if existing is not None:
        code = _issue_code(
            purpose=SIGN_IN,
            channel=Channel.EMAIL,
            value=email,
            member=existing,
            locale=existing.locale,
        )
        return Registration(None, code)
    member = Member(
        name=name,
        email=email,
        phone=phone,
        gender=data.gender or None,
        birth_date=data.birth_date,
        locale=data.locale,
        status=MemberStatus.AWAITING_GUARDIAN if minor else MemberStatus.UNVERIFIED,
        pending_purposes=None
        if minor
        else ",".join(p for p in OPTIONAL_PURPOSES if p in data.purposes) or None,
    )
    db.session.add(member)
    db.session.flush()
    record_audit("member.registered", actor=member, subject=member)
    invitation = None
    if minor:
        invitation = invite_guardian(member, guardian[0], guardian[1], actor=member)
    code = _issue_code(
        purpose=SIGN_IN,
        channel=Channel.EMAIL,
        value=email,
        member=member,
        locale=member.locale,
        new_value=FROM_REGISTRATION,
    )
    return Registration(member, code, invitation)


def purge_unverified_members() -> int:
    """Erase every account that no one verified within UNVERIFIED_RETENTION_DAYS of
    registering (adults who never entered their code, and minors whose guardian never
    approved and who never signed in). Safe to run at any time; the caller commits.

    :returns: how many accounts were erased.
    """
    cutoff = utcnow() - timedelta(days=current_app.config["UNVERIFIED_RETENTION_DAYS"])
    stale = db.session.scalars(
        select(Member)
        .where(
            Member.status.in_((MemberStatus.UNVERIFIED, MemberStatus.AWAITING_GUARDIAN)),
            Member.email_verified_at.is_(None),
            Member.phone_verified_at.is_(None),
            Member.created_at < cutoff,
        )
        .order_by(Member.id)
        # Two workers running it at once each take different rows (no-op on SQLite).
        .with_for_update(skip_locked=True)
    ).all()
    for member in stale:
        erase_member(member, actor=None, reason="never_verified")
    return len(stale)


def _check_guardian_contact(
    raw: str | None, errors: dict, *, own: tuple[str | None, str | None]
) -> tuple[str, str] | None:
    """A minor's guardian: an email address or a mobile number, not the minor's own (`own`:
    the minor's normalized email and phone)."""
    message = _l(
        "You are under %(age)d: enter your parent's or guardian's email address or "
        "mobile number, so they can approve your account.",
        age=current_app.config["MINOR_AGE"],
    )
    if not raw or not raw.strip():
        errors.setdefault("guardian_contact", []).append(message)
        return None
    try:
        channel, contact = parse_identifier(raw)
    except Invalid as exc:
        # A well-formed number outside the SMS countries gets that reason; anything else the
        # guardian-specific explanation.
        phone = "@" not in raw and normalize_phone(raw, current_app.config["DEFAULT_PHONE_REGION"])
        reasons = exc.field_errors.get("identifier") if phone else None
        errors.setdefault("guardian_contact", []).extend(reasons or [message])
        return None
    if contact in own_contacts(*own):
        errors.setdefault("guardian_contact", []).append(OWN_CONTACT_MESSAGE)
        return None
    return channel, contact


@dataclass
class ProfileChanges:
    name: str
    gender: str | None
    locale: str
    email: str | None = None
    phone: str | None = None
    birth_date: date | None = None  # None: unchanged


@dataclass(frozen=True)
class ContactChange:
    """A new email or phone waiting for the account holder to prove it is them."""

    proof: CodeRequest  # the code sent to the member's current verified channel
    new_values: dict[str, str]  # channel -> the new address


@dataclass(frozen=True)
class ProfileUpdate:
    contact_change: ContactChange | None  # a new email or phone waiting for its proof
    birth_date_review: BirthDateReview | None  # a new birth date waiting for staff


def update_profile(member: Member, changes: ProfileChanges) -> ProfileUpdate:
    """Correct the member's profile. Name, gender, language and date of birth change at once,
    except a date of birth that would move the member across MINOR_AGE: that waits for staff
    (`ask_birth_date_review`). A new email or phone first needs a fresh code from the
    member's current verified channel (`auth.confirm_contact_proof`), then one sent to it,
    and replaces the old one only then.

    :raises Invalid: with field errors; nothing is written then.
    """
    errors: dict[str, list] = {}
    name = _check_name(changes.name, errors)
    if changes.gender and changes.gender not in set(Gender):
        errors.setdefault("gender", []).append(_l("Choose one of the options."))
    if changes.locale not in set(Locale):
        errors.setdefault("locale", []).append(_l("Choose one of the options."))
    email = None
    if changes.email and changes.email.strip():
        email = normalize_email(changes.email)
        if email is None:
            errors.setdefault("email", []).append(_l("Enter a valid email address."))
    phone = _check_phone(changes.phone, errors)
    birth_date = changes.birth_date
    if birth_date is not None and (birth_date > utcnow().date() or birth_date.year < 1900):
        errors.setdefault("birth_date", []).append(_l("Enter a real date of birth."))
    if errors:
        raise Invalid(_l("Please correct the highlighted fields."), errors)

    changed = []
    for attr, value in (
        ("name", name),
        ("gender", changes.gender or None),
        ("locale", changes.locale),
    ):
        if getattr(member, attr) != value:
            setattr(member, attr, value)
            changed.append(attr)
    review = None
    if birth_date is not None and birth_date != member.birth_date:
        if crosses_minor_age(member.birth_date, birth_date):
            review = ask_birth_date_review(member, birth_date)
        else:
            member.birth_date = birth_date
            changed.append("birth_date")
    new_values = {}
    if email and email != member.email:
        new_values[Channel.EMAIL] = email
    if phone and phone != member.phone:
        new_values[Channel.SMS] = phone
    if changed:
        member.updated_at = utcnow()
        record_audit("profile.corrected", actor=member, subject=member, fields=changed)
    contact_change = None
    if new_values:
        contact_change = ContactChange(request_contact_proof(member, new_values), new_values)
    return ProfileUpdate(contact_change, review)


# --- Dates of birth that cross MINOR_AGE: staff review --------------------------------------


def crosses_minor_age(old: date | None, new: date, today: date | None = None) -> bool:
    """Whether moving a birth date from `old` to `new` makes an adult a minor or a minor an
    adult today (under MINOR_AGE is a minor: guardian approval, barred purposes)."""
    if old is None:
        return False
    today = today or utcnow().date()
    limit = current_app.config["MINOR_AGE"]
    return (age_on(old, today) < limit) != (age_on(new, today) < limit)


def is_minor_born(birth_date: date, today: date | None = None) -> bool:
    return age_on(birth_date, today or utcnow().date()) < current_app.config["MINOR_AGE"]


def pending_birth_date_review(member: Member) -> BirthDateReview | None:
    return db.session.scalars(
        select(BirthDateReview).where(
            BirthDateReview.member_id == member.id,
            BirthDateReview.status == BirthDateReviewStatus.PENDING,
        )
    ).first()


def ask_birth_date_review(member: Member, birth_date: date) -> BirthDateReview:
    """Hold a birth date that crosses MINOR_AGE for staff; the member's record keeps the old
    one until staff approve. Asking again while one waits replaces the date asked for."""
    review = pending_birth_date_review(member)
    if review is None:
        review = BirthDateReview(member_id=member.id, status=BirthDateReviewStatus.PENDING)
        db.session.add(review)
    review.requested_birth_date, review.requested_at = birth_date, utcnow()
    db.session.flush()
    record_audit(
        "profile.birth_date_review_requested", actor=member, subject=member, review=review.public_id
    )
    return review


def _require_staff(actor: Member) -> None:
    if actor is None or not actor.is_staff:
        raise NotAllowed(_l("Only staff may review a date of birth."))


def birth_date_reviews(staff: Member) -> list[BirthDateReview]:
    """The reviews waiting, oldest first (no personal data: the page lists handles and dates
    of asking; opening one is an audited viewing)."""
    _require_staff(staff)
    return list(
        db.session.scalars(
            select(BirthDateReview)
            .where(BirthDateReview.status == BirthDateReviewStatus.PENDING)
            .order_by(BirthDateReview.requested_at, BirthDateReview.id)
            .limit(500)
        )
    )


def open_birth_date_review(staff: Member, public_id: str) -> tuple[BirthDateReview, Member]:
    """A review and its member, as staff open it to decide: the viewing is audited.

    :raises NotAllowed: for anyone but staff.
    :raises NotFound: for an unknown review.
    """
    review = _load_review(staff, public_id)
    member = db.session.get(Member, review.member_id)
    record_staff_access(
        staff, member, reason=StaffAccessReason.BIRTH_DATE_REVIEW, review=review.public_id
    )
    return review, member


def _load_review(staff: Member, public_id: str) -> BirthDateReview:
    _require_staff(staff)
    review = db.session.scalars(
        select(BirthDateReview).where(BirthDateReview.public_id == public_id)
    ).first()
    if review is None:
        raise NotFound(_l("No such review."))
    return review


def decide_birth_date_review(staff: Member, public_id: str, *, approve: bool) -> BirthDateReview:
    """Approve (the new date takes effect) or refuse (the old one stays) a waiting review,
    audited. A member who becomes an adult leaves their guardian's oversight at once, the
    way every ward who comes of age does (`guardians.transition_coming_of_age`).

    :raises Conflict: when the review was decided already.
    """
    review = _load_review(staff, public_id)
    if review.status != BirthDateReviewStatus.PENDING:
        raise Conflict(_l("This review was decided already."))
    member = db.session.get(Member, review.member_id)
    review.status = BirthDateReviewStatus.APPROVED if approve else BirthDateReviewStatus.REFUSED
    review.decided_at, review.decided_by_id = utcnow(), staff.id
    if approve:
        member.birth_date = review.requested_birth_date
        member.updated_at = review.decided_at
    record_audit(
        "profile.birth_date_review_" + review.status,
        actor=staff,
        subject=member,
        review=review.public_id,
    )
    if approve:
        transition_coming_of_age()
    return review


def remove_phone(member: Member) -> None:
    """Remove the member's mobile number (it is optional)."""
    if member.phone is None:
        return
    member.phone = None
    member.phone_verified_at = None
    member.notify_sms = False
    member.updated_at = utcnow()
    record_audit("profile.phone_removed", actor=member, subject=member)


def set_locale(member: Member, locale: str) -> None:
    """Store the member's language choice."""
    if locale not in set(Locale):
        raise Invalid(_l("Choose one of the options."))
    if member.locale != locale:
        member.locale = locale
        member.updated_at = utcnow()


def record_sms_opt_out(member_id: int, *, source: str) -> None:
    """Stop all SMS to this member (they replied STOP, or opted out on the website)."""
    member = db.session.get(Member, member_id)
    if member is None or member.sms_opted_out_at is not None:
        return
    member.sms_opted_out_at = utcnow()
    record_audit("notify.sms_opted_out", actor=None, subject=member, source=source)


def set_notification_preferences(member: Member, *, email: bool, sms: bool) -> None:
    """Choose the channels for policy notices (in-app notices are always shown).

    :raises Invalid: when SMS is chosen without a verified mobile number.
    """
    if sms and (member.phone is None or member.phone_verified_at is None):
        message = _l("Add and verify a mobile number first.")
        raise Invalid(message, {"sms": [message]})
    changed = (member.notify_email, member.notify_sms) != (email, sms)
    member.notify_email, member.notify_sms = email, sms
    if sms and member.sms_opted_out_at is not None:
        # Choosing SMS here is an explicit opt-in again.
        member.sms_opted_out_at = None
        record_audit("notify.sms_opted_in", actor=member, subject=member, source="website")
    if changed:
        member.updated_at = utcnow()
        record_audit(
            "notify.preferences_changed", actor=member, subject=member, email=email, sms=sms
        )


def opt_out_of_sms(member: Member) -> None:
    """Stop every text message to this member (the web equivalent of replying STOP)."""
    member.notify_sms = False
    record_sms_opt_out(member.id, source="website")


def unsubscribe_policy_emails(notification_public_id: str) -> Member | None:
    """One-click unsubscribe from policy-notice emails, by the id in the email's link.

    :returns: the member, or None for an unknown id (answered the same way, on purpose).
    """
    row = db.session.scalars(
        select(Notification).where(Notification.public_id == notification_public_id)
    ).first()
    if row is None or row.member_id is None:
        return None
    member = db.session.get(Member, row.member_id)
    if member is None or member.status == MemberStatus.ERASED:
        return None
    if member.notify_email:
        member.notify_email = False
        member.updated_at = utcnow()
        record_audit(
            "notify.unsubscribed", actor=None, subject=member, channel="email", kind=row.kind
        )
    return member
