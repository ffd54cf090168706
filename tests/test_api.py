"""The /api/v1 API: tokens and scopes, problem documents, one member's consents, the change
feed, rate limits, and the OpenAPI document checked against the live app by schemathesis."""

from __future__ import annotations

import base64
import contextvars
import csv
import io
import json
import re
from datetime import timedelta

import pytest
import schemathesis
from flask.globals import _cv_app
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select

from consent_center import clock
from consent_center.domain import MemberStatus
from consent_center.extensions import db
from consent_center.models import ApiToken, ChangeEvent, ConsentEvent
from consent_center.services.downstream import StreamCursor, advance_cursor, decode_cursor
from consent_center.services.erasure import erase_member
from consent_center.web.api.openapi import openapi_document
from tests.conftest import make_member, make_policy
from tests.support.api import bearer, grant, make_token
from tests.support.queries import count_queries
from tests.support.writes import nothing_written

CONSENTS = "/api/v1/members/{}/consents"
FEED = "/api/v1/consent-events"


def answers(client, token, member_id) -> dict[str, dict]:
    response = client.get(CONSENTS.format(member_id), headers=bearer(token))
    assert response.status_code == 200, response.data
    return {c["purpose"]: c for c in response.get_json()["consents"]}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    return body


# --- Tokens and scopes -------------------------------------------------------------------


@pytest.mark.parametrize("path", [CONSENTS.format("abc"), "/api/v1/audiences/advertising", FEED])
def test_every_request_needs_a_token(client, path):
    with nothing_written():
        response = client.get(path)
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        response = client.get(path, headers=bearer("cc_not-a-real-token"))
        assert_problem(response, 401)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        response = client.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert_problem(response, 401)


def test_a_token_reads_only_what_its_scopes_allow(client, member, policy):
    token = make_token("consents:read")
    assert client.get(CONSENTS.format(member.public_id), headers=bearer(token)).status_code == 200
    # A refused call still shows the token in use (its last-used time); nothing else changes.
    used = ("api_token.last_used_at",)
    for path, scope in [("/api/v1/audiences/advertising", "audiences:read"), (FEED, "events:read")]:
        with nothing_written(except_columns=used):
            response = client.get(path, headers=bearer(token))
        assert scope in assert_problem(response, 403)["detail"]
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    # The scope check comes first: a wrong-scope token learns nothing about existence.
    other = make_token("events:read")
    with nothing_written(except_columns=used):
        assert_problem(client.get(CONSENTS.format("nobody"), headers=bearer(other)), 403)


def test_cli_creates_a_token_shown_once_and_revokes_it_at_once(app, runner, client, member):
    result = runner.invoke(args=["api-token", "create", "crm", "--scopes", "consents:read"])
    assert result.exit_code == 0, result.output
    token = re.search(r"^(cc_[A-Za-z0-9_-]{43})$", result.output, re.M).group(1)
    row = db.session.scalars(select(ApiToken)).one()
    assert row.token_hash != token and token not in row.token_hash and row.scopes == "consents:read"
    assert token not in runner.invoke(args=["api-token", "list"]).output
    assert client.get(CONSENTS.format(member.public_id), headers=bearer(token)).status_code == 200
    assert db.session.get(ApiToken, row.id).last_used_at is not None
    result = runner.invoke(args=["api-token", "revoke", "crm"])
    assert result.exit_code == 0 and "revoked" in result.output
    assert_problem(client.get(CONSENTS.format(member.public_id), headers=bearer(token)), 401)
    assert "revoked" in runner.invoke(args=["api-token", "list"]).output


def test_cli_refuses_unknown_scopes_and_duplicate_names(runner, app):
    with nothing_written():
        result = runner.invoke(args=["api-token", "create", "x", "--scopes", "everything"])
    assert result.exit_code != 0 and "consents:read" in result.output
    create = ["api-token", "create", "x", "--scopes", "events:read"]
    assert runner.invoke(args=create).exit_code == 0
    with nothing_written():
        assert runner.invoke(args=create).exit_code != 0  # the name is taken
        assert runner.invoke(args=["api-token", "revoke", "nope"]).exit_code != 0


