"""Global Privacy Control: `Sec-GPC: 1` withdraws advertising and says why; turning it on
again while sending the signal asks first and records the override; /.well-known/gpc.json."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import AuditEvent, ConsentEvent, ConsentState
from consent_center.services.consents import verify_ledger
from consent_center.web.gpc import honour_gpc
from tests.conftest import post
from tests.support.api import grant
from tests.support.queries import count_queries
from tests.support.writes import nothing_written

GPC = {"Sec-GPC": "1"}


def advertising(member) -> bool:
    state = db.session.get(ConsentState, (member.id, "advertising"))
    return bool(state and state.granted)


def events(member) -> list[tuple[bool, str, str]]:
    return [
        (e.granted, e.method, e.actor)
        for e in db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.member_id == member.id, ConsentEvent.purpose == "advertising")
            .order_by(ConsentEvent.seq)
        )
    ]


def test_gpc_json_is_published(client):
    response = client.get("/.well-known/gpc.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["gpc"] is True and len(body["lastUpdate"]) == 10


def test_the_signal_withdraws_advertising_and_the_page_says_why(client, member, login_as, policy):
    grant(member, "advertising")
    grant(member, "trend_analysis")
    login_as(member)
    page = client.get("/me", headers=GPC)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Global Privacy Control" in text and "we turned off Advertising planning" in text
    assert "View the receipt" in text
    assert not advertising(member)
    assert events(member) == [(True, "form", "member"), (False, "gpc", "member")]
    assert db.session.get(ConsentState, (member.id, "trend_analysis")).granted  # untouched
    assert verify_ledger().ok
    # Said once: the next page with the signal changes and says nothing.
    again = client.get("/me", headers=GPC).get_data(as_text=True)
    assert "we turned off" not in again and len(events(member)) == 2


def test_without_the_signal_or_signed_out_nothing_happens(client, member, login_as, policy):
    grant(member, "advertising")
    client.get("/", headers=GPC)  # signed out
    assert advertising(member)
    login_as(member)
    client.get("/me")
    client.get("/me", headers={"Sec-GPC": "0"})
    client.get("/api/v1/openapi.json", headers=GPC)
    assert advertising(member) and len(events(member)) == 1


def test_no_queries_are_added_when_the_header_is_absent(
        app, client, member, login_as, policy, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the GPC hook touched the database without the header")

    monkeypatch.setattr("consent_center.web.gpc.apply_gpc_signal", forbidden)
    login_as(member)
    for path in ("/me", "/"):
        assert client.get(path).status_code == 200  # warm-up
        with count_queries() as with_hook:
            assert client.get(path).status_code == 200
        hooks = app.before_request_funcs[None]
        others = [f for f in hooks if f is not honour_gpc]
        monkeypatch.setitem(app.before_request_funcs, None, others)
        with count_queries() as without_hook:
            assert client.get(path).status_code == 200
        monkeypatch.setitem(app.before_request_funcs, None, hooks)
        assert with_hook == without_hook, path


@pytest.mark.parametrize("htmx", [False, True])
def test_turning_it_on_again_with_the_signal_asks_and_records_the_override(
    client, member, login_as, policy, htmx
):
    login_as(member)
    response = post(client, "/me/consents/advertising", {"granted": "1"}, htmx=htmx, headers=GPC)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Global Privacy Control signal" in body and 'name="override_gpc" value="1"' in body
    assert ("<html" in body) is not htmx
    if htmx:
        assert 'id="consent-advertising"' in body and "HX-Request" in response.headers["Vary"]
    assert not advertising(member) and events(member) == []  # nothing yet: only a question

    response = post(
        client,
        "/me/consents/advertising/override-gpc",
        {"override_gpc": "1"},
        htmx=htmx,
        headers=GPC,
    )
    if htmx:
        assert response.status_code == 200 and 'aria-checked="true"' in response.get_data(True)
    else:
        assert response.status_code == 303
    assert advertising(member)
    assert events(member) == [(True, "gpc_override", "member")]
    # The ledger is the record: no copy in the audit log.
    copies = select(AuditEvent).where(AuditEvent.action.like("consent.%"))
    assert db.session.scalars(copies).all() == []
    # The member's confirmed choice stands against the signal from now on.
    client.get("/me", headers=GPC)
    assert advertising(member) and len(events(member)) == 1
    # Withdrawing needs no confirmation, signal or not.
    response = post(client, "/me/consents/advertising", {"granted": "0"}, headers=GPC)
    assert response.status_code == 303 and not advertising(member)


def test_the_receipt_history_names_the_override(client, member, login_as, policy):
    login_as(member)
    post(client, "/me/consents/advertising/override-gpc", {"override_gpc": "1"}, headers=GPC)
    page = client.get("/me/history").get_data(as_text=True)
    assert "overriding the Global Privacy Control signal" in page


def test_the_override_needs_the_confirmation_field(client, member, login_as, policy):
    login_as(member)
    with nothing_written():
        response = post(client, "/me/consents/advertising/override-gpc", {}, headers=GPC)
        assert response.status_code == 400 and events(member) == []
        response = post(client, "/me/consents/trend_analysis/override-gpc", {"override_gpc": "1"})
        assert response.status_code == 404


def test_the_override_without_a_signal_is_an_ordinary_yes(client, member, login_as, policy):
    login_as(member)
    post(client, "/me/consents/advertising/override-gpc", {"override_gpc": "1"})
    assert events(member) == [(True, "form", "member")]


def test_a_minor_is_not_asked_to_override_what_they_cannot_have(client, login_as, policy):
    from datetime import date

    from consent_center import clock
    from tests.conftest import make_member

    minor = make_member(birth_date=date(clock.utcnow().year - 10, 1, 1))
    login_as(minor)
    with nothing_written():
        response = post(client, "/me/consents/advertising", {"granted": "1"}, headers=GPC)
    assert response.status_code == 403 and events(minor) == []


def test_the_rule_is_the_consent_services(app, member, policy):
    """`set_consent` itself refuses to turn a GPC purpose on while the browser sends the
    signal, writing nothing; the member's confirmation (`grant_despite_gpc`) records it."""
    from consent_center.domain import Actor, Method
    from consent_center.services.consents import GpcConfirmationNeeded, set_consent
    from consent_center.services.gpc import grant_despite_gpc

    with nothing_written(), pytest.raises(GpcConfirmationNeeded):
        set_consent(member, "advertising", True, actor=Actor.MEMBER, method=Method.FORM,
                    actor_member=member, gpc=True)  # fmt: skip
    db.session.rollback()
    # Other purposes, withdrawals and requests without the signal are not asked about.
    set_consent(member, "trend_analysis", True, actor=Actor.MEMBER, method=Method.FORM,
                actor_member=member, gpc=True)  # fmt: skip
    set_consent(member, "advertising", False, actor=Actor.MEMBER, method=Method.FORM,
                actor_member=member, gpc=True)  # fmt: skip
    view = grant_despite_gpc(member, "advertising", gpc_sent=True, method=Method.FORM)
    db.session.commit()
    assert view.granted and advertising(member)
    assert events(member) == [(False, "form", "member"), (True, "gpc_override", "member")]
