"""A child's optional consent belongs to the guardian (PIPL art. 31): only a guardian grants it,
the child can always withdraw it, and the guardian is proved to be a separate adult."""

from __future__ import annotations

from datetime import date, timedelta
from html import unescape

from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import ConsentEvent, GuardianLink, Member
from consent_center.services.consents import current_consents
from tests.conftest import make_member, policy_texts, post
from tests.support.writes import nothing_written
from tests.test_guardians import (  # noqa: F401 - the fixture
    GUARDIAN_EMAIL,
    family,
    link_from_mailbox,
    register_minor,
    verify_as_guardian,
)


def test_only_the_guardian_grants_a_childs_optional_purpose(family, client, login_as):  # noqa: F811
    minor, guardian, guardian_client = family
    login_as(minor)
    page = client.get("/me").get_data(as_text=True)
    assert "Only your guardian can switch this on: Parent Lee." in page
    assert "You can switch it off at any time." in page
    switch = page.split('id="consent-trend_analysis-switch"')[1].split(">")[0]
    assert "disabled" in switch and "consent-trend_analysis-guardian" in switch
    for htmx in (False, True):
        with nothing_written():
            response = post(client, "/me/consents/trend_analysis", {"granted": "1"}, htmx=htmx)
        assert response.status_code == 403
        assert b"Only your guardian can switch this on for you" in response.data
        assert (b"<html" in response.data) is not htmx
    # The guardian grants it; the child sees it on and can switch it off alone.
    post(guardian_client, f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
         {"granted": "1"})
    page = client.get("/me").get_data(as_text=True)
    switch = page.split('id="consent-trend_analysis-switch"')[1].split(">")[0]
    assert "disabled" not in switch and 'aria-checked="true"' in switch
    response = post(client, "/me/consents/trend_analysis", {"granted": "0"}, htmx=True)
    assert response.status_code == 200 and 'aria-checked="false"' in response.get_data(
        as_text=True)
    last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert (last.actor, last.granted) == ("member", False)
    assert not {v.purpose: v.granted for v in current_consents(minor)}["trend_analysis"]


def test_the_child_page_says_so_in_chinese(family, client, login_as):  # noqa: F811
    minor, _guardian, _ = family
    minor.locale = "zh_Hans_CN"
    db.session.commit()
    login_as(minor)
    page = client.get("/me").get_data(as_text=True)
    assert "只有您的监护人可以开启：Parent Lee。" in page
    assert "您可以随时关闭。" in page


def _verified_guardian(client, app):
    register_minor(client)
    token = link_from_mailbox()
    guardian_client = app.test_client()
    verify_as_guardian(guardian_client, token)
    return guardian_client, token


def test_the_guardian_confirms_an_adult_birth_date(client, app):
    guardian_client, token = _verified_guardian(client, app)
    page = guardian_client.get(f"/guardian/invite/{token}/decide").get_data(as_text=True)
    assert "Your own date of birth" in page and "18 or older" in page
    seventeen = date(clock.utcnow().year - 17, 1, 1).isoformat()
    for birth_date, words in (("", "Enter your own date of birth."),
                              (seventeen, "A guardian must be 18 or older.")):
        with nothing_written():
            response = post(guardian_client, f"/guardian/invite/{token}/decide",
                            {"decision": "approve", "guardian_name": "Parent Lee",
                             "guardian_birth_date": birth_date})
        assert response.status_code == 422 and words in response.get_data(as_text=True)
    response = post(guardian_client, f"/guardian/invite/{token}/decide",
                    {"decision": "approve", "guardian_name": "Parent Lee",
                     "guardian_birth_date": "1980-05-01"})
    assert response.status_code == 303
    guardian = db.session.scalars(select(Member).where(Member.email == GUARDIAN_EMAIL)).one()
    assert guardian.birth_date == date(1980, 5, 1)


def test_a_second_guardian_may_not_be_the_childs_own_contact(family, app):  # noqa: F811
    minor, _guardian, guardian_client = family
    with nothing_written():
        response = post(guardian_client, f"/guardian/wards/{minor.public_id}/invite",
                        {"contact": minor.email.upper()})
    assert response.status_code == 422
    assert "This is the child's own email address" in unescape(response.get_data(as_text=True))


def test_approval_links_last_72_hours(client, app):
    register_minor(client)
    link = db.session.scalars(select(GuardianLink)).one()
    assert link.token_expires_at - link.invited_at == timedelta(hours=72)
    token = link_from_mailbox()
    clock.freeze(link.invited_at + timedelta(hours=72, seconds=1))
    with nothing_written():
        response = app.test_client().get(f"/guardian/invite/{token}")
    assert response.status_code == 404 and b"Links work once, for 72 hours." in response.data


