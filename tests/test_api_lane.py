"""The consents lane (`web/api/lane.py`): the API's busiest GET answered in front of
Flask's request cycle, exactly as the blueprint answers it."""

from __future__ import annotations

import contextvars
import logging

import pytest
from flask.globals import _cv_app
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder, run_wsgi_app

from consent_center import create_app
from consent_center.extensions import db
from consent_center.web.api import lane
from consent_center.web.api.lane import ConsentsLane
from tests.support.api import bearer, grant, make_token

CONSENTS = "/api/v1/members/{}/consents"
# Differ by the moment of the answer, not by the path that made it; and Flask adds
# `Vary: Cookie` to every response because Flask-Login reads the session after each request,
# where the API's answers never depend on cookies (and are never stored).
MOMENTARY = {"Date", "Retry-After", "Vary"}


def both_ways(app, path: str, headers: dict, method: str = "GET"):
    """The same request through the lane and straight to the Flask app behind it."""
    assert isinstance(app.wsgi_app, ConsentsLane)
    db.session.commit()  # as IsolatedClient: each request in its own app context
    answers = []
    for wsgi in (app.wsgi_app, app.wsgi_app.wsgi_app):
        environ = EnvironBuilder(path=path, method=method, headers=headers).get_environ()
        body, status, response_headers = contextvars.copy_context().run(
            _isolated, wsgi, environ
        )
        answers.append(
            (
                status,
                [(k, v) for k, v in response_headers.items() if k not in MOMENTARY],
                b"".join(body),
            )
        )
    return answers


def _isolated(wsgi, environ):
    _cv_app.set(None)
    return run_wsgi_app(wsgi, environ, buffered=True)


@pytest.fixture
def scenarios(app, member, policy):
    grant(member, "advertising")
    full, events_only = make_token("consents:read"), make_token("events:read")
    known = CONSENTS.format(member.public_id)
    return {
        "answer": (known, bearer(full)),
        "no token": (known, {}),
        "unknown token": (known, bearer("cc_not-a-real-token")),
        "wrong scheme": (known, {"Authorization": f"Basic {full}"}),
        "lacks the scope": (known, bearer(events_only)),
        "unknown member": (CONSENTS.format("no-such-member"), bearer(full)),
        "unknown member, in Chinese": (
            CONSENTS.format("no-such-member"),
            {**bearer(full), "Accept-Language": "zh-CN"},
        ),
    }


def test_the_lane_answers_as_the_blueprint_does(app, scenarios):
    for name, (path, headers) in scenarios.items():
        through_lane, straight = both_ways(app, path, headers)
        assert through_lane == straight, name
    status, headers, body = both_ways(app, *scenarios["answer"])[0]
    assert status == "200 OK" and b'"usable_now":true' in body
    assert ("Cache-Control", "no-store") in headers
    assert any(k == "Content-Security-Policy" for k, _v in headers)


def test_a_refusal_for_too_many_requests_matches_too(app, scenarios):
    app.config["API_RATE_LIMIT"] = "1 per minute"
    path, headers = scenarios["answer"]
    both_ways(app, path, headers)  # each way spends the one request of its window...
    through_lane, straight = both_ways(app, path, headers)
    assert through_lane == straight and through_lane[0] == "429 TOO MANY REQUESTS"


def test_each_request_counts_once_when_the_lane_passes_it_on(app, client, scenarios):
    app.config["API_RATE_LIMIT"] = "3 per minute"
    path, headers = scenarios["unknown member"]  # the lane counts it, Flask answers it
    for _ in range(3):
        assert client.get(path, headers=headers).status_code == 404
    assert client.get(path, headers=headers).status_code == 429


def test_other_methods_and_paths_go_to_flask(app, client, scenarios):
    path, headers = scenarios["answer"]
    assert client.head(path, headers=headers).status_code == 200
    assert client.post(path, headers=headers).status_code == 405
    assert client.get(path + "/", headers=headers).status_code == 404
    assert client.get(CONSENTS.format("not%20an%20id"), headers=headers).status_code == 404


def test_a_failing_lane_steps_aside_and_flask_answers(app, client, scenarios, monkeypatch, caplog):
    def broken(*_args):
        raise RuntimeError("lane broke")

    monkeypatch.setattr(lane, "read_member_consents", broken)
    path, headers = scenarios["answer"]
    with caplog.at_level(logging.ERROR, logger="consent_center.api"):
        response = client.get(path, headers=headers)
    assert response.status_code == 200 and response.get_json()["consents"]
    assert "consents lane failed" in caplog.text


def test_a_proxy_s_client_address_reaches_the_lane(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    app = create_app("development", PROXY_FIX_HOPS=1, DEV_MAILBOX=False)
    assert isinstance(app.wsgi_app, ProxyFix)
    assert isinstance(app.wsgi_app.app, ConsentsLane)
