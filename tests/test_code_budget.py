"""One budget per destination (and per asking member) for every code and link, whichever
route sends it: a spent budget is a 429 saying when to try again, and nothing is written."""

from __future__ import annotations

from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import GuardianLink, Notification, OneTimeCode
from tests.conftest import make_member, post
from tests.support.outbox import mailbox
from tests.support.writes import nothing_written
from tests.test_auth import latest_code, start_sign_in
from tests.test_guardians import GUARDIAN_EMAIL, link_from_mailbox, register_minor
from tests.test_profile import code_sent_to, profile, prove_identity

SPENT = "ask for another after"


def written() -> tuple[int, int, int]:
    """Code rows, outbox rows and messages in the mailbox: a refusal adds to none of them."""
    codes = db.session.scalar(select(func.count()).select_from(OneTimeCode))
    rows = db.session.scalar(select(func.count()).select_from(Notification))
    return codes, rows, len(mailbox())


def assert_refused(response, before: tuple[int, int, int]) -> None:
    assert response.status_code == 429, response.data
    assert SPENT in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert written() == before


def test_register_shares_the_budget_sign_in_spent(client, app):
    member = make_member()
    for _ in range(5):
        assert start_sign_in(app.test_client(), member.email).status_code == 303
    before = written()
    assert_refused(start_sign_in(app.test_client(), member.email), before)
    registration = {"name": "Someone", "email": member.email.upper(),
                    "birth_date": "1990-01-01", "locale": "en"}
    assert_refused(post(client, "/register", registration), before)
    # Another address is not affected.
    assert start_sign_in(app.test_client(), "other@example.org").status_code == 303


