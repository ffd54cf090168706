"""The ledger keeps the language a choice was made in, and each time a policy change asked a
member again (issue 18, section 4)."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.models import ConsentEvent, ReconsentRequest
from consent_center.models.consent import chain_hash
from consent_center.services.consents import set_consent, verify_ledger
from tests.conftest import make_member, post, publish_notice
from tests.support.api import ledger_event


def test_a_toggle_records_the_pages_language_and_the_receipt_shows_it(
    client, member, login_as, policy, runner
):
    login_as(member)
    post(client, "/me/consents/advertising", {"granted": "1"})
    post(client, "/language", {"locale": "zh_Hans_CN"})
    post(client, "/me/consents/trend_analysis", {"granted": "1"}, htmx=True)
    events = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [(e.purpose, e.locale) for e in events] == [
        ("advertising", "en"), ("trend_analysis", "zh_Hans_CN")]
    page = client.get(f"/me/receipts/{events[1].receipt_id}").get_data(as_text=True)
    assert "页面语言" in page and "简体中文" in page
    document = json.loads(client.get(f"/me/receipts/{events[1].receipt_id}.json").data)
    assert document["x-choiceLanguage"] == "zh_Hans_CN"
    # The language is part of each link's hash: changing it afterwards breaks the chain.
    assert verify_ledger().ok
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    db.session.execute(
        update(ConsentEvent).where(ConsentEvent.id == events[0].id).values(locale="zh_Hans_CN"))
    db.session.commit()
    report = verify_ledger()
    assert [b[1:] for b in report.broken] == [(1, "content does not match its hash")]


def test_links_without_a_language_keep_the_hash_they_were_made_with(app, member, policy, runner):
    """Events recorded before the language was kept (and those with no page, like a browser
    signal) have none: their hash is the one computed without it, and the chain verifies."""
    event = ledger_event(
        set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.GPC)
    )
    db.session.commit()
    assert event.locale is None
    fields = {c: getattr(event, c) for c in (
        "member_id", "seq", "receipt_id", "purpose", "granted", "policy_version_id", "actor",
        "actor_member_id", "method")}
    assert event.hash == chain_hash(key_id=event.key_id, prev_hash=event.prev_hash,
                                    created_at=event.created_at, **fields)
    set_consent(member, "advertising", False, actor=Actor.MEMBER, method=Method.FORM,
                locale="en")
    db.session.commit()
    assert verify_ledger().ok
    # Giving an old link a language afterwards is tampering too.
    db.session.execute(
        update(ConsentEvent).where(ConsentEvent.id == event.id).values(locale="en"))
    db.session.commit()
    assert not verify_ledger().ok


def test_a_policy_change_records_whom_it_asks_again(app, member, policy, client, login_as):
    other, unaffected = make_member(), make_member()
    for who in (member, other):
        set_consent(who, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    set_consent(other, "advertising", False, actor=Actor.MEMBER, method=Method.FORM)
    set_consent(unaffected, "trend_analysis", True, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    assert db.session.scalars(select(ReconsentRequest)).first() is None
    publish_notice(app, summary="No purpose changes")
    assert db.session.scalars(select(ReconsentRequest)).first() is None
    version = publish_notice(app, summary="Ads change", days=31,
                             changed_purposes=("advertising",))
    requests = db.session.scalars(select(ReconsentRequest)).all()
    granted = db.session.scalars(select(ConsentEvent).where(
        ConsentEvent.member_id == member.id, ConsentEvent.purpose == "advertising")).one()
    assert [(r.member_id, r.purpose, r.policy_version_id, r.event_id, r.created_at)
            for r in requests] == [
        (member.id, "advertising", version.id, granted.id, version.published_at)]
    # The member sees it among what we hold, and it is in their export.
    login_as(member)
    assert "When we asked you again" in client.get("/me").get_data(as_text=True)
    from tests.test_data_export import download

    data = json.loads(download(client, member, "json").data)
    assert [r["purpose"] for r in data["records"]["reconsent_request"]] == ["advertising"]


def test_publishing_a_staff_draft_records_the_requests_too(client, login_as, app):
    from consent_center import clock
    from consent_center.models import PolicyVersion
    from tests.conftest import make_policy
    from tests.support.staff import local_midnight, make_staff
    from tests.test_staff_policies import OLD_TEXT, TODAY, draft_data

    clock.freeze(local_midnight(TODAY))
    make_policy(body=OLD_TEXT)
    member = make_member()
    set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    login_as(make_staff())
    post(client, "/staff/policies/new", draft_data())
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    assert db.session.scalars(select(ReconsentRequest)).first() is None
    response = post(client, f"/staff/policies/{draft.public_id}/publish", {"confirm": "y"})
    assert response.status_code == 303
    requests = db.session.scalars(select(ReconsentRequest)).all()
    assert [(r.member_id, r.purpose, r.policy_version_id) for r in requests] == [
        (member.id, "advertising", draft.id)]
