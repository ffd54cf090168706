"""The member aggregate: a person with an account (member, staff or admin)."""

from __future__ import annotations

from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Date, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain import (
    ADVERTISING,
    GENDER_LABELS,
    LOCALE_LABELS,
    MEMBER_STATUS_LABELS,
    ROLE_LABELS,
    SERVICE,
    TREND_ANALYSIS,
    Locale,
    MemberStatus,
    Role,
)
from ..domain.inventory import (
    ERASURE_DATE_KEPT,
    ERASURE_TIME,
    MAIL_SERVER,
    OUR_SYSTEMS,
    PROVIDED,
    SMS_PROVIDER,
    TOMBSTONE,
    UNTIL_ERASED,
    held,
    held_table,
)
from ..domain.text import _l
from ..extensions import db
from .types import UTCDateTime, new_public_id


class Member(UserMixin, db.Model):
    __tablename__ = "member"
    __table_args__ = (
        Index(
            "uq_member_verified_phone",
            "phone",
            unique=True,
            sqlite_where=text("phone_verified_at IS NOT NULL"),
            postgresql_where=text("phone_verified_at IS NOT NULL"),
        ),
        {
            "info": held_table(
                _l("Your profile"),
                _l("What you told us when you registered or later corrected."),
                owner="id",
                position=1,
            )
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(32),
        unique=True,
        default=new_public_id,
        info=held(
            _l("Member number"), retention=UNTIL_ERASED, recipients=OUR_SYSTEMS, erased=TOMBSTONE
        ),
    )
    name: Mapped[str | None] = mapped_column(
        String(100),
        info=held(
            _l("Name"),
            retention=UNTIL_ERASED,
            purposes=(SERVICE, TREND_ANALYSIS),
            source=PROVIDED,
            erased=None,
        ),
    )
    gender: Mapped[str | None] = mapped_column(
        String(20),
        info=held(
            _l("Gender"),
            retention=UNTIL_ERASED,
            purposes=(SERVICE, TREND_ANALYSIS, ADVERTISING),
            source=PROVIDED,
            erased=None,
            labels=GENDER_LABELS,
        ),
    )
    # Lower-cased; unique so one address is one account. Erased members hold NULL.
    email: Mapped[str | None] = mapped_column(
        String(254),
        unique=True,
        info=held(
            _l("Email address"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
            recipients=MAIL_SERVER,
            erased=None,
        ),
    )
    # E.164. Unique only once verified (partial index below): an unverified number proves
    # nothing, so it can neither sign anyone in nor block its real owner.
    phone: Mapped[str | None] = mapped_column(
        String(20),
        info=held(
            _l("Mobile number"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
            recipients=SMS_PROVIDER,
            erased=None,
        ),
    )
    birth_date: Mapped[date | None] = mapped_column(
        Date,
        info=held(
            _l("Date of birth"),
            retention=UNTIL_ERASED,
            purposes=(SERVICE, TREND_ANALYSIS),
            source=PROVIDED,
            erased=None,
        ),
    )
    locale: Mapped[str] = mapped_column(
        String(16),
        default="en",
        info=held(
            _l("Preferred language"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
            erased=Locale.EN,
            labels=LOCALE_LABELS,
        ),
    )
    role: Mapped[str] = mapped_column(
        String(16),
        default=Role.MEMBER,
        info=held(_l("Account type"), retention=UNTIL_ERASED, labels=ROLE_LABELS),
    )
    status: Mapped[str] = mapped_column(
        String(24),
        default=MemberStatus.ACTIVE,
        index=True,
        info=held(
            _l("Account status"),
            retention=UNTIL_ERASED,
            erased=MemberStatus.ERASED,
            labels=MEMBER_STATUS_LABELS,
        ),
    )
    email_verified_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Email verified on"), retention=UNTIL_ERASED, erased=None)
    )
    phone_verified_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Mobile number verified on"), retention=UNTIL_ERASED, erased=None)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Member since"), retention=UNTIL_ERASED)
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        default=utcnow,
        info=held(_l("Profile last changed"), retention=UNTIL_ERASED, erased=ERASURE_TIME),
    )
    erased_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Erased on"), retention=ERASURE_DATE_KEPT, erased=ERASURE_TIME)
    )
    # Policy notices by email (on) and SMS (off) unless the member chooses otherwise.
    notify_email: Mapped[bool] = mapped_column(
        Boolean,
        default=True,
        info=held(
            _l("Policy notices by email"), retention=UNTIL_ERASED, source=PROVIDED, erased=False
        ),
    )
    notify_sms: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        info=held(
            _l("Policy notices by text message"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
            erased=False,
        ),
    )
    # Set when the member (or the carrier, via STOP) opted out of all SMS.
    sms_opted_out_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        info=held(
            _l("Opted out of text messages on"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
            erased=None,
        ),
    )
    # The newest policy version whose notice the member has acknowledged (hides the banner).
    policy_seen_number: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        info=held(
            _l("Latest policy version whose change notice you have read"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
        ),
    )
    # Came of age with choices a guardian made: asked to confirm them (they stand until then).
    confirm_guardian_choices: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default="0",
        info=held(_l("Asked to confirm your guardian's choices"), retention=UNTIL_ERASED),
    )
    # Optional purposes ticked at registration (comma-separated), held until the contact is
    # verified: consent counts only from a verified person, so they reach the ledger then.
    pending_purposes: Mapped[str | None] = mapped_column(
        String(64),
        info=held(
            _l("Optional uses you ticked when registering, kept until you confirm your address"),
            retention=_l(
                "Until you confirm your address, when they become your recorded consent; a "
                "registration never confirmed is erased within days"
            ),
            source=PROVIDED,
            erased=None,
        ),
    )
    # Wrong one-time codes in the current window (across fresh codes), when that window
    # began, and until when the account accepts no code after reaching the limit.
    code_failures: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        info=held(_l("Wrong sign-in codes entered recently"), retention=UNTIL_ERASED, erased=0),
    )
    code_failures_since: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        info=held(
            _l("First wrong sign-in code of the current hour"), retention=UNTIL_ERASED, erased=None
        ),
    )
    code_locked_until: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        info=held(
            _l("Codes refused until (after too many wrong ones)"),
            retention=UNTIL_ERASED,
            erased=None,
        ),
    )
    # The head of the member's consent ledger chain: the seq and hash of its last event
    # (0 and None for an empty chain). Kept here because this row is the lock every writer
    # of the chain takes (`services.consents.set_consent`), so the head is read with the
    # lock and no query for the chain's tail is needed; `verify_ledger` checks it.
    ledger_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ledger_hash: Mapped[str | None] = mapped_column(String(64))

    # The key of the signed-in session this object was loaded for (services/sessions.py);
    # not a column. Flask-Login keeps it in the session cookie as the user id.
    session_key = None

    def get_id(self) -> str:
        # The cookie names a server-side session, never the member: ending the session ends
        # every copy of the cookie.
        if not self.session_key:
            raise RuntimeError("sign members in through web/sessions.py:begin_session")
        return self.session_key

    @property
    def is_active(self) -> bool:
        return self.status != MemberStatus.ERASED

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.STAFF, Role.ADMIN)

    def __repr__(self) -> str:  # no personal data in logs
        return f"<Member {self.public_id} {self.status}>"
