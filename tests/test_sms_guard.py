"""SMS cost abuse: texts go only to SMS_ALLOWED_COUNTRIES (refused where the number is typed,
never written to the outbox otherwise), and a site-wide hourly budget stops texts when spent,
with an alarm on the staff dashboard and one audit entry."""

from __future__ import annotations

from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent, Member, Notification, OneTimeCode
from consent_center.notify.worker import drain
from consent_center.services.notifications import enqueue_notification
from tests.conftest import make_member, post, publish_notice
from tests.support.outbox import deliver
from tests.support.staff import make_staff
from tests.test_profile import profile

FOREIGN = "+447911123456"  # a valid mobile number, in Guernsey
COUNTRY_MESSAGE = "We can send text messages only to mobile numbers in: China."


def counts() -> tuple[int, int, int]:
    return tuple(
        db.session.scalar(select(func.count()).select_from(model))
        for model in (OneTimeCode, Notification, Member)
    )


def assert_country_refused(response, before) -> None:
    assert response.status_code == 422
    assert COUNTRY_MESSAGE in response.get_data(as_text=True)
    assert counts() == before


def test_sign_in_with_a_number_outside_the_countries_is_refused(client, app):
    make_member(phone=FOREIGN, phone_verified_at=clock.utcnow())
    before = counts()
    assert_country_refused(post(client, "/sign-in", {"identifier": FOREIGN}), before)
    # The same for a number nobody has: the answer does not depend on an account.
    assert_country_refused(post(client, "/sign-in", {"identifier": "+1 201 555 0123"}), before)


def test_registration_refuses_a_phone_outside_the_countries(client):
    before = counts()
    data = {"name": "Li Wei", "email": "li.wei@example.org", "phone": "+1 201 555 0123",
            "birth_date": "1990-01-01", "locale": "en"}
    response = post(client, "/register", data)
    assert response.status_code == 422
    assert "We can send text messages only to mobile numbers in: China" in response.get_data(
        as_text=True)
    assert counts() == before


def test_guardian_contact_outside_the_countries_is_refused(client):
    before = counts()
    data = {"name": "Little Lee", "email": "little.lee@example.org",
            "birth_date": "2020-01-01", "locale": "en", "guardian_contact": FOREIGN}
    assert_country_refused(post(client, "/register", data), before)


def test_profile_refuses_a_phone_outside_the_countries(client, member, login_as):
    login_as(member)
    before = counts()
    assert_country_refused(post(client, "/me/profile", profile(member, phone=FOREIGN)), before)
    db.session.refresh(member)
    assert member.phone is None


def test_the_message_names_the_countries_in_chinese(client, app):
    app.config["SMS_ALLOWED_COUNTRIES"] = ("CN", "HK")
    with client.session_transaction() as session:
        session["locale"] = "zh_Hans_CN"
    response = post(client, "/sign-in", {"identifier": FOREIGN})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "我们只能向以下国家或地区的手机号码发送短信：中国、中国香港特别行政区。" in page


def test_a_stored_number_outside_the_countries_is_never_sent_to(client, app, twilio, login_as):
    member = make_member(email=None, email_verified_at=None, phone=FOREIGN,
                         phone_verified_at=clock.utcnow(), notify_sms=True)
    login_as(member)
    before = counts()
    # Asking for a code to it is refused before anything is written...
    assert_country_refused(post(client, "/me/profile/phone/verify", {}), before)
    # ...and any other text to it is written as failed, and never sent.
    row = enqueue_notification(member=member, channel="sms", kind="guardian_ended",
                               dedupe_key="t:1", recipient=FOREIGN, locale="en",
                               context={"minor_name": "Little Lee"})
    db.session.commit()
    assert (row.status, row.last_error) == ("failed", "SMS country not allowed")
    assert drain() == {}
    assert twilio.messages == []


def test_a_text_written_before_the_countries_narrowed_is_not_sent(app, twilio):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    enqueue_notification(member=member, channel="sms", kind="guardian_ended",
                         dedupe_key="t:narrowed", recipient=member.phone, locale="en",
                         context={"minor_name": "Little Lee"})
    db.session.commit()
    app.config["SMS_ALLOWED_COUNTRIES"] = ("HK",)
    assert drain() == {"failed": 1}
    row = db.session.scalars(select(Notification)).one()
    assert (row.status, row.last_error) == ("failed", "SMS country not allowed")
    assert twilio.messages == []


