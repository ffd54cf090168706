"""Bearer tokens on every API request: who is asking (401), may they (403), how often (429)."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from functools import wraps

from flask import Flask, Response, current_app, g, request

from ...extensions import db
from ...services.api_tokens import AuthenticatedToken, authenticate_api_token, note_token_use
from ..ratelimits import count
from .problems import problem

REALM = 'Bearer realm="consent-center"'
CHECKS_TOKEN_ATTR = "_cc_checks_token_in_query"


def bearer_token() -> str | None:
    """The token of the request's `Authorization: Bearer <token>` header, if any."""
    return parse_bearer(request.headers.get("Authorization", ""))


def parse_bearer(authorization: str) -> str | None:
    """The token of an `Authorization` header's value, if it is `Bearer <token>`."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def rate_limit_key(token: str | None, address: str | None) -> str:
    """Rate limits count per token (its fingerprint), or per address without one."""
    if token:
        return "api-token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "api-address:" + (address or "127.0.0.1")


# Refused tokens per client address (API_AUTH_FAILURE_LIMIT), counted in the rate-limit
# storage that every process shares. Once an address has spent its budget, each process
# remembers it until the window ends and answers that address 429 before looking at any
# token, a right one too: so a guesser is refused without a lookup, and the requests of
# well-behaved systems pay no extra storage round trip. Another process learns of the block
# at the address's next refused token there: at most one more guess per process.
FAILURE_SCOPE = "api-auth-failure"
BLOCKED_ADDRESSES = "consent_center.api_blocked_addresses"
MAX_REMEMBERED_ADDRESSES = 10_000


def _blocked(app: Flask) -> dict[str, float]:
    return app.extensions.setdefault(BLOCKED_ADDRESSES, {})


def address_blocked(app: Flask, address: str | None) -> int | None:
    """Seconds until `address` may present tokens again, or None when it may now."""
    blocked = _blocked(app)
    until = blocked.get(address or "")
    if until is None:
        return None
    wait = math.ceil(until - time.time())
    if wait <= 0:
        blocked.pop(address or "", None)
        return None
    return wait


def count_refused_token(app: Flask, address: str | None) -> int | None:
    """Count a refused token against its client address: None while the address is within
    API_AUTH_FAILURE_LIMIT, else the seconds until its window ends (and it is blocked)."""
    if not app.config["RATELIMIT_ENABLED"]:
        return None
    address = address or ""
    wait = count(app.config["API_AUTH_FAILURE_LIMIT"], FAILURE_SCOPE, "api-address:" + address)
    if wait is not None:
        blocked = _blocked(app)
        if len(blocked) >= MAX_REMEMBERED_ADDRESSES:
            now = time.time()
            for stale in [a for a, until in blocked.items() if until <= now]:
                del blocked[stale]
        blocked[address] = time.time() + wait
    return wait


def too_many_refused_tokens(wait: int) -> Response:
    """429 for an address that presented too many refused tokens."""
    return problem(
        429,
        "Too many refused API tokens from this address; retry later.",
        {"Retry-After": str(wait)},
    )


def missing_token():
    """401: the request carries no bearer token."""
    return problem(
        401, "Send an API token: Authorization: Bearer <token>.", {"WWW-Authenticate": REALM}
    )


def admit_token(found: AuthenticatedToken | None, scope: str | None = None):
    """Set `g.api_token` and note its use; or answer 401 with a `WWW-Authenticate` challenge
    for an unknown or revoked token (429 once its address has had too many), or 403 when it
    lacks `scope`."""
    if found is None:
        wait = count_refused_token(current_app, request.remote_addr)
        if wait is not None:
            return too_many_refused_tokens(wait)
        return problem(
            401,
            "This API token is unknown or revoked.",
            {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    if note_token_use(found):
        db.session.commit()
    g.api_token = found
    if scope is not None and scope not in found.scopes:
        return _lacks_scope(scope)
    return None


def authenticate():
    """Look up the request's token and admit it (before the view)."""
    token = bearer_token()
    if token is None:
        return missing_token()
    return admit_token(authenticate_api_token(token))


def token_checked_in_query(view: Callable) -> Callable:
    """Mark a view that looks up the token in its own query, with its data (one round trip
    on a hot path), and admits it with `admit_token` and its scope."""
    setattr(view, CHECKS_TOKEN_ATTR, True)
    return view


def checks_token_itself(view: Callable | None) -> bool:
    return view is not None and getattr(view, CHECKS_TOKEN_ATTR, False)


def _lacks_scope(scope: str):
    return problem(
        403,
        f"This API token lacks the scope {scope}.",
        {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
    )


def require_scope(scope: str) -> Callable:
    """Answer 403 unless the request's token has `scope`."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if scope not in g.api_token.scopes:
                return _lacks_scope(scope)
            return view(*args, **kwargs)

        return wrapped

    return decorator
