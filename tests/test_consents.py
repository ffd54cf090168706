"""Consent switches, the ledger and receipts."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from consent_center import clock
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.models import ConsentEvent, ConsentState
from consent_center.services.consents import set_consent, verify_ledger
from tests.conftest import csrf_token, make_member, post
from tests.support.api import ledger_event
from tests.support.queries import count_queries, race
from tests.support.writes import nothing_written


def state(member, purpose):
    return db.session.get(ConsentState, (member.id, purpose))


def test_optional_purposes_are_off_until_granted(client, member, login_as, policy):
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert page.count('role="switch"') == 2
    assert page.count('aria-checked="false"') == 2


def test_toggle_with_htmx_returns_the_fragment(client, member, login_as, policy):
    login_as(member)
    response = post(client, "/me/consents/advertising", {"granted": "1"}, htmx=True)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'id="consent-advertising"' in body
    assert 'aria-checked="true"' in body
    assert 'hx-swap-oob="innerHTML"' in body and "Advertising planning is now on" in body
    assert state(member, "advertising").granted is True
    ev = db.session.scalars(select(ConsentEvent)).one()
    assert (ev.method, ev.actor, ev.granted) == ("htmx", "member", True)


def test_toggle_without_javascript_redirects(client, member, login_as, policy):
    login_as(member)
    response = post(client, "/me/consents/trend_analysis", {"granted": "1"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/me#consent-trend_analysis"
    page = client.get("/me").get_data(as_text=True)
    assert "Trend analysis is now on" in page and "View the receipt" in page
    # Withdrawing is the same single action.
    response = post(client, "/me/consents/trend_analysis", {"granted": "0"})
    assert response.status_code == 303
    assert state(member, "trend_analysis").granted is False
    assert [e.granted for e in db.session.scalars(select(ConsentEvent))] == [True, False]


@pytest.mark.parametrize("htmx", [False, True])
def test_bad_input_is_422_and_writes_nothing(client, member, login_as, htmx):
    login_as(member)
    with nothing_written():
        response = post(client, "/me/consents/advertising", {"granted": "maybe"}, htmx=htmx)
    assert response.status_code == 422
    assert ("<html" in response.get_data(as_text=True)) is not htmx
    assert db.session.scalars(select(ConsentEvent)).first() is None


def test_unknown_or_necessary_purpose_is_404(client, member, login_as):
    login_as(member)
    with nothing_written():
        assert post(client, "/me/consents/service", {"granted": "0"}).status_code == 404
        assert post(client, "/me/consents/nope", {"granted": "1"}).status_code == 404


def test_htmx_toggle_without_csrf_header_is_refused(client, member, login_as):
    login_as(member)
    with nothing_written():
        response = client.post(
            "/me/consents/advertising", data={"granted": "1"}, headers={"HX-Request": "true"}
        )
    assert response.status_code == 400
    assert db.session.scalars(select(ConsentEvent)).first() is None


def test_ledger_chain_verifies_and_detects_tampering(app, member, runner, policy):
    for granted in (True, False, True):
        set_consent(
            member,
            "advertising",
            granted,
            actor=Actor.MEMBER,
            method=Method.FORM,
            actor_member=member,
        )
    set_consent(
        member, "trend_analysis", True, actor=Actor.MEMBER, method=Method.FORM, actor_member=member
    )
    db.session.commit()
    assert verify_ledger().ok
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0 and "checked 4 events of 1 members: ok" in result.output
    db.session.execute(update(ConsentEvent).where(ConsentEvent.seq == 2).values(granted=True))
    db.session.commit()
    report = verify_ledger()
    assert not report.ok and report.broken[0][1] == 2
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1 and "BROKEN" in result.output


def test_a_chain_head_out_of_step_with_the_ledger_is_caught(app, member, runner, policy):
    from consent_center.models import Member

    set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    set_consent(member, "advertising", False, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    assert (member.ledger_seq, verify_ledger().ok) == (2, True)
    first = db.session.scalars(select(ConsentEvent).where(ConsentEvent.seq == 1)).one()
    for values in ({"ledger_seq": 1, "ledger_hash": first.hash}, {"ledger_hash": "f" * 64},
                   {"ledger_seq": 0, "ledger_hash": None}):  # fmt: skip
        saved = (member.ledger_seq, member.ledger_hash)
        db.session.execute(update(Member).where(Member.id == member.id).values(**values))
        db.session.commit()
        report = verify_ledger()
        assert not report.ok and [b[0] for b in report.broken] == [member.id], values
        assert "chain head" in report.broken[0][2]
        result = runner.invoke(args=["ledger", "verify"])
        assert result.exit_code == 1 and "BROKEN" in result.output
        db.session.execute(update(Member).where(Member.id == member.id).values(
            ledger_seq=saved[0], ledger_hash=saved[1]))  # fmt: skip
        db.session.commit()
    assert verify_ledger().ok
    # A member with no events has an empty head; one that claims a link is caught too.
    other = make_member()
    db.session.execute(update(Member).where(Member.id == other.id).values(ledger_seq=1))
    db.session.commit()
    assert [b[0] for b in verify_ledger().broken] == [other.id]


# PostgreSQL only (SQLite serialises writers itself, so there is no race to test there).
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_concurrent_toggles_never_fork_the_chain(app, member, policy, backend):
    """Two toggles of one member at once: the second waits on the member row's lock and
    then reads the head the first left, so both commit, one after the other."""
    from consent_center.models import Member

    db.session.commit()
    member_id = member.id

    def toggler(n: int, line) -> None:
        subject = db.session.get(Member, member_id)
        line.wait()
        set_consent(subject, "advertising", n == 1, actor=Actor.MEMBER, method=Method.FORM,
                    actor_member=subject)  # fmt: skip
        line.overlap()  # the first holds the lock until the other is waiting for it
        db.session.commit()

    errors = race(app, toggler)
    assert not errors, errors
    db.session.expire_all()
    chain = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [e.seq for e in chain] == [1, 2] and chain[1].prev_hash == chain[0].hash
    assert db.session.get(Member, member_id).ledger_seq == 2
    assert verify_ledger().ok


def test_chain_links_each_event_to_the_previous(app, member, policy):
    a = set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    b = set_consent(member, "advertising", False, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    a, b = ledger_event(a), ledger_event(b)
    assert a.prev_hash == "0" * 64 and b.prev_hash == a.hash and (a.seq, b.seq) == (1, 2)


def test_ledger_is_append_only_per_member_sequence(app, member, policy):
    """Two writers cannot extend the chain from the same link: (member, seq) is unique."""
    from sqlalchemy.exc import IntegrityError

    set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    first = db.session.scalars(select(ConsentEvent)).one()
    dup = ConsentEvent(
        member_id=member.id,
        seq=1,
        purpose="advertising",
        granted=False,
        actor="member",
        method="form",
        prev_hash=first.prev_hash,
        hash="x" * 64,
        key_id=first.key_id,
    )
    db.session.add(dup)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_receipt_page_and_kantara_json(client, member, login_as, policy):
    login_as(member)
    post(client, "/me/consents/advertising", {"granted": "1"})
    ev = db.session.scalars(select(ConsentEvent)).one()
    page = client.get(f"/me/receipts/{ev.receipt_id}")
    assert page.status_code == 200 and ev.hash.encode() in page.data
    response = client.get(f"/me/receipts/{ev.receipt_id}.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    doc = json.loads(response.data)
    assert doc["version"] == "KI-CR-v1.1.0"
    assert doc["consentReceiptID"] == ev.receipt_id
    assert doc["consentTimestamp"] == int(ev.created_at.timestamp())
    assert isinstance(doc["consentTimestamp"], int)
    assert doc["piiPrincipalId"] == member.public_id
    assert doc["piiControllers"][0]["email"] == "aftersale@autooltech.com"
    assert doc["policyUrl"].endswith(f"/policy/versions/{policy.number}")
    purpose = doc["services"][0]["purposes"][0]
    assert purpose["purposeCategory"] == ["Marketing"] and purpose["consentType"] == "EXPLICIT"
    for key in ("jurisdiction", "collectionMethod", "language", "sensitive", "spiCat"):
        assert key in doc


def test_another_members_receipt_is_404(client, member, login_as, policy):
    other = make_member()
    ev = ledger_event(
        set_consent(other, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    )
    db.session.commit()
    login_as(member)
    with nothing_written():
        assert client.get(f"/me/receipts/{ev.receipt_id}").status_code == 404
        assert client.get(f"/me/receipts/{ev.receipt_id}.json").status_code == 404


def test_history_lists_every_change(client, member, login_as, policy):
    login_as(member)
    for granted in ("1", "0"):
        post(client, "/me/consents/advertising", {"granted": granted})
    page = client.get("/me/history").get_data(as_text=True)
    assert page.count('.json" download') == 2  # one downloadable receipt per change
    assert "Given" in page and "Withdrawn" in page


@pytest.mark.parametrize("events", [1, 500])
def test_me_issues_a_constant_number_of_queries(client, member, login_as, policy, events, backend):
    for i in range(events):
        set_consent(member, "advertising", i % 2 == 0, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    login_as(member)
    client.get("/me")  # warm-up
    with count_queries() as statements:
        assert client.get("/me").status_code == 200
    # the member (Flask-Login), then consents, record counts and policy facts in one query,
    # both on the read pool on PostgreSQL
    assert len(statements) == 2, statements
    assert len(statements.on_the_read_pool) == (2 if backend == "postgresql" else 0)


@pytest.mark.parametrize("events", [1, 200])
def test_toggle_issues_a_constant_number_of_statements(client, member, login_as, policy, events,
                                                       backend):
    for i in range(events):
        set_consent(member, "advertising", i % 2 == 0, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    login_as(member)
    token = csrf_token(client)
    with count_queries() as statements:
        response = client.post("/me/consents/trend_analysis", data={"granted": "1"},
                               headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    # The session's member (Flask-Login), then the toggle: the member row locked with the
    # chain head and the policy in force; the event; the state upsert; the head moved. No
    # subscription read, no outbox or audit row, and the answer's view is not read back.
    loader, *toggle = statements
    assert "member_session" in loader, loader
    assert len(toggle) == 4, statements
    assert "FOR UPDATE" in toggle[0] if backend == "postgresql" else "FOR UPDATE" not in toggle[0]
    assert [s.split()[0] for s in toggle] == ["SELECT", "INSERT", "INSERT", "UPDATE"], toggle
    assert not any("webhook_subscription" in s or "notification" in s or "audit_event" in s
                   or "change_event" in s for s in statements)


def test_policy_change_asks_again_and_turns_the_purpose_off_until_answered(
        client, member, login_as, policy):
    from datetime import timedelta

    from consent_center import clock
    from consent_center.services.consents import current_consents
    from tests.conftest import make_policy

    set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    set_consent(member, "trend_analysis", True, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()
    make_policy(effective_in_days=10, changed_purposes="advertising", summary="Ads change")
    views = {v.purpose: v for v in current_consents(member)}
    assert views["advertising"].granted  # not in effect yet: the yes still stands
    clock.freeze(clock.utcnow() + timedelta(days=11))
    views = {v.purpose: v for v in current_consents(member)}
    assert views["advertising"].needs_reconsent and not views["advertising"].granted
    assert views["trend_analysis"].granted and not views["trend_analysis"].needs_reconsent
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert "changed how we use your information for this" in page
    # One click answers again, under the version now in force.
    post(client, "/me/consents/advertising", {"granted": "1"})
    views = {v.purpose: v for v in current_consents(member)}
    assert views["advertising"].granted and not views["advertising"].needs_reconsent


def test_minor_cannot_grant_advertising(app, member):
    from datetime import date

    from consent_center.models import GuardianLink
    from consent_center.services.errors import NotAllowed

    member.birth_date = date(clock.utcnow().year - 10, 1, 1)
    guardian = make_member()
    db.session.add(GuardianLink(minor_id=member.id, guardian_id=guardian.id, status="approved"))
    db.session.commit()
    as_guardian = {"actor": Actor.GUARDIAN, "method": Method.FORM, "actor_member": guardian}
    with nothing_written(), pytest.raises(NotAllowed):
        set_consent(member, "advertising", True, **as_guardian)
    set_consent(member, "trend_analysis", True, **as_guardian)
    app.config["MINORS_ADVERTISING"] = True
    # Advertising for a minor only through the guardian's second confirmation (email plus).
    set_consent(member, "advertising", True, **dict(as_guardian,
                                                    method=Method.GUARDIAN_CONFIRMATION))
