"""The consents lane: `GET /api/v1/members/<id>/consents` answered outside Flask's request
cycle.

Downstream systems ask this before every use of a member's data, so it is the busiest
request the app serves, and its answer (one query, a small JSON document) costs less than
Flask's request cycle around it: the request context and session, URL matching and a dozen
hooks written for pages. The lane is a WSGI middleware in front of the app that answers a
plain GET of that one URL inside an app context only, with the blueprint's own steps: the
rate limit, the token (checked in the member query), its scope, the document
(`views.consents_document`) and the security headers.

It answers only what it can answer exactly as the blueprint would: the 200 document and a
429. Anything else (no token, a refused token, an unknown member, an error; and HEAD,
other methods and paths) goes on to Flask, marked as already counted against the rate
limit, where the blueprint answers it with its localised problem documents and error
handling. `tests/test_api_lane.py` compares the lane's answers with the blueprint's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from flask import Flask, g

from ...services.api_tokens import CONSENTS_READ
from ...services.downstream import read_member_consents
from ..security import add_security_headers, security_headers_for
from .auth import admit_token, parse_bearer
from .views import COUNTED, consents_document, count_request

log = logging.getLogger("consent_center.api")

# Public ids are URL-safe base64: anything else is left to Flask's routing.
CONSENTS_PATH = re.compile(r"/api/v1/members/([A-Za-z0-9_-]{1,64})/consents")


class ConsentsLane:
    """WSGI middleware: the consents endpoint's GETs, without Flask's request cycle."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.headers = security_headers_for(app)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = (
            CONSENTS_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if environ.get("REQUEST_METHOD") == "GET"
            else None
        )
        if match is None:
            return self.wsgi_app(environ, start_response)
        try:
            with self.app.app_context():
                response = self._answer(environ, match.group(1))
        except Exception:  # Flask answers it, and its error handling reports it
            log.exception("consents lane failed; passing the request to Flask")
            response = None
        if response is None:
            environ[COUNTED] = True
            return self.wsgi_app(environ, start_response)
        return response(environ, start_response)

    def _answer(self, environ: dict, member_id: str):
        token = parse_bearer(environ.get("HTTP_AUTHORIZATION", ""))
        refused = count_request(token, environ.get("REMOTE_ADDR"))
        if refused is not None:
            return add_security_headers(refused, self.headers)
        if token is None:
            return None
        g.read_only = True  # as the view's @read_only: no transaction, the read pool
        answer = read_member_consents(token, member_id)
        if answer.found is None or admit_token(answer.token, CONSENTS_READ) is not None:
            return None
        return add_security_headers(consents_document(member_id, answer.found), self.headers)


def init_app(app: Flask) -> None:
    app.wsgi_app = ConsentsLane(app, app.wsgi_app)
