"""Rate limits stay where they are declared, and cost nothing elsewhere.

Flask-Limiter checks every request in a `before_request` hook, for default, application and
blueprint limits. This app declares no default or application limits, only per-view limits
(checked by their decorators, in the view) and the API blueprint's shared limit. So the hook
is narrowed to API requests: every other request (every page view, every static file)
skips the limiter's bookkeeping, which measured about a tenth of a millisecond per request.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, request

from ..extensions import limiter

# Blueprints with a limit declared on the blueprint itself (`limiter.limit(bp)` or
# `limiter.shared_limit(...)(bp)`); tests/test_app.py keeps this list true.
LIMITED_BLUEPRINTS = frozenset({"api"})


def _check_limited_blueprints() -> None:
    if request.blueprint in LIMITED_BLUEPRINTS:
        limiter._check_request_limit()


def with_retry_after(response: Response) -> Response:
    """Add `Retry-After` to a 429: the seconds until the limit that refused the request lets
    requests through again (Flask-Limiter's own headers are off: see config.py)."""
    limit = limiter.current_limit
    seconds = math.ceil(limit.reset_at - time.time()) if limit is not None else 60
    response.headers["Retry-After"] = str(max(1, seconds))
    return response


def init_app(app: Flask) -> None:
    if limiter.enabled and (app.config.get("RATELIMIT_DEFAULT") or
                            app.config.get("RATELIMIT_APPLICATION")):
        return  # global limits would need the hook on every request: leave it as it is
    hooks = app.before_request_funcs.setdefault(None, [])
    check = limiter._check_request_limit
    if check in hooks:
        hooks[hooks.index(check)] = _check_limited_blueprints
