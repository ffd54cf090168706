"""Security headers (strict CSP, no inline script or style), session rotation helpers."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# Sent on every response unless a view set its own value.
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
# Pages show personal data: never keep them in shared caches (static files excepted).
NO_STORE = ("Cache-Control", "no-store")


def security_headers_for(app: Flask, *, static: bool = False) -> tuple[tuple[str, str], ...]:
    """The headers every response of `app` carries (static files may be cached)."""
    wanted = HEADERS + ((HSTS,) if app.config.get("SESSION_COOKIE_SECURE") else ())
    return wanted if static else wanted + (NO_STORE,)


def add_security_headers(response: Response, wanted: tuple[tuple[str, str], ...]) -> Response:
    """Add each of `wanted` that the view did not set itself."""
    # One pass over what the view set (a Headers lookup per name raises and catches a
    # KeyError for every absent header: a dozen exceptions per response).
    headers = response.headers
    present = {name.lower() for name in headers.keys()}
    headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
    return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def refuse_oversized_body() -> None:
    """413 for a body over MAX_CONTENT_LENGTH. A declared length is refused before anything
    reads the body; a chunked form (no length) is read only up to the limit, and one that
    reaches it is refused (what follows is never read)."""
    limit = request.max_content_length
    if limit is None:
        return
    length = request.content_length
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        return
    if request.environ.get("wsgi.input_terminated") and request.mimetype in FORM_TYPES:
        request.form  # noqa: B018 - reads the body, at most `limit` bytes of it
        stream = request.stream
        if isinstance(stream, LimitedStream) and stream.is_exhausted:
            raise RequestEntityTooLarge()


def init_app(app: Flask) -> None:
    for_pages, for_static = security_headers_for(app), security_headers_for(app, static=True)
    # First of all hooks: CSRF protection would otherwise parse the form.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_oversized_body)

    @app.after_request
    def security_headers(response: Response) -> Response:
        return add_security_headers(
            response, for_static if request.endpoint == "static" else for_pages
        )
