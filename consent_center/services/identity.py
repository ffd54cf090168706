"""Who a contact belongs to: the keyed fingerprint of an email or phone, and the account it
names. Below every service that looks members up by contact (sign-in, guardians, erasure,
the outbox's subjects), so none of them needs another to do it."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app
from sqlalchemy import select

from ..domain import Channel, MemberStatus
from ..extensions import db
from ..models import Member


def identifier_digest(value: str) -> str:
    """A keyed fingerprint of a normalized email or phone (used for lookups and rate limits)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"identifier:{value}".encode(), hashlib.sha256).hexdigest()


def find_member_by_contact(channel: str, value: str) -> Member | None:
    """The account this email, or this *verified* mobile number, belongs to."""
    if channel == Channel.EMAIL:
        condition = Member.email == value
    else:
        condition = (Member.phone == value) & Member.phone_verified_at.is_not(None)
    return db.session.scalars(
        select(Member).where(condition, Member.status != MemberStatus.ERASED)
    ).first()