def test_sign_in_budget_is_per_destination_not_per_spelling(client, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "2 per 10 minutes"
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    assert start_sign_in(client, "138 0013 8000").status_code == 303
    assert start_sign_in(client, "+86 138-0013-8000").status_code == 303
    before = written()
    assert_refused(start_sign_in(app.test_client(), "+8613800138000"), before)
    assert member.phone == "+8613800138000"


def test_unknown_address_spends_the_same_budget(app):
    for _ in range(5):
        assert start_sign_in(app.test_client(), "nobody@example.org").status_code == 303
    before = written()
    assert_refused(start_sign_in(app.test_client(), "nobody@example.org"), before)


def test_ten_profile_changes_do_not_send_ten_codes(client, member, login_as):
    """A change costs two codes from the member's budget: the proof to the current email,
    then the code to the new address. Whichever step finds the budget spent is refused."""
    login_as(member)
    steps = []
    for n in range(10):
        before = written()
        response = post(client, "/me/profile", profile(member, email=f"target{n}@example.org"))
        step = [response.status_code]
        if response.status_code == 303:
            before = written()
            response = prove_identity(client, member.email)
            step.append(response.status_code)
        steps.append(tuple(step))
        if response.status_code == 429:
            assert_refused(response, before)
    # Codes 1-4: two whole changes; code 5: the third proof; the third new address is refused.
    assert steps == [(303, 303)] * 2 + [(303, 429)] + [(429,)] * 7
    kinds = [m["kind"] for m in mailbox()]
    assert (kinds.count("contact_change_code"), kinds.count("verify_contact")) == (3, 2)


def test_profile_change_to_an_address_sign_in_spent_is_refused(client, member, login_as, app):
    victim = "victim@example.org"
    for _ in range(5):
        start_sign_in(app.test_client(), victim)
    login_as(member)
    # The proof goes to the member's own email; the code the victim would get is refused.
    assert post(client, "/me/profile", profile(member, email=victim)).status_code == 303
    code = code_sent_to(member.email, "contact_change_code")
    before = written()
    with nothing_written():  # the proof code is not used up either: it may be entered later
        response = post(client, "/me/profile/confirm-identity", {"code": code})
    assert_refused(response, before)
    db.session.refresh(member)
    assert member.email != victim


def test_contact_change_proof_spends_the_current_address_budget(client, member, login_as, app):
    for _ in range(5):
        start_sign_in(app.test_client(), member.email)
    login_as(member)
    before = written()
    assert_refused(post(client, "/me/profile", profile(member, email="new@example.org")), before)


def test_profile_phone_change_spends_the_number_budget(client, member, login_as, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "1 per 10 minutes"
    login_as(member)
    assert post(client, "/me/profile", profile(member, phone="13800138000")).status_code == 303
    assert prove_identity(client, member.email).status_code == 303  # a code to the number
    # Another member (whose proof goes to their own email) asks for the same number.
    other = make_member(email="other@example.org")
    other_client = login_as(other, on=app.test_client())
    response = post(other_client, "/me/profile", profile(other, phone="+86 138 0013 8000"))
    assert response.status_code == 303
    code = code_sent_to(other.email, "contact_change_code")
    before = written()
    assert_refused(post(other_client, "/me/profile/confirm-identity", {"code": code}), before)


def test_phone_verification_spends_the_budget(client, login_as, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "2 per 10 minutes"
    member = make_member(phone="+8613800138000")
    login_as(member)
    for _ in range(2):
        assert post(client, "/me/profile/phone/verify", {}).status_code == 303
    before = written()
    assert_refused(post(client, "/me/profile/phone/verify", {}), before)


def test_deletion_reauthentication_spends_the_budget(client, member, login_as, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "2 per 10 minutes"
    login_as(member)
    for _ in range(2):
        assert post(client, "/me/delete/code", {}).status_code == 303
    before = written()
    assert_refused(post(client, "/me/delete/code", {}), before)


def test_member_budget_covers_every_route_a_member_uses(client, member, login_as, app):
    app.config["CODE_RATE_LIMIT_MEMBER"] = "2 per 10 minutes"
    login_as(member)
    assert post(client, "/me/delete/code", {}).status_code == 303
    assert post(client, "/me/profile", profile(member, email="a@example.org")).status_code == 303
    before = written()
    response = post(client, "/me/profile", profile(member, email="b@example.org"))
    assert_refused(response, before)
    assert "You have asked for several codes" in response.get_data(as_text=True)


def test_guardian_codes_spend_the_guardian_contact_budget(client, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "3 per 10 minutes"
    register_minor(client)  # the approval link: one from the guardian's budget
    token = link_from_mailbox()
    guardian = app.test_client()
    for _ in range(2):
        assert post(guardian, f"/guardian/invite/{token}/code", {}).status_code == 303
    before = written()
    assert_refused(post(guardian, f"/guardian/invite/{token}/code", {}), before)


def test_guardian_link_resend_spends_the_budget(client, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "2 per 10 minutes"
    minor = register_minor(client)
    post(client, "/sign-in/code", {"code": latest_code(minor.email)})
    assert post(client, "/me/awaiting-guardian/resend", {}).status_code == 303
    link_hash = db.session.scalars(select(GuardianLink.token_hash)).one()
    before = written()
    assert_refused(post(client, "/me/awaiting-guardian/resend", {}), before)
    assert db.session.scalars(select(GuardianLink.token_hash)).one() == link_hash


def test_registering_a_minor_refused_when_the_guardian_budget_is_spent(client, app):
    for _ in range(5):
        start_sign_in(app.test_client(), GUARDIAN_EMAIL)
    before = written()
    data = {"name": "Little Lee", "email": "little.lee@example.org",
            "birth_date": "2020-01-01", "locale": "en", "guardian_contact": GUARDIAN_EMAIL}
    assert_refused(post(client, "/register", data), before)
    assert db.session.scalar(select(func.count()).select_from(GuardianLink)) == 0


def test_second_guardian_invitation_spends_the_budget(client, app, login_as):
    from tests.test_guardians import verify_as_guardian

    minor = register_minor(client)
    token = link_from_mailbox()
    guardian_client = app.test_client()
    verify_as_guardian(guardian_client, token)
    post(guardian_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Parent Lee"})
    second = "second@example.org"
    for _ in range(5):
        start_sign_in(app.test_client(), second)
    before = written()
    response = post(guardian_client, f"/guardian/wards/{minor.public_id}/invite",
                    {"contact": second})
    assert_refused(response, before)


def test_refusal_is_a_fragment_for_htmx(client, app):
    for _ in range(5):
        start_sign_in(app.test_client(), "nobody@example.org")
    response = post(client, "/sign-in", {"identifier": "nobody@example.org"}, htmx=True)
    assert response.status_code == 429
    assert "<html" not in response.get_data(as_text=True)
    assert SPENT in response.get_data(as_text=True)
