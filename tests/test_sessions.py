"""Sessions end on the server: a copy of the cookie taken before sign-out, a contact change,
erasure or the loss of a staff role signs no one in afterwards and can change nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from flask_login.utils import encode_cookie
from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent, ConsentEvent, Member, MemberSession
from consent_center.services.erasure import erase_member
from tests.conftest import csrf_token, post
from tests.support.outbox import mailbox
from tests.support.staff import make_staff


def copy_of(client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of `client`'s session cookie (as a thief would)."""
    app = client.application
    name = app.config["SESSION_COOKIE_NAME"]
    thief = app.test_client()
    thief.set_cookie(name, client.get_cookie(name).value)
    return thief


def signed_out(client: FlaskClient, path: str = "/me") -> bool:
    """The client is treated as signed out: sent to the sign-in page."""
    response = client.get(path)
    return response.status_code == 302 and response.headers["Location"].startswith("/sign-in")


def sessions_of(member: Member) -> int:
    return db.session.scalar(
        select(func.count()).select_from(MemberSession).where(MemberSession.member_id == member.id)
    )


def assert_copy_can_change_nothing(thief: FlaskClient, member: Member) -> None:
    """The copied cookie still holds a CSRF secret; a consent change with it is refused and
    writes nothing."""
    events = db.session.scalar(select(func.count()).select_from(ConsentEvent))
    token = csrf_token(thief)
    response = thief.post(
        "/me/consents/advertising", data={"granted": "1", "csrf_token": token}
    )
    assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in")
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == events


def sign_in_with_code(client: FlaskClient, member: Member) -> None:
    assert post(client, "/sign-in", {"identifier": member.email}).status_code == 303
    message = next(m for m in mailbox() if m["to"] == member.email)
    code = re.search(r"\b(\d{6})\b", message["text"]).group(1)
    assert post(client, "/sign-in/code", {"code": code}).status_code == 303


def test_copied_cookie_is_refused_after_sign_out(client, member, policy):
    sign_in_with_code(client, member)
    thief = copy_of(client)
    assert thief.get("/me").status_code == 200  # a copy works while the session lives
    response = post(client, "/sign-out")
    assert response.status_code == 303
    assert signed_out(client) and signed_out(thief)
    assert_copy_can_change_nothing(thief, member)
    assert sessions_of(member) == 0


def test_signing_out_on_one_device_keeps_the_others(client, member, login_as):
    phone = login_as(member, on=client.application.test_client())
    login_as(member)
    assert sessions_of(member) == 2
    post(client, "/sign-out")
    assert signed_out(client)
    assert phone.get("/me").status_code == 200
    assert sessions_of(member) == 1


def test_sign_out_everywhere_ends_every_session(client, member, login_as, policy):
    phone = login_as(member, on=client.application.test_client())
    login_as(member)
    thief = copy_of(client)
    page = client.get("/me/profile").get_data(as_text=True)
    assert 'action="/me/sign-out-everywhere"' in page and "Sign out everywhere" in page
    response = post(client, "/me/sign-out-everywhere")
    assert response.status_code == 303 and response.headers["Location"] == "/sign-in"
    assert "You are signed out on every device" in client.get("/sign-in").get_data(as_text=True)
    assert signed_out(client) and signed_out(phone) and signed_out(thief)
    assert_copy_can_change_nothing(thief, member)
    assert sessions_of(member) == 0
    ended = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "auth.sessions_ended")
    ).one()
    assert ended.details == {"reason": "signed_out_everywhere", "ended": 2}


def test_sign_out_everywhere_needs_the_csrf_token(client, member, login_as):
    login_as(member)
    response = client.post("/me/sign-out-everywhere", data={})
    assert response.status_code == 400
    assert client.get("/me").status_code == 200
    assert sessions_of(member) == 1
    assert db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "auth.sessions_ended")
    ).all() == []


def test_sign_out_everywhere_in_chinese(client, login_as):
    from tests.conftest import make_member

    member = make_member(locale="zh_Hans_CN")
    login_as(member)
    with client.session_transaction() as session:
        session["locale"] = "zh_Hans_CN"
    page = client.get("/me/profile").get_data(as_text=True)
    assert "在所有设备上退出登录" in page
    post(client, "/me/sign-out-everywhere")
    assert "您已在所有设备上退出登录" in client.get("/sign-in").get_data(as_text=True)


def test_copied_cookie_is_refused_after_erasure(client, member, login_as, policy):
    login_as(member)
    thief = copy_of(client)
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    assert signed_out(thief) and signed_out(client)
    assert_copy_can_change_nothing(thief, member)
    assert sessions_of(member) == 0


