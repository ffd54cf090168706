"""The consents lane: `GET /api/v1/members/<id>/consents` answered in front of Flask.

Downstream systems ask this before every use of a member's data, so it is the busiest
request the app serves, and its answer (one query, a small JSON document) costs less than
Flask's request cycle around it: the request and app contexts, the session, URL matching,
a dozen hooks written for pages and the response object. The lane is a WSGI middleware in
front of the app that answers a plain GET of that one URL with the blueprint's own parts,
called directly: the rate limit (`ratelimits.count`, Flask-Limiter's storage), the token and
the member in one query (`downstream.token_and_consents_statement`, run by
`sql.fetch_prepared` on the read pool), the answer (`downstream.consents_answer`), the
document (`views.consents_json`) and the security headers (`security.security_headers_for`).

It answers only what it can answer exactly as the blueprint would: the 200 document and a
429 (too many requests for the token, or an address blocked for too many refused tokens).
Everything else goes on to Flask, marked as already counted against the rate limit, and
the blueprint answers it with its localised problem documents and its error handling: no
token, a refused token (counted there against its address), an unknown member, the
once-a-minute record of a token's use (a write), any error in the lane, a query string Flask
refuses (`web/inputs.py`); HEAD, other methods and paths; and every request where the
database has no read pool (SQLite).
`tests/test_api_lane.py` compares the lane's answers with the blueprint's, header by header.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from flask import Flask
from sqlalchemy import Select

from ...clock import utcnow
from ...database import READ_ENGINE
from ...observability import ENDPOINT_KEY
from ...services.api_tokens import CONSENTS_READ, is_token, use_to_note
from ...services.downstream import (
    consents_answer,
    consents_query_params,
    token_and_consents_statement,
)
from ...services.sql import fetch_prepared
from ..inputs import readable_query
from ..ratelimits import count
from ..security import add_security_headers, security_headers_for
from .auth import address_blocked, parse_bearer, rate_limit_key, too_many_refused_tokens
from .views import COUNTED, consents_json, too_many_requests

log = logging.getLogger("consent_center.api")

# Public ids are URL-safe base64: anything else is left to Flask's routing.
# The blueprint's endpoint for the URL the lane answers.
LANE_ENDPOINT = "api.consents"
CONSENTS_PATH = re.compile(r"/api/v1/members/([A-Za-z0-9_-]{1,64})/consents")


class ConsentsLane:
    """WSGI middleware: the consents endpoint's GETs, without Flask's request cycle."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.headers = security_headers_for(app)
        # The query, per configuration it depends on (built in an app context, once).
        self.statements: dict[tuple, Select] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = (
            CONSENTS_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if environ.get("REQUEST_METHOD") == "GET" and READ_ENGINE in self.app.extensions
            else None
        )
        if match is None or not readable_query(environ.get("QUERY_STRING", "")):
            return self.wsgi_app(environ, start_response)  # Flask refuses an unreadable query
        try:
            answer = self._answer(environ, match.group(1))
        except Exception:  # Flask answers it, and its error handling reports it
            log.exception("consents lane failed; passing the request to Flask")
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        environ[ENDPOINT_KEY] = LANE_ENDPOINT  # measured and logged as the view's requests
        return answer(environ, start_response)

    def _answer(self, environ: dict, member_id: str) -> Callable | None:
        """A WSGI app that gives the answer, or None for Flask to give it."""
        config = self.app.config
        token = parse_bearer(environ.get("HTTP_AUTHORIZATION", ""))
        wait = None
        if config["RATELIMIT_ENABLED"]:
            key = rate_limit_key(token, environ.get("REMOTE_ADDR"))
            wait = count(config["API_RATE_LIMIT"], "api", key)
        environ[COUNTED] = True
        if wait is not None:
            return add_security_headers(too_many_requests(wait), self.headers)
        blocked = address_blocked(self.app, environ.get("REMOTE_ADDR"))
        if blocked is not None:
            return add_security_headers(too_many_refused_tokens(blocked), self.headers)
        if token is None or not is_token(token):
            return None
        now = utcnow()
        params = consents_query_params(token, member_id, now, config["MINOR_AGE"])
        rows = fetch_prepared(self.app.extensions[READ_ENGINE], self._statement(), params)
        answer = consents_answer(rows)
        found = answer.token
        if (
            found is None
            or answer.found is None
            or CONSENTS_READ not in found.scopes
            or use_to_note(found, now)
        ):
            return None
        return _Document(consents_json(member_id, answer.found), self.headers)

    def _statement(self) -> Select:
        config = self.app.config
        key = (config["MINOR_AGE"], config["MINORS_ADVERTISING"])
        statement = self.statements.get(key)
        if statement is None:
            with self.app.app_context():
                statement = self.statements[key] = token_and_consents_statement()
        return statement


class _Document:
    """The 200 answer as a WSGI app: the JSON document and the security headers."""

    def __init__(self, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        self.body = body
        self.headers = headers

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(self.body))),
                *self.headers,
            ],
        )
        return [self.body]


def init_app(app: Flask) -> None:
    app.wsgi_app = ConsentsLane(app, app.wsgi_app)
