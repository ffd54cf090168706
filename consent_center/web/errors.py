"""One handler for domain errors and HTTP errors: a page, an htmx alert, or JSON for /api."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..extensions import db
from ..services.errors import DomainError
from .htmx import wants_fragment
from .ratelimits import with_retry_after

log = logging.getLogger("consent_center.web")

TITLES = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Not allowed"),
    409: _l("Please try again"),
    413: _l("Too large"),
    422: _l("Please check your input"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
    503: _l("Temporarily unavailable"),
}
MESSAGES = {
    400: _l("We could not understand that request."),
    403: _l("You are not allowed to do that."),
    404: _l("There is nothing here. It may have moved, or it may not be yours to see."),
    405: _l("That action is not available here."),
    409: _l("Something changed at the same time. Please try again."),
    413: _l("That was more than we accept."),
    422: _l("Please check your input and try again."),
    429: _l("Too many attempts. Please wait a few minutes and try again."),
    500: _l("Something went wrong on our side. Nothing was changed. Please try again later."),
    503: _l("The service is temporarily unavailable. Please try again shortly."),
}


def problem_response(status: int, message=None):
    """An error in the reader's language as a JSON problem document (paths under /api)."""
    body = {
        "type": "about:blank",
        "title": str(TITLES.get(status, TITLES[500])),
        "status": status,
        "detail": str(message or MESSAGES.get(status, MESSAGES[500])),
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def error_response(status: int, message=None):
    if request.path.startswith("/api/"):
        return problem_response(status, message)
    message = message or MESSAGES.get(status, MESSAGES[500])
    title = TITLES.get(status, TITLES[500])
    template = "errors/_alert.html" if wants_fragment() else "errors/error.html"
    response = render_template(template, status=status, title=title, message=message), status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        db.session.rollback()
        response = app.make_response(error_response(exc.status, exc.message or None))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        db.session.rollback()
        message = _l(
            "This form has expired (for example after signing in or out). "
            "Please go back, reload the page and try again."
        )
        return error_response(400, message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        db.session.rollback()
        body, status = error_response(exc.code or 500), exc.code or 500
        response = app.make_response(body if isinstance(body, tuple) else (body, status))
        if getattr(exc, "valid_methods", None):  # a 405 names the methods that would work
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if status == 429:
            with_retry_after(response)
        return response

    register_unexpected(app, lambda: error_response(500))


def register_unexpected(app: Flask, answer: Callable[[], object]) -> None:
    """Any other exception (the site's and the API app's): the transaction is rolled back,
    the error logged with its request, and the client gets `answer()`, a 500 that says
    nothing of the cause. Tests see the exception itself unless they ask for the answer
    (`PROPAGATE_UNEXPECTED`)."""

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.endpoint)
        if app.testing and app.config.get("PROPAGATE_UNEXPECTED", True):
            raise exc
        return answer()
