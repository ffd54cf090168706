"""Password-less sign-in and contact verification by one-time code.

Codes are 6 random digits, stored only as an HMAC bound to their row, valid for 10 minutes,
used once, with a few attempts. Asking for a code looks the same whether or not an account
exists: an unknown address gets a row that no code can ever match, and no message. Every code
spends from one budget per destination (`code_budget`), and wrong codes are also counted per
account across fresh codes: too many in the window and the account accepts no code at all
until the window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..clock import utcnow
from ..domain import OPTIONAL_PURPOSES, Actor, Channel, MemberStatus, Method
from ..extensions import db
from ..metrics import CODE_FAILURES, count_after_commit
from ..models import Member, OneTimeCode
from .audit import record_audit
from .code_budget import (
    count_unknown_failure,
    spend_code_budget,
    try_again_at,
    unknown_locked_until,
)
from .consents import set_consent
from .errors import Invalid, NotAllowed, TooManyAttempts
from .identity import find_member_by_contact, identifier_digest
from .notifications import (
    contact_subject,
    enqueue_notification,
    enqueue_secret_notification,
    prepare_secret_message,
    wake_workers,
)
from .reach import CODE, contacts, first_contact, may_text
from .sessions import CONTACT_CHANGED, end_all_sessions
from .sms_guard import check_sms_destination, sms_country_problem
from .validation import mask_email, mask_phone, normalize_email, normalize_phone

SIGN_IN = "sign_in"
VERIFY_CONTACT = "verify_contact"
REAUTH = "reauth"
GUARDIAN = "guardian"
# A sign-in code's `new_value` when it was issued by the registration itself: only that code
# carries the registration's ticks into the ledger (whoever verifies with any other code may
# not be the person who ticked them).
FROM_REGISTRATION = "registration"
CONTACT_PROOF = "contact_proof"
_KINDS = {
    SIGN_IN: "sign_in_code",
    VERIFY_CONTACT: "verify_contact",
    REAUTH: "reauth_code",
    GUARDIAN: "guardian_code",
    CONTACT_PROOF: "contact_change_code",
}


def _key() -> bytes:
    return current_app.config["SECRET_KEY"].encode()


def _code_hash(token: str, code: str) -> str:
    return hmac.new(_key(), f"code:{token}:{code}".encode(), hashlib.sha256).hexdigest()


def parse_identifier(raw: str) -> tuple[str, str]:
    """Split what the member typed into (channel, normalized value).

    :raises Invalid: when it is neither an email address nor a mobile number.
    """
    raw = (raw or "").strip()
    if "@" in raw:
        email = normalize_email(raw)
        if email:
            return Channel.EMAIL, email
        raise Invalid(
            _l("Enter a valid email address."), {"identifier": [_l("Enter a valid email address.")]}
        )
    phone = normalize_phone(raw, current_app.config["DEFAULT_PHONE_REGION"])
    if phone:
        if problem := sms_country_problem(phone):
            raise Invalid(problem, {"identifier": [problem]})
        return Channel.SMS, phone
    message = _l(
        "Enter your email address or mobile number. Numbers outside China need the country "
        "code, e.g. +44."
    )
    raise Invalid(message, {"identifier": [message]})


@dataclass(frozen=True)
class CodeRequest:
    token: str
    channel: str
    masked_to: str


def _new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def _issue_code(
    *,
    purpose: str,
    channel: str,
    value: str,
    member: Member | None,
    locale: str,
    new_value: str | None = None,
    requested_by: Member | None = None,
) -> CodeRequest:
    """Write a code row and its message, after spending the code budgets (see `code_budget`).

    :param requested_by: the signed-in member who asks (None for sign-in and guardian links).
    :raises CodeBudgetSpent: when a budget is spent; nothing is written then.
    :raises Invalid: for a number text messages may not go to (`sms_guard`).
    :raises Unavailable: while the site's hourly SMS budget is spent.
    """
    if channel == Channel.SMS:
        check_sms_destination(value)
    digest = identifier_digest(value)
    spend_code_budget(digest, requested_by)
    ttl = current_app.config["SIGN_IN_CODE_TTL_SECONDS"]
    now = utcnow()
    code = _new_code()
    row = OneTimeCode(
        purpose=purpose,
        channel=channel,
        identifier_digest=digest,
        member_id=member.id if member else None,
        new_value=new_value,
        expires_at=now + timedelta(seconds=ttl),
        code_hash="",
    )
    row.token = secrets.token_urlsafe(32)
    row.code_hash = _code_hash(row.token, code)
    db.session.add(row)
    db.session.flush()
    masked = mask_email(value) if channel == Channel.EMAIL else mask_phone(value)
    message = prepare_secret_message(
        channel=channel,
        kind=_KINDS[purpose],
        locale=member.locale if member else locale,
        context={"minutes": ttl // 60},
        secret_context={"code": code},
        masked_context={"code": "••••••"},
        expires_at=row.expires_at,
        validity_seconds=ttl,
    )
    # An SMS opt-out is honoured for every text, codes included; the page looks the same.
    opted_out = channel == Channel.SMS and not may_text(member)
    if member is None or opted_out:
        # No message, but the same work as sending one (the message is rendered and sealed
        # above; the INSERT below also NOTIFYs): the answer takes as long either way.
        wake_workers()
        return CodeRequest(row.token, channel, masked)
    # The worker sends it after commit.
    enqueue_secret_notification(
        member=member,
        channel=channel,
        kind=_KINDS[purpose],
        dedupe_key=f"code:{row.token}",
        recipient=value,
        locale=member.locale,
        message=message,
        # A guardian's code is addressed to someone other than the member it is filed under.
        about=(contact_subject(value),) if purpose == GUARDIAN else (),
    )
    return CodeRequest(row.token, channel, masked)


def request_sign_in_code(raw_identifier: str) -> CodeRequest:
    """Start a sign-in: issue a code to the member with this email or phone, if any.

    :raises Invalid: when the identifier is malformed (never when it is unknown).
    """
    channel, value = parse_identifier(raw_identifier)
    member = find_member_by_contact(channel, value)
    return _issue_code(
        purpose=SIGN_IN,
        channel=channel,
        value=value,
        member=member,
        locale=member.locale if member else "en",
    )


def request_contact_change(member: Member, channel: str, new_value: str) -> CodeRequest:
    """Send a code to a new email or phone; it replaces the old one only once confirmed."""
    return _issue_code(
        purpose=VERIFY_CONTACT,
        channel=channel,
        value=new_value,
        member=member,
        locale=member.locale,
        new_value=new_value,
        requested_by=member,
    )


def verified_channels(member: Member) -> dict[str, str]:
    """The member's contacts a code may go to, email first (the rule is `reach.CODE`)."""
    return contacts(member, CODE)