def test_requests_are_rate_limited_per_token(app, client, member):
    app.config["API_RATE_LIMIT"] = "3 per minute"
    first, second = make_token(), make_token()
    url = CONSENTS.format(member.public_id)
    for _ in range(3):
        assert client.get(url, headers=bearer(first)).status_code == 200
    with nothing_written():
        response = client.get(url, headers=bearer(first))
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) > 0
    # Another system's token has its own budget.
    assert client.get(url, headers=bearer(second)).status_code == 200


def test_refused_tokens_are_limited_per_client_address(app, client, member, policy):
    """80 random tokens from one address, on every authenticated route, from
    too, on PostgreSQL): 401 until API_AUTH_FAILURE_LIMIT is spent, then 429, even for a
    right token from that address; nothing is written; another address is unaffected."""
    from consent_center.models import AuditEvent, Notification

    assert app.config["API_AUTH_FAILURE_LIMIT"] == "30 per minute"
    good = make_token()
    before = {m: db.session.scalars(select(m)).all() for m in (AuditEvent, Notification)}
    guesser, honest = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.20"}
    paths = [CONSENTS.format(member.public_id), "/api/v1/audiences/advertising", FEED]
    statuses = []
    for n in range(80):
        guess = "cc_" + base64.urlsafe_b64encode(n.to_bytes(32, "big")).decode().rstrip("=")
        response = client.get(paths[n % 3], headers=bearer(guess), environ_base=guesser)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_problem(response, 429)
            assert int(response.headers["Retry-After"]) > 0
    assert statuses == [401] * 30 + [429] * 50
    for path in paths:
        refused = client.get(path, headers=bearer(good), environ_base=guesser)
        assert_problem(refused, 429)
    assert db.session.scalars(select(ApiToken)).one().last_used_at is None
    for model, rows in before.items():
        assert db.session.scalars(select(model)).all() == rows
    for path in paths:
        assert client.get(path, headers=bearer(good), environ_base=honest).status_code == 200


def test_a_missing_token_or_a_right_one_does_not_spend_the_address_budget(
    app, client, member, policy
):
    app.config["API_AUTH_FAILURE_LIMIT"] = "2 per minute"
    good, url = make_token(), CONSENTS.format(member.public_id)
    address = {"REMOTE_ADDR": "203.0.113.8"}
    for _ in range(5):
        assert client.get(url, environ_base=address).status_code == 401
        assert client.get(url, headers=bearer(good), environ_base=address).status_code == 200
    for expected in (401, 401, 429):
        response = client.get(url, headers=bearer("cc_wrong"), environ_base=address)
        assert response.status_code == expected


def test_unknown_api_paths_and_methods_are_problems_too(client):
    token = make_token()
    with nothing_written():
        assert_problem(client.get("/api/v1/nothing-here", headers=bearer(token)), 404)
        assert_problem(client.post(FEED, headers=bearer(token)), 405)


# --- One member's consents -----------------------------------------------------------------


def test_consents_start_off_and_follow_each_change_at_once(client, member, policy):
    token = make_token("consents:read")
    got = answers(client, token, member.public_id)
    assert set(got) == {"trend_analysis", "advertising"}
    assert got["advertising"] == {
        "purpose": "advertising",
        "state": "not_given",
        "policy_version": None,
        "changed_at": None,
        "usable_now": False,
        "needs_reconsent": False,
    }
    grant(member, "advertising")
    got = answers(client, token, member.public_id)["advertising"]
    assert (got["state"], got["usable_now"], got["policy_version"]) == ("granted", True, 1)
    assert got["changed_at"].endswith("Z")
    grant(member, "advertising", False)
    got = answers(client, token, member.public_id)["advertising"]
    assert (got["state"], got["usable_now"]) == ("withdrawn", False)


def test_consents_check_the_token_and_read_the_member_in_one_statement(
        client, member, policy, backend):
    """The hottest API call is one round trip: the token and the member's consents together,
    on the read pool (autocommit, prepared by psycopg) where there is one (PostgreSQL)."""
    token = make_token("consents:read")
    grant(member, "advertising")
    member_id = member.public_id
    answers(client, token, member_id)  # notes the token's first use (a write)
    with count_queries() as statements:
        got = answers(client, token, member_id)
    assert got["advertising"]["state"] == "granted"
    assert len(statements) == 1, statements
    assert len(statements.on_the_read_pool) == (1 if backend == "postgresql" else 0)


