"""Authorization matrix of the staff console, generated from the app's URL map.

Every /staff endpoint and method x {anonymous, member, guardian, staff, admin}:
anonymous -> redirect to sign-in; member and guardian -> 403; staff -> the page (or the
page's answer to harmless data) except admin-only endpoints -> 403; admin -> the page.
POSTs carry a valid CSRF token, so a 403 is the authorization check, not CSRF.

A /staff route without an entry in RULES fails `test_every_staff_route_has_a_rule`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from flask import url_for

from consent_center import clock, models
from consent_center.extensions import db
from consent_center.models import FanOut, IncidentNotice, PolicyVersion
from consent_center.services.deletion import request_deletion
from consent_center.services.incidents import FIELDS
from tests.conftest import make_member, make_policy, post
from tests.support.staff import make_staff
from tests.support.writes import nothing_written

ROLES = ("anonymous", "member", "guardian", "staff", "admin")


@dataclass
class Objects:
    """Real objects to fill URL parameters, made afresh for each role."""

    member: object
    deletion: object
    draft: object
    fan_out: object
    incident: object
    teammate: object
    review: object


@dataclass(frozen=True)
class Rule:
    access: str  # "staff" (staff and admin) or "admin" (admins only)
    ok: int  # what an allowed request answers (POSTs send harmless or invalid data)
    url: Callable[[Objects], str]
    data: dict = field(default_factory=dict)


def _static(path: str) -> Callable[[Objects], str]:
    return lambda o: path


RULES: dict[tuple[str, str], Rule] = {
    ("staff.dashboard", "GET"): Rule("staff", 200, _static("/staff")),
    ("staff.policies", "GET"): Rule("staff", 200, _static("/staff/policies")),
    ("staff.policy_new", "GET"): Rule("staff", 200, _static("/staff/policies/new")),
    ("staff.policy_new", "POST"): Rule("staff", 422, _static("/staff/policies/new")),
    ("staff.policy_preview", "POST"): Rule("staff", 200, _static("/staff/policies/preview")),
    ("staff.policy", "GET"): Rule("staff", 200, lambda o: f"/staff/policies/{o.draft.public_id}"),
    ("staff.policy_edit", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/policies/{o.draft.public_id}/edit"
    ),
    ("staff.policy_edit", "POST"): Rule(
        "staff", 422, lambda o: f"/staff/policies/{o.draft.public_id}/edit"
    ),
    ("staff.policy_publish", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/policies/{o.draft.public_id}/publish"
    ),
    ("staff.policy_publish", "POST"): Rule(
        "staff", 422, lambda o: f"/staff/policies/{o.draft.public_id}/publish"
    ),
    ("staff.policy_discard", "POST"): Rule(
        "staff", 303, lambda o: f"/staff/policies/{o.draft.public_id}/discard"
    ),
    ("staff.members", "GET"): Rule("staff", 200, _static("/staff/members?q=member")),
    ("staff.member", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/members/{o.member.public_id}?reason=member_request"
    ),
    ("staff.birth_date_reviews", "GET"): Rule("staff", 200, _static("/staff/birth-dates")),
    ("staff.birth_date_review", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/birth-dates/{o.review.public_id}"
    ),
    ("staff.decide_birth_date", "POST"): Rule(
        "staff", 400, lambda o: f"/staff/birth-dates/{o.review.public_id}"
    ),
    ("staff.deletions", "GET"): Rule("staff", 200, _static("/staff/deletions")),
    ("staff.deletion", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/deletions/{o.deletion.public_id}"
    ),
    ("staff.start_review", "POST"): Rule(
        "staff", 303, lambda o: f"/staff/deletions/{o.deletion.public_id}/review"
    ),
    ("staff.refuse", "POST"): Rule(
        "staff", 422, lambda o: f"/staff/deletions/{o.deletion.public_id}/refuse"
    ),
    ("staff.complete", "POST"): Rule(
        "staff", 422, lambda o: f"/staff/deletions/{o.deletion.public_id}/complete"
    ),
    ("staff.fan_outs", "GET"): Rule("staff", 200, _static("/staff/fan-outs")),
    ("staff.fan_out", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/fan-outs/{o.fan_out.public_id}"
    ),
    ("staff.notifications", "GET"): Rule("staff", 200, _static("/staff/notifications")),
    ("staff.audit", "GET"): Rule("staff", 200, _static("/staff/audit")),
    ("staff.audit_csv", "GET"): Rule("staff", 200, _static("/staff/audit.csv")),
    ("staff.consent_csv", "GET"): Rule("staff", 200, _static("/staff/consent.csv")),
    ("staff.incidents", "GET"): Rule("staff", 200, _static("/staff/incidents")),
    ("staff.integrations", "GET"): Rule("staff", 200, _static("/staff/integrations")),
    ("staff.incident_new", "GET"): Rule("staff", 200, _static("/staff/incidents/new")),
    ("staff.incident_new", "POST"): Rule("staff", 422, _static("/staff/incidents/new")),
    ("staff.incident", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/incidents/{o.incident.public_id}"
    ),
    ("staff.incident_edit", "GET"): Rule(
        "staff", 200, lambda o: f"/staff/incidents/{o.incident.public_id}/edit"
    ),
    ("staff.incident_edit", "POST"): Rule(
        "staff", 422, lambda o: f"/staff/incidents/{o.incident.public_id}/edit"
    ),
    ("staff.incident_send", "POST"): Rule(
        "staff", 422, lambda o: f"/staff/incidents/{o.incident.public_id}/send"
    ),
    ("staff.team", "GET"): Rule("admin", 200, _static("/staff/team")),
    ("staff.team_add", "POST"): Rule("admin", 422, _static("/staff/team"), {"email": "nope"}),
    ("staff.team_role", "POST"): Rule(
        "admin", 422, lambda o: f"/staff/team/{o.teammate.public_id}/role", {"role": "owner"}
    ),
    ("staff.team_remove", "POST"): Rule(
        "admin", 303, lambda o: f"/staff/team/{o.teammate.public_id}/remove"
    ),
}


def staff_routes(app) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/staff")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_staff_route_has_a_rule(app):
    routes = staff_routes(app)
    missing = routes - set(RULES)
    assert not missing, f"add these /staff routes to RULES with who may use them: {missing}"
    assert not set(RULES) - routes, "RULES names routes that no longer exist"


def make_objects() -> Objects:
    member = make_member()
    deletion = request_deletion(member, requested_by=member, reason=None)
    draft = PolicyVersion(
        number=None,
        title="Privacy policy",
        body_md="# Policy\n\nNew words.\n",
        summary="New words",
        changed_purposes="",
        effective_at=clock.utcnow() + timedelta(days=40),
    )
    fan_out = FanOut(kind="policy_notice", cause=f"test:{uuid.uuid4()}")
    incident = IncidentNotice(
        content={loc: dict.fromkeys(FIELDS, "text") for loc in ("en", "zh_Hans_CN")},
        audience={},
    )
    db.session.add_all([draft, fan_out, incident])
    teammate = make_staff()
    review = models.BirthDateReview(
        member_id=member.id, requested_birth_date=date(2015, 1, 1), status="pending"
    )
    db.session.add(review)
    db.session.commit()
    return Objects(member, deletion, draft, fan_out, incident, teammate, review)


def make_guardian():
    """A member who is an approved guardian (a plain member before the guardian feature)."""
    guardian = make_member()
    if hasattr(models, "GuardianLink"):
        ward = make_member(status="awaiting_guardian")
        db.session.add(
            models.GuardianLink(
                minor_id=ward.id,
                guardian_id=guardian.id,
                status="approved",
                contact_channel="email",
                contact=guardian.email,
                invited_at=clock.utcnow(),
            )
        )
        db.session.commit()
    return guardian


def user_for(role: str):
    if role == "anonymous":
        return None
    if role == "guardian":
        return make_guardian()
    if role == "member":
        return make_member()
    return make_staff(role=role)


def expected_status(rule: Rule, role: str) -> int:
    if role == "anonymous":
        return 302
    if role in ("member", "guardian"):
        return 403
    if rule.access == "admin" and role == "staff":
        return 403
    return rule.ok


@pytest.mark.parametrize("key", sorted(RULES), ids=lambda k: f"{k[1]} {k[0]}")
def test_access_matrix(app, login_as, key):
    make_policy()
    rule = RULES[key]
    endpoint, method = key
    with app.test_request_context():
        sign_in = url_for("auth.sign_in")
    for role in ROLES:
        objects = make_objects()
        client = app.test_client()
        user = user_for(role)
        if user is not None:
            login_as(user, on=client)
        url = rule.url(objects)
        expected = expected_status(rule, role)
        # A refusal (sign-in first, not allowed, bad data) changes nothing.
        refused = expected == 302 or expected >= 400
        # Buffered: a streamed body (the CSV export) is read, and its connection released,
        # inside the request's own context.
        with nothing_written() if refused else contextlib.nullcontext():
            if method == "GET":
                response = client.get(url, buffered=True)
            else:
                response = post(client, url, rule.data, buffered=True)
        assert response.status_code == expected, (role, method, url, response.status_code)
        if expected == 302:
            assert response.headers["Location"].startswith(sign_in), (role, url)