def verified_channel(member: Member) -> tuple[str, str]:
    """Where the member proved they can be reached: the verified email, else the verified
    mobile number (a guardian who signed up by SMS has only that).

    :raises NotAllowed: when there is no such channel.
    """
    for channel, value in verified_channels(member).items():
        return channel, value
    raise NotAllowed(
        _l(
            "We have no verified email address or mobile number to send you a code. Please "
            "contact customer service."
        )
    )


def proof_contact(member: Member, changing: Collection[str]) -> tuple[str, str]:
    """Where the code proving the account holder goes before an email or phone change.

    The channel being changed, when it is verified (the email first), else the member's other
    verified channel (`verified_channels`). A member with no verified channel uses the email,
    where sign-in codes go.

    :returns: (channel, address).
    """
    verified = verified_channels(member)
    for channel in (*sorted(changing), Channel.EMAIL, Channel.SMS):
        if channel in verified:
            return channel, verified[channel]
    return Channel.EMAIL, member.email


def request_contact_proof(member: Member, changing: Collection[str]) -> CodeRequest:
    """Send a fresh code to the member's current verified channel (see `proof_contact`): a new
    email or phone is sent its own code only once the account holder has entered this one."""
    channel, value = proof_contact(member, changing)
    return _issue_code(
        purpose=CONTACT_PROOF,
        channel=channel,
        value=value,
        member=member,
        locale=member.locale,
        requested_by=member,
    )


