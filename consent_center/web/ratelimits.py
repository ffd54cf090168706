"""Rate limits: checked where they are declared, and nowhere else.

Pages declare theirs with Flask-Limiter's `@limiter.limit` decorators, which check in the view
itself. The API's per-token limit is one call, `hit`, at the start of every API request
(`web/api/views.py`): one storage round trip, through the same Flask-Limiter storage.

Flask-Limiter would also check every request in a `before_request` hook, for default,
application and blueprint-wide limits. This app declares none of those, so the hook is
removed: every page view and static file skips the limiter's bookkeeping (about a tenth of
a millisecond per request), and a test keeps "none declared" true.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from flask import Flask, Response, current_app
from limits import RateLimitItem, parse

from ..extensions import limiter


@lru_cache(maxsize=64)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


def hit(limit: str, scope: str, key: str) -> int | None:
    """Count one request against `limit` (such as "600 per minute") for `key` in `scope`.

    :returns: None when the request is allowed, else the seconds until one will be.
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    return count(limit, scope, key)


def count(limit: str, scope: str, key: str) -> int | None:
    """`hit` without looking at RATELIMIT_ENABLED (for callers that have looked)."""
    item, strategy = _item(limit), limiter.limiter
    if strategy.hit(item, scope, key):
        return None
    reset_at = strategy.get_window_stats(item, scope, key).reset_time
    return max(1, math.ceil(reset_at - time.time()))


def with_retry_after(response: Response) -> Response:
    """Add `Retry-After` to a 429 from a decorated limit: the seconds until the limit that
    refused the request lets requests through again (Flask-Limiter's own headers are off:
    see config.py)."""
    limit = limiter.current_limit
    seconds = math.ceil(limit.reset_at - time.time()) if limit is not None else 60
    response.headers["Retry-After"] = str(max(1, seconds))
    return response


def init_app(app: Flask) -> None:
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:
        hooks.remove(limiter._check_request_limit)
