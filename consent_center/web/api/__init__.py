"""The API for downstream systems (`/api/v1`): bearer tokens, scopes, rate limits, RFC 9457
problem documents, and an OpenAPI 3.1 description of itself.

It is a Flask app of its own, mounted beside the site at `API_PREFIX` (`mount_api`), with
only what an API needs: no session, CSRF, sign-in or page templates. It shares the site's
configuration (the same object), database engines and read pool, models and services, and
the site's request guards: hostile input (`web/inputs.py`), read-only requests
(`web/transactions.py`), body size and security headers (`web/security.py`). ProxyFix wraps
both apps (`create_app`).
"""

from __future__ import annotations

from flask import Flask, request
from flask.sessions import SessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from ...database import share_database
from ...extensions import babel, db
from ...observability import name_endpoints
from ...services.errors import DomainError
from .. import inputs, security, transactions
from ..errors import problem_response, register_unexpected
from ..i18n import browser_locale
from .problems import problem
from .views import bp

API_PREFIX = "/api/v1"
API_APP = "consent_center.api_app"


class NoSessions(SessionInterface):
    """Requests carry a bearer token, never a cookie: no session is read or written."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def create_api(site: Flask) -> Flask:
    """The API app, sharing `site`'s configuration, database and guards."""
    api = Flask(
        __name__,
        root_path=site.root_path,
        instance_path=site.instance_path,
        static_folder=None,
        template_folder=None,
    )
    api.config = site.config  # one configuration (tests change it in one place too)
    api.session_interface = NoSessions()
    share_database(db, api, site)
    # Problem documents in the language the client asks for (Accept-Language).
    babel.init_app(api, locale_selector=browser_locale)
    inputs.init_app(api)  # first: the converter must exist before any route is added
    transactions.init_app(api)
    security.init_app(api)
    name_endpoints(api)  # requests are measured and logged by endpoint, as the site's are
    _register_errors(api)
    api.register_blueprint(bp)
    return api


def _register_errors(api: Flask) -> None:
    @api.errorhandler(DomainError)
    def domain_problem(exc: DomainError):
        """A service's refusal (not found, bad query) as a problem document."""
        db.session.rollback()
        return problem(exc.status, str(exc.message) or "The request could not be completed.")

    @api.errorhandler(HTTPException)
    def http_problem(exc: HTTPException):
        """HTTP errors as problems: an operation's own (400, 413, ...) with the status's
        description; no such path or method in the site's words, as anywhere under /api."""
        db.session.rollback()
        status = exc.code or 500
        if request.url_rule is not None:
            return problem(status, exc.description or "")
        response = problem_response(status)
        if getattr(exc, "valid_methods", None):  # a 405 names the methods that would work
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    register_unexpected(api, lambda: problem_response(500))


def mount_api(site: Flask) -> Flask:
    """Serve the API at API_PREFIX beside the site, in the site's WSGI app (so gunicorn,
    `make run` and the test client reach both)."""
    api = create_api(site)
    site.extensions[API_APP] = api
    site.wsgi_app = DispatcherMiddleware(site.wsgi_app, {API_PREFIX: api})
    return api


def api_app(site: Flask) -> Flask:
    """The API app mounted beside `site`."""
    return site.extensions[API_APP]