def test_a_revoked_token_reads_nothing_in_that_one_statement(client, member, runner):
    token = make_token("consents:read")
    assert answers(client, token, member.public_id)
    name = db.session.scalars(select(ApiToken.name).order_by(ApiToken.id.desc())).first()
    assert runner.invoke(args=["api-token", "revoke", name]).exit_code == 0
    for member_id in (member.public_id, "no-such-member"):
        with count_queries() as statements:
            response = client.get(CONSENTS.format(member_id), headers=bearer(token))
        assert_problem(response, 401)
        # One statement reads the token and the consents together, revocation checked in it.
        assert len(statements) == 1 and all(
            "consents" in s and "api_token.revoked_at IS NULL" in s for s in statements
        ), statements


def test_unknown_erased_and_tombstone_ids_are_the_same_404(client, member, policy):
    token = make_token("consents:read")
    grant(member, "trend_analysis")
    known = member.public_id
    with nothing_written(except_columns=("api_token.last_used_at",)):
        unknown = client.get(CONSENTS.format("no-such-member"), headers=bearer(token))
    report = erase_member(member, actor=None, reason="test")
    db.session.commit()
    erased = client.get(CONSENTS.format(known), headers=bearer(token))
    tombstone = client.get(CONSENTS.format(report.tombstone_id), headers=bearer(token))
    assert report.tombstone_id.startswith("erased-")
    for response in (unknown, erased, tombstone):
        assert_problem(response, 404)
    assert unknown.get_json() == erased.get_json() == tombstone.get_json()


def test_unapproved_minor_barred_and_stale_consents_are_not_usable(client, app, policy):
    token = make_token("consents:read")
    waiting = make_member()
    grant(waiting, "trend_analysis")
    waiting.status = MemberStatus.AWAITING_GUARDIAN
    minor = make_member(birth_date=clock.utcnow().date() - timedelta(days=365 * 10))
    grant(minor, "trend_analysis")
    adult = make_member()
    grant(adult, "advertising")
    grant(adult, "trend_analysis")
    # Turns out to be a minor (a corrected birth date): advertising stops being usable.
    adult_minor = make_member()
    grant(adult_minor, "advertising")
    adult_minor.birth_date = clock.utcnow().date() - timedelta(days=365 * 12)
    db.session.commit()

    got = answers(client, token, waiting.public_id)["trend_analysis"]
    assert (got["state"], got["usable_now"]) == ("granted", False)
    assert answers(client, token, minor.public_id)["trend_analysis"]["usable_now"] is True
    got = answers(client, token, adult_minor.public_id)["advertising"]
    assert (got["state"], got["usable_now"]) == ("granted", False)
    app.config["MINORS_ADVERTISING"] = True  # a deployment that allows it
    assert answers(client, token, adult_minor.public_id)["advertising"]["usable_now"] is True
    app.config["MINORS_ADVERTISING"] = False

    make_policy(effective_in_days=0, changed_purposes="advertising", summary="Ads change")
    clock.freeze(clock.utcnow() + timedelta(seconds=1))
    got = answers(client, token, adult.public_id)
    assert got["advertising"]["usable_now"] is False and got["advertising"]["needs_reconsent"]
    assert got["trend_analysis"]["usable_now"] is True


# --- The change feed ---------------------------------------------------------------------


def feed(client, token, after=None, limit=None) -> dict:
    params = {k: v for k, v in {"after": after, "limit": limit}.items() if v is not None}
    response = client.get(FEED, headers=bearer(token), query_string=params)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert response.headers["Link"].endswith('rel="next"')
    return body


def test_feed_lists_every_change_in_order_and_continues_from_its_cursor(client, member, policy):
    token = make_token("events:read")
    other = make_member()
    grant(member, "advertising")
    grant(other, "trend_analysis")
    first = feed(client, token)
    seen = [
        (i["member_id"], i["consent"]["purpose"], i["consent"]["granted"]) for i in first["items"]
    ]
    assert seen == [
        (member.public_id, "advertising", True),
        (other.public_id, "trend_analysis", True),
    ]
    item = first["items"][0]
    assert item["type"] == "consent.changed" and re.fullmatch(r"[0-9a-f-]{36}", item["id"])
    assert item["consent"] == {
        "purpose": "advertising",
        "granted": True,
        "policy_version": 1,
        "actor": "member",
        "method": "form",
    }
    assert first["has_more"] is False
    # Nothing new: the same position; a withdrawal shows up at once.
    assert feed(client, token, first["next_cursor"])["items"] == []
    grant(member, "advertising", False)
    second = feed(client, token, first["next_cursor"])
    assert [(i["consent"]["granted"], i["member_id"]) for i in second["items"]] == [
        (False, member.public_id)
    ]
    # Small pages.
    page = feed(client, token, limit=2)
    assert len(page["items"]) == 2 and page["has_more"] is True
    rest = feed(client, token, page["next_cursor"], limit=2)
    assert len(rest["items"]) == 1 and rest["items"][0]["id"] == second["items"][0]["id"]


