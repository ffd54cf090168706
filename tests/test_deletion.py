"""Deletion requests end to end, and an erasure that leaves nothing behind."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from flask import current_app
from sqlalchemy import inspect, select, text

from consent_center import clock
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.models import AuditEvent, DeletionRequest, Member, Notification
from consent_center.notify.worker import drain
from consent_center.services.consents import set_consent, verify_ledger
from consent_center.services.deletion import due_at_for
from consent_center.services.localtime import is_working_day, schedule_known
from tests.conftest import make_member, make_policy, post
from tests.support.outbox import deliver, mailbox
from tests.support.writes import WRONG_CODE, nothing_written


def code_for(to: str, smtp=None) -> str:
    if smtp is not None:  # sent over real SMTP
        deliver()
        message = [m for m in smtp.messages if m.rcpt_tos == [to]][-1].message
        text_body = message.get_body(("plain",)).get_content()
    else:  # sent to the dev mailbox
        text_body = next(m for m in mailbox() if m["to"] == to)["text"]
    return re.search(r"\b(\d{6})\b", text_body).group(1)


def ask_for_deletion(client, member, reason: str = "", smtp=None) -> DeletionRequest:
    assert post(client, "/me/delete/code", {}).status_code == 303
    response = post(
        client,
        "/me/delete",
        {"code": code_for(member.email, smtp), "reason": reason, "confirm": "y"},
    )
    assert response.status_code == 303, response.data
    return db.session.scalars(select(DeletionRequest)).one()


@pytest.fixture
def staff(app):
    return make_member(role="staff", email="staff@example.org")


SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args) -> datetime:
    """A moment in the display time zone (the tests' DISPLAY_TIMEZONE, Asia/Shanghai)."""
    return datetime(*args, tzinfo=SHANGHAI)


def due_day(app, received: datetime, days: int | None = None) -> date:
    if days is not None:
        app.config["DELETION_DUE_WORKING_DAYS"] = days
    return due_at_for(received.astimezone(UTC)).astimezone(SHANGHAI).date()


def test_due_date_of_a_friday_evening_request_is_a_working_day(app):
    # 22:00 on Friday in Shanghai is 14:00 UTC: the same Friday either way, and the
    # following Saturday and Sunday never count.
    friday_evening = local(2026, 11, 27, 22)
    assert due_day(app, friday_evening, 1) == date(2026, 11, 30)  # Monday
    # Shortly after midnight on Saturday in Shanghai, still Friday in UTC: the local day
    # counts, so the first working day is Monday, not a Saturday.
    assert due_day(app, local(2026, 11, 28, 1), 1) == date(2026, 11, 30)
    for days in range(1, 25):
        due = due_day(app, friday_evening, days)
        assert due.weekday() < 5, (days, due)
    assert due_day(app, friday_evening, 15) == date(2026, 12, 18)


def test_due_at_is_the_end_of_the_due_day_in_the_display_time_zone(app):
    due = due_at_for(local(2026, 11, 25, 17).astimezone(UTC))
    assert due == local(2026, 12, 16, 23, 59, 59)


def test_make_up_saturdays_count_as_working_days(app):
    # 2026: the State Council moved working days to Saturday 14 February and Saturday
    # 10 October (调休).
    assert is_working_day(date(2026, 2, 14), "CN") and is_working_day(date(2026, 10, 10), "CN")
    assert not is_working_day(date(2026, 2, 21), "CN")  # an ordinary Saturday
    assert due_day(app, local(2026, 2, 13, 20), 1) == date(2026, 2, 14)


def test_chinese_new_year_and_national_day_weeks_are_skipped(app):
    # Spring Festival 2026: 15-23 February off; the 14th and the 28th are make-up days.
    assert due_day(app, local(2026, 2, 14, 18), 1) == date(2026, 2, 24)
    assert due_day(app, local(2026, 2, 14, 18), 5) == date(2026, 2, 28)  # Saturday, worked
    # National Day 2026: 1-7 October off.
    assert due_day(app, local(2026, 9, 30, 18), 1) == date(2026, 10, 8)
    assert due_day(app, local(2026, 9, 30, 18), 3) == date(2026, 10, 10)  # make-up Saturday
    for start in (local(2026, 1, 20, 9), local(2026, 9, 15, 9)):
        for days in range(1, 30):
            due = due_day(app, start, days)
            assert is_working_day(due, "CN")
            assert not (date(2026, 2, 15) <= due <= date(2026, 2, 23))
            assert not (date(2026, 10, 1) <= due <= date(2026, 10, 7))


def test_beyond_the_known_schedule_weekends_and_statutory_holidays_still_count(app):
    # The installed calendar has no official schedule for 2030: it still knows its statutory
    # holidays (Spring Festival from the lunar calendar, National Day) and the weekend.
    assert schedule_known(2026, "CN") and not schedule_known(2030, "CN")
    assert not is_working_day(date(2030, 10, 1), "CN")
    assert not is_working_day(date(2030, 2, 3), "CN")  # 2030 Spring Festival (lunar new year)
    assert not is_working_day(date(2030, 1, 5), "CN")  # a Saturday
    assert is_working_day(date(2030, 1, 7), "CN")


def test_another_jurisdictions_calendar(app):
    app.config["COMPANY_JURISDICTION"] = "GB"
    # Christmas and Boxing Day 2026 (a Saturday: the bank holiday moves to Monday 28th).
    assert due_day(app, local(2026, 12, 24, 9), 1) == date(2026, 12, 29)


def test_request_needs_a_fresh_code_and_confirmation(client, member, login_as):
    login_as(member)
    page = client.get("/me/delete").get_data(as_text=True)
    assert "What we erase" in page and "What we keep" in page and "at the latest" in page
    post(client, "/me/delete/code", {})
    with nothing_written(except_columns=WRONG_CODE):
        response = post(client, "/me/delete", {"code": "000000", "confirm": "y"})
    assert response.status_code == 422
    code = code_for(member.email)  # delivered by the worker (a write) before the refusal
    with nothing_written():
        response = post(client, "/me/delete", {"code": code})
    assert response.status_code == 422 and b"Tick this box" in response.data
    assert db.session.scalars(select(DeletionRequest)).first() is None


def test_member_requests_and_is_notified_with_due_date(client, member, login_as, app):
    clock.freeze(datetime(2026, 11, 25, 9, tzinfo=UTC))
    login_as(member)
    deletion = ask_for_deletion(client, member, reason="I no longer use the service")
    assert deletion.status == "received" and deletion.reason == "I no longer use the service"
    assert deletion.due_at == datetime(2026, 12, 16, 15, 59, 59, tzinfo=UTC)
    assert deletion.notify_to == member.email
    kinds = db.session.scalars(select(Notification.kind)).all()
    assert "deletion_received" in kinds
    page = client.get(f"/me/deletion/{deletion.public_id}").get_data(as_text=True)
    assert "Received" in page and "Withdraw my request" in page


def test_second_request_while_open_links_to_the_first(client, member, login_as):
    login_as(member)
    first = ask_for_deletion(client, member)
    page = client.get("/me/delete").get_data(as_text=True)
    assert "already have an open deletion request" in page
    assert f"/me/deletion/{first.public_id}" in page
    assert post(client, "/me/delete/code", {}).status_code == 303
    assert db.session.scalars(select(DeletionRequest)).all() == [first]


def test_me_shows_the_open_request_and_offers_no_second(client, member, login_as, app):
    clock.freeze(datetime(2026, 11, 25, 9, tzinfo=UTC))
    login_as(member)
    assert 'href="/me/delete"' in client.get("/me").get_data(as_text=True)
    first = ask_for_deletion(client, member)
    page = client.get("/me").get_data(as_text=True)
    assert "Your deletion request is open" in page and "16 December 2026" in page
    assert f"/me/deletion/{first.public_id}" in page and 'href="/me/delete"' not in page
    assert "Received" in page
    delete_page = client.get("/me/delete").get_data(as_text=True)
    assert "Send me a confirmation code" not in delete_page and "16 December 2026" in delete_page
    # A second request, posted anyway (an old tab), is refused politely: no error page, no
    # new request, the open one shown.
    with nothing_written():
        response = post(client, "/me/delete", {"code": "123456", "confirm": "y"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/me/deletion/{first.public_id}"
    assert "already open" in client.get(response.headers["Location"]).get_data(as_text=True)
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    post(client, "/language", {"locale": "zh_Hans_CN", "next": "/me"})
    assert "2026年12月16日" in client.get("/me").get_data(as_text=True)


def test_withdraw_while_open(client, member, login_as):
    login_as(member)
    deletion = ask_for_deletion(client, member)
    assert post(client, f"/me/deletion/{deletion.public_id}/withdraw", {}).status_code == 303
    db.session.refresh(deletion)
    assert deletion.status == "withdrawn" and deletion.notify_to is None
    with nothing_written():
        response = post(client, f"/me/deletion/{deletion.public_id}/withdraw", {})
    assert response.status_code == 409


def test_staff_cannot_withdraw_a_members_request(client, member, login_as, staff, app):
    login_as(member)
    deletion = ask_for_deletion(client, member)
    audits_before = db.session.scalar(select(db.func.count()).select_from(AuditEvent))
    staff_client = app.test_client()
    login_as(staff, on=staff_client)
    page = staff_client.get(f"/me/deletion/{deletion.public_id}").get_data(as_text=True)
    assert "Withdraw my request" not in page
    response = post(staff_client, f"/me/deletion/{deletion.public_id}/withdraw", {})
    assert response.status_code == 403
    db.session.expire_all()
    db.session.refresh(deletion)
    assert deletion.status == "received" and deletion.withdrawn_at is None
    assert deletion.notify_to == member.email
    assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)) == audits_before


def test_phone_only_member_asks_for_deletion_by_sms_code(client, login_as):
    phone = "+8613800138123"
    member = make_member(
        email=None, email_verified_at=None, phone=phone, phone_verified_at=clock.utcnow()
    )
    login_as(member)
    assert "mobile number" in client.get("/me/delete").get_data(as_text=True)
    assert post(client, "/me/delete/code", {}).status_code == 303
    code = code_for(phone)
    response = post(client, "/me/delete", {"code": code, "confirm": "y"})
    assert response.status_code == 303, response.data
    deletion = db.session.scalars(select(DeletionRequest)).one()
    assert deletion.member_id == member.id and deletion.notify_to == phone


def test_no_code_without_a_channel_we_may_use(client, login_as):
    member = make_member(
        email=None,
        email_verified_at=None,
        phone="+8613800138124",
        phone_verified_at=clock.utcnow(),
        sms_opted_out_at=clock.utcnow(),
    )
    login_as(member)
    response = post(client, "/me/delete/code", {})
    assert response.status_code == 403 and b"contact customer service" in response.data
    assert db.session.scalars(select(Notification)).first() is None
    from consent_center.models import OneTimeCode

    assert db.session.scalars(select(OneTimeCode)).first() is None


def test_another_members_request_is_404(client, member, login_as, app):
    other = make_member()
    other_client = app.test_client()
    login_as(other, on=other_client)
    deletion = ask_for_deletion(other_client, other)
    login_as(member)
    with nothing_written():
        assert client.get(f"/me/deletion/{deletion.public_id}").status_code == 404
        assert post(client, f"/me/deletion/{deletion.public_id}/withdraw", {}).status_code == 404


def test_refusal_requires_one_of_the_five_grounds(client, member, login_as, staff, app):
    login_as(member)
    deletion = ask_for_deletion(client, member)
    staff_client = app.test_client()
    login_as(staff, on=staff_client)
    url = f"/staff/deletions/{deletion.public_id}/refuse"
    with nothing_written():
        response = post(
            staff_client,
            url,
            {"ground": "we_like_data", "explanation": "Because we want to keep it all."},
        )
        assert response.status_code == 422 and b"five grounds" in response.data
        response = post(staff_client, url, {"ground": "criminal_justice", "explanation": "short"})
        assert response.status_code == 422
    db.session.refresh(deletion)
    assert deletion.status == "received"
    explanation = "The account is subject to an open police investigation (case 2026-114)."
    response = post(staff_client, url, {"ground": "criminal_justice", "explanation": explanation})
    assert response.status_code == 303
    db.session.refresh(deletion)
    assert (deletion.status, deletion.refusal_ground) == ("refused", "criminal_justice")
    assert deletion.decided_by_id == staff.id
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "deletion.refused"))
    assert audit.one().actor_member_id == staff.id
    page = client.get(f"/me/deletion/{deletion.public_id}").get_data(as_text=True)
    assert "criminal investigation" in page and explanation in page
    assert "aftersale@autooltech.com" in page
    zh = post(client, "/language", {"locale": "zh_Hans_CN"})
    assert zh.status_code == 303
    page = client.get(f"/me/deletion/{deletion.public_id}").get_data(as_text=True)
    assert "犯罪侦查" in page
    assert "deletion_refused" in db.session.scalars(select(Notification.kind)).all()


