"""What the member is told beside each choice and with each refusal (issue 18, section 2)."""

from __future__ import annotations

import pytest

from consent_center import clock
from consent_center.services.deletion import refuse_deletion, request_deletion
from tests.conftest import make_member, post
from tests.support.outbox import mailbox
from tests.test_guardians import family  # noqa: F401  (the fixture)

WITHDRAW = {
    "en": "You can withdraw this consent at any time",
    "zh_Hans_CN": "您可以随时撤回此同意",
}
NO_DECISION = {
    "en": "no decision about you as an individual is made from it",
    "zh_Hans_CN": "不会据此对您个人作出任何决定",
}
REMEDIES = {
    "en": "bring a lawsuit before a people's court",
    "zh_Hans_CN": "向人民法院提起诉讼",
}
REMEDIES_SMS = {
    "en": "You may complain to the regulator or go to court.",
    "zh_Hans_CN": "可投诉或起诉",
}


@pytest.mark.parametrize("locale", ["en", "zh_Hans_CN"])
def test_each_switch_says_withdrawal_is_possible_and_trend_analysis_decides_nothing(
    client, login_as, policy, locale
):
    member = make_member(locale=locale)
    login_as(member)
    post(client, "/language", {"locale": locale})
    page = client.get("/me").get_data(as_text=True)
    # Beside each optional purpose's switch, in its own element the switch points to.
    for purpose in ("trend_analysis", "advertising"):
        assert f'id="consent-{purpose}-withdraw"' in page
        assert f"consent-{purpose}-desc consent-{purpose}-withdraw" in page
    assert page.count(WITHDRAW[locale]) == 2
    assert NO_DECISION[locale] in page
    fragment = post(client, "/me/consents/trend_analysis", {"granted": "1"}, htmx=True)
    assert WITHDRAW[locale] in fragment.get_data(as_text=True)


def test_the_guardians_ward_page_says_the_same(family):  # noqa: F811
    minor, guardian, guardian_client = family
    page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert page.count(WITHDRAW["en"]) == 2 and NO_DECISION["en"] in page
    post(guardian_client, "/language", {"locale": "zh_Hans_CN"})
    page = guardian_client.get(f"/guardian/wards/{minor.public_id}").get_data(as_text=True)
    assert page.count(WITHDRAW["zh_Hans_CN"]) == 2 and NO_DECISION["zh_Hans_CN"] in page


@pytest.mark.parametrize("locale", ["en", "zh_Hans_CN"])
def test_where_consent_is_first_given_the_same_note_is_shown(client, app, locale):
    """Registration and the guardian's approval page also ask for optional consent."""
    from tests.test_guardians import link_from_mailbox, register_minor, verify_as_guardian

    post(client, "/language", {"locale": locale})
    page = client.get("/register").get_data(as_text=True)
    assert WITHDRAW[locale] in page and NO_DECISION[locale] in page
    assert 'aria-describedby="trend_analysis-desc withdraw-note"' in page
    register_minor(app.test_client())
    guardian_client = app.test_client()
    post(guardian_client, "/language", {"locale": locale})
    token = link_from_mailbox()
    verify_as_guardian(guardian_client, token)
    page = guardian_client.get(f"/guardian/invite/{token}/decide").get_data(as_text=True)
    assert WITHDRAW[locale] in page and NO_DECISION[locale] in page


@pytest.mark.parametrize("locale", ["en", "zh_Hans_CN"])
def test_a_refusal_names_the_authority_and_the_court(client, login_as, app, locale):
    from consent_center.extensions import db

    member = make_member(locale=locale, phone="+8613800138000",
                         phone_verified_at=clock.utcnow(), notify_sms=True)
    staff = make_member(role="staff")
    deletion = request_deletion(member, requested_by=member, reason=None)
    db.session.commit()
    refuse_deletion(deletion, staff, ground="criminal_justice",
                    explanation="The account is subject to an open police investigation.")
    db.session.commit()
    login_as(member)
    post(client, "/language", {"locale": locale})
    page = client.get(f"/me/deletion/{deletion.public_id}").get_data(as_text=True)
    assert REMEDIES[locale] in page
    refusal = [m for m in mailbox() if m["kind"] == "deletion_refused"]
    assert refusal, "the refusal is sent"
    for message in refusal:
        text = message["text"]
        assert REMEDIES[locale] in text or REMEDIES_SMS[locale] in text, message