def confirm_contact_proof(
    member: Member, token: str | None, code: str, new_values: dict[str, str]
) -> list[CodeRequest]:
    """Check the account holder's code, then send a code to each new email or phone.

    The caller commits in every case.

    :param new_values: channel -> the new address, as `update_profile` checked it.
    :raises Invalid: wrong, expired or used code, or one issued to someone else.
    :raises TooManyAttempts: after too many wrong attempts.
    """
    row = load_pending_code(token, CONTACT_PROOF)
    if row is not None and row.member_id != member.id:
        row = None
    check_code(row, code)
    return [
        request_contact_change(member, channel, new_values[channel])
        for channel in (Channel.EMAIL, Channel.SMS)
        if new_values.get(channel)
    ]


def request_reauth_code(member: Member) -> CodeRequest:
    """Send a fresh code to the member's verified channel, to confirm a serious action
    (deletion, for themselves or a ward).

    :raises NotAllowed: when the member has no verified contact.
    """
    channel, value = verified_channel(member)
    return _issue_code(
        purpose=REAUTH,
        channel=channel,
        value=value,
        member=member,
        locale=member.locale,
        requested_by=member,
    )


def confirm_reauth(member: Member, token: str | None, code: str) -> None:
    """Check a re-authentication code; the caller commits in every case.

    :raises Invalid: wrong, expired or used code, or one issued to someone else.
    :raises TooManyAttempts: after too many wrong attempts.
    """
    row = load_pending_code(token, REAUTH)
    if row is not None and row.member_id != member.id:
        row = None
    check_code(row, code)


def request_guardian_code(link, minor: Member) -> CodeRequest:
    """Send a code to the guardian contact of `link`, to prove the guardian holds it."""
    locale = "zh_Hans_CN" if (link.contact or "").startswith("+86") else minor.locale
    return _issue_code(
        purpose=GUARDIAN,
        channel=link.contact_channel,
        value=link.contact,
        member=minor,
        locale=locale,
        new_value=link.public_id,
    )


def confirm_guardian_code(link, token: str | None, code: str) -> None:
    """Check the guardian's code for this link; the caller commits in every case.

    :raises Invalid: wrong, expired or used code, or a code for another link.
    :raises TooManyAttempts: after too many wrong attempts.
    """
    row = load_pending_code(token, GUARDIAN)
    if row is not None and row.new_value != link.public_id:
        row = None
    check_code(row, code)
    row.new_value = None


def load_pending_code(token: str | None, purpose: str) -> OneTimeCode | None:
    if not token:
        return None
    return db.session.scalars(
        select(OneTimeCode).where(OneTimeCode.token == token, OneTimeCode.purpose == purpose)
    ).first()


def normalize_code(raw: str | None) -> str:
    """A code as typed, in the form it was issued: Unicode NFKC (full-width digits from a
    Chinese keyboard become ASCII), with spaces and dashes left out."""
    text = unicodedata.normalize("NFKC", raw or "")
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Pd")


def _lockout(until: datetime) -> TooManyAttempts:
    return TooManyAttempts(
        _l(
            "Too many wrong codes were entered for this account. To protect it, no code is "
            "accepted until %(time)s. Then ask for a new code.",
            time=try_again_at(until),
        )
    )