def test_feed_announces_an_erasure_with_the_id_downstream_systems_knew(client, app, member, policy):
    token = make_token("events:read")
    known = member.public_id
    grant(member, "advertising")
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    items = feed(client, token)["items"]
    assert [i["type"] for i in items] == ["consent.changed", "member.erased"]
    assert items[1]["member_id"] == known and "consent" not in items[1]
    # The earlier event now names the tombstone; nothing else identifies the member.
    assert items[0]["member_id"].startswith("erased-")
    # After the notice period the former id is no longer given out, and the next erasure
    # clears it from the database.
    clock.freeze(clock.utcnow() + timedelta(days=app.config["API_ERASURE_NOTICE_DAYS"] + 1))
    assert feed(client, token)["items"][1]["member_id"] is None
    erase_member(make_member(), actor=None, reason="test")
    db.session.commit()
    formers = db.session.scalars(select(ChangeEvent.former_public_id)).all()
    assert known not in formers


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_feed_pages_list_each_event_once_and_an_erasure_after_the_members_events(
    client, member, policy, limit
):
    token = make_token("events:read")
    other, last = make_member(), make_member()
    grant(member, "advertising")
    grant(other, "advertising")
    erase_member(other, actor=None, reason="test")  # a notice placed before `member`'s next
    db.session.commit()
    grant(member, "trend_analysis")
    grant(last, "advertising")
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    seen, cursor = [], None
    for _ in range(20):
        page = feed(client, token, cursor, limit=limit)
        seen += [(i["type"], i.get("consent", {}).get("purpose")) for i in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [
        ("consent.changed", "advertising"),
        ("consent.changed", "advertising"),
        ("member.erased", None),
        ("consent.changed", "trend_analysis"),
        ("member.erased", None),  # placed after the member's own last event
        ("consent.changed", "advertising"),
    ]
    assert feed(client, token, cursor)["items"] == []


def test_feed_comes_back_for_an_event_that_committed_late(client, app, member, policy):
    """Ids are handed out at insert, not at commit (PostgreSQL): an id the reader passed over
    is a hole in its cursor, looked at again until it appears or times out."""
    token = make_token("events:read")
    grant(member, "advertising")
    grant(member, "trend_analysis")

    def late(row_id: int) -> None:
        # A ledger row whose id was handed out long before its transaction committed.
        db.session.add(ConsentEvent(id=row_id, receipt_id=f"late-{row_id}", member_id=member.id,
                                    seq=row_id, purpose="advertising", granted=False,
                                    actor="member", method="form", created_at=clock.utcnow(),
                                    prev_hash="0" * 64, hash="0" * 64, key_id="k"))  # fmt: skip
        db.session.commit()

    late(1000)
    page = feed(client, token)
    assert [i["id"] for i in page["items"]][-1] == "late-1000"
    cursor = decode_cursor(page["next_cursor"]).ledger
    assert cursor.position == 1000 and [h[:2] for h in cursor.holes] == [(3, 999)]
    late(500)
    page = feed(client, token, page["next_cursor"])
    assert [i["id"] for i in page["items"]] == ["late-500"]
    assert [h[:2] for h in decode_cursor(page["next_cursor"]).ledger.holes] == [
        (3, 499),
        (501, 999),
    ]
    # A hole that never fills (a rolled-back transaction) is dropped after a while.
    clock.freeze(clock.utcnow() + timedelta(seconds=app.config["API_FEED_HOLE_SECONDS"] + 1))
    page = feed(client, token, page["next_cursor"])
    assert page["items"] == [] and decode_cursor(page["next_cursor"]).ledger.holes == ()


def test_cursor_arithmetic(app):
    now = clock.utcnow()
    start = StreamCursor()
    after = advance_cursor(start, [1, 2, 5, 9], now)
    assert after.position == 9 and [h[:2] for h in after.holes] == [(3, 4), (6, 8)]
    again = advance_cursor(after, [4, 7], now)
    assert again.position == 9 and [h[:2] for h in again.holes] == [(3, 3), (6, 6), (8, 8)]
    assert advance_cursor(again, [], now) == again


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"[2, 5, []]").decode(),
        base64.urlsafe_b64encode(b'{"position": 5}').decode(),
        base64.urlsafe_b64encode(json.dumps([2, 5, [[4, 9, 0]], 0, []]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([2, -1, [], 0, []]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([2, 5, [], 1, [[1, 2, 0]]]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, 5, []]).encode()).decode(),  # the old format
    ],
)
def test_a_bad_cursor_or_limit_is_400(client, cursor):
    token = make_token("events:read")
    assert_problem(client.get(FEED, headers=bearer(token), query_string={"after": cursor}), 400)
    for limit in ("0", "1001", "ten", "-1"):
        response = client.get(FEED, headers=bearer(token), query_string={"limit": limit})
        assert_problem(response, 400)


