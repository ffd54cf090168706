"""Minors and guardians: no optional processing before a verified guardian approves."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import ConsentEvent, GuardianLink, Member, Notification
from consent_center.services.consents import current_consents
from tests.conftest import make_member, make_policy, post
from tests.support.outbox import mailbox
from tests.support.writes import nothing_written

GUARDIAN_EMAIL = "parent@example.org"


def minor_birth_date(age: int = 10) -> str:
    """1 January, `age` years ago: `age` all year long, and there on 29 February too."""
    return date(clock.utcnow().year - age, 1, 1).isoformat()


def register_minor(client, **extra) -> Member:
    data = {"name": "Little Lee", "email": "little.lee@example.org",
            "birth_date": minor_birth_date(), "locale": "en",
            "guardian_contact": GUARDIAN_EMAIL, "trend_analysis": "y"}
    data.update(extra)
    response = post(client, "/register", data)
    assert response.status_code == 303, response.data
    return db.session.scalars(select(Member).where(Member.email == data["email"])).one()


def link_from_mailbox(to: str = GUARDIAN_EMAIL) -> str:
    message = next(m for m in mailbox() if m["to"] == to and m["kind"] == "guardian_invite")
    return re.search(r"/g/([\w-]+)", message["text"]).group(1)


def code_from_mailbox(to: str, kind: str) -> str:
    message = next(m for m in mailbox() if m["to"] == to and m["kind"] == kind)
    return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def verify_as_guardian(client, token: str, to: str = GUARDIAN_EMAIL):
    assert post(client, f"/guardian/invite/{token}/code", {}).status_code == 303
    code = code_from_mailbox(to, "guardian_code")
    response = post(client, f"/guardian/invite/{token}/verify", {"code": code})
    assert response.status_code == 303 and response.headers["Location"].endswith("/decide")


def test_minor_needs_a_guardian_contact(client):
    with nothing_written():
        response = post(client, "/register", {"name": "Kid", "email": "kid@example.org",
                                              "birth_date": minor_birth_date(), "locale": "en"})
    assert response.status_code == 422 and b"parent" in response.data
    assert db.session.scalars(select(Member)).first() is None


def test_minor_account_waits_and_no_optional_purpose_is_recorded(client, app):
    minor = register_minor(client)
    assert minor.status == "awaiting_guardian"
    assert db.session.scalars(select(ConsentEvent)).first() is None
    link = db.session.scalars(select(GuardianLink)).one()
    assert link.status == "invited" and link.contact == GUARDIAN_EMAIL
    token = link_from_mailbox()
    assert link.token_hash != token and token not in (
        db.session.scalars(select(Notification.body_text)
                           .where(Notification.kind == "guardian_invite")).one())
    # The minor can sign in, but sees only the status of the request.
    from tests.test_auth import latest_code

    post(client, "/sign-in/code", {"code": latest_code(minor.email)})
    response = client.get("/me")
    assert response.status_code == 303 and response.headers["Location"].endswith(
        "/me/awaiting-guardian")
    page = client.get("/me/awaiting-guardian").get_data(as_text=True)
    assert "Waiting for your guardian" in page
    assert client.get("/me/history").status_code == 303
    with nothing_written():
        assert post(client, "/me/consents/trend_analysis", {"granted": "1"}).status_code == 303
    assert db.session.scalars(select(ConsentEvent)).first() is None
    assert client.get("/policy").status_code == 200


def test_guardian_verifies_then_approves(client, app):
    make_policy()
    minor = register_minor(client)
    guardian_client = app.test_client()
    token = link_from_mailbox()
    page = guardian_client.get(f"/guardian/invite/{token}").get_data(as_text=True)
    assert "Little Lee" in page and "Send me a code" in page
    # Deciding before verifying the contact is not possible.
    assert guardian_client.get(f"/guardian/invite/{token}/decide").status_code == 303
    verify_as_guardian(guardian_client, token)
    page = guardian_client.get(f"/guardian/invite/{token}/decide").get_data(as_text=True)
    assert "little.lee@example.org" in page and "Advertising planning is never used" in page
    response = post(guardian_client, f"/guardian/invite/{token}/decide",
                    {"decision": "approve", "guardian_birth_date": "1980-05-01",
                     "guardian_name": "Parent Lee",
                     "trend_analysis": "y"})
    assert response.status_code == 303 and response.headers["Location"] == "/guardian"
    db.session.refresh(minor)
    assert minor.status == "active"
    guardian = db.session.scalars(select(Member).where(Member.email == GUARDIAN_EMAIL)).one()
    event = db.session.scalars(select(ConsentEvent)).one()
    assert (event.purpose, event.actor, event.actor_member_id, event.method, event.locale) == (
        "trend_analysis", "guardian", guardian.id, "guardian_link", "en")
    kinds = db.session.scalars(select(Notification.kind)).all()
    assert kinds.count("guardian_approved") == 2  # the minor and the guardian
    # The link cannot be replayed.
    with nothing_written():
        assert guardian_client.get(f"/guardian/invite/{token}").status_code == 404
        assert app.test_client().get(f"/guardian/invite/{token}").status_code == 404
    # The guardian is signed in and sees the ward.
    dashboard = guardian_client.get("/guardian").get_data(as_text=True)
    assert "Little Lee" in dashboard


def test_guardian_refusal_erases_the_minor(client, app):
    minor = register_minor(client)
    guardian_client = app.test_client()
    token = link_from_mailbox()
    verify_as_guardian(guardian_client, token)
    response = post(guardian_client, f"/guardian/invite/{token}/decide",
                    {"decision": "refuse", "note": "Too young"})
    assert response.status_code == 200 and b"erased" in response.data
    db.session.refresh(minor)
    assert minor.status == "erased" and minor.email is None
    told = db.session.scalars(select(Notification).where(
        Notification.kind == "guardian_refused")).one()
    assert told.member_id is None and told.recipient == "little.lee@example.org"


def test_expired_or_unknown_link_gets_a_clear_page(client, app):
    register_minor(client)
    token = link_from_mailbox()
    clock.freeze(clock.utcnow() + timedelta(days=7, seconds=1))
    with nothing_written():
        response = app.test_client().get(f"/guardian/invite/{token}")
        assert response.status_code == 404 and b"expired or was already used" in response.data
        assert app.test_client().get("/guardian/invite/not-a-token").status_code == 404


def test_minor_can_resend_with_a_rate_limit(client, app):
    minor = register_minor(client)
    first = link_from_mailbox()
    from tests.test_auth import latest_code

    post(client, "/sign-in/code", {"code": latest_code(minor.email)})
    assert post(client, "/me/awaiting-guardian/resend", {}).status_code == 303
    second = [re.search(r"/g/([\w-]+)", m["text"]).group(1)
              for m in mailbox() if m["kind"] == "guardian_invite"][0]
    assert second != first
    with nothing_written():
        assert app.test_client().get(f"/guardian/invite/{first}").status_code == 404
    assert app.test_client().get(f"/guardian/invite/{second}").status_code == 200
    for _ in range(2):
        post(client, "/me/awaiting-guardian/resend", {})
    with nothing_written():
        assert post(client, "/me/awaiting-guardian/resend", {}).status_code == 429


@pytest.fixture
def family(client, app, login_as):
    """A minor approved by a guardian, and the guardian's signed-in client."""
    make_policy()
    minor = register_minor(client)
    guardian_client = app.test_client()
    token = link_from_mailbox()
    verify_as_guardian(guardian_client, token)
    post(guardian_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Parent Lee"})
    guardian = db.session.scalars(select(Member).where(Member.email == GUARDIAN_EMAIL)).one()
    db.session.refresh(minor)
    return minor, guardian, guardian_client


def test_guardian_toggles_and_the_minor_sees_the_guardian_as_actor(family, client, login_as):
    minor, guardian, guardian_client = family
    page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert page.count('role="switch"') == 2 and "disabled" in page  # advertising barred
    response = post(guardian_client,
                    f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
                    {"granted": "1"}, htmx=True)
    assert response.status_code == 200 and 'aria-checked="true"' in response.get_data(
        as_text=True)
    # The guardian's switch says when it changed and offers no receipt (the child's own): no
    # separator is left dangling after the time.
    switch = response.get_data(as_text=True)
    assert re.search(r'<p class="meta">\s*\S.*\d\s*</p>', switch, re.S) and "·" not in switch
    with nothing_written():
        response = post(guardian_client,
                        f"/guardian/wards/{minor.public_id}/consents/advertising",
                        {"granted": "1"})
    assert response.status_code == 403
    login_as(minor)
    history = client.get("/me/history").get_data(as_text=True)
    assert "Your guardian" in history
    assert {v.purpose: v.granted for v in current_consents(minor)} == {
        "trend_analysis": True, "advertising": False}


def test_guardian_cannot_reach_another_childs_pages(family, app, login_as):
    minor, guardian, guardian_client = family
    stranger_child = make_member(birth_date=date.fromisoformat(minor_birth_date()))
    with nothing_written():
        for url in (f"/guardian/wards/{stranger_child.public_id}",
                    f"/guardian/wards/{stranger_child.public_id}/export"):
            assert guardian_client.get(url).status_code == 404
        response = post(guardian_client,
                        f"/guardian/wards/{stranger_child.public_id}/consents/trend_analysis",
                        {"granted": "1"})
        assert response.status_code == 404
        response = post(guardian_client, f"/guardian/wards/{stranger_child.public_id}/deletion",
                        {})
        assert response.status_code == 404
    # And a minor is nobody's guardian.
    minor_client = app.test_client()
    login_as(minor, on=minor_client)
    with nothing_written():
        assert minor_client.get(f"/guardian/wards/{minor.public_id}").status_code == 404


def test_guardian_exports_and_requests_deletion_for_the_ward(family):
    minor, guardian, guardian_client = family
    # The export itself needs a fresh code too (tests/test_data_export.py).
    assert guardian_client.get(f"/guardian/wards/{minor.public_id}/export").status_code == 200
    from consent_center.models import DeletionRequest

    deletion_url = f"/guardian/wards/{minor.public_id}/deletion"
    # Without a fresh code of the guardian's own, nothing is asked for.
    response = post(guardian_client, deletion_url, {"confirm": "y", "code": "123456"})
    assert response.status_code == 422
    assert db.session.scalars(select(DeletionRequest)).first() is None
    code_url = f"/guardian/wards/{minor.public_id}/deletion/code"
    assert post(guardian_client, code_url, {}).status_code == 303
    page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert "Confirmation code" in page
    code = code_from_mailbox(GUARDIAN_EMAIL, "reauth_code")
    wrong = "000000" if code != "000000" else "111111"
    response = post(guardian_client, deletion_url, {"confirm": "y", "code": wrong})
    assert response.status_code == 422
    assert db.session.scalars(select(DeletionRequest)).first() is None
    assert db.session.scalars(
        select(Notification).where(Notification.kind == "deletion_received")).first() is None
    response = post(guardian_client, deletion_url, {"confirm": "y", "code": code})
    assert response.status_code == 303
    request = db.session.scalars(select(DeletionRequest)).one()
    assert request.member_id == minor.id and request.requested_by_id == guardian.id
    assert response.headers["Location"] == f"/me/deletion/{request.public_id}"
    # Confirmed like a member's own request, worded about the child.
    status = unescape(guardian_client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Your request is received." in status and "Received" in status
    assert f"Deletion request for {minor.name}" in status and "Your deletion request" not in status
    assert f"Back to {minor.name}'s details" in status and "Withdraw my request" in status
    # The ward's page now shows the open request and its due date instead of a second form.
    ward_page = unescape(
        guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True))
    assert f"A deletion request for {minor.name} is open" in ward_page
    assert "We will answer by" in ward_page and "Send me a confirmation code" not in ward_page
    with nothing_written():
        again = post(guardian_client, deletion_url, {"confirm": "y", "code": code})
    assert again.status_code == 303 and again.headers["Location"] == response.headers["Location"]
    assert post(guardian_client, code_url, {}).headers["Location"].endswith("#open-deletion")


def test_guardian_pages_speak_about_the_child(family):
    minor, guardian, guardian_client = family
    page = unescape(
        guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True))
    for heading in (f"{minor.name}'s details", f"{minor.name}'s choices",
                    f"What we hold about {minor.name}", f"Delete {minor.name}'s data",
                    f"Download {minor.name}'s data"):
        assert heading in page, heading
    assert "Your profile" not in page and "Their choices" not in page
    guardian_client.set_cookie("cc_locale", "zh_Hans_CN")
    post(guardian_client, "/language", {"locale": "zh_Hans_CN", "next": "/"})
    page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert f"{minor.name}的信息" in page


