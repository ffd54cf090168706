"""Security headers (strict CSP, no inline script or style), session rotation helpers."""

from __future__ import annotations

from flask import Flask, Response, request

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


def init_app(app: Flask) -> None:
    for_pages, for_static = security_headers_for(app), security_headers_for(app, static=True)

    @app.after_request
    def security_headers(response: Response) -> Response:
        return add_security_headers(
            response, for_static if request.endpoint == "static" else for_pages
        )
