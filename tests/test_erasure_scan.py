"""Erasure leaves nothing in the guardian and minor flows and the contact form: every outbox
row names its data subjects, and the catalogue scan finds no trace afterwards."""

from __future__ import annotations

from sqlalchemy import exists, select

from consent_center.extensions import db
from consent_center.models import Member, Notification, NotificationSubject
from consent_center.notify.worker import drain
from consent_center.services.erasure import erase_member
from tests.conftest import make_member, make_policy, post
from tests.test_deletion import assert_nothing_remains
from tests.test_guardians import link_from_mailbox, register_minor, verify_as_guardian


def traces(name: str, email: str) -> tuple[str, ...]:
    """The name, the address, and the keyed digest the address is looked up by."""
    from consent_center.services.auth import identifier_digest

    return name, email, identifier_digest(email)


def assert_every_row_names_a_subject() -> None:
    nameless = db.session.scalars(
        select(Notification.kind).where(
            Notification.member_id.is_(None),
            ~exists().where(NotificationSubject.notification_id == Notification.id),
        )
    ).all()
    assert not nameless, nameless


def test_a_refused_minor_leaves_nothing(client, app):
    minor = register_minor(client, name="Jkvq Child", email="jkvq.child@example.org")
    guardian_client = app.test_client()
    token = link_from_mailbox()
    verify_as_guardian(guardian_client, token)
    response = post(
        guardian_client, f"/guardian/invite/{token}/decide", {"decision": "refuse", "note": "No"}
    )
    assert response.status_code == 200
    db.session.refresh(minor)
    assert minor.status == "erased"
    assert_every_row_names_a_subject()
    drain()  # the refusal reaches the child's address, which is then forgotten
    assert_nothing_remains(*traces("Jkvq", "jkvq.child@example.org"))


def test_an_erased_ward_and_an_erased_guardian_leave_nothing(client, app):
    make_policy()
    minor = register_minor(client, name="Jkvq Ward", email="jkvq.ward@example.org")
    first_client = app.test_client()
    token = link_from_mailbox()
    verify_as_guardian(first_client, token)
    post(first_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Pqrs Parent"})
    db.session.refresh(minor)
    # A second guardian is invited (the invitation names the ward), approves, and changes a
    # choice (the first guardian is told, by the second one's name).
    post(first_client, f"/guardian/wards/{minor.public_id}/invite",
         {"contact": "wxyz.other@example.org"})
    token = link_from_mailbox("wxyz.other@example.org")
    second_client = app.test_client()
    verify_as_guardian(second_client, token, "wxyz.other@example.org")
    post(second_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Wxyz Other"})
    post(second_client, f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
         {"granted": "1"})
    kinds = set(db.session.scalars(select(Notification.kind)))
    assert {"guardian_invite", "guardian_approved", "guardian_change"} <= kinds
    assert_every_row_names_a_subject()
    drain()
    second = db.session.scalars(
        select(Member).where(Member.email == "wxyz.other@example.org")
    ).one()
    erase_member(second, actor=None, reason="test")
    db.session.commit()
    assert_nothing_remains(*traces("Wxyz", "wxyz.other@example.org"))
    erase_member(minor, actor=None, reason="test")
    db.session.commit()
    assert_nothing_remains(*traces("Jkvq", "jkvq.ward@example.org"))
    assert_every_row_names_a_subject()


def test_a_contact_form_sender_erased_later_leaves_nothing(client, app):
    member = make_member(name="Zorblat Sender", email="zorblat@example.org")
    page = client.get("/contact").get_data(as_text=True)
    submission = page.split('name="submission_id" type="hidden" value="')[1].split('"')[0]
    data = {
        "category": "privacy_request",
        "name": "Zorblat Sender",
        "email": "zorblat@example.org",
        "message": "Please tell me what you hold about Zorblat.",
        "submission_id": submission,
    }
    assert post(client, "/contact", data).status_code == 303
    assert_every_row_names_a_subject()
    drain()
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    assert_nothing_remains(*traces("Zorblat", "zorblat@example.org"))
    assert_every_row_names_a_subject()


def test_an_erased_member_invited_as_a_guardian_leaves_nothing(client, app):
    """The invitation waits at the address of someone who then erases their account."""
    parent = make_member(name="Vbnm Parent", email="vbnm.parent@example.org")
    register_minor(client, name="Jkvq Kid", email="jkvq.kid@example.org",
                   guardian_contact="vbnm.parent@example.org")
    assert_every_row_names_a_subject()
    erase_member(parent, actor=None, reason="test")
    db.session.commit()
    assert_nothing_remains(*traces("Vbnm", "vbnm.parent@example.org"))