def test_policy_notices_by_sms_skip_numbers_outside_the_countries(app):
    allowed = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow(),
                          notify_sms=True, notify_email=False)
    make_member(phone=FOREIGN, phone_verified_at=clock.utcnow(), notify_sms=True,
                notify_email=False)
    publish_notice(app)
    texts = db.session.scalars(select(Notification).where(Notification.channel == "sms")).all()
    assert [t.member_id for t in texts] == [allowed.id]


def test_hourly_budget_stops_texts_and_raises_an_alarm_once(client, app, twilio, login_as):
    app.config["SMS_HOURLY_BUDGET"] = 2
    login_as(make_staff())
    assert 'id="sms-budget-alarm"' not in client.get("/staff").get_data(as_text=True)
    numbers = ["+8613800138000", "+8613800138001", "+8613800138002"]
    for number in numbers:
        make_member(phone=number, phone_verified_at=clock.utcnow())
    for number in numbers[:2]:
        assert post(app.test_client(), "/sign-in", {"identifier": number}).status_code == 303
    deliver()
    assert len(twilio.wait_for(2)) == 2
    audited = select(func.count()).where(AuditEvent.action == "notify.sms_budget_spent")
    assert db.session.scalar(audited) == 1
    before = counts()
    for number in (numbers[2], "+8613900139000"):  # a known and an unknown number alike
        response = post(app.test_client(), "/sign-in", {"identifier": number})
        assert response.status_code == 503
        assert "We cannot send text messages at the moment" in response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) > 0
        assert counts() == before
    # Other texts are written as failed and never sent; the alarm is audited only once.
    member = db.session.scalars(select(Member).where(Member.phone == numbers[2])).one()
    row = enqueue_notification(member=member, channel="sms", kind="guardian_ended",
                               dedupe_key="t:2", recipient=numbers[2], locale="en",
                               context={"minor_name": "Little Lee"})
    db.session.commit()
    assert (row.status, row.last_error) == ("failed", "hourly SMS budget spent")
    assert drain() == {}
    assert len(twilio.messages) == 2
    assert db.session.scalar(audited) == 1
    # Email is not affected.
    by_email = post(app.test_client(), "/sign-in", {"identifier": make_member().email})
    assert by_email.status_code == 303
    # Staff see the alarm on the dashboard.
    page = client.get("/staff").get_data(as_text=True)
    assert 'id="sms-budget-alarm"' in page and "hourly text-message budget (2) is spent" in page



def test_a_fan_out_beyond_the_hourly_budget_sends_only_what_the_budget_allows(app, twilio):
    app.config["SMS_HOURLY_BUDGET"] = 2
    for n in range(3):
        make_member(phone=f"+861380013800{n}", phone_verified_at=clock.utcnow(),
                    notify_sms=True, notify_email=False)
    publish_notice(app)
    texts = db.session.scalars(
        select(Notification).where(Notification.channel == "sms").order_by(Notification.id)).all()
    assert [(t.status, t.last_error) for t in texts] == [
        ("pending", None), ("pending", None), ("failed", "hourly SMS budget spent")]
    audited = select(func.count()).where(AuditEvent.action == "notify.sms_budget_spent")
    assert db.session.scalar(audited) == 1
    assert drain().get("sent") == 2
    assert len(twilio.messages) == 2
    response = post(app.test_client(), "/sign-in", {"identifier": "+8613800138000"})
    assert response.status_code == 503
    assert db.session.scalar(audited) == 1


def test_a_second_guardian_outside_the_countries_is_refused(client, app):
    from consent_center.models import GuardianLink
    from tests.test_guardians import link_from_mailbox, register_minor, verify_as_guardian

    minor = register_minor(client)
    token = link_from_mailbox()
    guardian_client = app.test_client()
    verify_as_guardian(guardian_client, token)
    post(guardian_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Parent Lee"})
    links = db.session.scalar(select(func.count()).select_from(GuardianLink))
    before = counts()
    response = post(guardian_client, f"/guardian/wards/{minor.public_id}/invite",
                    {"contact": FOREIGN})
    assert_country_refused(response, before)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(GuardianLink)) == links
