"""Absolute links for messages and providers, built from the app's routes.

A message is read away from the site, and a provider calls back from outside: their links
use PUBLIC_BASE_URL's scheme, host and path, never the host of the request that happened to
write them (an internal name behind a proxy, a worker with no request at all).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app


def public_url_for(endpoint: str, **values) -> str:
    """`url_for(endpoint, _external=True, **values)` on PUBLIC_BASE_URL (a path alone when
    it is unset, as in development without one)."""
    base = urlsplit(current_app.config.get("PUBLIC_BASE_URL") or "")
    adapter = current_app.url_map.bind(
        base.netloc or "localhost", script_name=base.path or "/", url_scheme=base.scheme or "http"
    )
    return adapter.build(endpoint, values, force_external=bool(base.netloc))
