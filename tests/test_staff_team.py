"""Admins manage the staff team in the console; staff cannot; there is always an admin."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import AuditEvent, Member
from tests.conftest import make_member, post
from tests.support.staff import make_staff
from tests.support.writes import nothing_written


@pytest.fixture
def admin(app):
    return make_staff(role="admin", name="Ada Admin", email="ada@staff.example")


def role_of(member) -> str:
    db.session.refresh(member)
    return member.role


def test_staff_cannot_manage_the_team(client, login_as):
    staff = make_staff()
    target = make_staff()
    login_as(staff)
    with nothing_written():
        assert client.get("/staff/team").status_code == 403
        add = post(client, "/staff/team", {"email": "x@example.org", "role": "admin"})
        assert add.status_code == 403
        promote = post(client, f"/staff/team/{target.public_id}/role", {"role": "admin"})
        assert promote.status_code == 403
        assert post(client, f"/staff/team/{target.public_id}/remove", {}).status_code == 403
    assert role_of(target) == "staff" and role_of(staff) == "staff"
    assert db.session.scalars(select(Member).where(Member.email == "x@example.org")).first() is None


def test_admin_adds_new_and_existing_accounts(client, login_as, admin):
    existing = make_member(email="old.member@example.org")
    login_as(admin)
    page = client.get("/staff/team").get_data(as_text=True)
    assert "Ada Admin" in page and "(you)" in page
    response = post(client, "/staff/team", {"email": "New.Person@Example.org", "role": "staff"})
    assert response.status_code == 303
    created = db.session.scalars(select(Member).where(Member.email == "new.person@example.org"))
    assert created.one().role == "staff"
    promoted = post(client, "/staff/team", {"email": existing.email, "role": "admin"})
    assert promoted.status_code == 303
    assert role_of(existing) == "admin"
    with nothing_written():
        bad = post(client, "/staff/team", {"email": "not an email", "role": "staff"})
    assert bad.status_code == 422 and b"Enter a valid email address." in bad.data
    audit = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.role_set").order_by(AuditEvent.id)
    ).all()
    assert [(e.actor_member_id, e.details["role"]) for e in audit] == [
        (admin.id, "staff"),
        (admin.id, "admin"),
    ]


def test_change_role_and_remove(client, login_as, admin):
    staff = make_staff()
    login_as(admin)
    assert post(client, f"/staff/team/{staff.public_id}/role", {"role": "admin"}).status_code == 303
    assert role_of(staff) == "admin"
    assert post(client, f"/staff/team/{staff.public_id}/role", {"role": "staff"}).status_code == 303
    assert role_of(staff) == "staff"
    with nothing_written():
        bad = post(client, f"/staff/team/{staff.public_id}/role", {"role": "owner"})
    assert bad.status_code == 422 and role_of(staff) == "staff"
    assert post(client, f"/staff/team/{staff.public_id}/remove", {}).status_code == 303
    assert role_of(staff) == "member"
    removed = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.role_removed")
    ).one()
    assert removed.subject_member_id == staff.id and removed.details["previous"] == "staff"
    # No longer staff: the console is closed to them, and they are not on the team page.
    login_as(staff)
    with nothing_written():
        assert client.get("/staff").status_code == 403
    login_as(admin)
    assert staff.public_id not in client.get("/staff/team").get_data(as_text=True)
    with nothing_written():
        response = post(client, f"/staff/team/{staff.public_id}/role", {"role": "staff"})
    assert response.status_code == 404


def test_the_last_admin_stays(client, login_as, admin):
    login_as(admin)
    with nothing_written():
        demote = post(client, f"/staff/team/{admin.public_id}/role", {"role": "staff"})
        assert demote.status_code == 409 and b"at least one admin" in demote.data
        remove = post(client, f"/staff/team/{admin.public_id}/remove", {})
        assert remove.status_code == 409
    assert role_of(admin) == "admin"

    # With a second admin, either may step down; then the one left cannot.
    other = make_staff(role="admin")
    response = post(client, f"/staff/team/{admin.public_id}/role", {"role": "staff"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/staff")
    assert role_of(admin) == "staff"
    login_as(other)
    with nothing_written():
        assert post(client, f"/staff/team/{other.public_id}/remove", {}).status_code == 409
    assert role_of(other) == "admin"
    assert post(client, f"/staff/team/{admin.public_id}/remove", {}).status_code == 303
    assert role_of(admin) == "member"


def test_cli_staff_add_still_bootstraps(runner, app):
    result = runner.invoke(args=["staff", "add", "boot@example.org", "--role", "admin"])
    assert result.exit_code == 0, result.output
    member = db.session.scalars(select(Member).where(Member.email == "boot@example.org")).one()
    assert member.role == "admin"
