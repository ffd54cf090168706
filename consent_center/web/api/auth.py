"""Bearer tokens on every API request: who is asking (401), may they (403), how often (429)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps

from flask import g, request
from flask_limiter.util import get_remote_address

from ...extensions import db
from ...services.api_tokens import authenticate_api_token, note_token_use
from .problems import problem

REALM = 'Bearer realm="consent-center"'


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def rate_limit_key() -> str:
    """Rate limits count per token (its fingerprint), or per address without one."""
    token = bearer_token()
    if token:
        return "api-token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "api-address:" + get_remote_address()


def authenticate():
    """Set `g.api_token`, or answer 401 with a `WWW-Authenticate` challenge."""
    token = bearer_token()
    if token is None:
        return problem(
            401, "Send an API token: Authorization: Bearer <token>.", {"WWW-Authenticate": REALM}
        )
    found = authenticate_api_token(token)
    if found is None:
        return problem(
            401,
            "This API token is unknown or revoked.",
            {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    if note_token_use(found):
        db.session.commit()
    g.api_token = found
    return None


def require_scope(scope: str) -> Callable:
    """Answer 403 unless the request's token has `scope`."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if scope not in g.api_token.scopes:
                return problem(
                    403,
                    f"This API token lacks the scope {scope}.",
                    {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
                )
            return view(*args, **kwargs)

        return wrapped

    return decorator