def _refuse_if_locked(row: OneTimeCode) -> Member | None:
    """The account a code belongs to, locked for update (None for an unknown address).

    :raises TooManyAttempts: while the account's codes are locked, or an unknown address's
        (which must answer as an account would).
    """
    if row.member_id is None:
        if (until := unknown_locked_until(row.identifier_digest)) is not None:
            raise _lockout(until)
        return None
    member = db.session.get(Member, row.member_id, with_for_update=True, populate_existing=True)
    if member is not None and member.code_locked_until and member.code_locked_until > utcnow():
        raise _lockout(member.code_locked_until)
    return member


def _count_wrong_code(member: Member) -> None:
    """Count a wrong code against the account; at the limit, lock its codes for the window,
    audit it and tell the owner once on their verified channel.

    :raises TooManyAttempts: when this wrong code locks the account.
    """
    config = current_app.config
    now = utcnow()
    window = timedelta(seconds=config["CODE_LOCKOUT_WINDOW_SECONDS"])
    if member.code_failures_since is None or member.code_failures_since <= now - window:
        member.code_failures, member.code_failures_since = 0, now
    member.code_failures += 1
    if member.code_failures < config["CODE_LOCKOUT_FAILURES"]:
        return
    member.code_failures, member.code_failures_since = 0, None
    member.code_locked_until = now + window
    count_after_commit(db.session, CODE_FAILURES.labels("locked"))
    record_audit("auth.codes_locked", actor=None, subject=member)
    _tell_owner_of_lockout(member)
    raise _lockout(member.code_locked_until)


def _tell_owner_of_lockout(member: Member) -> None:
    """Tell the owner where a code would go (`reach.CODE`): a proven contact, email first."""
    found = first_contact(member, CODE)
    if found is None:
        return
    channel, recipient = found
    enqueue_notification(
        member=member,
        channel=channel,
        kind="code_lockout",
        dedupe_key=f"code_lockout:{member.public_id}:{member.code_locked_until.isoformat()}",
        recipient=recipient,
        locale=member.locale,
        context={"until": member.code_locked_until},
    )


def check_code(row: OneTimeCode | None, code: str) -> OneTimeCode:
    """Check `code` against a pending row, counting a wrong attempt on the row and on the
    account it belongs to.

    The caller commits in every case, so wrong attempts are counted.

    :raises Invalid: wrong, expired or used code.
    :raises TooManyAttempts: after the configured number of wrong attempts on this code, or
        while the account is locked after too many wrong codes (even for the right code).
    """
    expired = _l("This code has expired or was already used. Ask for a new one.")
    if row is None:
        raise Invalid(expired, {"code": [expired]})
    member = _refuse_if_locked(row)
    if row.consumed_at is not None or row.expires_at <= utcnow():
        raise Invalid(expired, {"code": [expired]})
    if row.attempts >= current_app.config["SIGN_IN_CODE_MAX_ATTEMPTS"]:
        raise TooManyAttempts(_l("Too many wrong attempts. Ask for a new code."))
    code = normalize_code(code)
    if member is None or not hmac.compare_digest(row.code_hash, _code_hash(row.token, code)):
        row.attempts += 1
        count_after_commit(db.session, CODE_FAILURES.labels("wrong"))
        if member is not None:
            _count_wrong_code(member)
        elif (until := count_unknown_failure(row.identifier_digest)) is not None:
            count_after_commit(db.session, CODE_FAILURES.labels("locked"))
            raise _lockout(until)
        wrong = _l("That code is not right. Check the latest message and try again.")
        if row.attempts >= current_app.config["SIGN_IN_CODE_MAX_ATTEMPTS"]:
            raise TooManyAttempts(_l("Too many wrong attempts. Ask for a new code."))
        raise Invalid(wrong, {"code": [wrong]})
    row.consumed_at = utcnow()
    return row


