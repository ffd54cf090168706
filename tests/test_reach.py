"""One rule for which of a member's contacts a message may use (services/reach.py): the
per-member form and the fan-out's SQL form agree, and codes and notices follow it."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.domain import Channel
from consent_center.extensions import db
from consent_center.models import Member
from consent_center.services.reach import (
    ACCOUNT,
    CODE,
    DECISION,
    ESSENTIAL_NOTICE,
    POLICY_NOTICE,
    contact_condition,
    contacts,
    first_contact,
)
from tests.conftest import make_member

REACHES = {
    "code": CODE,
    "account": ACCOUNT,
    "decision": DECISION,
    "policy_notice": POLICY_NOTICE,
    "essential_notice": ESSENTIAL_NOTICE,
}


def _every_kind_of_member() -> list[Member]:
    """A member for each combination of held/verified contacts, opt-out and choices."""
    now = clock.utcnow()
    members = []
    states = ("none", "unverified", "verified")
    for n, (email, phone, opted_out, by_email, by_sms) in enumerate(
        itertools.product(states, states, (False, True), (False, True), (False, True))
    ):
        members.append(make_member(
            email=None if email == "none" else f"reach{n}@example.org",
            email_verified_at=now if email == "verified" else None,
            phone=None if phone == "none" else f"+86138{n:08d}",
            phone_verified_at=now if phone == "verified" else None,
            sms_opted_out_at=now if opted_out else None,
            notify_email=by_email,
            notify_sms=by_sms,
        ))
    return members


@pytest.mark.parametrize("name", sorted(REACHES))
def test_the_sql_rule_is_the_per_member_rule(app, name):
    reach = replace(REACHES[name], every=True)
    members = _every_kind_of_member()
    ids = [m.id for m in members]
    for channel in (Channel.EMAIL, Channel.SMS):
        in_sql = set(db.session.scalars(
            select(Member.id).where(Member.id.in_(ids), contact_condition(channel, reach))
        ))
        in_python = {m.id for m in members if channel in contacts(m, reach)}
        assert in_sql == in_python, (name, channel)
        assert in_python, (name, channel)  # the matrix reaches someone on each channel


def test_a_code_goes_only_to_a_proven_contact_and_a_text_never_after_stop(app):
    now = clock.utcnow()
    unproven = make_member(email="unproven@example.org", email_verified_at=None,
                           phone="+8613800000001", phone_verified_at=now)
    assert contacts(unproven, CODE) == {Channel.SMS: "+8613800000001"}
    unproven.sms_opted_out_at = now
    assert contacts(unproven, CODE) == {}
    assert first_contact(unproven, ACCOUNT) == (Channel.EMAIL, "unproven@example.org")


def test_one_channel_messages_take_email_first_else_the_proven_number(app):
    now = clock.utcnow()
    both = make_member(email="both@example.org", phone="+8613800000002", phone_verified_at=now)
    assert first_contact(both, ACCOUNT) == (Channel.EMAIL, "both@example.org")
    assert set(contacts(both, CODE)) == {Channel.EMAIL, Channel.SMS}
    phone_only = make_member(email=None, phone="+8613800000003", phone_verified_at=now)
    assert first_contact(phone_only, ACCOUNT) == (Channel.SMS, "+8613800000003")


def test_a_decision_is_texted_only_to_those_who_chose_texts(app):
    now = clock.utcnow()
    member = make_member(phone="+8613800000004", phone_verified_at=now, notify_sms=False,
                         notify_email=False)
    assert set(contacts(member, DECISION)) == {Channel.EMAIL}  # email whatever the choice
    member.notify_sms = True
    assert set(contacts(member, DECISION)) == {Channel.EMAIL, Channel.SMS}
    assert set(contacts(member, POLICY_NOTICE)) == {Channel.SMS}


def test_a_deletion_decision_is_not_texted_after_stop(app):
    """The deletion notices follow the rule: a member who texted STOP gets email only."""
    from consent_center.models import Notification
    from consent_center.services.deletion import request_deletion

    now = clock.utcnow()
    member = make_member(phone="+8613800000005", phone_verified_at=now, notify_sms=True,
                         sms_opted_out_at=now)
    request_deletion(member, requested_by=member, reason=None)
    db.session.flush()
    channels = set(db.session.scalars(
        select(Notification.channel).where(Notification.member_id == member.id,
                                           Notification.kind == "deletion_received")
    ))
    assert channels == {Channel.EMAIL}
    other = make_member(phone="+8613800000006", phone_verified_at=now, notify_sms=True)
    request_deletion(other, requested_by=other, reason=None)
    db.session.flush()
    channels = set(db.session.scalars(
        select(Notification.channel).where(Notification.member_id == other.id,
                                           Notification.kind == "deletion_received")
    ))
    assert channels == {Channel.EMAIL, Channel.SMS}