def test_only_the_guardian_who_asked_withdraws_a_wards_request(family, app, login_as):
    from consent_center.models import AuditEvent, DeletionRequest
    from consent_center.services.deletion import request_deletion

    minor, guardian, guardian_client = family
    deletion = request_deletion(minor, requested_by=guardian, reason=None)
    db.session.commit()
    audits = db.session.scalar(select(db.func.count()).select_from(AuditEvent))
    minor_client = login_as(minor, on=app.test_client())
    response = post(minor_client, f"/me/deletion/{deletion.public_id}/withdraw", {})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(DeletionRequest, deletion.id).status == "received"
    assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)) == audits
    response = post(guardian_client, f"/me/deletion/{deletion.public_id}/withdraw", {})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(DeletionRequest, deletion.id).status == "withdrawn"


def test_second_guardian_and_notifications_of_changes(family, app):
    minor, guardian, guardian_client = family
    post(guardian_client, f"/guardian/wards/{minor.public_id}/invite",
         {"contact": "other.parent@example.org"})
    token = link_from_mailbox("other.parent@example.org")
    second_client = app.test_client()
    verify_as_guardian(second_client, token, "other.parent@example.org")
    post(second_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Other Parent"})
    post(second_client, f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
         {"granted": "1"})
    told = db.session.scalars(select(Notification).where(
        Notification.kind == "guardian_change")).all()
    assert [n.recipient for n in told] == [GUARDIAN_EMAIL]
    # A third guardian is not possible.
    with nothing_written():
        response = post(guardian_client, f"/guardian/wards/{minor.public_id}/invite",
                        {"contact": "third@example.org"})
    assert response.status_code == 303
    assert db.session.scalars(select(GuardianLink).where(
        GuardianLink.contact == "third@example.org")).first() is None


def test_coming_of_age(family, runner, client, login_as):
    minor, guardian, guardian_client = family
    post(guardian_client, f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
         {"granted": "1"})
    assert runner.invoke(args=["minors", "transition"]).output.startswith("0 ward")
    # The ward was born on 1 January ten years ago (minor_birth_date): 14 on this day.
    clock.freeze(datetime(clock.utcnow().year + 4, 1, 1, 12, tzinfo=UTC))
    result = runner.invoke(args=["minors", "transition"])
    assert result.exit_code == 0 and result.output.startswith("1 ward")
    link = db.session.scalars(select(GuardianLink)).one()
    assert link.status == "ended"
    db.session.refresh(minor)
    assert minor.confirm_guardian_choices
    # The guardian's choice stands until confirmed.
    assert {v.purpose: v.granted for v in current_consents(minor)}["trend_analysis"]
    login_as(guardian, on=guardian_client)  # four years on, the old session has long ended
    assert guardian_client.get(f"/guardian/wards/{minor.public_id}").status_code == 404
    login_as(minor)
    page = client.get("/me").get_data(as_text=True)
    assert "Keep these choices" in page
    assert post(client, "/me/guardian-choices/confirm", {}).status_code == 303
    db.session.refresh(minor)
    assert not minor.confirm_guardian_choices
    last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert (last.actor, last.granted) == ("member", True)
    kinds = db.session.scalars(select(Notification.kind)).all()
    assert kinds.count("guardian_ended") == 2


def test_the_worker_ends_oversight_at_coming_of_age_daily(family):
    from consent_center.notify.worker import DailyTasks

    minor, _guardian, _client = family
    clock.freeze(datetime(clock.utcnow().year + 4, 1, 1, 12, tzinfo=UTC))
    assert DailyTasks().run_if_due()["minors transition"] == 1
    assert db.session.scalars(select(GuardianLink)).one().status == "ended"


def test_a_child_cannot_name_themselves_as_guardian(client, app):
    data = {"name": "Little Lee", "email": "little.lee@example.org", "phone": "13800138000",
            "birth_date": minor_birth_date(), "locale": "en"}
    for own in ("Little.Lee@Example.org", "+86 138 0013 8000"):
        with nothing_written():
            response = post(client, "/register", {**data, "guardian_contact": own})
        assert response.status_code == 422
        assert "This is the child's own email address or mobile number" in unescape(
            response.get_data(as_text=True))


def test_short_links_for_text_messages(client, app):
    register_minor(client)
    token = link_from_mailbox()
    response = app.test_client().get(f"/g/{token}")
    assert response.status_code == 303 and response.headers["Location"].endswith(
        f"/guardian/invite/{token}")
    assert client.get("/p/1").headers["Location"].endswith("/policy/versions/1")


def test_second_guardians_refusal_declines_only_and_the_invitation_names_the_inviter(
    family, app
):
    from consent_center.models import AuditEvent

    minor, guardian, guardian_client = family
    other = "other.parent@example.org"
    post(guardian_client, f"/guardian/wards/{minor.public_id}/invite", {"contact": other})
    invite = next(m for m in mailbox() if m["to"] == other and m["kind"] == "guardian_invite")
    assert "Parent Lee, guardian of Little Lee" in invite["text"]
    assert "registered with" not in invite["text"]
    token = link_from_mailbox(other)
    second_client = app.test_client()
    verify_as_guardian(second_client, token, other)
    page = second_client.get(f"/guardian/invite/{token}/decide").get_data(as_text=True)
    assert "Decline the invitation" in page and "erase the child" not in page
    events = db.session.scalar(select(db.func.count()).select_from(ConsentEvent))
    response = post(second_client, f"/guardian/invite/{token}/decide",
                    {"decision": "refuse", "note": "Not me"})
    assert response.status_code == 200 and b"declined the invitation" in response.data
    db.session.expire_all()
    minor = db.session.get(Member, minor.id)
    assert minor.status == "active" and minor.email == "little.lee@example.org"
    link = db.session.scalars(select(GuardianLink).where(GuardianLink.contact == other)).one()
    assert link.status == "refused"
    assert db.session.scalars(select(GuardianLink).where(
        GuardianLink.guardian_id == guardian.id)).one().status == "approved"
    assert db.session.scalar(select(db.func.count()).select_from(ConsentEvent)) == events
    assert db.session.scalars(select(Notification).where(
        Notification.kind == "guardian_refused")).first() is None
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "member.erased" not in actions and "guardian.declined" in actions
    assert guardian_client.get(f"/guardian/wards/{minor.public_id}").status_code == 200


def test_guardian_sees_who_looked_at_the_wards_data(family, app, login_as):
    from tests.support.staff import make_staff

    minor, guardian, guardian_client = family
    staff_client = login_as(make_staff(), on=app.test_client())
    staff_client.get(f"/staff/members/{minor.public_id}?reason=member_request")
    page = unescape(guardian_client.get(
        f"/guardian/wards/{minor.public_id}/access-log").get_data(as_text=True))
    assert f"Who looked at {minor.name}'s data" in page
    assert "Answering a request or question from the member" in page
    ward_page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert f"/guardian/wards/{minor.public_id}/access-log" in ward_page
    stranger = login_as(make_member(), on=app.test_client())
    assert stranger.get(f"/guardian/wards/{minor.public_id}/access-log").status_code == 404