def test_queue_orders_by_due_date_and_marks_overdue(client, staff, login_as, app):
    older, newer = make_member(), make_member()
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    from consent_center.services.deletion import request_deletion

    clock.freeze(start)
    first = request_deletion(older, requested_by=older, reason=None)
    clock.freeze(datetime(2026, 2, 2, 9, tzinfo=UTC))
    second = request_deletion(newer, requested_by=newer, reason=None)
    db.session.commit()
    login_as(staff)
    page = client.get("/staff/deletions").get_data(as_text=True)
    assert page.index(first.public_id[:8]) < page.index(second.public_id[:8])
    assert page.count("Overdue") == 1


def test_completion_erases_everything_and_ledger_still_verifies(
    client, login_as, staff, app, smtp, runner
):
    make_policy()
    name, email, phone = "Zyxwvut Qqqq", "zyxwvut.unique@example.org", "+8613912345678"
    member = make_member(
        name=name, email=email, phone=phone, phone_verified_at=clock.utcnow(), notify_sms=False
    )
    for granted in (True, False, True):
        set_consent(
            member,
            "advertising",
            granted,
            actor=Actor.MEMBER,
            method=Method.FORM,
            actor_member=member,
        )
    db.session.commit()
    login_as(member)
    post(client, "/sign-in", {"identifier": email})  # a sign-in code row and a message
    deletion = ask_for_deletion(client, member, reason=f"Please forget {name}", smtp=smtp)
    drain()
    staff_client = app.test_client()
    login_as(staff, on=staff_client)
    response = post(
        staff_client, f"/staff/deletions/{deletion.public_id}/complete", {"confirm": "y"}
    )
    assert response.status_code == 303
    db.session.refresh(member)
    assert member.status == "erased" and member.public_id.startswith("erased-")
    # The completion notice reached the address captured at request time...
    assert drain() == {"sent": 1}
    completion = [m for m in smtp.messages if m.message["Subject"] == "Your data is erased"]
    assert completion and completion[0].rcpt_tos == [email]
    # ... and then nothing personal remains anywhere in the database.
    assert_nothing_remains(name, email, phone, "Zyxwvut", "8613912345678")
    assert verify_ledger().ok
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    # The erased member can no longer sign in; the session ends too.
    assert client.get("/me").status_code == 302
    fresh = app.test_client()
    post(fresh, "/sign-in", {"identifier": email})
    with nothing_written(except_columns=WRONG_CODE):
        assert post(fresh, "/sign-in/code", {"code": "123456"}).status_code == 422
    # The same email may register again, as a new member.
    response = post(
        fresh,
        "/register",
        {"name": "New Person", "email": email, "birth_date": "1990-01-01", "locale": "en"},
    )
    assert response.status_code == 303
    assert db.session.scalar(select(Member).where(Member.email == email)).id != member.id