def test_a_purpose_change_hands_a_childs_yes_back_to_the_guardians(
    family, client, login_as, app  # noqa: F811
):
    from consent_center.models import Notification
    from consent_center.services.policies import publish_policy
    from tests.support.outbox import mailbox

    minor, guardian, guardian_client = family
    post(guardian_client, f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
         {"granted": "1"})
    clock.freeze(clock.utcnow())
    effective = clock.utcnow() + timedelta(days=30)
    publish_policy(actor=None, texts=policy_texts("# Policy\n\nChanged.\n",
                                                 "Trend analysis now uses purchase history."),
                   effective_at=effective, changed_purposes=("trend_analysis",),
                   config=app.config)
    db.session.commit()
    asked = db.session.scalars(select(Notification).where(
        Notification.kind == "guardian_reconsent")).all()
    assert [n.recipient for n in asked] == [GUARDIAN_EMAIL]
    text = next(m for m in mailbox() if m["kind"] == "guardian_reconsent")["text"]
    assert "Little Lee" in text and "Trend analysis" in text and "/guardian" in text
    # Once it is in effect, the child's yes is off and only the guardian can give it again.
    clock.freeze(effective + timedelta(seconds=1))
    assert not {v.purpose: v.granted for v in current_consents(minor)}["trend_analysis"]
    login_as(minor)
    assert "It stays off until your guardian says yes again." in client.get("/me").get_data(
        as_text=True)
    with nothing_written():
        response = post(client, "/me/consents/trend_analysis", {"granted": "1"}, htmx=True)
    assert response.status_code == 403
    login_as(guardian, on=guardian_client)
    page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert "consent-trend_analysis-reconsent" in page
    post(guardian_client, f"/guardian/wards/{minor.public_id}/consents/trend_analysis",
         {"granted": "1"})
    assert {v.purpose: v.granted for v in current_consents(minor)}["trend_analysis"]


def test_the_gpc_override_path_follows_the_same_rule(family, app):  # noqa: F811
    import pytest

    from consent_center.domain import Actor, Method
    from consent_center.services.consents import set_consent
    from consent_center.services.errors import NotAllowed
    from consent_center.services.gpc import grant_despite_gpc

    minor, guardian, _ = family
    app.config["MINORS_ADVERTISING"] = True
    with nothing_written(), pytest.raises(NotAllowed):
        grant_despite_gpc(minor, "advertising", gpc_sent=True, method=Method.FORM)
    # Nor may someone who is not the child's guardian grant as one.
    stranger = make_member()
    with nothing_written(), pytest.raises(NotAllowed):
        set_consent(minor, "advertising", True, actor=Actor.GUARDIAN, method=Method.FORM,
                    actor_member=stranger)
    set_consent(minor, "advertising", True, actor=Actor.GUARDIAN,
                method=Method.GUARDIAN_CONFIRMATION, actor_member=guardian)
    db.session.commit()
    assert {v.purpose: v.granted for v in current_consents(minor)}["advertising"]


def test_advertising_for_a_child_waits_for_the_guardians_second_confirmation(
    family, app, login_as  # noqa: F811
):
    import re

    from consent_center.models import Notification
    from tests.support.outbox import mailbox

    minor, guardian, guardian_client = family
    app.config["MINORS_ADVERTISING"] = True
    app.config["GUARDIAN_CONFIRM_DELAY_HOURS"] = 24
    clock.freeze(clock.utcnow())
    start = clock.utcnow()
    url = f"/guardian/wards/{minor.public_id}/consents/advertising"
    response = post(guardian_client, url, {"granted": "1"}, htmx=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "stays off for now" in page and 'aria-checked="false"' in page
    assert not {v.purpose: v.granted for v in current_consents(minor)}["advertising"]
    ward_page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert "ward-pending-confirmation" in ward_page
    # Nothing reaches the guardian before the delay.
    assert not [m for m in mailbox() if m["kind"] == "guardian_confirm"]
    row = db.session.scalars(select(Notification).where(
        Notification.kind == "guardian_confirm")).one()
    assert row.next_attempt_at == start + timedelta(hours=24)
    clock.freeze(start + timedelta(hours=24, seconds=1))
    message = next(m for m in mailbox() if m["kind"] == "guardian_confirm")
    assert message["to"] == GUARDIAN_EMAIL and "Advertising planning" in message["text"]
    token = re.search(r"/gc/([\w-]+)", message["text"]).group(1)
    assert guardian_client.get(f"/gc/{token}").headers["Location"].endswith(
        f"/guardian/confirm/{token}")
    # Only a signed-in guardian can confirm.
    with nothing_written():
        other = app.test_client()
        assert post(other, f"/guardian/confirm/{token}", {}).status_code in (302, 303, 401)
    login_as(guardian, on=guardian_client)  # a day later: the guardian signs in again
    confirm = guardian_client.get(f"/guardian/confirm/{token}")
    assert confirm.status_code == 200 and b"Confirm your choice" in confirm.data
    assert not {v.purpose: v.granted for v in current_consents(minor)}["advertising"]
    response = post(guardian_client, f"/guardian/confirm/{token}", {})
    assert response.status_code == 303
    assert {v.purpose: v.granted for v in current_consents(minor)}["advertising"]
    last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert (last.actor, last.method, last.actor_member_id) == (
        "guardian", "guardian_confirmation", guardian.id)
    # Single use.
    with nothing_written():
        assert guardian_client.get(f"/guardian/confirm/{token}").status_code == 404


def test_a_guardian_cannot_skip_the_second_confirmation(family, app):  # noqa: F811
    import pytest

    from consent_center.domain import Actor, Method
    from consent_center.services.consents import set_consent
    from consent_center.services.errors import NotAllowed

    minor, guardian, _ = family
    app.config["MINORS_ADVERTISING"] = True
    with nothing_written(), pytest.raises(NotAllowed):
        set_consent(minor, "advertising", True, actor=Actor.GUARDIAN, method=Method.FORM,
                    actor_member=guardian)