# --- The OpenAPI document, kept true ------------------------------------------------------


def test_openapi_document_is_served_without_a_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/api/v1/members/{member_id}/consents",
        "/api/v1/audiences/{purpose}",
        "/api/v1/consent-events",
    }
    assert set(doc["webhooks"]) == {"consent.changed", "member.erased"}


@schemathesis.deserializer("application/x-ndjson")
def _read_ndjson(ctx, response) -> list:
    return [json.loads(line) for line in response.content.decode().splitlines() if line]


@schemathesis.deserializer("text/csv")
def _read_csv(ctx, response) -> list:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


class LiveApp:
    """WSGI entry to the app of the running test (SQLite or PostgreSQL), each request in its own
    app context as under gunicorn, not in the test's: schemathesis calls the app directly, not
    through the IsolatedClient."""

    app = None

    def __call__(self, environ, start_response):
        return contextvars.copy_context().run(self._call, environ, start_response)

    def _call(self, environ, start_response):
        _cv_app.set(None)
        return self.app(environ, start_response)


LIVE = LiveApp()


@pytest.fixture
def seeded(app) -> str:
    """Some members and changes behind the API, and a token with every scope."""
    for n in range(4):
        member = make_member()
        grant(member, "advertising", n % 2 == 0)
        grant(member, "trend_analysis")
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    app.config["API_RATE_LIMIT"] = "100000 per minute"
    app.config["API_AUTH_FAILURE_LIMIT"] = "100000 per minute"  # it sends wrong tokens too
    return make_token()


def test_the_served_document_is_the_one_checked(client):
    assert client.get("/api/v1/openapi.json").get_json() == json.loads(
        json.dumps(openapi_document())
    )


# Loaded from the function that serves /api/v1/openapi.json (the test above proves they are
# the same document); schemathesis' fixture loader does not work with pytest 9's node ids.
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = LIVE


@schema.parametrize()
@settings(
    # Enough generated requests per operation to reach odd bytes (NUL, lone surrogates) and
    # out-of-range numbers; derandomized, so every run sends the same ones.
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    # Function-scoped fixtures (the app, its data) are set up once per test, not per example,
    # on purpose: the examples only read.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_the_api_keeps_its_openapi_document(case, app, seeded, policy):
    """Generated requests (valid and invalid) get answers that the document describes."""
    LIVE.app = app
    excluded = []
    if case.operation.path == FEED:
        # The cursor is opaque: a made-up one, however well-formed, is rightly a 400.
        excluded.append(positive_data_acceptance)
    headers = bearer(seeded)
    if case.meta.is_negative_at(ParameterLocation.HEADER) and "Authorization" not in (
        case.headers or {}
    ):
        headers = {}  # the case is a request without a token: send it without one
    case.call_and_validate(headers=headers, excluded_checks=excluded)


def test_staff_console_lists_tokens_and_subscriptions_without_secrets(app, client, login_as):
    from consent_center.services.api_tokens import create_api_token
    from tests.conftest import make_member

    issued = create_api_token("crm", ("consents:read",))
    db.session.commit()
    login_as(make_member(role="staff"))
    page = client.get("/staff/integrations").get_data(as_text=True)
    assert "crm" in page and "consents:read" in page
    assert issued.token not in page
