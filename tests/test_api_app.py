"""The API as a Flask app of its own (`web/api/__init__.py`), mounted beside the site at
/api/v1: the site's configuration, database and guards, and nothing a page needs."""

from __future__ import annotations

import logging

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from consent_center import create_app
from consent_center.database import READ_ENGINE
from consent_center.extensions import db
from consent_center.web import api as api_package
from consent_center.web.api import API_PREFIX, api_app
from tests.support.api import bearer, grant, make_token

CONSENTS = "/api/v1/members/{}/consents"


def test_the_api_shares_the_site_s_configuration_and_database(app):
    api = api_app(app)
    assert api is not app and api.config is app.config
    site_engine = db.engine
    with api.app_context():
        assert db.engine is site_engine
    assert api.extensions.get(READ_ENGINE) is app.extensions.get(READ_ENGINE)
    assert "csrf" not in api.extensions and not hasattr(api, "login_manager")


def test_the_api_reads_and_writes_no_session(client, member, login_as, policy):
    token = make_token("consents:read")
    grant(member, "advertising")
    login_as(member)  # a site session cookie, which the API must ignore
    response = client.get(CONSENTS.format(member.public_id), headers=bearer(token))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    # The cookie does not stand in for a token.
    assert client.get(CONSENTS.format(member.public_id)).status_code == 401


def test_api_answers_carry_the_security_headers(client, member, policy):
    token = make_token("consents:read")
    for response in (
        client.get(CONSENTS.format(member.public_id), headers=bearer(token)),
        client.get(CONSENTS.format("no-such-member"), headers=bearer(token)),
        client.get("/api/v1/no-such-path"),
    ):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_problems_come_in_the_client_s_language(client, member, policy):
    token = make_token("consents:read")
    chinese = {"Accept-Language": "zh-CN"}
    unknown = CONSENTS.format("no-such-member")
    english = client.get(unknown, headers=bearer(token)).get_json(force=True)
    translated = client.get(unknown, headers={**bearer(token), **chinese}).get_json(force=True)
    assert english["detail"] == "No such member."
    assert translated["detail"] != english["detail"] and translated["title"] == "Not Found"
    nowhere = client.get("/api/v1/no-such-path", headers=chinese)
    assert nowhere.status_code == 404 and nowhere.mimetype == "application/problem+json"
    assert nowhere.get_json()["detail"] != client.get("/api/v1/no-such-path").get_json()["detail"]


def test_an_unexpected_error_is_a_logged_500_problem(app, client, member, monkeypatch, caplog):
    app.config["PROPAGATE_UNEXPECTED"] = False
    token = make_token("consents:read")

    def broken(*_args, **_kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("consent_center.web.api.views.read_member_consents", broken)
    with caplog.at_level(logging.ERROR, logger="consent_center.web"):
        response = client.get(CONSENTS.format(member.public_id), headers=bearer(token))
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    assert "the database went away" not in response.get_data(as_text=True)
    assert "unhandled error" in caplog.text


def test_a_proxy_s_client_address_reaches_the_api(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    site = create_app(
        "development",
        PROXY_FIX_HOPS=1,
        DEV_MAILBOX=False,
        API_AUTH_FAILURE_LIMIT="1 per minute",
        RATELIMIT_STORAGE_URI="memory://",
    )
    assert isinstance(site.wsgi_app, ProxyFix)
    dispatcher = site.wsgi_app.app.wsgi_app  # inside the request observer (observability.py)
    assert isinstance(dispatcher, DispatcherMiddleware)
    assert dispatcher.mounts == {API_PREFIX: api_app(site)}
    client = site.test_client()
    path = CONSENTS.format("anyone")

    def ask(address: str) -> int:
        headers = {**bearer("not a token"), "X-Forwarded-For": address}
        return client.get(path, headers=headers).status_code

    # Refused tokens are counted per client address (the proxy's header), not per proxy.
    assert [ask("203.0.113.50"), ask("203.0.113.50"), ask("198.51.100.7")] == [401, 429, 401]
    assert api_package.API_APP in site.extensions
