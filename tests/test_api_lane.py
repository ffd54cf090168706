"""The consents lane (`web/api/lane.py`): the API's busiest GET answered in front of
Flask's request cycle, exactly as the blueprint answers it."""

from __future__ import annotations

import contextvars
import logging
from datetime import timedelta

import pytest
from flask.globals import _cv_app
from sqlalchemy import select
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder, run_wsgi_app

from consent_center import clock, create_app
from consent_center.extensions import db
from consent_center.models import ApiToken
from consent_center.observability import RequestObserver
from consent_center.services.api_tokens import hash_token
from consent_center.web.api import lane
from consent_center.web.api.lane import ConsentsLane
from tests.support.api import bearer, grant, make_token
from tests.support.writes import nothing_written

CONSENTS = "/api/v1/members/{}/consents"
# Differ by the moment of the answer, not by the path that made it; and Flask adds
# `Vary: Cookie` to every response because Flask-Login reads the session after each request,
# where the API's answers never depend on cookies (and are never stored).
MOMENTARY = {"Date", "Retry-After", "Vary"}


def both_ways(
    app, path: str, headers: dict, method: str = "GET", passed_on=None, environ_base=None
):
    """The same request through the lane and straight to the Flask app behind it.

    :param passed_on: a list that gets one item each time the lane passes a request on.
    """
    the_lane = app.wsgi_app.wsgi_app  # inside the request observer (observability.py)
    assert isinstance(the_lane, ConsentsLane)
    db.session.commit()  # as IsolatedClient: each request in its own app context
    flask_app = the_lane.wsgi_app

    def counted(environ, start_response):
        if passed_on is not None:
            passed_on.append(environ["PATH_INFO"])
        return flask_app(environ, start_response)

    answers = []
    for wsgi in (ConsentsLane(app, counted), flask_app):
        environ = EnvironBuilder(
            path=path, method=method, headers=headers, environ_base=environ_base
        ).get_environ()
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
def scenarios(app, client, member, policy):
    grant(member, "advertising")
    full, events_only = make_token("consents:read"), make_token("events:read")
    known = CONSENTS.format(member.public_id)
    for token in (full, events_only):  # each token's first use is recorded (by Flask)
        client.get(known, headers=bearer(token))
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


def test_the_lane_answers_as_the_blueprint_does(app, scenarios, backend):
    for name, (path, headers) in scenarios.items():
        passed_on: list = []
        through_lane, straight = both_ways(app, path, headers, passed_on=passed_on)
        assert through_lane == straight, name
        # The lane answers the document itself where there is a read pool (PostgreSQL);
        # every refusal, and everything on SQLite, it passes on to Flask.
        answered_itself = name == "answer" and backend == "postgresql"
        assert passed_on == ([] if answered_itself else [path]), name
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


def test_an_address_blocked_for_refused_tokens_is_refused_alike(app, client, scenarios):
    app.config["API_AUTH_FAILURE_LIMIT"] = "1 per minute"
    path, headers = scenarios["unknown token"]
    address = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get(path, headers=headers, environ_base=address).status_code == 401
    assert client.get(path, headers=headers, environ_base=address).status_code == 429
    through_lane, straight = both_ways(app, *scenarios["answer"], environ_base=address)
    assert through_lane == straight and through_lane[0] == "429 TOO MANY REQUESTS"
    assert b"refused API tokens" in through_lane[2]


def test_each_request_counts_once_when_the_lane_passes_it_on(app, client, scenarios):
    app.config["API_RATE_LIMIT"] = "3 per minute"
    path, headers = scenarios["unknown member"]  # the lane counts it, Flask answers it
    for _ in range(3):
        assert client.get(path, headers=headers).status_code == 404
    with nothing_written():
        assert client.get(path, headers=headers).status_code == 429


def test_other_methods_and_paths_go_to_flask(app, client, scenarios):
    path, headers = scenarios["answer"]
    assert client.head(path, headers=headers).status_code == 200
    with nothing_written(except_columns=("api_token.last_used_at",)):
        assert client.post(path, headers=headers).status_code == 405
        assert client.get(path + "/", headers=headers).status_code == 404
        assert client.get(CONSENTS.format("not%20an%20id"), headers=headers).status_code == 404


def test_a_query_flask_refuses_goes_to_flask(app, scenarios):
    path, headers = scenarios["answer"]
    for query in ("?purpose=%00", "?purpose=%FF"):
        passed_on: list = []
        through_lane, straight = both_ways(app, path + query, headers, passed_on=passed_on)
        assert through_lane == straight and through_lane[0] == "400 BAD REQUEST"
        assert passed_on == [path]


def test_a_failing_lane_steps_aside_and_flask_answers(
        app, client, scenarios, monkeypatch, caplog, backend):
    def broken(*_args):
        raise RuntimeError("lane broke")

    monkeypatch.setattr(lane, "fetch_prepared", broken)
    path, headers = scenarios["answer"]
    with caplog.at_level(logging.ERROR, logger="consent_center.api"):
        response = client.get(path, headers=headers)
    assert response.status_code == 200 and response.get_json()["consents"]
    # Without a read pool (SQLite) the lane leaves every request to Flask.
    assert ("consents lane failed" in caplog.text) == (backend == "postgresql")


def test_a_token_s_use_is_recorded_once_a_minute_whichever_way_it_goes(app, client, scenarios):
    path, headers = scenarios["answer"]
    token = headers["Authorization"].split()[1]
    stored = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).one()
    first_use = stored.last_used_at  # the scenarios used each token once
    assert first_use is not None
    clock.freeze(first_use + timedelta(seconds=59))
    assert client.get(path, headers=headers).status_code == 200
    db.session.refresh(stored)
    assert stored.last_used_at == first_use
    clock.freeze(first_use + timedelta(minutes=2))
    assert client.get(path, headers=headers).status_code == 200
    db.session.refresh(stored)
    assert stored.last_used_at > first_use


def test_a_proxy_s_client_address_reaches_the_lane(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    app = create_app("development", PROXY_FIX_HOPS=1, DEV_MAILBOX=False)
    assert isinstance(app.wsgi_app, ProxyFix)
    assert isinstance(app.wsgi_app.app, RequestObserver)
    assert isinstance(app.wsgi_app.app.wsgi_app, ConsentsLane)