def assert_nothing_remains(*needles: str) -> None:
    """Scan every text column of every table the database itself lists (message bodies,
    subjects and recipients included), and the headers every outbox row would be sent with."""
    from consent_center.notify.delivery import unsubscribe_headers

    found = []
    for public_id, kind in db.session.execute(select(Notification.public_id, Notification.kind)):
        headers = unsubscribe_headers(public_id)
        if kind in current_app.config["UNSUBSCRIBABLE_KINDS"]:
            for name, value in headers.items():
                found += [("header", name, n) for n in needles if n in f"{name}: {value}"]
    inspector = inspect(db.engine)
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            type_name = str(column["type"]).upper()
            if not any(t in type_name for t in ("CHAR", "TEXT", "JSON", "CLOB")):
                continue
            quoted = f'"{column["name"]}"'
            cast = f"CAST({quoted} AS TEXT)" if "JSON" in type_name else quoted
            for needle in needles:
                hits = db.session.execute(
                    text(f'SELECT COUNT(*) FROM "{table}" WHERE {cast} LIKE :n'),
                    {"n": f"%{needle}%"},
                ).scalar()
                if hits:
                    found.append((table, column["name"], needle))
    assert not found, found


def test_staff_pages_are_staff_only(client, member, login_as, app):
    deletion_member = make_member()
    from consent_center.services.deletion import request_deletion

    deletion = request_deletion(deletion_member, requested_by=deletion_member, reason=None)
    db.session.commit()
    urls = [
        "/staff/deletions",
        f"/staff/deletions/{deletion.public_id}",
        "/staff/fan-outs",
        "/staff/notifications",
    ]
    with nothing_written():
        for url in urls:
            response = client.get(url)
            assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    login_as(member)  # signing in writes its session row
    with nothing_written():
        for url in urls:
            assert client.get(url).status_code == 403, url
        for action in ("review", "refuse", "complete"):
            url = f"/staff/deletions/{deletion.public_id}/{action}"
            assert (
                post(
                    client,
                    url,
                    {"confirm": "y", "ground": "national_security", "explanation": "x" * 40},
                ).status_code
                == 403
            )
    db.session.refresh(deletion)
    assert deletion.status == "received"


def test_staff_add_command(runner, app):
    result = runner.invoke(args=["staff", "add", "Boss@Example.org", "--role", "admin"])
    assert result.exit_code == 0, result.output
    member = db.session.scalars(select(Member).where(Member.email == "boss@example.org")).one()
    assert member.role == "admin"
    result = runner.invoke(args=["staff", "add", "not-an-email"])
    assert result.exit_code != 0 and "valid email" in result.output
