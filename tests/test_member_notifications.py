"""The member's side of notifications: choices, SMS opt-out on the web, message history,
one-click unsubscribe (RFC 8058), the in-app policy notice; and the contact form."""

from __future__ import annotations

from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import Notification
from consent_center.notify.worker import drain
from tests.conftest import make_member, make_policy, post, publish_notice
from tests.support.writes import nothing_written


def test_choose_channels(client, login_as):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    login_as(member)
    response = post(client, "/me/notifications", {"sms": "y"})
    assert response.status_code == 303
    db.session.refresh(member)
    assert (member.notify_email, member.notify_sms) == (False, True)


def test_sms_needs_a_verified_number(client, member, login_as):
    login_as(member)
    with nothing_written():
        response = post(client, "/me/notifications", {"email": "y", "sms": "y"})
    assert response.status_code == 422 and b"verify a mobile number first" in response.data
    db.session.refresh(member)
    assert member.notify_sms is False


def test_stop_all_sms_on_the_website(client, login_as):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow(), notify_sms=True)
    login_as(member)
    assert post(client, "/me/notifications/sms/stop", {}).status_code == 303
    db.session.refresh(member)
    assert member.sms_opted_out_at is not None and member.notify_sms is False
    page = client.get("/me/notifications").get_data(as_text=True)
    assert "You opted out of all text messages" in page


def test_message_history_lists_each_message_with_status(client, member, login_as, app):
    make_policy()
    publish_notice(app, summary="Clearer wording")
    drain()
    login_as(member)
    page = client.get("/me/notifications").get_data(as_text=True)
    assert "Privacy policy change notice" in page and member.email in page and "Sent" in page


def test_one_click_unsubscribe(app, client, member):
    make_policy()
    publish_notice(app, summary="y")
    row = db.session.scalars(select(Notification)).one()
    page = client.get(f"/unsubscribe/{row.public_id}")
    assert page.status_code == 200 and b"Stop these emails" in page.data
    db.session.refresh(member)
    assert member.notify_email is True  # a GET never unsubscribes
    # The mail provider's one-click POST: no sign-in, no CSRF token, no redirect.
    response = client.post(f"/unsubscribe/{row.public_id}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    db.session.refresh(member)
    assert member.notify_email is False
    assert client.post("/unsubscribe/unknown-id").status_code == 200


def test_in_app_banner_until_acknowledged(client, member, login_as, app):
    make_policy()
    publish_notice(app, summary="We explain trend analysis")
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert "Policy changes on" in page and "We explain trend analysis" in page
    assert post(client, "/me/policy-notice/2/ack", {}).status_code == 303
    assert "Policy changes on" not in client.get("/me").get_data(as_text=True)


def test_contact_form_reaches_customer_service_and_acknowledges(client, app, smtp):
    page = client.get("/contact").get_data(as_text=True)
    submission = page.split('name="submission_id" type="hidden" value="')[1].split('"')[0]
    data = {
        "category": "phishing",
        "name": "Zhang San",
        "email": "zs@example.org",
        "message": "A site at example.net pretends to be you.",
        "submission_id": submission,
    }
    assert post(client, "/contact", data).status_code == 303
    assert post(client, "/contact", data).status_code == 303  # a resubmitted form: no twice
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 2
    drain()
    received = {m.rcpt_tos[0]: m.message for m in smtp.wait_for(2)}
    assert (
        "pretends to be you"
        in received["aftersale@autooltech.com"].get_body(("plain",)).get_content()
    )
    assert "received your message" in received["zs@example.org"]["Subject"]


def contact_form(client, **fields) -> dict:
    page = client.get("/contact").get_data(as_text=True)
    submission = page.split('name="submission_id" type="hidden" value="')[1].split('"')[0]
    return {"category": "question", "submission_id": submission, **fields}


def test_the_acknowledgement_carries_nothing_the_sender_typed(client, app, smtp):
    """Anyone may type any address: the acknowledgement must not relay their text to it."""
    data = contact_form(
        client,
        name="Your bank: call 400-000-0000",
        email="victim@example.org",
        message="Your account is locked. Visit https://evil.example.net to unlock it.",
    )
    assert post(client, "/contact", data).status_code == 303
    drain()
    received = {m.rcpt_tos[0]: m.message for m in smtp.wait_for(2)}
    ack = received["victim@example.org"]
    text = ack.get_body(("plain",)).get_content() + ack.get_body(("html",)).get_content()
    for typed in ("bank", "400-000-0000", "locked", "evil.example.net"):
        assert typed not in text and typed not in ack["Subject"]
    assert "received your message" in text
    row = db.session.scalars(select(Notification).where(Notification.kind == "contact_ack")).one()
    assert "evil.example.net" not in (row.body_text or "") + (row.body_html or "")
    service = received["aftersale@autooltech.com"].get_body(("plain",)).get_content()
    assert "evil.example.net" in service  # customer service still reads it


def test_contact_posts_are_limited_per_typed_address(client, app):
    """The acknowledgement's address has its own budget, whichever client address posts."""
    assert app.config["CONTACT_RATE_LIMIT_ADDRESS"] == "3 per day"
    app.config["CONTACT_RATE_LIMIT"] = "100 per hour"
    for n in range(3):
        data = contact_form(client, name="A", email="Target@Example.org",
                            message=f"Message number {n} for you.")  # fmt: skip
        address = {"REMOTE_ADDR": f"203.0.113.{n + 1}"}
        assert post(client, "/contact", data, environ_base=address).status_code == 303
    written = db.session.scalar(select(func.count()).select_from(Notification))
    data = contact_form(client, name="A", email="target@example.org", message="One more time.")
    response = post(client, "/contact", data, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert db.session.scalar(select(func.count()).select_from(Notification)) == written
    other = contact_form(client, name="A", email="other@example.org", message="Hello there.")
    response = post(client, "/contact", other, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 303


def test_contact_form_refuses_card_numbers_and_bad_input(client):
    page = client.get("/contact").get_data(as_text=True)
    submission = page.split('name="submission_id" type="hidden" value="')[1].split('"')[0]
    with nothing_written():
        response = post(
            client,
            "/contact",
            {
                "category": "question",
                "name": "",
                "email": "bad",
                "submission_id": submission,
                "message": "my card is 4111 1111 1111 1111 thanks",
            },
        )
    assert response.status_code == 422
    for text in (b"Tell us your name", b"valid email", b"payment card number"):
        assert text in response.data
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_contact_form_is_rate_limited(client, app):
    app.config["CONTACT_RATE_LIMIT"] = "2 per hour"
    for expected in (422, 422, 429):
        with nothing_written():
            assert post(client, "/contact", {"category": "question"}).status_code == expected
