"""A member corrects their date of birth: at once, unless the new date crosses MINOR_AGE
(adult to minor, or minor to adult); then staff review it, and the member is told why."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent, BirthDateReview
from tests.conftest import make_member, post
from tests.support.staff import make_staff
from tests.support.writes import nothing_written
from tests.test_profile import profile

NOW = datetime(2026, 12, 6, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(NOW)


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_a_correction_on_the_same_side_takes_effect_at_once(client, member, login_as):
    login_as(member)
    response = post(client, "/me/profile", profile(member, birth_date="1991-02-03"))
    assert response.status_code == 303
    db.session.refresh(member)
    assert member.birth_date == date(1991, 2, 3)
    corrected = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "profile.corrected")).one()
    assert corrected.details == {"fields": ["birth_date"]}
    assert db.session.scalars(select(BirthDateReview)).first() is None


def test_an_adult_who_would_become_a_minor_waits_for_staff(client, member, login_as):
    login_as(member)
    response = post(client, "/me/profile", profile(member, birth_date="2016-05-01"))
    assert response.status_code == 303
    db.session.refresh(member)
    assert member.birth_date == date(1990, 1, 1)  # unchanged until staff approve
    review = db.session.scalars(select(BirthDateReview)).one()
    assert (review.status, review.requested_birth_date) == ("pending", date(2016, 5, 1))
    assert "profile.birth_date_review_requested" in actions()
    following = client.get("/me").get_data(as_text=True)
    assert "our staff check it before it takes effect" in following  # the flash
    page = client.get("/me/profile").get_data(as_text=True)
    assert "is waiting for our staff" in page and "a minor" in page
    assert "1 May 2016" in page and "1 January 1990" in page


def test_staff_approve_and_the_member_sees_the_opening(client, app, member, login_as):
    login_as(member)
    post(client, "/me/profile", profile(member, birth_date="2016-05-01"))
    review = db.session.scalars(select(BirthDateReview)).one()
    staff = make_staff()
    staff_client = login_as(staff, on=app.test_client())
    listing = staff_client.get("/staff/birth-dates").get_data(as_text=True)
    assert f"/staff/birth-dates/{review.public_id}" in listing and member.name not in listing
    page = staff_client.get(f"/staff/birth-dates/{review.public_id}").get_data(as_text=True)
    assert member.name in page and "1 May 2016" in page and "makes this member a minor" in page
    response = post(staff_client, f"/staff/birth-dates/{review.public_id}",
                    {"decision": "approve"})
    assert response.status_code == 303
    db.session.refresh(member)
    db.session.refresh(review)
    assert member.birth_date == date(2016, 5, 1) and review.status == "approved"
    assert review.decided_by_id == staff.id
    assert "profile.birth_date_review_approved" in actions()
    with nothing_written():  # decided once
        again = post(staff_client, f"/staff/birth-dates/{review.public_id}",
                     {"decision": "refuse"})
    assert again.status_code == 409
    log = client.get("/me/access-log").get_data(as_text=True)
    assert "Reviewing a correction of the date of birth" in log


def test_staff_refuse_and_the_date_on_record_stays(client, app, member, login_as):
    login_as(member)
    post(client, "/me/profile", profile(member, birth_date="2016-05-01"))
    review = db.session.scalars(select(BirthDateReview)).one()
    staff_client = login_as(make_staff(), on=app.test_client())
    post(staff_client, f"/staff/birth-dates/{review.public_id}", {"decision": "refuse"})
    db.session.refresh(member)
    assert member.birth_date == date(1990, 1, 1)
    assert db.session.get(BirthDateReview, review.id).status == "refused"
    assert "is waiting for our staff" not in client.get("/me/profile").get_data(as_text=True)


def test_a_ward_who_would_become_an_adult_waits_too(client, login_as):
    ward = make_member(birth_date=date(2015, 3, 1))
    login_as(ward)
    post(client, "/me/profile", profile(ward, birth_date="2000-03-01"))
    db.session.refresh(ward)
    assert ward.birth_date == date(2015, 3, 1)
    assert db.session.scalars(select(BirthDateReview)).one().requested_birth_date == date(
        2000, 3, 1)
    page = client.get("/me/profile").get_data(as_text=True)
    assert "an adult" in page


def test_a_date_in_the_future_is_a_field_error(client, member, login_as):
    login_as(member)
    with nothing_written():
        response = post(client, "/me/profile", profile(member, birth_date="2030-01-01"))
    assert response.status_code == 422 and b"Enter a real date of birth." in response.data


def test_others_cannot_decide(client, app, member, login_as):
    login_as(member)
    post(client, "/me/profile", profile(member, birth_date="2016-05-01"))
    review = db.session.scalars(select(BirthDateReview)).one()
    with nothing_written():
        assert post(client, f"/staff/birth-dates/{review.public_id}",
                    {"decision": "approve"}).status_code == 403


def test_erasure_removes_the_review(app, member):
    from consent_center.services.erasure import erase_member
    from consent_center.services.members import ask_birth_date_review

    ask_birth_date_review(member, date(2016, 5, 1))
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    assert db.session.scalars(select(BirthDateReview)).first() is None