def test_copied_cookie_is_refused_after_losing_a_staff_role(client, login_as):
    admin = make_staff(role="admin")
    staff = make_staff()
    staff_browser = login_as(staff, on=client.application.test_client())
    thief = copy_of(staff_browser)
    assert thief.get("/staff").status_code == 200
    login_as(admin)
    response = post(client, f"/staff/team/{staff.public_id}/role", {"role": "member"})
    assert response.status_code == 303
    # Signed out (sent to sign in), not merely refused the console as a plain member.
    assert signed_out(thief, "/staff") and signed_out(staff_browser, "/me")
    assert sessions_of(staff) == 0
    assert client.get("/staff").status_code == 200  # the admin's own session is untouched


def test_admin_demoted_to_staff_is_signed_out_and_a_promotion_is_not(client, login_as):
    admin = make_staff(role="admin")
    other_admin = make_staff(role="admin")
    staff = make_staff()
    promoted = login_as(staff, on=client.application.test_client())
    demoted = login_as(other_admin, on=client.application.test_client())
    login_as(admin)
    post(client, f"/staff/team/{staff.public_id}/role", {"role": "admin"})
    post(client, f"/staff/team/{other_admin.public_id}/role", {"role": "staff"})
    assert promoted.get("/staff/team").status_code == 200
    assert signed_out(demoted, "/staff")


def test_a_remember_cookie_signs_no_one_in(app: Flask, client, member, login_as):
    """No remember-me cookie is issued; one made with the app's key still names no live
    session: neither the member's public id nor the key of an ended session works."""
    login_as(member)
    key = _session_key(client)
    post(client, "/sign-out")
    name = app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
    for user_id in (member.public_id, key):
        other = app.test_client()
        with app.test_request_context():
            other.set_cookie(name, encode_cookie(user_id))
        assert signed_out(other)


def _session_key(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return session["_user_id"]


def test_a_session_ends_after_its_lifetime(app: Flask, client, member, login_as):
    login_as(member)
    assert client.get("/me").status_code == 200
    lifetime = app.permanent_session_lifetime
    clock.freeze(clock.utcnow() + lifetime + timedelta(seconds=1))
    try:
        assert signed_out(client)
        login_as(member, on=app.test_client())  # a new sign-in clears the member's dead rows
        assert sessions_of(member) == 1
    finally:
        clock.freeze(None)


def test_the_cookie_holds_a_session_key_not_the_member_id(client, member, login_as):
    login_as(member)
    key = _session_key(client)
    assert member.public_id not in key and len(key) >= 43
    row = db.session.scalars(select(MemberSession)).one()
    assert key not in row.key_digest and len(row.key_digest) == 64


def test_copied_cookie_is_refused_after_a_contact_change(client, member, login_as, policy):
    """The member's other sessions end; the device that made the change stays signed in."""
    login_as(member)
    phone = login_as(member, on=client.application.test_client())
    thief = copy_of(client)
    old = member.email
    post(client, "/me/profile", {"name": member.name, "gender": "", "locale": "en",
                                 "email": "new@example.org", "phone": ""})
    post(client, "/me/profile/confirm-identity",
         {"code": _code(old, "contact_change_code")})
    assert thief.get("/me").status_code == 200  # nothing changed yet
    response = post(client, "/me/profile/verify", {"code": _code("new@example.org")})
    assert response.status_code == 303
    assert signed_out(thief) and signed_out(phone)
    assert_copy_can_change_nothing(thief, member)
    assert client.get("/me").status_code == 200
    assert sessions_of(member) == 1


def _code(to: str, kind: str | None = None) -> str:
    message = next(m for m in mailbox() if m["to"] == to and kind in (None, m["kind"]))
    return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def test_the_staff_add_command_demoting_an_admin_signs_them_out(client, runner, login_as):
    make_staff(role="admin")  # another admin remains
    admin = make_staff(role="admin", email="boss@example.org")
    login_as(admin)
    result = runner.invoke(args=["staff", "add", "boss@example.org", "--role", "staff"])
    assert result.exit_code == 0, result.output
    assert signed_out(client, "/staff") and sessions_of(admin) == 0


def test_an_htmx_request_after_the_session_ended_loads_the_sign_in_page_whole(client):
    """A part fetched or a switch pressed after the session ended must not put the sign-in
    page inside the part: htmx is told to load it whole, and to come back to the page."""
    page = client.get("/me/data/notification")
    assert page.status_code == 302 and "/sign-in?next=" in page.headers["Location"]
    part = client.get(
        "/me/data/notification",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/me?x=1"},
    )
    assert part.status_code == 401 and part.get_data() == b""
    assert part.headers["HX-Redirect"] == "/sign-in?next=%2Fme%3Fx%3D1"
    elsewhere = client.get(
        "/me/data/notification",
        headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example//x"},
    )
    assert elsewhere.headers["HX-Redirect"].startswith("/sign-in")
    assert "evil" not in elsewhere.headers["HX-Redirect"]