def complete_sign_in(token: str | None, code: str) -> Member:
    """Finish a sign-in: check the code, mark that contact verified, audit it.

    :raises Invalid: wrong, expired or used code (see `check_code`).
    """
    row = check_code(load_pending_code(token, SIGN_IN), code)
    member = db.session.get(Member, row.member_id)
    if member is None or member.status == MemberStatus.ERASED:
        raise Invalid(_l("This code has expired or was already used. Ask for a new one."))
    now = utcnow()
    if row.channel == Channel.EMAIL and member.email_verified_at is None:
        member.email_verified_at = now
    if row.channel == Channel.SMS and member.phone_verified_at is None:
        member.phone_verified_at = now
    activate_verified_member(member, with_pending=row.new_value == FROM_REGISTRATION)
    record_audit("auth.signed_in", actor=member, subject=member, channel=row.channel)
    return member


def confirm_contact_change(member: Member, token: str | None, code: str) -> str:
    """Apply a new email or phone after its code is confirmed; returns the channel.

    :raises Invalid: wrong code, or the address now belongs to another account.
    """
    row = check_code(load_pending_code(token, VERIFY_CONTACT), code)
    if row.member_id != member.id or not row.new_value:
        raise Invalid(_l("This code has expired or was already used. Ask for a new one."))
    other = find_member_by_contact(row.channel, row.new_value)
    if other is not None and other.id != member.id:
        message = _l("This contact detail cannot be used for your account.")
        raise Invalid(message, {"code": [message]})
    now = utcnow()
    if row.channel == Channel.EMAIL:
        old_value, old_verified = member.email, member.email_verified_at
        member.email, member.email_verified_at = row.new_value, now
    else:
        old_value, old_verified = member.phone, member.phone_verified_at
        member.phone, member.phone_verified_at = row.new_value, now
    new_value, row.new_value = row.new_value, None
    member.updated_at = now
    record_audit("profile.contact_changed", actor=member, subject=member, channel=row.channel)
    if old_value != new_value:
        # Whoever held a session before the change holds none after it; the device that made
        # the change is signed in again by the caller.
        end_all_sessions(member, reason=CONTACT_CHANGED, actor=member)
        if old_value and old_verified is not None:
            _tell_old_contact(member, row, old_value, new_value)
    return row.channel


def _tell_old_contact(member: Member, row: OneTimeCode, old_value: str, new_value: str) -> None:
    """Tell the address or number just replaced, so its owner can report a change they did
    not make (a number that opted out of SMS is not texted)."""
    if row.channel == Channel.SMS and not may_text(member):
        return
    masked = mask_email(new_value) if row.channel == Channel.EMAIL else mask_phone(new_value)
    enqueue_notification(
        member=member,
        channel=row.channel,
        kind="contact_changed",
        dedupe_key=f"contact_changed:{row.id}",
        recipient=old_value,
        locale=member.locale,
        context={"changed": row.channel, "new_masked": masked},
    )


def activate_verified_member(member: Member, *, with_pending: bool) -> bool:
    """Make an `unverified` account active once one of its contacts is verified, and record
    the purposes ticked at registration: each event is stamped now (the verification time),
    its method says registration.

    :param with_pending: whether the code that verified it is the one the registration sent;
        otherwise the ticks are dropped, since whoever verified may not be who ticked them.
    :returns: whether the account became active.
    """
    if member.status != MemberStatus.UNVERIFIED or (
        member.email_verified_at is None and member.phone_verified_at is None
    ):
        return False
    member.status = MemberStatus.ACTIVE
    pending = set((member.pending_purposes or "").split(",")) if with_pending else set()
    member.pending_purposes = None
    record_audit("member.verified", actor=member, subject=member, kept_choices=with_pending)
    for purpose in OPTIONAL_PURPOSES:
        if purpose in pending:
            set_consent(
                member,
                purpose,
                True,
                actor=Actor.MEMBER,
                method=Method.REGISTRATION,
                actor_member=member,
                # The ticks were made on the registration form, in the language it recorded.
                locale=member.locale,
            )
    return True
