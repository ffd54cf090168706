"""A child's optional consent belongs to the guardian (PIPL art. 31): only a guardian grants it,
the child can always withdraw it, and the guardian is proved to be a separate adult."""

from __future__ import annotations

from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import ConsentEvent
from consent_center.services.consents import current_consents
from tests.conftest import post
from tests.support.writes import nothing_written
from tests.test_guardians import family  # noqa: F401 - the fixture


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
